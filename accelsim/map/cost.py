"""Energy and latency of a mapping from its access counts (Timeloop's model, our units).

Energy: every level's reads x its read energy and fills + updates x its write energy (per
bit, times the tensor's bits), MACs x MAC energy, network: every word delivered into the PE
array (fills of per-PE levels, or operands the MACs read from a shared level) x one hop.
Latency: compute steps (one MAC per lane per step) against each level's traffic per instance
over its ports; the slowest of them is the bottleneck (double buffering overlaps the rest).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from accelsim.map.access import FILLS, READS, UPDATES, AccessCounts
from accelsim.map.arch import Arch
from accelsim.map.nest import DIMS
from accelsim.numba_config import JIT


@dataclass(frozen=True)
class MappingCost:
    energy_pj: float
    cycles: float
    compute_cycles: float
    level_cycles: tuple[float, ...]
    bottleneck: str
    level_energy_pj: tuple[float, ...]
    mac_energy_pj: float
    noc_energy_pj: float
    utilization: float

    @property
    def edp(self) -> float:
        return self.energy_pj * self.cycles


def level_bits(counts: AccessCounts, arch: Arch) -> tuple[np.ndarray, np.ndarray]:
    """(read bits, write bits) per level, totals over instances."""
    bits = np.asarray(arch.tensor_bits, dtype=np.float64)
    reads = (counts.counts[:, :, READS] * bits).sum(axis=1)
    writes = ((counts.counts[:, :, FILLS] + counts.counts[:, :, UPDATES]) * bits).sum(axis=1)
    return reads, writes


def level_time(read_bits: float, write_bits: float, level, instances: int,
               dram_bytes_per_cycle: float | None, is_dram: bool) -> float:
    """Cycles a level's port(s) need for its traffic (0 when unbounded)."""
    if is_dram:
        if dram_bytes_per_cycle is None:
            return 0.0
        return (read_bits + write_bits) / 8.0 / dram_bytes_per_cycle
    per = max(int(instances), 1)
    if level.read_bits_per_cycle is None:
        return 0.0
    if level.shared_port:
        return (read_bits + write_bits) / per / level.read_bits_per_cycle
    wbw = level.write_bits_per_cycle or level.read_bits_per_cycle
    return max(read_bits / per / level.read_bits_per_cycle, write_bits / per / wbw)


def mapping_cost(counts: AccessCounts, arch: Arch, compute_cycles: float | None = None,
                 macs_charged: float | None = None) -> MappingCost:
    """Energy and latency of one mapping's counts (dense unless the caller passes the
    compute cycles and charged MACs found from the masks)."""
    reads, writes = level_bits(counts, arch)
    level_e = []
    times = []
    for i, lv in enumerate(arch.levels):
        level_e.append(reads[i] * lv.read_pj_per_bit + writes[i] * lv.write_pj_per_bit)
        times.append(level_time(reads[i], writes[i], lv, counts.instances[i],
                                arch.dram_bytes_per_cycle, i == 0))
    fan = arch.fanout_level
    bits = np.asarray(arch.tensor_bits, dtype=np.float64)
    if fan + 1 < len(arch.levels):
        delivered = float((counts.counts[fan + 1:, :, FILLS] * bits).sum())
    else:
        delivered = float((counts.macs_reads * bits).sum())
    noc = delivered * arch.noc_pj_per_bit_hop
    macs = float(counts.macs if macs_charged is None else macs_charged)
    mac_e = macs * arch.mac_pj
    compute = float(counts.steps if compute_cycles is None else compute_cycles)
    cycles = max([compute] + times)
    names = ["compute"] + [lv.name for lv in arch.levels]
    bottleneck = names[int(np.argmax([compute] + times))]
    pes = arch.rows * arch.cols * arch.lanes
    util = counts.macs / (pes * cycles) if cycles > 0 else 0.0
    return MappingCost(float(sum(level_e) + mac_e + noc), float(cycles), compute, tuple(times),
                       bottleneck, tuple(float(e) for e in level_e), mac_e, noc, float(util))


@dataclass(frozen=True)
class Densities:
    """Non-zero fractions the mapper ranks a layer's mappings by: its input activations, its
    weights and the output it stores (after the activation that follows it)."""

    act: float = 1.0
    weight: float = 1.0
    output: float = 1.0

    def rounded(self, step: float = 0.02) -> "Densities":
        """Densities on a grid of ``step`` (a mapping cache key: nearby layers share a search)."""
        r = lambda x: min(1.0, max(0.0, round(float(x) / step) * step))
        return Densities(r(self.act), r(self.weight), r(self.output))


