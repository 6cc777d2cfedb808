"""Search the dataflow-constrained mapspace of a layer for the chosen objective.

A dataflow is a constraint: which dimensions may be unrolled along the array's X (columns)
and Y (rows) axes and which may iterate inside a PE (what stays put there). The search:

1. spatial unrollings: factors of the allowed dimensions on X and Y, best utilisation first;
2. per-PE levels, innermost first: the largest tiles of the PE-allowed dimensions that fit;
3. shared levels (the fan-out level and those above it, DRAM excepted): tiles that fit, the
   largest ones and a seeded sample of the rest;
4. loop orders: at the shared levels and DRAM, one order per tensor kept stationary (the
   dimensions that do not index it innermost);
5. every candidate is costed exactly (:mod:`accelsim.map.access`, :mod:`accelsim.map.cost`)
   and the best by energy, latency or energy-delay product wins.

Results are cached per (layer shape, hardware hash, objective).
"""
from __future__ import annotations

import random
from functools import lru_cache
from dataclasses import dataclass
from math import prod

from accelsim.errors import MappingError
from accelsim.map.access import AccessCounts, analyse
from accelsim.map.arch import Arch
from accelsim.map.cost import MappingCost, mapping_cost
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, TENSORS, LoopNest


@dataclass(frozen=True)
class DataflowRule:
    x: tuple[str, ...]      # dims that may be unrolled along X (array columns)
    y: tuple[str, ...]      # dims that may be unrolled along Y (array rows)
    pe: tuple[str, ...]     # dims that may iterate at per-PE levels
    lanes: tuple[str, ...] = ("C", "K")


DATAFLOW_RULES = {
    "weight_stationary": DataflowRule(x=("K", "G"), y=("C", "R", "S"), pe=("N", "P", "Q")),
    "output_stationary": DataflowRule(x=("Q", "P", "N"), y=("K", "G"), pe=("C", "R", "S")),
    "input_stationary": DataflowRule(x=("Q", "P", "N"), y=("C", "G"), pe=("K",)),
    "row_stationary": DataflowRule(x=("P", "N", "G"), y=("R", "K", "C"), pe=("S", "Q", "C", "K")),
}
OBJECTIVES = ("energy", "latency", "edp")


@dataclass(frozen=True)
class MapResult:
    mapping: Mapping
    counts: AccessCounts
    cost: MappingCost
    candidates: int


def divisors(n: int) -> list[int]:
    return list(_divisors(n))


@lru_cache(maxsize=4096)
def _divisors(n: int) -> tuple[int, ...]:
    return tuple(d for d in range(1, n + 1) if n % d == 0)


def _factor_combos(dims: tuple[str, ...], rem: dict, limit: int) -> list[dict]:
    """Combinations of divisors (one per dim of ``dims``) with product <= ``limit``."""
    out = [{}]
    for d in dims:
        nxt = []
        for combo in out:
            used = prod(combo.values()) if combo else 1
            for f in _divisors(rem[d]):
                if used * f <= limit:
                    nxt.append({**combo, d: f})
        out = nxt
    return out


