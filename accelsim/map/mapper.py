"""Search the dataflow-constrained mapspace of a layer for the chosen objective.

A dataflow is a constraint: which dimensions may be unrolled along the array's X (columns)
and Y (rows) axes and which may iterate inside a PE (what stays put there). Factors need not
divide the bounds: a dimension's outermost loop runs ``ceil(bound / inner factors)`` times and
the remainder tile is padding (:mod:`accelsim.map.mapping`), so any layer can fill the array.
The search:

1. spatial unrollings: up to two allowed dimensions per axis, each factor a divisor of what is
   left of its bound or a balanced strip ``ceil(bound / k)`` (fewest padded steps for ``k``
   passes), ranked by padded compute steps; row stationary keeps the logical PE set of the
   papers (filter rows ``R`` on Y, output rows ``P`` on X) and folds it onto the array: ``P``
   strip-mined with a remainder, the spare rows and columns replicated over other dimensions
   (channels, filters, a second strip of ``P``, images);
2. per-PE levels, innermost first, then the shared levels: tiles that fit (greedy largest and
   seeded random draws over the same factor values); DRAM takes what is left;
3. loop orders per level: one per tensor kept stationary, then any permutation by local moves;
4. every candidate is costed exactly (:mod:`accelsim.map.access`) and ranked by the cost the
   layer will be charged: with a :class:`~accelsim.map.cost.SparseModel` (the layer's
   densities on the design's gating, skipping and storage formats) its expected sparse energy
   and latency, else the dense cost (:func:`~accelsim.map.cost.mapping_cost`);
5. hill climbing from the best candidates: move one dimension's factor at one level (the
   levels outside it absorb the change), change a level's loop order, or switch the spatial
   unrolling.

Budget: ``16 x mapping.search_size`` candidates scaled by the mapspace, ``x clip(log10(S) / 10,
1, 3)`` with ``S`` the number of tilings (spatial candidates x, per dimension, its divisors at
every temporal level that may iterate it), so a layer with more ways to tile gets more tries
(tiny layers x1; ResNet-50 on Eyeriss v1 x1.0-1.5). Seeds (greedy per spatial candidate, dim
priorities on the best three, Eyeriss' parametrisation for row stationary) come first, a
quarter of the budget is random draws, the rest local moves, which stop early after
``max(48, budget / 4)`` candidates without a gain. Results are cached per (layer shape, hardware hash, objective,
densities) by the caller.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from math import prod

from accelsim.errors import MappingError
from accelsim.map.access import AccessCounts, _overlap, analyse
from accelsim.map.arch import Arch, tile_metadata_bits
from accelsim.map.cost import MappingCost, SparseModel, mapping_cost, sparse_cost
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, TENSORS, LoopNest

#: Version of the search: bump it whenever a change to the search (or to the access counts and
#: costs it ranks by) can change the mapping it picks for the same inputs, so results stored on
#: disk by earlier versions (:mod:`accelsim.map.store`) are not reused.
MAPPER_VERSION = 1


@dataclass(frozen=True)
class DataflowRule:
    x: tuple[str, ...]      # dims that may be unrolled along X (array columns)
    y: tuple[str, ...]      # dims that may be unrolled along Y (array rows)
    pe: tuple[str, ...]     # dims that may iterate at per-PE levels
    lanes: tuple[str, ...] = ("C", "K")
    #: dims every candidate unrolls first on an axis, as far as they go (row stationary's
    #: logical PE set: filter rows on Y, output rows on X)
    anchor: tuple[tuple[str, str], ...] = ()


DATAFLOW_RULES = {
    "weight_stationary": DataflowRule(x=("K", "G"), y=("C", "R", "S"), pe=("N", "P", "Q")),
    "output_stationary": DataflowRule(x=("Q", "P", "N"), y=("K", "G"), pe=("C", "R", "S")),
    "input_stationary": DataflowRule(x=("Q", "P", "N"), y=("C", "G"), pe=("K",)),
    "row_stationary": DataflowRule(x=("P", "K", "N", "G"), y=("R", "C", "K", "P", "G"),
                                   pe=("S", "Q", "C", "K"), anchor=(("R", "Y"), ("P", "X"))),
}
OBJECTIVES = ("energy", "latency", "edp")


@dataclass(frozen=True)
class MapResult:
    mapping: Mapping
    counts: AccessCounts
    cost: MappingCost       # dense (what ``accelsim map`` reports)
    candidates: int


def divisors(n: int) -> list[int]:
    return list(_divisors(n))


@lru_cache(maxsize=4096)
def _divisors(n: int) -> tuple[int, ...]:
    return tuple(d for d in range(1, n + 1) if n % d == 0)


@lru_cache(maxsize=65536)
def _largest_divisor(n: int, cap: int) -> int:
    return max(d for d in _divisors(n) if d <= cap)


def _strip(n: int, f: int) -> int:
    """A drawn factor: as is when it divides ``n``, else negative (a strip, remainder kept)."""
    return f if n % f == 0 else -f


@lru_cache(maxsize=65536)
def fill_values(n: int, cap: int) -> tuple[int, ...]:
    """Factors worth trying for a loop over ``n`` (at most ``cap``): the divisors of ``n`` and
    the balanced strips ``ceil(n / k)`` (the fewest padded iterations for ``k`` outer ones)."""
    cap = min(n, cap)
    out = {d for d in _divisors(n) if d <= cap}
    k = 1
    while True:
        v = -(-n // k)
        if v <= cap:
            out.add(v)
        if v <= 1:
            break
        k = -(-n // (v - 1)) if v > 1 else k + 1
    return tuple(sorted(out))


def _tile_words(nest: LoopNest, ext: dict, tensor: str) -> int:
    if tensor == "W":
        return ext["G"] * ext["K"] * ext["C"] * ext["R"] * ext["S"]
    if tensor == "O":
        return ext["N"] * ext["G"] * ext["K"] * ext["P"] * ext["Q"]
    h = _overlap(ext["P"], ext["R"], nest.stride_h, nest.dil_h, 0)[0]
    w = _overlap(ext["Q"], ext["S"], nest.stride_w, nest.dil_w, 0)[0]
    return ext["N"] * ext["G"] * ext["C"] * h * w


def _footprint_bits(nest: LoopNest, ext: dict, keeps: frozenset, bits: tuple) -> float:
    """Bits of the (padded) tiles of ``ext`` a level keeping ``keeps`` holds (as access.py's
    footprint)."""
    return float(sum(_tile_words(nest, ext, t) * b for t, b in zip(TENSORS, bits) if t in keeps))


def _metadata_bits(nest: LoopNest, ext: dict, level) -> float:
    """Worst-case metadata bits (density 1) of the compressed tiles of ``ext`` that ``level``
    keeps in its metadata storage (:func:`accelsim.map.arch.tile_metadata_bits`)."""
    fw, fi, _ = level.metadata_formats
    out = 0.0
    if fw is not None:
        out += _tile_metadata(fw, (ext["G"] * ext["K"], ext["C"], ext["R"], ext["S"]), None)
    if fi is not None:
        h = _overlap(ext["P"], ext["R"], nest.stride_h, nest.dil_h, 0)[0]
        w = _overlap(ext["Q"], ext["S"], nest.stride_w, nest.dil_w, 0)[0]
        out += _tile_metadata(fi, (ext["G"] * ext["C"], h, w), ext["N"])
    return out


@lru_cache(maxsize=65536)
def _tile_metadata(fmt: tuple, shape: tuple, samples: int | None) -> float:
    return tile_metadata_bits(fmt, shape, samples)


def _overflow(nest: LoopNest, ext: dict, level, bits: tuple) -> str | None:
    """Whether ``level`` cannot hold the tiles of ``ext``: ``"data"`` (its padded dense tiles
    exceed ``capacity_bits``), ``"metadata"`` (their worst-case metadata exceeds its metadata
    storage) or None (they fit)."""
    if level.capacity_bits is not None and \
            _footprint_bits(nest, ext, level.keeps, bits) > level.capacity_bits:
        return "data"
    if level.metadata_capacity_bits is not None and \
            _metadata_bits(nest, ext, level) > level.metadata_capacity_bits:
        return "metadata"
    return None


def _order(dims: list[str], stationary: str, nest: LoopNest) -> list[str]:
    """Dims outer to inner with those that do not index ``stationary`` innermost."""
    rel = nest.relevant(stationary)
    return sorted(dims, key=lambda d: (d not in rel, DIMS.index(d)))


def _padded_steps(bounds: dict, factors: dict) -> int:
    return prod(-(-bounds[d] // factors.get(d, 1)) for d in DIMS)


def _axis_options(left: dict, dims: tuple, size: int, anchor: tuple) -> list[dict]:
    """Unrollings of up to two of ``dims`` (``anchor`` first, as far as it goes) over ``size``."""
    out = []
    firsts = [anchor[0]] if anchor and left[anchor[0]] > 1 else [d for d in dims if left[d] > 1]
    for a in firsts:
        values = fill_values(left[a], size)
        if anchor and a == anchor[0]:
            # the logical PE set: the anchor unrolled as far as the axis allows (row stationary:
            # whole filter rows on Y), or strip-mined (output rows on X, a remainder allowed)
            values = values[-1:] if a in ("R", "S") else tuple(v for v in values if v > 1)
        for fa in values:
            out.append({a: fa})
            for b in dims:
                if b == a or left[b] <= 1:
                    continue
                for fb in fill_values(left[b], size // fa):
                    if fb <= 1:
                        continue
                    out.append({a: fa, b: fb})
                    if not anchor:
                        continue
                    # the logical PE set replicated over two more dims (Eyeriss' r x t sets)
                    for c in dims[dims.index(b) + 1:]:
                        if c != a and left[c] > 1:
                            out.extend({a: fa, b: fb, c: fc} for fc in fill_values(left[c], size // (fa * fb))
                                       if fc > 1)
    return out


def _spatial_candidates(nest: LoopNest, rule: DataflowRule, rows: int, cols: int, keep: int):
    """``keep`` unrollings ``(x, y)`` (lists of ``(dim, factor)``) with the fewest padded steps."""
    bounds = {d: nest.bound(d) for d in DIMS}
    anchor = dict((axis, d) for d, axis in rule.anchor)
    found = {}
    def best(options: list, left: dict, size: int) -> list:
        """The options with the fewest padded steps of their own dims (ties: more PEs)."""
        scored = sorted(options, key=lambda o: (_padded_steps(left, o), -prod(o.values())))
        return scored[:3 * keep]

    xs = best(_axis_options(bounds, rule.x, cols, (anchor["X"],) if "X" in anchor else ()), bounds, cols) or [{}]
    for x in xs:
        used = _merge(x)
        left = {d: -(-bounds[d] // used.get(d, 1)) for d in DIMS}
        ys = best(_axis_options(left, rule.y, rows, (anchor["Y"],) if "Y" in anchor else ()), left, rows)
        for y in ys or [{}]:
            total = _merge(x, y)
            key = (tuple(sorted(x.items())), tuple(sorted(y.items())))
            steps = _padded_steps(bounds, total)
            padding = _padded_steps(bounds, total) * prod(total.values()) - nest.macs
            found[key] = (steps, padding, -prod(total.values()))
    ranked = sorted(found.items(), key=lambda kv: kv[1])
    # keep the best few, and among the rest the best of each distinct set of unrolled dims
    out, kinds = [], set()
    for k, _ in ranked:
        kind = tuple(sorted({d for d, _ in k[0] + k[1]}))
        if len(out) < keep or (kind not in kinds and len(out) < 2 * keep):
            out.append(k)
            kinds.add(kind)

    return [(list(x), list(y)) for x, y in out]


def _merge(*parts: dict) -> dict:
    out: dict = {}
    for part in parts:
        for d, f in part.items():
            out[d] = out.get(d, 1) * f
    return out


@dataclass(frozen=True)
class _Choice:
    spatial: int                         # index into _Space.spatials
    tiles: tuple                         # per level (DRAM first): tuple of (dim, requested factor)
    orders: tuple                        # per level: dims outer to inner


class _Space:
    """The fitting mapspace of one layer on one design under one dataflow rule."""

    def __init__(self, nest: LoopNest, arch: Arch, rule: DataflowRule, rng: random.Random):
        self.nest, self.arch, self.rule, self.rng = nest, arch, rule, rng
        self.nl = len(arch.levels)
        self.fan = arch.fanout_level
        self.pe_levels = list(range(self.fan + 1, self.nl))
        self.shared = list(range(1, self.fan + 1))
        self.bounds = {d: nest.bound(d) for d in DIMS}
        self.tightest = None
        self._loops: dict = {}
        self.spatials = []
        for sx, sy in _spatial_candidates(nest, rule, arch.rows, arch.cols, keep=6):
            used = {d: 1 for d in DIMS}
            for d, f in sx + sy:
                used[d] *= f
            left = {d: -(-self.bounds[d] // used[d]) for d in DIMS}
            lanes = []
            if self.pe_levels and arch.lanes > 1:
                best, best_steps = [], None
                for a in rule.lanes:
                    for fa in fill_values(left[a], arch.lanes):
                        combos = [[(a, fa)]]
                        for b in rule.lanes:
                            if b != a:
                                combos += [[(a, fa), (b, fb)] for fb in fill_values(left[b], arch.lanes // fa)]
                        for combo in combos:
                            lf = _merge(dict(combo))
                            # lanes whose tile a per-PE level cannot hold rank last (say a
                            # 4-byte psum register under lanes over K): never picked over a fit
                            steps = (not self._lanes_fit(lf), _padded_steps(left, lf))
                            if best_steps is None or steps < best_steps:
                                best, best_steps = combo, steps
                lanes = [(d, f) for d, f in best if f > 1]
            self.spatials.append((tuple(sx), tuple(sy), tuple(lanes)))
        self.size = self._mapspace_size()

    def _lanes_fit(self, factors: dict) -> bool:
        """Whether every per-PE level holds the tile the MAC lanes ``factors`` work on."""
        ext = {d: factors.get(d, 1) for d in DIMS}
        for i in self.pe_levels:
            if _overflow(self.nest, ext, self.arch.levels[i], self.arch.tensor_bits):
                return False
        return True

    def _mapspace_size(self) -> float:
        """Tilings: spatial candidates x, per dim, its divisors at every temporal level that
        may iterate it (DRAM takes the rest)."""
        out = float(max(len(self.spatials), 1))
        for d in DIMS:
            levels = len(self.shared) + sum(1 for _ in self.pe_levels if d in self.rule.pe)
            out *= float(len(_divisors(self.bounds[d]))) ** levels
        return out

    # -- building ---------------------------------------------------------------------------
    def loops(self, choice: _Choice) -> list[list]:
        """Per level ``[temporal [(dim, factor)] outer to inner, spatial [(dim, factor, axis)]]``,
        factors normalised inner to outer (each at most what is left of its dim; DRAM takes
        the rest, so the outermost loop of a dim runs ceil(bound / inner factors) times)."""
        got = self._loops.get(choice)
        if got is not None:
            return got
        sx, sy, lanes = self.spatials[choice.spatial]
        left = dict(self.bounds)
        out = [[[], []] for _ in range(self.nl)]

        def take(items, whole=False):
            """Normalise ``(dim, factor, ...)`` loops given inner to outer (``whole``: a
            positive factor snaps to the largest divisor of what is left, a negative one is
            a strip with a remainder)."""
            done = []
            for item in items:
                d, f = item[0], item[1]
                if f < 0:
                    f = -f
                elif whole and left[d] % f:
                    f = _largest_divisor(left[d], f)
                f = f if f < left[d] else left[d]
                if f > 1:
                    left[d] = -(-left[d] // f)
                    done.append((d, f) + item[2:])
            return done[::-1]

        for level in range(self.nl - 1, -1, -1):
            if level == self.nl - 1 and self.pe_levels:
                out[level][1] = take([(d, f, "X") for d, f in reversed(lanes)])
            if level == self.fan:
                out[level][1] = take([(d, f, "Y") for d, f in reversed(sy)]
                                     + [(d, f, "X") for d, f in reversed(sx)])
            if level == 0:
                out[level][0] = [(d, left[d]) for d in choice.orders[level] if left[d] > 1]
            else:
                req = dict(choice.tiles[level])
                out[level][0] = take([(d, req[d]) for d in reversed(choice.orders[level]) if d in req],
                                     whole=True)
        if len(self._loops) > 20000:
            self._loops.clear()
        self._loops[choice] = out
        return out

    def build(self, choice: _Choice) -> Mapping:
        levels = []
        for lv, (temporal, spatial) in zip(self.arch.levels, self.loops(choice)):
            levels.append(LevelLoops(lv.name, tuple(Loop(d, f) for d, f in temporal),
                                     tuple(Loop(d, f, True, a) for d, f, a in spatial if f > 1)))
        return Mapping(tuple(levels))

    def fits(self, choice: _Choice) -> bool:
        """Every bounded level holds its padded tiles (a cheap test before the exact count)."""
        loops = self.loops(choice)
        ext = {d: 1 for d in DIMS}
        for level in range(self.nl - 1, 0, -1):
            temporal, spatial = loops[level]
            for d, f, _ in spatial:
                ext[d] *= f
            for d, f in temporal:
                ext[d] *= f
            kind = _overflow(self.nest, ext, self.arch.levels[level], self.arch.tensor_bits)
            if kind:
                self.tightest = (level, dict(ext), kind)
                return False
        return True

    # -- drawing ----------------------------------------------------------------------------
    def _allowed(self, level: int) -> tuple[str, ...]:
        return self.rule.pe if level in self.pe_levels else DIMS

    def _left_below(self, choice_tiles: dict, index: int, level: int) -> dict:
        """What is left of each dim outside the loops at levels > ``level`` (and the spatial
        loops at and below the fan-out level inside ``level``)."""
        partial = _Choice(index, tuple(tuple(sorted(choice_tiles.get(i, {}).items())) for i in range(self.nl)),
                          tuple(DIMS for _ in range(self.nl)))
        sx, sy, lanes = self.spatials[index]
        left = dict(self.bounds)
        loops = self.loops(partial)
        for lv in range(self.nl - 1, level, -1):
            for d, f, _ in loops[lv][1]:
                left[d] = -(-left[d] // f)
            for d, f in loops[lv][0]:
                left[d] = -(-left[d] // f)
        if level == self.fan:
            for d, f, _ in loops[level][1]:
                left[d] = -(-left[d] // f)
        return left

    def draw(self, index: int, greedy=False, keep: dict | None = None):
        """A complete random (or greedy) choice for spatial candidate ``index``; ``keep`` fixes
        some levels' requested tiles. ``greedy``: True (largest tiles that fit) or a priority
        of dims (per-PE levels take each in turn as large as fits; shared levels largest)."""
        tiles: dict[int, dict] = {}
        sx, sy, lanes = self.spatials[index]
        left = dict(self.bounds)

        def apply(items, whole):
            for d, f in items:
                if f < 0:
                    f = -f
                elif whole and left[d] % f:
                    f = _largest_divisor(left[d], f)
                if f > 1:
                    left[d] = -(-left[d] // min(f, left[d]))

        for level in range(self.nl - 1, 0, -1):     # as loops() normalises, inner to outer
            if level == self.nl - 1 and self.pe_levels:
                apply(reversed(lanes), False)
            if level == self.fan:
                apply(list(reversed(sy)) + list(reversed(sx)), False)
            if keep is not None and level in keep:
                tiles[level] = dict(keep[level])
            else:
                dims = [d for d in self._allowed(level) if left[d] > 1]
                how = greedy if (level in self.pe_levels or not isinstance(greedy, tuple)) else True
                combo = self._tiles(index, tiles, level, left, dims, how)
                if combo is None:
                    return None
                tiles[level] = combo
            apply(tiles[level].items(), True)
        orders = tuple(tuple(_order(list(DIMS), self.rng.choice(TENSORS), self.nest))
                       for _ in range(self.nl))
        return _Choice(index, tuple(tuple(sorted(tiles.get(i, {}).items())) for i in range(self.nl)), orders)

    def _tiles(self, index, tiles, level, left, dims, greedy):
        sx, sy, lanes = self.spatials[index]
        bounded = [(lv, self.arch.levels[lv]) for lv in range(self.nl - 1, 0, -1)]

        def ok(combo):
            """Do all bounded levels hold their tiles (the levels outside hold this level's
            tiles too)? Requested factors, an upper bound of the normalised ones."""
            ext = dict.fromkeys(DIMS, 1)
            for lv, spec in bounded:
                if lv == self.nl - 1 and self.pe_levels:
                    for d, f in lanes:
                        ext[d] *= f
                if lv == self.fan:
                    for d, f in sx + sy:
                        ext[d] *= f
                for d, f in (combo if lv == level else tiles.get(lv, {})).items():
                    ext[d] *= abs(f)
                kind = _overflow(self.nest, ext, spec, self.arch.tensor_bits)
                if kind:
                    self.tightest = (lv, dict(ext), kind)
                    return False
            return True

        if isinstance(greedy, tuple):     # each dim in turn as large as still fits
            combo = {d: 1 for d in dims}
            for d in greedy:
                if d not in combo:
                    continue
                for v in reversed(fill_values(left[d], left[d])):
                    combo[d] = _strip(left[d], v)
                    if ok(combo):
                        break
                else:
                    combo[d] = 1
            return combo if ok(combo) else None
        if greedy:
            combo = {d: left[d] for d in dims}
            order = sorted(dims, key=lambda d: (d in ("R", "S"), d == "C", left[d]))
            while not ok(combo):
                big = [d for d in order if combo[d] > 1]
                if not big:
                    return None
                d = big[0] if level in self.pe_levels else max(big, key=lambda x: combo[x])
                smaller = [v for v in fill_values(left[d], combo[d] - 1)]
                combo[d] = smaller[-1] if smaller else 1
            return combo
        odd = self.rng.choice(dims) if dims and self.rng.random() < 0.05 else None
        combo = {d: _strip(left[d], self.rng.choice(fill_values(left[d], left[d])))
                 if d == odd else self.rng.choice(_divisors(left[d])) for d in dims}
        for _ in range(16):           # shrink a random dim until the tiles fit
            if ok(combo):
                return combo
            big = [d for d in dims if abs(combo[d]) > 1]
            if not big:
                break
            d = self.rng.choice(big)
            smaller = [v for v in _divisors(left[d]) if v < abs(combo[d])]
            combo[d] = self.rng.choice(smaller[-2:])
        one = {d: 1 for d in dims}
        return one if ok(one) else None

    def _values(self, n: int) -> tuple[int, ...]:
        """Factor values to draw for a loop over ``n``: mostly divisors (whole tiles, exact
        and cheap to count), sometimes a balanced strip with a remainder."""
        return fill_values(n, n) if self.rng.random() < 0.05 else _divisors(n)

    def row_stationary_seeds(self, index: int) -> list:
        """Eyeriss' own parametrisation of a row-stationary mapping (JSSC 2017 Table III) on
        spatial candidate ``index``: each PE holds ``q`` channels x S taps of ``p`` filters
        (filter scratchpad) and ``p`` psums (psum scratchpad), the global buffer ``n`` images
        x whole output rows and as many filters' psums as fit, channels innermost at DRAM (the
        psums stay in the buffer while the channel passes accumulate). ``p``: the three largest
        divisors of what is left of K that fit, and the largest strip; ``q``: the largest
        divisor and strip that fit; ``n``: 1 and all images."""
        if not self.pe_levels:
            return []
        keeps = lambda t: [lv for lv in self.pe_levels if t in self.arch.levels[lv].keeps]
        o_level = (keeps("O") or self.pe_levels)[-1]
        w_level = (keeps("W") or self.pe_levels)[-1]
        glb = self.fan if self.fan > 0 else None
        sx, sy, lanes = self.spatials[index]
        left = dict(self.bounds)
        for d, f in list(sx) + list(sy) + list(lanes):
            left[d] = -(-left[d] // f)
        order_pe = tuple(d for d in ("N", "G", "K", "P", "Q", "R", "C", "S"))
        order_glb = ("G", "C", "R", "S", "P", "K", "N", "Q")
        order_dram = ("N", "G", "K", "P", "Q", "R", "S", "C")
        orders = tuple(order_dram if lv == 0 else order_glb if lv == glb else order_pe
                       for lv in range(self.nl))
        out = []

        def fits(tiles: dict) -> bool:
            c = _Choice(index, tuple(tuple(sorted(tiles.get(i, {}).items())) for i in range(self.nl)), orders)
            return self.fits(c)

        def largest(tiles: dict, level: int, d: str, n: int, divisor_only: bool) -> list:
            values = _divisors(n) if divisor_only else fill_values(n, n)
            got = []
            for v in reversed(values):
                trial = {k: dict(t) for k, t in tiles.items()}
                trial.setdefault(level, {})[d] = _strip(n, v)
                if fits(trial):
                    got.append(v)
            return got

        ps = largest({}, o_level, "K", left["K"], True)[:3] + largest({}, o_level, "K", left["K"], False)[:1]
        for p in dict.fromkeys(ps):
            base = {o_level: {"K": _strip(left["K"], p)}}
            base.setdefault(w_level, {})["S"] = left["S"]
            if not fits(base):
                base[w_level].pop("S")
            kleft = -(-left["K"] // p)
            qs = largest(base, w_level, "C", left["C"], True)[:1] + largest(base, w_level, "C", left["C"], False)[:1]
            for q in dict.fromkeys(qs):
                with_q = {k: dict(t) for k, t in base.items()}
                with_q[w_level]["C"] = _strip(left["C"], q)
                if glb is None:
                    out.append(_Choice(index, tuple(tuple(sorted(with_q.get(i, {}).items()))
                                                    for i in range(self.nl)), orders))
                    continue
                for n in dict.fromkeys([1, left["N"]]):
                    tiles = {k: dict(t) for k, t in with_q.items()}
                    tiles[glb] = {"Q": left["Q"], "N": n}
                    if not fits(tiles):
                        tiles[glb] = {"N": n}
                        if not fits(tiles):
                            continue
                    m = largest(tiles, glb, "K", kleft, False)[:1]
                    if m:
                        tiles[glb]["K"] = _strip(kleft, m[0])
                    out.append(_Choice(index, tuple(tuple(sorted(tiles.get(i, {}).items()))
                                                    for i in range(self.nl)), orders))
        return out

    def with_orders(self, choice: _Choice, stationary: str) -> _Choice:
        order = tuple(_order(list(DIMS), stationary, self.nest))
        return _Choice(choice.spatial, choice.tiles, tuple(order for _ in range(self.nl)))

    # -- local moves ------------------------------------------------------------------------
    def mutate(self, choice: _Choice):
        """One local move: a dim's factor at one level, a level's loop order, or the spatial
        unrolling."""
        rng = self.rng
        kind = rng.random()
        levels = self.pe_levels + self.shared
        if kind < 0.25 or not levels:
            orders = list(choice.orders)
            lv = rng.randrange(self.nl)
            present = [d for d in orders[lv] if abs(dict(choice.tiles[lv]).get(d, 1)) > 1] \
                if lv else list(orders[lv])
            order = list(orders[lv])
            how = rng.random()
            if how < 0.4 and present:      # one dim to the innermost place
                d = rng.choice(present)
                order.remove(d)
                order.append(d)
            elif how < 0.7:
                i = rng.randrange(len(order) - 1)
                order[i], order[i + 1] = order[i + 1], order[i]
            else:
                order = _order(order, rng.choice(TENSORS), self.nest)
            orders[lv] = tuple(order)
            return _Choice(choice.spatial, choice.tiles, tuple(orders))
        if kind < 0.3 and len(self.spatials) > 1:
            return _Choice(rng.randrange(len(self.spatials)), choice.tiles, choice.orders)
        if kind < 0.35:       # re-draw one level's tiles
            level = rng.choice(levels)
            keep = {i: dict(choice.tiles[i]) for i in levels if i != level}
            drawn = self.draw(choice.spatial, keep=keep)
            return None if drawn is None else _Choice(choice.spatial, drawn.tiles, choice.orders)
        tiles = [dict(t) for t in choice.tiles]
        if kind < 0.7 and len(levels) > 1:    # move a factor of one dim between two levels
            a, b = rng.sample(levels, 2)
            dims = [d for d in self._allowed(a) if d in self._allowed(b) and abs(tiles[b].get(d, 1)) > 1]
            if not dims:
                return None
            d = rng.choice(dims)
            fb = abs(tiles[b][d])
            k = rng.choice([p for p in _divisors(fb) if p > 1][:2] + [fb])
            tiles[b][d] = fb // k
            tiles[a][d] = abs(tiles[a].get(d, 1)) * k
            return _Choice(choice.spatial, tuple(tuple(sorted(t.items())) for t in tiles), choice.orders)
        level = rng.choice(levels)
        dims = self._allowed(level)
        d = rng.choice(dims)
        left = self._left_below({i: tiles[i] for i in range(self.nl)}, choice.spatial, level)
        if left[d] <= 1 and tiles[level].get(d, 1) <= 1:
            return None
        n = max(left[d], 1)
        values = self._values(n)
        cur = min(abs(tiles[level].get(d, 1)), n)
        pos = min(range(len(values)), key=lambda i: abs(values[i] - cur))
        step = rng.choice([-2, -1, 1, 1, 2])
        tiles[level][d] = _strip(n, values[max(0, min(len(values) - 1, pos + step))])
        return _Choice(choice.spatial, tuple(tuple(sorted(t.items())) for t in tiles), choice.orders)


def search(nest: LoopNest, arch: Arch, dataflow: str, objective: str = "energy",
           search_size: int = 16, seed: int = 0, model: SparseModel | None = None) -> MapResult:
    """The best mapping found for ``nest`` on ``arch`` under ``dataflow``.

    ``search_size`` sets the budget (see the module docstring): seeds, random draws from the
    fitting mapspace, then local moves from the best so far. ``model``: rank by the layer's
    expected sparse cost (else dense). The result's ``cost`` is the dense cost of the pick.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    space = _Space(nest, arch, DATAFLOW_RULES[dataflow], random.Random(seed))
    if not space.spatials:
        _no_mapping(nest, arch, space.tightest)
    scale = min(3.0, max(1.0, math.log10(max(space.size, 1.0)) / 10.0))
    budget = max(8, int(round(16 * int(search_size) * scale)))
    ranked: list = []        # (score, mapping, counts, choice), best first
    evaluated = 0
    seen: set = set()

    def consider(choice) -> None:
        nonlocal evaluated
        if choice is None or not space.fits(choice):
            return
        mapping = space.build(choice)
        key = repr(mapping.to_dict())
        if key in seen:
            return
        seen.add(key)
        counts = analyse(nest, mapping, arch.keeps, arch.unicast)
        if not _exact_fit(counts, arch, mapping, nest):
            return
        cost = mapping_cost(counts, arch) if model is None else sparse_cost(counts, arch, model, mapping)
        evaluated += 1
        score = {"energy": (cost.energy_pj, cost.cycles), "latency": (cost.cycles, cost.energy_pj),
                 "edp": (cost.edp, cost.energy_pj)}[objective]
        ranked.append((score, evaluated, mapping, counts, choice))
        ranked.sort(key=lambda r: (r[0], r[1]))
        del ranked[4:]

    for i in range(len(space.spatials)):          # greedy seeds: largest tiles, each order
        base = space.draw(i, greedy=True)
        if base is not None:
            for stationary in TENSORS:
                consider(space.with_orders(base, stationary))
    # the best spatial unrollings so far, their per-PE tiles filled by dim priorities (each
    # rotation of the PE dims, both ways), kept output- or weight-stationary
    best_spatial = []
    for r in ranked:
        if r[4].spatial not in best_spatial:
            best_spatial.append(r[4].spatial)
    pe = space.rule.pe
    priorities = [pe[i:] + pe[:i] for i in range(len(pe))]
    priorities += [p[::-1] for p in priorities]
    if space.rule.anchor:
        for index in range(len(space.spatials)):
            for choice in space.row_stationary_seeds(index):
                consider(choice)
    for index in best_spatial[:3]:
        for prio in priorities:
            base = space.draw(index, greedy=tuple(prio))
            if base is not None:
                for stationary in ("O", "W"):
                    consider(space.with_orders(base, stationary))
    tries = 0
    while len(seen) < budget // 4 and tries < budget:
        tries += 1
        consider(space.draw(space.rng.randrange(len(space.spatials))))
    tries = 0
    patience = max(48, budget // 4)      # stop climbing after this many candidates without gain
    while ranked and len(seen) < budget and tries < 3 * budget and evaluated - ranked[0][1] < patience:
        tries += 1
        start = ranked[0] if space.rng.random() < 0.85 else space.rng.choice(ranked)
        choice = start[4]
        for _ in range(space.rng.choice([1, 1, 2])):
            nxt = space.mutate(choice)
            choice = nxt if nxt is not None else choice
        consider(choice)
    if not ranked:
        _no_mapping(nest, arch, space.tightest)
    _, _, mapping, counts, _ = ranked[0]
    return MapResult(mapping, counts, mapping_cost(counts, arch), evaluated)


def _exact_fit(counts: AccessCounts, arch: Arch, mapping: Mapping | None = None,
               nest: LoopNest | None = None) -> bool:
    """Every bounded level holds its exact tiles (``counts``' footprints) and, given the
    ``mapping`` of ``nest``, their worst-case metadata fits its metadata storage
    (:func:`metadata_overflow`)."""
    bits = arch.tensor_bits
    for i, lv in enumerate(arch.levels):
        if lv.capacity_bits is None:
            continue
        need = sum(counts.footprint[i, t] * bits[t] for t in range(3))
        if need > lv.capacity_bits:
            return False
    return mapping is None or metadata_overflow(mapping, nest, arch) is None


def tile_extents(mapping: Mapping) -> list[dict]:
    """Per level, the extent of each dim in the tile it holds (its loops and those inside,
    padded: a remainder tile counts whole, as the capacity tests)."""
    out, ext = [], dict.fromkeys(DIMS, 1)
    for lv in reversed(mapping.levels):
        for loop in lv.spatial + lv.temporal:
            ext[loop.dim] *= loop.factor
        out.append(dict(ext))
    return out[::-1]


def metadata_overflow(mapping: Mapping, nest: LoopNest, arch: Arch) -> tuple | None:
    """``(level, bits needed)`` of the first level whose tiles' worst-case metadata exceeds its
    metadata storage, else None."""
    if all(lv.metadata_capacity_bits is None for lv in arch.levels):
        return None
    for i, (lv, ext) in enumerate(zip(arch.levels, tile_extents(mapping))):
        if lv.metadata_capacity_bits is None:
            continue
        need = _metadata_bits(nest, ext, lv)
        if need > lv.metadata_capacity_bits:
            return i, need
    return None


def _no_mapping(nest: LoopNest, arch: Arch, tightest) -> None:
    level, ext, kind = tightest if tightest else (arch.fanout_level, {d: 1 for d in DIMS}, "data")
    lv = arch.levels[level]
    one = {d: 1 for d in DIMS}
    if kind == "metadata":
        need = _metadata_bits(nest, one, lv)
        raise MappingError(
            f"layer {nest.name!r} cannot be mapped: level {lv.name!r} holds "
            f"{lv.metadata_capacity_bits / 8:.0f} bytes of metadata per instance "
            f"(metadata.size_bytes) but the smallest tile's worst-case metadata needs "
            f"{need / 8:.2f} bytes")
    # the smallest tile the level must hold: one element of each tensor it keeps
    need = _footprint_bits(nest, one, lv.keeps, arch.tensor_bits)
    raise MappingError(
        f"layer {nest.name!r} cannot be mapped: level {lv.name!r} holds "
        f"{(lv.capacity_bits or 0) / 8:.0f} bytes per instance but the smallest tile of "
        f"{', '.join(sorted(lv.keeps))} it must keep needs {need / 8:.0f} bytes")
