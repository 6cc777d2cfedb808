"""A plain per-cycle reference of the mapped cycle-level run (``accelsim.sim.kernels.mapped_cycle``).

It ticks one cycle at a time: at each cycle boundary synchronisation groups start and finish
steps (a fixpoint: a group starts step ``f`` when it has finished ``f - 1``, every group has
finished ``f - depth``, the step's fills are done and the drains that free its output buffers
are done; it finishes when each of its PEs has counted its work down to zero and the step's
stream requests are done); then, during the cycle, every PE with work left counts down one and
every port moves up to ``rate`` bits from the head of its program-order queue (the head waits
until its trigger has happened; a request is done at the end of the cycle that moved its last
bit). Nothing is shared with the kernel but the semantics.
"""
from __future__ import annotations

import numpy as np

SYNC_ARRAY, SYNC_ROW, SYNC_COLUMN, SYNC_DECOUPLED = 0, 1, 2, 3


def _group(sync: int, i: int, j: int, cols: int) -> int:
    return {SYNC_ARRAY: 0, SYNC_ROW: i, SYNC_COLUMN: j}.get(sync, i * cols + j)


def reference(work, rows: int, cols: int, lanes: int, sync: int, overhead: int, depth: int,
              fill_bits, stream_bits, drain_bits, rate, port_level, n_levels: int):
    """``(cycles, compute, stalls by cause)`` (causes: first fill / last drain, then per level
    fill, stream, drain), for ``work[step, y, x]`` and per-port bit demands
    ``fill_bits[buffer, step, port]``, ``stream_bits[step, port]``,
    ``drain_bits[buffer, step, port]`` on ports moving ``rate[port]`` bits per cycle."""
    work = np.asarray(work)
    n_steps, ny, nx = work.shape
    n_groups = {SYNC_ARRAY: 1, SYNC_ROW: rows, SYNC_COLUMN: cols}.get(sync, rows * cols)
    n_ports = len(rate)
    pes = [(i, j) for i in range(rows) for j in range(cols)]
    members = [[p for p in pes if _group(sync, p[0], p[1], cols) == g] for g in range(n_groups)]

    def busy(f, pe):
        i, j = pe
        w = int(work[f, i, j]) if i < ny and j < nx else 0
        return overhead + -(-w // lanes)

    # requests in each port's program order: [kind, buffer, step, bits left, ready, done]
    queues: list[list[list]] = [[] for _ in range(n_ports)]
    reqs: dict = {}

    def add(kind, b, f, bits_of):
        for p in range(n_ports):
            bits = float(bits_of(p))
            r = [kind, b, f, bits, None, None]
            reqs[(kind, b, f, p)] = r
            if bits > 0:
                queues[p].append(r)
            else:
                r[5] = 0          # nothing to move: no constraint

    for b in (0, 1):
        add("fill", b, 0, lambda p, b=b: fill_bits[b][0][p])
    for f in range(n_steps):
        if f + 1 < n_steps:
            add("fill", 1, f + 1, lambda p, f=f: fill_bits[1][f + 1][p])
        add("stream", 0, f, lambda p, f=f: stream_bits[f][p])
        if f + 1 < n_steps:
            add("fill", 0, f + 1, lambda p, f=f: fill_bits[0][f + 1][p])
        for b in (0, 1):
            add("drain", b, f, lambda p, f=f, b=b: drain_bits[b][f][p])

    def set_ready(kind, b, f, t):
        for p in range(n_ports):
            r = reqs.get((kind, b, f, p))
            if r is not None and r[4] is None:
                r[4] = t

    set_ready("fill", 0, 0, 0)
    set_ready("fill", 1, 0, 0)
    for f in range(1, n_steps):   # fills whose buffer is free from the start
        if f - depth < 0:
            set_ready("fill", 0, f, 0)
        if f - 1 - depth < 0:
            set_ready("fill", 1, f, 0)

    n_causes = 1 + 3 * n_levels
    charge = [0.0] * n_causes
    step = [0] * n_groups              # next step to start
    phase = ["wait"] * n_groups
    finish = [[None] * n_steps for _ in range(n_groups)]
    start = [[None] * n_steps for _ in range(n_groups)]
    remaining = {pe: 0 for pe in pes}
    busy_end = [0] * n_groups
    g_done = [None] * n_steps
    first_start = [None] * n_steps

    def done_by(r, c):
        return r[5] is not None and r[5] <= c

    def mem_constraint(f):
        """(latest done time, cause) of step f's memory constraints, in the kernel's order."""
        mem, cause = 0, -1
        for b in (0, 1):
            for p in range(n_ports):
                d = reqs[("fill", b, f, p)][5]
                if d > mem:
                    mem, cause = d, (0 if f == 0 else 1 + 3 * port_level[p])
        for b in (0, 1):
            j = f - depth - b
            if j >= 0:
                for p in range(n_ports):
                    d = reqs[("drain", b, j, p)][5]
                    if d > mem:
                        mem, cause = d, 1 + 3 * port_level[p] + 2
        return mem, cause

    c = 0
    while True:
        changed = True
        while changed:
            changed = False
            for g in range(n_groups):
                f = step[g]
                if phase[g] == "wait" and f < n_steps:
                    if f >= depth and (g_done[f - depth] is None or g_done[f - depth] > c):
                        continue
                    ok = all(done_by(reqs[("fill", b, f, p)], c) for b in (0, 1)
                             for p in range(n_ports))
                    ok = ok and all(done_by(reqs[("drain", b, f - depth - b, p)], c)
                                    for b in (0, 1) for p in range(n_ports) if f - depth - b >= 0)
                    if not ok:
                        continue
                    base = max(finish[g][f - 1] if f > 0 else 0,
                               g_done[f - depth] if f >= depth else 0)
                    if c > base:
                        charge[mem_constraint(f)[1]] += c - base
                    start[g][f] = c
                    for pe in members[g]:
                        remaining[pe] = busy(f, pe)
                    busy_end[g] = None
                    phase[g] = "busy"
                    changed = True
                    if first_start[f] is None:
                        first_start[f] = c
                        set_ready("stream", 0, f, c)
                elif phase[g] == "busy":
                    if busy_end[g] is None and all(remaining[pe] == 0 for pe in members[g]):
                        busy_end[g] = c
                    if busy_end[g] is None:
                        continue
                    streams = [reqs[("stream", 0, f, p)] for p in range(n_ports)]
                    if not all(done_by(r, c) for r in streams):
                        continue
                    if c > busy_end[g]:
                        late = max(range(n_ports), key=lambda p: (streams[p][5], -p))
                        charge[1 + 3 * port_level[late] + 1] += c - busy_end[g]
                    finish[g][f] = c
                    step[g] = f + 1
                    phase[g] = "wait"
                    changed = True
                    if all(finish[h][f] is not None for h in range(n_groups)):
                        g_done[f] = c
                        set_ready("drain", 0, f, c)
                        set_ready("drain", 1, f, c)
                        if f + depth < n_steps:
                            set_ready("fill", 0, f + depth, c)
                        if f + depth + 1 < n_steps:
                            set_ready("fill", 1, f + depth + 1, c)
        if all(s == n_steps for s in step) and not any(queues):
            break
        for g in range(n_groups):        # PEs count their work down
            if phase[g] == "busy":
                for pe in members[g]:
                    if remaining[pe] > 0:
                        remaining[pe] -= 1
        for p in range(n_ports):         # ports move bits
            credit = float(rate[p])
            q = queues[p]
            while credit > 0 and q and q[0][4] is not None and q[0][4] <= c:
                moved = min(credit, q[0][3])
                q[0][3] -= moved
                credit -= moved
                if q[0][3] <= 1e-12:
                    q[0][5] = c + 1
                    q.pop(0)
        c += 1
        if c > 10 ** 7:
            raise RuntimeError("reference did not finish")
    end = g_done[n_steps - 1]
    last = max([end] + [r[5] for r in reqs.values() if r[5] is not None])
    # ideal compute: the fold recurrence
    fin = [0] * n_groups
    hist = []
    for f in range(n_steps):
        gate = hist[f - depth] if f >= depth else 0
        for g in range(n_groups):
            fin[g] = max(fin[g], gate) + max(busy(f, pe) for pe in members[g])
        hist.append(max(fin))
    compute = hist[-1]
    stalls = [0.0] * n_causes
    total = sum(charge)
    if end > compute and total > 0:
        stalls = [x * (end - compute) / total for x in charge]
    stalls[0] += last - end
    return last, compute, stalls

