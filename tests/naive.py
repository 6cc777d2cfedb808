"""Slow, obvious plain-Python references of the simulator's kernels and counts.

Each function restates the documented rule directly (explicit loops, explicit
timelines, explicit encoders) so the tests can compare the Numba kernels and the
vectorised code against it on small inputs.
"""
from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------------------------------
# lowering and work counts


def im2col(act: np.ndarray, geometry) -> np.ndarray:
    """Codes (G, P*Q, Cg*R*S): 0 zero, 1 non-zero, 2 padding, by the definition."""
    g = geometry
    cg = g.C // g.groups
    out = np.zeros((g.groups, g.P * g.Q, cg * g.R * g.S), dtype=np.uint8)
    for grp in range(g.groups):
        for p in range(g.P):
            for q in range(g.Q):
                for c in range(cg):
                    for u in range(g.R):
                        for v in range(g.S):
                            y = p * g.stride_h - g.pad_h + u * g.dil_h
                            x = q * g.stride_w - g.pad_w + v * g.dil_w
                            col = (c * g.R + u) * g.S + v
                            if 0 <= y < g.H and 0 <= x < g.W:
                                code = 1 if act[grp * cg + c, y, x] else 0
                            else:
                                code = 2
                            out[grp, p * g.Q + q, col] = code
    return out


def packed_im2col(act: np.ndarray, geometry) -> tuple[list, list, list]:
    """Packed non-zero im2col bits by the definition, without building codes first.

    Returns per group: rows of Python ints (bit ``r`` set when reduction index ``r`` of the
    pixel reads a non-zero input), non-zeros per pixel and per reduction index.
    """
    g = geometry
    cg = g.C // g.groups
    kred = cg * g.R * g.S
    rows, row_counts, col_counts = [], [], []
    for grp in range(g.groups):
        words, per_row, per_col = [], [], [0] * kred
        for p in range(g.P):
            for q in range(g.Q):
                word = 0
                for c in range(cg):
                    for u in range(g.R):
                        for v in range(g.S):
                            y = p * g.stride_h - g.pad_h + u * g.dil_h
                            x = q * g.stride_w - g.pad_w + v * g.dil_w
                            if 0 <= y < g.H and 0 <= x < g.W and act[grp * cg + c, y, x]:
                                r = (c * g.R + u) * g.S + v
                                word |= 1 << r
                                per_col[r] += 1
                words.append(word)
                per_row.append(bin(word).count("1"))
        rows.append(words)
        row_counts.append(per_row)
        col_counts.append(per_col)
    return rows, row_counts, col_counts


