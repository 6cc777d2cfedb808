"""Event-driven cycle-level run of a mapped loop nest (issue 24 item 1): PEs, sync groups, ports.

Inputs are per outer step ``f`` (the temporal steps of the mapping at and above the fan-out):
``gbusy[f, s]``, the busy cycles of synchronisation group ``s`` (its busiest PE,
``ceil(work / lanes)``), and, per port ``p``, the service cycles (bits / the port's rate) of the
step's requests in three classes: ``fill[b, f, p]`` (tiles that must be in place before step
``f`` computes), ``stream[f, p]`` (MAC-driven traffic while it computes) and ``drain[b, f, p]``
(outputs written back after it); ``b`` = 1 for tiles of double-buffered levels, 0 otherwise.

Each port serves its requests in program order: ``fill(0)``; then per step ``f``: the
double-buffered ``fill(f+1)`` (prefetch), ``stream(f)``, the single-buffered ``fill(f+1)``,
``drain(f)``. A port moves its bits back to back (a request may begin in the cycle where the
previous one ended); a request is done at the end of the cycle that moves its last bit. A
request with no bits costs nothing and constrains nothing. Ready times:

- single-buffered ``fill(f)`` once every group has finished step ``f - depth`` (its buffer is
  free), double-buffered ``fill(f)`` once every group has finished ``f - depth - 1``; 0 before;
- ``stream(f)`` when the first group starts step ``f``;
- ``drain(f)`` when every group has finished step ``f``.

Group ``s`` starts step ``f`` at ``max(finish[s][f-1], G[f-depth], fill(f) done, drain(f -
depth) done (single-buffered), drain(f - depth - 1) done (double-buffered))`` (the output buffer
it will write is free), and finishes at ``max(start + overhead + gbusy[f, s], stream(f) done)``;
``G[f] = max_s finish[s][f]``. Without memory constraints this is the recurrence of
:func:`accelsim.sim.kernels.schedule.fold_schedule` (``compute``). The layer ends when the last
step has finished and every port is idle.

Stall causes: every time a memory constraint delays a group (its start past
``max(finish[s][f-1], G[f-depth])`` or its finish past its busy cycles), the delay is charged to
the binding request's class and level (``fill``/``stream``/``drain``; the first step's fills to
``fill_drain``). The charges are scaled so they sum to ``G[last] - compute`` (exact, unscaled,
with one synchronisation group: each delay then adds to the end time), and the tail after the
last step (the last drains) is added to ``fill_drain``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from accelsim.numba_config import JIT
from accelsim.sim.kernels.schedule import sync_group_count, sync_group_of

#: cause index of the first fill and last drain; level ``L``'s are ``1 + 3 L + class``
CAUSE_FILL_DRAIN = 0
CLASS_FILL = 0
CLASS_STREAM = 1
CLASS_DRAIN = 2
_EPS = 1e-9

# indices of the result vector of mapped_cycle
MC_CYCLES = 0
MC_COMPUTE = 1
MC_TAIL = 2
N_MC = 3


@njit(**JIT)
def _serve(free, p, ready, service):
    """Queue ``service`` cycles on port ``p`` from ``ready``; the cycle it is done (0: nothing)."""
    if service <= 0.0:
        return 0
    start = free[p]
    if ready > start:
        start = ready
    free[p] = start + service
    return np.int64(np.ceil(free[p] - _EPS))


@njit(**JIT)
def _issue_fill(free, fill, b, f, ready, done):
    for p in range(fill.shape[2]):
        done[b, f, p] = _serve(free, p, ready, fill[b, f, p])


@njit(**JIT)
def mapped_cycle(gbusy, overhead, depth, fill, stream, drain, port_level, n_levels):
    """Run the steps; returns ``(result, stalls)``: ``result[MC_*]`` and the stall cycles by
    cause (``1 + 3 * n_levels`` entries, summing to ``cycles - compute``).

    ``fill[b, f, p]`` and ``drain[b, f, p]``: service cycles of step ``f`` on port ``p`` for
    tiles of single-buffered (``b = 0``) and double-buffered (``b = 1``) levels."""
    n_steps, n_groups = gbusy.shape
    n_ports = stream.shape[1]
    n_causes = 1 + 3 * n_levels
    free = np.zeros(n_ports, dtype=np.float64)
    fill_done = np.zeros((2, n_steps + 1, n_ports), dtype=np.int64)
    drain_done = np.zeros((2, n_steps, n_ports), dtype=np.int64)
    finish = np.zeros(n_groups, dtype=np.int64)
    ideal = np.zeros(n_groups, dtype=np.int64)
    start = np.zeros(n_groups, dtype=np.int64)
    g_hist = np.zeros(n_steps, dtype=np.int64)
    i_hist = np.zeros(n_steps, dtype=np.int64)
    charge = np.zeros(n_causes, dtype=np.float64)
    if n_steps > 0:
        _issue_fill(free, fill, 0, 0, 0.0, fill_done)
        _issue_fill(free, fill, 1, 0, 0.0, fill_done)
    for f in range(n_steps):
        gate = g_hist[f - depth] if f >= depth else 0
        igate = i_hist[f - depth] if f >= depth else 0
        # memory readiness of step f: its fills, and the drains that free its output buffers
        mem = 0
        cause = -1
        for b in range(2):
            for p in range(n_ports):
                if fill_done[b, f, p] > mem:
                    mem = fill_done[b, f, p]
                    cause = CAUSE_FILL_DRAIN if f == 0 else 1 + 3 * port_level[p] + CLASS_FILL
        for b in range(2):
            j = f - depth - b
            if j >= 0:
                for p in range(n_ports):
                    if drain_done[b, j, p] > mem:
                        mem = drain_done[b, j, p]
                        cause = 1 + 3 * port_level[p] + CLASS_DRAIN
        first = np.int64(-1)
        for s in range(n_groups):
            base = finish[s]
            if gate > base:
                base = gate
            st = base
            if mem > st:
                st = mem
                charge[cause] += st - base
            start[s] = st
            if first < 0 or st < first:
                first = st
        # prefetch of the double-buffered tiles of the next step, then the step's own stream
        if f + 1 < n_steps:
            k = f - depth
            _issue_fill(free, fill, 1, f + 1, float(g_hist[k] if k >= 0 else 0), fill_done)
        sdone = 0
        scause = -1
        for p in range(n_ports):
            d = _serve(free, p, float(first), stream[f, p])
            if d > sdone:
                sdone = d
                scause = 1 + 3 * port_level[p] + CLASS_STREAM
        g_end = 0
        i_end = 0
        for s in range(n_groups):
            e = start[s] + overhead + gbusy[f, s]
            if sdone > e:
                charge[scause] += sdone - e
                e = sdone
            finish[s] = e
            if e > g_end:
                g_end = e
            ie = ideal[s]
            if igate > ie:
                ie = igate
            ie += overhead + gbusy[f, s]
            ideal[s] = ie
            if ie > i_end:
                i_end = ie
        g_hist[f] = g_end
        i_hist[f] = i_end
        if f + 1 < n_steps:   # single-buffered tiles of the next step, once their buffer is free
            k = f + 1 - depth
            _issue_fill(free, fill, 0, f + 1, float(g_hist[k] if k >= 0 else 0), fill_done)
        for b in range(2):
            for p in range(n_ports):
                drain_done[b, f, p] = _serve(free, p, float(g_end), drain[b, f, p])
    end = g_hist[n_steps - 1] if n_steps > 0 else 0
    compute = i_hist[n_steps - 1] if n_steps > 0 else 0
    last = end
    for p in range(n_ports):
        if free[p] > 0.0:
            t = np.int64(np.ceil(free[p] - _EPS))
            if t > last:
                last = t
    stalls = np.zeros(n_causes, dtype=np.float64)
    delay = end - compute
    total = 0.0
    for i in range(n_causes):
        total += charge[i]
    if delay > 0 and total > 0.0:
        scale = delay / total
        for i in range(n_causes):
            stalls[i] = charge[i] * scale
    stalls[CAUSE_FILL_DRAIN] += last - end
    result = np.zeros(N_MC, dtype=np.int64)
    result[MC_CYCLES] = last
    result[MC_COMPUTE] = compute
    result[MC_TAIL] = last - end
    return result, stalls


@njit(**JIT)
def group_busy(work, rows, cols, lanes, sync):
    """``(steps, groups)`` busy cycles of each synchronisation group (its busiest PE,
    ``ceil(work / lanes)``) and ``(steps,)`` issued MAC slots, from ``work[step, y, x]``
    (``y < rows``, ``x < cols``; codes of :mod:`accelsim.sim.kernels.schedule`)."""
    n_steps, ny, nx = work.shape
    n_groups = sync_group_count(sync, rows, cols)
    out = np.zeros((n_steps, n_groups), dtype=np.int64)
    issued = np.zeros(n_steps, dtype=np.float64)
    for f in range(n_steps):
        total = 0
        for i in range(ny):
            for j in range(nx):
                w = np.int64(work[f, i, j])
                total += w
                b = (w + lanes - 1) // lanes
                g = sync_group_of(sync, i, j, cols)
                if b > out[f, g]:
                    out[f, g] = b
        issued[f] = total
    return out, issued
