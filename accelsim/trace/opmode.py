"""Recording functional compute: every linear, matmul and attention, and what is left untraced.

Module hooks see only modules; transformers also compute in functions (``F.linear``
inside ``nn.MultiheadAttention``, ``q @ k.transpose(-2, -1)``, ``torch.einsum``,
``F.scaled_dot_product_attention``). While a capture runs:

- :class:`ModuleStack` tracks which module's ``forward`` is running (names ops);
- :class:`FunctionRecorder`, a ``TorchFunctionMode``, hands every traced call to the
  :class:`~accelsim.trace.capture.MaskRecorder` (``F.linear``/``nn.Linear`` as a
  ``linear`` layer; products of two activations as a ``matmul`` layer; attention as
  its two products Q.K^T and P.V, with the causal/attn mask as Q.K^T's output mask);
  ``nn.MultiheadAttention``'s functional forward runs one sample at a time so each of
  its ops sees one sample's tensors whatever their (sequence-first, flattened) layout;
- :class:`UntracedCounter`, a ``TorchDispatchMode``, counts the MACs of every ATen
  matrix/convolution op that runs outside a traced call (``conv3d``,
  ``conv_transpose2d``, a product with a constant, ...) per module and op, so the
  trace lists it as untraced work instead of dropping it.

Activations are recognised by their leading sample dimension: an operand of a traced
product must have ``n`` (the batch's sample count) as its first dimension, unless the
op runs in a one-sample context (multi-head attention, or
``CaptureOptions(per_sample_forward=True)``) where a whole tensor is one sample.
Parameters and buffers of the model (and tensors a module holds, such as a pruned
layer's computed weight) are constants.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import types
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from accelsim.hooks import HookOwner
from accelsim.trace import operands as ops

_TS = torch.Tensor
_TB = torch._C.TensorBase

#: Functions whose two operands form a matrix product (first, second), by kind of call.
_MATMUL_FUNCS = {torch.matmul, _TS.matmul, _TS.__matmul__, _TB.matmul, _TB.__matmul__,
                 torch.bmm, _TS.bmm, _TB.bmm, torch.mm, _TS.mm, _TB.mm}
_BADDBMM_FUNCS = {torch.baddbmm, _TS.baddbmm, _TB.baddbmm, torch.addmm, _TS.addmm, _TB.addmm}

_MHA = F.multi_head_attention_forward
_MHA_SIGNATURE = inspect.signature(_MHA)
# F.multi_head_attention_forward without its torch-function dispatch check, so it can run
# under the recorder (its linear/bmm/attention calls are recorded) without re-entering it.
_MHA_BODY = types.FunctionType(_MHA.__code__, {**_MHA.__globals__,
                                               "has_torch_function": lambda *_: False},
                               _MHA.__name__, _MHA.__defaults__, _MHA.__closure__)
_MHA_BODY.__kwdefaults__ = _MHA.__kwdefaults__


class ModuleStack(HookOwner):
    """Names of the modules whose ``forward`` is running, innermost last."""

    def __init__(self, model: nn.Module):
        self._names = {id(m): name for name, m in model.named_modules()}
        self._model = model
        self.stack: list[str] = []
        self._handles: list = []

    def hook_specs(self):
        for module in self._model.modules():
            name = self._names[id(module)]
            yield module, (lambda *_, name=name: self.stack.append(name)), True
            yield module, self._pop, False, True     # popped even when the forward raises

    def _pop(self, *_) -> None:  # a forward hook: must return None (else it replaces the output)
        if self.stack:
            self.stack.pop()

    def remove(self) -> None:
        super().remove()
        self.stack.clear()

    def top(self) -> str:
        """The innermost running module's qualified name (``""``: the model itself)."""
        return self.stack[-1] if self.stack else ""


def _join(module: str, what: str) -> str:
    return f"{module}.{what}" if module else what


