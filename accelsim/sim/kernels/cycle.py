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

The kernel is event-driven (issue 14): it gives the cycles and statistics of the
per-cycle stepping above (tested equal to ``tests/naive.py``'s per-cycle loop and to the
golden figures) but visits only the cycles where something can change - phase changes
(an indexed heap of per-group events), cycles where the port pays or delivers, and the
cycle a blocked port is served - and never steps the PEs: each delivered pair gets its
consumption cycle in closed form (see the section comment below), so a cycle costs its
deliveries, not the array size.
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


@njit(inline="always", **JIT)
def _a_on(code, pad_code):
    """An activation that survives activation skipping: non-zero (code 1), or a padding
    position when padding is issued (``pad_code`` 2; 1: padding is skipped as a zero)."""
    return code == 1 or code == pad_code


@njit(inline="always", **JIT)
def _step_cost(acodes, wcodes, work, dataflow, gi, g, x0, y0, ru, cu, fr, t, skip_a, skip_w,
               a_cost, w_cost, psum_bits, pad_code):
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
        if follow_w and not any_a and pad_code != 1:   # issued padding pairs need weights too
            for i in range(ru):
                any_a = any_a or acodes[g, x0 + i, t] == pad_code
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
                needed = _a_on(acodes[g, y0 + j, x], pad_code)
            if needed:
                cost += w_cost[wcodes[g, t, x]]
    return cost + cu * psum_bits * (2.0 if fr > 0 else 1.0)


# ---- event-driven formulation ----------------------------------------------------------
#
# The model above, stepped only at the cycles where something can change. Per PE, with
# ``lanes`` L, the pairs of a fold are consumed in order, greedily: pair k is consumed at
#     c_k = max(d_k, c_{k-1}, c_{k-L} + 1, start of COMPUTE)
# (d_k: the cycle it was delivered), tracked as (``cur``: cycle of the last consumption,
# ``used``: pairs consumed in it, ``dist``: cycles with a consumption). A PE with pairs left
# but none queued in a COMPUTE cycle is starved, so over a fold it starves
# ``cur - start + 1 - dist`` cycles. A group leaves COMPUTE the cycle after its PEs' last
# consumption, known once every pair of the fold is delivered. A bounded queue has room for
# a PE's next pair at cycle d iff the pair ``qdepth`` deliveries earlier was consumed before
# d: a ring of the last ``qdepth`` consumption cycles per PE (INF while that pair's fold has
# not started) answers the check and gives the cycle a blocked port is served.
# Groups' phase changes are events in an indexed min-heap; cycles where only consumption
# (implicit), timers or a blocked port run are skipped in one jump.

INF = 1 << 62


@njit(**JIT)
def _heap_set(heap, pos, due, s, key):
    """Set group ``s``'s next event to cycle ``key`` (INF: none) and restore the heap."""
    due[s] = key
    n = heap.shape[0]
    k = pos[s]
    while k > 0:  # up
        parent = (k - 1) // 2
        q = heap[parent]
        if due[q] <= key:
            break
        heap[k] = q
        pos[q] = k
        k = parent
    while True:  # down
        child = 2 * k + 1
        if child >= n:
            break
        if child + 1 < n and due[heap[child + 1]] < due[heap[child]]:
            child += 1
        q = heap[child]
        if due[q] >= key:
            break
        heap[k] = q
        pos[q] = k
        k = child
    heap[k] = s
    pos[s] = k


@njit(**JIT)
def _group_finish(s, box, cols, need, cur, cycle_start):
    """Cycle after the last consumption of group ``s``'s fold (every pair delivered)."""
    last = cycle_start - 1
    for i in range(box[s, 0], box[s, 1]):
        for j in range(box[s, 2], box[s, 3]):
            p = i * cols + j
            if need[p] > 0 and cur[p] > last:
                last = cur[p]
    return last + 1


@njit(inline="always", **JIT)
def _consume_at(p, d, lanes, cur, used, dist):
    """Cycle PE ``p`` consumes a pair delivered at cycle ``d`` (its fold is computing)."""
    c = cur[p]
    if d > c:
        cur[p] = d
        used[p] = 1
        dist[p] += 1
        return d
    if used[p] < lanes:
        used[p] += 1
        return c
    cur[p] = c + 1
    used[p] = 1
    dist[p] += 1
    return c + 1


