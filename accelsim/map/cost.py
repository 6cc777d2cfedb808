"""Energy and latency of a mapping from its access counts (Timeloop's model, our units).

Energy: every level's reads x its read energy and fills + updates x its write energy (per
bit, times the tensor's bits), MACs x MAC energy, network: every word delivered into the PE
array (fills of per-PE levels, or operands the MACs read from a shared level) x one hop.
Latency: compute steps (one MAC per lane per step) against each level's traffic per instance
over its ports; the slowest of them is the bottleneck (double buffering overlaps the rest).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.map.access import FILLS, READS, UPDATES, AccessCounts
from accelsim.map.arch import Arch


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
    from accelsim.hw.energy import energy_model

    em = energy_model(hw)
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
                       tuple(operand_full), tuple(operand_gated))


def sparse_cost(counts: AccessCounts, arch: Arch, model: SparseModel, mapping) -> MappingCost:
    """Expected energy and latency of a mapping's dense ``counts`` on a layer charged as
    ``model`` says, by ``sim/loopnest.py``'s rules: compressed tensors move their coded size,
    MAC-driven accesses at each operand's innermost level follow the issued / fully charged /
    gated slots (leader in full), the network carries the operands delivered into the PEs and
    the psums leaving them, compute takes the issued slots (no load imbalance: masks are not
    known here), leakage and clock per cycle."""
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
    full, issue, gated = model.full, model.issue, model.gated
    op_full = np.asarray(model.operand_full, dtype=np.float64)
    op_gated = np.asarray(model.operand_gated, dtype=np.float64)
    for ti in range(3):
        c[inner[ti], ti, READS] += mac_reads[ti] * op_full[ti]
    c[inner[2], 2, UPDATES] += mac_upd * op_full[2]
    c[0, 2, UPDATES] = counts.counts[0, 2, UPDATES] * model.out_write
    gated_bits = np.zeros(nl)
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
    compute = float(counts.steps) * issue
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