@dataclass(frozen=True)
class SparseModel:
    """How a design charges a layer of given densities (``sim/loopnest.py``'s rules, expected
    values instead of masks): per level the multiplier of each tensor's non-MAC traffic
    (compressed sizes), the MAC slot fractions (issued, fully charged, gated), and the static
    energy per cycle."""

    ratios: tuple            # per level: (W, I, O) multipliers of non-MAC-driven accesses
    out_write: float         # DRAM output updates: coded size at activation width per psum word
    issue: float             # issued MAC slots per dense MAC (skipping)
    full: float              # MACs fully charged per dense MAC (effectual, or all when not gating)
    gated: float             # MACs gated per dense MAC
    static_pj_per_cycle: float   # leakage of every PE and the global buffer, per cycle
    clock_pj_per_pe_cycle: float
    clock_gating: bool
    gated_mac_pj: float
    operand_full: tuple = (1.0, 1.0, 1.0)    # W, I, psum: MAC-driven accesses in full per dense MAC
    operand_gated: tuple = (0.0, 0.0, 0.0)   # ... gated per dense MAC (skipped: neither)
    # load imbalance (compute term, :func:`imbalanced_compute`): which zeros are skipped
    # (inputs, weights), their densities, and the array's sync groups (``pe_array.sync``,
    # ``work_queue_depth``)
    skip: tuple = (False, False)
    skip_density: tuple = (1.0, 1.0)
    sync: str = "array"
    queue_depth: int = 1
    bounds: tuple = ()      # the layer's loop bounds (DIMS order; empty: no clipping)
    # actions at outer levels (accelsim.sim.tile_conditions): (level, child, tensor index,
    # kind, ((condition operand, its density), ...)), and the nest their tiles are cut from
    outer: tuple = ()
    outer_nest: object = None
    conv: tuple = (1, 1, 1, 1)   # imbalance: stride_h, stride_w, dil_h, dil_w (where windows meet)


def _ratio(shape: tuple, density: float, fmt, bits: int, samples: int = 1) -> float:
    """Expected coded bits per dense bit of ``samples`` tensors of per-sample ``shape``."""
    from accelsim.sim import storage

    n = float(np.prod(shape)) * samples
    if n <= 0:
        return 1.0
    if fmt.format == "ranked":
        return storage.expected_tensor_bits(tuple(shape), samples, density, fmt, bits) / (n * bits)
    whole = tuple(shape) if samples == 1 else (samples,) + tuple(shape)
    return float(storage.expected_bits(whole, density, fmt.format, bits, fmt.run_bits,
                                       fmt.index_bits)) / (n * bits)


def sparse_model(hw, arch: Arch, nest, densities: Densities) -> SparseModel:
    """The :class:`SparseModel` of ``hw`` for ``nest`` at ``densities`` (expected sizes of the
    storage formats at those densities, i.i.d. zeros)."""
    from accelsim.sim.design import resolve

    em = resolve(hw).energy
    p, s = hw.precision, hw.sparsity
    n, g, k, c, pp, q, r, s_ = nest.bounds
    h = (pp - 1) * nest.stride_h + (r - 1) * nest.dil_h + 1
    w = (q - 1) * nest.stride_w + (s_ - 1) * nest.dil_w + 1
    w_shape, a_shape = (g * k, c, r, s_), (g * c, h, w)
    da, dw, do = densities.act, densities.weight, densities.output
    w_on = _ratio(w_shape, dw, hw.storage.weights.on_chip, p.weight_bits)
    a_on = _ratio(a_shape, da, hw.storage.activations.on_chip, p.activation_bits, n)
    ratios = [(_ratio(w_shape, dw, hw.storage.weights.off_chip, p.weight_bits),
               _ratio(a_shape, da, hw.storage.activations.off_chip, p.activation_bits, n),
               _ratio((n * g * k * pp * q,), do, hw.storage.outputs.off_chip, p.activation_bits)
               if hw.storage.outputs.off_chip.format != "ranked" else
               _ratio((g * k, pp, q), do, hw.storage.outputs.off_chip, p.activation_bits, n))]
    for spec in hw.memory_hierarchy:
        fw, fi = spec.formats.get("weights"), spec.formats.get("inputs")
        ratios.append((_ratio(w_shape, dw, fw, p.weight_bits) if fw is not None else w_on,
                       _ratio(a_shape, da, fi, p.activation_bits, n) if fi is not None else a_on,
                       1.0))
    skip_a, skip_w = s.skip_zero_activations, s.skip_zero_weights
    issue = (da if skip_a else 1.0) * (dw if skip_w else 1.0)
    # an issued slot's operand is non-zero with probability 1 where zeros are skipped, else its
    # density; a condition on operands S holds on issue x prod of those (i.i.d. zeros)
    nonzero = {"inputs": 1.0 if skip_a else da, "weights": 1.0 if skip_w else dw}

    def live(condition) -> float:
        out = issue
        for operand in condition:
            out *= nonzero[operand]
        return out

    gating = s.gate_zero_operands
    gated = issue - live(s.gate_on) if gating else 0.0
    # per operand, as sim/loopnest._tensor_actions: the level's action, else gating's default
    operand_full, operand_gated = [issue] * 3, [0.0] * 3
    default = ("gate", tuple(s.gate_on)) if gating else None
    for ti, (t, name) in enumerate(zip("WIO", ("weights", "inputs", "outputs"))):
        inner = max(i for i, lv in enumerate(arch.levels) if t in lv.keeps)
        own = None
        if inner > 0:
            own = next(((a.kind, tuple(a.condition_on)) for a in hw.memory_hierarchy[inner - 1].actions
                        if a.target == name), None)
        action = own if own is not None else (None if t == "I" else default)
        if action is not None:
            operand_full[ti] = live(action[1])
            if action[0] == "gate":
                operand_gated[ti] = issue - operand_full[ti]
    return SparseModel(tuple(ratios), ratios[0][2] * p.activation_bits / arch.tensor_bits[2],
                       issue, issue - gated, gated,
                       arch.rows * arch.cols * em.pe_leakage_pj_per_cycle + em.glb_leakage_pj_per_cycle,
                       em.pe_clock_pj_per_cycle, bool(hw.low_power.clock_gating), em.gated_mac_pj,
                       tuple(operand_full), tuple(operand_gated), (bool(skip_a), bool(skip_w)),
                       (float(da), float(dw)), str(hw.pe_array.sync),
                       max(1, int(hw.pe_array.work_queue_depth)), tuple(nest.bounds),
                       _outer_actions(hw, arch, da, dw), nest,
                       conv=(nest.stride_h, nest.stride_w, nest.dil_h, nest.dil_w))


