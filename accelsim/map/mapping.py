"""The mapping value object: per storage level, temporal loops (with order) and spatial loops.

Levels are listed outermost (DRAM) first. A level's temporal loops iterate over the tile the
level holds, outer to inner; its spatial loops (after its temporal loops) spread that tile over
the instances of the next level inward (the last level's spatial loops spread over the MAC
units). For every dimension, the product of its factors over all levels equals its bound, or
(imperfect factorisation, a remainder tile) its outermost loop runs ``ceil(bound / product of
the inner factors)`` times: the loops then run over a padded range, and only indices below the
bound carry data and MACs (:mod:`accelsim.map.access` counts those exactly).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from accelsim.errors import MappingError
from accelsim.map.nest import DIMS, LoopNest

AXES = ("X", "Y")


@dataclass(frozen=True)
class Loop:
    dim: str
    factor: int
    spatial: bool = False
    axis: str = "X"          # spatial loops: X (along a row, i.e. over columns) or Y (over rows)

    def __post_init__(self) -> None:
        if self.dim not in DIMS:
            raise ValueError(f"loop dimension: expected one of {DIMS}, got {self.dim!r}")
        if int(self.factor) < 1:
            raise ValueError(f"loop {self.dim}: factor must be >= 1, got {self.factor}")
        if self.axis not in AXES:
            raise ValueError(f"loop {self.dim}: axis must be X or Y, got {self.axis!r}")

    def render(self) -> str:
        where = f" (spatial-{self.axis})" if self.spatial else ""
        return f"for {self.dim} in [0:{self.factor}){where}"


@dataclass(frozen=True)
class LevelLoops:
    level: str
    temporal: tuple[Loop, ...] = ()   # outer -> inner
    spatial: tuple[Loop, ...] = ()

    def __post_init__(self) -> None:
        if any(l.spatial for l in self.temporal) or any(not l.spatial for l in self.spatial):
            raise ValueError(f"level {self.level}: temporal/spatial loops mixed up")

    @property
    def loops(self) -> tuple[Loop, ...]:
        return self.temporal + self.spatial

    def spatial_size(self, axis: str | None = None) -> int:
        out = 1
        for l in self.spatial:
            if axis is None or l.axis == axis:
                out *= l.factor
        return out


@dataclass(frozen=True)
class Mapping:
    levels: tuple[LevelLoops, ...]
    #: a user's mapping: ``(file, field path of its list of levels)``, e.g.
    #: ``("m.yaml", "layers.conv1")``, so errors name where it was written (not compared)
    origin: tuple[str, str] | None = field(default=None, compare=False, repr=False)

    def field_path(self, level: int | None = None, part: str | None = None) -> str | None:
        """``file: layers.NAME[level].part`` of a user's mapping (None for the mapper's)."""
        if self.origin is None:
            return None
        source, path = self.origin
        if level is not None:
            path += f"[{level}]" + (f".{part}" if part else "")
        return f"{source}: {path}"

    def flat(self) -> list[tuple[int, Loop]]:
        """All loops outer to inner as ``(level index, loop)``, factor-1 loops dropped."""
        return [(i, l) for i, lv in enumerate(self.levels) for l in lv.loops if l.factor > 1]

    def dim_factors(self, dim: str) -> list[int]:
        """Factors (> 1) of ``dim``'s loops, outer to inner."""
        return [l.factor for lv in self.levels for l in lv.loops if l.dim == dim and l.factor > 1]

    def factor_product(self, dim: str) -> int:
        out = 1
        for lv in self.levels:
            for l in lv.loops:
                if l.dim == dim:
                    out *= l.factor
        return out

    def check(self, nest: LoopNest, level_names: Iterable[str] | None = None) -> None:
        """Raise :class:`MappingError` unless each dimension's factors multiply to its bound or
        its outermost factor is the ceiling of the bound over the others (and names match)."""
        if level_names is not None:
            names = tuple(level_names)
            if tuple(lv.level for lv in self.levels) != names:
                raise MappingError(f"mapping levels {[lv.level for lv in self.levels]} do not match "
                                   f"the hierarchy's {list(names)}")
        for lv in self.levels:
            for loop in lv.loops:
                factor = loop.factor
                if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
                    raise MappingError(f"level {lv.level!r}: loop {loop.dim}: factor: expected a "
                                       f"positive integer, got {factor!r:.30}")
        for dim in DIMS:
            factors = self.dim_factors(dim)
            bound = nest.bound(dim)
            got = self.factor_product(dim)
            if got == bound:
                continue
            inner = got // factors[0] if factors else 1
            if not factors or inner >= bound:
                raise MappingError(
                    f"layer {nest.name!r}: mapping factors of {dim} multiply to {got}, expected the "
                    f"bound {bound}" + (f" (its inner factors alone cover {inner})" if factors else ""))
            if factors[0] != -(-bound // inner):
                raise MappingError(
                    f"layer {nest.name!r}: mapping factors of {dim} multiply to {got}, expected the "
                    f"bound {bound} (or, with a remainder, its outermost factor {factors[0]} to be "
                    f"{-(-bound // inner)} (ceil({bound} / {inner})))")

    @property
    def steps(self) -> int:
        """Temporal iterations (cycles of a dense, unstalled run)."""
        out = 1
        for lv in self.levels:
            for l in lv.temporal:
                out *= l.factor
        return out

    def render(self) -> str:
        """A readable loop nest, one line per loop, indented, level headers between."""
        lines, depth = [], 0
        for lv in self.levels:
            lines.append(f"{'  ' * depth}{lv.level}:")
            for l in lv.loops:
                if l.factor > 1:
                    lines.append(f"{'  ' * depth}| {l.render()}")
                    depth += 1
        lines.append(f"{'  ' * depth}<< MAC >>")
        return "\n".join(lines)

    def to_dict(self) -> list[dict]:
        return [{"level": lv.level,
                 "temporal": [[l.dim, l.factor] for l in lv.temporal if l.factor > 1],
                 "spatial": [[l.dim, l.factor, l.axis] for l in lv.spatial if l.factor > 1]}
                for lv in self.levels]
