"""The network's data flow around the traced layers: tensors, between-layer ops, their masks.

While a capture runs, :class:`GraphTracker` gives every tensor the forward produces an
id (its index in :attr:`OpGraph.tensors`) and records, in execution order, one
:class:`GraphOp` per call: the traced layers (``kind == "layer"``, ``layer`` = their
index in the trace) and every other tensor op between them (pooling, residual adds,
concatenation, normalisation, activations, reshapes, softmax, ...), with the ids of
the tensors each reads and writes. From that record the lifetime of every tensor is
recoverable (:mod:`accelsim.sim.liveness`) and the ops between layers can be costed
on a vector unit (:mod:`accelsim.sim.vector_ops`).

Each tensor records its per-sample shape, elements and density, and (for tensors
whose first dimension is the sample) its bit-packed non-zero mask per sample, taken
with the capture's zero rule (threshold, quantisation). Ops that only re-index their
input (``view``, ``reshape``, ``flatten``, ``permute``, eval-mode ``dropout``, ...)
produce an *alias*: a tensor sharing its source's storage (``alias_of``) and no mask.
An op that writes into one of its inputs (``relu_``, ``inplace=True``) is ``inplace``:
its output replaces that input's value in the same storage.

Tensors whose first dimension is not the sample (a constant built in the forward, a
sequence-first layout) are recorded as *shared* (``per_sample = False``): their shape
is the whole tensor's in the first batch, ``elements`` its size divided by that
batch's samples, and they carry a density but no mask.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

#: Op kinds of the between-layer ops, and the functions (``__name__``) of each.
_KIND_FUNCS = {
    "add": ("add", "__add__", "__radd__", "add_", "__iadd__", "sub", "__sub__", "__rsub__",
            "sub_", "__isub__", "rsub"),
    "mul": ("mul", "__mul__", "__rmul__", "mul_", "__imul__", "div", "__truediv__",
            "__rtruediv__", "div_", "__itruediv__", "true_divide", "__floordiv__", "divide",
            "multiply"),
    "activation": ("relu", "relu_", "relu6", "gelu", "silu", "silu_", "sigmoid", "sigmoid_",
                   "tanh", "tanh_", "hardtanh", "hardtanh_", "hardswish", "hardsigmoid",
                   "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "softplus",
                   "mish", "threshold", "threshold_", "clamp", "clamp_", "clip", "prelu",
                   "glu", "logsigmoid", "softsign", "tanhshrink", "hardshrink", "softshrink"),
    "norm": ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm",
             "local_response_norm", "normalize"),
    "pool": ("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
             "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
             "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
             "lp_pool1d", "lp_pool2d", "_max_pool1d", "_max_pool2d", "_max_pool3d",
             "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
             "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices"),
    "softmax": ("softmax", "log_softmax", "softmin"),
    "concat": ("cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack"),
    "reshape": ("view", "reshape", "flatten", "unflatten", "squeeze", "squeeze_", "unsqueeze",
                "unsqueeze_", "permute", "transpose", "transpose_", "t", "contiguous",
                "view_as", "reshape_as", "movedim", "moveaxis", "swapaxes", "swapdims",
                "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                "feature_alpha_dropout", "detach", "clone", "float", "half", "to", "type_as",
                "identity"),
    "slice": ("__getitem__", "narrow", "select", "chunk", "split", "tensor_split", "unbind",
              "index_select", "gather", "take", "masked_select", "expand", "expand_as",
              "repeat", "repeat_interleave", "tile", "roll", "flip"),
    "reduce": ("mean", "sum", "amax", "amin", "max", "min", "var", "std", "norm", "prod",
               "logsumexp", "cumsum", "argmax", "argmin", "topk", "sort"),
    "pad": ("pad", "constant_pad_nd", "zero_pad2d"),
    "resize": ("interpolate", "upsample", "upsample_nearest", "upsample_bilinear",
               "pixel_shuffle", "pixel_unshuffle", "grid_sample"),
    "elementwise": ("exp", "exp_", "log", "log_", "sqrt", "sqrt_", "rsqrt", "abs", "abs_", "neg",
                    "__neg__", "pow", "__pow__", "__rpow__", "pow_", "square", "reciprocal",
                    "sin", "cos", "erf", "where", "masked_fill", "masked_fill_", "maximum",
                    "minimum", "sign", "floor", "ceil", "round", "addcmul", "addcdiv", "lerp",
                    "__and__", "__or__", "__invert__", "logical_not", "eq", "ne", "lt", "le",
                    "gt", "ge", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
                    "fill_", "zero_", "copy_"),
    "embedding": ("embedding", "embedding_bag", "one_hot"),
    "untraced_compute": ("linear", "bilinear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                         "conv_transpose2d", "conv_transpose3d", "matmul", "__matmul__",
                         "__rmatmul__", "mm", "bmm", "baddbmm", "addmm", "einsum", "mv",
                         "addmv", "dot", "vdot", "outer", "tensordot", "multi_head_attention_forward",
                         "scaled_dot_product_attention"),
}
KIND_OF_FUNC = {name: kind for kind, names in _KIND_FUNCS.items() for name in names}

#: Kinds of the between-layer ops (``other``: a tensor op not in the table above).
OP_KINDS = tuple(_KIND_FUNCS) + ("attention", "other")
#: Kinds whose output only re-indexes the input (an alias, when the element count is kept).
ALIAS_KINDS = ("reshape",)
#: Kind of the op records that stand for a traced layer.
LAYER_KIND = "layer"
#: Tensor sources.
SOURCES = ("input", "op", "layer", "external")


#: Kinds whose outputs take the broadcast shape of their activation inputs (elementwise maps).
ELEMENTWISE_KINDS = ("add", "mul", "activation", "norm", "softmax", "elementwise")
#: Of those, kinds that map one tensor onto a tensor of its own shape (their other inputs, if
#: any, are parameters: a norm's statistics, prelu's slopes), never broadcast to a larger one.
_SAME_SHAPE_KINDS = ("activation", "norm", "softmax")
#: Functions of those kinds that change the shape (``glu`` halves a dimension).
_RESHAPING_FUNCS = ("glu",)


def _size(shape) -> int:
    return math.prod(int(d) for d in shape)


def _broadcast(shapes: list) -> tuple | None:
    try:
        return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))
    except ValueError:
        return None


def record_problem(tensors: list[dict], ops: list[dict], geometries: list, layer_names: list[str],
                   ) -> str | None:
    """Why the graph records (``to_metadata`` dicts, already checked field by field and for ids)
    disagree with each other or with the traced layers' geometries, or None.

    Checked, in one pass over the records (the masks are not needed): a tensor's ``source``
    matches its producer (none: ``input``/``external``; a layer op: ``layer``; another op:
    ``op``); an alias (``alias_of``) is written by an alias op from that tensor, with its
    elements, and an alias op writes only aliases; ``inplace_of`` is an input of its producer; a
    shared tensor has at most the elements of its shape; an op's ``kind`` is the kind of its
    function (:func:`op_kind`; ``slice`` for a copying ``reshape``; ``attention`` only for the
    opaque attention op); a layer op names its layer, reads ``C*H*W`` and writes ``K*P*Q``
    elements per sample (the layer geometry); an elementwise op writes the broadcast of what
    it reads (the largest input, or the broadcast shape; with constants, at most the largest
    input times their elements); a concatenation writes the sum of its inputs (plus
    constants); a reduction at most its largest input or their broadcast; a pooling window
    (``attrs.kernel``) is at most its input's spatial extent.
    """
    for i, t in enumerate(tensors):
        producer = None if t["producer"] is None else ops[t["producer"]]
        if producer is None:
            want = ("input", "external")
        else:
            want = ("layer",) if producer["kind"] == LAYER_KIND else ("op",)
        if t["source"] not in want:
            return (f"tensors[{i}]: source: expected {' or '.join(want)} (its producer is "
                    f"{'none' if producer is None else 'op ' + str(t['producer'])}), got "
                    f"{t['source']!r}")
        if not t["per_sample"] and t["elements"] > _size(t["shape"]):
            return (f"tensors[{i}]: elements: a shared tensor of shape {t['shape']} has at most "
                    f"{_size(t['shape'])} elements per sample, got {t['elements']}")
        source = t["alias_of"]
        if source is not None:
            if producer is None or not _is_alias_op(producer) or producer["inputs"][:1] != [source]:
                return (f"tensors[{i}]: alias_of: expected only on the output of an alias op "
                        f"(kind reshape, attrs.alias) whose first input is tensor {source}")
            if t["elements"] != tensors[source]["elements"]:
                return (f"tensors[{i}]: elements: an alias has its source's "
                        f"{tensors[source]['elements']} elements, got {t['elements']}")
        if t["inplace_of"] is not None and (producer is None
                                            or t["inplace_of"] not in producer["inputs"]):
            return (f"tensors[{i}]: inplace_of: expected an input of its producer, got tensor "
                    f"{t['inplace_of']}")
    for j, o in enumerate(ops):
        problem = _op_problem(o, tensors, geometries, layer_names)
        if problem:
            return f"ops[{j}] ({o['op']!r:.60}): {problem}"
    return None


def _is_alias_op(o: dict) -> bool:
    return o["kind"] in ALIAS_KINDS and bool(o["attrs"].get("alias"))


def _op_problem(o: dict, tensors: list[dict], geometries: list,
                layer_names: list[str]) -> str | None:
    ins = [tensors[t] for t in o["inputs"]]
    outs = [tensors[t] for t in o["outputs"]]
    kind = o["kind"]
    if kind == LAYER_KIND:
        if o["layer"] is None:
            return None
        g, name = geometries[o["layer"]], layer_names[o["layer"]]
        if o["op"] != name and o["op"].split("#")[0] != name:
            return f"op: a layer op names its layer {name!r:.60} (layer {o['layer']})"
        if ins and ins[0]["elements"] != g.C * g.H * g.W:
            return (f"inputs: tensor {o['inputs'][0]} has {ins[0]['elements']} elements per "
                    f"sample; layer {o['layer']} ({name!r:.60}) reads C*H*W = {g.C * g.H * g.W}")
        if outs and outs[0]["elements"] != g.K * g.P * g.Q:
            return (f"outputs: tensor {o['outputs'][0]} has {outs[0]['elements']} elements per "
                    f"sample; layer {o['layer']} ({name!r:.60}) writes K*P*Q = {g.K * g.P * g.Q}")
        return None
    if o["layer"] is not None:
        return "layer: only a layer op names a layer"
    expected = op_kind(o["op"])
    allowed = {expected} | ({"slice"} if expected == "reshape" else set())
    if o["op"] == "multi_head_attention_forward":
        allowed.add("attention")
    if kind not in allowed:
        return (f"kind: the function {o['op']!r:.60} is of kind {' or '.join(sorted(allowed))}, "
                f"got {kind!r}")
    if kind in ALIAS_KINDS and not _is_alias_op(o):
        return "attrs.alias: a reshape op writes an alias (a copying one is kind slice)"
    if _is_alias_op(o):
        if not ins or any(t["alias_of"] != o["inputs"][0] for t in outs):
            return "outputs: an alias op writes aliases of its first input"
        return None
    if bool(o["attrs"].get("alias")):
        return "attrs.alias: only a reshape op writes an alias"
    if not ins or not outs:
        return None
    biggest = max(t["elements"] for t in ins)
    shape = _broadcast([t["shape"] for t in ins])
    if kind in _SAME_SHAPE_KINDS and o["op"] not in _RESHAPING_FUNCS:
        for t, tid in zip(outs, o["outputs"]):   # a map of its first input: its size exactly
            if t["elements"] != ins[0]["elements"]:
                return (f"outputs: tensor {tid} has {t['elements']} elements per sample; an "
                        f"elementwise op of kind {kind} writes as many as the tensor it maps "
                        f"({ins[0]['elements']})")
    elif kind in ELEMENTWISE_KINDS and o["op"] not in _RESHAPING_FUNCS:
        for t, tid in zip(outs, o["outputs"]):
            if not (t["elements"] == biggest or tuple(t["shape"]) == shape
                    or (o["params"] and biggest <= t["elements"] <= biggest * o["params"])):
                return (f"outputs: tensor {tid} has {t['elements']} elements per sample; an "
                        f"elementwise op writes as many as its largest input ({biggest}) or "
                        f"their broadcast shape")
    elif kind == "concat":
        total = sum(t["elements"] for t in ins)
        if not total <= sum(t["elements"] for t in outs) <= total + o["params"]:
            return (f"outputs: {sum(t['elements'] for t in outs)} elements per sample; a "
                    f"concatenation writes the sum of its inputs ({total})")
    elif kind == "reduce":
        for t, tid in zip(outs, o["outputs"]):
            if t["elements"] > biggest and tuple(t["shape"]) != shape:
                return (f"outputs: tensor {tid} has {t['elements']} elements per sample; a "
                        f"reduction writes at most its largest input ({biggest})")
    elif kind == "pool" and "kernel" in o["attrs"]:
        dims = int("".join(ch for ch in o["op"] if ch.isdigit()) or "2")
        first = ins[0]["shape"]
        extent = _size(first[-dims:]) if len(first) >= dims else ins[0]["elements"]
        if o["attrs"]["kernel"] > max(extent, 1):
            return (f"attrs.kernel: a pooling window of {o['attrs']['kernel']} elements is "
                    f"larger than its input's spatial extent ({extent})")
    return None


def func_name(func) -> str:
    """The short name of a torch function or tensor method (``relu``, ``__add__``)."""
    name = getattr(func, "__name__", None)
    if not isinstance(name, str):
        name = type(func).__name__
    return name


def op_kind(name: str) -> str:
    """The between-layer op kind of the function called ``name``."""
    kind = KIND_OF_FUNC.get(name)
    if kind is None and name.endswith("_") and not name.startswith("__"):
        kind = KIND_OF_FUNC.get(name[:-1])
    return kind or "other"


@dataclass
class GraphTensor:
    """One tensor of the forward: per-sample shape and size, where it came from.

    ``producer`` is the index of the op that wrote it (None: the model input or a tensor
    the forward met without seeing its producer, ``source`` says which); ``alias_of``
    the tensor whose storage it shares (views); ``inplace_of`` the tensor whose storage
    an in-place op overwrote with it.
    """

    id: int
    shape: tuple
    elements: int
    per_sample: bool
    source: str
    producer: int | None = None
    alias_of: int | None = None
    inplace_of: int | None = None
    density: float | None = None
    has_mask: bool = False

    def to_dict(self) -> dict:
        return {"id": self.id, "shape": list(self.shape), "elements": self.elements,
                "per_sample": self.per_sample, "source": self.source, "producer": self.producer,
                "alias_of": self.alias_of, "inplace_of": self.inplace_of,
                "density": self.density, "has_mask": self.has_mask}


@dataclass
class GraphOp:
    """One call of the forward, in execution order: a traced layer or a between-layer op."""

    index: int
    kind: str
    op: str
    name: str
    inputs: list
    outputs: list
    layer: int | None = None
    params: int = 0
    inplace: bool = False
    attrs: dict = field(default_factory=dict)

    @property
    def is_layer(self) -> bool:
        return self.kind == LAYER_KIND

    @property
    def is_alias(self) -> bool:
        return self.kind in ALIAS_KINDS and bool(self.attrs.get("alias"))

    def to_dict(self) -> dict:
        return {"index": self.index, "kind": self.kind, "op": self.op, "name": self.name,
                "inputs": list(self.inputs), "outputs": list(self.outputs), "layer": self.layer,
                "params": self.params, "inplace": self.inplace, "attrs": dict(self.attrs)}


class OpGraph:
    """The recorded data flow of one forward: tensors, ops in order, the model's outputs.

    ``mask(tid, samples)`` returns a bool ``(n, elements)`` array of one tensor's
    non-zeros per sample, or None when the tensor has no mask (alias, shared tensor).
    """

    def __init__(self, tensors: list[GraphTensor], ops: list[GraphOp], outputs: list[int],
                 mask_loader: Callable[[int, int | None], np.ndarray | None],
                 num_samples: int):
        self.tensors = tensors
        self.ops = ops
        self.outputs = outputs
        self.num_samples = int(num_samples)
        self._loader = mask_loader

    def mask(self, tid: int, samples: int | None = None) -> np.ndarray | None:
        if not self.tensors[tid].has_mask:
            return None
        return self._loader(tid, samples)

    def mask_blocks(self, tid: int, samples: int | None = None, size: int = 8):
        """``(start, bool (rows, elements))``: ``mask(tid, samples)`` at most ``size`` samples
        at a time (a trace file's loader holds one block; blocks are provisional until the
        iteration ends, when the member's checksum has been checked). Nothing when the
        tensor has no mask."""
        if not self.tensors[tid].has_mask:
            return
        blocks = getattr(self._loader, "blocks", None)
        if blocks is not None:
            yield from blocks(tid, samples, size)
            return
        mask = self._loader(tid, samples)
        if mask is not None:
            for start in range(0, mask.shape[0], size):
                yield start, mask[start:start + size]

    def nonzeros(self, tid: int, samples: int | None = None) -> np.ndarray | None:
        """int64 (rows,): tensor ``tid``'s non-zeros in each of its first ``samples`` samples as
        recorded by the trace writer, or None when not recorded (an older trace, a graph in
        memory, a tensor without a mask): then count :meth:`packed_blocks`. A trace file's
        loader checks the recorded counts against the tensor's mask before their first use (in
        the pass that verifies the mask member's checksum), so they never stand in for a mask
        they disagree with."""
        counts = getattr(self._loader, "nonzeros", None)
        if counts is None or not self.tensors[tid].has_mask:
            return None
        return counts(tid, samples)

    def packed_blocks(self, tid: int, samples: int | None = None, size: int = 8):
        """``(start, uint8 (rows, ceil(elements/8)))``: :meth:`mask_blocks` as stored, each
        sample's mask ``np.packbits``-packed (big bit order; pad bits are not mask bits),
        without unpacking; None when the loader keeps no packed rows (then use
        :meth:`mask_blocks`). Nothing when the tensor has no mask."""
        packed = getattr(self._loader, "packed_blocks", None)
        if packed is None:
            return None
        if not self.tensors[tid].has_mask:
            return iter(())
        return packed(tid, samples, size)

    def storage_of(self, tid: int) -> int:
        """The tensor whose storage ``tid`` uses (follows ``alias_of``)."""
        seen = 0
        while self.tensors[tid].alias_of is not None and seen <= len(self.tensors):
            tid = self.tensors[tid].alias_of
            seen += 1
        return tid

    @property
    def between_layer_ops(self) -> list[GraphOp]:
        return [op for op in self.ops if not op.is_layer]

    def to_metadata(self) -> dict:
        return {"tensors": [t.to_dict() for t in self.tensors],
                "ops": [o.to_dict() for o in self.ops], "outputs": list(self.outputs)}


# -- recording ------------------------------------------------------------------------------

@dataclass
class _Event:
    kind: str
    op: str
    name: str
    inputs: list
    outputs: list
    layer_key: str | None = None
    params: int = 0
    inplace: bool = False
    attrs: dict = field(default_factory=dict)

    def signature(self) -> tuple:
        return (self.kind, self.op, self.name, tuple(self.inputs), tuple(self.outputs),
                self.layer_key, self.params, self.inplace)


@dataclass
class _TensorState:
    shape: tuple
    elements: int
    per_sample: bool
    source: str
    producer: int | None
    alias_of: int | None
    inplace_of: int | None
    jobs: list = field(default_factory=list)   # per batch: packing job (rows) or (nnz, total)


def _tensors_in(value) -> list:
    """Tensors in an argument (nested lists/tuples/dicts), in order."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors_in(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors_in(v)]
    return []


def _owned(method):
    """Run a tracker entry point with ``busy`` set (its own torch calls are not the model's)."""
    def run(self, *args, **kwargs):
        self.busy += 1
        try:
            return method(self, *args, **kwargs)
        finally:
            self.busy -= 1
    run.__name__, run.__doc__ = method.__name__, method.__doc__
    return run


def _pool_attrs(name: str, args: tuple, kwargs: dict) -> dict:
    """Window of a pooling op: ``kernel`` (elements per window), from its arguments."""
    if "adaptive" in name:
        return {}
    size = kwargs.get("kernel_size", args[1] if len(args) > 1 else None)
    if size is None:
        return {}
    sizes = [int(size)] if isinstance(size, int) else [int(s) for s in size]
    dims = int("".join(ch for ch in name if ch.isdigit()) or "2")
    if len(sizes) == 1:
        sizes = sizes * dims
    return {"kernel": math.prod(sizes)}


class GraphTracker:
    """Records the forward's data flow for a :class:`~accelsim.trace.capture.MaskRecorder`.

    ``recorder`` supplies ``batch``/``single`` (the running forward's samples), the
    zero rule (``_act_mask``) and the worker pool (``_submit``).
    """

    def __init__(self, recorder, static: Callable[[object], str | None],
                 module_name: Callable[[], str]):
        self.r = recorder
        self._static = static
        self._module = module_name
        self._batch = -1
        self._ids: dict[int, tuple] = {}          # id(tensor) -> (weakref, tid)
        self._events: list[_Event] = []
        self._reference: list[tuple] | None = None  # the first batch's signatures
        self._tensors: list[_TensorState] = []
        self._count = 0                            # tensors seen in this batch
        self._outputs: list[int] = []
        self._suspended = 0
        self.busy = 0                              # > 0 while the tracker itself runs torch ops
        self.active = False                        # the model's forward is running
        self._layers_seen: set[str] = set()
        self.problem: str | None = None           # why the graph cannot be kept

    # -- per batch ----------------------------------------------------------------------

    def start_batch(self) -> None:
        """Begin a forward: tensor ids restart at 0; the sequence must repeat batch 0's."""
        self._close_batch()
        self._batch += 1
        self._ids.clear()
        self._events = []
        self._count = 0
        self._layers_seen = set()

    def _close_batch(self) -> None:
        if self._batch < 0 or self.problem:
            return
        signature = [e.signature() for e in self._events]
        if self._reference is None:
            self._reference = signature
            self._first_events = list(self._events)
        elif signature != self._reference:
            where = next((i for i, (a, b) in enumerate(zip(signature, self._reference)) if a != b),
                         min(len(signature), len(self._reference)))
            self.problem = (f"the ops between layers differ between the first forward and forward "
                            f"{self._batch + 1} (from op {where} on)")
        if self._count != len(self._tensors) and not self.problem:
            self.problem = (f"forward {self._batch + 1} produced {self._count} tensors, the first "
                            f"{len(self._tensors)}")

    # -- tensors ------------------------------------------------------------------------

    def _layout(self, t) -> tuple[tuple, int, bool, int]:
        """(per-sample shape, elements per sample, per_sample, rows) of ``t``."""
        shape = tuple(int(s) for s in t.shape)
        batch = self.r.batch
        if shape and batch and shape[0] == batch:
            rest = shape[1:]
            return rest, math.prod(rest), True, batch
        if self.r.single:
            return shape, math.prod(shape), True, 1
        per = max(int(batch or 1), 1)
        return shape, -(-math.prod(shape) // per), False, 1

    def _lookup(self, t) -> int | None:
        entry = self._ids.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        return None

    def _new(self, t, source: str, producer: int | None, alias_of: int | None = None,
             inplace_of: int | None = None) -> int:
        """A new tensor id for ``t`` (its mask is taken now unless it is an alias)."""
        tid = self._count
        self._count += 1
        shape, elements, per_sample, rows = self._layout(t)
        if self._batch == 0:
            self._tensors.append(_TensorState(shape, elements, per_sample, source, producer,
                                              alias_of, inplace_of))
        elif tid >= len(self._tensors):
            self.problem = self.problem or (f"forward {self._batch + 1} produced more tensors "
                                            "than the first")
            return tid
        state = self._tensors[tid]
        if alias_of is None and not self.problem:
            state.jobs.append(self._mask_job(t, rows, per_sample and state.per_sample
                                             and shape == state.shape))
        try:
            self._ids[id(t)] = (weakref.ref(t), tid)
        except TypeError:
            pass
        return tid

    def _mask_job(self, t, rows: int, keep_rows: bool):
        detached = t.detach()
        if detached.dtype.is_complex or detached.numel() == 0:
            return (int(detached.count_nonzero()), int(detached.numel()))
        try:
            mask = self.r._act_mask(detached) if detached.dim() else detached.reshape(1) != 0
        except (RuntimeError, TypeError, ValueError):  # dtypes the zero rule does not take
            mask = detached != 0
        if not keep_rows:
            if isinstance(mask, np.ndarray):
                return (int(np.count_nonzero(mask)), int(mask.size))
            return (int(mask.count_nonzero()), int(mask.numel()))
        if isinstance(mask, np.ndarray):
            return self.r._submit(_pack_rows, mask.reshape(rows, -1))
        from accelsim.trace.maskwork import packbits_torch

        return _DeviceRows(packbits_torch(mask.reshape(rows, -1)))

    def tensor_id(self, t) -> int:
        """The id of ``t``; a tensor met for the first time is ``external``."""
        tid = self._lookup(t)
        return self._new(t, "external", None) if tid is None else tid

    def _activation_ids(self, values) -> tuple[list[int], int]:
        """Ids of the activations among ``values`` and the elements of the constants."""
        ids, params = [], 0
        for t in _tensors_in(values):
            if self._lookup(t) is None and self._static(t) is not None:
                params += int(t.numel())
            else:
                ids.append(self.tensor_id(t))
        return ids, params

    # -- events -------------------------------------------------------------------------

    def mark(self) -> int:
        return len(self._events)

    @_owned
    def source(self, values) -> None:
        """The model's inputs (root forward pre-hook); the forward starts."""
        self.active = True
        if self._suspended or self.problem:
            return
        for t in _tensors_in(values):
            if self._lookup(t) is None and self._static(t) is None:
                self._new(t, "input", None)

    @_owned
    def outputs(self, values) -> None:
        """The model's outputs (root forward hook); the forward ends."""
        self.active = False
        if self.problem:
            return
        ids = [tid for tid in (self._lookup(t) for t in _tensors_in(values)) if tid is not None]
        if self._batch == 0:
            self._outputs = ids
        elif ids != self._outputs:
            self.problem = "the model's outputs differ between forwards"

    @_owned
    def layer(self, key: str, inputs: list, output) -> None:
        """A traced layer ``key`` read ``inputs`` (its activations) and wrote ``output``."""
        if self.problem or not self.active:
            return
        if self._suspended:  # inside an opaque op: the layer's place only, once per forward
            if key.split("#")[0] not in self._layers_seen:
                self._layers_seen.add(key.split("#")[0])
                self._events.append(_Event(LAYER_KIND, key, self._module(), [], [], key))
            return
        ids, _ = self._activation_ids(inputs)
        index = len(self._events)
        outs = [self._new(t, "layer", index) for t in _tensors_in(output)]
        self._events.append(_Event(LAYER_KIND, key, self._module(), ids, outs, key))

    @_owned
    def op(self, func, args: tuple, kwargs: dict, out, kind: str | None = None) -> None:
        """A between-layer call ``func(*args, **kwargs) -> out``."""
        if self._suspended or self.problem or not self.active:
            return
        outs = _tensors_in(out)
        if not outs:
            return  # sizes, shapes, Python numbers: not tensor ops
        name = func if isinstance(func, str) else func_name(func)
        kind = kind or op_kind(name)
        ids, params = self._activation_ids((args, kwargs))
        attrs = _pool_attrs(name, args, kwargs) if kind == "pool" else {}
        index = len(self._events)
        in_objs = [t for t in _tensors_in((args, kwargs)) if self._static(t) is None]
        inplace, out_ids = False, []
        for t in outs:
            same = next((i for i, a in enumerate(in_objs) if a is t), None)
            if kind in ALIAS_KINDS and ids and t.numel() == in_objs[0].numel():
                attrs["alias"] = True
                out_ids.append(self._new(t, "op", index, alias_of=ids[0]))
            elif same is not None:
                inplace = True
                out_ids.append(self._new(t, "op", index, inplace_of=ids[same]))
            else:
                out_ids.append(self._new(t, "op", index))
        if kind in ALIAS_KINDS and not attrs.get("alias"):
            kind = "slice"  # a re-indexing that changes the element count copies
        self._events.append(_Event(kind, name, self._module(), ids, out_ids, None, params,
                                   inplace, attrs))

    def opaque_begin(self) -> None:
        """Calls until :meth:`opaque_end` form one op (attention run one sample at a time)."""
        self._suspended += 1

    def opaque_end(self, kind: str, op: str, inputs, out) -> None:
        self._suspended -= 1
        if not self._suspended:
            self.op(op, (inputs,), {}, out, kind=kind)

    # -- result ---------------------------------------------------------------------------

    def finish(self, layer_index: dict[str, int], samples: int) -> OpGraph | None:
        """The recorded graph (None, with :attr:`problem` set, when it cannot be kept)."""
        self._close_batch()
        if self.problem or self._reference is None:
            return None
        tensors, packed = [], {}
        for tid, state in enumerate(self._tensors):
            has_mask, density = False, None
            if state.alias_of is None and state.jobs:
                results = [job.result() if hasattr(job, "result") else job for job in state.jobs]
                if all(isinstance(r, np.ndarray) for r in results):
                    rows = np.concatenate(results, axis=0)
                    if rows.shape[0] == samples:
                        packed[tid] = rows
                        has_mask = True
                    nnz = int(np.bitwise_count(rows).sum(dtype=np.int64))
                    total = rows.shape[0] * state.elements
                else:
                    nnz, total = 0, 0
                    for r in results:
                        if isinstance(r, np.ndarray):
                            nnz += int(np.bitwise_count(r).sum(dtype=np.int64))
                            total += r.shape[0] * state.elements
                        else:
                            nnz, total = nnz + r[0], total + r[1]
                density = nnz / total if total else None
            tensors.append(GraphTensor(tid, state.shape, state.elements, state.per_sample,
                                       state.source, state.producer, state.alias_of,
                                       state.inplace_of, density, has_mask))
        ops = []
        for index, e in enumerate(self._first_events):
            layer = layer_index.get(e.layer_key) if e.layer_key is not None else None
            if e.layer_key is not None and layer is None:
                layer = layer_index.get(e.layer_key.split("#")[0])
            ops.append(GraphOp(index, e.kind, e.op, e.name, list(e.inputs), list(e.outputs),
                               layer, e.params, e.inplace, dict(e.attrs)))
        return OpGraph(tensors, ops, list(self._outputs), packed_loader(packed, tensors),
                       samples)


def _pack_rows(mask: np.ndarray) -> np.ndarray:
    return np.packbits(np.ascontiguousarray(mask), axis=1)


class _DeviceRows:
    def __init__(self, packed):
        self._packed = packed

    def result(self) -> np.ndarray:
        return self._packed.cpu().numpy()


def packed_loader(packed: dict[int, np.ndarray], tensors: list[GraphTensor]):
    """A mask loader over in-memory packed rows ``{tid: uint8 (N, ceil(elements/8))}``."""
    from accelsim.trace.bits import unpack_rows

    def load(tid: int, samples: int | None) -> np.ndarray | None:
        rows = packed.get(tid)
        if rows is None:
            return None
        n = rows.shape[0] if samples is None else min(int(samples), rows.shape[0])
        return unpack_rows(rows[:n], (n, tensors[tid].elements))

    load.packed = packed  # the writer stores these rows
    return load