def pad_positions(geometry) -> list[int]:
    """Padding positions per reduction index of one group, by enumerating every pixel."""
    g = geometry
    out = []
    for c in range(g.C // g.groups):
        for u in range(g.R):
            for v in range(g.S):
                n = 0
                for p in range(g.P):
                    for q in range(g.Q):
                        y = p * g.stride_h - g.pad_h + u * g.dil_h
                        x = q * g.stride_w - g.pad_w + v * g.dil_w
                        n += not (0 <= y < g.H and 0 <= x < g.W)
                out.append(n)
    return out


def words_to_int(words) -> int:
    """A packed row of uint64 words as one Python int (word w holds bits 64w..64w+63)."""
    return sum(int(w) << (64 * i) for i, w in enumerate(words))


def and_count(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """out[m, n] = number of positions where a[m] and b[n] are both true."""
    out = np.zeros((a.shape[0], b.shape[0]), dtype=np.int64)
    for m in range(a.shape[0]):
        for n in range(b.shape[0]):
            out[m, n] = sum(1 for r in range(a.shape[1]) if a[m, r] and b[n, r])
    return out


def survives(a_code: int, w_code: int, skip_a: bool, skip_w: bool) -> bool:
    return not ((skip_a and a_code != 1) or (skip_w and w_code != 1))


def work_matrix(acodes, wcodes, dataflow: str, skip_a: bool, skip_w: bool) -> np.ndarray:
    """Surviving pairs per mapped element by enumerating every (m, r, n) triple."""
    groups, mm, kk = acodes.shape
    nn = wcodes.shape[1]
    if dataflow == "output_stationary":
        out = np.zeros((groups, mm, nn), dtype=np.int64)
    elif dataflow == "weight_stationary":
        out = np.zeros((groups, kk, nn), dtype=np.int64)
    else:
        out = np.zeros((groups, kk, mm), dtype=np.int64)
    for g in range(groups):
        for m in range(mm):
            for r in range(kk):
                for n in range(nn):
                    if survives(int(acodes[g, m, r]), int(wcodes[g, n, r]), skip_a, skip_w):
                        if dataflow == "output_stationary":
                            out[g, m, n] += 1
                        elif dataflow == "weight_stationary":
                            out[g, r, n] += 1
                        else:
                            out[g, r, m] += 1
    return out


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
# cycle fidelity


def _steps(acodes, wcodes, dataflow, skip_a, skip_w, rows, cols, fold_index, sr, sc,
           a_cost, w_cost, psum_bits, chunk):
    """Delivery steps of one fold: list of (cost, set of PEs receiving a pair).

    Leader / follower: a skipped operand's elements are always read; the other
    operand's only if a surviving pair uses them (streamed: a pair of that step in the
    element's row or column; stationary: any pair of that PE in the fold).
    """
    groups, mm, kk = acodes.shape
    nn = wcodes.shape[1]
    length = {"output_stationary": kk, "weight_stationary": mm, "input_stationary": nn}[dataflow]
    n_chunks = math.ceil(length / chunk)
    rf, cf = math.ceil(sr / rows), math.ceil(sc / cols)
    gi, rest = divmod(fold_index, rf * cf)
    g, ch = divmod(gi, n_chunks)
    fc, fr = divmod(rest, rf)
    ru, cu = min(rows, sr - fr * rows), min(cols, sc - fc * cols)
    x0, y0 = fr * rows, fc * cols
    follow_a = skip_w and not skip_a
    follow_w = skip_a and not skip_w

    def operands(i, j, t):
        if dataflow == "output_stationary":
            return acodes[g, x0 + i, t], wcodes[g, y0 + j, t]
        if dataflow == "weight_stationary":
            return acodes[g, t, x0 + i], wcodes[g, y0 + j, x0 + i]
        return acodes[g, y0 + j, x0 + i], wcodes[g, t, x0 + i]

    times = range(ch * chunk, min(length, (ch + 1) * chunk))
    pairs = {t: {(i, j) for i in range(ru) for j in range(cu)
                 if survives(*map(int, operands(i, j, t)), skip_a, skip_w)} for t in times}
    steps = []
    if dataflow != "output_stationary":
        cost = 0.0
        for i in range(ru):
            for j in range(cu):
                used = any((i, j) in pairs[t] for t in times)
                a, w = operands(i, j, times[0])
                if dataflow == "weight_stationary" and (used or not follow_w):
                    cost += w_cost[w]
                if dataflow == "input_stationary" and (used or not follow_a):
                    cost += a_cost[a]
        steps.append((cost, set()))
    for t in times:
        cost = 0.0
        for i in range(ru):
            row_used = any((i, j) in pairs[t] for j in range(cu))
            a, w = operands(i, 0, t)
            if dataflow == "output_stationary" and (row_used or not follow_a):
                cost += a_cost[a]
            if dataflow == "weight_stationary" and (row_used or not follow_a):
                cost += a_cost[a]
            if dataflow == "input_stationary" and (row_used or not follow_w):
                cost += w_cost[w]
        if dataflow == "output_stationary":
            for j in range(cu):
                if any((i, j) in pairs[t] for i in range(ru)) or not follow_w:
                    cost += w_cost[operands(0, j, t)[1]]
        else:
            cost += cu * psum_bits * (2 if fr > 0 else 1)
        steps.append((cost, {i * cols + j for (i, j) in pairs[t]}))
    return steps, (gi, fr, fc, ru, cu)


class _Group:
    def __init__(self, members):
        self.members = members          # list of (i, j)
        self.fold = 0
        self.phase = "wait"
        self.counter = 0
        self.remaining = 0
        self.completed = 0
        self.write = 0.0


def cycle(acodes, wcodes, work, dataflow, chunk, skip_a, skip_w, rows, cols, lanes, fill, drain,
          sync, depth, qdepth, bw, a_cost, w_cost, psum_bits, out_bits) -> dict:
    """The cycle model of ``accelsim.sim.kernels.cycle`` written with plain Python objects."""
    sr, sc = work.shape[1], work.shape[2]
    rf, cf = math.ceil(sr / rows), math.ceil(sc / cols)
    n_folds = work.shape[0] * rf * cf
    unbounded_bw, unbounded_q = bw <= 0, qdepth <= 0
    n_sync = (1, rows, cols, rows * cols)[sync]
    groups = [_Group([(i, j) for i in range(rows) for j in range(cols)
                      if group_of(sync, i, j, cols) == s]) for s in range(n_sync)]
    got = [dict() for _ in range(n_folds)]  # fold -> {pe: pairs delivered}
    cons = {}
    occ = {}
    all_steps = [_steps(acodes, wcodes, dataflow, skip_a, skip_w, rows, cols, f, sr, sc,
                        a_cost, w_cost, psum_bits, chunk) for f in range(n_folds)]
    pointer = [0, 0]  # fold, index into its steps
    paid = 0.0
    stats = {"cycles": 0, "starved": 0, "write_stall": 0, "blocked": 0, "glb_bits": 0.0,
             "pairs": 0}

    def fold_box(f):
        return all_steps[f][1]

    def mapped(grp, f):
        g, fr, fc, ru, cu = fold_box(f)
        return [(i, j) for (i, j) in grp.members if i < ru and j < cu]

    cyc = 0
    while True:
        changed = True
        while changed:
            changed = False
            min_done = min(gr.completed for gr in groups)
            for gr in groups:
                if gr.phase == "wait":
                    if gr.fold >= n_folds:
                        gr.phase = "done"
                        changed = True
                    elif min_done >= gr.fold - depth + 1:
                        g, fr, fc, ru, cu = fold_box(gr.fold)
                        for (i, j) in gr.members:
                            cons[i * cols + j] = 0
                        gr.remaining = sum(int(work[g, fr * rows + i, fc * cols + j])
                                           for (i, j) in mapped(gr, gr.fold))
                        gr.phase, gr.counter = "fill", fill
                        changed = True
                elif gr.phase == "fill" and gr.counter == 0:
                    gr.phase = "compute"
                    changed = True
                elif gr.phase == "compute" and gr.remaining == 0:
                    gr.phase = "write"
                    changed = True
                elif gr.phase == "write" and gr.write <= 0:
                    if dataflow == "output_stationary":
                        outs = len(mapped(gr, gr.fold))
                        stats["glb_bits"] += outs * out_bits
                        if not unbounded_bw:
                            gr.write = outs * out_bits
                    gr.phase, gr.counter = "drain", drain
                    changed = True
                elif gr.phase == "drain" and gr.counter == 0:
                    gr.completed += 1
                    gr.fold += 1
                    gr.phase = "wait"
                    changed = True
        if all(gr.phase == "done" and gr.write <= 0 for gr in groups):
            while pointer[0] < n_folds:  # pair-less steps left: free ones take no time
                steps = all_steps[pointer[0]][0]
                cost = steps[pointer[1]][0]
                if cost - paid > 0 and not unbounded_bw:
                    break
                stats["glb_bits"] += cost
                paid = 0.0
                pointer[1] += 1
                if pointer[1] == len(steps):
                    pointer[0] += 1
                    pointer[1] = 0
            if pointer[0] >= n_folds:
                break
        credit = float("inf") if unbounded_bw else float(bw)
        for gr in groups:
            if gr.write > 0 and credit > 0:
                pay = min(gr.write, credit)
                gr.write -= pay
                credit -= pay
        while pointer[0] < n_folds:
            steps = all_steps[pointer[0]][0]
            cost, pes = steps[pointer[1]]
            if not unbounded_bw and cost - paid > credit:
                paid += credit
                credit = 0.0
                break
            if not unbounded_q and any(occ.get(p, 0) >= qdepth for p in pes):
                stats["blocked"] += 1
                break
            if not unbounded_bw:
                credit -= cost - paid
                paid = 0.0
            for p in pes:
                got[pointer[0]][p] = got[pointer[0]].get(p, 0) + 1
                occ[p] = occ.get(p, 0) + 1
                stats["pairs"] += 1
            stats["glb_bits"] += cost
            pointer[1] += 1
            if pointer[1] == len(steps):
                pointer[0] += 1
                pointer[1] = 0
        for gr in groups:
            if gr.phase == "compute" and gr.remaining > 0:
                g, fr, fc, ru, cu = fold_box(gr.fold)
                for (i, j) in mapped(gr, gr.fold):
                    p = i * cols + j
                    avail = got[gr.fold].get(p, 0) - cons[p]
                    if avail > 0:
                        take = min(lanes, avail)
                        cons[p] += take
                        occ[p] -= take
                        gr.remaining -= take
                    elif cons[p] < work[g, fr * rows + i, fc * cols + j]:
                        stats["starved"] += 1
        for gr in groups:
            if gr.phase in ("fill", "drain") and gr.counter > 0:
                gr.counter -= 1
            elif gr.phase == "write":
                stats["write_stall"] += 1
        cyc += 1
    stats["cycles"] = cyc
    return stats


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