@njit(inline="always", **JIT)
def _receivers(acodes, wcodes, dataflow, g, x0, y0, ru, cu, t, skip_a, skip_w, cols, statmask,
               colbuf, out, pad_code):
    """PEs that receive a pair of stream step ``t`` (row by row), into ``out``; their count."""
    n = 0
    if dataflow == DF_OS:
        nc = 0
        for j in range(cu):
            if not skip_w or wcodes[g, y0 + j, t] == 1:
                colbuf[nc] = j
                nc += 1
        if nc == 0:
            return 0
        for i in range(ru):
            if skip_a and not _a_on(acodes[g, x0 + i, t], pad_code):
                continue
            base = i * cols
            for k in range(nc):
                out[n] = base + colbuf[k]
                n += 1
        return n
    for i in range(ru):
        x = x0 + i
        if dataflow == DF_WS:
            if skip_a and not _a_on(acodes[g, t, x], pad_code):
                continue
        elif skip_w and wcodes[g, t, x] != 1:
            continue
        base = i * cols
        for j in range(cu):
            if statmask[base + j] == 1:
                out[n] = base + j
                n += 1
    return n


@njit(**JIT)
def _pe_delivered(s, undel, finish, box, cols, need, cur, start, heap, pos, due):
    """A PE of computing group ``s`` has all its pairs: the group's end is known at the last."""
    left = undel[s] - 1
    undel[s] = left
    if left == 0:
        finish[s] = _group_finish(s, box, cols, need, cur, start[s])
        _heap_set(heap, pos, due, s, finish[s])