def _outer_actions(hw, arch: Arch, da: float, dw: float) -> tuple:
    """:attr:`SparseModel.outer` of a design at input / weight densities ``da`` / ``dw``."""
    from accelsim.sim.tile_conditions import outer_actions

    density = {"W": float(dw), "I": float(da)}
    return tuple((a.level, a.child, "WIO".index(a.tensor), a.kind,
                  tuple((o, density[o]) for o in a.condition)) for a in outer_actions(hw, arch))


def sparse_cost(counts: AccessCounts, arch: Arch, model: SparseModel, mapping) -> MappingCost:
    """Expected energy and latency of a mapping's dense ``counts`` on a layer charged as
    ``model`` says, by ``sim/loopnest.py``'s rules: compressed tensors move their coded size,
    MAC-driven accesses at each operand's innermost level follow the issued / fully charged /
    gated slots (leader in full), the network carries the operands delivered into the PEs and
    the psums leaving them, compute takes the issued slots (with skipping: each step lasts as
    long as the busiest PE of its sync group, :func:`imbalanced_compute`), leakage and clock
    per cycle."""
    from accelsim.sim.loopnest import _reduction_fanin, network_bits

    bits = np.asarray(arch.tensor_bits, dtype=np.float64)
    nl = len(arch.levels)
    inner = [max(i for i, lv in enumerate(arch.levels) if t in lv.keeps) for t in "WIO"]
    mac_reads = counts.macs_reads
    mac_upd = float(counts.counts[inner[2], 2, UPDATES])
    c = counts.counts.copy()
    for ti in range(3):
        c[inner[ti], ti, READS] -= mac_reads[ti]
    c[inner[2], 2, UPDATES] = 0.0
    c *= np.asarray(model.ratios, dtype=np.float64)[:nl, :, None]
    gated_bits = np.zeros(nl)
    if model.outer:     # outer-level actions: the expected live volume of each transfer
        from accelsim.sim.tile_conditions import expected_live

        for level, child, ti, kind, condition in model.outer:
            live = expected_live(model.outer_nest, mapping, child, tuple(o for o, _ in condition),
                                 dict(condition))
            for lvl, action in ((level, READS), (child, FILLS)):
                if kind == "gate":
                    gated_bits[lvl] += c[lvl, ti, action] * (1.0 - live) * bits[ti]
                c[lvl, ti, action] *= live
    full, issue, gated = model.full, model.issue, model.gated
    op_full = np.asarray(model.operand_full, dtype=np.float64)
    op_gated = np.asarray(model.operand_gated, dtype=np.float64)
    for ti in range(3):
        c[inner[ti], ti, READS] += mac_reads[ti] * op_full[ti]
    c[inner[2], 2, UPDATES] += mac_upd * op_full[2]
    c[0, 2, UPDATES] = counts.counts[0, 2, UPDATES] * model.out_write
    for ti in range(3):
        gated_bits[inner[ti]] += mac_reads[ti] * op_gated[ti] * bits[ti]
    gated_bits[inner[2]] += mac_upd * op_gated[2] * bits[2]
    reads = (c[:, :, READS] * bits).sum(axis=1)
    writes = ((c[:, :, FILLS] + c[:, :, UPDATES]) * bits).sum(axis=1)
    level_e, times = [], []
    for i, lv in enumerate(arch.levels):
        gated_pj = (lv.gated_pj_per_bit if lv.gated_pj_per_bit is not None
                    else lv.read_pj_per_bit * arch.gated_fraction)
        level_e.append(reads[i] * lv.read_pj_per_bit + writes[i] * lv.write_pj_per_bit
                       + gated_bits[i] * gated_pj)
        times.append(level_time(reads[i], writes[i], lv, counts.instances[i],
                                arch.dram_bytes_per_cycle, i == 0))
    fan = arch.fanout_level
    noc = network_bits(c, arch, fan, mac_reads * op_full, mac_upd * op_full[2],
                       _reduction_fanin(mapping, arch, fan)) * arch.noc_pj_per_bit_hop
    macs = float(counts.macs)
    mac_e = macs * (full * arch.mac_pj + gated * model.gated_mac_pj)
    compute = (imbalanced_compute(counts, arch, model, mapping) if any(model.skip)
               else float(counts.steps) * issue)
    cycles = max([compute] + times)
    names = ["compute"] + [lv.name for lv in arch.levels]
    bottleneck = names[int(np.argmax([compute] + times))]
    pes = arch.rows * arch.cols
    busy = macs * issue / max(arch.lanes, 1)
    static = cycles * model.static_pj_per_cycle + model.clock_pj_per_pe_cycle * (
        min(busy, pes * cycles) if model.clock_gating else pes * cycles)
    util = counts.macs / (pes * arch.lanes * cycles) if cycles > 0 else 0.0
    return MappingCost(float(sum(level_e) + mac_e + noc + static), float(cycles), compute,
                       tuple(times), bottleneck, tuple(float(e) for e in level_e), mac_e, noc,
                       float(util))


