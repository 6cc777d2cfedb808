"""Sweep spec -> concrete design points (hardware configs), constraints applied.

Grid mode takes the cartesian product of the axes' values (a ``random`` axis contributes
``count`` drawn values); random mode draws ``points`` points, each axis independently
(a listed/range axis picks one of its values, a random axis draws in [low, high]).
Every random draw of axis ``path`` uses ``numpy.random.default_rng([seed, crc32(path)])``,
so results are reproducible and do not depend on the order the axes are written in.
"""
from __future__ import annotations

import itertools
import math
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from accelsim.errors import ConfigError
from accelsim.hw.load import apply_overrides, load_hw_dict, resolve_extends
from accelsim.hw.schema import HardwareConfig
from accelsim.hw.summary import derived_figures
from accelsim.hw.rules import RuleError
from accelsim.sweep.spec import AxisSpec, RandomAxis, SweepSpec, check_point_count


@dataclass(frozen=True)
class SweepPoint:
    """One design point: the swept values, and its hardware (or why it is invalid)."""

    index: int
    params: dict
    hw: HardwareConfig | None
    figures: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class Expansion:
    """The points a spec expands to, and what was left out."""

    points: list[SweepPoint]
    dropped: int = 0
    duplicates: int = 0
    drop_reasons: Counter = field(default_factory=Counter)

    @property
    def valid(self) -> list[SweepPoint]:
        return [p for p in self.points if p.hw is not None]


def _rng(seed: int, path: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(path.encode())])


def _draw(axis: RandomAxis, rng: np.random.Generator, n: int) -> list:
    if axis.integer and not axis.log:
        low, high = math.ceil(axis.low), math.floor(axis.high)
        return [int(v) for v in rng.integers(low, high + 1, size=n)]
    if axis.log:
        raw = np.exp(rng.uniform(math.log(axis.low), math.log(axis.high), size=n))
    else:
        raw = rng.uniform(axis.low, axis.high, size=n)
    if axis.integer:
        low, high = math.ceil(axis.low), math.floor(axis.high)
        return [int(min(max(round(v), low), high)) for v in raw]
    return [float(v) for v in raw]


def _unique(values: list) -> list:
    seen, out = set(), []
    for value in values:
        key = (type(value).__name__ == "bool", value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def axis_values(path: str, axis: AxisSpec, seed: int) -> list:
    """The distinct values a grid axis takes, in order (random axes: ``count`` draws)."""
    if axis.values is not None:
        return _unique(list(axis.values))
    if axis.range is not None:
        return _unique(list(axis.range.values()))
    return _unique(_draw(axis.random, _rng(seed, path), axis.random.count))


def _param_sets(spec: SweepSpec) -> tuple[list[dict], int]:
    try:  # again here: a SweepSpec may be built without the loader
        check_point_count(spec, spec.max_points)
    except RuleError as exc:
        raise ConfigError(spec.source, exc.path, exc.message) from None
    paths = list(spec.axes)
    if spec.mode == "grid":
        columns = [axis_values(p, spec.axes[p], spec.seed) for p in paths]
        return [dict(zip(paths, combo)) for combo in itertools.product(*columns)], 0
    n = int(spec.points)
    columns = []
    for path in paths:
        axis = spec.axes[path]
        rng = _rng(spec.seed, path)
        if axis.random is not None:
            columns.append(_draw(axis.random, rng, n))
        else:
            choices = axis_values(path, axis, spec.seed)
            columns.append([choices[i] for i in rng.integers(0, len(choices), size=n)])
    seen, sets, duplicates = set(), [], 0
    for combo in zip(*columns):
        key = tuple((type(v).__name__, v) for v in combo)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        sets.append(dict(zip(paths, combo)))
    return sets, duplicates


def figures_row(hw: HardwareConfig) -> dict:
    """The derived hardware figures constraints and the results table use."""
    f = derived_figures(hw)
    return {
        "pes": f["pes"],
        "peak_macs_per_cycle": f["peak_macs_per_cycle"],
        "peak_gops": f["peak_gops"],
        "onchip_sram_kib": f["onchip_sram_bytes"] / 1024,
        "global_buffer_kib": f["global_buffer_bytes"] / 1024,
        "scratchpad_bytes_per_pe": f["scratchpad_bytes_per_pe"],
        "clock_mhz": f["clock_mhz"],
        "area_mm2": f["area"]["total_mm2"],
    }


def violated(constraints: dict, figures: dict) -> list[str]:
    """Names of the constraints ``figures`` break (``max_x``: x <= limit, ``min_x``: x >= limit)."""
    broken = []
    for name, limit in constraints.items():
        bound, figure = name.split("_", 1)
        value = figures[figure]
        if (bound == "max" and value > limit) or (bound == "min" and value < limit):
            broken.append(name)
    return broken


def expand(spec: SweepSpec) -> Expansion:
    """All design points of ``spec``: hardware built and checked, constraint violators dropped."""
    raw = resolve_extends(spec.base_path)
    param_sets, duplicates = _param_sets(spec)
    expansion = Expansion(points=[], duplicates=duplicates)
    for params in param_sets:
        index = len(expansion.points)
        try:
            hw = load_hw_dict(apply_overrides(raw, params), source=spec.base_path)
        except ConfigError as exc:
            where = ", ".join(f"{k}={v!r}" for k, v in params.items())
            expansion.points.append(SweepPoint(index, params, None,
                                               error=f"invalid hardware ({where}): {exc}"))
            continue
        figures = figures_row(hw)
        broken = violated(spec.constraints, figures)
        if broken:
            expansion.dropped += 1
            expansion.drop_reasons.update(broken)
            continue
        expansion.points.append(SweepPoint(index, params, hw, figures))
    return expansion


def describe(expansion: Expansion) -> str:
    """One line: how many points run, how many were dropped and why."""
    parts = [f"{len(expansion.valid)} design points"]
    invalid = len(expansion.points) - len(expansion.valid)
    if invalid:
        parts.append(f"{invalid} invalid hardware")
    if expansion.dropped:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(expansion.drop_reasons.items()))
        parts.append(f"{expansion.dropped} dropped by constraints ({why})")
    if expansion.duplicates:
        parts.append(f"{expansion.duplicates} duplicate draws skipped")
    return "; ".join(parts)