@njit(**JIT)
def cycle_simulate(acodes, wcodes, work, dataflow, chunk, skip_a, skip_w, rows, cols, lanes,
                   fill, drain, sync, depth, qdepth, bw, a_cost, w_cost, psum_bits, out_bits,
                   pad_issued=False):
    """Simulate one sample (event-driven, cycle-exact); returns the statistics vector.

    ``acodes`` (G, M, Kred) im2col codes (0 zero, 1 non-zero, 2 padding);
    ``wcodes`` (G, N, Kred) weight codes (0/1); ``work`` (G * chunks, Sr, Sc) surviving
    pairs per PE element (as for ``fold_schedule``); ``chunk`` stream steps per chunk
    (the stream is split into ``ceil(T / chunk)`` chunks, each with its own folds);
    ``a_cost[code]`` / ``w_cost[code]`` bits the port moves per element (padding: ``a_cost[2]``,
    whether or not its pairs are issued); ``pad_issued``: activation skipping issues the
    pairs of padding positions (``sparsity.skip_padding: false``; ``work`` must count them
    too, as :meth:`accelsim.sim.lower.PackedActs.with_padding_issued`); ``psum_bits``
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
    pad_code = 2 if pad_issued else 1
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
    qd = 1 if unbounded_q else qdepth

    stats = np.zeros(N_CYCLE_STATS, dtype=np.float64)
    if n_folds == 0:
        return stats
    # per PE
    got = np.zeros(n_pes, dtype=np.int64)    # pairs delivered in the port's current fold
    pe_fold = np.full(n_pes, -1, dtype=np.int64)  # fold its group computes (-1: none)
    pe_left = np.zeros(n_pes, dtype=np.int64)  # pairs of that fold not yet delivered
    need = np.zeros(n_pes, dtype=np.int64)   # pairs of the PE's current fold
    cur = np.zeros(n_pes, dtype=np.int64)    # cycle of its last consumption in the fold
    used = np.zeros(n_pes, dtype=np.int64)   # pairs consumed in that cycle
    dist = np.zeros(n_pes, dtype=np.int64)   # cycles with a consumption in the fold
    kbase = np.zeros(n_pes, dtype=np.int64)  # deliveries to the PE before its current fold
    slot = np.zeros(n_pes, dtype=np.int64)   # ring slot of its next delivery
    ring = np.full((n_pes, qd), -1, dtype=np.int64)  # consumption cycle, last qdepth pairs
    pe_group = np.empty(n_pes, dtype=np.int64)
    for i in range(rows):
        for j in range(cols):
            pe_group[i * cols + j] = sync_group_of(sync, i, j, cols)
    # per group
    phase = np.zeros(n_sync, dtype=np.int64)
    ready = np.zeros(n_sync, dtype=np.int64)    # cycle a FILL / DRAIN ends
    since = np.zeros(n_sync, dtype=np.int64)    # cycle WRITE began
    start = np.zeros(n_sync, dtype=np.int64)    # cycle COMPUTE began
    gfold = np.zeros(n_sync, dtype=np.int64)
    undel = np.zeros(n_sync, dtype=np.int64)    # PEs with pairs of that fold undelivered
    finish = np.zeros(n_sync, dtype=np.int64)   # cycle it leaves COMPUTE (INF: not known)
    completed = np.zeros(n_sync, dtype=np.int64)
    wbuf = np.zeros(n_sync, dtype=np.float64)
    box = np.zeros((n_sync, 4), dtype=np.int64)  # i0, i1, j0, j1 of the group
    cur_ru = np.zeros(n_sync, dtype=np.int64)
    cur_cu = np.zeros(n_sync, dtype=np.int64)
    for s in range(n_sync):
        i0, i1, j0, j1 = _group_box(sync, s, rows, cols)
        box[s, 0] = i0
        box[s, 1] = i1
        box[s, 2] = j0
        box[s, 3] = j1
    # event heap over groups (all in it; due INF: no event)
    due = np.zeros(n_sync, dtype=np.int64)
    heap = np.arange(n_sync)
    pos = np.arange(n_sync)
    wlist = np.zeros(n_sync, dtype=np.int64)    # groups with outputs to write, ascending
    n_write = 0
    min_done = 0
    at_min = n_sync
    n_done = 0
    # port
    statmask = np.zeros(n_pes, dtype=np.int64)  # WS/IS: 1 where the stationary operand survives
    colbuf = np.zeros(cols, dtype=np.int64)
    recv = np.zeros(n_pes, dtype=np.int64)
    colmask = np.zeros(cols, dtype=np.int64)
    fast_path = unbounded_q and lanes == 1
    d_fold = 0
    d_step = first_step
    geo_fold = -1
    gi = g = t0 = fr = x0 = y0 = ru = cu = steps_in_fold = 0
    paid = 0.0
    head_known = False
    head_cost = 0.0
    head_n = -1  # receivers of the head step (-1: not listed)

    cycle = 0
    while True:
        # ---- 1. phase changes due this cycle (to a fixpoint) --------------------------------
        while due[heap[0]] <= cycle:
            s = heap[0]
            _heap_set(heap, pos, due, s, INF)
            while True:
                ph = phase[s]
                if ph == PH_WAIT:
                    f = gfold[s]
                    if f >= n_folds:
                        phase[s] = PH_DONE
                        n_done += 1
                        break
                    if min_done < f - depth + 1:
                        break  # woken when min_done moves
                    fgi = f // per_unit
                    fx0 = (f % row_folds) * rows
                    fy0 = ((f // row_folds) % col_folds) * cols
                    fru = min(rows, sr - fx0)
                    fcu = min(cols, sc - fy0)
                    cur_ru[s] = fru
                    cur_cu[s] = fcu
                    for i in range(box[s, 0], box[s, 1]):
                        for j in range(box[s, 2], box[s, 3]):
                            p = i * cols + j
                            if i < fru and j < fcu:
                                need[p] = work[fgi, fx0 + i, fy0 + j]
                            else:
                                need[p] = 0
                    phase[s] = PH_FILL
                    ready[s] = cycle + fill
                elif ph == PH_FILL:
                    if cycle < ready[s]:
                        _heap_set(heap, pos, due, s, ready[s])
                        break
                    # COMPUTE: pairs delivered earlier are consumed from this cycle on
                    f = gfold[s]
                    left = 0
                    for i in range(box[s, 0], box[s, 1]):
                        for j in range(box[s, 2], box[s, 3]):
                            p = i * cols + j
                            n = need[p]
                            if n <= 0:
                                continue
                            # delivered so far: all once the port is past the fold
                            k = n if d_fold > f else (got[p] if d_fold == f else 0)
                            if k > 0:
                                cur[p] = cycle + (k - 1) // lanes
                                used[p] = (k - 1) % lanes + 1
                                dist[p] = (k + lanes - 1) // lanes
                                if not unbounded_q:
                                    for q in range(k):
                                        ring[p, (kbase[p] + q) % qd] = cycle + q // lanes
                            else:
                                cur[p] = cycle - 1
                                used[p] = lanes
                                dist[p] = 0
                            kbase[p] += n
                            pe_fold[p] = f
                            pe_left[p] = n - k
                            if k < n:
                                left += 1
                    undel[s] = left
                    start[s] = cycle
                    if left == 0:
                        finish[s] = _group_finish(s, box, cols, need, cur, cycle)
                    else:
                        finish[s] = INF
                    phase[s] = PH_COMPUTE
                elif ph == PH_COMPUTE:
                    if finish[s] > cycle:
                        _heap_set(heap, pos, due, s, finish[s])
                        break
                    c0 = start[s]
                    starved = 0
                    for i in range(box[s, 0], box[s, 1]):
                        for j in range(box[s, 2], box[s, 3]):
                            p = i * cols + j
                            pe_fold[p] = -1
                            n = need[p]
                            if n > 0:  # one lane: a pair per consumption cycle
                                starved += cur[p] - c0 + 1 - (n if lanes == 1 else dist[p])
                    stats[CY_STARVED] += starved
                    phase[s] = PH_WRITE
                    since[s] = cycle
                elif ph == PH_WRITE:
                    if wbuf[s] > 0.0:
                        break  # woken when the port has written them
                    stats[CY_WRITE_STALL] += cycle - since[s]
                    if dataflow == DF_OS:
                        ru_s = cur_ru[s]
                        cu_s = cur_cu[s]
                        outs = (max(0, min(box[s, 1], ru_s) - box[s, 0])
                                * max(0, min(box[s, 3], cu_s) - box[s, 2]))
                        stats[CY_GLB_BITS] += outs * out_bits
                        if not unbounded_bw:
                            wbuf[s] = outs * out_bits
                            if wbuf[s] > 0.0:
                                k = n_write
                                while k > 0 and wlist[k - 1] > s:
                                    wlist[k] = wlist[k - 1]
                                    k -= 1
                                wlist[k] = s
                                n_write += 1
                    phase[s] = PH_DRAIN
                    ready[s] = cycle + drain
                elif ph == PH_DRAIN:
                    if cycle < ready[s]:
                        _heap_set(heap, pos, due, s, ready[s])
                        break
                    if completed[s] == min_done:
                        at_min -= 1
                    completed[s] += 1
                    gfold[s] += 1
                    phase[s] = PH_WAIT
                    if at_min == 0:
                        min_done += 1
                        at_min = 0
                        for s2 in range(n_sync):
                            if completed[s2] == min_done:
                                at_min += 1
                            if s2 != s and phase[s2] == PH_WAIT:
                                _heap_set(heap, pos, due, s2, cycle)
                else:
                    break
        if n_done == n_sync and n_write == 0:
            # every pair is consumed, so the steps left carry none: those the port moves
            # for free (an unbounded port, or nothing stored) take no time
            while d_fold < n_folds:
                fgi = d_fold // per_unit
                ft0 = (fgi % n_chunks) * chunk
                ffr = d_fold % row_folds
                fx0 = ffr * rows
                fy0 = ((d_fold // row_folds) % col_folds) * cols
                t = ft0 + d_step if d_step >= 0 else -1
                cost = _step_cost(acodes, wcodes, work, dataflow, fgi, fgi // n_chunks, fx0, fy0,
                                  min(rows, sr - fx0), min(cols, sc - fy0), ffr, t, skip_a,
                                  skip_w, a_cost, w_cost, psum_bits, pad_code)
                if cost - paid > 0.0 and not unbounded_bw:
                    break
                stats[CY_GLB_BITS] += cost
                paid = 0.0
                head_known = False
                head_n = -1
                d_step += 1
                if d_step >= min(chunk, t_len - ft0):
                    d_step = first_step
                    d_fold += 1
            if d_fold >= n_folds:
                break

        # ---- 2. port credit and output writes -----------------------------------------
        credit = bw
        if n_write > 0:
            kept = 0
            for k in range(n_write):
                s = wlist[k]
                if credit > 0.0:
                    pay = min(wbuf[s], credit)
                    wbuf[s] -= pay
                    credit -= pay
                if wbuf[s] > 0.0:
                    wlist[kept] = s
                    kept += 1
                elif phase[s] == PH_WRITE:
                    _heap_set(heap, pos, due, s, cycle + 1)
            n_write = kept

        # ---- 3. operand delivery, in program order -------------------------------
        port_next = INF
        while d_fold < n_folds:
            if geo_fold != d_fold:
                geo_fold = d_fold
                gi = d_fold // per_unit
                g = gi // n_chunks
                t0 = (gi % n_chunks) * chunk
                fr = d_fold % row_folds
                x0 = fr * rows
                y0 = ((d_fold // row_folds) % col_folds) * cols
                ru = min(rows, sr - x0)
                cu = min(cols, sc - y0)
                steps_in_fold = min(chunk, t_len - t0)
                got[:] = 0
                if dataflow != DF_OS:
                    for i in range(ru):
                        for j in range(cu):
                            if dataflow == DF_WS:
                                ok = not skip_w or wcodes[g, y0 + j, x0 + i] == 1
                            else:
                                ok = not skip_a or _a_on(acodes[g, y0 + j, x0 + i], pad_code)
                            statmask[i * cols + j] = 1 if ok else 0
            t = t0 + d_step if d_step >= 0 else -1
            if not head_known:
                head_cost = _step_cost(acodes, wcodes, work, dataflow, gi, g, x0, y0, ru, cu, fr,
                                       t, skip_a, skip_w, a_cost, w_cost, psum_bits, pad_code)
                head_known = True
            cost = head_cost
            if not unbounded_bw and cost - paid > credit:
                paid += credit
                credit = 0.0
                port_next = cycle + 1
                break
            if t >= 0 and head_n < 0 and not fast_path:
                head_n = _receivers(acodes, wcodes, dataflow, g, x0, y0, ru, cu, t, skip_a,
                                    skip_w, cols, statmask, colbuf, recv, pad_code)
            if t >= 0 and not unbounded_q:
                latest = -1
                for k in range(head_n):
                    p = recv[k]
                    v = ring[p, slot[p]]
                    if v > latest:
                        latest = v
                if latest >= cycle:  # a receiving queue is still full
                    stats[CY_BLOCKED] += 1
                    port_next = latest + 1 if latest < INF else INF
                    break
            if not unbounded_bw:
                credit -= cost - paid
                paid = 0.0
            if t >= 0 and fast_path:
                # one lane, unbounded queues: row by row over the columns with a 0/1 mask,
                # branch-free; a PE whose group computes this fold consumes the pair at
                # max(cycle, last + 1)
                delivered = 0
                if dataflow == DF_OS:
                    for j in range(cu):
                        colmask[j] = 1 if (not skip_w or wcodes[g, y0 + j, t] == 1) else 0
                    mask = colmask
                    row_step = 0
                else:
                    mask = statmask
                    row_step = cols
                for i in range(ru):
                    if dataflow == DF_OS:
                        if skip_a and not _a_on(acodes[g, x0 + i, t], pad_code):
                            continue
                    elif dataflow == DF_WS:
                        if skip_a and not _a_on(acodes[g, t, x0 + i], pad_code):
                            continue
                    elif skip_w and wcodes[g, t, x0 + i] != 1:
                        continue
                    base = i * cols
                    moff = i * row_step
                    hit = 0
                    for j in range(cu):
                        p = base + j
                        m = mask[moff + j]
                        on = m if pe_fold[p] == d_fold else 0
                        got[p] += m
                        c = cur[p] + 1
                        c = cycle if cycle > c else c
                        cur[p] = c if on == 1 else cur[p]
                        left = pe_left[p] - on
                        pe_left[p] = left
                        hit |= on & (1 if left == 0 else 0)
                        delivered += m
                    if hit:  # a PE got its fold's last pair: its group's end may be known
                        for j in range(cu):
                            p = base + j
                            if mask[moff + j] == 1 and pe_fold[p] == d_fold and pe_left[p] == 0:
                                _pe_delivered(pe_group[p], undel, finish, box, cols, need, cur,
                                              start, heap, pos, due)
                stats[CY_PAIRS] += delivered
            elif t >= 0:
                for k in range(head_n):
                    p = recv[k]
                    got[p] += 1
                    on = pe_fold[p] == d_fold
                    if lanes == 1:  # branch-free but for a PE's last pair
                        c = cur[p] + 1
                        if cycle > c:
                            c = cycle
                        cur[p] = c if on else cur[p]
                    elif on:
                        c = _consume_at(p, cycle, lanes, cur, used, dist)
                    else:
                        c = 0
                    left = pe_left[p] - (1 if on else 0)
                    pe_left[p] = left
                    if on and left == 0:
                        _pe_delivered(pe_group[p], undel, finish, box, cols, need, cur, start,
                                      heap, pos, due)
                    if not unbounded_q:
                        q = slot[p]
                        ring[p, q] = c if on else INF
                        q += 1
                        slot[p] = 0 if q == qd else q
                stats[CY_PAIRS] += head_n
            stats[CY_GLB_BITS] += cost
            head_known = False
            head_n = -1
            d_step += 1
            if d_step >= steps_in_fold:
                d_step = first_step
                d_fold += 1

        # ---- 4. consumption is implicit; 5. next cycle where something can change --------
        nxt = due[heap[0]]
        if port_next < nxt:
            nxt = port_next
        if (n_write > 0 or n_done == n_sync) and cycle + 1 < nxt:
            nxt = cycle + 1
        if nxt >= INF:
            raise RuntimeError("cycle_simulate: no progress (internal error)")
        if d_fold < n_folds and port_next != cycle + 1 and nxt > cycle + 1:
            # the port stays blocked on a full queue in every skipped cycle
            stats[CY_BLOCKED] += nxt - cycle - 1
        cycle = nxt
    stats[CY_CYCLES] = cycle
    return stats