# -- load imbalance ----------------------------------------------------------------------------
#: dims that index each operand: a PE block's work changes along these when its zeros are skipped
_INDEXES = {"inputs": frozenset("NGCPQRS"), "weights": frozenset("GKCRS")}
#: the sync recurrence of groups that drift apart (``q > 1``) is run on drawn work: between
#: these many replicas (as many as the Monte Carlo budget allows) of at most this many steps
_REPLICAS = 4
_MAX_REPLICAS = 256
_MAX_FOLDS = 256
#: Monte Carlo steps of :func:`mc_step_max` (lock-step): as many as the budget allows
_DRAWS, _MAX_DRAWS = 512, 65536
_MC_BUDGET = 100_000
#: reduction positions per PE block up to which its work is drawn exactly (else normal)
_EXACT_REDUCTION = 16


def _binomial_pmf(n: int, p: float) -> np.ndarray:
    """P(X = x), x = 0..n, of X ~ Binomial(n, p)."""
    if p <= 0.0 or p >= 1.0 or n == 0:
        out = np.zeros(n + 1)
        out[n if p >= 1.0 else 0] = 1.0
        return out
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])
    x = np.arange(n + 1)
    log = logfact[n] - logfact[x] - logfact[n - x] + x * np.log(p) + (n - x) * np.log1p(-p)
    out = np.exp(log - log.max())
    return out / out.sum()


