"""The DRAM link of a design in accelerator cycles.

(The flat engine's global-buffer tiling and memory plan lived here until issue 23 retired that
engine; the loop-nest model plans tiles with its mapper and residency with
:mod:`accelsim.sim.residency`.)
"""
from __future__ import annotations


def dram_bytes_per_cycle(hw) -> float | None:
    """DRAM bandwidth in bytes per accelerator cycle (``None`` when ideal)."""
    if hw.dram.ideal:
        return None
    return hw.dram.bandwidth_gb_per_s * 1e9 / (hw.technology.clock_mhz * 1e6)
