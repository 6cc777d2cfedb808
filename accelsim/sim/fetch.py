"""Activation-driven weight fetch: a zero input skips fetching its weights from DRAM.

Decoding one token multiplies a weight matrix by one activation vector, so its time is
the weight traffic. With ``sparsity.skip_weight_fetch`` a linear layer fetches only the
weights of its non-zero inputs, at the granularity the DRAM allows: the weight matrix
(K outputs x C inputs, ``element_bits`` each) lies in DRAM in ``dram.weight_layout``

- ``input_major``: input channel ``c``'s K weights are contiguous (the transposed
  matrix, as TEAL/Deja Vu store it for sparse matrix-vector kernels): a zero input
  skips a contiguous run of ``K * element_bits`` bits;
- ``output_major``: PyTorch's (K, C) row-major order: a zero input skips one element in
  every output row, so only runs of zero inputs long enough to cover whole bursts save
  anything;

and DRAM moves whole bursts of ``dram.burst_bytes``: a burst is fetched when any needed
weight lies in it. The bytes of a fetched burst that lie beyond the end of the matrix
are not counted (the last burst is partial), so with every input non-zero the fetch is
exactly the dense matrix. An input channel is needed when it is non-zero for any token
(row) of the layer's input and, with a batch, for any sample of the batch: the batch
shares one weight pass.

Only ``linear`` layers with one group skip: convolutions reuse every weight across
pixels, and a ``matmul``'s second operand (the KV cache in attention) is streamed whole.
Everything here is a pure function of masks, geometry, layout and burst size.
"""
from __future__ import annotations

import numpy as np

from accelsim.errors import AccelsimError

LAYOUTS = ("input_major", "output_major")


def _runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of True in a 1-D bool array (ends exclusive)."""
    padded = np.concatenate(([False], active.astype(bool), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2], edges[1::2]


def _interval_bytes(starts: np.ndarray, ends: np.ndarray, burst_bits: int,
                    total_bits: int) -> float:
    """Bytes of the bursts that the sorted, disjoint bit intervals [start, end) touch.

    A touched burst counts its bits inside [0, total_bits) (only the last one can be short).
    """
    if starts.size == 0:
        return 0.0
    first = starts // burst_bits
    last = (ends - 1) // burst_bits
    count = int((last - first + 1).sum())
    count -= int(np.count_nonzero(first[1:] == last[:-1]))  # a burst shared by neighbours
    bits = count * burst_bits
    final = (total_bits - 1) // burst_bits
    if int(last[-1]) == final:                               # the matrix's last, short burst
        bits -= (final + 1) * burst_bits - total_bits
    return bits / 8.0


def fetched_weight_bytes(needed: np.ndarray, outputs: int, layout: str, element_bits: int,
                         burst_bytes: int) -> float:
    """DRAM bytes fetched for a (``outputs`` x C) weight matrix when inputs ``needed`` (C,) are used.

    ``needed[c]`` False: input ``c`` is zero for every token, its weights are not needed.
    """
    needed = np.asarray(needed, dtype=bool).reshape(-1)
    c, k = int(needed.size), int(outputs)
    if layout not in LAYOUTS:
        raise AccelsimError(f"weight layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
    if element_bits < 1 or burst_bytes < 1 or k < 0:
        raise AccelsimError(f"fetched_weight_bytes: element_bits ({element_bits}) and burst_bytes "
                            f"({burst_bytes}) must be positive, outputs ({k}) non-negative")
    total = k * c * element_bits
    if total == 0:
        return 0.0
    burst = 8 * int(burst_bytes)
    run_start, run_end = _runs(needed)
    if layout == "input_major":     # address of (k, c): (c * K + k) * bits
        starts = run_start * (k * element_bits)
        ends = run_end * (k * element_bits)
    else:                           # address of (k, c): (k * C + c) * bits
        rows = (np.arange(k, dtype=np.int64) * (c * element_bits))[:, None]
        starts = (rows + run_start[None, :] * element_bits).reshape(-1)
        ends = (rows + run_end[None, :] * element_bits).reshape(-1)
        if run_start.size and run_start[0] == 0 and run_end[-1] == c and k > 1:
            starts, ends = _merge_touching(starts, ends)
    return _interval_bytes(starts.astype(np.int64), ends.astype(np.int64), burst, total)


def _merge_touching(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge intervals where one ends exactly where the next starts (row wrap-around)."""
    keep = np.concatenate(([True], starts[1:] != ends[:-1]))
    idx = np.flatnonzero(keep)
    new_ends = np.concatenate((ends[idx[1:] - 1], ends[-1:]))
    return starts[idx], new_ends


def needed_inputs(act: np.ndarray) -> np.ndarray:
    """Input channels (C,) that are non-zero for some token: ``act`` is (C, H, W) or (n, C, H, W)."""
    act = np.asarray(act, dtype=bool)
    if act.ndim == 3:
        return act.reshape(act.shape[0], -1).any(axis=1)
    if act.ndim == 4:
        return act.transpose(1, 0, 2, 3).reshape(act.shape[1], -1).any(axis=1)
    raise AccelsimError(f"needed_inputs: expected a (C, H, W) or (n, C, H, W) mask, got "
                        f"shape {act.shape}")


def skips(geometry) -> bool:
    """Whether a layer of this geometry can skip weight fetches (a one-group linear layer)."""
    return geometry.kind == "linear" and geometry.groups == 1 and not geometry.per_sample_weights


def fetch_fraction(act: np.ndarray, geometry, layout: str, element_bits: int,
                   burst_bytes: int) -> float:
    """Share of the layer's dense weight bytes fetched for input mask ``act`` (1.0: no skip)."""
    if not skips(geometry):
        return 1.0
    need = needed_inputs(act)
    if need.size != geometry.C:
        raise AccelsimError(f"fetch_fraction: the mask has {need.size} input channels, the "
                            f"geometry {geometry.C}")
    dense = geometry.K * geometry.C * element_bits / 8.0
    if dense == 0:
        return 1.0
    return fetched_weight_bytes(need, geometry.K, layout, element_bits, burst_bytes) / dense


def hw_fetch_fraction(layer, act: np.ndarray, hw) -> float:
    """:func:`fetch_fraction` with the hardware's layout, weight precision and burst size."""
    return fetch_fraction(act, layer.geometry, hw.dram.weight_layout, hw.precision.weight_bits,
                          hw.dram.burst_bytes)