def _busy_law(n: int, p: float, m: int, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """(busy values, their CDF) of ``ceil(m x Binomial(n, p) / lanes)``."""
    pmf = _binomial_pmf(int(n), float(p))
    busy = (int(m) * np.arange(int(n) + 1) + int(lanes) - 1) // int(lanes)
    values = np.unique(busy)
    law = np.bincount(np.searchsorted(values, busy), weights=pmf, minlength=len(values))
    cdf = np.minimum(np.cumsum(law), 1.0)
    cdf[-1] = 1.0
    return values, cdf


@lru_cache(maxsize=4096)
def _block_ids(pattern: tuple, folds: int, dims: frozenset) -> np.ndarray:
    """Per step (the first ``folds``), the index of the block of a PE it works on:
    ``pattern`` the step loops outer to inner as ``(factor, label)``; the block changes along
    loops whose label is in ``dims`` only."""
    t = np.arange(folds, dtype=np.int64)
    ids = np.zeros(folds, dtype=np.int64)
    mult = 1
    for f, d in reversed(pattern):       # inner to outer: the step's digits
        if d in dims:
            ids += (t % f) * mult
            mult *= f
        t //= f
    return np.unique(ids, return_inverse=True)[1]


#: the operands a dim indexes: inputs only, weights only, both (a step loop over it changes
#: those operands' blocks)
_CLASS = {d: "I" if d not in _INDEXES["weights"] else "W" if d not in _INDEXES["inputs"] else "B"
          for d in DIMS}


def _classes(dims: frozenset) -> frozenset:
    """The dim classes (:data:`_CLASS`) along which a block over the skipped operands whose
    dims are ``dims`` changes."""
    return frozenset(c for c in "IWB" if any(_CLASS[d] == c for d in dims))


def _step_pattern(loops: tuple) -> tuple:
    """The step loops ``(factor, dim)`` outer to inner as ``(factor, class)``: adjacent loops of
    a class merged, and only the inner ones that make the first ``_MAX_FOLDS`` steps (all a
    drift run looks at), so mappings that step alike share their Monte Carlo runs."""
    merged: list = []
    for f, d in loops:
        if merged and merged[-1][1] == _CLASS[d]:
            merged[-1] = (merged[-1][0] * f, _CLASS[d])
        else:
            merged.append((f, _CLASS[d]))
    out, steps = [], 1
    for f, c in reversed(merged):
        if steps >= _MAX_FOLDS:
            break
        out.append((f, c))
        steps *= f
    return tuple(reversed(out))


def _folds(pattern: tuple) -> int:
    return min(_MAX_FOLDS, math.prod(f for f, _ in pattern) or 1)


def _drift(values: np.ndarray, ids: np.ndarray, q: int) -> float:
    """Mean busy cycles per step of groups that may drift ``q`` steps apart
    (``sim/kernels/schedule.py``'s recurrence, no fill/drain): ``values[block, replica,
    group]`` the groups' busy cycles on each distinct block, ``ids`` the block of each step."""
    folds = len(ids)
    last = _drift_last(np.ascontiguousarray(values, dtype=np.float64),
                       np.ascontiguousarray(ids, dtype=np.int64), int(q))
    return float(last.mean()) / folds


@njit(**{**JIT, "fastmath": False})
def _drift_last(values, ids, q):
    """Per replica, the finish of the last step of :func:`_drift`'s recurrence: a group starts
    a step when it finished the previous one and every group finished the step ``q`` before
    (each replica's groups on their own)."""
    folds = ids.shape[0]
    reps, groups = values.shape[1], values.shape[2]
    finish = np.zeros((reps, groups))
    ends = np.zeros((folds, reps))
    for f in range(folds):
        for r in range(reps):
            gate = ends[f - q, r] if f >= q else 0.0
            top = 0.0           # busy cycles are never negative
            for g in range(groups):
                x = max(finish[r, g], gate) + values[ids[f], r, g]
                finish[r, g] = x
                top = max(top, x)
            ends[f, r] = top
    return ends[folds - 1].copy()


@lru_cache(maxsize=8192)
def expected_step_max(n: int, p: float, m: int, lanes: int, k: int, groups: int, q: int = 1,
                      pattern: tuple = (), rel: frozenset = frozenset(DIMS)) -> float:
    """Expected busy cycles per step of an array whose PEs each issue ``m x Binomial(n, p)``
    slots per step and are busy ``ceil(slots / lanes)`` cycles: ``groups`` i.i.d. sync groups
    of ``k`` i.i.d. PEs, a group's step as long as its busiest PE. ``q = 1`` (lock-step):
    E[max over all PEs], exact from the CDF (E[max] = sum_s 1 - F(s)^(k groups)). ``q > 1``:
    groups run up to ``q`` steps apart (``sim/kernels/schedule.py``'s recurrence) over the
    steps of ``pattern`` (:func:`_block_ids`; a PE keeps its work while its block along the
    dims ``rel`` of the skipped operands stays), at
    most ``_MAX_FOLDS`` of them, ``_REPLICAS`` to ``_MAX_REPLICAS`` times, on group maxima
    drawn from their exact law with a fixed seed."""
    values, cdf = _busy_law(n, p, m, lanes)
    if q <= 1 or groups <= 1:       # lock-step (or one group): the max over all its PEs
        tail = 1.0 - cdf[:-1] ** (k * groups)
        return float(values[0] + np.sum(np.diff(values) * tail))
    ids = _block_ids(pattern, _folds(pattern), _classes(rel))
    group_cdf = cdf ** k
    group_cdf[-1] = 1.0
    reps = max(_REPLICAS, min(_MAX_REPLICAS, _MC_BUDGET // (len(ids) * groups * 4)))
    u = np.random.default_rng(0).random((int(ids.max()) + 1, reps, groups))
    draws = values[np.searchsorted(group_cdf, u, side="left")].astype(np.float64)
    return _drift(draws, ids, q)


@lru_cache(maxsize=4096)
def mc_step_max(e_in: int, e_w: int, e_both: int, da: float, dw: float, lanes: int,
                a_ids: tuple, w_ids: tuple, nx: int, ny: int, sync: str, q: int = 1,
                pattern: tuple = ()) -> float:
    """:func:`expected_step_max` by Monte Carlo where PEs share operands: a PE block spans
    ``e_in`` positions of the dims of inputs only (N, P, Q), ``e_w`` of weights only (K) and
    ``e_both`` of both (G, C, R, S); its work is ``sum_c A_c W_c``, ``A_c ~ Binomial(e_in,
    da)`` the non-zero activations at reduction position ``c``, ``W_c ~ Binomial(e_w, dw)``
    the non-zero weights (an operand not skipped: density 1). PE ``x * ny + y`` of the
    ``nx`` x ``ny`` PEs (X, Y) works on activation window ``a_ids[pe]`` and weight block
    ``w_ids[pe]``: PEs with the same window share its ``A`` (filters side by side, or
    row-stationary diagonals), with the same block its ``W``. Fixed seed: the mean of the
    step's max over ``_DRAWS`` to ``_MAX_DRAWS`` steps (``q = 1`` or ``array``: lock-step;
    the PEs' mean work as a control variate), or the drift recurrence of the sync groups over
    the steps of ``pattern`` (a PE keeps its activations while the steps move along K, its
    weights along N, P, Q), ``_REPLICAS`` to ``_MAX_REPLICAS`` times. Over more than
    ``_EXACT_REDUCTION`` reduction positions the work is drawn normal with the exact means and
    covariances."""
    if da <= 0.0 or dw <= 0.0 or e_in * e_w * e_both == 0:
        return 0.0
    rng = np.random.default_rng(0)
    pes = len(a_ids)
    size = max(1, pes * (e_both if e_both <= _EXACT_REDUCTION else 2))
    if q <= 1 or sync == "array":
        steps = max(_DRAWS, min(_MAX_DRAWS, _MC_BUDGET // size))
        reps = 1
        a_steps = w_steps = np.arange(steps)
    else:
        folds = _folds(pattern)
        reps = max(_REPLICAS, min(_MAX_REPLICAS, _MC_BUDGET // (size * folds)))
        steps = max(8, min(folds, _MC_BUDGET // (size * reps)))
        a_steps = _block_ids(pattern, folds, frozenset("IB"))[:steps]
        w_steps = _block_ids(pattern, folds, frozenset("WB"))[:steps]

    a_pe, w_pe = np.asarray(a_ids), np.asarray(w_ids)
    if e_both <= _EXACT_REDUCTION:
        def draw(n: int, density: float, blocks: int, ids: np.ndarray) -> np.ndarray:
            shape = (blocks, reps, int(ids.max()) + 1, e_both)
            if density >= 1.0:
                return np.full(shape, float(n))
            return rng.binomial(n, density, size=shape).astype(np.float64)

        a = draw(e_in, da, int(a_steps.max()) + 1, a_pe)[a_steps][:, :, a_pe]
        w = draw(e_w, dw, int(w_steps.max()) + 1, w_pe)[w_steps][:, :, w_pe]
        work = np.einsum("srpt,srpt->srp", a, w)
    else:
        # many reduction positions: normal work with the exact means and covariances (PEs
        # sharing a window covary through its A_c, sharing a block through its W_c)
        ma, va = e_in * da, e_in * da * (1.0 - da)
        mw, vw = e_w * dw, e_w * dw * (1.0 - dw)
        var_a, var_w = e_both * va * mw * mw, e_both * vw * ma * ma
        var_x = (va + ma * ma) * (vw + mw * mw) - (ma * mw) ** 2     # of one A_c W_c
        var_e = max(0.0, e_both * var_x - var_a - var_w)
        za = rng.standard_normal((int(a_steps.max()) + 1, reps, int(a_pe.max()) + 1))
        zw = rng.standard_normal((int(w_steps.max()) + 1, reps, int(w_pe.max()) + 1))
        ze = rng.standard_normal((len(a_steps), reps, pes))
        work = np.maximum(0.0, e_both * ma * mw + math.sqrt(var_a) * za[a_steps][:, :, a_pe]
                          + math.sqrt(var_w) * zw[w_steps][:, :, w_pe] + math.sqrt(var_e) * ze)
    busy = np.ceil(work / lanes - 1e-9).reshape(len(a_steps), reps, nx, ny)
    if e_both > _EXACT_REDUCTION:
        busy = np.where(work > 0, work / lanes + (lanes - 1) / (2 * lanes), 0.0).reshape(
            busy.shape)                                 # E[ceil(x / L)] ~ x / L + (L - 1) / 2L
    if q <= 1 or sync == "array":
        # control variate: the PEs' mean work per lane has a known expectation
        mean = work.mean(axis=2).reshape(-1) / lanes
        exact = e_in * min(da, 1.0) * e_w * min(dw, 1.0) * e_both / lanes
        return float((busy.max(axis=(2, 3)).reshape(-1) - mean).mean()) + exact
    group = {"row": busy.max(axis=2), "column": busy.max(axis=3),
             "decoupled": busy.reshape(len(a_steps), reps, -1)}[sync]
    return _drift(group, np.arange(len(a_steps)), q)


def _pe_blocks(per_dim: dict, ext: dict, conv: tuple) -> tuple:
    """``(activation window ids, weight block ids, PEs along X, along Y)`` of the PE array
    (PE ``x * ny + y``) from the spatial loops at and above the fan-out: a PE's window starts
    at its offsets (``h = p * stride + r * dilation``), equal starts are one window."""
    def offsets(axis: str) -> list:
        out = [dict.fromkeys(DIMS, 0)]
        for d in DIMS:
            stride, strides = ext[d], []
            for f, _ in reversed(per_dim[d]):
                strides.append(stride)
                stride *= f
            for (f, k), st in zip(per_dim[d], reversed(strides)):
                if k == axis:
                    out = [dict(o, **{d: o[d] + i * st}) for o in out for i in range(f)]
        return out

    sh, sw, dh, dwd = conv
    xs, ys = offsets("X"), offsets("Y")
    windows: dict = {}
    blocks: dict = {}
    a_ids, w_ids = [], []
    for ox in xs:
        for oy in ys:
            o = {d: ox[d] + oy[d] for d in DIMS}
            a = (o["N"], o["G"], o["C"], o["P"] * sh + o["R"] * dh, o["Q"] * sw + o["S"] * dwd)
            w = (o["G"], o["K"], o["C"], o["R"], o["S"])
            a_ids.append(windows.setdefault(a, len(windows)))
            w_ids.append(blocks.setdefault(w, len(blocks)))
    return tuple(a_ids), tuple(w_ids), len(xs), len(ys)


@lru_cache(maxsize=16384)
def _dim_classes(loops: tuple, block: int, bound: int) -> dict:
    """Per step position of one dim: ``{((block extent e, PE positions along X holding at
    least e, along Y), ... per extent present, largest first): steps}``. ``loops``: the dim's
    loops at and above the fan-out, outer to inner, as ``(factor, kind)`` with kind ``T`` (a
    step loop), ``X`` or ``Y`` (spatial); ``block`` its extent in a PE block, clipped where a
    remainder tile ends at the bound."""
    stride, strides = block, []
    for f, _ in reversed(loops):
        strides.append(stride)
        stride *= f
    strides.reverse()

    def starts(kind: str) -> np.ndarray:
        out = np.zeros(1, dtype=np.int64)
        for (f, k), st in zip(loops, strides):
            if k == kind:
                out = (out[:, None] + np.arange(f, dtype=np.int64)[None, :] * st).ravel()
        return out

    t, x, y = starts("T"), starts("X"), starts("Y")
    start = t[:, None, None] + x[None, :, None] + y[None, None, :]
    live = start < bound
    ax = live.any(axis=2).sum(axis=1)
    ay = live.any(axis=1).sum(axis=1)
    clipped = np.where(live, np.minimum(block, bound - start), 0)
    out: dict = {}
    for i in range(len(t)):
        if not live[i].any():
            key: tuple = ((block, 0, 0),)
        else:         # per block extent present: the positions holding at least that much
            key = tuple((int(e), int((clipped[i] >= e).any(axis=1).sum()),
                         int((clipped[i] >= e).any(axis=0).sum()))
                        for e in sorted(set(clipped[i][live[i]].tolist()), reverse=True))
        out[key] = out.get(key, 0) + 1
    return out


def _class_step(pick: tuple, rel: frozenset, kind: dict, p: float, da: float, dw: float,
                lanes: int, sync: str, q: int, pattern: tuple, shared: tuple | None) -> float:
    """Expected busy cycles of a step whose dims (``DIMS`` order) have ``pick[d] = (block
    extent, PE positions along X, along Y)``; ``shared``: the array's :func:`_pe_blocks`
    where every PE holds data and they share operands beyond the product of the dims (else
    None)."""
    dx = dy = n = m = 1
    pes = [1] * 6                          # X: inputs only, weights only, both; Y: the same
    extents = [1, 1, 1]
    for d, (e, ax, ay) in zip(DIMS, pick):
        if ax == 0 or ay == 0:
            return 0.0
        if d in rel:
            dx, dy, n = dx * ax, dy * ay, n * e
            pes[kind[d]] *= ax
            pes[3 + kind[d]] *= ay
        else:
            m *= e
        extents[kind[d]] *= e
    both = "K" in rel and "P" in rel
    if shared is None and not both:        # independent PEs: exact from the CDF
        k, groups = {"array": (dx * dy, 1), "row": (dx, dy), "column": (dy, dx),
                     "decoupled": (1, dx * dy)}[sync]
        return expected_step_max(n, p, m, lanes, k, groups, q, pattern if q > 1 else (), rel)
    if shared is None:                     # the product of the dims, as window / block ids
        xi, xw, xc, yi, yw, yc = pes
        grid = np.indices((xi, xw, xc, yi, yw, yc)).reshape(6, -1)
        a_ids = tuple(np.ravel_multi_index((grid[0], grid[2], grid[3], grid[5]),
                                           (xi, xc, yi, yc)).tolist())
        w_ids = tuple(np.ravel_multi_index((grid[1], grid[2], grid[4], grid[5]),
                                           (xw, xc, yw, yc)).tolist())
        shared = (a_ids, w_ids, xi * xw * xc, yi * yw * yc)
    a_ids, w_ids, nx, ny = shared
    return mc_step_max(extents[0], extents[1], extents[2],
                       round(float(da if "P" in rel else 1.0), 6),
                       round(float(dw if "K" in rel else 1.0), 6), lanes, a_ids, w_ids, nx, ny,
                       sync, q, pattern if q > 1 else ())


def imbalanced_compute(counts: AccessCounts, arch: Arch, model: SparseModel, mapping) -> float:
    """Expected compute cycles of ``mapping`` with zero skipping, load imbalance included:
    summed over the steps (temporal loops at and above the fan-out level), the expected busy
    cycles of the slowest sync group.

    Assumptions (masks unknown: i.i.d. zeros at the model's densities; an operand at density 1
    skips nothing). A PE's issued slots in a step are ``sum_c A_c W_c`` over the reduction
    positions ``c`` of its block (G, C, R, S), ``A_c ~ Binomial(e_in, da)`` its non-zero
    activations there (N, P, Q extent ``e_in``), ``W_c ~ Binomial(e_w, dw)`` its non-zero
    weights (K extent ``e_w``); with one operand skipped that is ``m x Binomial(n, p)``. Slots
    are independent, also where conv windows of one block re-read an activation. Across PEs:
    PEs sharing an activation window (filters side by side; row stationary's diagonals) share
    its ``A``, PEs sharing a weight block its ``W``; partly overlapping windows (stride below
    the filter) are independent, and padding is not modelled (the nest has none). Which PEs
    wait for each other: ``sim/kernels/schedule.py``'s sync groups, ``array`` all PEs each
    step, ``row`` (an array row, along X), ``column`` (along Y), ``decoupled`` (one PE), the
    last three drifting up to ``work_queue_depth`` steps apart (the recurrence run on drawn
    work; step loops that keep a PE's blocks keep its work: no queue smooths that). Exact from
    the CDF where PEs are independent and lock-step (:func:`expected_step_max`), else seeded
    Monte Carlo (:func:`mc_step_max`). Remainder tiles: per step only the PEs whose block holds
    data; where their clipped blocks differ, the longest of, per extent ``e``, the max over the
    PEs holding at least ``e`` as if all held ``e`` (a lower bound of the max over all)."""
    fan = arch.fanout_level
    da, dw = model.skip_density
    if not any(model.skip):
        return float(counts.steps) * model.issue
    skip_a = model.skip[0] and da < 1.0
    skip_w = model.skip[1] and dw < 1.0
    rel = ((_INDEXES["inputs"] if skip_a else frozenset())
           | (_INDEXES["weights"] if skip_w else frozenset()))
    p = round(float((da if skip_a else 1.0) * (dw if skip_w else 1.0)), 6)
    bounds = dict(zip(DIMS, model.bounds)) if model.bounds else {}
    per_dim: dict = {d: [] for d in DIMS}      # loops at and above the fan-out, outer to inner
    ext = dict.fromkeys(DIMS, 1)
    for i, lv in enumerate(mapping.levels):
        for loop in lv.temporal + lv.spatial:
            if loop.factor <= 1:
                continue
            if i > fan:
                ext[loop.dim] *= loop.factor
            else:
                per_dim[loop.dim].append((loop.factor, loop.axis if loop.spatial else "T"))
    pattern = _step_pattern(tuple((loop.factor, loop.dim) for i, lv in enumerate(mapping.levels)
                                  if i <= fan for loop in lv.temporal if loop.factor > 1))
    lanes = max(int(arch.lanes), 1)
    q = 1 if model.sync == "array" else max(1, int(model.queue_depth))
    kind = {d: 0 if d not in _INDEXES["weights"] else 1 if d not in _INDEXES["inputs"] else 2
            for d in DIMS}                     # inputs only, weights only, both
    # step classes: per dim, the PE positions holding data at each of its step positions and
    # their block extent (remainder tiles)
    hists = []
    for d in DIMS:
        h = (_dim_classes(tuple(per_dim[d]), ext[d], bounds.get(d, 1 << 40)) if per_dim[d]
             else {((min(ext[d], bounds.get(d, ext[d])), 1, 1),): 1})
        hists.append((d, sorted(h.items(), key=lambda kv: -kv[1])))
    while math.prod(len(h) for _, h in hists) > 256:     # keep the most frequent of the largest
        j = max(range(len(hists)), key=lambda i: len(hists[i][1]))
        d, h = hists[j]
        hists[j] = (d, [(h[0][0], sum(c for _, c in h))])
    # PEs sharing activation windows beyond the product of the dims (row stationary's
    # diagonals: p + r equal), where activations are skipped
    full = {d: (math.prod(f for f, k in per_dim[d] if k == "X"),
                math.prod(f for f, k in per_dim[d] if k == "Y")) for d in DIMS}
    shared = None
    spatial = {d for d in DIMS if full[d] != (1, 1)}
    if skip_a and ({"P", "R"} <= spatial or {"Q", "S"} <= spatial):   # windows can meet
        blocks = _pe_blocks(per_dim, ext, model.conv)
        if len(set(blocks[0])) < math.prod(fx * fy for d, (fx, fy) in full.items()
                                           if d in _INDEXES["inputs"]):
            shared = blocks
    total = 0.0
    for combo in itertools.product(*(h for _, h in hists)):
        count = math.prod(c for _, c in combo)
        # PEs with blocks of different extents (remainder tiles): the max over the PEs holding
        # at least e, as if all held e, for the e of each dim that gives the longest step
        step = 0.0
        for pick in itertools.product(*(key for key, _ in combo)):
            whole = all((ax, ay) == full[d] for d, (_, ax, ay) in zip(DIMS, pick))
            step = max(step, _class_step(pick, rel, kind, p, da, dw, lanes, model.sync, q,
                                         pattern, shared if whole else None))
        total += count * step
    return float(total)
