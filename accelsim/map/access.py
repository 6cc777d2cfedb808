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
    """The mapping's loops flattened outer to inner, with each loop's radix stride."""

    def __init__(self, nest: LoopNest, mapping: Mapping):
        self.nest = nest
        self.loops: list[tuple[int, Loop]] = mapping.flat()
        self.nlevels = len(mapping.levels)
        stride = {}
        self.stride: list[int] = [0] * len(self.loops)
        for idx in range(len(self.loops) - 1, -1, -1):
            _, loop = self.loops[idx]
            self.stride[idx] = stride.get(loop.dim, 1)
            stride[loop.dim] = self.stride[idx] * loop.factor
        #: the range each dim's loops run over (its bound unless a remainder pads it)
        self.padded = {d: stride.get(d, 1) for d in DIMS_ORDER}

    def inner_extents(self, child: int) -> dict:
        """Range of every dim covered by loops at levels >= ``child`` (contiguous, from 0)."""
        out = dict.fromkeys(DIMS_ORDER, 1)
        for (lv, loop) in self.loops:
            if lv >= child:
                out[loop.dim] *= loop.factor
        return out

    def spatial_product(self, below: int, above: int = 0) -> int:
        """Product of spatial factors at levels in ``[above, below)``."""
        out = 1
        for (lv, loop) in self.loops:
            if loop.spatial and above <= lv < below:
                out *= loop.factor
        return out


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


def _coordinate(td: TensorDim, after: dict, before: dict | None, ext: dict) -> tuple[int, int]:
    """(values the new tile uses, of those the old tile held) along one tensor coordinate."""
    if td.inner is None:
        e = ext[td.outer]
        if before is None:
            return e, 0
        return e, max(0, e - abs(after[td.outer] - before[td.outer]))
    eo, ei = ext[td.outer], ext[td.inner]
    if before is None:
        return _overlap(eo, ei, td.stride, td.dilation, 0)[0], 0
    shift = ((after[td.outer] - before[td.outer]) * td.stride
             + (after[td.inner] - before[td.inner]) * td.dilation)
    return _overlap(eo, ei, td.stride, td.dilation, shift)


def _delta(tds, after: dict, before: dict | None, ext: dict) -> int:
    """|tile after \\ tile before| (``before=None``: the whole tile)."""
    new, kept = 1, 1
    for td in tds:
        a, b = _coordinate(td, after, before, ext)
        new *= a
        kept *= b
    return new - (kept if before is not None else 0)


def _shifts(flat: _Flat, tds, idx: int) -> tuple[int, ...]:
    """How far the tile moves along each tensor coordinate when loop ``idx`` advances by one."""
    dim, step = flat.loops[idx][1].dim, flat.stride[idx]
    return tuple(step * td.stride if dim == td.outer else step * td.dilation if dim == td.inner
                 else 0 for td in tds)


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


def _distinct_children(flat: _Flat, tds, level: int) -> int:
    """Children of one instance of ``level`` (its spatial loops) whose tiles differ.

    A child's tile is child 0's translated along each coordinate by that child's offset, so
    two children need the same data exactly when their offsets agree on every coordinate.
    An ``h = p*stride + r*dilation`` coordinate takes one value per distinct sum: children that
    differ in ``p`` and ``r`` but not in ``p*stride + r*dilation`` (row stationary's diagonal)
    need the same input rows.
    """
    per_dim: dict = {}
    for idx, (lv, loop) in enumerate(flat.loops):
        if lv == level and loop.spatial:
            per_dim.setdefault(loop.dim, []).append((loop.factor, flat.stride[idx]))
    if not per_dim:
        return 1
    out = 1
    for td in tds:
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
    return out


