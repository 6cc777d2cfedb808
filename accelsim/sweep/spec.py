"""Sweep specification (YAML, schema version 1): strict loading into frozen dataclasses.

A spec names a base hardware file, the axes to vary (any hardware field by its dotted
path), constraints on derived figures, the traces to replay and the objectives whose
Pareto fronts the results table marks::

    version: 1
    name: pe-array-vs-buffer
    base: ../sparten_like.yaml          # relative to this file
    mode: grid                          # grid (cartesian product) | random (``points`` draws)
    seed: 0
    axes:
      pe_array.rows: {values: [8, 16, 32]}
      pe_array.cols: {range: {start: 8, stop: 32, step: 8}}          # stop included
      global_buffer.size_kib: {random: {low: 32, high: 512, count: 4, log: true, integer: true}}
    constraints: {max_onchip_sram_kib: 600, max_pes: 1024}
    traces: [../../traces/lenet5_dual.trace]
    fidelity: fast
    samples: 4
    objectives: [[energy_pj, cycles], [energy_pj, onchip_sram_kib]]

Errors use the hardware loader's format: ``<file>: <field path>: <what was expected>``.
Each axis value is checked against the hardware field's own rule when the spec loads,
so a typo in a field path or a value out of range is reported before anything runs.
"""
from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from collections.abc import Mapping
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from accelsim.errors import ConfigError, brief
from accelsim.hw import rules
from accelsim.hw.load import read_yaml_mapping
from accelsim.hw.schema import HardwareConfig, StorageLevel

SPEC_VERSION = 1
DEFAULT_MAX_POINTS = 100_000  # design points a spec may expand to without --max-points
MODES = ("grid", "random")
FIDELITIES = ("fast", "cycle")

# Constraint figures: name -> how to read it from ``accelsim.hw.summary.derived_figures``.
CONSTRAINT_FIGURES = {
    "pes": "PE count",
    "peak_macs_per_cycle": "peak MACs per cycle",
    "peak_gops": "peak GOPS (2 ops per MAC)",
    "onchip_sram_kib": "all on-chip storage levels (shared + per-PE x PEs), KiB",
    "global_buffer_kib": "shared on-chip levels (the global buffer), KiB",
    "scratchpad_bytes_per_pe": "per-PE storage levels, bytes per PE",
    "clock_mhz": "clock frequency, MHz",
    "area_mm2": "core area estimate, mm^2 (accelsim.hw.area, at the design's technology node)",
}
CONSTRAINT_NAMES = tuple(f"{bound}_{name}" for name in CONSTRAINT_FIGURES for bound in ("max", "min"))

# Results-table metrics an objective may name (besides the swept axes), and their direction.
SIM_METRICS = (
    "cycles", "compute_cycles", "stall_cycles", "glb_stall_cycles", "dram_stall_cycles",
    "fill_drain_cycles", "energy_pj", "energy_uj", "latency_s", "edp_pj_s", "utilization",
    "load_imbalance", "macs_issued", "macs_skipped", "macs_gated", "macs_effectual",
    "dram_bytes", "dram_read_bytes", "dram_write_bytes", "psum_spill_bytes", "glb_bits",
    "spad_bits", "noc_bit_hops", "peak_live_bytes", "peak_onchip_bytes", "peak_offchip_bytes",
    "wakeups", "edap_pj_s_mm2",
)
# Energy components of the simulator (``energy_<component>_pj`` columns).
ENERGY_COMPONENTS = ("mac", "spad", "glb", "noc", "dram", "leakage", "clock")
HW_METRICS = tuple(CONSTRAINT_FIGURES)
MAXIMIZED = frozenset({"utilization", "peak_macs_per_cycle", "peak_gops", "clock_mhz"})
DEFAULT_OBJECTIVE = ("energy_pj", "cycles")


