"""The energy components of a result row (the loop-nest model fills them, :mod:`accelsim.sim.loopnest`).

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
