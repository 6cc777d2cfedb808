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
