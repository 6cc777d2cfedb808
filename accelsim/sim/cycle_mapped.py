"""The ``cycle`` fidelity of designs with a ``memory_hierarchy``: per-step demands for the
event-driven kernel :func:`accelsim.sim.kernels.mapped_cycle.mapped_cycle`.

Steps are the outer temporal steps of the mapping (the temporal loops at and above the fan-out
level, outermost first, as :func:`accelsim.map.sparse.step_work` enumerates them). Each group's
busy cycles per step come from the real masks (or the dense closed form). Each level's traffic
is the fast model's (the per-level, per-tensor counts ``_sample`` computes, after compression,
gating and residency), placed on the steps that cause it:

- a tile of tensor ``t`` at level ``L`` changes when a temporal step loop above ``L`` that
  indexes ``t`` advances (the loops inside it wrap): the fills of ``L`` (its writes) and the
  parent's reads that feed them are *fill* requests of those steps; an output tile is drained
  after the step before it changes (and after the last): the parent's updates are *drain*
  requests; a per-PE level whose tile also changes inside a step (a relevant temporal loop of a
  per-PE level above it) and the MAC-driven accesses of each operand's innermost level are
  *stream* requests, spread over steps by their issued MACs;
- each port serves its level's total at the fast model's rate: ``level time / level bits``
  (``level_time``; DRAM's time model included, metadata ports too), so every port is busy
  exactly its fast-model time and ``cycles >= fast``; a level with time 0 is unbounded.
"""
from __future__ import annotations

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.map.access import FILLS, READS, UPDATES
from accelsim.map.arch import Arch
from accelsim.sim.kernels import mapped_cycle as mc
from accelsim.sim.kernels import schedule as sch

#: loop dimensions that index each tensor (R, S index the inputs through the window)
RELEVANT = {0: frozenset("GKCRS"), 1: frozenset("NGCPQRS"), 2: frozenset("NGKPQ")}
CLASSES = ("fill", "stream", "drain")


def step_loops(mapping, fan: int) -> list[tuple[int, str, int]]:
    """``(level, dim, factor)`` of the temporal step loops, outermost first."""
    return [(lv, loop.dim, int(loop.factor)) for lv, loop in mapping.flat()
            if lv <= fan and not loop.spatial]


def tile_period(mapping, fan: int, level: int, tensor: int, n_steps: int) -> int | None:
    """Steps between changes of ``level``'s tile of ``tensor`` (changes at steps ``0, P, 2P,
    ...``), or None when it also changes inside a step (a relevant temporal loop of a per-PE
    level above it)."""
    relevant = RELEVANT[tensor]
    if level > fan:
        for lv, loop in mapping.flat():
            if fan < lv < level and not loop.spatial and loop.dim in relevant:
                return None
    period = 1
    for lv, dim, factor in reversed(step_loops(mapping, fan)):   # innermost first
        if lv < level and dim in relevant:
            return period
        period *= factor
    return n_steps


