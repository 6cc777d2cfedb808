"""Capturing real sparsity traces from any ``torch.nn.Module`` with forward hooks.

``capture_trace(model, batches, CaptureOptions(...))`` runs the model on up to
``options.samples`` samples and returns a :class:`~accelsim.trace.records.TraceData`
holding, for every traced layer in execution order, its geometry, the bit-packed
weight mask and input-activation masks, the output density and the statistics
(``LayerTrace.stats`` keys): ``act_density``, ``act_density_per_channel`` (C,),
``act_density_per_sample`` (N,), ``weight_density``, ``weight_density_per_filter`` (K,),
``output_density`` (of the raw layer output, before any activation function).

A module that runs several times in one forward pass is traced once per call;
calls after the first are named ``name#1``, ``name#2``, ... The hooks are owned by a
:class:`MaskRecorder` and removed when it exits, even if the forward raises.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
import torch
import torch.nn as nn

import accelsim
from accelsim.errors import AccelsimError, TraceError
from accelsim.hooks import HookOwner, probe_forward
from accelsim.trace import graph as graphs
from accelsim.trace import hooks, maskwork, operands, opmode
from accelsim.trace.geometry import LAYER_KINDS, LayerGeometry
from accelsim.trace.records import CapturedLayer, TraceData


@dataclass(frozen=True)
class CaptureOptions:
    """What to capture and how to decide that a value is zero.

    ``samples``: samples to trace. ``act_bits`` / ``weight_bits``: precisions recorded
    per layer (and used by quantisation). ``quantize_acts`` / ``quantize_weights``:
    quantise linearly to that many bits before masking (values rounding to zero are
    zero; see :func:`accelsim.trace.hooks.quantized_nonzero`). ``threshold``:
    activations with ``|x| < threshold`` count as zero (FATReLU/TEAL-style).
    ``kinds``: layer kinds to trace. ``per_sample_forward``: run the model on one
    sample at a time, so that functional ops whose tensors do not keep the samples in
    their first dimension (flattened or sequence-first layouts) are traced too.
    """

    samples: int = 16
    act_bits: int = 8
    weight_bits: int = 8
    quantize_acts: bool = False
    quantize_weights: bool = False
    threshold: float = 0.0
    kinds: tuple[str, ...] = LAYER_KINDS
    per_sample_forward: bool = False

    def __post_init__(self) -> None:
        for name in ("samples", "act_bits", "weight_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise AccelsimError(f"capture option {name}: expected a positive integer, "
                                    f"got {value!r}")
        for name in ("act_bits", "weight_bits"):
            if getattr(self, name) > 32:
                raise AccelsimError(f"capture option {name}: expected at most 32 bits, "
                                    f"got {getattr(self, name)}")
        if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)
                and self.threshold >= 0):
            raise AccelsimError(f"capture option threshold: expected a finite number >= 0, "
                                f"got {self.threshold!r}")
        object.__setattr__(self, "kinds", hooks.parse_kinds(self.kinds))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["kinds"] = list(self.kinds)
        return data


@dataclass
class _LayerState:
    """What the recorder accumulates for one traced layer call."""

    name: str
    kind: str
    template: LayerGeometry           # the geometry with N = 1
    weights: Future | maskwork.DeviceWeights | None  # static weights: (packed mask, nnz per filter)
    pending: list = field(default_factory=list)  # Future | DeviceResult per batch
    weight_pending: list = field(default_factory=list)  # per-sample weights (matmul)
    out_pending: list = field(default_factory=list)     # needed-output masks (attention)
    samples: int = 0
    padding_mode: str = "zeros"


def traced_modules(model: nn.Module, kinds: Iterable[str]) -> list[tuple[str, nn.Module, str]]:
    """(qualified name, module, kind) of every module of ``model`` of a traced kind."""
    kinds = tuple(kinds)
    found = []
    for name, module in model.named_modules():
        kind = hooks.layer_kind(module)
        if kind in kinds:
            found.append((name or type(module).__name__.lower(), module, kind))
    return found


def _weight_job(weight: torch.Tensor, options: CaptureOptions) -> tuple[np.ndarray, np.ndarray]:
    """Packed weight mask and non-zeros per filter (runs on a worker thread)."""
    mask = weight.numpy() != 0
    if options.quantize_weights:
        mask &= hooks.quantized_nonzero(weight, options.weight_bits, per_dim=0).numpy()
    packed = np.packbits(mask.reshape(-1))
    if mask[0].size % 8 == 0:  # each filter fills whole bytes: popcount them
        nnz = np.bitwise_count(packed.reshape(mask.shape[0], -1)).sum(axis=1, dtype=np.int64)
    else:
        nnz = mask.reshape(mask.shape[0], -1).view(np.uint8).sum(axis=1, dtype=np.int64)
    return packed, nnz


class MaskRecorder(HookOwner):
    """Records every traced layer call of ``model``; use as a context manager.

    Convolutions are recorded by forward hooks on their modules; linear layers
    (``nn.Linear`` or ``F.linear`` from anywhere), products of two activations and
    attention by a ``TorchFunctionMode`` (see :mod:`accelsim.trace.opmode`), which also
    counts the compute that is not traced (:attr:`untraced`). Every hook and mode is
    removed when the block exits, even if the forward raises; PyTorch's fused
    transformer fast path is disabled meanwhile (it would hide the matmuls).

    Call :meth:`start_batch` before each forward pass and :meth:`finish` at the end.
    The hooks only snapshot masks; packing and counting run on a worker thread (CPU
    tensors) or on the device (see :mod:`accelsim.trace.maskwork`).
    """

    def __init__(self, model: nn.Module, options: CaptureOptions):
        self.options = options
        self.model = model
        self._targets = [t for t in traced_modules(model, options.kinds) if t[2] != "linear"]
        self._functional = tuple(k for k in options.kinds if k in ("linear", "matmul"))
        self._handles: list = []
        self._states: dict[str, _LayerState] = {}
        self._calls: dict[str, int] = {}
        self._seen: set[str] = set()
        self._batch = 0
        self._weight_cache: dict[object, Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._stack: ExitStack | None = None
        self._counter: opmode.UntracedCounter | None = None
        self.batch: int | None = None   # samples in the running forward (leading dimension)
        self.single = False             # the running op's tensors are one sample's
        self.inside = 0                 # > 0 while a traced call runs (its ATen ops are traced)
        self.graph: graphs.GraphTracker | None = None  # data flow between the layers
        self.op_graph: graphs.OpGraph | None = None    # set by finish()

    @property
    def num_targets(self) -> int:
        """Hooked modules, plus one when functional kinds (linear, matmul) are traced."""
        return len(self._targets) + (1 if self._functional else 0)

    def __enter__(self) -> "MaskRecorder":
        workers = max(1, min(4, (os.cpu_count() or 2) // 2))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="accelsim-capture")
        stack = ExitStack()
        self._stack = stack
        try:
            super().__enter__()
            stack.callback(HookOwner.remove, self)
            modules = stack.enter_context(opmode.ModuleStack(self.model))
            root = self.model.register_forward_pre_hook(self._root_input)
            stack.callback(root.remove)
            stack.enter_context(_fastpath_disabled())
            self._counter = opmode.UntracedCounter(self, modules)
            stack.enter_context(self._counter)
            functions = opmode.FunctionRecorder(self, self.model, modules, self._functional)
            self.graph = graphs.GraphTracker(self, functions.static_name, modules.top)
            out = self.model.register_forward_hook(self._root_output)
            stack.callback(out.remove)
            stack.enter_context(functions)
        except BaseException:
            self.remove()
            raise
        return self

    def _root_input(self, module: nn.Module, args: tuple) -> None:
        """The model's input gives the samples per forward (unless set by ``start_batch``)."""
        if not self._explicit_batch and args and isinstance(args[0], torch.Tensor) \
                and args[0].dim() > 0:
            self.batch = int(args[0].shape[0])
        if self.graph is not None:
            self.graph.source(args)

    def _root_output(self, module: nn.Module, args: tuple, output) -> None:
        if self.graph is not None:
            self.graph.outputs(output)

    _explicit_batch = False

    def hook_specs(self):
        specs = []
        for name, module, kind in self._targets:
            specs.append((module, self._make_pre_hook(), True))
            specs.append((module, self._make_hook(name, kind), False))
        return specs

    def remove(self) -> None:
        """Remove every hook and mode this recorder installed and stop its worker threads."""
        stack, self._stack = self._stack, None
        try:
            if stack is not None:
                stack.close()
        finally:
            super().remove()
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    @property
    def untraced(self) -> list[dict]:
        """Compute seen but not traced: ``{"name", "op", "calls", "macs"}`` (all samples)."""
        return [] if self._counter is None else self._counter.records()

    def start_batch(self, samples: int | None = None, single: bool = False) -> None:
        """Begin a forward pass of ``samples`` samples (``single``: one sample, any layout)."""
        if self._batch and self._seen != set(self._states):
            missing = sorted(set(self._states) - self._seen)
            raise TraceError(f"layers {missing} ran in the first batch but not in batch "
                             f"{self._batch}; models whose layers depend on the data cannot be traced")
        self._batch += 1
        self._calls.clear()
        self._seen = set()
        self._explicit_batch = samples is not None
        self.batch = samples
        self.single = bool(single)
        if self.graph is not None:
            self.graph.start_batch()

    @contextmanager
    def one_sample(self, index: int = 0, count: int = 1):
        """Run sample ``index`` of ``count`` on its own: every tensor is that sample's.

        Layer names restart for each sample, so sample ``i`` of every op lands in the
        same layer as sample 0.
        """
        if index == 0:
            self._sample_calls = dict(self._calls)
        else:
            self._calls = dict(self._sample_calls)
        was = self.single
        self.single = True
        try:
            yield
        finally:
            self.single = was

    def _make_pre_hook(self):
        def pre_hook(module: nn.Module, args: tuple) -> None:
            self.inside += 1
        return pre_hook

    def _make_hook(self, name: str, kind: str):
        def hook(module: nn.Module, args: tuple, output) -> None:
            try:  # still inside: the recorder's own tensor calls are not the model's ops
                self._record_module(name, kind, module, args, output)
            finally:
                self.inside = max(0, self.inside - 1)
        return hook

    def _submit(self, fn, *args) -> Future:
        if self._pool is None:
            raise RuntimeError("MaskRecorder used outside its `with` block")
        return self._pool.submit(fn, *args)

    def _weights(self, key: object, weight_fn) -> Future | maskwork.DeviceWeights:
        """Static weights' packed mask, computed once per weight source ``key``."""
        cached = self._weight_cache.get(key)
        if cached is None:
            weight = weight_fn()
            if self._use_numpy(weight):  # weights do not change during the forward
                cached = self._submit(_weight_job, weight.contiguous(), self.options)
            else:
                mask = weight != 0
                if self.options.quantize_weights:
                    mask &= hooks.quantized_nonzero(weight, self.options.weight_bits, per_dim=0)
                cached = maskwork.DeviceWeights(mask)
            self._weight_cache[key] = cached
        return cached

    def _use_numpy(self, t: torch.Tensor) -> bool:
        return t.device.type == "cpu" and t.dtype in hooks.NUMPY_DTYPES

    def _act_mask(self, act: torch.Tensor):
        """The input mask, taken now (NumPy for CPU tensors, torch on a device)."""
        if self._use_numpy(act):
            mask = hooks.nonzero_numpy(act, self.options.threshold)
            if self.options.quantize_acts:
                mask &= hooks.quantized_nonzero(act, self.options.act_bits, per_dim=0).numpy()
            return mask
        mask = act != 0
        if self.options.threshold > 0:
            mask &= act.abs() >= self.options.threshold
        if self.options.quantize_acts:
            mask &= hooks.quantized_nonzero(act, self.options.act_bits, per_dim=0)
        return mask

    def _pack(self, mask, out: torch.Tensor | None = None):
        """A packing job for a bool (n, C, H, W) mask (and the output's density)."""
        if isinstance(mask, np.ndarray):
            out_mask = None if out is None else hooks.nonzero_numpy(out)
            return self._submit(maskwork.cpu_job, mask, out_mask)
        return maskwork.DeviceResult(mask, out)

    def _key(self, name: str) -> str:
        call = self._calls.get(name, 0)
        self._calls[name] = call + 1
        return name if call == 0 else f"{name}#{call}"

    def _state(self, key: str, template: LayerGeometry, weight_source) -> _LayerState:
        state = self._states.get(key)
        if state is None:
            if self._batch > 1:
                raise TraceError(f"layer {key!r} ran in batch {self._batch} but not in the first "
                                 "batch; models whose layers depend on the data cannot be traced")
            weights = None if weight_source is None else self._weights(*weight_source)
            state = _LayerState(key, template.kind, template, weights)
            self._states[key] = state
        elif state.template != template:
            raise TraceError(f"layer {key!r}: its per-sample shape changed from "
                             f"{_shape_text(state.template)} to {_shape_text(template)}; every "
                             "traced sample must have the same shape")
        self._seen.add(key)
        return state

    def _record_module(self, name: str, kind: str, module: nn.Module, args: tuple,
                       output) -> None:
        if not args or not isinstance(args[0], torch.Tensor):
            raise TraceError(f"layer {name!r}: expected a tensor input")
        x = args[0].detach()
        key = self._key(name)
        chw = hooks.sample_shape(kind, x, key)
        template = hooks.layer_geometry(module, kind, chw, 1, key)
        state = self._state(key, template,
                            (id(module), lambda: hooks.weight_tensor(module, kind)))
        state.padding_mode = getattr(module, "padding_mode", "zeros")
        mask = self._act_mask(hooks.as_nchw(kind, x))
        out = output.detach() if isinstance(output, torch.Tensor) else None
        state.pending.append(self._pack(mask, out))
        state.samples += int(mask.shape[0])
        if self.graph is not None:
            self.graph.layer(key, [args[0]], output)

    def record_linear(self, name: str, x: torch.Tensor, weight_fn, output) -> str:
        """A linear layer on ``x`` (n, ..., C) with the constant weight ``weight_fn()`` (K, C).

        Returns the layer's key (its name in the trace)."""
        key = self._key(name)
        act, template = operands.linear_operands(x.detach(), int(weight_fn().shape[0]))
        state = self._state(key, template,
                            (key, lambda: weight_fn().reshape(template.K, template.C, 1, 1)))
        out = output.detach() if isinstance(output, torch.Tensor) else None
        mask = self._act_mask(act)
        state.pending.append(self._pack(mask, out))
        state.samples += int(mask.shape[0])
        return key

    def record_gemm(self, name: str, a: torch.Tensor, b: torch.Tensor, output,
                    out_mask: torch.Tensor | None = None) -> str:
        """A product of two activations, ``a`` (n, B, M, Kr) . ``b`` (n, B, Kr, Nc); returns its key."""
        key = self._key(name)
        act, weight, template = operands.gemm_operands(a.detach(), b.detach())
        state = self._state(key, template, None)
        out = output.detach() if isinstance(output, torch.Tensor) else None
        mask = self._act_mask(act)
        state.pending.append(self._pack(mask, out))
        n, k = int(weight.shape[0]), int(weight.shape[1])
        state.weight_pending.append(self._pack(self._act_mask(weight.reshape(n, k, -1, 1))))
        if out_mask is not None:
            om = out_mask.detach()
            state.out_pending.append(self._pack(om.numpy() if om.device.type == "cpu" else om))
        elif state.out_pending:
            raise TraceError(f"layer {key!r}: its attention mask was given in some calls only")
        state.samples += int(mask.shape[0])
        return key

    def finish(self) -> list[CapturedLayer]:
        """The captured layers in execution order (waits for pending packing work)."""
        if not self._states:
            untraced = self.untraced
            hint = ""
            if untraced:
                ops_seen = ", ".join(sorted({e["op"] for e in untraced}))
                hint = (f"; compute ran in untraced ops ({ops_seen}): products whose operands "
                        "do not keep the samples in their first dimension are traced with "
                        "CaptureOptions(per_sample_forward=True)")
            raise TraceError("no layer was traced: the model has no layers of the traced "
                             f"kinds ({', '.join(self.options.kinds)}) that ran{hint}")
        counts = {s.samples for s in self._states.values()}
        if len(counts) != 1:
            detail = ", ".join(f"{s.name}: {s.samples}" for s in self._states.values())
            raise TraceError("traced layers saw different sample counts (a model that reshapes "
                             f"samples into the batch dimension?): {detail}")
        layers = []
        for state in self._states.values():
            geometry = dataclasses.replace(state.template, N=state.samples)
            batches = [job.result() for job in state.pending]
            if state.weights is not None:
                weight_packed, weight_nnz = state.weights.result()
            else:
                wb = [job.result() for job in state.weight_pending]
                weight_packed = np.concatenate([b.packed for b in wb], axis=0)
                weight_nnz = np.concatenate([b.per_sample_channel for b in wb], axis=0).sum(axis=0)
            out_packed = None
            if state.out_pending:
                out_packed = np.concatenate([job.result().packed for job in state.out_pending],
                                            axis=0)
            layers.append(_captured_layer(state, geometry, self.options, batches,
                                          weight_packed, weight_nnz, out_packed))
        if self.graph is not None:
            index = {state.name: i for i, state in enumerate(self._states.values())}
            self.op_graph = self.graph.finish(index, layers[0].geometry.N)
            if self.op_graph is None and self.graph.problem:
                warnings.warn(f"capture: the ops between layers are not recorded: "
                              f"{self.graph.problem}", stacklevel=3)
        return layers


