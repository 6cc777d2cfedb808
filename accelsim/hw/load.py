"""YAML -> validated :class:`~accelsim.hw.schema.HardwareConfig`.

Pipeline: read each file with the strict loader of :mod:`accelsim.yamlio` -> follow
``extends:`` (paths relative to the extending file; cycles and chains longer than
:data:`MAX_EXTENDS_DEPTH` rejected) -> deep-merge parent then child -> apply
overrides (sweeps) -> build the typed object with the schema's rules -> cross-field
checks. Every failure raises :class:`~accelsim.errors.ConfigError` naming the file,
the field path and what was expected.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from accelsim.errors import ConfigError, brief
from accelsim.hw import rules
from accelsim.hw.hierarchy import reconcile_shorthand
from accelsim.hw.schema import HardwareConfig
from accelsim.yamlio import read_yaml

MAX_EXTENDS_DEPTH = 32  # files in one extends: chain


def read_yaml_mapping(path: Path) -> dict:
    """Read a YAML file that must hold a mapping; errors name the file and the line."""
    data = read_yaml(path, "file")
    if data is None:
        raise ConfigError(str(path), None, "file is empty; expected a mapping of hardware fields")
    if not isinstance(data, dict):
        raise ConfigError(str(path), None,
                          f"expected a mapping of hardware fields at the top level, got {type(data).__name__}")
    return data


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, other values replace)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_extends(path: str | os.PathLike) -> dict:
    """The raw mapping of ``path`` with its ``extends:`` chain merged in (no validation)."""
    path = Path(path)
    chain: list[Path] = []
    layers: list[dict] = []
    while True:
        resolved = path.resolve()
        if resolved in chain:
            cycle = " -> ".join(str(p) for p in chain + [resolved])
            raise ConfigError(str(path), "extends", f"extends cycle: {cycle}")
        if len(chain) >= MAX_EXTENDS_DEPTH:
            raise ConfigError(str(path), "extends", f"the extends: chain is longer than "
                                                    f"{MAX_EXTENDS_DEPTH} files")
        chain.append(resolved)
        data = read_yaml_mapping(path)
        parent = data.pop("extends", None)
        layers.append(data)
        if parent is None:
            break
        if not isinstance(parent, str) or not parent.strip():
            raise ConfigError(str(path), "extends",
                              f"expected a path to another hardware file, got {brief(parent)}")
        parent_path = path.parent / parent
        if not parent_path.is_file():
            raise ConfigError(str(path), "extends", f"parent file {str(parent_path)!r} not found")
        path = parent_path
    merged = layers.pop()
    while layers:
        merged = deep_merge(merged, layers.pop())
    return merged


def apply_overrides(data: Mapping, overrides: Mapping[str, Any]) -> dict:
    """Set dotted-path fields (``{"pe_array.rows": 32}``) in a copy of a raw mapping."""
    result = copy.deepcopy(dict(data))
    for dotted, value in overrides.items():
        node = result
        parts = dotted.split(".")
        for part in parts[:-1]:
            if isinstance(node, list):      # memory_hierarchy.<level name>.<field>
                node = _level_named(node, part, dotted)
                continue
            node = node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError(None, dotted, f"cannot set a field inside non-mapping {part!r}")
        if isinstance(node, list):
            raise ConfigError(None, dotted, "name a field of the level, e.g. "
                                            f"{dotted}.size_bytes")
        node[parts[-1]] = copy.deepcopy(value)
    return result


def _level_named(levels: list, name: str, dotted: str) -> dict:
    """The entry of a list of named levels called ``name`` (sweeps address levels by name)."""
    for entry in levels:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    names = [e.get("name") for e in levels if isinstance(e, dict)]
    raise ConfigError(None, dotted, f"the design has no level named {name!r}; its levels: "
                                    f"{', '.join(map(str, names)) or 'none'}")


def load_hw_dict(data: Mapping, source: str = "<dict>", port: bool = True) -> HardwareConfig:
    """Validate a raw mapping (already merged) into a :class:`HardwareConfig`.

    A design written in the flat form (``global_buffer`` and ``scratchpad``, no
    ``memory_hierarchy``) is a systolic array: it loads through :mod:`accelsim.hw.port` as the
    loop-nest model's systolic mode, so every design runs on the one model (``port=False``
    returns the flat form itself, validated, for :func:`accelsim.hw.port.port`)."""
    data = dict(data)
    data.pop("extends", None)
    try:
        data = reconcile_shorthand(data, source)
        config = rules.build(HardwareConfig, data)
    except rules.RuleError as exc:
        raise ConfigError(source, exc.path, exc.message) from None
    _check_cross_fields(config, source)
    if port and config.memory_hierarchy is None:
        from accelsim.hw.port import ported_dict

        return load_hw_dict(ported_dict(config, source, base=data), source)
    return config


def load_hw(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
            port: bool = True) -> HardwareConfig:
    """Load, resolve ``extends:``, apply ``overrides`` and validate one hardware file
    (``port``: as :func:`load_hw_dict`)."""
    raw = resolve_extends(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return load_hw_dict(raw, source=str(path), port=port)


def dump_hw(config: HardwareConfig) -> str:
    """YAML text of a resolved config; loading it gives an equal object."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


