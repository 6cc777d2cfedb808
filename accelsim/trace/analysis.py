"""Exact per-layer figures of a trace: effective MACs and compressed sizes.

``effective_macs`` counts, over the real convolution windows, the multiply-accumulates
whose activation is non-zero, whose weight is non-zero, and whose operands are both
non-zero (padding positions are zero activations; the weight-only count ignores
activations, so it is the weight density times the dense MACs). Per group, the count of
non-zero weights over the group's filters at each (c, r, s) meets the activations under
(r, s) in every window: ``sum_(n,k,p,q,c,r,s) W[k,c,r,s] A[n,c,p+r,q+s] =
sum_(c,r,s) (sum_k W[k,c,r,s]) (sum_(n,p,q) A[n,c,p+r,q+s])``, NumPy only (no PyTorch).

``summarize_layer`` adds storage sizes: dense, bitmap (1 bit per element plus the
non-zero values) and zero-run-length (``run_bits`` run field per entry plus the
value, overflow entries counted), for the activations (per sample, averaged over the
traced samples) and the weights.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from accelsim.trace.bits import storage_bits
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.layer import LayerTrace

DEFAULT_RUN_BITS = 4
_SAMPLE_BLOCK_ELEMENTS = 1 << 23  # activation elements per conv call (bounds memory)


def effective_macs(geometry: LayerGeometry, weight_mask: np.ndarray,
                   act_mask: np.ndarray) -> dict[str, int]:
    """MAC counts summed over the samples of ``act_mask`` (n, C, H, W).

    Returns ``dense`` (n * macs_per_sample), ``act_nonzero``, ``weight_nonzero`` and
    ``both_nonzero``.
    """
    g = geometry
    n = int(act_mask.shape[0])
    w = np.asarray(weight_mask, dtype=bool).reshape(g.groups, g.k_per_group, g.c_per_group, g.R, g.S)
    w_count = w.sum(axis=1, dtype=np.int64).reshape(g.C, g.R, g.S)  # input channel c = group*C/g + ci
    # The totals are sums over every window, so only the activation counts summed over the
    # samples matter: per (c, r, s), the non-zero activations that (r, s) meets over all
    # outputs is the sum of one strided slice of the padded count map (plain NumPy, exact).
    a_sum = np.zeros((g.C, g.H + 2 * g.pad_h, g.W + 2 * g.pad_w), dtype=np.int64)
    acts = np.asarray(act_mask).reshape(n, g.C, g.H, g.W)
    block = max(1, _SAMPLE_BLOCK_ELEMENTS // max(1, g.C * g.H * g.W))
    for start in range(0, n, block):
        a_sum[:, g.pad_h:g.pad_h + g.H, g.pad_w:g.pad_w + g.W] += \
            acts[start:start + block].sum(axis=0, dtype=np.int64)
    met = np.zeros((g.C, g.R, g.S), dtype=np.int64)
    for r in range(g.R):
        for s in range(g.S):
            h0, w0 = r * g.dil_h, s * g.dil_w
            window = a_sum[:, h0:h0 + g.stride_h * (g.P - 1) + 1:g.stride_h,
                           w0:w0 + g.stride_w * (g.Q - 1) + 1:g.stride_w]
            met[:, r, s] = window.sum(axis=(1, 2))
    both = int((w_count * met).sum())
    act_nz = int(g.k_per_group * met.sum())
    weight_nz = n * g.P * g.Q * int(w_count.sum())  # every weight meets every output pixel
    return {"dense": n * g.macs_per_sample, "act_nonzero": act_nz,
            "weight_nonzero": weight_nz, "both_nonzero": both}


@dataclass
class LayerSummary:
    """One row of ``accelsim trace info``; byte figures are per sample for activations
    (and for a matmul's second operand, which is an activation too)."""

    index: int
    name: str
    kind: str
    geometry: dict
    act_bits: int
    weight_bits: int
    samples: int
    dense_macs_per_sample: int
    act_density: float
    weight_density: float
    output_density: float | None
    frac_macs_act_nonzero: float
    frac_macs_weight_nonzero: float
    frac_macs_both_nonzero: float
    act_bytes: dict
    weight_bytes: dict

    def to_dict(self) -> dict:
        return asdict(self)


def summarize_layer(layer: LayerTrace, samples: int | None = None,
                    run_bits: int = DEFAULT_RUN_BITS) -> LayerSummary:
    """Exact figures of one layer from its masks (the first ``samples`` samples)."""
    g = layer.geometry
    acts = layer.act_mask(samples)
    n = acts.shape[0]
    if g.per_sample_weights:  # a matmul: the second operand is per sample (bytes per sample)
        weights = layer.weight_mask(n)
        per_sample = [effective_macs(g, weights[i], acts[i:i + 1]) for i in range(n)]
        macs = {k: sum(m[k] for m in per_sample) for k in per_sample[0]}
        weight_bits = {k: v / n for k, v in storage_bits(
            weights.reshape(n, -1), layer.weight_bits, run_bits).items()}
    else:
        weights = layer.weight_mask()
        macs = effective_macs(g, weights, acts)
        weight_bits = storage_bits(weights.reshape(1, -1), layer.weight_bits, run_bits)
    dense = max(macs["dense"], 1)
    act_bits = storage_bits(acts, layer.act_bits, run_bits)
    return LayerSummary(
        index=layer.index, name=layer.name, kind=g.kind, geometry=g.to_dict(),
        act_bits=layer.act_bits, weight_bits=layer.weight_bits, samples=n,
        dense_macs_per_sample=g.macs_per_sample,
        act_density=float(acts.mean()), weight_density=float(weights.mean()),
        output_density=layer.output_density,
        frac_macs_act_nonzero=macs["act_nonzero"] / dense,
        frac_macs_weight_nonzero=macs["weight_nonzero"] / dense,
        frac_macs_both_nonzero=macs["both_nonzero"] / dense,
        act_bytes={k: v / 8 / n for k, v in act_bits.items()},
        weight_bytes={k: v / 8 for k, v in weight_bits.items()},
    )


def untraced_work(entries: list[dict], samples: int) -> dict:
    """The untraced compute a trace lists, per sample: ``entries`` plus totals."""
    per = max(int(samples), 1)
    rows = [dict(e, macs_per_sample=e["macs"] / per) for e in entries]
    return {"entries": rows, "macs_per_sample": sum(r["macs_per_sample"] for r in rows)}


def network_totals(rows: list[LayerSummary]) -> dict:
    """Network totals: MACs per sample, MAC-weighted fractions, summed bytes."""
    dense = sum(r.dense_macs_per_sample for r in rows)
    weight = max(dense, 1)

    def weighted(attr: str) -> float:
        return sum(getattr(r, attr) * r.dense_macs_per_sample for r in rows) / weight

    def total(attr: str) -> dict:
        keys = ("dense", "bitmap", "rle")
        return {k: sum(getattr(r, attr)[k] for r in rows) for k in keys}

    return {
        "layers": len(rows),
        "dense_macs_per_sample": dense,
        "effective_macs_per_sample": weighted("frac_macs_both_nonzero") * dense,
        "frac_macs_act_nonzero": weighted("frac_macs_act_nonzero"),
        "frac_macs_weight_nonzero": weighted("frac_macs_weight_nonzero"),
        "frac_macs_both_nonzero": weighted("frac_macs_both_nonzero"),
        "act_bytes": total("act_bytes"),
        "weight_bytes": total("weight_bytes"),
    }


def between_layer_ops(graph, act_bits: int) -> dict | None:
    """The ops between traced layers, per kind, per sample (None: the trace does not say).

    Per kind: ``count``, ``elements`` (output elements), ``dense_bytes`` (outputs at
    ``act_bits`` bits) and ``bitmap_bytes`` (outputs as bitmaps, from their recorded
    densities), ``density`` (element-weighted). Aliases (views) count but store nothing.
    """
    if graph is None:
        return None
    kinds: dict[str, dict] = {}
    for op in graph.between_layer_ops:
        row = kinds.setdefault(op.kind, {"kind": op.kind, "count": 0, "elements": 0,
                                         "dense_bytes": 0.0, "bitmap_bytes": 0.0, "_nnz": 0.0})
        row["count"] += 1
        if op.is_alias:
            continue
        for tid in op.outputs:
            t = graph.tensors[tid]
            density = 1.0 if t.density is None else t.density
            row["elements"] += t.elements
            row["dense_bytes"] += t.elements * act_bits / 8
            row["bitmap_bytes"] += (t.elements + 7) // 8 + density * t.elements * act_bits / 8
            row["_nnz"] += density * t.elements
    rows = []
    for row in kinds.values():
        nnz = row.pop("_nnz")
        row["density"] = nnz / row["elements"] if row["elements"] else None
        rows.append(row)
    return {"ops": sum(r["count"] for r in rows), "tensors": len(graph.tensors), "kinds": rows,
            "dense_bytes": sum(r["dense_bytes"] for r in rows),
            "bitmap_bytes": sum(r["bitmap_bytes"] for r in rows)}