def _shape_text(g: LayerGeometry) -> str:
    return f"C={g.C} H={g.H} W={g.W} K={g.K} groups={g.groups}"


@contextmanager
def _fastpath_disabled():
    """Turn off PyTorch's fused MHA/transformer fast path (it hides the matmuls) meanwhile."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    was = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(was)


def _captured_layer(state: _LayerState, geometry: LayerGeometry, options: CaptureOptions,
                    batches: list[maskwork.BatchMasks], weight_packed: np.ndarray,
                    weight_nnz: np.ndarray, out_packed: np.ndarray | None = None
                    ) -> CapturedLayer:
    g = geometry
    per_sample_channel = np.concatenate([b.per_sample_channel for b in batches], axis=0)
    act_nnz_per_channel = per_sample_channel.sum(axis=0)
    out_nnz = sum(b.out_nnz for b in batches)
    out_total = sum(b.out_total for b in batches)
    output_density = out_nnz / out_total if out_total else None
    weight_copies = g.N if g.per_sample_weights else 1
    stats = {
        "act_density": float(act_nnz_per_channel.sum() / (g.N * g.C * g.H * g.W)),
        "act_density_per_channel": (act_nnz_per_channel / (g.N * g.H * g.W)).astype(np.float64),
        "act_density_per_sample": (per_sample_channel.sum(axis=1)
                                   / (g.C * g.H * g.W)).astype(np.float64),
        "weight_density": float(weight_nnz.sum()
                                / (weight_copies * g.K * g.c_per_group * g.R * g.S)),
        "weight_density_per_filter": (weight_nnz / (weight_copies * g.c_per_group * g.R * g.S)
                                      ).astype(np.float64),
        "output_density": output_density,
    }
    if state.padding_mode != "zeros":
        stats["padding_mode"] = state.padding_mode  # the simulator treats padding as zeros
    return CapturedLayer(state.name, geometry, options.act_bits, options.weight_bits,
                         weight_packed, [b.packed for b in batches], output_density, stats,
                         out_packed=out_packed)


def _batch_input(batch) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, np.ndarray):
        return torch.from_numpy(batch)
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], (torch.Tensor, np.ndarray)):
        return _batch_input(batch[0])
    raise AccelsimError(f"capture: expected batches of tensors or (input, target) pairs, got "
                        f"{type(batch).__name__}")


def _model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def base_provenance(model: nn.Module, options: CaptureOptions | None, samples: int) -> dict:
    """Provenance fields every trace carries; callers add model/checkpoint/dataset."""
    return {
        "model": type(model).__name__,
        "checkpoint": None,
        "checkpoint_sha256": None,
        "dataset": None,
        "accuracy": None,
        "num_samples": int(samples),
        "capture_options": None if options is None else options.to_dict(),
        "accelsim_version": accelsim.__version__,
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def capture_trace(model: nn.Module, batches: Iterable, options: CaptureOptions,
                  provenance: dict | None = None, progress: bool = False) -> TraceData:
    """Run ``model`` on ``batches`` (tensors or (input, target) pairs) and capture a trace.

    Stops after ``options.samples`` samples (the last batch is cut so that no extra
    sample runs). ``provenance`` entries (model, checkpoint, dataset, ...) override
    the defaults of :func:`base_provenance`. ``progress`` shows a tqdm bar on stderr.
    """
    from accelsim.sweep.progress import progress_counter

    was_training = model.training
    device = _model_device(model)
    model.eval()
    taken = 0
    bar = progress_counter(options.samples, "capture", unit="sample", enabled=progress)
    try:
        with torch.no_grad(), MaskRecorder(model, options) as recorder:
            if recorder.num_targets == 0:
                raise TraceError(f"the model has no layers of the traced kinds "
                                 f"({', '.join(options.kinds)})")
            for batch in batches:
                x = _batch_input(batch)
                take = min(options.samples - taken, int(x.shape[0]))
                if take <= 0:
                    break
                xb = x[:take].to(device)
                if options.per_sample_forward:
                    for i in range(take):
                        recorder.start_batch(1, single=True)
                        model(xb[i:i + 1])
                else:
                    recorder.start_batch(take)
                    model(xb)
                taken += take
                bar.update(take)
                if taken >= options.samples:
                    break
            if taken == 0:
                raise AccelsimError("capture: the data gave no samples")
            layers = recorder.finish()
            untraced = recorder.untraced
            op_graph = recorder.op_graph
            graph_problem = recorder.graph.problem if recorder.graph is not None else None
    finally:
        bar.close()
        model.train(was_training)
    if taken < options.samples:
        warnings.warn(f"capture: the data held only {taken} of the {options.samples} "
                      "requested samples", stacklevel=2)
    prov = base_provenance(model, options, taken)
    prov.update(provenance or {})
    prov["num_samples"] = taken
    prov["capture_options"] = options.to_dict()
    if untraced:
        total = sum(e["macs"] for e in untraced)
        warnings.warn(f"capture: {total / taken:,.0f} MACs per sample ran in ops that are not "
                      f"traced ({', '.join(sorted({e['op'] for e in untraced}))}); the trace "
                      "lists them (`accelsim trace info`)", stacklevel=2)
    if graph_problem:
        prov["graph_problem"] = graph_problem
    return TraceData(layers=layers, provenance=prov, untraced=untraced, graph=op_graph)


def probe_layers(model: nn.Module, example: torch.Tensor,
                 kinds: Iterable[str] = LAYER_KINDS) -> list[tuple[str, str, LayerGeometry]]:
    """(name, kind, geometry with N=1) of each traced layer, from one forward of ``example``.

    ``example`` is one batch of one sample; it may live on the ``meta`` device (no compute).
    """
    found: list[tuple[str, str, LayerGeometry]] = []

    def record(name: str, kind: str):
        def hook(module: nn.Module, args: tuple, output) -> None:
            count = sum(1 for n, _, _ in found if n == name or n.startswith(name + "#"))
            key = name if count == 0 else f"{name}#{count}"
            chw = hooks.sample_shape(kind, args[0], key)
            found.append((key, kind, hooks.layer_geometry(module, kind, chw, 1, key)))
        return hook

    targets = traced_modules(model, hooks.parse_kinds(tuple(kinds)))
    probe_forward(model, example, [(module, record(name, kind), False)
                                   for name, module, kind in targets])
    return found

