"""Fold schedule of the ``fast`` fidelity: per-PE busy cycles -> synchronised fold times.

The work matrix ``work[g, x, y]`` holds the surviving operand pairs of the PE that
computes element ``(x, y)`` of conv group ``g`` (``x`` maps to array rows, ``y`` to
columns). Folds run in SCALE-Sim's order: for each group, column folds outer, row
folds inner. PE ``(i, j)`` of fold ``(fr, fc)`` is busy ``ceil(work / lanes)`` cycles.

Synchronisation groups (``SYNC_*``) are the whole array, a PE row, a PE column or a
single PE. Group ``s`` finishes fold ``f`` at::

    finish[s][f] = max(finish[s][f-1], G[f-depth]) + overhead + max_{PE in s} busy

with ``G[f] = max_s finish[s][f]`` (``G[f] = 0`` for ``f < 0``): groups drift apart by
at most ``depth`` folds; ``depth = 1`` is lock-step.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from accelsim.numba_config import JIT

SYNC_ARRAY = 0
SYNC_ROW = 1
SYNC_COLUMN = 2
SYNC_DECOUPLED = 3
#: ``pe_array.sync`` names -> codes
SYNC_CODES = {"array": SYNC_ARRAY, "row": SYNC_ROW, "column": SYNC_COLUMN, "decoupled": SYNC_DECOUPLED}

# indices of the statistics vector returned by fold_schedule
ST_CYCLES = 0            # compute cycles (ideal memory)
ST_FOLDS = 1             # folds (all conv groups)
ST_SUM_MAX_BUSY = 2      # sum over folds of the busiest PE's busy cycles
ST_SUM_MEAN_BUSY = 3     # sum over folds of the mean busy cycles of mapped PEs
ST_BUSY_PE_CYCLES = 4    # sum of busy cycles over PEs and folds
ST_ACTIVE_PE_CYCLES = 5  # busy + fill/drain cycles of PEs that have work in a fold
ST_GATED_PE_CYCLES = 6   # idle PE-cycles spent power-gated
ST_WAKEUPS = 7           # power-gated PE wake-ups
ST_MAPPED_PE_FOLDS = 8   # (PE, fold) pairs with a mapped element
ST_FILL_DRAIN = 9        # folds * overhead
ST_ISSUED = 10           # sum of the work matrix (issued operand pairs, before the lanes)
N_STATS = 11


@njit(**JIT)
def sync_group_count(sync, rows, cols):
    """Number of synchronisation groups of an array."""
    if sync == SYNC_ARRAY:
        return 1
    if sync == SYNC_ROW:
        return rows
    if sync == SYNC_COLUMN:
        return cols
    return rows * cols


@njit(**JIT)
def sync_group_of(sync, i, j, cols):
    """Synchronisation group of PE ``(i, j)``."""
    if sync == SYNC_ARRAY:
        return 0
    if sync == SYNC_ROW:
        return i
    if sync == SYNC_COLUMN:
        return j
    return i * cols + j


#: The plain schedule's float sums (the mean busy cycles: one division per fold) are kept in
#: their written order and rounding: fast-math would turn a fold count that is the same in
#: every fold into a multiplication by its reciprocal (off by an ulp).
STRICT = {**JIT, "fastmath": False}


@njit(**JIT)
def _fold_pass(blk, fin, gate_level, overhead, decoupled):
    """One fold of :func:`_fold_schedule_plain` over ``blk`` (busy cycles of its mapped PEs,
    flat): ``(sum, max, PEs with work, latest finish)``; decoupled: advances each PE's finish
    time ``fin`` (same layout) in place."""
    fold_max = 0
    fold_sum = 0
    n_busy = 0
    fold_end = 0
    if decoupled:
        for t in range(blk.shape[0]):
            b = np.int64(blk[t])
            fold_sum += b
            fold_max = max(fold_max, b)
            n_busy += b > 0
            f = max(fin[t], gate_level) + overhead + b
            fin[t] = f
            fold_end = max(fold_end, f)
    else:
        for t in range(blk.shape[0]):
            b = np.int64(blk[t])
            fold_sum += b
            fold_max = max(fold_max, b)
            n_busy += b > 0
    return fold_sum, fold_max, n_busy, fold_end


# state of the single-fold recurrence (:func:`plain_step`): integers and float sums
_I_FOLD, _I_TOTAL, _I_IDLE, _I_ISSUED = 0, 1, 2, 3
_F_SUM_MAX, _F_SUM_MEAN, _F_BUSY, _F_MAPPED, _F_ACTIVE = 0, 1, 2, 3, 4


@njit(**STRICT)
def plain_step(blk, scratch, fin, history, ist, fst, lanes, overhead, decoupled, depth,
               has_idle, mean_pes):
    """One fold of a layer whose folds all map the same PEs (:func:`_fold_schedule_plain`'s
    single-fold recurrence, also run by the fused block kernels of :mod:`accelsim.map.sparse`):
    ``blk`` the fold's issued pairs (flat, one per mapped PE), ``scratch`` a buffer as long,
    ``fin`` the PEs' finish times (decoupled), ``history`` the last ``depth`` fold ends,
    ``ist``/``fst`` the integer and float state (``_I_*``, ``_F_*``). ``mean_pes``: the PEs
    the fold's mean busy cycles is over (those inside the loop bounds; 0: none, no term)."""
    n = blk.shape[0]
    fold = ist[_I_FOLD]
    gate_level = 0
    if fold >= depth:
        gate_level = history[fold % depth]
    if lanes != 1:
        for t in range(n):
            w = np.int64(blk[t])
            ist[_I_ISSUED] += w
            scratch[t] = (w + lanes - 1) // lanes
        fold_sum, fold_max, n_busy, fold_end = _fold_pass(scratch, fin, gate_level, overhead,
                                                          decoupled)
    else:
        fold_sum, fold_max, n_busy, fold_end = _fold_pass(blk, fin, gate_level, overhead,
                                                          decoupled)
    if decoupled:
        if has_idle:
            ist[_I_IDLE] = max(ist[_I_IDLE], gate_level) + overhead
            fold_end = max(fold_end, ist[_I_IDLE])
    else:
        fold_end = max(ist[_I_TOTAL], gate_level) + overhead + fold_max
        ist[_I_TOTAL] = fold_end
    fst[_F_SUM_MAX] += fold_max
    if mean_pes > 0:
        fst[_F_SUM_MEAN] += fold_sum / mean_pes
    fst[_F_BUSY] += fold_sum
    fst[_F_MAPPED] += n
    history[fold % depth] = fold_end
    fst[_F_ACTIVE] += overhead * n_busy + fold_sum
    ist[_I_FOLD] = fold + 1


