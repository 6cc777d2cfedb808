"""DRAM model: device presets, address mapping and a streaming timing/energy kernel.

``accelsim.dram.presets`` (no NumPy/Numba) loads the packaged presets;
``accelsim.dram.model`` runs address ranges through the Numba kernel
(:func:`~accelsim.dram.model.stream_ranges`). See ``docs/dram.md``.
"""
from __future__ import annotations

from accelsim.lazy import lazy_getattr

_EXPORTS = {
    "DramDevice": "accelsim.dram.presets",
    "available_presets": "accelsim.dram.presets",
    "get_device": "accelsim.dram.presets",
    "load_presets": "accelsim.dram.presets",
    "DramState": "accelsim.dram.model",
    "DramResult": "accelsim.dram.model",
    "stream_ranges": "accelsim.dram.model",
    "simulate_ranges": "accelsim.dram.model",
    "pattern_result": "accelsim.dram.model",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
