"""Slow, obvious plain-Python references of the simulator's kernels and counts.

Each function restates the documented rule directly (explicit loops, explicit
timelines, explicit encoders) so the tests can compare the Numba kernels and the
vectorised code against it on small inputs.
"""
from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------------------
# work counts


def effectual_pairs(act: np.ndarray, weight: np.ndarray, geometry) -> int:
    """MACs of one sample with both operands non-zero, by direct convolution loops."""
    g = geometry
    cg, kg = g.C // g.groups, g.K // g.groups
    total = 0
    for k in range(g.K):
        grp = k // kg
        for p in range(g.P):
            for q in range(g.Q):
                for c in range(cg):
                    for u in range(g.R):
                        for v in range(g.S):
                            y = p * g.stride_h - g.pad_h + u * g.dil_h
                            x = q * g.stride_w - g.pad_w + v * g.dil_w
                            if 0 <= y < g.H and 0 <= x < g.W and weight[k, c, u, v] \
                                    and act[grp * cg + c, y, x]:
                                total += 1
    return total


# ---------------------------------------------------------------------------------------
# fold schedule (fast fidelity)


def group_of(sync: int, i: int, j: int, cols: int) -> int:
    return (0, i, j, i * cols + j)[sync]


def folds_of(work: np.ndarray, rows: int, cols: int, lanes: int) -> list[dict]:
    """Folds in order; each maps PE (i, j) -> busy cycles for mapped PEs."""
    groups, sr, sc = work.shape
    folds = []
    for g in range(groups):
        for fc in range(math.ceil(sc / cols)):
            for fr in range(math.ceil(sr / rows)):
                busy = {}
                for i in range(rows):
                    for j in range(cols):
                        x, y = fr * rows + i, fc * cols + j
                        if x < sr and y < sc:
                            busy[(i, j)] = math.ceil(int(work[g, x, y]) / lanes)
                folds.append(busy)
    return folds


def schedule(work, rows, cols, lanes, overhead, sync, depth, gate=False, threshold=1) -> dict:
    """The fold recurrence with a full finish[s][f] table and explicit PE timelines."""
    folds = folds_of(work, rows, cols, lanes)
    n_sync = (1, rows, cols, rows * cols)[sync]
    finish = [[0] * len(folds) for _ in range(n_sync)]
    start = [[0] * len(folds) for _ in range(n_sync)]
    fold_end = []
    for f, busy in enumerate(folds):
        gate_level = fold_end[f - depth] if f - depth >= 0 else 0
        gbusy = [0] * n_sync
        for (i, j), b in busy.items():
            s = group_of(sync, i, j, cols)
            gbusy[s] = max(gbusy[s], b)
        for s in range(n_sync):
            prev = finish[s][f - 1] if f > 0 else 0
            start[s][f] = max(prev, gate_level)
            finish[s][f] = start[s][f] + overhead + gbusy[s]
        fold_end.append(max(finish[s][f] for s in range(n_sync)))
    total = max((finish[s][-1] for s in range(n_sync)), default=0) if folds else 0
    # per-PE active intervals -> idle intervals -> power gating
    gated = wakeups = active = 0
    for i in range(rows):
        for j in range(cols):
            s = group_of(sync, i, j, cols)
            intervals = []
            for f, busy in enumerate(folds):
                b = busy.get((i, j), 0)
                if b > 0:
                    intervals.append((start[s][f], start[s][f] + overhead + b))
                    active += overhead + b
            t = 0
            idle = []
            for a, e in intervals:
                if a > t:
                    idle.append(a - t)
                t = e
            if total > t:
                idle.append(total - t)
            for length in idle:
                if gate and length >= threshold:
                    gated += length
                    wakeups += 1
    sum_max = sum(max(b.values()) for b in folds)
    sum_mean = sum(sum(b.values()) / len(b) for b in folds)
    return {"cycles": total, "folds": len(folds), "sum_max_busy": sum_max,
            "sum_mean_busy": sum_mean, "busy_pe_cycles": sum(sum(b.values()) for b in folds),
            "active_pe_cycles": active, "gated_pe_cycles": gated, "wakeups": wakeups,
            "mapped_pe_folds": sum(len(b) for b in folds), "fill_drain": len(folds) * overhead}


# ---------------------------------------------------------------------------------------
# storage formats: explicit encoders


def encode_run_length(mask: np.ndarray, run_bits: int) -> list[tuple[int, bool]]:
    """Entries (run, is_value) of the run-length code of the C-order flattening."""
    longest = 2 ** run_bits - 1
    entries = []
    zeros = 0
    for value in np.asarray(mask, dtype=bool).reshape(-1):
        if not value:
            zeros += 1
            continue
        while zeros > longest:
            entries.append((longest, False))  # overflow: longest run then an explicit zero
            zeros -= longest + 1
        entries.append((zeros, True))
        zeros = 0
    return entries


def decode_run_length(entries, length: int) -> np.ndarray:
    out = []
    for run, is_value in entries:
        out.extend([False] * run)
        out.append(bool(is_value))
    out.extend([False] * (length - len(out)))
    return np.array(out, dtype=bool)


def encoded_bits(mask: np.ndarray, fmt: str, value_bits: int, run_bits: int = 4,
                 index_bits: int = 16) -> int:
    """Size of an explicit encoding of ``mask``'s tensor in ``fmt``."""
    mask = np.asarray(mask, dtype=bool)
    flat = mask.reshape(-1)
    values = [v for v in flat if v]
    if fmt == "dense":
        return len(flat) * value_bits
    if fmt == "bitmap":
        bitmap = [1 if v else 0 for v in flat]
        return len(bitmap) + len(values) * value_bits
    if fmt == "run_length":
        return len(encode_run_length(mask, run_bits)) * (run_bits + value_bits)
    if fmt == "csr":
        matrix = mask.reshape(mask.shape[0], -1)
        row_ptr = [0]
        col_idx = []
        for row in matrix:
            col_idx.extend(int(c) for c in np.flatnonzero(row))
            row_ptr.append(len(col_idx))
        return len(row_ptr) * index_bits + len(col_idx) * (index_bits + value_bits)
    if fmt == "coo":
        coords = [idx for idx in np.ndindex(*mask.shape) if mask[idx]]
        return sum(len(c) * index_bits + value_bits for c in coords)
    raise ValueError(fmt)