@njit(**STRICT)
def plain_stats(ist, fst, fin, decoupled, has_idle, overhead, lanes):
    """The statistics vector of a finished :func:`plain_step` recurrence."""
    total = ist[_I_TOTAL]
    if decoupled:
        total = ist[_I_IDLE] if has_idle and ist[_I_FOLD] > 0 else 0
        for t in range(fin.shape[0]):
            total = max(total, fin[t])
    stats = np.zeros(N_STATS, dtype=np.float64)
    stats[ST_SUM_MAX_BUSY] = fst[_F_SUM_MAX]
    stats[ST_SUM_MEAN_BUSY] = fst[_F_SUM_MEAN]
    stats[ST_BUSY_PE_CYCLES] = fst[_F_BUSY]
    stats[ST_MAPPED_PE_FOLDS] = fst[_F_MAPPED]
    stats[ST_ACTIVE_PE_CYCLES] = fst[_F_ACTIVE]
    stats[ST_CYCLES] = total
    stats[ST_FOLDS] = ist[_I_FOLD]
    stats[ST_FILL_DRAIN] = ist[_I_FOLD] * overhead
    # lanes 1: busy cycles == pairs (the float sum, as before); else the exact integer sum
    stats[ST_ISSUED] = fst[_F_BUSY] if lanes == 1 else ist[_I_ISSUED]
    return stats


