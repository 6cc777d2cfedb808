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

import itertools
import random
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
    return [d for d in range(1, n + 1) if n % d == 0]


def _factor_combos(dims: tuple[str, ...], rem: dict, limit: int) -> list[dict]:
    """Combinations of divisors (one per dim of ``dims``) with product <= ``limit``."""
    out = [{}]
    for d in dims:
        nxt = []
        for combo in out:
            used = prod(combo.values()) if combo else 1
            for f in divisors(rem[d]):
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
           search_size: int = 64, seed: int = 0) -> MapResult:
    """The best mapping found for ``nest`` on ``arch`` under ``dataflow``."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    rule = DATAFLOW_RULES[dataflow]
    nl = len(arch.levels)
    fan = arch.fanout_level
    pe_levels = list(range(fan + 1, nl))
    shared = list(range(1, fan + 1))
    rng = random.Random(seed)
    best: tuple | None = None
    evaluated = 0
    tightest = None
    for sx, sy in _spatial_candidates(nest, rule, arch.rows, arch.cols, keep=6):
        spatial = {d: 1 for d in DIMS}
        for d, f in sx + sy:
            spatial[d] *= f
        rem = {d: nest.bound(d) // spatial[d] for d in DIMS}
        lanes = {}
        if pe_levels and arch.lanes > 1:
            for combo in sorted(_factor_combos(rule.lanes, rem, arch.lanes), key=lambda c: -prod(c.values()))[:1]:
                lanes = {d: f for d, f in combo.items() if f > 1}
        rem = {d: rem[d] // lanes.get(d, 1) for d in DIMS}
        spatial_inner = {fan: spatial}
        if pe_levels:
            spatial_inner[nl - 1] = lanes
        tiles: dict[int, dict] = {}
        ok = True
        for level in reversed(pe_levels):
            options = _factor_combos(tuple(d for d in rule.pe if rem[d] > 1), rem, 1 << 30)
            fitting = []
            for combo in options:
                trial = dict(tiles)
                trial[level] = combo
                if all(_fits(nest, arch, lvl, _extents({nl - 1: lanes}, trial, lvl, nl))
                       for lvl in pe_levels if lvl <= level):
                    fitting.append(combo)
            if not fitting:
                ok = False
                tightest = (level, _extents({nl - 1: lanes}, tiles, level, nl))
                break
            choice = max(fitting, key=lambda c: (prod(c.values()), rng.random()))
            tiles[level] = choice
            for d, f in choice.items():
                rem[d] //= f
        if not ok:
            continue
        shared_tilings = _shared_tilings(nest, arch, shared, rem, tiles, spatial_inner, nl,
                                         search_size, rng)
        if not shared_tilings:
            tightest = (fan, _extents(spatial_inner, tiles, fan, nl))
            continue
        for st in shared_tilings:
            all_tiles = {**tiles, **st}
            left = dict(rem)
            for lvl in shared:
                for d, f in st.get(lvl, {}).items():
                    left[d] //= f
            all_tiles[0] = {d: f for d, f in left.items() if f > 1}
            for stationary in TENSORS:
                mapping = _build(nest, arch, all_tiles, spatial, lanes, stationary, rule, fan, pe_levels)
                counts = analyse(nest, mapping, arch.keeps)
                if not _exact_fit(counts, arch):
                    continue
                cost = mapping_cost(counts, arch)
                evaluated += 1
                score = {"energy": (cost.energy_pj, cost.cycles), "latency": (cost.cycles, cost.energy_pj),
                         "edp": (cost.edp, cost.energy_pj)}[objective]
                if best is None or score < best[0]:
                    best = (score, mapping, counts, cost)
    if best is None:
        _no_mapping(nest, arch, tightest)
    return MapResult(best[1], best[2], best[3], evaluated)


def _shared_tilings(nest, arch, shared, rem, tiles, spatial_inner, nl, size, rng) -> list[dict]:
    """Candidate temporal tiles for the shared levels (innermost first), all fitting."""
    results = [{}]
    for level in reversed(shared):
        nxt = []
        for partial in results:
            left = dict(rem)
            for lvl, combo in partial.items():
                for d, f in combo.items():
                    left[d] //= f
            dims = tuple(d for d in DIMS if left[d] > 1)
            options = _factor_combos(dims, left, 1 << 40) if dims else [{}]
            if len(options) > 4 * size:
                options = rng.sample(options, 4 * size) + [dict(left)]
            fitting = []
            for combo in options:
                trial = {**tiles, **partial, level: combo}
                if all(_fits(nest, arch, lvl, _extents(spatial_inner, trial, lvl, nl))
                       for lvl in shared if lvl <= level):
                    fitting.append(combo)
            fitting.sort(key=lambda c: -prod(c.values()))
            keep = fitting[: max(2, size // 4)]
            rest = fitting[len(keep):]
            keep += rng.sample(rest, min(len(rest), max(0, size // len(results) - len(keep))))
            nxt.extend({**partial, level: c} for c in keep)
        results = nxt[: size]
    return results


def _build(nest, arch, tiles, spatial, lanes, stationary, rule, fan, pe_levels) -> Mapping:
    levels = []
    for i, lv in enumerate(arch.levels):
        combo = {d: f for d, f in tiles.get(i, {}).items() if f > 1}
        if i in pe_levels:
            order = _order(list(combo), _pe_stationary(rule), nest)
        else:
            order = _order(list(combo), stationary, nest)
        temporal = tuple(Loop(d, combo[d]) for d in order)
        sp: tuple = ()
        if i == fan:
            sp = tuple(Loop(d, f, True, "X") for d, f in spatial.items() if f > 1 and d in rule.x) + \
                 tuple(Loop(d, f, True, "Y") for d, f in spatial.items() if f > 1 and d not in rule.x)
        if pe_levels and i == len(arch.levels) - 1:
            sp += tuple(Loop(d, f, True, "X") for d, f in lanes.items())
        levels.append(LevelLoops(lv.name, temporal, sp))
    return Mapping(tuple(levels))


def _pe_stationary(rule: DataflowRule) -> str:
    pe = set(rule.pe)
    for t in ("W", "O", "I"):
        if pe.isdisjoint({"G", "K", "C", "R", "S"} if t == "W" else
                         {"N", "G", "K", "P", "Q"} if t == "O" else {"N", "G", "C", "P", "Q", "R", "S"}):
            return t
    return "O"


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