def _fanout(flat: _Flat, tensor: str, lo: int, hi: int, multicast: bool = True) -> int:
    """Reads (or updates) one parent instance makes per element one child instance receives
    (or sends): per level of spatial loops in ``[lo, hi)``, its children whose tiles differ
    (Timeloop compares the deltas of a level's children and multicasts to those that are
    equal; through levels that bypass the tensor the factors of the levels multiply). Without
    multicast every sibling costs its own read / update."""
    out = 1
    if not multicast:
        for (lv, loop) in flat.loops:
            if loop.spatial and lo <= lv < hi:
                out *= loop.factor
        return out
    tds = flat.nest.tensor_dims(tensor)
    for lv in range(lo, hi):
        out *= _distinct_children(flat, tds, lv)
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
    tds = flat.nest.tensor_dims(tensor)
    above = [idx for idx, (lv, loop) in enumerate(flat.loops) if lv < child and not loop.spatial]
    full = _delta(tds, {d: 0 for d in ext}, None, ext)      # the first tile
    if not above:
        return full
    zero = (0,) * len(tds)
    inner = _shifts(flat, tds, above[-1])
    step = _moved(tds, inner, ext)
    jumps, wrapped = [], zero        # wrapped: sum over the loops inside of (n_i - 1) t_i
    for idx in reversed(above):
        shift = _shifts(flat, tds, idx)
        jumps.append(tuple(a - b for a, b in zip(shift, wrapped)))
        factor = flat.loops[idx][1].factor
        wrapped = tuple(w + (factor - 1) * s for w, s in zip(wrapped, shift))
    total = full
    outer_iters = 1
    for idx, jump in zip(above, reversed(jumps)):
        delta = 0 if jump == zero else step if jump == inner else full
        factor = flat.loops[idx][1].factor
        total += (factor - 1) * outer_iters * delta
        outer_iters *= factor
    return total


