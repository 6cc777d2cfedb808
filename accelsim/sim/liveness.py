"""Runtime memory from tensor lifetimes: what is live after every op of the network.

From a captured graph (:class:`~accelsim.trace.graph.OpGraph`: traced layers and the ops
between them, in execution order, with the tensors each reads and writes):

- a tensor's **storage** is its own unless it is an alias (a view), which uses its
  source's; sizes are the stored bits per sample in the design's formats from the real
  masks (:mod:`accelsim.sim.graph_sizes`);
- a storage is **live** at step ``i`` when it was written at or before ``i`` (the network
  input and tensors with no recorded producer from their first use, the input from step
  0) and is read at ``i`` or later, through itself or any alias; the model's outputs stay
  live to the last step. A residual branch's tensor therefore stays live from the op
  that wrote it to the add that reads it;
- an **in-place** op (``relu_``) writes its output over its input: at that step the
  overwritten input does not count beside the output;
- **roles** at step ``i``: ``inputs`` (read by op ``i``), ``outputs`` (written by it),
  ``kept-alive`` (live, not touched by op ``i``), ``weights`` (a traced layer's weights
  while it runs: ``weights="current"``; every layer's at every step: ``"resident"``;
  none: ``"none"``), stored in ``storage.weights`` at ``precision.weight_bits`` bits.

:func:`liveness` returns the per-step timeline and the peak; sizes are per sample
(one inference), the peak is the largest over the traced samples.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accelsim.errors import TraceError
from accelsim.sim.graph_sizes import tensor_bits
from accelsim.sim.storage import tensor_bits as storage_bits

ROLES = ("inputs", "weights", "outputs", "kept-alive")
WEIGHT_MODES = ("current", "resident", "none")


@dataclass
class LiveTensor:
    """One live storage at one step: its id (``layer:I`` for weights), role and bytes."""

    id: int | str
    role: str
    bytes: float          # mean over the samples
    bytes_max: float      # largest over the samples


@dataclass
class Step:
    """The live set while op ``index`` runs."""

    index: int
    name: str
    kind: str
    live_bytes: float     # mean over the samples
    live_bytes_max: float
    tensors: list = field(default_factory=list)   # LiveTensor

    def by_role(self) -> dict:
        """Mean bytes per role."""
        out = {role: 0.0 for role in ROLES}
        for t in self.tensors:
            out[t.role] += t.bytes
        return out


@dataclass
class Liveness:
    """Timeline (one :class:`Step` per op) and the peak live footprint."""

    steps: list
    per_sample: np.ndarray     # float64 (steps, n): live bytes per sample
    peak_bytes: float          # the largest live footprint of any sample at any step
    peak_step: int
    peak_bytes_mean: float     # mean over the samples of each sample's peak
    weights: str
    level: str

    def to_dict(self) -> dict:
        return {"peak_bytes": self.peak_bytes, "peak_step": self.peak_step,
                "peak_bytes_mean": self.peak_bytes_mean, "weights": self.weights,
                "level": self.level,
                "steps": [{"index": s.index, "name": s.name, "kind": s.kind,
                           "live_bytes": s.live_bytes, "live_bytes_max": s.live_bytes_max,
                           "by_role": s.by_role(),
                           "tensors": [vars(t).copy() for t in s.tensors]} for s in self.steps]}


def lifetimes(graph) -> dict[int, tuple[int, int]]:
    """``{storage id: (first step, last step)}`` of every storage the graph uses."""
    last = len(graph.ops) - 1
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    for tensor in graph.tensors:
        s = graph.storage_of(tensor.id)
        if tensor.alias_of is None:
            if tensor.producer is not None:
                start[s] = tensor.producer
            elif tensor.source == "input":
                start[s] = 0
    for op in graph.ops:
        for t in list(op.inputs) + list(op.outputs):
            s = graph.storage_of(t)
            start.setdefault(s, op.index)       # no recorded producer: from its first use
            end[s] = max(end.get(s, op.index), op.index)
    for t in graph.outputs:
        s = graph.storage_of(t)
        start.setdefault(s, last)
        end[s] = last
    return {s: (start[s], end.get(s, start[s])) for s in start}


def _weight_bytes(layers, hw) -> dict[int, float]:
    """Stored bytes of each traced layer's (constant) weights."""
    fmt = hw.storage.weights.on_chip
    out = {}
    for layer in layers:
        if layer.geometry.per_sample_weights:  # a matmul's second operand is an activation
            continue
        bits = storage_bits(np.asarray(layer.weight_mask(), dtype=bool), fmt,
                            hw.precision.weight_bits)
        out[layer.index] = bits / 8.0
    return out


def liveness(graph, hw, layers=None, samples: int | None = None, weights: str = "current",
             level: str = "on_chip") -> Liveness:
    """The live set at every op and the peak live footprint (bytes per sample).

    ``graph``: a trace's ``graph`` (None raises: the trace does not record the ops
    between layers); ``layers``: the trace's layers (``Trace`` or ``LayerTrace`` list), for
    the weights (None: weights left out); ``level``: sizes in the on-chip or the DRAM
    formats.
    """
    if graph is None:
        raise TraceError("the trace does not record the ops between layers (captured before "
                         "accelsim recorded them, or statistical), so tensor lifetimes are "
                         "unknown; re-capture it with `accelsim trace capture`")
    if weights not in WEIGHT_MODES:
        raise ValueError(f"weights: expected one of {WEIGHT_MODES}, got {weights!r}")
    if not graph.ops:
        raise TraceError("the trace's graph records no ops")
    bits = tensor_bits(graph, hw, samples, level)
    n = bits.shape[1]
    w_bytes = _weight_bytes(layers, hw) if (layers is not None and weights != "none") else {}
    spans = lifetimes(graph)
    steps, per_sample = [], np.zeros((len(graph.ops), n))
    for op in graph.ops:
        i = op.index
        reads = {graph.storage_of(t) for t in op.inputs}
        writes = {graph.storage_of(t) for t in op.outputs}
        replaced = {graph.storage_of(graph.tensors[t].inplace_of) for t in op.outputs
                    if graph.tensors[t].inplace_of is not None}
        live = []
        for s, (first, last) in spans.items():
            if not first <= i <= last or (s in replaced and last == i):
                continue
            role = "outputs" if s in writes else "inputs" if s in reads else "kept-alive"
            b = bits[s] / 8.0
            live.append((s, role, b))
        if weights == "resident":
            live += [(f"layer:{k}", "weights", np.full(n, v)) for k, v in w_bytes.items()]
        elif op.is_layer and op.layer in w_bytes:
            live.append((f"layer:{op.layer}", "weights", np.full(n, w_bytes[op.layer])))
        total = np.sum([b for _, _, b in live], axis=0) if live else np.zeros(n)
        per_sample[i] = total
        steps.append(Step(i, op.name if not op.is_layer else op.op, op.kind,
                          float(total.mean()), float(total.max()),
                          [LiveTensor(s, role, float(b.mean()), float(b.max()))
                           for s, role, b in sorted(live, key=lambda x: (ROLES.index(x[1]),
                                                                          str(x[0])))]))
    flat = int(np.argmax(per_sample.max(axis=1)))
    return Liveness(steps, per_sample, float(per_sample.max()), flat,
                    float(per_sample.max(axis=0).mean()), weights, level)