@njit(**STRICT)
def _fold_schedule_plain(work, rows, cols, lanes, overhead, sync, depth, mean_pes):
    """:func:`fold_schedule` without power gating for the whole-array and per-PE sync
    groups: one pass per fold over its work entries, updating the group finish times in
    the same pass (no per-fold busy vector). Same statistics, same order of float sums.
    ``work`` holds issued pairs; a PE's busy cycles ``ceil(work / lanes)`` are divided fold
    by fold into a buffer of one fold (no copy of the whole array).

    A layer of one fold per conv group (``Sr <= rows``, ``Sc <= cols``: every fold maps the
    same PEs) runs one flat loop per fold over its ``Sr * Sc`` contiguous entries
    (:func:`plain_step`), the per-PE finish times laid out the same way; the PEs it never
    maps all share one finish time (the same recurrence with no work from the same start),
    carried as one number. ``mean_pes``: per fold, the PEs its mean busy cycles is over
    (empty: every mapped PE)."""
    n_groups_conv, sr, sc = work.shape
    row_folds = (sr + rows - 1) // rows
    col_folds = (sc + cols - 1) // cols
    decoupled = sync == SYNC_DECOUPLED
    if row_folds == 1 and col_folds == 1:
        n = sr * sc
        flat = np.ascontiguousarray(work).reshape(n_groups_conv, n)
        fin = np.zeros(n, dtype=np.int64)
        scratch = np.empty(n, dtype=np.int64)
        history = np.zeros(depth, dtype=np.int64)
        ist = np.zeros(4, dtype=np.int64)
        fst = np.zeros(5, dtype=np.float64)
        has_idle = n < rows * cols
        for g in range(n_groups_conv):
            plain_step(flat[g], scratch, fin, history, ist, fst, lanes, overhead, decoupled,
                       depth, has_idle, mean_pes[g] if mean_pes.shape[0] else n)
        return plain_stats(ist, fst, fin, decoupled, has_idle, overhead, lanes)
    stats = np.zeros(N_STATS, dtype=np.float64)
    history = np.zeros(depth, dtype=np.int64)
    issued = 0
    sum_max = 0.0
    sum_mean = 0.0
    busy_cycles = 0.0
    mapped_folds = 0.0
    active = 0.0
    total = 0
    fold = 0
    finish = np.zeros(rows * cols, dtype=np.int64)   # per PE (decoupled) or finish[0]
    buf = np.empty(rows * cols, dtype=np.int64)
    for g in range(n_groups_conv):
        for fc in range(col_folds):
            cu = min(cols, sc - fc * cols)
            y0 = fc * cols
            for fr in range(row_folds):
                ru = min(rows, sr - fr * rows)
                x0 = fr * rows
                gate_level = 0
                if fold >= depth:
                    gate_level = history[fold % depth]
                fold_max = 0
                fold_sum = 0
                n_busy = 0
                fold_end = 0
                for i in range(ru):
                    row = work[g, x0 + i, y0:y0 + cu]
                    blk = buf[i * cols:i * cols + cu]
                    if lanes != 1:
                        for j in range(cu):
                            w = np.int64(row[j])
                            issued += w
                            blk[j] = (w + lanes - 1) // lanes
                    else:
                        for j in range(cu):
                            blk[j] = row[j]
                    r_sum, r_max, r_busy, r_end = _fold_pass(
                        blk, finish[i * cols:i * cols + cu], gate_level, overhead, decoupled)
                    fold_sum += r_sum
                    fold_max = max(fold_max, r_max)
                    n_busy += r_busy
                    fold_end = max(fold_end, r_end)
                if decoupled:   # PEs without an element this fold
                    for i in range(rows):
                        for j in range(cu if i < ru else 0, cols):
                            f = max(finish[i * cols + j], gate_level) + overhead
                            finish[i * cols + j] = f
                            fold_end = max(fold_end, f)
                else:
                    fold_end = max(finish[0], gate_level) + overhead + fold_max
                    finish[0] = fold_end
                mapped = ru * cu
                sum_max += fold_max
                pes = mean_pes[fold] if mean_pes.shape[0] else mapped
                if pes > 0:
                    sum_mean += fold_sum / pes
                busy_cycles += fold_sum
                mapped_folds += mapped
                history[fold % depth] = fold_end
                active += overhead * n_busy + fold_sum
                fold += 1
    n_sync = rows * cols if decoupled else 1
    for s in range(n_sync):
        if finish[s] > total:
            total = finish[s]
    stats[ST_SUM_MAX_BUSY] = sum_max
    stats[ST_SUM_MEAN_BUSY] = sum_mean
    stats[ST_BUSY_PE_CYCLES] = busy_cycles
    stats[ST_MAPPED_PE_FOLDS] = mapped_folds
    stats[ST_ACTIVE_PE_CYCLES] = active
    stats[ST_CYCLES] = total
    stats[ST_FOLDS] = fold
    stats[ST_FILL_DRAIN] = fold * overhead
    # lanes 1: busy cycles == pairs (the float sum, as before); else the exact integer sum
    stats[ST_ISSUED] = busy_cycles if lanes == 1 else issued
    return stats