class FunctionRecorder(TorchFunctionMode):
    """Hands traced functional calls to ``recorder`` (a ``MaskRecorder``)."""

    def __init__(self, recorder, model: nn.Module, modules: ModuleStack, kinds: tuple[str, ...]):
        super().__init__()
        self.r = recorder
        self.modules = modules
        self.kinds = kinds
        self._module_of = dict(model.named_modules())
        self._static: dict[int, str] = {}
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            self._static.setdefault(id(t), name)
        self._handlers: dict[Callable, Callable] = {}
        if "linear" in kinds:
            self._handlers[F.linear] = self._linear
        if "matmul" in kinds or "linear" in kinds:
            for f in _MATMUL_FUNCS:
                self._handlers[f] = self._matmul
            for f in _BADDBMM_FUNCS:
                self._handlers[f] = self._baddbmm
            self._handlers[torch.einsum] = self._einsum
        if "matmul" in kinds:
            self._handlers[F.scaled_dot_product_attention] = self._sdpa
        self._handlers[_MHA] = self._mha

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = self._handlers.get(func)
        graph = getattr(self.r, "graph", None)
        if graph is None or graph.busy or self.r.inside:
            return func(*args, **kwargs) if handler is None else handler(func, args, kwargs)
        start = graph.mark()
        out = func(*args, **kwargs) if handler is None else handler(func, args, kwargs)
        if graph.mark() == start:  # not a traced layer: a between-layer op (or untraced compute)
            graph.op(func, args, kwargs, out)
        return out

    def _link(self, key: str | None, inputs: list, out) -> None:
        """Tell the graph tracker that traced layer ``key`` read ``inputs`` and wrote ``out``."""
        graph = getattr(self.r, "graph", None)
        if graph is not None and key is not None:
            graph.layer(key, inputs, out)

    # -- operand classes ------------------------------------------------------------

    def static_name(self, t: torch.Tensor) -> str | None:
        """Qualified name of a constant tensor (parameter, buffer, module attribute), or None."""
        for cand in (t, t._base):
            if cand is not None and id(cand) in self._static:
                return self._static[id(cand)]
        top = self.modules.top()
        module = self._module_of.get(top)
        if module is not None:
            for attr, value in vars(module).items():
                if value is t:
                    return _join(top, attr)
        return None

    def _sample_leading(self, t) -> torch.Tensor | None:
        """``t`` with its sample dimension first, or None if it is not one of the samples'."""
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            return None
        if self.r.single:
            return t.unsqueeze(0)
        return t if t.dim() >= 2 and int(t.shape[0]) == self.r.batch else None

    def _traced(self, func, args, kwargs):
        """Run ``func`` with its ATen ops attributed to a traced layer."""
        self.r.inside += 1
        try:
            return func(*args, **kwargs)
        finally:
            self.r.inside -= 1

    # -- handlers ------------------------------------------------------------------

    def _linear(self, func, args, kwargs):
        bound = dict(zip(("input", "weight", "bias"), args), **kwargs)
        x, weight = bound.get("input"), bound.get("weight")
        xs = self._sample_leading(x)
        if xs is None or not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            return func(*args, **kwargs)
        name = self.static_name(weight)
        base = (name[:-len("weight")].rstrip("._") if name and name.endswith("weight") else name) \
            or _join(self.modules.top(), "linear")
        out = self._traced(func, args, kwargs)
        self._link(self.r.record_linear(base, xs, lambda: weight.detach(), out), [x], out)
        return out

    def _product(self, func, args, kwargs, a, b, label: str, transform=None):
        """Trace ``a . b``: a linear layer (constant ``b``) or a matmul (two activations)."""
        a_static = self.static_name(a) is not None if isinstance(a, torch.Tensor) else True
        b_name = self.static_name(b) if isinstance(b, torch.Tensor) else None
        sa = None if a_static else self._sample_leading(a)
        if sa is not None and b_name is not None and b.dim() == 2 and "linear" in self.kinds:
            out = self._traced(func, args, kwargs)
            self._link(self.r.record_linear(b_name, sa, lambda: b.detach().t(), out), [a], out)
            return out
        sb = None if b_name is not None else self._sample_leading(b)
        gemm = None
        if sa is not None and sb is not None and "matmul" in self.kinds:
            gemm = transform(sa, sb) if transform else ops.matmul_gemm(sa, sb)
        if gemm is None:
            return func(*args, **kwargs)              # counted as untraced work
        out = self._traced(func, args, kwargs)
        self._link(self.r.record_gemm(_join(self.modules.top(), label), gemm[0], gemm[1], out),
                   [a, b], out)
        return out

    def _matmul(self, func, args, kwargs):
        names = list(args) + [kwargs.get(k) for k in ("other", "mat2", "input") if k in kwargs]
        if len(names) < 2:
            return func(*args, **kwargs)
        label = getattr(func, "__name__", "matmul").strip("_")
        return self._product(func, args, kwargs, names[0], names[1], label)

    def _baddbmm(self, func, args, kwargs):
        # out = beta * input + alpha * (batch1 @ batch2): trace the product.
        a = args[1] if len(args) > 1 else kwargs.get("batch1", kwargs.get("mat1"))
        b = args[2] if len(args) > 2 else kwargs.get("batch2", kwargs.get("mat2"))
        label = getattr(func, "__name__", "baddbmm")
        return self._product(func, args, kwargs, a, b, label)

    def _einsum(self, func, args, kwargs):
        if not args or not isinstance(args[0], str):
            return func(*args, **kwargs)
        operands = args[1:]
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = tuple(operands[0])
        if len(operands) != 2:
            return func(*args, **kwargs)
        equation = args[0]
        return self._product(func, args, kwargs, operands[0], operands[1], "einsum",
                             transform=lambda x, y: ops.einsum_gemm(equation, x, y))

    def _sdpa(self, func, args, kwargs):
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
                 "enable_gqa")
        bound = dict(zip(names, args), **kwargs)
        q, k, v = (self._sample_leading(bound.get(n)) for n in ("query", "key", "value"))
        if q is None or k is None or v is None or q.dim() < 3 or \
                not (q.dim() == k.dim() == v.dim()):
            return func(*args, **kwargs)
        if bound.get("enable_gqa") and q.dim() >= 4 and k.shape[-3] != q.shape[-3]:
            rep = q.shape[-3] // k.shape[-3]
            k, v = k.repeat_interleave(rep, dim=-3), v.repeat_interleave(rep, dim=-3)
        self.r.inside += 1  # the reference products below are not the model's compute
        try:
            return self._sdpa_traced(func, args, kwargs, bound, q, k, v)
        finally:
            self.r.inside -= 1

    def _sdpa_traced(self, func, args, kwargs, bound, q, k, v):
        scale = bound.get("scale")
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        allowed = None
        scores = (q @ k.transpose(-2, -1)) * scale
        if bound.get("is_causal"):
            length, source = scores.shape[-2:]
            allowed = torch.ones(length, source, dtype=torch.bool, device=q.device).tril()
        mask = bound.get("attn_mask")
        if mask is not None:
            mask = mask.unsqueeze(0) if self.r.single else mask
            keep = mask if mask.dtype == torch.bool else mask > float("-inf")
            allowed = keep if allowed is None else allowed & keep
            if mask.dtype != torch.bool:
                scores = scores + mask
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        qk = ops.matmul_gemm(q, k.transpose(-2, -1))
        pv = ops.matmul_gemm(probs, v)
        if qk is None or pv is None:
            self.r.inside -= 1
            try:
                return func(*args, **kwargs)          # counted as untraced work
            finally:
                self.r.inside += 1
        out = func(*args, **kwargs)
        top = self.modules.top()
        out_mask = None
        if allowed is not None:
            heads_shape = qk[0].shape[:2] + scores.shape[-2:]
            full = allowed.expand(*scores.shape).reshape(heads_shape)
            out_mask = ops.gemm_output_layout(full)
        qk_key = self.r.record_gemm(_join(top, "attn_qk"), qk[0], qk[1], scores,
                                    out_mask=out_mask)
        pv_key = self.r.record_gemm(_join(top, "attn_pv"), pv[0], pv[1], out)
        graph = getattr(self.r, "graph", None)
        if graph is not None:  # Q.K^T -> scores -> softmax -> probabilities -> P.V
            self._link(qk_key, [bound.get("query"), bound.get("key")], scores)
            graph.op("softmax", (scores,), {}, probs, kind="softmax")
            self._link(pv_key, [probs, bound.get("value")], out)
        return out

    def _mha(self, func, args, kwargs):
        """``F.multi_head_attention_forward``, one sample at a time (its layout is (L, N, E))."""
        bound = _MHA_SIGNATURE.bind(*args, **kwargs)
        a = bound.arguments
        query = a["query"]
        if query.dim() == 2:  # one unbatched sample
            if not (self.r.single or self.r.batch == 1):
                return func(*args, **kwargs)
            with self._opaque(a) as result, self.r.one_sample(), self:
                result.append(_MHA_BODY(*bound.args, **bound.kwargs))
            return result[0]
        n = int(query.shape[1])
        if not self.r.single and n != self.r.batch:
            return func(*args, **kwargs)
        with self._opaque(a) as result:
            result.append(self._mha_per_sample(a, n))
        return result[0]

    @contextlib.contextmanager
    def _opaque(self, a: dict):
        """The graph sees the attention as one op (its per-sample inner calls are hidden)."""
        graph = getattr(self.r, "graph", None)
        result: list = []
        if graph is not None:
            graph.opaque_begin()
        try:
            yield result
        finally:
            if graph is not None:
                graph.opaque_end("attention", "multi_head_attention_forward",
                                 [a["query"], a["key"], a["value"]],
                                 result[0][0] if result else None)

    def _mha_per_sample(self, a: dict, n: int):
        heads = int(a["num_heads"])
        outputs, weights = [], []
        for i in range(n):
            part = dict(a)
            sliced: dict[int, torch.Tensor] = {}  # keep `query is key` identities per sample
            for name in ("query", "key", "value"):
                t = a[name]
                sliced.setdefault(id(t), t[:, i:i + 1])
                part[name] = sliced[id(t)]
            if a.get("key_padding_mask") is not None:
                part["key_padding_mask"] = a["key_padding_mask"][i:i + 1]
            for name in ("attn_mask", "static_k", "static_v"):
                t = a.get(name)
                if t is not None and t.dim() == 3:
                    part[name] = t[i * heads:(i + 1) * heads]
            with self.r.one_sample(i, n), self:
                out, w = _MHA_BODY(**part)
            outputs.append(out)
            weights.append(w)
        attn = torch.cat(outputs, dim=1)
        return attn, (None if weights[0] is None else torch.cat(weights, dim=0))


