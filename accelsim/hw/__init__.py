"""Hardware description: strict YAML schema, loader and energy model."""
from accelsim.hw.energy import EnergyModel, available_tables, energy_model, load_table
from accelsim.hw.load import apply_overrides, dump_hw, load_hw, load_hw_dict, resolve_extends
from accelsim.hw.schema import (DATAFLOWS, STORAGE_FORMATS, SYNC_GROUPS, HardwareConfig,
                                SCHEMA_VERSION)

__all__ = [
    "EnergyModel", "available_tables", "energy_model", "load_table", "apply_overrides", "dump_hw",
    "load_hw", "load_hw_dict", "resolve_extends", "DATAFLOWS", "STORAGE_FORMATS", "SYNC_GROUPS",
    "HardwareConfig", "SCHEMA_VERSION",
]