def as_work(work: np.ndarray) -> np.ndarray:
    """``work`` as the kernels take it: int64, C-contiguous, writable (a copy only when it is
    not). One array type means one compiled specialisation of each kernel: every layout or
    dtype Numba sees is compiled anew (seconds each on a clean clone)."""
    return np.require(work, dtype=np.int64, requirements=("C", "W", "A"))


@njit(**JIT)
def fold_schedule(work, rows, cols, lanes, overhead, sync, depth, gate, gate_threshold):
    """Run the fold recurrence over ``work`` (G, Sr, Sc); returns the statistics vector.

    ``gate`` enables power gating: an idle interval of a PE (no work in whole folds,
    or waiting before / after its busy cycles) of at least ``gate_threshold`` cycles
    is spent power-gated and costs one wake-up. Without gating the per-PE idle
    bookkeeping is skipped (it only feeds the gating figures): each fold reads its
    mapped PEs once. The mean busy cycles of a fold is over its mapped PEs.
    """
    return fold_schedule_over(work, rows, cols, lanes, overhead, sync, depth, gate,
                              gate_threshold, np.empty(0, dtype=np.int64))


@njit(**JIT)
def fold_schedule_over(work, rows, cols, lanes, overhead, sync, depth, gate, gate_threshold,
                       mean_pes):
    """:func:`fold_schedule` with each fold's mean busy cycles over ``mean_pes[fold]`` PEs
    (those inside the loop bounds of a mapping with remainders; a fold with none adds no
    term; empty: the fold's mapped PEs)."""
    if not gate and (sync == SYNC_DECOUPLED or sync == SYNC_ARRAY):
        return _fold_schedule_plain(work, rows, cols, lanes, overhead, sync, depth, mean_pes)
    n_groups_conv, sr, sc = work.shape
    n_pes = rows * cols
    n_sync = sync_group_count(sync, rows, cols)
    row_folds = (sr + rows - 1) // rows
    col_folds = (sc + cols - 1) // cols
    stats = np.zeros(N_STATS, dtype=np.float64)
    finish = np.zeros(n_sync, dtype=np.int64)
    start = np.zeros(n_sync, dtype=np.int64)
    old = np.zeros(n_sync, dtype=np.int64)
    gbusy = np.zeros(n_sync, dtype=np.int64)
    history = np.zeros(depth, dtype=np.int64)
    busy = np.zeros(n_pes, dtype=np.int64)
    run = np.zeros(n_pes, dtype=np.int64)
    pe_group = np.empty(n_pes, dtype=np.int64)
    issued = 0
    sum_max = 0
    sum_mean = 0.0
    busy_cycles = 0
    mapped_folds = 0
    active = 0
    gated = 0
    wakeups = 0
    for i in range(rows):
        for j in range(cols):
            pe_group[i * cols + j] = sync_group_of(sync, i, j, cols)
    fold = 0
    for g in range(n_groups_conv):
        for fc in range(col_folds):
            cu = min(cols, sc - fc * cols)
            y0 = fc * cols
            for fr in range(row_folds):
                ru = min(rows, sr - fr * rows)
                x0 = fr * rows
                gbusy[:] = 0
                if gate:
                    busy[:] = 0
                fold_max = 0
                fold_sum = 0
                n_busy = 0
                for i in range(ru):
                    row_max = 0
                    for j in range(cu):
                        b = np.int64(work[g, x0 + i, y0 + j])
                        issued += b
                        if lanes != 1:
                            b = (b + lanes - 1) // lanes
                        p = i * cols + j
                        if gate:
                            busy[p] = b
                        if sync == SYNC_COLUMN:
                            gbusy[j] = max(gbusy[j], b)
                        elif sync == SYNC_DECOUPLED:
                            gbusy[p] = b
                        fold_sum += b
                        row_max = max(row_max, b)
                        n_busy += b > 0
                    if sync == SYNC_ROW:
                        gbusy[i] = row_max
                    fold_max = max(fold_max, row_max)
                if sync == SYNC_ARRAY:
                    gbusy[0] = fold_max
                mapped = ru * cu
                sum_max += fold_max
                pes = mean_pes[fold] if mean_pes.shape[0] else mapped
                if pes > 0:
                    sum_mean += fold_sum / pes
                busy_cycles += fold_sum
                mapped_folds += mapped
                gate_level = 0
                if fold >= depth:
                    gate_level = history[fold % depth]
                fold_end = 0
                for s in range(n_sync):
                    old[s] = finish[s]
                    st = finish[s]
                    if gate_level > st:
                        st = gate_level
                    start[s] = st
                    finish[s] = st + overhead + gbusy[s]
                    if finish[s] > fold_end:
                        fold_end = finish[s]
                history[fold % depth] = fold_end
                if gate:
                    for p in range(n_pes):
                        s = pe_group[p]
                        b = busy[p]
                        if b > 0:
                            idle = run[p] + start[s] - old[s]
                            if idle > 0 and idle >= gate_threshold:   # closed: gated once
                                gated += idle
                                wakeups += 1
                            run[p] = gbusy[s] - b
                            active += overhead + b
                        else:
                            run[p] += finish[s] - old[s]
                else:
                    active += overhead * n_busy + fold_sum
                fold += 1
    total = 0
    for s in range(n_sync):
        if finish[s] > total:
            total = finish[s]
    if gate:
        for p in range(n_pes):
            idle = run[p] + total - finish[pe_group[p]]
            if idle > 0 and idle >= gate_threshold:
                gated += idle
                wakeups += 1
    # integer sums kept in registers (exact), the mean's float sum in fold order, as before
    stats[ST_SUM_MAX_BUSY] = sum_max
    stats[ST_SUM_MEAN_BUSY] = sum_mean
    stats[ST_BUSY_PE_CYCLES] = busy_cycles
    stats[ST_MAPPED_PE_FOLDS] = mapped_folds
    stats[ST_ACTIVE_PE_CYCLES] = active
    stats[ST_GATED_PE_CYCLES] = gated
    stats[ST_WAKEUPS] = wakeups
    stats[ST_CYCLES] = total
    stats[ST_FOLDS] = fold
    stats[ST_FILL_DRAIN] = fold * overhead
    stats[ST_ISSUED] = issued
    return stats