MAX_PES = 1 << 20  # rows x cols: per-PE state of the cycle kernels stays in memory


def _check_memory_hierarchy(config: HardwareConfig, source: str) -> None:
    from accelsim.hw.schema import LOOP_NEST_ONLY_DATAFLOWS

    levels = config.memory_hierarchy
    if levels is None:
        if config.pe_array.dataflow in LOOP_NEST_ONLY_DATAFLOWS:
            raise ConfigError(source, "pe_array.dataflow",
                              f"{config.pe_array.dataflow} needs a memory_hierarchy; a design "
                              "without one is a systolic array (output/weight/input_stationary)")
        for section, what in (("global_buffer", "the systolic array's shared buffer level"),
                              ("scratchpad", "per-PE scratchpad sizes")):
            if getattr(config, section) is None:
                raise ConfigError(source, section, f"required without a memory_hierarchy ({what}); "
                                                   "or describe the storage as memory_hierarchy levels")
        return
    names = [lv.name for lv in levels]
    for i, name in enumerate(names):
        if name.upper() == "DRAM" or names.index(name) != i:
            raise ConfigError(source, f"memory_hierarchy[{i}].name",
                              f"level names must be unique and not DRAM (implied), got {name!r}")
    seen_pe = False
    for i, lv in enumerate(levels):
        if lv.instances == "per_pe":
            seen_pe = True
        elif seen_pe:
            raise ConfigError(source, f"memory_hierarchy[{i}].instances",
                              "a shared (one) level cannot sit inside per-PE levels; list levels "
                              "outermost first")
    _check_actions(levels, source)


def _check_formats(config: HardwareConfig, source: str) -> None:
    """``ranked`` needs its ranks, and ranks need ``ranked``."""
    places = []
    for tensor in ("activations", "weights", "outputs"):
        fmt = getattr(config.storage, tensor)
        places.append((f"storage.{tensor}", fmt))
        if fmt.dram is not None:
            places.append((f"storage.{tensor}.dram", fmt.dram))
    for i, lv in enumerate(config.memory_hierarchy or ()):
        places.extend((f"memory_hierarchy[{i}].formats.{t}", f) for t, f in lv.formats.items())
    for where, fmt in places:
        if fmt.format == "ranked" and not fmt.ranks:
            raise ConfigError(source, f"{where}.ranks", "format ranked needs its per-rank formats, "
                              "outer to inner, e.g. [UOP, CP] (CSR) or [B] (a bitmask)")
        if fmt.format != "ranked" and fmt.ranks:
            raise ConfigError(source, f"{where}.format", f"ranks are given, so expected format: "
                              f"ranked, got {fmt.format!r}")


