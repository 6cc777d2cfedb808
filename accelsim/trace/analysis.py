"""Exact per-layer figures of a trace: effective MACs and compressed sizes.

``effective_macs`` counts, over the real convolution windows, the multiply-accumulates
whose activation is non-zero, whose weight is non-zero, and whose operands are both
non-zero (padding positions are zero activations; the weight-only count ignores
activations, so it is the weight density times the dense MACs). It convolves the activation mask
with, per group, the count of non-zero weights over the group's filters at each
(c, r, s): ``sum_k W[k,c,r,s] * A[c, p+r, q+s] = sum_(c,r,s) (sum_k W[k,c,r,s]) A[...]``.

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
    import torch
    import torch.nn.functional as F

    g = geometry
    n = int(act_mask.shape[0])
    w = np.asarray(weight_mask, dtype=bool).reshape(g.groups, g.k_per_group, g.c_per_group, g.R, g.S)
    w_count = w.sum(axis=1, dtype=np.int64)            # (groups, C/g, R, S)
    k_count = np.full_like(w_count, g.k_per_group)     # all weights non-zero
    # float32 sums are exact below 2**24; each output sums at most C/g*R*S*K/g ones.
    exact32 = g.c_per_group * g.R * g.S * g.k_per_group < (1 << 24)
    dtype = torch.float32 if exact32 else torch.float64

    def conv_total(acts: np.ndarray, counts: np.ndarray) -> int:
        out = F.conv2d(torch.from_numpy(acts).to(dtype), torch.from_numpy(counts).to(dtype),
                       stride=(g.stride_h, g.stride_w), padding=(g.pad_h, g.pad_w),
                       dilation=(g.dil_h, g.dil_w), groups=g.groups)
        return int(out.to(torch.float64).sum().round().item())

    both = act_nz = 0
    block = max(1, _SAMPLE_BLOCK_ELEMENTS // max(1, g.C * g.H * g.W))
    for start in range(0, n, block):
        chunk = np.ascontiguousarray(act_mask[start:start + block])
        both += conv_total(chunk, w_count)
        act_nz += conv_total(chunk, k_count)
    weight_nz = n * g.P * g.Q * int(w_count.sum())  # every weight meets every output pixel
    return {"dense": n * g.macs_per_sample, "act_nonzero": act_nz,
            "weight_nonzero": weight_nz, "both_nonzero": both}


@dataclass
class LayerSummary:
    """One row of ``accelsim trace info``; byte figures are per sample for activations."""

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
    weights = layer.weight_mask()
    acts = layer.act_mask(samples)
    n = acts.shape[0]
    macs = effective_macs(g, weights, acts)
    dense = max(macs["dense"], 1)
    act_bits = storage_bits(acts, layer.act_bits, run_bits)
    weight_bits = storage_bits(weights.reshape(1, -1), layer.weight_bits, run_bits)
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