def uniform_fold_stats(steps: int, ys: int, xs: int, work: int, rows: int, cols: int,
                       lanes: int, overhead: int, sync: int, depth: int, gate: bool,
                       gate_threshold: int) -> np.ndarray:
    """:func:`fold_schedule` of ``np.full((steps, ys, xs), work)`` (every PE of ``ys x xs``
    the same work in each of ``steps`` single-fold groups, ``ys <= rows``, ``xs <= cols``),
    without building the array.

    Without power gating every mapped PE runs back to back, so each fold takes ``overhead +
    ceil(work / lanes)`` for any sync group and depth (unmapped groups only follow the lower
    bound): a closed form, the same integers. With gating the recurrence runs once per
    distinct argument set (cached): the idle runs of unmapped PEs depend on the layer's end.
    """
    if not (0 < ys <= rows and 0 < xs <= cols and steps >= 0 and work >= 0):
        raise ValueError(f"uniform_fold_stats: {steps} steps of {ys}x{xs} PEs on a {rows}x{cols} "
                         f"array with work {work}")
    if gate:
        return _uniform_gated(steps, ys, xs, work, rows, cols, lanes, overhead, sync, depth,
                              gate_threshold).copy()
    busy = -(-work // lanes)
    mapped = ys * xs
    stats = np.zeros(N_STATS, dtype=np.float64)
    stats[ST_CYCLES] = steps * (overhead + busy)
    stats[ST_FOLDS] = steps
    stats[ST_SUM_MAX_BUSY] = steps * busy
    stats[ST_SUM_MEAN_BUSY] = steps * busy
    stats[ST_BUSY_PE_CYCLES] = steps * mapped * busy
    stats[ST_ACTIVE_PE_CYCLES] = steps * ((overhead * mapped if busy > 0 else 0) + mapped * busy)
    stats[ST_MAPPED_PE_FOLDS] = steps * mapped
    stats[ST_FILL_DRAIN] = steps * overhead
    stats[ST_ISSUED] = steps * mapped * work
    return stats


@functools.lru_cache(maxsize=128)
def _uniform_gated(steps, ys, xs, work, rows, cols, lanes, overhead, sync, depth, threshold):
    full = np.full((steps, ys, xs), work, dtype=np.int64)
    return fold_schedule(full, rows, cols, lanes, overhead, sync, depth, True, threshold)
