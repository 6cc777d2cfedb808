"""The ``cycle`` fidelity: step the array, its operand queues and the global-buffer port.

One sample of one layer, all conv groups. Each cycle:

1. synchronisation groups change phase (fixpoint, so zero-length phases take no time):
   ``WAIT`` -> ``FILL`` when the group may start its next fold (its previous fold is
   done and every group has finished fold ``f - depth``) -> ``COMPUTE`` after ``fill``
   cycles -> ``WRITE`` when every PE of the group has consumed its pairs -> ``DRAIN``
   once the fold's outputs fit in the group's output buffer (holding one fold; it
   stalls the group while the previous fold's outputs are still being written) ->
   ``WAIT`` (fold complete) after ``drain`` cycles;
2. the global-buffer port has ``bw`` bits this cycle (``bw <= 0``: unbounded);
   pending output writes are paid first;
3. the port delivers operand steps in program order (fold by fold, stream step by
   stream step; a stationary-operand load precedes each WS/IS fold). A step costs
   the bits of the operand elements and partial sums it moves and puts one pair in
   the queue of every PE whose pair survives skipping. A step larger than what is
   left this cycle is paid over several cycles; a paid step is delivered only if
   every receiving queue has room (``qdepth``; ``<= 0``: unbounded) - a full queue
   blocks the in-order port (head-of-line);
4. every PE of a group in ``COMPUTE`` takes up to ``lanes`` pairs of its current fold
   from its queue (pairs delivered this cycle included).

The layer ends when every group has finished its last fold, the port has moved every
step (steps without surviving pairs still move their operands and partial sums; the
port moves them in no time only if they cost nothing or it is unbounded) and the
output buffers are written. Every cycle moves at most ``bw`` bits, so the result is never below
``max(compute cycles, bits / bw)`` (the ``fast`` estimate).

With unbounded bandwidth and queues every pair is in its queue before the fold
starts, so each group's fold takes ``fill + max busy + drain`` cycles, exactly the
recurrence of :func:`accelsim.sim.kernels.schedule.fold_schedule`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from accelsim.numba_config import JIT
from accelsim.sim.kernels.schedule import sync_group_count, sync_group_of

DF_OS = 0
DF_WS = 1
DF_IS = 2

PH_WAIT = 0
PH_FILL = 1
PH_COMPUTE = 2
PH_WRITE = 3
PH_DRAIN = 4
PH_DONE = 5

# indices of the statistics vector returned by cycle_simulate
CY_CYCLES = 0           # cycles until the last group finishes its last fold
CY_STARVED = 1          # PE-cycles with pairs left in the fold but none in the queue
CY_WRITE_STALL = 2      # group-cycles waiting for the output buffer ("cannot drain")
CY_BLOCKED = 3          # cycles the port had credit but the next step's queues were full
CY_GLB_BITS = 4         # bits moved through the port (operands, partial sums, outputs)
CY_PAIRS = 5            # pairs delivered (= consumed)
N_CYCLE_STATS = 6


@njit(**JIT)
def _group_box(sync, s, rows, cols):
    """PE rows [i0, i1) and columns [j0, j1) of synchronisation group ``s``."""
    if sync == 0:
        return 0, rows, 0, cols
    if sync == 1:
        return s, s + 1, 0, cols
    if sync == 2:
        return 0, rows, s, s + 1
    return s // cols, s // cols + 1, s % cols, s % cols + 1


@njit(**JIT)
def _survives(a_code, w_code, skip_a, skip_w):
    if skip_a and a_code != 1:
        return False
    if skip_w and w_code != 1:
        return False
    return True


@njit(**JIT)
def _step_cost(acodes, wcodes, work, dataflow, gi, g, x0, y0, ru, cu, fr, t, skip_a, skip_w,
               a_cost, w_cost, psum_bits):
    """Bits the port moves for stream step ``t`` (``t < 0``: the stationary load) of a fold.

    Leader / follower: a skipped operand is read whole; the other only where a
    surviving pair uses the element (:mod:`accelsim.sim.traffic`).
    """
    follow_a = skip_w and not skip_a
    follow_w = skip_a and not skip_w
    cost = 0.0
    if t < 0:  # stationary operand (WS: weights, IS: activations), used by its PE's pairs
        for i in range(ru):
            for j in range(cu):
                if dataflow == DF_WS:
                    if not follow_w or work[gi, x0 + i, y0 + j] > 0:
                        cost += w_cost[wcodes[g, y0 + j, x0 + i]]
                elif not follow_a or work[gi, x0 + i, y0 + j] > 0:
                    cost += a_cost[acodes[g, y0 + j, x0 + i]]
        return cost
    if dataflow == DF_OS:
        a_sum = 0.0
        any_a = False
        for i in range(ru):
            code = acodes[g, x0 + i, t]
            a_sum += a_cost[code]
            any_a = any_a or code == 1
        w_sum = 0.0
        any_w = False
        for j in range(cu):
            code = wcodes[g, y0 + j, t]
            w_sum += w_cost[code]
            any_w = any_w or code == 1
        if follow_a and not any_w:
            a_sum = 0.0
        if follow_w and not any_a:
            w_sum = 0.0
        return a_sum + w_sum
    for i in range(ru):
        x = x0 + i
        if dataflow == DF_WS:  # streamed activation of row i; the row's weights are stationary
            needed = not follow_a
            for j in range(cu):
                if needed:
                    break
                needed = wcodes[g, y0 + j, x] == 1
            if needed:
                cost += a_cost[acodes[g, t, x]]
        else:  # IS: streamed weight of row i; the row's activations are stationary
            needed = not follow_w
            for j in range(cu):
                if needed:
                    break
                needed = acodes[g, y0 + j, x] == 1
            if needed:
                cost += w_cost[wcodes[g, t, x]]
    return cost + cu * psum_bits * (2.0 if fr > 0 else 1.0)


@njit(**JIT)
def _scan_pairs(acodes, wcodes, dataflow, g, x0, y0, ru, cu, t, skip_a, skip_w, cols, qdepth,
                occ, got_row, commit):
    """Visit the surviving pairs of stream step ``t`` row by row.

    ``commit``: add each pair to its PE's queue (``got_row``, ``occ``) and return the
    number delivered; otherwise return -1 if a receiving queue is full, else 0.
    """
    delivered = 0
    for i in range(ru):
        x = x0 + i
        if dataflow == DF_OS:
            row_code = acodes[g, x, t]
            if skip_a and row_code != 1:
                continue
        elif dataflow == DF_WS:
            row_code = acodes[g, t, x]
            if skip_a and row_code != 1:
                continue
        else:
            row_code = wcodes[g, t, x]
            if skip_w and row_code != 1:
                continue
        base = i * cols
        for j in range(cu):
            y = y0 + j
            if dataflow == DF_OS:
                if skip_w and wcodes[g, y, t] != 1:
                    continue
            elif dataflow == DF_WS:
                if skip_w and wcodes[g, y, x] != 1:
                    continue
            else:
                if skip_a and acodes[g, y, x] != 1:
                    continue
            p = base + j
            if commit:
                got_row[p] += 1
                occ[p] += 1
                delivered += 1
            elif occ[p] >= qdepth:
                return -1
    return delivered


@njit(**JIT)
def cycle_simulate(acodes, wcodes, work, dataflow, chunk, skip_a, skip_w, rows, cols, lanes,
                   fill, drain, sync, depth, qdepth, bw, a_cost, w_cost, psum_bits, out_bits):
    """Simulate one sample cycle by cycle; returns the statistics vector.

    ``acodes`` (G, M, Kred) im2col codes (0 zero, 1 non-zero, 2 padding);
    ``wcodes`` (G, N, Kred) weight codes (0/1); ``work`` (G * chunks, Sr, Sc) surviving
    pairs per PE element (as for ``fold_schedule``); ``chunk`` stream steps per chunk
    (the stream is split into ``ceil(T / chunk)`` chunks, each with its own folds);
    ``a_cost[code]`` / ``w_cost[code]`` bits the port moves per element; ``psum_bits``
    per partial sum moved (WS/IS, each stream step, read back too after the first row
    fold); ``out_bits`` per output written at the end of an OS fold.
    """
    m_dim, kred = acodes.shape[1], acodes.shape[2]
    n_dim = wcodes.shape[1]
    sr = work.shape[1]
    sc = work.shape[2]
    if dataflow == DF_OS:
        t_len = kred
    elif dataflow == DF_WS:
        t_len = m_dim
    else:
        t_len = n_dim
    first_step = 0 if dataflow == DF_OS else -1
    if chunk <= 0 or chunk > t_len:
        chunk = t_len
    n_chunks = (t_len + chunk - 1) // chunk
    row_folds = (sr + rows - 1) // rows
    col_folds = (sc + cols - 1) // cols
    per_unit = col_folds * row_folds
    n_folds = work.shape[0] * per_unit
    n_pes = rows * cols
    n_sync = sync_group_count(sync, rows, cols)
    unbounded_bw = bw <= 0.0
    unbounded_q = qdepth <= 0

    stats = np.zeros(N_CYCLE_STATS, dtype=np.float64)
    if n_folds == 0:
        return stats
    got = np.zeros((n_folds, n_pes), dtype=np.int32)
    need = np.zeros(n_pes, dtype=np.int64)      # pairs of the PE's current fold
    cons = np.zeros(n_pes, dtype=np.int64)      # consumed of them
    occ = np.zeros(n_pes, dtype=np.int64)       # queue occupancy
    pe_group = np.empty(n_pes, dtype=np.int64)
    for i in range(rows):
        for j in range(cols):
            pe_group[i * cols + j] = sync_group_of(sync, i, j, cols)
    phase = np.zeros(n_sync, dtype=np.int64)
    ready = np.zeros(n_sync, dtype=np.int64)    # cycle a FILL / DRAIN ends
    since = np.zeros(n_sync, dtype=np.int64)    # cycle WRITE began
    gfold = np.zeros(n_sync, dtype=np.int64)
    completed = np.zeros(n_sync, dtype=np.int64)
    remaining = np.zeros(n_sync, dtype=np.int64)
    wbuf = np.zeros(n_sync, dtype=np.float64)
    box = np.zeros((n_sync, 4), dtype=np.int64)  # i0, i1, j0, j1 of the group
    cur = np.zeros((n_sync, 5), dtype=np.int64)  # work index, x0, y0, ru, cu of its fold
    for s in range(n_sync):
        i0, i1, j0, j1 = _group_box(sync, s, rows, cols)
        box[s, 0] = i0
        box[s, 1] = i1
        box[s, 2] = j0
        box[s, 3] = j1
    min_done = 0
    at_min = n_sync
    n_done = 0

    d_fold = 0
    d_step = first_step
    paid = 0.0
    head_known = False
    head_cost = 0.0
    cycle = 0
    idle_cycles = 0
    while True:
        # ---- 1. phase changes (to a fixpoint: zero-length phases take no time) -----
        changed = True
        moved = False
        while changed:
            changed = False
            for s in range(n_sync):
                while True:
                    ph = phase[s]
                    if ph == PH_WAIT:
                        f = gfold[s]
                        if f >= n_folds:
                            phase[s] = PH_DONE
                            n_done += 1
                            moved = True
                            break
                        if min_done < f - depth + 1:
                            break
                        gi = f // per_unit
                        fc = (f // row_folds) % col_folds
                        fr = f % row_folds
                        x0 = fr * rows
                        y0 = fc * cols
                        ru = min(rows, sr - x0)
                        cu = min(cols, sc - y0)
                        cur[s, 0] = gi
                        cur[s, 1] = x0
                        cur[s, 2] = y0
                        cur[s, 3] = ru
                        cur[s, 4] = cu
                        rem = 0
                        for i in range(box[s, 0], box[s, 1]):
                            for j in range(box[s, 2], box[s, 3]):
                                p = i * cols + j
                                cons[p] = 0
                                if i < ru and j < cu:
                                    need[p] = work[gi, x0 + i, y0 + j]
                                    rem += need[p]
                                else:
                                    need[p] = 0
                        remaining[s] = rem
                        phase[s] = PH_FILL
                        ready[s] = cycle + fill
                        moved = True
                    elif ph == PH_FILL:
                        if cycle < ready[s]:
                            break
                        phase[s] = PH_COMPUTE
                    elif ph == PH_COMPUTE:
                        if remaining[s] > 0:
                            break
                        phase[s] = PH_WRITE
                        since[s] = cycle
                        moved = True
                    elif ph == PH_WRITE:
                        if wbuf[s] > 0.0:
                            break
                        stats[CY_WRITE_STALL] += cycle - since[s]
                        if dataflow == DF_OS:
                            ru = cur[s, 3]
                            cu = cur[s, 4]
                            outs = (max(0, min(box[s, 1], ru) - box[s, 0])
                                    * max(0, min(box[s, 3], cu) - box[s, 2]))
                            stats[CY_GLB_BITS] += outs * out_bits
                            if not unbounded_bw:
                                wbuf[s] = outs * out_bits
                        phase[s] = PH_DRAIN
                        ready[s] = cycle + drain
                        moved = True
                    elif ph == PH_DRAIN:
                        if cycle < ready[s]:
                            break
                        if completed[s] == min_done:
                            at_min -= 1
                        completed[s] += 1
                        gfold[s] += 1
                        phase[s] = PH_WAIT
                        moved = True
                        if at_min == 0:
                            min_done += 1
                            at_min = 0
                            for s2 in range(n_sync):
                                if completed[s2] == min_done:
                                    at_min += 1
                            changed = True
                    else:
                        break
        if n_done == n_sync:
            pending = False
            for s in range(n_sync):
                if wbuf[s] > 0.0:
                    pending = True
            if not pending:
                # every pair is consumed, so the steps left carry none: those the port moves
                # for free (an unbounded port, or nothing stored) take no time
                while d_fold < n_folds:
                    gi = d_fold // per_unit
                    t0 = (gi % n_chunks) * chunk
                    fr = d_fold % row_folds
                    x0 = fr * rows
                    y0 = ((d_fold // row_folds) % col_folds) * cols
                    t = t0 + d_step if d_step >= 0 else -1
                    cost = _step_cost(acodes, wcodes, work, dataflow, gi, gi // n_chunks, x0, y0,
                                      min(rows, sr - x0), min(cols, sc - y0), fr, t, skip_a,
                                      skip_w, a_cost, w_cost, psum_bits)
                    if cost - paid > 0.0 and not unbounded_bw:
                        break
                    stats[CY_GLB_BITS] += cost
                    paid = 0.0
                    head_known = False
                    d_step += 1
                    if d_step >= min(chunk, t_len - t0):
                        d_step = first_step
                        d_fold += 1
                if d_fold >= n_folds:
                    break

        progress = moved
        # ---- 2. port credit and output writes -----------------------------------------
        credit = bw
        if not unbounded_bw:
            for s in range(n_sync):
                if wbuf[s] > 0.0 and credit > 0.0:
                    pay = min(wbuf[s], credit)
                    wbuf[s] -= pay
                    credit -= pay
                    progress = True

        # ---- 3. operand delivery, in program order -------------------------------
        while d_fold < n_folds:
            gi = d_fold // per_unit
            g = gi // n_chunks
            t0 = (gi % n_chunks) * chunk
            fc = (d_fold // row_folds) % col_folds
            fr = d_fold % row_folds
            x0 = fr * rows
            y0 = fc * cols
            ru = min(rows, sr - x0)
            cu = min(cols, sc - y0)
            t = t0 + d_step if d_step >= 0 else -1
            if not head_known:
                head_cost = _step_cost(acodes, wcodes, work, dataflow, gi, g, x0, y0, ru, cu, fr,
                                       t, skip_a, skip_w, a_cost, w_cost, psum_bits)
                head_known = True
            cost = head_cost
            if not unbounded_bw and cost - paid > credit:
                paid += credit
                credit = 0.0
                if paid > 0.0:
                    progress = True
                break
            if t >= 0 and not unbounded_q:
                if _scan_pairs(acodes, wcodes, dataflow, g, x0, y0, ru, cu, t, skip_a, skip_w,
                               cols, qdepth, occ, got[d_fold], False) < 0:
                    stats[CY_BLOCKED] += 1
                    break
            if not unbounded_bw:
                credit -= cost - paid
                paid = 0.0
            if t >= 0:
                stats[CY_PAIRS] += _scan_pairs(acodes, wcodes, dataflow, g, x0, y0, ru, cu, t,
                                               skip_a, skip_w, cols, qdepth, occ, got[d_fold],
                                               True)
            stats[CY_GLB_BITS] += cost
            progress = True
            head_known = False
            d_step += 1
            if d_step >= min(chunk, t_len - t0):
                d_step = first_step
                d_fold += 1

        # ---- 4. PEs consume --------------------------------------------------------
        timers = False
        computing = False
        for s in range(n_sync):
            ph = phase[s]
            if ph == PH_FILL or ph == PH_DRAIN:
                timers = True
            elif ph == PH_COMPUTE and remaining[s] > 0:
                computing = True
        if computing:
            for p in range(n_pes):
                if cons[p] < need[p]:
                    s = pe_group[p]
                    if phase[s] == PH_COMPUTE:
                        avail = got[gfold[s], p] - cons[p]
                        if avail > 0:
                            take = min(lanes, avail)
                            cons[p] += take
                            occ[p] -= take
                            remaining[s] -= take
                            progress = True
                        else:
                            stats[CY_STARVED] += 1
        # ---- 5. next cycle (jump over cycles in which only timers run) ------------------
        cycle += 1
        if progress:
            idle_cycles = 0
        elif timers:
            if d_fold >= n_folds:  # nothing but fill/drain timers can happen until the next ends
                nxt = -1
                for s in range(n_sync):
                    if phase[s] == PH_FILL or phase[s] == PH_DRAIN:
                        if nxt < 0 or ready[s] < nxt:
                            nxt = ready[s]
                if nxt > cycle:
                    cycle = nxt
        else:
            idle_cycles += 1
            if idle_cycles > 4:
                raise RuntimeError("cycle_simulate: no progress (internal error)")
    stats[CY_CYCLES] = cycle
    return stats