def _distinct(flat: _Flat, tensor: str, below: int) -> int:
    """Distinct elements of ``tensor`` one instance at level ``below`` ever touches."""
    nest = flat.nest
    ext = {d: nest.bound(d) // _spatial_dim(flat, d, below) for d in DIMS_ORDER}
    return _delta(nest.tensor_dims(tensor), {d: 0 for d in ext}, None, ext)


def _spatial_dim(flat: _Flat, dim: str, below: int) -> int:
    out = 1
    for (lv, loop) in flat.loops:
        if loop.spatial and lv < below and loop.dim == dim:
            out *= loop.factor
    return out


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
    if any(flat.padded[d] != nest.bound(d) for d in DIMS_ORDER):
        return _analyse_remainder(flat, mapping, keeps, unicast)
    counts = np.zeros((nl, 3, 3))
    footprint = np.zeros((nl, 3))
    instances = np.array([flat.spatial_product(i) for i in range(nl + 1)], dtype=np.int64)
    macs_reads = np.zeros(3)
    dims = ("N", "G", "K", "C", "P", "Q", "R", "S")
    for ti, tensor in enumerate(TENSORS):
        chain = [i for i in range(nl) if tensor in keeps[i]]
        for lvl in chain:
            ext = flat.inner_extents(lvl)
            footprint[lvl, ti] = _delta(nest.tensor_dims(tensor), {d: 0 for d in dims}, None, ext)
        for parent, child in zip(chain, chain[1:] + [nl]):
            p_inst = instances[parent]
            ext = flat.inner_extents(child)
            spread = _fanout(flat, tensor, parent, child, parent not in unicast)
            # per child instance over the run: elements received (as many are sent back)
            moved = mapping.steps if child == nl else _transfers(flat, tensor, child, ext)
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
    return AccessCounts(counts, footprint, instances, nest.macs, mapping.steps, macs_reads)


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


def _coefficient(td: TensorDim, dim: str) -> int:
    if td.inner is None:
        return 1
    return td.stride if dim == td.outer else td.dilation


def _coordinate_sets(flat: _Flat, td: TensorDim, ext: dict) -> tuple[np.ndarray, np.ndarray]:
    """(offsets of a padded tile along ``td``, sorted; real values as an int 0/1 array)."""
    nest = flat.nest
    dims = td.dims
    return _coordinate_arrays(td, tuple(ext[d] for d in dims), tuple(flat.padded[d] for d in dims),
                              tuple(nest.bound(d) for d in dims))


@lru_cache(maxsize=4096)
def _coordinate_arrays(td: TensorDim, ext: tuple, padded: tuple, bound: tuple):
    if td.inner is None:
        offsets = np.arange(ext[0], dtype=np.int64)
        real = np.zeros(padded[0] + 1, dtype=np.int64)
        real[:bound[0]] = 1
        return offsets, real
    o = np.arange(ext[0], dtype=np.int64)[:, None] * td.stride
    i = np.arange(ext[1], dtype=np.int64)[None, :] * td.dilation
    offsets = np.unique(o + i)
    span = (padded[0] - 1) * td.stride + (padded[1] - 1) * td.dilation + 2
    real = np.zeros(span, dtype=np.int64)
    touched = (np.arange(bound[0], dtype=np.int64)[:, None] * td.stride
               + np.arange(bound[1], dtype=np.int64)[None, :] * td.dilation)
    real[touched.ravel()] = 1
    return offsets, real


@lru_cache(maxsize=65536)
def _kept_offsets(td: TensorDim, ext: tuple, padded: tuple, bound: tuple, shift: int) -> np.ndarray:
    """Offsets ``w`` of the tile whose ``w + shift`` is in the tile too (held before a step)."""
    offsets = _coordinate_arrays(td, ext, padded, bound)[0]
    return offsets[np.isin(offsets + shift, offsets)]


def _weighted(m: np.ndarray, real: np.ndarray, offsets: np.ndarray) -> int:
    """sum over bases v (multiplicity ``m[v]``) of |(v + offsets) & real|."""
    if len(offsets) == 0:
        return 0
    need = len(m) + int(offsets[-1])
    if len(real) < need:
        real = np.concatenate([real, np.zeros(need - len(real), dtype=np.int64)])
    corr = np.correlate(real[:need], m, mode="valid")
    return int(corr[offsets].sum())


def _remainder_moves(flat: _Flat, tds, child: int, lo: int, distinct: bool) -> int:
    """Elements moved into instances of ``child`` over the run, summed over the children of
    every instance of level ``lo`` (its parent): each child (``distinct`` False) or each group
    of siblings whose padded tiles coincide (multicast: one per group)."""
    loops = flat.loops
    nest = flat.nest
    ext = flat.inner_extents(child)
    sets = [_coordinate_sets(flat, td, ext) for td in tds]
    keys = [(td, tuple(ext[d] for d in td.dims), tuple(flat.padded[d] for d in td.dims),
             tuple(nest.bound(d) for d in td.dims)) for td in tds]
    #: a coordinate whose dims have no remainder: every tile is whole (counts suffice)
    whole = [all(flat.padded[d] == nest.bound(d) for d in td.dims) for td in tds]
    coord_of = {d: ci for ci, td in enumerate(tds) for d in td.dims}
    above = [idx for idx, (lv, l) in enumerate(loops) if lv < child and not l.spatial]
    free = [idx for idx, (lv, l) in enumerate(loops) if l.spatial and (lv < lo or (lv < child and not distinct))]
    groups = sorted({lv for lv, l in loops if l.spatial and lo <= lv < child}) if distinct else []

    def value(idx: int) -> tuple[int | None, int]:
        dim = loops[idx][1].dim
        ci = coord_of.get(dim)
        return (None, 0) if ci is None else (ci, flat.stride[idx] * _coefficient(tds[ci], dim))

    # positions of the loops outside the tile, per coordinate: a multiset of tile bases (a
    # count for a whole coordinate), built once for the free loops (spatial, and one read per
    # distinct sibling offset of each level under multicast), then loop by loop over ``above``
    # (outer to inner): the loops outside the advancing one take every digit, it takes 1..f-1,
    # those inside it 0
    irrelevant = 1
    ms: list = [1 if w else np.ones(1, dtype=np.int64) for w in whole]
    for idx in free:
        ci, step = value(idx)
        factor = loops[idx][1].factor
        if ci is None:
            irrelevant *= factor
        elif whole[ci]:
            ms[ci] *= factor
        else:
            ms[ci] = _progression(ms[ci], 0, factor, step)
    for lv in groups:
        level = [idx for idx, (l_, loop) in enumerate(loops) if l_ == lv and loop.spatial]
        for ci in range(len(tds)):
            offs = {0}
            for idx in level:
                c, step = value(idx)
                if c == ci:
                    offs = {o + a * step for o in offs for a in range(loops[idx][1].factor)}
            if len(offs) > 1:
                ms[ci] = ms[ci] * len(offs) if whole[ci] else _minkowski(ms[ci], sorted(offs))

    def full(irr: int, bases: list) -> int:
        out = irr
        for (offsets, real), m, w in zip(sets, bases, whole):
            out *= m * len(offsets) if w else _weighted(m, real, offsets)
        return out

    total = full(irrelevant, ms)          # the first tile of every child
    if not above:
        return total
    zero = (0,) * len(tds)
    inner = _shifts(flat, tds, above[-1])
    jumps, wrapped = [], zero
    for idx in reversed(above):
        shift = _shifts(flat, tds, idx)
        jumps.append(tuple(a - b for a, b in zip(shift, wrapped)))
        wrapped = tuple(w + (loops[idx][1].factor - 1) * s_ for w, s_ in zip(wrapped, shift))
    for idx, jump in zip(above, reversed(jumps)):
        ci, step = value(idx)
        factor = loops[idx][1].factor
        if jump != zero:
            bases = list(ms)
            irr = irrelevant * (factor - 1) if ci is None else irrelevant
            if ci is not None:
                bases[ci] = ms[ci] * (factor - 1) if whole[ci] else _progression(ms[ci], step, factor - 1, step)
            moved = full(irr, bases)
            if jump == inner:     # a sliding step keeps what the tile before held
                kept = irr
                for (offsets, real), m, sh, key, w in zip(sets, bases, jump, keys, whole):
                    held = _kept_offsets(*key, sh)
                    kept *= m * len(held) if w else _weighted(m, real, held)
                moved -= kept
            total += moved
        # the loops inside the next one take every digit of this one
        if ci is None:
            irrelevant *= factor
        elif whole[ci]:
            ms[ci] *= factor
        else:
            ms[ci] = _progression(ms[ci], 0, factor, step)
    return total


def _remainder_mac_groups(flat: _Flat, tds, lo: int) -> int:
    """Over every step and instance of level ``lo``: groups of the MAC units below it that do
    real work and need the same element of the tensor (one read or reduced update each)."""
    nest = flat.nest
    loops = flat.loops
    coord_of = {d: ci for ci, td in enumerate(tds) for d in td.dims}

    def digits_of(dim: str):
        """Per padded index of ``dim``: (value, code of its non-sibling digits, per sibling
        level the offset its digits there add)."""
        mine = [idx for idx, (lv, l) in enumerate(loops) if l.dim == dim]
        levels = sorted({loops[i][0] for i in mine if loops[i][1].spatial and loops[i][0] >= lo})
        value = np.zeros(1, dtype=np.int64)
        code = np.zeros(1, dtype=np.int64)
        offs = [np.zeros(1, dtype=np.int64) for _ in levels]
        for idx in mine:
            lv, loop = loops[idx]
            digit = np.arange(loop.factor, dtype=np.int64)
            rep = lambda a: np.repeat(a, loop.factor)
            value = rep(value) + np.tile(digit * flat.stride[idx], len(value))
            sib = loop.spatial and lv >= lo
            code = rep(code) * (1 if sib else loop.factor) + (0 if sib else np.tile(digit, len(code)))
            offs = [rep(o) + (np.tile(digit * flat.stride[idx], len(o)) if sib and lv == l else 0)
                    for o, l in zip(offs, levels)]
        return value, code, dict(zip(levels, offs))

    def whole(dim: str) -> bool:
        return flat.padded[dim] == nest.bound(dim)

    def siblings(dim: str) -> int:
        out = 1
        for (lv, loop) in loops:
            if loop.dim == dim and loop.spatial and lv >= lo:
                out *= loop.factor
        return out

    out = 1
    for dim in DIMS_ORDER:
        if dim not in coord_of:       # siblings differing only here share: one per position
            if whole(dim):
                out *= nest.bound(dim) // siblings(dim)
            else:
                value, code, _ = digits_of(dim)
                out *= len(np.unique(code[value < nest.bound(dim)]))
        elif tds[coord_of[dim]].inner is None:
            out *= nest.bound(dim)    # every real index is its own element
    for td in tds:
        if td.inner is None:
            continue
        if whole(td.outer) and whole(td.inner):
            # positions outside the siblings, times per level the distinct sibling offsets
            out *= (nest.bound(td.outer) // siblings(td.outer)) * (nest.bound(td.inner) // siblings(td.inner))
            per: dict = {}
            for idx, (lv, loop) in enumerate(loops):
                if loop.spatial and lv >= lo and loop.dim in td.dims:
                    per.setdefault(lv, {}).setdefault(loop.dim, []).append((loop.factor, flat.stride[idx]))
            for dims in per.values():
                a = _offsets(dims.get(td.outer, ()))
                b = _offsets(dims.get(td.inner, ()))
                out *= _sumset(a, b, td.stride, td.dilation)
            continue
        vo, co, oo = digits_of(td.outer)
        vi, ci, oi = digits_of(td.inner)
        ok = (vo[:, None] < nest.bound(td.outer)) & (vi[None, :] < nest.bound(td.inner))
        keys = [np.broadcast_to(co[:, None], ok.shape), np.broadcast_to(ci[None, :], ok.shape)]
        for lv in sorted(set(oo) | set(oi)):
            a = oo.get(lv, np.zeros(1, dtype=np.int64))
            b = oi.get(lv, np.zeros(1, dtype=np.int64))
            keys.append(np.broadcast_to(a[:, None] * td.stride + b[None, :] * td.dilation, ok.shape))
        rows = np.stack([k[ok] for k in keys], axis=1)
        out *= len(np.unique(rows, axis=0)) if len(rows) else 0
    return out


def _held_outputs(flat: _Flat, level: int, by_macs: bool = False) -> int:
    """Distinct outputs the instances of ``level`` hold over the run, summed over instances:
    each real output once per instance of the spatial loops above over dims not indexing it
    (``by_macs``: only the instances whose real MACs touch it, i.e. whose digits of those
    loops admit a real index)."""
    nest = flat.nest
    out = 1
    for d in ("N", "G", "K", "P", "Q"):
        out *= nest.bound(d)
    for d in ("C", "R", "S"):
        mine = [(lv, loop, flat.stride[idx]) for idx, (lv, loop) in enumerate(flat.loops)
                if loop.dim == d]
        if not by_macs:
            for lv, loop, _ in mine:
                if loop.spatial and lv < level:
                    out *= loop.factor
            continue
        value = np.zeros(1, dtype=np.int64)
        code = np.zeros(1, dtype=np.int64)
        for lv, loop, stride in mine:
            digit = np.arange(loop.factor, dtype=np.int64)
            above = loop.spatial and lv < level
            code = np.repeat(code, loop.factor) * (loop.factor if above else 1) + (
                np.tile(digit, len(code)) if above else 0)
            value = np.repeat(value, loop.factor) + np.tile(digit * stride, len(value))
        out *= len(np.unique(code[value < nest.bound(d)]))
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
        tds = nest.tensor_dims(tensor)
        chain = [i for i in range(nl) if tensor in keeps[i]]
        for lvl in chain:       # capacity: the padded tile (the controller's fixed bounds)
            ext = flat.inner_extents(lvl)
            footprint[lvl, ti] = _delta(tds, {d: 0 for d in DIMS_ORDER}, None, ext)
        for parent, child in zip(chain, chain[1:] + [nl]):
            multicast = parent not in unicast
            if child == nl:
                arrivals = _remainder_mac_groups(flat, tds, parent) if multicast else nest.macs
                if tensor != "O":
                    counts[parent, ti, READS] += arrivals
                    macs_reads[ti] = arrivals
                else:
                    refetch = arrivals - _held_outputs(flat, parent, by_macs=True)
                    counts[parent, ti, READS] += refetch
                    counts[parent, ti, UPDATES] += arrivals
                    macs_reads[ti] = refetch
                continue
            if all(flat.padded[d] == nest.bound(d) for td in tds for d in td.dims):
                # no remainder on the tensor's own dims: every tile whole (tiles ignore the
                # other dims), so the closed form of a perfect nest holds
                ext = flat.inner_extents(child)
                per_child = _transfers(flat, tensor, child, ext)
                arrivals = instances[parent] * _fanout(flat, tensor, parent, child, multicast) * per_child
                moved = instances[child] * per_child
            else:
                moved = _remainder_moves(flat, tds, child, parent, False)
                siblings = any(l.spatial and parent <= lv < child for lv, l in flat.loops)
                arrivals = (_remainder_moves(flat, tds, child, parent, True)
                            if multicast and siblings else moved)
            if tensor != "O":
                counts[parent, ti, READS] += arrivals
                counts[child, ti, FILLS] += moved
                continue
            counts[parent, ti, READS] += arrivals - _held_outputs(flat, parent)
            counts[parent, ti, UPDATES] += arrivals
            counts[child, ti, FILLS] += moved - _held_outputs(flat, child)
    return AccessCounts(counts, footprint, instances, nest.macs, mapping.steps, macs_reads)
