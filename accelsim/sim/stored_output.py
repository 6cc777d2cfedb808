"""The density of what a layer writes: its output after the activation that follows it.

Accelerators apply the activation function (ReLU) in the output path, before the output is
coded and stored (Eyeriss v1 run-length codes post-ReLU maps on their way to DRAM), so the
stored output has the activation's zeros, not the raw layer output's. With the trace's op graph
the layer's output is followed through the ops it alone feeds that the output path can apply
(activations, inference-mode normalisation, views); the density of the last activation's
result in that chain is what is written. Without a graph, the next layer's input stands in
when it has exactly as many elements as this layer's output (only element-wise ops and views
between them); otherwise the raw output's density is kept.
"""
from __future__ import annotations

import numpy as np

#: Ops an output path applies on the way to storage (the chain stops at anything else).
_OUTPUT_PATH_KINDS = ("activation", "norm")


def stored_output_densities(layers: list, graph=None, samples: int | None = None) -> list:
    """Per layer (in ``layers`` order): the stored output density, or None (the raw output's)."""
    if graph is not None and getattr(graph, "ops", None):
        return [_from_graph(graph, layer.index, samples) for layer in layers]
    out: list = [None] * len(layers)
    for i in range(len(layers) - 1):
        g, nxt = layers[i].geometry, layers[i + 1].geometry
        if g.per_sample_weights or g.K * g.P * g.Q != nxt.C * nxt.H * nxt.W:
            continue
        out[i] = _input_density(layers[i + 1], samples)
    return out


def _input_density(layer, samples: int | None) -> float:
    """Mean density of a layer's input over its first ``samples`` samples (recorded per-sample
    densities when the trace has them, else its masks, memoised per layer)."""
    stats = layer.stats if isinstance(layer.stats, dict) else {}
    per_sample = stats.get("act_density_per_sample")
    if per_sample is not None and len(per_sample):
        used = np.asarray(per_sample[:samples] if samples else per_sample, dtype=np.float64)
        return float(used.mean())
    from accelsim.sim.memo import memoised

    acts = memoised(layer, ("act_mask", samples), lambda: layer.act_mask(samples))
    return float(np.asarray(acts, dtype=bool).mean()) if np.size(acts) else 0.0


def _from_graph(graph, layer_index: int, samples: int | None) -> float | None:
    readers: dict[int, list] = {}
    start = None
    for op in graph.ops:
        for tid in op.inputs:
            readers.setdefault(tid, []).append(op)
        if op.is_layer and op.layer == layer_index and op.outputs:
            start = op.outputs[0]
    if start is None:
        return None
    tid, written, steps = start, None, 0
    while steps <= len(graph.ops):
        users = readers.get(tid, [])
        if len(users) != 1 or len(users[0].outputs) != 1:
            break
        op = users[0]
        if not (op.is_alias or op.kind in _OUTPUT_PATH_KINDS):
            break
        tid = op.outputs[0]
        if op.kind == "activation":
            written = tid
        steps += 1
    return None if written is None else _density(graph, written, samples)


def _density(graph, tid: int, samples: int | None) -> float | None:
    tensor = graph.tensors[tid]
    counts = graph.nonzeros(tid, samples)
    if counts is not None and len(counts) and tensor.elements:
        return float(np.mean(counts)) / float(tensor.elements)
    return None if tensor.density is None else float(tensor.density)
