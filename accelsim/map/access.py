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
