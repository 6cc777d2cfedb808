"""Per-level, per-tensor access counts of a mapping (dense), by exact delta analysis.

Conventions are Timeloop's, read from its source (nest-analysis.cpp ``ComputeDeltas``,
``ComputeAccurateMulticastedAccesses``; operation-space.cpp ``SaveAndSubtractIfSameStride``;
tiling.cpp ``MaskTiles``: tests/test_map_conventions.py lists what was read), checked equal
on its exercises (``tests/test_map_timeloop.py``) and against a walk of every step over
explicit element sets (``tests/naive_nest.py``):

- a level instance holds the tile of each tensor it keeps that the loops at its level and below
  touch. Each step of a temporal loop above it translates the tile. With ``k`` the innermost
  such loop, a step of ``k`` moves it by ``t_k``; a step of an outer loop ``j`` (the loops
  inside wrap) by ``t_j - sum_{i>j} (n_i - 1) t_i``. The tile is *filled* with the elements it
  does not hold when that is ``t_k`` (a sliding window keeps its overlap, also across the wrap
  of a window loop split in two), with nothing when it is zero, and with the whole tile
  otherwise (Timeloop resets on a change of stride; as in the version that produced the
  fixtures, a zero ``t_k`` counts as the stride, so an irrelevant innermost loop makes every
  move reload). Bypassed levels are skipped;
- a parent is *read* once per group of children that need the same data (multicast); outputs
  of such a group are reduced to one *update*. Groups are formed per level of spatial loops:
  a child's tile is child 0's translated by its offset, so children of one instance share
  exactly when their offsets agree on every coordinate, e.g. row-stationary PEs ``(p, r)``
  with equal ``p*stride + r*dilation`` need the same input row. Across levels that bypass the
  tensor the groups of each level multiply (Timeloop's ``MaskTiles``), and tiles that merely
  overlap (halos) are not shared;
- the MAC units hold nothing: every step reads each operand from the innermost level keeping it;
- psums: every MAC step updates the innermost output level and reads the running sum except on
  an element's first update; a child refills a psum it held before (a parent read, unless the
  parent never got it); every element a child evicts is one update at the parent (drains are
  not counted as reads at the child). A parent instance holds one copy of each output, so over
  the run its reads = updates - distinct outputs; without spatial reduction (``unicast``) the
  siblings that share an output each update that copy, and all but the first update of it read
  the running sum (read-modify-write), as for temporal revisits.

Each coordinate of a tensor is an interval or a window ``o*stride + i*dilation``; the tile
after a step is a translate of the tile before, so ``|new \\ old| = prod|A_t| - prod|A_t & C_t|``
per coordinate, and every step of a given loop costs the same (padding is not an index), so
the work is per loop, not per iteration. Timeloop's default run extrapolates a loop from its
iterations 0 and 1 (it sees the wrap as ``t_j - sum_{i>j} t_i``); that can differ from walking
every step only when a loop inside the advancing one moves the tile and has more than 2
iterations.

Speed (the mapper counts hundreds of candidates per layer shape): :class:`_Flat` builds each
table a mapping's counting reads repeatedly once, and the pure per-coordinate pieces (window
overlaps, multisets of tile bases named by their terms, weighted sums over them, digit counts)
are cached across mappings in bounded ``lru_cache`` tables (read-only arrays);
``benchmarks/bench_access.py`` checks the results equal the version before, field for field.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from accelsim.map.mapping import Loop, Mapping
from accelsim.map.nest import DIMS as DIMS_ORDER, TENSORS, LoopNest, TensorDim

READS, FILLS, UPDATES = 0, 1, 2
ACTIONS = ("reads", "fills", "updates")


@dataclass(frozen=True)
class AccessCounts:
    """Totals over all instances. ``counts[level, tensor, action]`` (TENSORS order, ACTIONS)."""

    counts: np.ndarray            # (levels, 3, 3) float64
    footprint: np.ndarray         # (levels, 3) words per instance (0 where not kept)
    instances: np.ndarray         # (levels + 1,) utilised instances per level, last = MAC units
    macs: int
    steps: int
    macs_reads: np.ndarray        # (3,) operand reads by the MAC units from their innermost level

    def get(self, level: int, tensor: str, action: str) -> float:
        return float(self.counts[level, TENSORS.index(tensor), ACTIONS.index(action)])


class _Flat:
    """The mapping's loops flattened outer to inner, with each loop's radix stride.

    It also keeps the tables the counting reads many times for one mapping, each built once:
    the extents below every level, the spatial factor of every level, and per tensor the
    coordinate each loop moves (and by how much), the class of each move (see
    :meth:`classes`), per level the sibling offsets along each coordinate.
    """

    def __init__(self, nest: LoopNest, mapping: Mapping):
        self.nest = nest
        self.loops: list[tuple[int, Loop]] = mapping.flat()
        self.nlevels = nl = len(mapping.levels)
        n = len(self.loops)
        stride: dict = {}
        self.stride: list[int] = [0] * n
        for idx in range(n - 1, -1, -1):
            _, loop = self.loops[idx]
            self.stride[idx] = stride.get(loop.dim, 1)
            stride[loop.dim] = self.stride[idx] * loop.factor
        #: the range each dim's loops run over (its bound unless a remainder pads it)
        self.padded = {d: stride.get(d, 1) for d in DIMS_ORDER}
        self.bounds = dict(zip(DIMS_ORDER, nest.bounds))
        self.remainder = any(self.padded[d] != self.bounds[d] for d in DIMS_ORDER)
        # extents of the loops at levels >= i for i in 0..nl (flat() lists loops level by level)
        ext: list = [None] * (nl + 1)
        cur = dict.fromkeys(DIMS_ORDER, 1)
        ext[nl] = dict(cur)
        pos = n
        for lv in range(nl - 1, -1, -1):
            while pos and self.loops[pos - 1][0] == lv:
                pos -= 1
                loop = self.loops[pos][1]
                cur[loop.dim] *= loop.factor
            ext[lv] = dict(cur)
        self.ext: list[dict] = ext
        self.level_spatial: list[int] = [1] * nl
        self.temporal: list[int] = []
        self.spatial: list[int] = []
        for idx, (lv, loop) in enumerate(self.loops):
            if loop.spatial:
                self.level_spatial[lv] *= loop.factor
                self.spatial.append(idx)
            else:
                self.temporal.append(idx)
        self._memo: dict = {}
        self._coords: dict = {}

    def inner_extents(self, child: int) -> dict:
        """Range of every dim covered by loops at levels >= ``child`` (contiguous, from 0)."""
        return dict(self.ext[child])

    def spatial_product(self, below: int, above: int = 0) -> int:
        """Product of spatial factors at levels in ``[above, below)``."""
        out = 1
        for lv in range(max(above, 0), min(below, self.nlevels)):
            out *= self.level_spatial[lv]
        return out

    def coords(self, tensor: str) -> tuple:
        """(coordinates of ``tensor``, per loop ``(coordinate index or None, how far one step
        of it moves the tile along that coordinate)``, per coordinate whether its dims have no
        remainder, whether every coordinate's coefficients are positive)."""
        got = self._coords.get(tensor)
        if got is None:
            nest = self.nest
            tds, coef, positive = _coefficients(tensor, nest.stride_h, nest.stride_w, nest.dil_h,
                                                nest.dil_w)
            stride = self.stride
            vals = [(None, 0) if (c := coef.get(loop.dim)) is None else (c[0], stride[idx] * c[1])
                    for idx, (_, loop) in enumerate(self.loops)]
            if self.remainder:
                padded, bounds = self.padded, self.bounds
                whole = tuple(all(padded[d] == bounds[d] for d in td.dims) for td in tds)
            else:
                whole = (True,) * len(tds)
            got = self._coords[tensor] = (tds, vals, whole, positive)
        return got

    def above(self, child: int) -> list[int]:
        """Indices of the temporal loops at levels above ``child``, outer to inner."""
        return [idx for idx in self.temporal if self.loops[idx][0] < child]

    def classes(self, tensor: str, child: int) -> tuple:
        """``(above, classes, inner)``: the temporal loops above ``child``, each one's move of
        the child's tile when it advances (0: no move, 1: the innermost loop's translation, a
        sliding step, 2: any other, a reload), and the innermost loop's translation per
        coordinate. An outer loop ``j`` moves the tile by ``t_j - sum_{i>j} (n_i - 1) t_i``."""
        key = ("classes", tensor, child)
        got = self._memo.get(key)
        if got is not None:
            return got
        tds, vals, _, positive = self.coords(tensor)
        above = self.above(child)
        nc = len(tds)
        inner = [0] * nc
        if not above:
            got = self._memo[key] = (above, [], tuple(inner))
            return got
        cls = [0] * len(above)
        loops = self.loops
        ck, vk = vals[above[-1]]
        if ck is not None:
            inner[ck] = vk
        if positive:
            # a loop's translation is one positive entry (or none), so the inner loops' travel
            # ``wrapped`` is positive wherever it is not zero and the jump ``t_j - wrapped`` is
            # negative there: it is zero only when ``wrapped`` lies on the loop's own
            # coordinate and equals its step, and the innermost's translation (``vk`` > 0 on
            # ``ck``) only when the loop and ``wrapped`` lie on ``ck`` and differ by ``vk``
            wrapped: dict = {}       # coordinate -> sum over the loops inside of (n_i - 1) t_i
            for j in range(len(above) - 1, -1, -1):
                idx = above[j]
                ci, v = vals[idx]
                if ci is None:
                    cls[j] = 2 if wrapped else 0
                    continue
                w = wrapped.get(ci, 0)
                alone = len(wrapped) <= (1 if w else 0)
                cls[j] = 0 if alone and w == v else 1 if alone and ci == ck and v - w == vk else 2
                wrapped[ci] = w + (loops[idx][1].factor - 1) * v
        else:
            zero, inner_t, wrapped_v = (0,) * nc, tuple(inner), [0] * nc
            for j in range(len(above) - 1, -1, -1):
                idx = above[j]
                ci, v = vals[idx]
                s_ = [0] * nc
                if ci is not None:
                    s_[ci] = v
                jump = tuple([a - b for a, b in zip(s_, wrapped_v)])
                cls[j] = 0 if jump == zero else 1 if jump == inner_t else 2
                f1 = loops[idx][1].factor - 1
                wrapped_v = [w + f1 * x for w, x in zip(wrapped_v, s_)]
        got = self._memo[key] = (above, cls, tuple(inner))
        return got

    def level_offsets(self, tensor: str, level: int) -> list:
        """Per coordinate moved by the spatial loops of ``level``: ``(coordinate, sorted
        distinct offsets its children take along it)``, coordinates with one offset left out."""
        key = ("offsets", tensor, level)
        got = self._memo.get(key)
        if got is None:
            tds, vals, _, _ = self.coords(tensor)
            offs: dict = {}
            for idx, (lv, loop) in enumerate(self.loops):
                if lv == level and loop.spatial:
                    ci, step = vals[idx]
                    if ci is not None:
                        cur = offs.get(ci, (0,))
                        offs[ci] = {o + a * step for o in cur for a in range(loop.factor)}
            got = self._memo[key] = [(ci, tuple(sorted(o))) for ci, o in sorted(offs.items())
                                     if len(o) > 1]
        return got

    def spatial_dims(self, below: int) -> dict:
        """Per dim, the product of its spatial factors at levels above ``below``."""
        key = ("spatial_dims", below)
        got = self._memo.get(key)
        if got is None:
            got = dict.fromkeys(DIMS_ORDER, 1)
            for (lv, loop) in self.loops:
                if loop.spatial and lv < below:
                    got[loop.dim] *= loop.factor
            self._memo[key] = got
        return got

    def dim_loops(self, dim: str) -> list:
        """``(level, factor, spatial, radix stride)`` of ``dim``'s loops, outer to inner."""
        key = ("dim", dim)
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = [(lv, loop.factor, loop.spatial, self.stride[idx])
                                     for idx, (lv, loop) in enumerate(self.loops) if loop.dim == dim]
        return got


@lru_cache(maxsize=1024)
def _coefficients(tensor: str, stride_h: int, stride_w: int, dil_h: int, dil_w: int) -> tuple:
    """(coordinates of ``tensor``, per dim indexing it ``(coordinate index, coefficient)``,
    whether every coefficient is positive)."""
    tds = LoopNest((1,) * len(DIMS_ORDER), stride_h, stride_w, dil_h, dil_w).tensor_dims(tensor)
    coef = {}
    for ci, td in enumerate(tds):
        if td.inner is None:
            coef[td.outer] = (ci, 1)
        else:
            coef[td.outer] = (ci, td.stride)
            coef[td.inner] = (ci, td.dilation)
    return tds, coef, all(c > 0 for _, c in coef.values())


@lru_cache(maxsize=4096)
def _window(eo: int, ei: int, stride: int, dilation: int) -> frozenset:
    """Coordinates ``o*stride + i*dilation`` for ``o < eo``, ``i < ei``."""
    return frozenset(o * stride + i * dilation for o in range(eo) for i in range(ei))


@lru_cache(maxsize=65536)
def _overlap(eo: int, ei: int, stride: int, dilation: int, shift: int) -> tuple[int, int]:
    """(|S|, |S & (S + shift)|) of the window set S."""
    base = _window(eo, ei, stride, dilation)
    if shift == 0:
        return len(base), len(base)
    return len(base), sum(1 for v in base if v - shift in base)


def _tile(tds, ext: dict) -> int:
    """Elements of the tile whose dims span ``ext``."""
    out = 1
    for td in tds:
        if td.inner is None:
            out *= ext[td.outer]
        else:
            out *= _overlap(ext[td.outer], ext[td.inner], td.stride, td.dilation, 0)[0]
    return out


def _moved(tds, shift: tuple[int, ...], ext: dict) -> int:
    """|tile \\ (tile - shift)|: elements a tile translated by ``shift`` does not share with the
    untranslated one (the same number leave it)."""
    new, kept = 1, 1
    for td, sh in zip(tds, shift):
        if td.inner is None:
            e = ext[td.outer]
            new, kept = new * e, kept * max(0, e - abs(sh))
        else:
            size, common = _overlap(ext[td.outer], ext[td.inner], td.stride, td.dilation, sh)
            new, kept = new * size, kept * common
    return new - kept


@lru_cache(maxsize=65536)
def _sumset(a: tuple[int, ...], b: tuple[int, ...], stride: int, dilation: int) -> int:
    """|{x*stride + y*dilation : x in a, y in b}|."""
    return len({x * stride + y * dilation for x in a for y in b})


def _offsets(factors_strides) -> tuple[int, ...]:
    """Index offsets that spatial loops ``(factor, radix stride)`` of one dimension give."""
    out = [0]
    for factor, step in factors_strides:
        out = [o + i * step for o in out for i in range(factor)]
    return tuple(sorted(out))


def _distinct_children(flat: _Flat, tensor: str, level: int) -> int:
    """Children of one instance of ``level`` (its spatial loops) whose tiles differ.

    A child's tile is child 0's translated along each coordinate by that child's offset, so
    two children need the same data exactly when their offsets agree on every coordinate.
    An ``h = p*stride + r*dilation`` coordinate takes one value per distinct sum: children that
    differ in ``p`` and ``r`` but not in ``p*stride + r*dilation`` (row stationary's diagonal)
    need the same input rows.
    """
    key = ("children", tensor, level)
    got = flat._memo.get(key)
    if got is not None:
        return got
    per_dim: dict = {}
    for idx, (lv, loop) in enumerate(flat.loops):
        if lv == level and loop.spatial:
            per_dim.setdefault(loop.dim, []).append((loop.factor, flat.stride[idx]))
    out = 1
    if per_dim:
        for td in flat.coords(tensor)[0]:
            outer = per_dim.get(td.outer)
            inner = per_dim.get(td.inner) if td.inner is not None else None
            if inner is None:
                for factor, _ in outer or ():
                    out *= factor
            elif outer is None:
                for factor, _ in inner:
                    out *= factor
            else:
                out *= _sumset(_offsets(outer), _offsets(inner), td.stride, td.dilation)
    flat._memo[key] = out
    return out


def _fanout(flat: _Flat, tensor: str, lo: int, hi: int, multicast: bool = True) -> int:
    """Reads (or updates) one parent instance makes per element one child instance receives
    (or sends): per level of spatial loops in ``[lo, hi)``, its children whose tiles differ
    (Timeloop compares the deltas of a level's children and multicasts to those that are
    equal; through levels that bypass the tensor the factors of the levels multiply). Without
    multicast every sibling costs its own read / update."""
    if not multicast:
        return flat.spatial_product(hi, lo)
    out = 1
    for lv in range(lo, min(hi, flat.nlevels)):
        if flat.level_spatial[lv] > 1:
            out *= _distinct_children(flat, tensor, lv)
    return out


def _transfers(flat: _Flat, tensor: str, child: int, ext: dict) -> int:
    """Elements one instance of ``child`` receives over the whole run (as many leave it).

    Each step of a temporal loop above the child translates its tile. With ``k`` the innermost
    such loop, a step of ``k`` moves it by ``t_k`` and a step of an outer loop ``j`` (the loops
    inside it wrap) by ``t_j - sum_{i>j} (n_i - 1) t_i``: nothing is moved in for a zero
    translation, the new elements for ``t_k`` (a sliding window split over two loops keeps its
    overlap), and the whole tile for any other translation (Timeloop's reset on a change of
    stride: see the module docstring).
    """
    tds = flat.coords(tensor)[0]
    full = _tile(tds, ext)              # the first tile
    above, cls, inner = flat.classes(tensor, child)
    if not above:
        return full
    step = _moved(tds, inner, ext) if 1 in cls else 0
    total = full
    outer_iters = 1
    loops = flat.loops
    for idx, c in zip(above, cls):
        factor = loops[idx][1].factor
        if c:
            total += (factor - 1) * outer_iters * (step if c == 1 else full)
        outer_iters *= factor
    return total


def _distinct(flat: _Flat, tensor: str, below: int) -> int:
    """Distinct elements of ``tensor`` one instance at level ``below`` ever touches."""
    spread = flat.spatial_dims(below)
    ext = {d: b // spread[d] for d, b in flat.bounds.items()}
    return _tile(flat.coords(tensor)[0], ext)


def analyse(nest: LoopNest, mapping: Mapping, keeps: tuple[frozenset, ...],
            unicast: frozenset = frozenset()) -> AccessCounts:
    """Access counts of ``mapping`` on a hierarchy whose level ``i`` keeps ``keeps[i]``.

    Level 0 (the outermost) must keep every tensor. A level in ``unicast`` sends one read to
    each child that needs it (no multicast) and receives one update per child (no spatial
    reduction in the network).
    """
    flat = _Flat(nest, mapping)
    nl = flat.nlevels
    if set(keeps[0]) != set(TENSORS):
        raise ValueError("the outermost level must keep every tensor")
    if flat.remainder:
        return _analyse_remainder(flat, mapping, keeps, unicast)
    counts = np.zeros((nl, 3, 3))
    footprint = np.zeros((nl, 3))
    instances = np.array([flat.spatial_product(i) for i in range(nl + 1)], dtype=np.int64)
    macs_reads = np.zeros(3)
    steps = mapping.steps
    for ti, tensor in enumerate(TENSORS):
        tds = flat.coords(tensor)[0]
        chain = [i for i in range(nl) if tensor in keeps[i]]
        for lvl in chain:
            footprint[lvl, ti] = _tile(tds, flat.ext[lvl])
        for parent, child in zip(chain, chain[1:] + [nl]):
            p_inst = instances[parent]
            spread = _fanout(flat, tensor, parent, child, parent not in unicast)
            # per child instance over the run: elements received (as many are sent back)
            moved = steps if child == nl else _transfers(flat, tensor, child, flat.ext[child])
            arrivals = spread * moved       # the MAC units hold nothing: every step is new
            if tensor != "O":
                counts[parent, ti, READS] += p_inst * arrivals
                if child == nl:
                    macs_reads[ti] = p_inst * arrivals
                else:
                    counts[child, ti, FILLS] += instances[child] * moved
                continue
            # a parent instance holds one copy of each output: only its first update initialises
            # it, every later one needs the running sum read (a child refill or, for a sibling
            # whose partial sum the network did not reduce, a read-modify-write). Unicast
            # siblings that differ only in dims not indexing the output all update the same
            # copy, so they do not each start it from zero: reads = arrivals - distinct.
            refetch = arrivals - _distinct(flat, tensor, parent)
            counts[parent, ti, READS] += p_inst * refetch
            counts[parent, ti, UPDATES] += p_inst * arrivals
            if child == nl:
                macs_reads[ti] = p_inst * refetch
            else:
                counts[child, ti, FILLS] += instances[child] * (moved - _distinct(flat, tensor, child))
    return AccessCounts(counts, footprint, instances, nest.macs, steps, macs_reads)


# ---- imperfect factorisation: remainder tiles ------------------------------------------------
#
# A dim whose loops multiply to more than its bound runs over a padded range; only indices below
# the bound are real. Data follow index tiles: a level instance's tile of a tensor is the real
# elements of the box its padded ranges address (a coordinate ``o*stride + i*dilation`` keeps
# the values some real (o, i) touches), whether or not the instance's own MACs at that step are
# real (the controller runs the padded bounds; an idle PE keeps what it holds). The MAC units
# work only on real points: a MAC whose indices are not all below the bounds reads and updates
# nothing. Moves are classified as for a perfect nest (from the padded translations); every
# count is a sum over the positions of the loops outside the move of a product over the
# tensor's coordinates, and as coordinates depend on disjoint dims it is a product over
# coordinates of sums over each one's positions (dense multisets of base values).


def _minkowski(m: np.ndarray, values) -> np.ndarray:
    """Multiset ``m`` (counts by value) plus each of ``values`` (with multiplicity)."""
    values = list(values)
    if len(values) == 1:
        v = values[0]
        return np.concatenate([np.zeros(v, dtype=np.int64), m]) if v else m
    comb = np.zeros(max(values) + 1, dtype=np.int64)
    np.add.at(comb, values, 1)
    return np.convolve(m, comb)


def _progression(m: np.ndarray, first: int, count: int, step: int) -> np.ndarray:
    """Multiset ``m`` plus each of ``first + a*step`` for ``a < count`` (a running sum per
    residue class of ``step``: linear in the length)."""
    if count == 1 or step == 0:
        out = m * count
    else:
        length = len(m) + (count - 1) * step
        rows = -(-length // step)
        grid = np.zeros(rows * step, dtype=np.int64)
        grid[:len(m)] = m
        run = np.cumsum(grid.reshape(rows, step), axis=0)
        run[count:] -= run[:-count].copy()
        out = run.reshape(-1)[:length]
    return np.concatenate([np.zeros(first, dtype=np.int64), out]) if first else out


# A multiset of tile bases along one coordinate is a sum of sets of added values, kept as the
# sorted tuple of those sets (``(0, first, count, step)``: the progression ``first + a*step``,
# ``a < count``; ``(1, v0, v1, ...)``: the values listed): a sum of multisets does not depend on
# the order of its terms, and its count array (values 0 .. the largest sum) neither, so the
# tuple names the array and everything computed from it is cached on it across mappings.


def _add(ops: tuple, op: tuple) -> tuple:
    """The multiset ``ops`` plus the set ``op`` (canonical: terms sorted)."""
    return tuple(sorted(ops + (op,)))


@lru_cache(maxsize=2048)
def _multiset(ops: tuple) -> np.ndarray:
    """Counts by value of the multiset ``ops`` (see above); shared, read-only."""
    if not ops:
        out = np.ones(1, dtype=np.int64)
    else:
        m, op = _multiset(ops[:-1]), ops[-1]
        out = _progression(m, op[1], op[2], op[3]) if op[0] == 0 else _minkowski(m, op[1:])
        if out is m:
            out = m.copy()
    out.flags.writeable = False
    return out


def _coordinate_key(td: TensorDim, ext: dict, padded: dict, bounds: dict) -> tuple:
    """What the tile of one coordinate depends on: ``(extent, padded range, bound)`` of a
    single dim, ``(stride, dilation, extents, padded ranges, bounds)`` of a window."""
    if td.inner is None:
        d = td.outer
        return (ext[d], padded[d], bounds[d])
    o, i = td.outer, td.inner
    return (td.stride, td.dilation, ext[o], ext[i], padded[o], padded[i], bounds[o], bounds[i])


@lru_cache(maxsize=4096)
def _coordinate_arrays(key: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(offsets of a padded tile along the coordinate ``key``, sorted; real values as an int
    0/1 array)."""
    if len(key) == 3:
        ext, padded, bound = key
        offsets = np.arange(ext, dtype=np.int64)
        real = np.zeros(padded + 1, dtype=np.int64)
        real[:bound] = 1
        return offsets, real
    stride, dilation, eo, ei, po, pi, bo, bi = key
    o = np.arange(eo, dtype=np.int64)[:, None] * stride
    i = np.arange(ei, dtype=np.int64)[None, :] * dilation
    offsets = np.unique(o + i)
    span = (po - 1) * stride + (pi - 1) * dilation + 2
    real = np.zeros(span, dtype=np.int64)
    touched = (np.arange(bo, dtype=np.int64)[:, None] * stride
               + np.arange(bi, dtype=np.int64)[None, :] * dilation)
    real[touched.ravel()] = 1
    return offsets, real


@lru_cache(maxsize=65536)
def _kept_offsets(key: tuple, shift: int) -> np.ndarray:
    """Offsets ``w`` of the tile whose ``w + shift`` is in the tile too (held before a step)."""
    offsets = _coordinate_arrays(key)[0]
    return offsets[np.isin(offsets + shift, offsets)]


@lru_cache(maxsize=65536)
def _tile_size(key: tuple, shift: int | None = None) -> int:
    """Offsets of the tile (``shift``: of those held before a step of ``shift``)."""
    return len(_coordinate_arrays(key)[0] if shift is None else _kept_offsets(key, shift))


def _weighted(m: np.ndarray, real: np.ndarray, offsets: np.ndarray) -> int:
    """sum over bases v (multiplicity ``m[v]``) of |(v + offsets) & real|."""
    if len(offsets) == 0:
        return 0
    need = len(m) + int(offsets[-1])
    if len(real) < need:
        real = np.concatenate([real, np.zeros(need - len(real), dtype=np.int64)])
    corr = np.correlate(real[:need], m, mode="valid")
    return int(corr[offsets].sum())


@lru_cache(maxsize=32768)
def _coordinate_sum(key: tuple, ops: tuple, shift: int | None = None) -> int:
    """Real values of the tiles along coordinate ``key`` summed over the bases of multiset
    ``ops`` (``shift``: only the offsets held before a step of ``shift``)."""
    offsets = _coordinate_arrays(key)[0] if shift is None else _kept_offsets(key, shift)
    return _weighted(_multiset(ops), _coordinate_arrays(key)[1], offsets)


def _bases_total(irrelevant: int, bases: list, keys: list, whole: tuple,
                 shift: tuple | None = None) -> int:
    """Real elements over every position: ``irrelevant`` times, per coordinate, a count times
    the tile (a coordinate without remainder) or the multiset's sum (``shift``: only what the
    tile held before a step of ``shift``)."""
    out = irrelevant
    for ci, (m, key) in enumerate(zip(bases, keys)):
        sh = None if shift is None else shift[ci]
        out *= m * _tile_size(key, sh) if whole[ci] else _coordinate_sum(key, m, sh)
    return out


def _remainder_moves(flat: _Flat, tensor: str, child: int, lo: int, distinct: bool) -> int:
    """Elements moved into instances of ``child`` over the run, summed over the children of
    every instance of level ``lo`` (its parent): each child (``distinct`` False) or each group
    of siblings whose padded tiles coincide (multicast: one per group)."""
    loops = flat.loops
    tds, vals, whole, _ = flat.coords(tensor)
    ext = flat.ext[child]
    keys = flat._memo.get(("keys", tensor, child))
    if keys is None:
        keys = flat._memo[("keys", tensor, child)] = [
            _coordinate_key(td, ext, flat.padded, flat.bounds) for td in tds]

    # positions of the loops outside the tile, per coordinate: a multiset of tile bases (a
    # count for a whole coordinate), built once for the free loops (spatial, and one read per
    # distinct sibling offset of each level under multicast), then loop by loop over ``above``
    # (outer to inner): the loops outside the advancing one take every digit, it takes 1..f-1,
    # those inside it 0
    irrelevant = 1
    ms: list = [1 if w else () for w in whole]
    limit = lo if distinct else child
    for idx in flat.spatial:
        lv, loop = loops[idx]
        if lv >= limit:
            break               # loops are listed level by level
        ci, step = vals[idx]
        if ci is None:
            irrelevant *= loop.factor
        elif whole[ci]:
            ms[ci] *= loop.factor
        else:
            ms[ci] = _add(ms[ci], (0, 0, loop.factor, step))
    if distinct:
        for lv in range(lo, child):
            if flat.level_spatial[lv] > 1:
                for ci, offs in flat.level_offsets(tensor, lv):
                    ms[ci] = ms[ci] * len(offs) if whole[ci] else _add(ms[ci], (1,) + offs)

    def factor(ci: int, m) -> int:
        return m * _tile_size(keys[ci]) if whole[ci] else _coordinate_sum(keys[ci], m)

    sums = [factor(ci, m) for ci, m in enumerate(ms)]
    total = irrelevant
    for f in sums:
        total *= f            # the first tile of every child
    above, cls, inner = flat.classes(tensor, child)
    ck = next((ci for ci, v in enumerate(inner) if v), None)
    for idx, c in zip(above, cls):
        ci, step = vals[idx]
        factor_ = loops[idx][1].factor
        if c:
            # the advancing loop takes 1..f-1: only its coordinate's multiset changes, so the
            # other coordinates' sums are reused (a sliding step moves along the innermost
            # loop's coordinate only: what the tile held differs there alone)
            for c2, f in enumerate(sums):
                if f is None:
                    sums[c2] = factor(c2, ms[c2])
            if ci is None and c == 2:
                moved = irrelevant * (factor_ - 1)
                for f in sums:
                    moved *= f
            elif ci is not None and (c == 2 or (ci == ck and not any(
                    v for c2, v in enumerate(inner) if c2 != ci))):
                moved = irrelevant
                for c2, f in enumerate(sums):
                    if c2 != ci:
                        moved *= f
                m = ms[ci] * (factor_ - 1) if whole[ci] else _add(ms[ci], (0, step, factor_ - 1, step))
                new = factor(ci, m)
                if c == 1:    # a sliding step keeps what the tile before held
                    sh = inner[ci]
                    new -= m * _tile_size(keys[ci], sh) if whole[ci] else _coordinate_sum(keys[ci], m, sh)
                moved *= new
            else:             # not met with positive strides: every coordinate's held part
                bases, irr = list(ms), irrelevant
                if ci is None:
                    irr *= factor_ - 1
                else:
                    bases[ci] = (ms[ci] * (factor_ - 1) if whole[ci]
                                 else _add(ms[ci], (0, step, factor_ - 1, step)))
                moved = (_bases_total(irr, bases, keys, whole)
                         - _bases_total(irr, bases, keys, whole, inner))
            total += moved
        # the loops inside the next one take every digit of this one
        if ci is None:
            irrelevant *= factor_
        else:
            ms[ci] = ms[ci] * factor_ if whole[ci] else _add(ms[ci], (0, 0, factor_, step))
            sums[ci] = None       # computed when next needed
    return total


def _dim_key(flat: _Flat, dim: str, lo: int) -> tuple:
    """``dim``'s loops as ``(factor, radix stride, level if a sibling loop (spatial, at or
    below ``lo``) else -1)``, outer to inner."""
    return tuple((f, s, lv if sp and lv >= lo else -1) for lv, f, sp, s in flat.dim_loops(dim))


@lru_cache(maxsize=1024)
def _digits(key: tuple) -> tuple:
    """Per padded index of a dim whose loops are ``key`` (:func:`_dim_key`): (value, code of
    its non-sibling digits, per sibling level the offset its digits there add)."""
    levels = sorted({t for _, _, t in key if t >= 0})
    value = np.zeros(1, dtype=np.int64)
    code = np.zeros(1, dtype=np.int64)
    offs = [np.zeros(1, dtype=np.int64) for _ in levels]
    for factor, stride, t in key:
        digit = np.arange(factor, dtype=np.int64)
        value, old = np.repeat(value, factor) + np.tile(digit * stride, len(value)), len(code)
        sib = t >= 0
        code = np.repeat(code, factor) * (1 if sib else factor) + (0 if sib else np.tile(digit, old))
        offs = [np.repeat(o, factor) + (np.tile(digit * stride, len(o)) if sib and t == l else 0)
                for o, l in zip(offs, levels)]
    return value, code, dict(zip(levels, offs))


@lru_cache(maxsize=16384)
def _real_codes(bound: int, key: tuple) -> int:
    """Distinct codes (:func:`_digits`) of the real indices of a dim."""
    value, code, _ = _digits(key)
    return len(np.unique(code[value < bound]))


@lru_cache(maxsize=16384)
def _window_groups(stride: int, dilation: int, bounds: tuple, padded: tuple, keys: tuple) -> int:
    """Groups of sibling MAC units over every step needing the same value of a window
    coordinate ``o*stride + i*dilation`` whose dims have bounds/padded ranges/loops (``keys``,
    :func:`_dim_key`) ``(outer, inner)``."""
    (bo, bi), (ko, ki) = bounds, keys
    if padded == bounds:
        # positions outside the siblings, times per level the distinct sibling offsets
        def siblings(key):
            out = 1
            for f, _, t in key:
                if t >= 0:
                    out *= f
            return out

        out = (bo // siblings(ko)) * (bi // siblings(ki))
        for lv in sorted({t for _, _, t in ko + ki if t >= 0}):
            a = _offsets([(f, s) for f, s, t in ko if t == lv])
            b = _offsets([(f, s) for f, s, t in ki if t == lv])
            out *= _sumset(a, b, stride, dilation)
        return out
    vo, co, oo = _digits(ko)
    vi, ci, oi = _digits(ki)
    ok = (vo[:, None] < bo) & (vi[None, :] < bi)
    cols = [np.broadcast_to(co[:, None], ok.shape), np.broadcast_to(ci[None, :], ok.shape)]
    for lv in sorted(set(oo) | set(oi)):
        a = oo.get(lv, np.zeros(1, dtype=np.int64))
        b = oi.get(lv, np.zeros(1, dtype=np.int64))
        cols.append(np.broadcast_to(a[:, None] * stride + b[None, :] * dilation, ok.shape))
    rows = np.stack([k[ok] for k in cols], axis=1)
    return len(np.unique(rows, axis=0)) if len(rows) else 0


def _remainder_mac_groups(flat: _Flat, tensor: str, lo: int) -> int:
    """Over every step and instance of level ``lo``: groups of the MAC units below it that do
    real work and need the same element of the tensor (one read or reduced update each)."""
    tds = flat.coords(tensor)[0]
    bounds, padded = flat.bounds, flat.padded
    coord_of = {d: td for td in tds for d in td.dims}
    out = 1
    for dim in DIMS_ORDER:
        td = coord_of.get(dim)
        if td is None:      # siblings differing only here share: one per position
            if padded[dim] == bounds[dim]:
                siblings = 1
                for lv, f, sp, _ in flat.dim_loops(dim):
                    if sp and lv >= lo:
                        siblings *= f
                out *= bounds[dim] // siblings
            else:
                out *= _real_codes(bounds[dim], _dim_key(flat, dim, lo))
        elif td.inner is None:
            out *= bounds[dim]    # every real index is its own element
    for td in tds:
        if td.inner is not None:
            o, i = td.outer, td.inner
            out *= _window_groups(td.stride, td.dilation, (bounds[o], bounds[i]),
                                  (padded[o], padded[i]), (_dim_key(flat, o, lo), _dim_key(flat, i, lo)))
    return out


@lru_cache(maxsize=16384)
def _held_codes(bound: int, key: tuple) -> int:
    """Distinct digits of the loops above (``key``: ``(factor, radix stride, above)`` outer to
    inner) among the real indices of a dim."""
    value = np.zeros(1, dtype=np.int64)
    code = np.zeros(1, dtype=np.int64)
    for factor, stride, above in key:
        digit = np.arange(factor, dtype=np.int64)
        code = np.repeat(code, factor) * (factor if above else 1) + (
            np.tile(digit, len(code)) if above else 0)
        value = np.repeat(value, factor) + np.tile(digit * stride, len(value))
    return len(np.unique(code[value < bound]))


def _held_outputs(flat: _Flat, level: int, by_macs: bool = False) -> int:
    """Distinct outputs the instances of ``level`` hold over the run, summed over instances:
    each real output once per instance of the spatial loops above over dims not indexing it
    (``by_macs``: only the instances whose real MACs touch it, i.e. whose digits of those
    loops admit a real index)."""
    bounds = flat.bounds
    out = bounds["N"] * bounds["G"] * bounds["K"] * bounds["P"] * bounds["Q"]
    for d in ("C", "R", "S"):
        mine = flat.dim_loops(d)
        if not by_macs:
            for lv, f, sp, _ in mine:
                if sp and lv < level:
                    out *= f
            continue
        out *= _held_codes(bounds[d], tuple((f, s, sp and lv < level) for lv, f, sp, s in mine))
    return out


def _analyse_remainder(flat: _Flat, mapping: Mapping, keeps, unicast) -> AccessCounts:
    """:func:`analyse` for a mapping with remainder tiles (see the comment above)."""
    nest = flat.nest
    nl = flat.nlevels
    counts = np.zeros((nl, 3, 3))
    footprint = np.zeros((nl, 3))
    instances = np.array([flat.spatial_product(i) for i in range(nl + 1)], dtype=np.int64)
    macs_reads = np.zeros(3)
    for ti, tensor in enumerate(TENSORS):
        tds, _, whole, _ = flat.coords(tensor)
        chain = [i for i in range(nl) if tensor in keeps[i]]
        for lvl in chain:       # capacity: the padded tile (the controller's fixed bounds)
            footprint[lvl, ti] = _tile(tds, flat.ext[lvl])
        for parent, child in zip(chain, chain[1:] + [nl]):
            multicast = parent not in unicast
            if child == nl:
                arrivals = _remainder_mac_groups(flat, tensor, parent) if multicast else nest.macs
                if tensor != "O":
                    counts[parent, ti, READS] += arrivals
                    macs_reads[ti] = arrivals
                else:
                    refetch = arrivals - _held_outputs(flat, parent, by_macs=True)
                    counts[parent, ti, READS] += refetch
                    counts[parent, ti, UPDATES] += arrivals
                    macs_reads[ti] = refetch
                continue
            if all(whole):
                # no remainder on the tensor's own dims: every tile whole (tiles ignore the
                # other dims), so the closed form of a perfect nest holds
                per_child = _transfers(flat, tensor, child, flat.ext[child])
                arrivals = instances[parent] * _fanout(flat, tensor, parent, child, multicast) * per_child
                moved = instances[child] * per_child
            else:
                moved = _remainder_moves(flat, tensor, child, parent, False)
                siblings = any(flat.level_spatial[lv] > 1 for lv in range(parent, child))
                arrivals = (_remainder_moves(flat, tensor, child, parent, True)
                            if multicast and siblings else moved)
            if tensor != "O":
                counts[parent, ti, READS] += arrivals
                counts[child, ti, FILLS] += moved
                continue
            counts[parent, ti, READS] += arrivals - _held_outputs(flat, parent)
            counts[parent, ti, UPDATES] += arrivals
            counts[child, ti, FILLS] += moved - _held_outputs(flat, child)
    return AccessCounts(counts, footprint, instances, nest.macs, mapping.steps, macs_reads)