# ATen ops with MACs that torch's flop registry does not know (MACs from shapes).
def _sdpa_macs(q, k, v) -> int:
    batch = math.prod(int(s) for s in q.shape[:-2])
    return batch * int(q.shape[-2]) * int(k.shape[-2]) * (int(q.shape[-1]) + int(v.shape[-1]))


def _extra_macs(name: str, args) -> int | None:
    if "scaled_dot_product" in name and len(args) >= 3:
        return _sdpa_macs(*args[:3])
    if name in ("mv", "addmv"):
        m = args[-2]
        return int(m.shape[0]) * int(m.shape[1])
    if name in ("dot", "vdot"):
        return int(args[0].shape[0])
    return None


def aten_macs(func, args, kwargs, out) -> int:
    """MACs of one ATen call (0 for ops without multiply-accumulates)."""
    from torch.utils.flop_counter import flop_registry

    packet = func.overloadpacket
    if packet in flop_registry:
        return int(flop_registry[packet](*args, **kwargs, out_val=out)) // 2
    name = packet.__name__
    extra = _extra_macs(name, args)
    return 0 if extra is None else extra


class UntracedCounter(TorchDispatchMode):
    """Sums the MACs of ATen ops that run outside traced calls, per (module, op)."""

    def __init__(self, recorder, modules: ModuleStack):
        super().__init__()
        self.r = recorder
        self.modules = modules
        self.work: dict[tuple[str, str], list[int]] = {}

    def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.r.inside == 0:
            macs = aten_macs(func, args, kwargs, out)
            if macs:
                entry = self.work.setdefault((self.modules.top() or "<model>",
                                              f"aten.{func.overloadpacket.__name__}"), [0, 0])
                entry[0] += 1
                entry[1] += macs
        return out

    def records(self) -> list[dict]:
        """``{"name", "op", "calls", "macs"}`` per (module, op), in first-seen order."""
        return [{"name": name, "op": op, "calls": calls, "macs": macs}
                for (name, op), (calls, macs) in self.work.items()]
