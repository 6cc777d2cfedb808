"""Hardware description: strict YAML schema, loader and energy model.

Names are imported on first use, so `import accelsim.hw.cli` (the CLI's verb registration,
`accelsim --help`) loads neither PyYAML nor the energy tables.
"""
from __future__ import annotations

from accelsim.lazy import lazy_getattr

_LAZY = {
    "EnergyModel": "accelsim.hw.energy",
    "available_tables": "accelsim.hw.energy",
    "energy_model": "accelsim.hw.energy",
    "load_table": "accelsim.hw.energy",
    "apply_overrides": "accelsim.hw.load",
    "dump_hw": "accelsim.hw.load",
    "load_hw": "accelsim.hw.load",
    "load_hw_dict": "accelsim.hw.load",
    "resolve_extends": "accelsim.hw.load",
    "DATAFLOWS": "accelsim.hw.schema",
    "STORAGE_FORMATS": "accelsim.hw.schema",
    "SYNC_GROUPS": "accelsim.hw.schema",
    "HardwareConfig": "accelsim.hw.schema",
    "SCHEMA_VERSION": "accelsim.hw.schema",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