def _field(rule, doc: str, default: Any = rules.REQUIRED):
    meta = {"rule": rule, "doc": doc}
    if default is rules.REQUIRED:
        return field(metadata=meta)
    if isinstance(default, (dict, list, tuple)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def _number(value: Any, path: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value in (float("inf"), float("-inf")):
        raise rules.RuleError(path, f"expected a finite number, got {brief(value)} "
                                    f"({type(value).__name__})")
    return value


def _list_of(rule, what: str, min_len: int = 1):
    def check(value: Any, path: str) -> tuple:
        if not isinstance(value, list) or len(value) < min_len:
            raise rules.RuleError(path, f"expected a list of {what} (at least {min_len}), "
                                        f"got {brief(value)} ({type(value).__name__})")
        return tuple(rule(v, f"{path}[{i}]") for i, v in enumerate(value))
    return check


def _any_scalar(value: Any, path: str) -> Any:
    if isinstance(value, (dict, list)) or value is None:
        raise rules.RuleError(path, f"expected a scalar value (number, string or boolean), "
                                    f"got {brief(value)}")
    return value


@dataclass(frozen=True)
class RangeAxis:
    start: float = _field(_number, "first value")
    stop: float = _field(_number, "last value (included when start + k*step lands on it)")
    step: float = _field(_number, "increment (non-zero; negative counts down)")

    def count(self) -> int | float:
        """How many values the range holds, without listing them (``inf`` if unbounded)."""
        if self.step == 0:
            return 0  # refused by the axis checks
        span = (self.stop - self.start) / self.step
        if not math.isfinite(span):
            return math.inf
        return int(span + 1e-9) + 1 if span >= -1e-9 else 0

    def values(self) -> tuple:
        count = self.count()
        as_int = all(isinstance(v, int) for v in (self.start, self.stop, self.step))
        out = [self.start + i * self.step for i in range(count)]
        return tuple(int(v) for v in out) if as_int else tuple(round(v, 12) for v in out)


@dataclass(frozen=True)
class RandomAxis:
    low: float = _field(_number, "smallest value")
    high: float = _field(_number, "largest value")
    count: int | None = _field(rules.optional(rules.positive_int),
                               "grid mode: how many values to draw (random mode draws one per point)",
                               None)
    log: bool = _field(rules.boolean, "draw uniformly in log space (low must be > 0)", False)
    integer: bool = _field(rules.boolean, "round draws to integers", False)


@dataclass(frozen=True)
class AxisSpec:
    """One swept field: exactly one of ``values``, ``range`` or ``random``."""

    values: tuple | None = _field(rules.optional(_list_of(_any_scalar, "values")),
                                  "explicit list of values", None)
    range: RangeAxis | None = _field(rules.optional(rules.section(RangeAxis)),
                                     "{start, stop, step}", None)
    random: RandomAxis | None = _field(rules.optional(rules.section(RandomAxis)),
                                       "{low, high, count, log, integer}", None)

    @property
    def kind(self) -> str:
        return "values" if self.values is not None else "range" if self.range is not None else "random"


def _axis(value: Any, path: str) -> AxisSpec:
    if isinstance(value, list):  # shorthand: `pe_array.rows: [8, 16]`
        value = {"values": value}
    return rules.section(AxisSpec)(value, path)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep. Build it with :func:`load_sweep_spec`."""

    base: str = _field(rules.non_empty_str, "base hardware file, relative to the spec")
    axes: dict = _field(rules.mapping_of(rules.non_empty_str, _axis),
                        "field path -> {values | range | random} (a plain list means values)")
    traces: tuple = _field(_list_of(rules.non_empty_str, "trace file paths"),
                           "trace files to replay, relative to the spec")
    version: int = _field(rules.one_of((SPEC_VERSION,)), "sweep spec schema version", SPEC_VERSION)
    name: str = _field(rules.string, "sweep name", "")
    description: str = _field(rules.string, "what the sweep explores", "")
    mode: str = _field(rules.one_of(MODES), "grid: cartesian product; random: draw `points` points",
                       "grid")
    points: int | None = _field(rules.optional(rules.positive_int),
                                "random mode: number of points to draw", None)
    seed: int = _field(rules.non_negative_int, "seed of every random draw", 0)
    constraints: dict = _field(rules.mapping_of(rules.one_of(CONSTRAINT_NAMES), _number),
                               "budgets on derived figures (" + ", ".join(CONSTRAINT_NAMES) + ")", {})
    fidelity: str = _field(rules.one_of(FIDELITIES), "simulator fidelity", "fast")
    samples: int | None = _field(rules.optional(rules.positive_int),
                                 "input samples simulated per layer (default: all in the trace)", None)
    objectives: tuple = _field(_list_of(_list_of(rules.non_empty_str, "metric names", 2),
                                        "objective pairs"),
                               "pairs of metrics whose Pareto front is marked "
                               "(energy_pj vs cycles is always included)", [list(DEFAULT_OBJECTIVE)])
    # Filled by the loader (not YAML keys): absolute paths and the spec's own path.
    source: str = field(default="<dict>", metadata={"rule": rules.string, "doc": "spec file"})
    base_path: str = field(default="", metadata={"rule": rules.string, "doc": "resolved base"})
    trace_paths: tuple = field(default=(), metadata={"rule": _list_of(rules.string, "paths", 0),
                                                     "doc": "resolved traces"})
    max_points: int = field(default=DEFAULT_MAX_POINTS,
                            metadata={"rule": rules.positive_int, "doc": "point-count limit"})

    @property
    def objective_pairs(self) -> tuple[tuple[str, str], ...]:
        """Objective pairs with energy vs cycles first (energy vs latency in seconds when the
        clock is swept: cycles of different clocks do not compare), duplicates removed."""
        default = DEFAULT_OBJECTIVE
        if "technology.clock_mhz" in self.axes:
            default = (DEFAULT_OBJECTIVE[0], "latency_s")
        pairs = [default] + [default if tuple(p) == DEFAULT_OBJECTIVE else tuple(p)
                             for p in self.objectives]
        out: list[tuple[str, str]] = []
        for pair in pairs:
            if pair not in out:
                out.append(pair)
        return tuple(out)


_LOADER_ONLY = ("source", "base_path", "trace_paths", "max_points")


def _leaf_rule(path: str, where: str):
    """The validation rule of the hardware field at dotted ``path`` (a leaf, not a section)."""
    cls: type = HardwareConfig
    parts = path.split(".")
    for depth, part in enumerate(parts):
        known = {f.name: f for f in fields(cls)}
        if part not in known:
            close = difflib.get_close_matches(part, list(known), n=1)
            hint = f" (did you mean {'.'.join(parts[:depth] + [close[0]])!r}?)" if close else ""
            prefix = ".".join(parts[:depth]) or "the top level"
            raise rules.RuleError(where, f"{path!r} is not a hardware field{hint}; fields of "
                                         f"{prefix}: {', '.join(known)}")
        f = known[part]
        hint_type = _unwrap_optional(get_type_hints(cls)[part])
        rest = parts[depth + 1:]
        if cls is HardwareConfig and part == "memory_hierarchy":
            return _level_field_rule(path, rest, where)
        if is_dataclass(hint_type):
            if not rest:
                names = ", ".join(g.name for g in fields(hint_type))
                raise rules.RuleError(where, f"{path!r} is a section; sweep one of its fields "
                                             f"({names})")
            cls = hint_type
            continue
        if len(rest) == 1 and get_origin(hint_type) in (Mapping, dict):
            return _mapping_entry_rule(f.metadata["rule"], rest[0], where)
        if rest:
            raise rules.RuleError(where, f"{'.'.join(parts[:depth + 1])!r} is not a section; "
                                         f"it has no field {rest[0]!r}")
        return f.metadata["rule"]
    raise rules.RuleError(where, f"{path!r} is not a hardware field")  # pragma: no cover


def _unwrap_optional(hint: Any) -> Any:
    """``X | None`` -> ``X`` (other hints unchanged)."""
    args = [a for a in get_args(hint) if a is not type(None)]
    if get_origin(hint) in (Union, UnionType) and len(args) == 1:
        return args[0]
    return hint


def _level_field_rule(path: str, rest: list[str], where: str):
    """Rule of ``memory_hierarchy.<level name>.<field>`` (the level is found by name when each
    design is loaded; a design without it is refused then)."""
    names = [g.name for g in fields(StorageLevel)]
    if len(rest) != 2:
        raise rules.RuleError(where, f"{path!r}: levels are swept by name, as "
                                     f"memory_hierarchy.<level name>.<field> (fields: {', '.join(names)})")
    level_fields = {g.name: g for g in fields(StorageLevel)}
    if rest[1] not in level_fields:
        close = difflib.get_close_matches(rest[1], names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise rules.RuleError(where, f"{path!r}: a level has no field {rest[1]!r}{hint}; fields: "
                                     f"{', '.join(names)}")
    if rest[1] == "name":
        raise rules.RuleError(where, f"{path!r}: a level's name cannot be swept")
    return level_fields[rest[1]].metadata["rule"]


def _mapping_entry_rule(mapping_rule, key: str, where: str):
    """Rule for one entry of a mapping field (``technology.energy_overrides.mac_pj``)."""
    try:  # the key is checked before the value: a bad key names itself in the message
        mapping_rule({key: None}, "")
    except rules.RuleError as exc:
        if repr(key) in exc.message:
            raise rules.RuleError(where, exc.message) from None

    def check(value: Any, path: str) -> Any:
        try:
            return mapping_rule({key: value}, "")[key]
        except rules.RuleError as exc:
            raise rules.RuleError(path, exc.message) from None
    return check


def point_count(spec: SweepSpec) -> int | float:
    """Design points ``spec`` expands to before constraints (grid: the product of the axes'
    value counts; random: ``points``), computed without listing any value."""
    if spec.mode == "random":
        return int(spec.points or 0)
    total: int | float = 1
    for axis in spec.axes.values():
        total *= (len(axis.values) if axis.values is not None
                  else axis.range.count() if axis.range is not None
                  else int(axis.random.count or 0) if axis.random is not None
                  else 0)  # no kind given: refused by the axis checks
    return total


def check_point_count(spec: SweepSpec, max_points: int) -> None:
    """Refuse a spec (or one of its axes) with more than ``max_points`` points, before listing them."""
    def refuse(where: str, what: str, count) -> None:
        if count == math.inf:
            raise rules.RuleError(where, "the range has no end in floating point (its step is "
                                         "too small for its span)")
        raise rules.RuleError(where, f"{what} {count:,} points, more than the limit of "
                                     f"{max_points:,}; pass --max-points {count} to run it "
                                     "anyway, or narrow the axes")
    for path, axis in spec.axes.items():
        n = (axis.range.count() if axis.range is not None
             else axis.random.count if axis.random is not None else None)
        if n is not None and n > max_points:
            refuse(f"axes.{path}", "this axis alone has", n)
    total = point_count(spec)
    if total > max_points:
        refuse("points" if spec.mode == "random" else "axes",
               "the sweep has" if spec.mode == "random" else "the grid has", total)


def _check_axes(spec: SweepSpec) -> None:
    for path, axis in spec.axes.items():
        where = f"axes.{path}"
        given = [k for k in ("values", "range", "random") if getattr(axis, k) is not None]
        if len(given) != 1:
            raise rules.RuleError(where, "expected exactly one of values, range or random, got "
                                         + (", ".join(given) if given else "none"))
        rule = _leaf_rule(path, where)
        if axis.values is not None:
            for i, value in enumerate(axis.values):
                rule(value, f"{where}.values[{i}]")
        elif axis.range is not None:
            r = axis.range
            if r.step == 0:
                raise rules.RuleError(f"{where}.range.step", "expected a non-zero step, got 0")
            values = r.values()
            if not values:
                raise rules.RuleError(f"{where}.range", f"the range from {r.start} to {r.stop} with "
                                                        f"step {r.step} is empty")
            for value in values:
                rule(value, f"{where}.range")
        else:
            r = axis.random
            if r.high < r.low:
                raise rules.RuleError(f"{where}.random.high",
                                      f"expected high >= low ({r.low}), got {r.high}")
            if r.log and r.low <= 0:
                raise rules.RuleError(f"{where}.random.low",
                                      f"log sampling needs low > 0, got {r.low}")
            if spec.mode == "grid" and r.count is None:
                raise rules.RuleError(f"{where}.random.count",
                                      "required in grid mode (how many values to draw)")
            if spec.mode == "random" and r.count is not None:
                raise rules.RuleError(f"{where}.random.count",
                                      "only allowed in grid mode; in random mode each point draws "
                                      "one value and `points` sets how many points there are")
            if r.integer and math.ceil(r.low) > math.floor(r.high):
                raise rules.RuleError(f"{where}.random", f"integer draws need an integer in "
                                                         f"[{r.low}, {r.high}]")
            for value in (r.low, r.high):
                rule(int(round(value)) if r.integer else float(value), f"{where}.random")


def _check_objectives(spec: SweepSpec) -> None:
    allowed = (set(SIM_METRICS) | set(HW_METRICS) | set(spec.axes)
               | {f"energy_{c}_pj" for c in ENERGY_COMPONENTS})
    for i, pair in enumerate(spec.objectives):
        if len(pair) != 2:
            raise rules.RuleError(f"objectives[{i}]", f"expected a pair [x, y], got {list(pair)}")
        if pair[0] == pair[1]:
            raise rules.RuleError(f"objectives[{i}]", f"expected two different metrics, got {list(pair)}")
        for j, name in enumerate(pair):
            if name in allowed:
                continue
            close = difflib.get_close_matches(name, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise rules.RuleError(f"objectives[{i}][{j}]",
                                  f"unknown metric {name!r}{hint}; expected a simulation metric "
                                  f"({', '.join(SIM_METRICS)}, energy_<component>_pj for "
                                  f"{'/'.join(ENERGY_COMPONENTS)}), a hardware "
                                  f"figure ({', '.join(HW_METRICS)}) or a swept field")


def _check_mode(spec: SweepSpec) -> None:
    if spec.mode == "random" and spec.points is None:
        raise rules.RuleError("points", "required in random mode (how many points to draw)")
    if spec.mode == "grid" and spec.points is not None:
        raise rules.RuleError("points", "only allowed in random mode; a grid's size is the product "
                                        "of its axes")
    for name in spec.constraints:
        if name.startswith("min_") and f"max_{name[4:]}" in spec.constraints:
            if spec.constraints[name] > spec.constraints[f"max_{name[4:]}"]:
                raise rules.RuleError(f"constraints.{name}",
                                      f"expected at most max_{name[4:]} "
                                      f"({spec.constraints['max_' + name[4:]]}), got {spec.constraints[name]}")


def load_sweep_dict(data: dict, source: str = "<dict>", root: str | os.PathLike = ".",
                    max_points: int = DEFAULT_MAX_POINTS) -> SweepSpec:
    """Validate a raw mapping; relative paths resolve against ``root`` (the spec's folder).

    A spec that expands to more than ``max_points`` design points is refused before any
    value is listed (``accelsim sweep --max-points`` raises the limit).
    """
    data = dict(data)
    allowed = [f.name for f in fields(SweepSpec) if f.name not in _LOADER_ONLY]
    try:
        rules.check_keys(data, allowed)
    except rules.RuleError as exc:
        raise ConfigError(source, exc.path, exc.message) from None
    if "version" not in data:
        raise ConfigError(source, "version", f"required field is missing (write `version: {SPEC_VERSION}`)")
    try:
        spec = rules.build(SweepSpec, data)
        if not spec.axes:
            raise rules.RuleError("axes", "expected at least one axis (field path -> values)")
        _check_mode(spec)
        check_point_count(spec, max_points)
        _check_axes(spec)
        _check_objectives(spec)
    except rules.RuleError as exc:
        raise ConfigError(source, exc.path, exc.message) from None
    root = Path(root)
    base = root / spec.base
    if not base.is_file():
        raise ConfigError(source, "base", f"hardware file {str(base)!r} not found (paths are "
                                          "relative to the spec file)")
    trace_paths = []
    for i, trace in enumerate(spec.traces):
        path = root / trace
        if not path.is_file():
            raise ConfigError(source, f"traces[{i}]", f"trace file {str(path)!r} not found (paths "
                                                      "are relative to the spec file)")
        trace_paths.append(str(path))
    if len(set(map(os.path.realpath, trace_paths))) != len(trace_paths):
        raise ConfigError(source, "traces", "the same trace file is listed twice")
    return _replace(spec, source=source, base_path=str(base), trace_paths=tuple(trace_paths),
                    max_points=max_points)


def load_sweep_spec(path: str | os.PathLike, traces: list[str | os.PathLike] | None = None,
                    max_points: int = DEFAULT_MAX_POINTS) -> SweepSpec:
    """Read and validate a sweep spec file (strict: unknown keys, version, every value).

    ``traces``, when given, replaces the spec's ``traces`` (paths as given, e.g.
    relative to the working directory): the same design space over other networks.
    ``max_points`` bounds the number of design points (see :func:`load_sweep_dict`).
    """
    path = Path(path)
    try:
        data = read_yaml_mapping(path)
    except ConfigError as exc:  # the shared reader words its errors for hardware files
        raise ConfigError(exc.file, exc.field, exc.detail.replace(
            "hardware fields", "sweep fields (version, base, axes, traces, ...)")) from None
    if traces:
        data["traces"] = [str(Path(t).resolve()) for t in traces]
    return load_sweep_dict(data, source=str(path), root=path.parent, max_points=max_points)


def _replace(spec: SweepSpec, **changes: Any) -> SweepSpec:
    from dataclasses import replace
    return replace(spec, **changes)
