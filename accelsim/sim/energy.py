"""Energy of one layer: access counts x per-access energies of :class:`~accelsim.hw.EnergyModel`.

Components (pJ):

- ``mac``: issued MACs with both operands non-zero (or any issued MAC without
  gating) at ``mac_pj``; gated MACs (a zero operand, ``gate_zero_operands``) at
  ``gated_mac_pj``. Skipped pairs cost nothing;
- ``spad``: per-PE scratchpad bits read and written (gated pairs at ``gated_fraction``);
- ``glb``: global-buffer bits (operands to the array, partial sums and outputs from it,
  DRAM fills and write-backs);
- ``noc``: bit-hops of operands, partial sums and outputs through the array;
- ``dram``: off-chip bits;
- ``leakage``: every PE not power-gated, every cycle, plus the global buffer, plus wake-ups;
- ``clock``: PE clock trees: every cycle of every PE that is not power-gated, or
  only active PE-cycles (busy + fill/drain) with clock gating.
"""
from __future__ import annotations

from dataclasses import dataclass

COMPONENTS = ("mac", "spad", "glb", "noc", "dram", "leakage", "clock")


def energy_parts(figures) -> dict[str, float]:
    """``{component: pJ}`` of the ``energy_<component>_pj`` entries of a row or totals mapping,
    without ``energy_pj`` and without breakdowns of a listed component (``energy_dram_read_pj``
    under ``energy_dram_pj``), so the parts add up to the total once."""
    parts = {k[len("energy_"):-len("_pj")]: v for k, v in figures.items()
             if isinstance(k, str) and k.startswith("energy_") and k.endswith("_pj")
             and k != "energy_pj"}
    return {n: v for n, v in parts.items()
            if not any(n.startswith(other + "_") for other in parts if other != n)}


@dataclass(frozen=True)
class Activity:
    """Access and activity counts of one sample of a layer."""

    macs_full: float          # MACs charged at full energy
    macs_gated: float         # MACs charged at gated energy
    spad_bits_full: float
    spad_bits_gated: float
    glb_bits: float
    noc_bit_hops: float
    dram_bytes: float
    cycles: float             # layer cycles, stalls included
    pes: int
    gated_pe_cycles: float    # idle PE-cycles spent power-gated
    active_pe_cycles: float   # busy + fill/drain PE-cycles
    wakeups: float


def layer_energy(act: Activity, em, clock_gating: bool) -> dict[str, float]:
    """Energy per component in pJ (keys of :data:`COMPONENTS`)."""
    powered = max(act.pes * act.cycles - act.gated_pe_cycles, 0.0)
    clocked = min(act.active_pe_cycles, powered) if clock_gating else powered
    return {
        "mac": act.macs_full * em.mac_pj + act.macs_gated * em.gated_mac_pj,
        "spad": (act.spad_bits_full + act.spad_bits_gated * em.gated_fraction) * em.spad_pj_per_bit,
        "glb": act.glb_bits * em.glb_pj_per_bit,
        "noc": act.noc_bit_hops * em.noc_pj_per_bit_hop,
        "dram": act.dram_bytes * 8.0 * em.dram_pj_per_bit,
        "leakage": (powered * em.pe_leakage_pj_per_cycle + act.cycles * em.glb_leakage_pj_per_cycle
                    + act.wakeups * em.wakeup_energy_pj),
        "clock": clocked * em.pe_clock_pj_per_cycle,
    }