def _spatial_candidates(nest: LoopNest, rule: DataflowRule, rows: int, cols: int, keep: int):
    bounds = {d: nest.bound(d) for d in DIMS}
    xs = _factor_combos(rule.x[:2], bounds, cols) + _factor_combos(rule.x[::2][:2], bounds, cols)
    found = {}
    for x in xs:
        rem = {d: bounds[d] // x.get(d, 1) for d in DIMS}
        for y in _factor_combos(rule.y[:2], rem, rows) + _factor_combos(rule.y[1:3], rem, rows):
            key = (tuple(sorted((d, f) for d, f in x.items() if f > 1)),
                   tuple(sorted((d, f) for d, f in y.items() if f > 1)))
            found[key] = prod(x.values()) * prod(y.values())
    ranked = sorted(found.items(), key=lambda kv: -kv[1])
    return [k for k, _ in ranked[:keep]]


def _footprint_bits(nest: LoopNest, ext: dict, keeps: frozenset, bits: tuple) -> float:
    total = 0.0
    for t, b in zip(TENSORS, bits):
        if t not in keeps:
            continue
        if t == "W":
            n = ext["G"] * ext["K"] * ext["C"] * ext["R"] * ext["S"]
        elif t == "O":
            n = ext["N"] * ext["G"] * ext["K"] * ext["P"] * ext["Q"]
        else:
            h = (ext["P"] - 1) * nest.stride_h + (ext["R"] - 1) * nest.dil_h + 1
            w = (ext["Q"] - 1) * nest.stride_w + (ext["S"] - 1) * nest.dil_w + 1
            n = ext["N"] * ext["G"] * ext["C"] * min(h, ext["P"] * ext["R"]) * min(w, ext["Q"] * ext["S"])
        total += n * b
    return total


def _order(dims: list[str], stationary: str, nest: LoopNest) -> list[str]:
    """Dims outer to inner with those that do not index ``stationary`` innermost."""
    rel = nest.relevant(stationary)
    return sorted(dims, key=lambda d: (d not in rel, DIMS.index(d)))


def _fits(nest, arch, level, ext) -> bool:
    lv = arch.levels[level]
    return lv.capacity_bits is None or _footprint_bits(nest, ext, lv.keeps, arch.tensor_bits) <= lv.capacity_bits


def _extents(spatial_inner: dict, tiles: dict, level: int, nlevels: int) -> dict:
    """Extent of every dim over the loops at levels >= ``level``."""
    ext = {d: 1 for d in DIMS}
    for lvl in range(level, nlevels):
        for d, f in tiles.get(lvl, {}).items():
            ext[d] *= f
        for d, f in spatial_inner.get(lvl, {}).items():
            ext[d] *= f
    return ext


def search(nest: LoopNest, arch: Arch, dataflow: str, objective: str = "energy",
           search_size: int = 16, seed: int = 0) -> MapResult:
    """The best mapping found for ``nest`` on ``arch`` under ``dataflow``.

    ``search_size`` sets the budget: about ``16 * search_size`` candidates are costed, half
    drawn at random from the fitting mapspace (greedy largest tiles first), half by hill
    climbing from the best so far (re-drawing one level's tiles or the loop orders).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    space = _Space(nest, arch, DATAFLOW_RULES[dataflow], random.Random(seed))
    if not space.spatials:
        _no_mapping(nest, arch, space.tightest)
    budget = max(8, 16 * int(search_size))
    best = None
    evaluated = 0
    seen: set = set()

    def consider(choice) -> None:
        nonlocal best, evaluated
        if choice is None:
            return
        mapping = space.build(choice)
        key = mapping.to_dict().__repr__()
        if key in seen:
            return
        seen.add(key)
        counts = analyse(nest, mapping, arch.keeps, arch.unicast)
        if not _exact_fit(counts, arch):
            return
        cost = mapping_cost(counts, arch)
        evaluated += 1
        score = {"energy": (cost.energy_pj, cost.cycles), "latency": (cost.cycles, cost.energy_pj),
                 "edp": (cost.edp, cost.energy_pj)}[objective]
        if best is None or score < best[0]:
            best = (score, mapping, counts, cost, choice)

    for i in range(len(space.spatials)):          # greedy seeds: largest tiles, each order
        base = space.draw(i, greedy=True)
        if base is not None:
            for stationary in TENSORS:
                consider(space.with_orders(base, stationary))
    tries = 0
    while len(seen) < budget // 2 and tries < budget:
        tries += 1
        consider(space.draw(space.rng.randrange(len(space.spatials))))
    tries = 0
    while best is not None and len(seen) < budget and tries < budget:
        tries += 1
        consider(space.mutate(best[4]))
    if best is None:
        _no_mapping(nest, arch, space.tightest)
    return MapResult(best[1], best[2], best[3], evaluated)


@dataclass(frozen=True)
class _Choice:
    spatial: int                         # index into _Space.spatials
    tiles: tuple                         # per level: tuple of (dim, factor), DRAM included
    orders: tuple                        # per level: the tensor kept stationary by its order


class _Space:
    """The fitting mapspace of one layer on one design under one dataflow rule."""

    def __init__(self, nest: LoopNest, arch: Arch, rule: DataflowRule, rng: random.Random):
        self.nest, self.arch, self.rule, self.rng = nest, arch, rule, rng
        self.nl = len(arch.levels)
        self.fan = arch.fanout_level
        self.pe_levels = list(range(self.fan + 1, self.nl))
        self.shared = list(range(1, self.fan + 1))
        self.tightest = None
        self._pe_cache: dict = {}
        self.spatials = []
        for sx, sy in _spatial_candidates(nest, rule, arch.rows, arch.cols, keep=6):
            spatial = {d: 1 for d in DIMS}
            for d, f in sx + sy:
                spatial[d] *= f
            rem = {d: nest.bound(d) // spatial[d] for d in DIMS}
            lanes = {}
            if self.pe_levels and arch.lanes > 1:
                combos = _factor_combos(rule.lanes, rem, arch.lanes)
                best = max(combos, key=lambda c: prod(c.values()))
                lanes = {d: f for d, f in best.items() if f > 1}
            rem = {d: rem[d] // lanes.get(d, 1) for d in DIMS}
            inner = {self.fan: spatial}
            if self.pe_levels:
                inner[self.nl - 1] = lanes
            self.spatials.append((spatial, lanes, rem, inner))

    # -- drawing tiles ------------------------------------------------------------------
    def _fits_all(self, levels, tiles, inner) -> bool:
        return all(_fits(self.nest, self.arch, lvl, _extents(inner, tiles, lvl, self.nl)) for lvl in levels)

    def _checker(self, levels, tiles, inner):
        """``ok(combo)``: does ``combo`` at a level inside ``levels`` keep them all fitting?"""
        bases = [(lvl, _extents(inner, tiles, lvl, self.nl)) for lvl in levels
                 if self.arch.levels[lvl].capacity_bits is not None]

        def ok(combo: dict) -> bool:
            for lvl, base in bases:
                ext = dict(base)
                for d, f in combo.items():
                    ext[d] *= f
                if not _fits(self.nest, self.arch, lvl, ext):
                    return False
            return True
        return ok

    def _pe_tiles(self, level, left, tiles, inner, greedy):
        key = (level, tuple(sorted(left.items())),
               tuple((l, tuple(sorted(t.items()))) for l, t in sorted(tiles.items())),
               tuple(sorted(inner.get(self.nl - 1, {}).items())))
        options = self._pe_cache.get(key)
        if options is None:
            dims = tuple(d for d in self.rule.pe if left[d] > 1)
            ok = self._checker([l for l in self.pe_levels if l <= level], tiles, inner)
            options = [c for c in _factor_combos(dims, left, 1 << 30) if ok(c)]
            self._pe_cache[key] = options
        if not options:
            return None
        if greedy:
            return max(options, key=lambda c: prod(c.values()))
        return self.rng.choice(options)

    def _shared_tiles(self, level, left, tiles, inner, greedy):
        ok = self._checker([l for l in self.shared if l <= level], tiles, inner)
        dims = [d for d in DIMS if left[d] > 1]
        if greedy:
            combo = {d: left[d] for d in dims}
            while not ok(combo):
                big = [d for d in combo if combo[d] > 1]
                if not big:
                    return None
                d = max(big, key=lambda x: combo[x])
                combo[d] //= min(f for f in divisors(combo[d]) if f > 1)
            return combo
        for _ in range(24):
            combo = {d: self.rng.choice(_divisors(left[d])) for d in dims}
            if ok(combo):
                return combo
        one = {d: 1 for d in dims}
        return one if ok(one) else None

    def draw(self, index: int, greedy: bool = False, keep: dict | None = None):
        """A complete random (or greedy) choice for spatial candidate ``index``; ``keep``
        fixes some levels' tiles (they are re-checked)."""
        spatial, lanes, rem, inner = self.spatials[index]
        left = dict(rem)
        tiles: dict[int, dict] = {}
        for level in reversed(self.pe_levels + self.shared):
            if keep is not None and level in keep:
                combo = {d: f for d, f in keep[level].items() if left.get(d, 1) % f == 0}
                pool = self.pe_levels if level in self.pe_levels else self.shared
                if not self._fits_all([l for l in pool if l <= level], {**tiles, level: combo}, inner):
                    combo = None
            elif level in self.pe_levels:
                combo = self._pe_tiles(level, left, tiles, inner, greedy)
            else:
                combo = self._shared_tiles(level, left, tiles, inner, greedy)
            if combo is None:
                self.tightest = (level, _extents(inner, tiles, level, self.nl))
                return None
            tiles[level] = combo
            for d, f in combo.items():
                left[d] //= f
        tiles[0] = {d: f for d, f in left.items() if f > 1}
        orders = tuple(self.rng.choice(TENSORS) for _ in range(self.nl))
        packed = tuple(tuple(sorted((d, f) for d, f in tiles.get(i, {}).items() if f > 1))
                       for i in range(self.nl))
        return _Choice(index, packed, orders)

    def with_orders(self, choice: _Choice, stationary: str) -> _Choice:
        return _Choice(choice.spatial, choice.tiles, tuple(stationary for _ in range(self.nl)))

    def mutate(self, choice: _Choice):
        """Re-draw the loop orders, or one level's tiles (levels outside it re-drawn to fit)."""
        kind = self.rng.random()
        if kind < 0.3:
            orders = list(choice.orders)
            orders[self.rng.randrange(self.nl)] = self.rng.choice(TENSORS)
            return _Choice(choice.spatial, choice.tiles, tuple(orders))
        level = self.rng.choice(self.pe_levels + self.shared) if (self.pe_levels or self.shared) else 0
        keep = {i: dict(choice.tiles[i]) for i in range(1, self.nl) if i > level}
        drawn = self.draw(choice.spatial, keep=keep)
        if drawn is None:
            return None
        return _Choice(choice.spatial, drawn.tiles, choice.orders)

    def build(self, choice: _Choice) -> Mapping:
        spatial, lanes, _, _ = self.spatials[choice.spatial]
        tiles = {i: dict(t) for i, t in enumerate(choice.tiles)}
        levels = []
        for i, lv in enumerate(self.arch.levels):
            combo = tiles.get(i, {})
            order = _order(list(combo), choice.orders[i], self.nest)
            temporal = tuple(Loop(d, combo[d]) for d in order)
            sp: tuple = ()
            if i == self.fan:
                sp = tuple(Loop(d, f, True, "X") for d, f in spatial.items() if f > 1 and d in self.rule.x) + \
                     tuple(Loop(d, f, True, "Y") for d, f in spatial.items() if f > 1 and d not in self.rule.x)
            if self.pe_levels and i == self.nl - 1:
                sp += tuple(Loop(d, f, True, "X") for d, f in lanes.items())
            levels.append(LevelLoops(lv.name, temporal, sp))
        return Mapping(tuple(levels))


def _exact_fit(counts: AccessCounts, arch: Arch) -> bool:
    bits = arch.tensor_bits
    for i, lv in enumerate(arch.levels):
        if lv.capacity_bits is None:
            continue
        need = sum(counts.footprint[i, t] * bits[t] for t in range(3))
        if need > lv.capacity_bits:
            return False
    return True


def _no_mapping(nest: LoopNest, arch: Arch, tightest) -> None:
    level, ext = tightest if tightest else (arch.fanout_level, {d: 1 for d in DIMS})
    lv = arch.levels[level]
    need = _footprint_bits(nest, {d: 1 for d in DIMS} if ext is None else ext, lv.keeps, arch.tensor_bits)
    raise MappingError(
        f"layer {nest.name!r} cannot be mapped: level {lv.name!r} holds "
        f"{(lv.capacity_bits or 0) / 8:.0f} bytes per instance but the smallest tile of "
        f"{', '.join(sorted(lv.keeps))} it must keep needs {need / 8:.0f} bytes")