def _check_actions(levels: tuple, source: str) -> None:
    """Gate/skip actions: at the innermost level keeping the target they act on its MAC-driven
    accesses, at an outer level keeping it on its transfers into the next level keeping it
    (conditioned on whole tiles, :mod:`accelsim.sim.tile_conditions`; weights and inputs
    only); conditioned on at least one operand, one action per (level, target)."""
    for i, lv in enumerate(levels):
        targets = set()
        for j, action in enumerate(lv.actions):
            where = f"memory_hierarchy[{i}].actions[{j}]"
            if action.target not in lv.keeps:
                raise ConfigError(source, f"{where}.target", f"level {lv.name!r} does not keep "
                                  f"{action.target} (it keeps {', '.join(lv.keeps) or 'nothing'})")
            inner = max(k for k, other in enumerate(levels) if action.target in other.keeps)
            if inner != i and action.target == "outputs":
                raise ConfigError(source, f"{where}.target",
                                  f"an action on outputs is modelled on the MAC-driven psum "
                                  f"accesses, at the innermost level keeping them "
                                  f"({levels[inner].name!r}), not at {lv.name!r} (tile-level "
                                  "conditions on psum spills and drains are not modelled)")
            if not action.condition_on:
                raise ConfigError(source, f"{where}.condition_on",
                                  "expected at least one operand (inputs, weights)")
            if action.target in targets:
                raise ConfigError(source, f"{where}.target",
                                  f"{action.target} already has an action at this level")
            targets.add(action.target)


def _check_systolic(config: HardwareConfig, source: str) -> None:
    """``pe_array.systolic`` on the loop-nest model: what the lowered GEMM can represent."""
    pe = config.pe_array
    if not pe.systolic:
        return
    if config.memory_hierarchy is None:
        raise ConfigError(source, "pe_array.systolic", "needs a memory_hierarchy (a design without "
                                                       "one is systolic already: drop the field)")
    if pe.dataflow not in ("output_stationary", "weight_stationary", "input_stationary"):
        raise ConfigError(source, "pe_array.dataflow", "a systolic array runs output_stationary, "
                                                       f"weight_stationary or input_stationary, got "
                                                       f"{pe.dataflow!r}")
    stationary = {"output_stationary": "outputs", "weight_stationary": "weights",
                  "input_stationary": "inputs"}[pe.dataflow]
    per_pe = [(i, lv) for i, lv in enumerate(config.memory_hierarchy) if lv.instances == "per_pe"]
    if not per_pe:
        raise ConfigError(source, "memory_hierarchy", f"a systolic array needs a per-PE level keeping "
                                                      f"its stationary {stationary}")
    for i, lv in per_pe:
        if tuple(lv.keeps) != (stationary,):
            raise ConfigError(source, f"memory_hierarchy[{i}].keeps",
                              f"a systolic {pe.dataflow} array keeps only its stationary "
                              f"{stationary} in a PE (the other operands and partial sums pass "
                              f"between PEs every cycle), got {list(lv.keeps)}")
    if config.dram.access_stream:
        raise ConfigError(source, "dram.access_stream", "not modelled for a systolic design: its "
                                                        "layers run as im2col GEMMs whose operand "
                                                        "matrix is not the input's DRAM layout; set "
                                                        "it false (DRAM priced per bit)")


def _check_cross_fields(config: HardwareConfig, source: str) -> None:
    _check_memory_hierarchy(config, source)
    if config.num_pes > MAX_PES:
        raise ConfigError(source, "pe_array", f"rows x cols = {config.num_pes:,} PEs; expected at "
                                              f"most {MAX_PES:,} (a sane upper bound)")
    _check_formats(config, source)
    if config.sparsity.gate_zero_operands and not config.sparsity.gate_on:
        raise ConfigError(source, "sparsity.gate_on", "gate_zero_operands needs at least one operand "
                                                      "to gate on (inputs, weights)")
    if not config.dram.ideal and config.dram.bandwidth_gb_per_s is None:
        raise ConfigError(source, "dram.bandwidth_gb_per_s",
                          "required unless dram.ideal is true (give GB/s, e.g. 25.6)")
    lp = config.low_power
    if not lp.power_gating and (lp.wakeup_cycles or lp.wakeup_energy_pj):
        raise ConfigError(source, "low_power.wakeup_cycles",
                          "wake-up costs are set but power_gating is false; enable power_gating or drop them")
    _check_systolic(config, source)
    spad = config.scratchpad
    need = config.precision.weight_bits if config.pe_array.dataflow == "weight_stationary" else 0
    if need and spad is not None and spad.weight_bytes * 8 < need * config.pe_array.macs_per_pe:
        raise ConfigError(source, "scratchpad.weight_bytes",
                          f"weight_stationary needs room for {config.pe_array.macs_per_pe} weight(s) of "
                          f"{config.precision.weight_bits} bits per PE, got {spad.weight_bytes} bytes")
