"""Per-level, per-tensor access counts of a mapping (dense), by exact delta analysis.

Conventions are Timeloop's (checked equal on its exercises, ``tests/test_map_timeloop.py``;
the brute-force walk in ``tests/naive_nest.py`` defines the same from first principles):

- a level instance holds the tile of each tensor it keeps that the loops at its level and below
  touch; when the innermost temporal loop above it advances it is *filled* with the elements it
  does not hold (sliding windows reuse their overlap); when an outer loop advances (inner ones
  wrap) the whole tile is reloaded unless it is unchanged. Bypassed levels are skipped;
- a parent is *read* once per group of children that differ only in spatial loops of dimensions
  that do not index the tensor (multicast); outputs of such a group are reduced to one *update*;
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
the work is per loop, not per iteration.
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


def _fanout(flat: _Flat, tensor: str, lo: int, hi: int, multicast: bool = True) -> int:
    """Siblings that need different data: spatial factors at levels [lo, hi) of dims indexing
    ``tensor`` (siblings that differ only in other dims share one read: multicast, or one update:
    spatial reduction). Without multicast every sibling costs its own read / update."""
    relevant = flat.nest.relevant(tensor)
    out = 1
    for (lv, loop) in flat.loops:
        if loop.spatial and lo <= lv < hi and (loop.dim in relevant or not multicast):
            out *= loop.factor
    return out


def _transfers(flat: _Flat, tensor: str, child: int, ext: dict, evictions: bool = False) -> int:
    """Elements one instance of ``child`` receives (or evicts) over the whole run."""
    tds = flat.nest.tensor_dims(tensor)
    zero = {d: 0 for d in ext}
    above = [(idx, loop) for idx, (lv, loop) in enumerate(flat.loops)
             if lv < child and not loop.spatial]
    full = _delta(tds, zero, None, ext)      # first tile (or the last, evicted)
    total = full
    outer_iters = 1
    for pos, (idx, loop) in enumerate(above):
        before = dict(zero)
        for idx2, loop2 in above[pos + 1:]:
            before[loop2.dim] += (loop2.factor - 1) * flat.stride[idx2]
        after = dict(zero)
        after[loop.dim] += flat.stride[idx]
        if pos < len(above) - 1:
            # an outer loop advanced and the inner ones wrapped: the whole tile is reloaded
            # unless it did not change (Timeloop's convention: no reuse across a wrap)
            changed = any(_shift(td, after, before) for td in tds)
            delta = full if changed else 0
        elif evictions:
            delta = _delta(tds, before, after, ext)
        else:
            delta = _delta(tds, after, before, ext)
        total += (loop.factor - 1) * outer_iters * delta
        outer_iters *= loop.factor
    return total


def _shift(td: TensorDim, after: dict, before: dict) -> int:
    if td.inner is None:
        return after[td.outer] - before[td.outer]
    return ((after[td.outer] - before[td.outer]) * td.stride
            + (after[td.inner] - before[td.inner]) * td.dilation)


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
            if child == nl:   # the MAC units: every step is new, no reuse in time
                arrivals = spread * mapping.steps
            else:
                arrivals = spread * _transfers(flat, tensor, child, ext)
            if tensor != "O":
                counts[parent, ti, READS] += p_inst * arrivals
                if child == nl:
                    macs_reads[ti] = p_inst * arrivals
                else:
                    counts[child, ti, FILLS] += instances[child] * _transfers(flat, tensor, child, ext)
                continue
            # a parent instance holds one copy of each output: only its first update initialises
            # it, every later one needs the running sum read (a child refill or, for a sibling
            # whose partial sum the network did not reduce, a read-modify-write). Unicast
            # siblings that differ only in dims not indexing the output all update the same
            # copy, so they do not each start it from zero: reads = arrivals - distinct.
            refetch = arrivals - _distinct(flat, tensor, parent)
            counts[parent, ti, READS] += p_inst * refetch
            if child == nl:
                counts[parent, ti, UPDATES] += p_inst * arrivals
                macs_reads[ti] = p_inst * refetch
            else:
                own = _transfers(flat, tensor, child, ext) - _distinct(flat, tensor, child)
                counts[child, ti, FILLS] += instances[child] * own
                up = spread * _transfers(flat, tensor, child, ext, evictions=True)
                counts[parent, ti, UPDATES] += p_inst * up
    return AccessCounts(counts, footprint, instances, nest.macs, mapping.steps, macs_reads)