def _place(out: np.ndarray, kind: int, total: float, period: int | None,
           weights: np.ndarray) -> None:
    """Add ``total`` bits to ``out[class, step]``: fill events at multiples of ``period``,
    drain events after the step before each change and after the last, or streamed."""
    if total <= 0.0:
        return
    n = out.shape[1]
    if period is None or kind == mc.CLASS_STREAM:
        out[mc.CLASS_STREAM] += total * weights
        return
    events = -(-n // period)
    if kind == mc.CLASS_FILL:
        out[kind, 0::period] += total / events
    else:
        out[kind, period - 1::period] += total / events
        if n % period:
            out[kind, n - 1] += total / events


def level_profiles(mapping, arch: Arch, c: np.ndarray, n_steps: int,
                   weights: np.ndarray) -> np.ndarray:
    """``(levels, 2 directions (read, write), 2 buffers (single, double), 3 classes, steps)``
    bits, from ``c[level, tensor, action]`` counts (the fast model's, in words of each tensor's
    width) placed on the steps that cause them; buffer: whether the receiving tile's level is
    double-buffered."""
    fan = arch.fanout_level
    bits = np.asarray(arch.tensor_bits, dtype=np.float64)
    n_lv = len(arch.levels)
    out = np.zeros((n_lv, 2, 2, 3, n_steps))
    keeps = [[t in lv.keeps for t in "WIO"] for lv in arch.levels]
    inner = [max(i for i in range(n_lv) if keeps[i][t]) for t in range(3)]
    for lv in range(n_lv):
        for t in range(3):
            child = next((i for i in range(lv + 1, n_lv) if keeps[i][t]), None)
            fills = float(c[lv, t, FILLS]) * bits[t]
            if fills > 0.0:
                db = int(arch.levels[lv].double_buffered)
                _place(out[lv, 1, db], mc.CLASS_FILL, fills,
                       tile_period(mapping, fan, lv, t, n_steps), weights)
            # reads feed the child's fills, updates take its drains (or stream to the MACs)
            for action, direction, kind in ((READS, 0, mc.CLASS_FILL), (UPDATES, 1, mc.CLASS_DRAIN)):
                total = float(c[lv, t, action]) * bits[t]
                if total <= 0.0:
                    continue
                if child is None or lv == inner[t]:
                    _place(out[lv, direction, 0], mc.CLASS_STREAM, total, None, weights)
                else:
                    db = int(arch.levels[child].double_buffered)
                    _place(out[lv, direction, db], kind, total,
                           tile_period(mapping, fan, child, t, n_steps), weights)
    return out


def port_demands(profiles: np.ndarray, arch: Arch, times, meta_times, reads, writes,
                 instances) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``fill (2, S, P)``, ``stream (S, P)``, ``drain (2, S, P)`` service cycles and each
    port's level: every bounded port's profile scaled to its fast-model busy time."""
    cols: list[np.ndarray] = []    # (2 buffers, 3 classes, S) service cycles per port
    level_of: list[int] = []

    def add(profile: np.ndarray, busy: float, level: int) -> None:
        total = float(profile.sum())
        if busy > 0.0 and total > 0.0:
            cols.append(profile * (busy / total))
            level_of.append(level)

    names = {lv.name: i for i, lv in enumerate(arch.levels)}
    for i, lv in enumerate(arch.levels):
        if times[i] <= 0.0:
            continue
        if i == 0 or lv.shared_port:
            add(profiles[i, 0] + profiles[i, 1], float(times[i]), i)
        else:
            per = max(int(instances[i]), 1)
            wbw = lv.write_bits_per_cycle or lv.read_bits_per_cycle
            add(profiles[i, 0], float(reads[i]) / per / lv.read_bits_per_cycle, i)
            add(profiles[i, 1], float(writes[i]) / per / wbw, i)
    for name, busy in meta_times:   # a metadata port follows its level's traffic
        i = names[name[:-len("_metadata")]]
        add(profiles[i, 0] + profiles[i, 1], float(busy), i)
    n_steps = profiles.shape[-1]
    n_ports = len(cols)
    fill = np.zeros((2, n_steps, n_ports))
    stream = np.zeros((n_steps, n_ports))
    drain = np.zeros((2, n_steps, n_ports))
    for p, col in enumerate(cols):
        fill[:, :, p] = col[:, mc.CLASS_FILL]
        stream[:, p] = col[:, mc.CLASS_STREAM].sum(axis=0)
        drain[:, :, p] = col[:, mc.CLASS_DRAIN]
    return fill, stream, drain, np.array(level_of, dtype=np.int64)


def busy_groups(work: np.ndarray | None, uniform: tuple[int, int, int, int], arch: Arch,
                sync: int) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, groups)`` busy cycles and ``(steps,)`` issued MACs: from ``work`` (steps, Y,
    X), or, when None, the dense closed form ``uniform = (steps, ys, xs, work per PE)``."""
    rows, cols, lanes = arch.rows, arch.cols, arch.lanes
    if work is not None:
        if work.shape[1] > rows or work.shape[2] > cols:
            raise AccelsimError(f"cycle fidelity: a step spreads over {work.shape[1]}x"
                                f"{work.shape[2]} PEs, more than the {rows}x{cols} array")
        return mc.group_busy(work, rows, cols, lanes, sync)
    steps, ys, xs, block = uniform
    busy = -(-int(block) // lanes)
    pe = np.zeros((rows, cols), dtype=np.int64)
    pe[:ys, :xs] = busy
    if sync == sch.SYNC_ARRAY:
        per = pe.max(keepdims=True).reshape(1)
    elif sync == sch.SYNC_ROW:
        per = pe.max(axis=1)
    elif sync == sch.SYNC_COLUMN:
        per = pe.max(axis=0)
    else:
        per = pe.reshape(-1)
    gbusy = np.ascontiguousarray(np.broadcast_to(per, (steps, per.size)))
    return gbusy, np.full(steps, float(ys * xs * block))


def run(gbusy: np.ndarray, issued: np.ndarray, profiles_of, arch: Arch, overhead: int,
        depth: int, times, meta_times, reads, writes, instances) -> tuple[np.ndarray, np.ndarray]:
    """Kernel result and stalls by cause (see :mod:`accelsim.sim.kernels.mapped_cycle`);
    ``profiles_of(weights)``: :func:`level_profiles` for the per-step stream weights."""
    n_steps = gbusy.shape[0]
    total = float(issued.sum())
    weights = issued / total if total > 0 else np.full(n_steps, 1.0 / max(n_steps, 1))
    fill, stream, drain, level_of = port_demands(profiles_of(weights), arch, times, meta_times,
                                                 reads, writes, instances)
    return mc.mapped_cycle(gbusy, int(overhead), int(depth), fill, stream, drain, level_of,
                           len(arch.levels))


def cause_names(arch: Arch) -> list[str]:
    """Row keys of the stall causes, in the kernel's order."""
    out = ["fill_drain_cycles"]
    for lv in arch.levels:
        out += [f"stall_{cls}_{lv.name}_cycles" for cls in CLASSES]
    return out


def apply(row: dict, energy: dict, *, work, uniform, mapping, arch: Arch, c: np.ndarray,
          times, meta_times, reads, writes, instances, stats: np.ndarray, hw, em,
          overhead: int = 0) -> None:
    """Replace the fast figures of ``row`` that depend on time by the cycle-level run's: cycles,
    stalls by cause, utilisation, leakage and clock energy (as ``_sample`` derives them).
    ``overhead``: cycles every step pays before its work (a systolic fold's fill and drain)."""
    sync = sch.SYNC_CODES[hw.pe_array.sync]
    depth = max(1, int(hw.pe_array.work_queue_depth))
    gbusy, issued = busy_groups(work, uniform, arch, sync)
    n_steps = int(np.prod([f for _, _, f in step_loops(mapping, arch.fanout_level)]))
    if n_steps != gbusy.shape[0]:
        raise AccelsimError(f"cycle fidelity: {gbusy.shape[0]} steps of work but the mapping's "
                            f"step loops make {n_steps}")
    result, stalls = run(gbusy, issued,
                         lambda w: level_profiles(mapping, arch, c, gbusy.shape[0], w),
                         arch, int(overhead), depth, times, meta_times, reads, writes, instances)
    cycles = float(result[mc.MC_CYCLES])
    compute = float(result[mc.MC_COMPUTE])
    row["cycles"] = cycles
    row["compute_cycles"] = compute
    row["stall_cycles"] = cycles - compute
    names = cause_names(arch)
    for name, value in zip(names, stalls):
        row[name] = float(value)
    per_level = stalls[1:].reshape(len(arch.levels), 3).sum(axis=1)
    row["dram_stall_cycles"] = float(per_level[0])
    row["glb_stall_cycles"] = float(per_level[1:].sum())
    pes = arch.rows * arch.cols
    row["utilization"] = (row["macs_issued"] / (pes * arch.lanes * cycles)) if cycles > 0 else 0.0
    lp = hw.low_power
    powered = max(pes * cycles - stats[sch.ST_GATED_PE_CYCLES], 0.0)
    clocked = min(stats[sch.ST_ACTIVE_PE_CYCLES], powered) if lp.clock_gating else powered
    energy["leakage"] = (powered * em.pe_leakage_pj_per_cycle + cycles * em.glb_leakage_pj_per_cycle
                         + stats[sch.ST_WAKEUPS] * em.wakeup_energy_pj)
    energy["clock"] = clocked * em.pe_clock_pj_per_cycle
    row["energy_leakage_pj"] = energy["leakage"]
    row["energy_clock_pj"] = energy["clock"]
    row["energy_pj"] = sum(energy.values())
