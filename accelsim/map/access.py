"""Per-level, per-tensor access counts of a mapping (dense), by exact delta analysis.

Semantics (the tests' brute-force walk in ``tests/naive_nest.py`` defines the same from first
principles): a level instance holds exactly the tile of each tensor it keeps for the current
iteration of the temporal loops above it; when those loops advance, the elements of the new
tile it does not hold are *filled* from the next outer level that keeps the tensor (bypassed
levels are skipped). A parent delivers one element once to all the children that need it at
the same time (multicast), so its *reads* are the union of its children's new elements. The
MAC units hold nothing: every temporal step reads each operand from the innermost level that
keeps it (once per distinct element across the spatial MACs).

Outputs: a psum arriving at a child is *read* from the parent (and filled) only if it was
written before (its first arrival starts from zero); an element leaving a child is read out of
it and *updated* into the parent once per step, after reduction across siblings (spatial
reduction). At the MACs, every step updates the innermost output level once per distinct
element and reads the running psum unless it is the element's first update.

Counts come from each tensor coordinate's 1-D index sets: for one loop step, the union over
the siblings of (new tile \\ old tile) has ``prod(a_t) - prod(b_t)`` elements, where ``a_t``
counts coordinate values some sibling's new tile uses and ``b_t`` those that every sibling
using them already held. Translation invariance (padding is not an index) makes every step of
a given loop equal, so the cost is per loop, not per iteration.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from accelsim.map.mapping import Loop, Mapping
from accelsim.map.nest import TENSORS, LoopNest, TensorDim

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

    def inner_extent(self, dim: str, child: int) -> int:
        """Range of ``dim`` covered by loops at levels >= ``child`` (contiguous, from 0)."""
        out = 1
        for (lv, loop) in self.loops:
            if lv >= child and loop.dim == dim:
                out *= loop.factor
        return out

    def spatial_product(self, below: int, above: int = 0) -> int:
        """Product of spatial factors at levels in ``[above, below)``."""
        out = 1
        for (lv, loop) in self.loops:
            if loop.spatial and above <= lv < below:
                out *= loop.factor
        return out


def _values(td: TensorDim, base: dict, ext: dict, fam: dict) -> list[np.ndarray]:
    """Coordinate values used by each sibling (family member) for one tensor coordinate."""
    if td.inner is None:
        d = td.outer
        return [np.arange(base[d] + f, base[d] + f + ext[d]) for f in fam[d]]
    o, i = td.outer, td.inner
    out = []
    for fo, fi in product(fam[o], fam[i]):
        ov = np.arange(base[o] + fo, base[o] + fo + ext[o])
        iv = np.arange(base[i] + fi, base[i] + fi + ext[i])
        out.append(np.unique((ov[:, None] * td.stride + iv[None, :] * td.dilation).ravel()))
    return out


def _union_delta(tds, after: dict, before: dict | None, ext: dict, fam: dict) -> int:
    """|union over siblings of (tile after \\ tile before)| (``before=None``: empty)."""
    prod_a, prod_b = 1, 1
    for td in tds:
        new = _values(td, after, ext, fam)
        old = _values(td, before, ext, fam) if before is not None else None
        lo = min(int(v.min()) for v in new + (old or []))
        hi = max(int(v.max()) for v in new + (old or [])) + 1
        used = np.zeros(hi - lo, dtype=bool)
        held_by_all = np.ones(hi - lo, dtype=bool)
        for j, v in enumerate(new):
            a = np.zeros(hi - lo, dtype=bool)
            a[v - lo] = True
            c = np.zeros(hi - lo, dtype=bool)
            if old is not None:
                c[old[j] - lo] = True
            used |= a
            held_by_all &= ~a | c
        prod_a *= int(used.sum())
        prod_b *= int((used & held_by_all).sum())
    return prod_a - prod_b


def _fanout(flat: _Flat, tensor: str, lo: int, hi: int) -> int:
    """Siblings that need different data: spatial factors at levels [lo, hi) of dims indexing
    ``tensor`` (siblings that differ only in other dims share one read: multicast, or one update:
    spatial reduction)."""
    relevant = flat.nest.relevant(tensor)
    out = 1
    for (lv, loop) in flat.loops:
        if loop.spatial and lo <= lv < hi and loop.dim in relevant:
            out *= loop.factor
    return out


def _transfers(flat: _Flat, tensor: str, child: int, fam: dict, ext: dict,
               evictions: bool = False) -> int:
    """Sum over all steps of |union over the siblings in ``fam`` of new (or evicted) elements|."""
    tds = flat.nest.tensor_dims(tensor)
    zero = {d: 0 for d in ext}
    above = [(idx, loop) for idx, (lv, loop) in enumerate(flat.loops)
             if lv < child and not loop.spatial]
    full = _union_delta(tds, zero, None, ext, fam)      # first tile (or the last, evicted)
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
            delta = 0 if _same_tile(tds, after, before, ext) else full
        elif evictions:
            delta = _union_delta(tds, before, after, ext, fam)
        else:
            delta = _union_delta(tds, after, before, ext, fam)
        total += (loop.factor - 1) * outer_iters * delta
        outer_iters *= loop.factor
    return total


def _same_tile(tds, a: dict, b: dict, ext: dict) -> bool:
    one = {d: np.array([0]) for d in ext}
    for td in tds:
        va, vb = _values(td, a, ext, one)[0], _values(td, b, ext, one)[0]
        if va.shape != vb.shape or not np.array_equal(va, vb):
            return False
    return True


def _distinct(flat: _Flat, tensor: str, below: int) -> int:
    """Distinct elements of ``tensor`` one instance at level ``below`` ever touches."""
    nest = flat.nest
    ext = {d: nest.bound(d) // _spatial_dim(flat, d, below) for d in ("N", "G", "K", "C", "P", "Q", "R", "S")}
    fam = {d: np.array([0]) for d in ext}
    zero = {d: 0 for d in ext}
    return _union_delta(nest.tensor_dims(tensor), zero, None, ext, fam)


def _spatial_dim(flat: _Flat, dim: str, below: int) -> int:
    out = 1
    for (lv, loop) in flat.loops:
        if loop.spatial and lv < below and loop.dim == dim:
            out *= loop.factor
    return out


def analyse(nest: LoopNest, mapping: Mapping, keeps: tuple[frozenset, ...]) -> AccessCounts:
    """Access counts of ``mapping`` on a hierarchy whose level ``i`` keeps ``keeps[i]``.

    Level 0 (the outermost) must keep every tensor.
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
            ext = {d: flat.inner_extent(d, lvl) for d in dims}
            one = {d: np.array([0]) for d in dims}
            footprint[lvl, ti] = _union_delta(nest.tensor_dims(tensor), {d: 0 for d in dims}, None, ext, one)
        for parent, child in zip(chain, chain[1:] + [nl]):
            p_inst = instances[parent]
            ext = {d: flat.inner_extent(d, child) for d in dims}
            one = {d: np.array([0]) for d in dims}
            spread = _fanout(flat, tensor, parent, child)
            if child == nl:   # the MAC units: every step is new, no reuse in time
                arrivals = spread * mapping.steps
            else:
                arrivals = spread * _transfers(flat, tensor, child, one, ext)
            if tensor != "O":
                counts[parent, ti, READS] += p_inst * arrivals
                if child == nl:
                    macs_reads[ti] = p_inst * arrivals
                else:
                    counts[child, ti, FILLS] += instances[child] * _transfers(flat, tensor, child, one, ext)
                continue
            refetch = arrivals - _distinct(flat, tensor, parent)
            counts[parent, ti, READS] += p_inst * refetch
            if child == nl:
                counts[parent, ti, UPDATES] += p_inst * arrivals
                macs_reads[ti] = p_inst * refetch
            else:
                own = _transfers(flat, tensor, child, one, ext) - _distinct(flat, tensor, child)
                counts[child, ti, FILLS] += instances[child] * own
                up = spread * _transfers(flat, tensor, child, one, ext, evictions=True)
                counts[parent, ti, UPDATES] += p_inst * up
    return AccessCounts(counts, footprint, instances, nest.macs, mapping.steps, macs_reads)
