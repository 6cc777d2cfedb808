"""The DRAM access stream of a mapped loop nest, streamed through the DRAM model.

Every DRAM transfer of the mapping becomes address ranges under each tensor's layout (see
:func:`layouts` and :class:`Region`: row-major by default; ``dram.layout`` declares a dimension
order, a tile-major layout and the region's base), generated in nest order, chunk by chunk, in
element units (:func:`element_blocks`) and then bytes (:func:`to_bytes`; both:
:func:`dram_ranges`), so memory stays flat in the stream's length:

- **fills** of ``W`` and ``I``: each time the tile of the first level below DRAM keeping the
  tensor (its *child*) moves, the elements the move brings in are read, by the rule of
  :mod:`accelsim.map.access` (Timeloop's): nothing for a zero translation, the new elements for
  a step of the innermost loop above the child (a sliding window keeps its overlap), the whole
  tile for any other move. Spatial loops above the child give one tile per distinct sibling
  (multicast groups, per level; halos that merely overlap are read by each);
- **drains** of ``O``: each time the output tile moves, the tile it leaves is written, and the
  last tile at the end;
- **psum spills**: the tile that comes in is read back unless this is the first time the nest
  touches it (every loop above the child over a dim not indexing ``O`` at its first index).

One fill event's ranges (all siblings) are sorted by address and touching ones merged (the
transfer engine reads a tile in address order). With the layer's masks (:func:`stream_of`):

- a tensor stored compressed in DRAM occupies its real code: a run of elements spans the
  bytes between the bit offsets of its boundaries in the region's code, from the mask
  (:class:`accelsim.sim.dram_lengths.BitOffsets`), not the tensor's mean ratio; outputs,
  whose masks are not traced, keep the expected ratio;
- with ``sparsity.skip_weight_fetch`` (one-group linear layers, :mod:`accelsim.sim.fetch`)
  the weight ranges are cut to the weights of the inputs that are non-zero for some sample
  of the batch, at their addresses in the layout, so a skipped input leaves a hole in the
  stream (contiguous in an input-major layout, one element per output row in an
  output-major one);
- :func:`layer_dram` hands the bytes to the device through the transfer engine's burst
  coalescing (:mod:`accelsim.dram.coalesce`: a burst equal to the one just moved is not
  requested again); a short stream's result is kept by its exact bytes (:func:`served`),
  so a stream that repeats across samples is timed once. The counts equal the fast model's DRAM
accesses (``counts[0]``) by construction; ``tests/test_dram_stream.py`` checks them and the
addresses against an element-by-element walk of the nest (``tests/dram_stream_oracle.py``).
:func:`layer_dram` serves a layer's stream through ``hw.dram.device`` for ``loopnest._sample``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np
from numba import njit

from accelsim.hw.schema import LAYOUT_DIMS
from accelsim.map.access import _Flat
from accelsim.map.nest import TENSOR_NAMES, TENSORS, LoopNest
from accelsim.numba_config import JIT
from accelsim.sim.dram_lengths import cut_to_runs, entries_at

if TYPE_CHECKING:
    from accelsim.dram.model import DramResult

ALIGN = 1 << 20            # tensor regions start on a 1 MiB boundary (a multiple of any row)
CHUNK = 1 << 16            # ranges per block handed to the DRAM model
NONE, STEP, FULL = 0, 1, 2  # what a move of the tile fills: nothing, the new part, the whole tile


@dataclass(frozen=True)
class Region:
    """One tensor in DRAM under its layout (coordinates in ``LoopNest.tensor_dims`` order).

    Element ``x`` (index space of the nest: the inputs' rows and columns count the padding) is
    stored when ``x - lo`` is in ``[0, sizes)`` (else it is padding, not in DRAM). Its linear
    index is ``sum_c B_c * ((x_c - off_c) // T_c) + S_c * ((x_c - off_c) % T_c)``
    (:meth:`coord_maps`); byte address ``base + round(index * elem_bytes)``.

    - row-major (``tile`` None): every coordinate is one block (``T = 1``, ``off = lo``,
      ``B = S``), ``S`` the row-major strides of ``sizes`` in the order ``perm`` (coordinate
      indices, outermost first; None: as given): a permutation of the strides;
    - tile-major (``tile``: per coordinate the tile's step in index space, 0 for a coordinate
      no loop above the child moves): the blocks of a non-overlapping grid aligned to the
      nest's tiles (``off = 0``; coordinate ``c`` has ``ceil((lo_c + sizes_c) / T_c)`` blocks,
      the padding positions of the edge blocks are holes) are stored one after another in the
      order ``block_order`` (blocked coordinates, outermost first), each block row-major in
      ``perm`` over the tile extents (``sizes`` for unblocked coordinates)."""

    tensor: str
    base: int
    sizes: tuple[int, ...]
    lo: tuple[int, ...]
    elem_bytes: float
    perm: tuple[int, ...] | None = None
    tile: tuple[int, ...] | None = None
    block_order: tuple[int, ...] = ()

    @property
    def extents(self) -> tuple[int, ...]:
        """Per coordinate: the extent inside one block (the whole size when not blocked)."""
        if self.tile is None:
            return self.sizes
        return tuple(t if t else s for t, s in zip(self.tile, self.sizes))

    @property
    def blocks(self) -> tuple[int, ...]:
        """Per coordinate: how many blocks the grid has along it."""
        if self.tile is None:
            return (1,) * len(self.sizes)
        return tuple(-(-(l + s) // t) if t else 1 for t, s, l in zip(self.tile, self.sizes, self.lo))

    @property
    def elements(self) -> int:
        return int(np.prod(self.extents, dtype=np.int64) * np.prod(self.blocks, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return int(np.ceil(self.elements * self.elem_bytes))

    @property
    def shape_key(self) -> tuple:
        """What the element stream depends on (not the base or element bytes)."""
        return self.sizes, self.lo, self.perm, self.tile, self.block_order

    def coord_maps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per coordinate ``(off, T, B, S)`` of the linear index (see the class)."""
        nc = len(self.sizes)
        perm = self.perm if self.perm is not None else tuple(range(nc))
        ext = self.extents
        inner = np.zeros(nc, dtype=np.int64)
        acc = 1
        for c in reversed(perm):
            inner[c] = acc
            acc *= ext[c]
        tile = self.tile or (0,) * nc
        off = np.array([0 if t else l for t, l in zip(tile, self.lo)], dtype=np.int64)
        step = np.array([t if t else 1 for t in tile], dtype=np.int64)
        outer = inner.copy()
        nb = self.blocks
        for c in reversed(self.block_order):
            outer[c] = acc
            acc *= nb[c]
        return off, step, outer, inner


def _tile_steps(nest: LoopNest, mapping, keeps: tuple[frozenset, ...], tensor: str
                ) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(tile step per coordinate (0: not blocked), blocked coordinates outermost first)`` of
    ``tensor``'s tile-major layout: the tiles of its child (first level below DRAM keeping it)
    on the grid of the tile's step along each coordinate a loop above the child moves (inputs:
    ``P``'s step ``ext_P * stride``, else ``R``'s), ordered by the outermost such loop. None
    without a child."""
    child = next((i for i in range(1, len(keeps)) if tensor in keeps[i]), None)
    if child is None:
        return None
    flat = _Flat(nest, mapping)
    ext = flat.inner_extents(child)
    first: dict[str, int] = {}
    for idx, (lv, loop) in enumerate(flat.loops):
        if lv < child and loop.factor > 1:
            first.setdefault(loop.dim, idx)
    steps, pos = [], {}
    for ci, td in enumerate(nest.tensor_dims(tensor)):
        if td.outer in first:
            steps.append(ext[td.outer] * td.stride)
        elif td.inner is not None and td.inner in first:
            steps.append(ext[td.inner] * td.dilation)
        else:
            steps.append(0)
            continue
        pos[ci] = min(first.get(d, len(flat.loops)) for d in td.dims)
    return tuple(steps), tuple(sorted(pos, key=lambda c: (pos[c], c)))


def _declared_error(tensor: str, message: str):
    from accelsim.errors import ConfigError

    return ConfigError(None, f"dram.layout.{TENSOR_NAMES[tensor]}.base", message)


def layouts(nest: LoopNest, elem_bytes: dict[str, float], pads: tuple[int, int] = (0, 0),
            real_hw: tuple[int, int] | None = None, drop_padding: bool = True,
            reserve_bytes: dict[str, float] | None = None, layout=None, mapping=None,
            keeps: tuple[frozenset, ...] | None = None) -> dict[str, Region]:
    """Each tensor's region. Default (``layout`` None or default): ``W`` as ``[G][K][C][R][S]``
    (PyTorch's ``[K][C/G][R][S]``), ``I`` as ``[N][G][C][H][W]`` and ``O`` as
    ``[N][G][K][P][Q]``, row-major, one after another, each on an :data:`ALIGN` boundary.
    ``layout`` (``hw.dram.layout``, :class:`accelsim.hw.schema.DRAMLayout`) may declare per
    tensor a dimension order, ``tile_major`` (needs ``mapping`` and ``keeps``: the tiles of
    the tensor's child level, :class:`Region`) and a byte ``base``; tensors without a base
    take the lowest :data:`ALIGN` boundary after the previous one that overlaps no region
    (declared regions that overlap: :class:`~accelsim.errors.ConfigError` naming the field).
    ``I``'s ``H``/``W`` coordinates: the nest indexes the padded input; with
    ``drop_padding`` the stored rows and columns are the real ones (``pads`` removed,
    ``real_hw`` the unpadded height and width when known), so padding positions move
    nothing; without it the padded extent is stored, as the fast model counts it. A region
    reserves ``reserve_bytes`` per element (default ``elem_bytes``; the dense size keeps the
    bases independent of the compressed ratios)."""
    shapes: dict[str, Region] = {}
    for tensor in TENSORS:
        sizes, lo = [], []
        for ci, td in enumerate(nest.tensor_dims(tensor)):
            if td.inner is None:
                sizes.append(nest.bound(td.outer))
                lo.append(0)
                continue
            extent = ((nest.bound(td.outer) - 1) * td.stride
                      + (nest.bound(td.inner) - 1) * td.dilation + 1)
            pad = pads[ci - 3] if drop_padding else 0
            real = real_hw[ci - 3] if (drop_padding and real_hw is not None) else 0
            sizes.append(max(extent - 2 * pad, real, 1) if pad else max(extent, real))
            lo.append(pad)
        perm, tile, order, base = None, None, (), None
        if layout is not None:
            declared = getattr(layout, TENSOR_NAMES[tensor])
            base = declared.base
            if declared.order is not None:
                names = LAYOUT_DIMS[TENSOR_NAMES[tensor]]
                perm = tuple(names.index(d) for d in layout.full_order(TENSOR_NAMES[tensor]))
                if perm == tuple(range(len(names))):
                    perm = None
            if declared.tile_major:
                if mapping is None or keeps is None:
                    raise ValueError("a tile-major layout needs the mapping and the keeps")
                blocked = _tile_steps(nest, mapping, keeps, tensor)
                if blocked is not None and any(blocked[0]):
                    tile, order = blocked
        shapes[tensor] = Region(tensor, -1 if base is None else base, tuple(sizes), tuple(lo),
                                float(elem_bytes[tensor]), perm, tile, order)

    def span(region: Region) -> int:
        reserve = (reserve_bytes or elem_bytes)[region.tensor]
        return -(-max(int(np.ceil(region.elements * reserve)), 1) // ALIGN) * ALIGN

    placed: list[tuple[int, int, str]] = []
    for t, r in shapes.items():
        if r.base >= 0:
            end = r.base + span(r)
            for b, e, other in placed:
                if r.base < e and b < end:
                    raise _declared_error(t, f"the region [{r.base:#x}, {end:#x}) of this layer's "
                                             f"{TENSOR_NAMES[t]} overlaps {TENSOR_NAMES[other]}' "
                                             f"[{b:#x}, {e:#x}); move it")
            placed.append((r.base, end, t))
    out: dict[str, Region] = {}
    cursor = 0
    for t, r in shapes.items():
        if r.base < 0:
            size = span(r)
            moved = True
            while moved:
                moved = False
                for b, e, _ in placed:
                    if cursor < e and b < cursor + size:
                        cursor = -(-e // ALIGN) * ALIGN
                        moved = True
            r = Region(t, cursor, r.sizes, r.lo, r.elem_bytes, r.perm, r.tile, r.block_order)
            placed.append((cursor, cursor + size, t))
            cursor += size
        out[t] = r
    return out


class _Plan:
    """What one tensor moves between DRAM and its child level, per loop of the nest."""

    def __init__(self, flat: _Flat, tensor: str, child: int, region: Region, loops: list[int]):
        nest = flat.nest
        self.tensor, self.region = tensor, region
        tds = nest.tensor_dims(tensor)
        self.nc = len(tds)
        ext = flat.inner_extents(child)
        # tile offsets per coordinate (sorted)
        self.tile = []
        for td in tds:
            if td.inner is None:
                self.tile.append(np.arange(ext[td.outer], dtype=np.int64))
            else:
                o = np.arange(ext[td.outer], dtype=np.int64)[:, None] * td.stride
                i = np.arange(ext[td.inner], dtype=np.int64)[None, :] * td.dilation
                self.tile.append(np.unique(o + i))
        # what a loop step moves each coordinate by
        def shift(idx: int) -> tuple[int, ...]:
            dim, step = flat.loops[idx][1].dim, flat.stride[idx]
            return tuple(step * td.stride if dim == td.outer else step * td.dilation
                         if dim == td.inner else 0 for td in tds)

        above = [idx for idx, (lv, l) in enumerate(flat.loops) if lv < child and not l.spatial]
        self.above = set(above)
        self.origin = np.zeros((len(loops), self.nc), dtype=np.int64)   # per global loop digit
        pos = {idx: g for g, idx in enumerate(loops)}
        for idx in above:
            self.origin[pos[idx]] = shift(idx)
        # each above loop's class (accelsim.map.access._transfers)
        zero = (0,) * self.nc
        self.inner = shift(above[-1]) if above else zero
        self.cls = {}
        wrapped = zero
        for idx in reversed(above):
            s = shift(idx)
            jump = tuple(a - b for a, b in zip(s, wrapped))
            self.cls[pos[idx]] = NONE if jump == zero else STEP if jump == self.inner else FULL
            factor = flat.loops[idx][1].factor
            wrapped = tuple(w + (factor - 1) * x for w, x in zip(wrapped, s))
        # the sliding step's new part: offsets t with t + shift not in the tile
        self.delta = [t if sh == 0 else t[~np.isin(t + sh, t)] for t, sh in zip(self.tile, self.inner)]
        # sibling offsets: per level of spatial loops above the child, the distinct offsets
        # of each coordinate; levels multiply (accelsim.map.access._fanout)
        self.sib = [np.zeros(1, dtype=np.int64) for _ in tds]
        for lv in sorted({lv for lv, l in flat.loops if l.spatial and lv < child}):
            level = [idx for idx, (l_, loop) in enumerate(flat.loops) if l_ == lv and loop.spatial]
            for ci, td in enumerate(tds):
                offs = {0}
                for idx in level:
                    s = shift(idx)[ci]
                    if s:
                        offs = {o + a * s for o in offs for a in range(flat.loops[idx][1].factor)}
                if len(offs) > 1:
                    self.sib[ci] = (self.sib[ci][:, None]
                                    + np.array(sorted(offs), dtype=np.int64)[None, :]).ravel()
        # real positions per coordinate (index space): below the bounds, and stored
        self.real = []
        for ci, td in enumerate(tds):
            span = int(self.tile[ci][-1] + self.sib[ci].max() + 1
                       + sum(abs(int(v)) * (flat.loops[idx][1].factor - 1)
                             for idx, v in ((i, shift(i)[ci]) for i in above)))
            real = np.zeros(span + 1, dtype=bool)
            if td.inner is None:
                real[:nest.bound(td.outer)] = True
            else:
                touched = (np.arange(nest.bound(td.outer))[:, None] * td.stride
                           + np.arange(nest.bound(td.inner))[None, :] * td.dilation).ravel()
                real[touched[touched <= span]] = True
            stored = np.arange(span + 1) - region.lo[ci]
            real &= (stored >= 0) & (stored < region.sizes[ci])
            self.real.append(real)
        # the layout: coordinates in the region's order (the last one is the innermost), each
        # with its linear-index map f_c(v) = B ((v - off) // T) + S ((v - off) % T)
        perm = list(region.perm) if region.perm is not None else list(range(self.nc))
        off, step, outer, inner = region.coord_maps()
        self.tile = [self.tile[c] for c in perm]
        self.delta = [self.delta[c] for c in perm]
        self.sib = [self.sib[c] for c in perm]
        self.real = [self.real[c] for c in perm]
        self.origin = self.origin[:, perm]
        self.inner = tuple(self.inner[c] for c in perm)
        self.sizes = tuple(region.sizes[c] for c in perm)
        self.lo = tuple(region.lo[c] for c in perm)
        self.off, self.step, self.B, self.S = off[perm], step[perm], outer[perm], inner[perm]
        self.unblocked = [not (region.tile and region.tile[c]) for c in perm]
        self.linear = bool((self.step == 1).all())     # f_c(v) = B (v - off)
        self.blocked = [ci for ci in range(self.nc) if self.step[ci] > 1]
        self.shift = [lo_ - o for lo_, o in zip(self.lo, self.off.tolist())]
        self._pattern: list[dict] = [{} for _ in range(self.nc)]
        self._patterns: dict[bytes, int] = {}
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        # loops above the child over dims not indexing the tensor (first-touch test of O)
        rel = nest.relevant(tensor)
        self.irrelevant = np.array([idx in self.above and flat.loops[idx][1].dim not in rel
                                    for idx in loops], dtype=bool)

    def runs(self, origin: np.ndarray, full: bool) -> tuple[np.ndarray, np.ndarray]:
        """(element starts, element lengths) of one move's elements, all siblings, sorted by
        address, touching runs merged. Moves whose coordinates clip alike (same real pattern
        along every coordinate) are translates of one another: computed once, then shifted."""
        key = [full]
        for ci in range(self.nc):
            o = int(origin[ci])
            ids = self._pattern[ci]
            pid = ids.get((full, o))
            if pid is None:
                tmpl = self.tile[ci] if full else self.delta[ci]
                v = o + self.sib[ci][:, None] + tmpl[None, :]
                real = self.real[ci]
                ok = real[np.clip(v, 0, len(real) - 1)] & (v >= 0) & (v < len(real))
                pid = ids[(full, o)] = self._patterns.setdefault(ok.tobytes(), len(self._patterns))
            key.append(pid)
        if self.linear:
            offset = int(np.dot(origin, self.B))
        else:       # blocked: the position inside a block matters, whole blocks shift
            u = origin - self.off
            key.extend(int(u[ci]) % int(self.step[ci]) for ci in self.blocked)
            offset = int(np.dot(u // self.step, self.B))
        key = tuple(key)
        hit = self._cache.get(key)
        if hit is None:
            starts, lens = self._runs(origin, full)
            hit = self._cache[key] = (starts - offset, lens)
        return hit[0] + offset, hit[1]

    def _runs(self, origin: np.ndarray, full: bool) -> tuple[np.ndarray, np.ndarray]:
        tmpl = self.tile if full else self.delta
        nc = self.nc
        vals, oks = [], []
        for ci in range(nc):
            v = origin[ci] + self.sib[ci][:, None] + tmpl[ci][None, :]
            real = self.real[ci]
            ok = real[np.clip(v, 0, len(real) - 1)] & (v >= 0) & (v < len(real))
            vals.append(v - self.lo[ci])
            oks.append(ok)
        # trailing coordinates every sibling holds whole (and not blocked): one block
        block, last = 1, nc - 1
        while last > 0 and vals[last].shape[0] == 1 and oks[last].all() \
                and self.unblocked[last] and vals[last].shape[1] == self.sizes[last] \
                and vals[last][0, 0] == 0 and vals[last][0, -1] == self.sizes[last] - 1:
            block *= self.sizes[last]
            last -= 1
        # linear indices per coordinate (the layout's maps)
        if self.linear:
            fvals = [(vals[ci] + self.shift[ci]) * self.B[ci] if self.shift[ci] else
                     vals[ci] * self.B[ci] for ci in range(last + 1)]
        else:
            fvals = []
            for ci in range(last + 1):
                u = vals[ci] + (self.lo[ci] - self.off[ci])
                fvals.append(self.B[ci] * (u // self.step[ci]) + self.S[ci] * (u % self.step[ci]))
        # runs along the last kept coordinate: start flags and lengths
        v, ok = fvals[last], oks[last]
        prev_ok = np.zeros_like(ok)
        prev_ok[:, 1:] = ok[:, :-1] & (v[:, 1:] == v[:, :-1] + block)   # contiguous
        start = ok & ~prev_ok
        flat_ok = ok.ravel()
        run_id = np.cumsum(start.ravel()) - 1
        lengths = np.bincount(run_id[flat_ok], minlength=int(start.sum())) if flat_ok.any() else \
            np.zeros(0, dtype=np.int64)
        lenL = np.zeros(ok.shape, dtype=np.int64)
        lenL[start] = lengths
        k = last + 1
        ndim = 2 * k
        addr = np.zeros((1,) * ndim, dtype=np.int64)
        mask = np.ones((1,) * ndim, dtype=bool)
        for ci in range(k):
            shape = [1] * ndim
            shape[ci], shape[k + ci] = vals[ci].shape
            addr = addr + fvals[ci].reshape(shape)
            if ci < last:
                mask = mask & oks[ci].reshape(shape)
        shape = [1] * ndim
        shape[last], shape[k + last] = lenL.shape
        lens = np.broadcast_to(lenL.reshape(shape), np.broadcast_shapes(addr.shape, mask.shape,
                                                                         tuple(shape)))
        sel = (lens > 0) & mask
        starts = np.broadcast_to(addr, sel.shape)[sel]
        lens = lens[sel] * block
        if starts.size > 1:
            order = np.argsort(starts, kind="stable")
            starts, lens = starts[order], lens[order]
            starts, lens = merge_runs(starts, lens)
        return starts, lens


def merge_runs(starts: np.ndarray, lens: np.ndarray, writes: np.ndarray | None = None
               ) -> tuple[np.ndarray, ...]:
    """Merge runs that touch the one before them (same ``writes`` flag or code), in order."""
    if starts.size < 2:
        return (starts, lens) if writes is None else (starts, lens, writes)
    brk = np.ones(starts.size, dtype=bool)
    brk[1:] = starts[1:] != starts[:-1] + lens[:-1]
    if writes is not None:
        brk[1:] |= writes[1:] != writes[:-1]
    gid = np.cumsum(brk) - 1
    out_lens = np.bincount(gid, weights=lens).astype(np.int64)
    if writes is None:
        return starts[brk], out_lens
    return starts[brk], out_lens, writes[brk]


#: Codes of an element block's runs: what each is (the byte size of an element follows it).
W_READ, I_READ, O_READ, O_WRITE, O_SPILL = 0, 1, 2, 3, 4


def element_blocks(nest: LoopNest, mapping, keeps: tuple[frozenset, ...],
                   regions: dict[str, Region], on_chip: frozenset = frozenset(),
                   chunk: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Blocks ``(element starts, element lengths, codes)`` of the mapping's DRAM stream in nest
    order: element indices in each tensor's region (its layout's linear index) and a code
    (:data:`W_READ`, :data:`I_READ`, :data:`O_READ` partial sums read back, :data:`O_WRITE`
    final values, :data:`O_SPILL` partial sums written before their reduction ends: a drain
    is final when every loop above the child over a dim not indexing ``O`` is at its last
    index, so the tile is never seen again).

    ``keeps[i]``: the tensors level ``i`` keeps (level 0 is DRAM). ``on_chip``: tensors that
    move nothing (``"W"``, ``"I"``; ``"O"`` drops the final values only: partial sums its
    mapping spills still go to DRAM and back, as the fast model counts them).
    Only ``regions``' shapes matter here (not bases or element bytes).
    """
    flat = _Flat(nest, mapping)
    children: dict[str, int] = {}
    for t in TENSORS:
        child = next((i for i in range(1, len(keeps)) if t in keeps[i]), None)
        if child is not None and not (t in on_chip and t != "O"):
            children[t] = child
    if not children:
        return
    deepest = max(children.values())
    loops = [idx for idx, (lv, l) in enumerate(flat.loops) if lv < deepest and not l.spatial]
    plans = {t: _Plan(flat, t, c, regions[t], loops) for t, c in children.items()}
    # loops that move no tile (for any tensor) and sit inside every loop that does: skipped
    active = [any(p.cls.get(g, NONE) != NONE for p in plans.values()) for g in range(len(loops))]
    while loops and not active[len(loops) - 1]:
        loops.pop()
    for p in plans.values():
        p.origin, p.irrelevant = p.origin[:len(loops)], p.irrelevant[:len(loops)]
    factors = [flat.loops[idx][1].factor for idx in loops]
    factors_arr = np.array(factors, dtype=np.int64)
    n = len(loops)
    o_writes = "O" in plans and "O" not in on_chip
    buf_s: list[np.ndarray] = []
    buf_l: list[np.ndarray] = []
    buf_c: list[tuple[int, int]] = []     # (code, runs) per move
    count = 0

    def flush():
        s = np.concatenate(buf_s)
        l_ = np.concatenate(buf_l)
        codes, sizes = zip(*buf_c)
        c = np.repeat(np.array(codes, dtype=np.int64), sizes)
        buf_s.clear(), buf_l.clear(), buf_c.clear()
        keep = l_ > 0
        return merge_runs(s[keep], l_[keep], c[keep])

    def add(plan: _Plan, origin, full: bool, code: int) -> int:
        es, el = plan.runs(origin, full)
        buf_s.append(es)
        buf_l.append(el)
        buf_c.append((code, es.size))
        return es.size

    digits = np.zeros(n, dtype=np.int64)
    origins = {t: np.zeros(p.nc, dtype=np.int64) for t, p in plans.items()}
    total = int(np.prod(factors, dtype=np.int64)) if n else 1
    for m in range(total):
        if m == 0:
            g = -1
        else:       # odometer: the innermost loop that advances
            g = n - 1
            while digits[g] == factors[g] - 1:
                digits[g] = 0
                g -= 1
            digits[g] += 1
        for t, p in plans.items():
            cls = FULL if g < 0 else p.cls.get(g, NONE)
            if cls == NONE:
                continue
            old = origins[t]
            new = digits @ p.origin if n else old
            if t == "O":
                if g >= 0:
                    # the tile left is final when no loop over a dim not indexing O can come
                    # back to it: loop g is not one, and every such loop outside it is at its
                    # last index (those inside it were, before they wrapped)
                    final = not p.irrelevant[g] and bool(
                        (digits[:g][p.irrelevant[:g]] == factors_arr[:g][p.irrelevant[:g]]
                         - 1).all())
                    if not final:
                        count += add(p, old, True, O_SPILL)
                    elif o_writes:
                        count += add(p, old, True, O_WRITE)
                if g >= 0 and (digits[p.irrelevant] != 0).any():
                    count += add(p, new, True, O_READ)
            else:
                count += add(p, new, cls == FULL, W_READ if t == "W" else I_READ)
            origins[t] = new
        if count >= chunk:
            yield flush()
            count = 0
    if o_writes:
        count += add(plans["O"], origins["O"], True, O_WRITE)
    if buf_s:
        yield flush()


def to_bytes(blocks, regions: dict[str, Region], psum_bytes: float | None = None,
             offsets: dict | None = None, needed: dict | None = None
             ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Byte blocks ``(starts, lengths, writes)`` of element blocks: a run of ``n`` elements at
    index ``x`` of a region covers bytes ``[round(x e), round((x + n) e))`` past its base (``e``
    its element bytes; totals telescope); partial sums (:data:`O_READ`, :data:`O_SPILL`) move
    ``round(n psum_bytes)`` bytes from the same start.
    ``offsets``: per range code, the region's :class:`~accelsim.sim.dram_lengths.BitOffsets`
    (a compressed tensor's real code): a run covers the whole bytes holding its bits.
    ``needed``: per range code, ``(starts, ends)`` of the runs of elements that move (sorted,
    disjoint): the code's ranges are cut to them, in place."""
    base = np.array([regions["W"].base, regions["I"].base] + [regions["O"].base] * 3,
                    dtype=np.int64)
    eb = np.array([regions["W"].elem_bytes, regions["I"].elem_bytes]
                  + [regions["O"].elem_bytes] * 3)
    whole = bool(np.all(eb == np.rint(eb))) and (psum_bytes is None or psum_bytes == int(psum_bytes))
    pb = eb.copy()
    if psum_bytes is not None:
        pb[O_READ] = pb[O_SPILL] = psum_bytes
    for starts, lens, codes in blocks:
        for code, runs in (needed or {}).items():
            starts, lens, codes = _cut(starts, lens, codes, code, runs)
        if whole and not offsets:     # uncompressed: integer arithmetic
            yield (base[codes] + starts * eb.astype(np.int64)[codes],
                   lens * pb.astype(np.int64)[codes], (codes >= O_WRITE).astype(np.int64))
            continue
        yield _scaled_bytes(starts, lens, codes, base, eb, pb, offsets)


def _cut(starts, lens, codes, code: int, runs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The block with the ranges of ``code`` cut to ``runs``, each range's parts in its place."""
    mine = codes == code
    if not mine.any():
        return starts, lens, codes
    idx = np.flatnonzero(mine)
    part_s, part_n, src = cut_to_runs(starts[idx], lens[idx], *runs)
    pos = np.concatenate((np.flatnonzero(~mine), idx[src]))
    order = np.argsort(pos, kind="stable")
    new_s = np.concatenate((starts[~mine], part_s))[order]
    new_n = np.concatenate((lens[~mine], part_n))[order]
    new_c = np.concatenate((codes[~mine], np.full(part_s.size, code, dtype=codes.dtype)))[order]
    return new_s, new_n, new_c


def _scaled_bytes(starts, lens, codes, base, eb, pb, offsets: dict | None):
    """:func:`to_bytes` of one block with fractional element sizes, or real bit offsets for
    the codes ``offsets`` names (read in the kernel when :meth:`BitOffsets.terms` gives them,
    else by :meth:`BitOffsets.at`)."""
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    lens = np.ascontiguousarray(lens, dtype=np.int64)
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    out_s = np.empty(starts.shape[0], dtype=np.int64)
    out_n = np.empty_like(out_s)
    out_w = np.empty_like(out_s)
    tables = [(_NO_CUM, _NO_RANK, _NO_WORDS, _NO_TERMS)] * 2      # W_READ, I_READ
    rest = {}
    for code, off in (offsets or {}).items():
        terms = off.terms() if code in (W_READ, I_READ) else None
        if terms is None:
            rest[code] = off
        else:
            tables[code] = terms
    (cum_w, rank_w, words_w, terms_w), (cum_i, rank_i, words_i, terms_i) = tables
    bad = _range_bytes(starts, lens, codes, base, np.asarray(eb, dtype=np.float64),
                       np.asarray(pb, dtype=np.float64), cum_w, rank_w, words_w, terms_w, cum_i,
                       rank_i, words_i, terms_i, out_s, out_n, out_w)
    if bad >= 0:
        raise ValueError(f"BitOffsets: boundaries must lie in [0, {offsets[bad].n}]")
    for code, off in rest.items():
        sel = np.flatnonzero(codes == code)
        if sel.size:
            s0 = starts[sel]
            b0 = off.at(s0) // 8
            out_s[sel] = base[code] + b0
            out_n[sel] = -(-off.at(s0 + lens[sel]) // 8) - b0
    return out_s, out_n, out_w


_NO_CUM = np.zeros(0, dtype=np.int64)
_NO_RANK = np.zeros(0, dtype=np.uint16)
_NO_WORDS = np.zeros(0, dtype=np.uint64)
_NO_TERMS = np.zeros(0, dtype=np.int64)


@njit(**{**JIT, "fastmath": False})      # NumPy's float rounding, bit for bit
def _range_bytes(starts, lens, codes, base, eb, pb, cum_w, rank_w, words_w, terms_w, cum_i,
                 rank_i, words_i, terms_i, out_s, out_n, out_w):
    """Byte ``(starts, lengths, writes)`` of element runs: a run of ``n`` elements at index
    ``x`` of code ``c`` covers ``[rint(x eb[c]), rint((x + n) eb[c]))`` past ``base[c]``; a
    partial sum (:data:`O_READ`, :data:`O_SPILL`) ``rint(n pb[c])`` bytes from its start. A
    code with terms (``W_READ``: ``terms_w``, ``I_READ``: ``terms_i``,
    :meth:`BitOffsets.terms`) covers the whole bytes holding the bits between its boundaries
    instead. Returns -1, or the code of a
    boundary outside its region (nothing else is then meaningful)."""
    for i in range(starts.shape[0]):
        c = codes[i]
        x0 = starts[i]
        x1 = x0 + lens[i]
        if (c == W_READ and terms_w.shape[0]) or (c == I_READ and terms_i.shape[0]):
            if c == W_READ:
                cum, rank, words, terms = cum_w, rank_w, words_w, terms_w
            else:
                cum, rank, words, terms = cum_i, rank_i, words_i, terms_i
            a, e, p, row, n = terms[0], terms[1], terms[2], terms[3], terms[4]
            if x0 < 0 or x1 > n or x1 < 0 or x0 > n:
                return c
            bits0 = a * x0 + e * entries_at(cum, rank, words, x0)
            bits1 = a * x1 + e * entries_at(cum, rank, words, x1)
            if p:
                bits0 += p * (-(-x0 // row) + (1 if x0 == n else 0))
                bits1 += p * (-(-x1 // row) + (1 if x1 == n else 0))
            b0 = bits0 // 8
            out_s[i] = base[c] + b0
            out_n[i] = -(-bits1 // 8) - b0
            out_w[i] = 0
            continue
        e = eb[c]
        b0 = np.int64(np.rint(x0 * e))
        if c == O_READ or c == O_SPILL:
            b1 = b0 + np.int64(np.rint(lens[i] * pb[c]))
        else:
            b1 = np.int64(np.rint(x1 * e))
        out_s[i] = base[c] + b0
        out_n[i] = b1 - b0
        out_w[i] = 1 if c >= O_WRITE else 0
    return -1


def dram_ranges(nest: LoopNest, mapping, keeps: tuple[frozenset, ...],
                regions: dict[str, Region], on_chip: frozenset = frozenset(),
                psum_bytes: float | None = None, chunk: int = CHUNK
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Blocks ``(byte starts, byte lengths, writes)`` of the mapping's DRAM stream in nest order
    (:func:`element_blocks` through :func:`to_bytes`). ``psum_bytes``: bytes one spilled psum
    reads back (default: the output region's element)."""
    return to_bytes(element_blocks(nest, mapping, keeps, regions, on_chip, chunk), regions,
                    psum_bytes)


# ---- a layer on a design with dram.device --------------------------------------------------
ROW_RATIOS = ("dram_row_hit_rate", "dram_bank_parallelism", "dram_achieved_gb_per_s")


def stream_of(layer, nest: LoopNest, mapping, arch, hw, ctx, ratios: tuple[float, float, float],
              drop_padding: bool = True, masks: tuple | None = None,
              needed_inputs: np.ndarray | None = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The DRAM stream of one batch of ``layer`` under ``mapping`` on ``arch``: element bytes
    from the precision times ``ratios`` (the off-chip compressed ratios of W, I and O's final
    values the fast model charges; partial sums move dense at accumulator width), and what the
    residency context ``ctx`` keeps on chip moves nothing (:func:`element_blocks`,
    :func:`to_bytes`). ``masks``: the batch's ``(weight mask (K, C/G,
    R, S), input mask (N, C, H, W))``: a tensor compressed in DRAM then moves its real code
    (:func:`_offsets`). ``needed_inputs`` (C,): the inputs whose weights are fetched
    (``sparsity.skip_weight_fetch``); the weight ranges are cut to them."""
    from accelsim.sim.loopnest import _holder

    p = hw.precision
    w_r, a_r, o_r = ratios
    elem = {"W": p.weight_bits / 8.0 * w_r, "I": p.activation_bits / 8.0 * a_r,
            "O": p.activation_bits / 8.0 * o_r}
    geo = layer.geometry
    dense = {"W": p.weight_bits / 8.0, "I": p.activation_bits / 8.0, "O": p.activation_bits / 8.0}
    regions = _layouts_of(nest, elem, dense, (int(geo.pad_h), int(geo.pad_w)),
                          (int(geo.H), int(geo.W)), drop_padding, stream_layout(hw, geo),
                          mapping, arch.keeps)
    on_chip = frozenset(t for t, flag in (("W", ctx.weights_resident), ("I", ctx.input_on_chip),
                                          ("O", ctx.output_on_chip))
                        if flag and _holder(arch, t) is not None)
    key = (nest, mapping, arch.keeps, on_chip,
           tuple(r.shape_key for r in regions.values()))
    blocks = _BLOCKS.pop(key, None)
    if blocks is None:
        blocks = _recorded(key, element_blocks(nest, mapping, arch.keeps, regions, on_chip))
    else:
        _BLOCKS[key] = blocks       # most recently used last
    offsets = _offsets(regions, hw, ctx, masks, on_chip) if masks is not None else None
    needed = None
    if needed_inputs is not None:
        needed = {W_READ: _needed_weight_runs(regions["W"], np.asarray(needed_inputs, dtype=bool))}
    # partial sums move dense at accumulator width (their zeros are not final)
    return to_bytes(blocks, regions, psum_bytes=p.accumulator_bits / 8.0,
                    offsets=offsets or None, needed=needed)


def _layouts_of(nest: LoopNest, elem: dict[str, float], dense: dict[str, float],
                pads: tuple[int, int], real_hw: tuple[int, int], drop_padding: bool, layout,
                mapping, keeps) -> dict[str, Region]:
    """:func:`layouts` with ``reserve_bytes=dense``, the regions' placement kept per layer
    and mapping (:data:`_LAYOUTS`): the bases and shapes depend on the dense sizes only, so
    a sample's compressed element bytes just replace ``elem_bytes``."""
    key = (nest, tuple(dense.values()), pads, real_hw, drop_padding, layout, mapping, keeps)
    placed = _LAYOUTS.get(key)
    if placed is None:
        placed = layouts(nest, dense, pads, real_hw, drop_padding, reserve_bytes=dense,
                         layout=layout, mapping=mapping, keeps=keeps)
        while len(_LAYOUTS) >= CACHE_LAYOUTS:
            _LAYOUTS.pop(next(iter(_LAYOUTS)), None)
        _LAYOUTS[key] = placed
    return {t: Region(t, r.base, r.sizes, r.lo, float(elem[t]), r.perm, r.tile, r.block_order)
            for t, r in placed.items()}


#: Placed regions per (layer, mapping, layout) (:func:`_layouts_of`), the last few.
_LAYOUTS: dict[tuple, dict[str, Region]] = {}
CACHE_LAYOUTS = 256


#: ``dram.weight_layout: input_major``: one input's weights contiguous (the transposed matrix).
INPUT_MAJOR_WEIGHTS = ("G", "C", "R", "S", "K")


def stream_layout(hw, geometry):
    """``hw.dram.layout`` for a layer: a linear layer's weights follow ``dram.weight_layout``
    (``input_major``: :data:`INPUT_MAJOR_WEIGHTS`; ``output_major``: PyTorch's row-major order)
    unless ``dram.layout.weights`` declares an order or a tile-major layout."""
    import dataclasses

    layout = hw.dram.layout
    w = layout.weights
    if (geometry.kind == "linear" and hw.dram.weight_layout == "input_major"
            and w.order is None and not w.tile_major):
        return dataclasses.replace(layout, weights=dataclasses.replace(w, order=INPUT_MAJOR_WEIGHTS))
    return layout


def _offsets(regions: dict[str, Region], hw, ctx, masks: tuple,
             on_chip: frozenset = frozenset()) -> dict:
    """Per range code, the real code of W and I when DRAM stores them compressed (not the
    network's raw input), when the masks cover their regions exactly; none for a tensor in
    ``on_chip`` (its stream has no reads)."""
    from accelsim.sim.dram_lengths import BitOffsets, linear_order

    wmask, act = masks
    out = {}
    p = hw.precision
    cases = []
    if "W" not in on_chip:
        cases.append((W_READ, regions["W"], wmask, hw.storage.weights.off_chip, p.weight_bits))
    if "I" not in on_chip and not (ctx.network_input and hw.storage.raw_network_input):
        cases.append((I_READ, regions["I"], act, hw.storage.activations.off_chip,
                      p.activation_bits))
    for code, region, mask, fmt, bits in cases:
        # ranked (fibertree) formats keep the exact ratio the row charges, spread evenly
        if fmt.format in ("dense", "ranked") or mask is None:
            continue
        key = (id(mask), region.shape_key, fmt, bits)
        kept = _CODES.get(key)
        if kept is not None and kept[0] is mask:   # the layer's samples share its weights
            out[code] = kept[1]
            continue
        shaped = _region_shaped(np.asarray(mask, dtype=bool), region)
        if shaped is None:      # the nest covers part of the tensor: keep the mean ratio
            continue
        out[code] = BitOffsets(linear_order(region, shaped), region.sizes, fmt, bits)
        if code == W_READ:
            while len(_CODES) >= CACHE_STREAMS:
                _CODES.pop(next(iter(_CODES)), None)
            _CODES[key] = (mask, out[code])      # the mask kept: its id is not reused
    return out


#: The weights' real codes of the last few layers (``(mask, BitOffsets)`` by the mask's id
#: and the region): a layer's samples share one weight mask, so its code is built once.
_CODES: dict[tuple, tuple] = {}


def _region_shaped(mask: np.ndarray, region: Region) -> np.ndarray | None:
    """A weight (K, C/G, R, S) or input (N, C, H, W) mask as the region's coordinates
    (G, K/G, C/G, R, S) or (N, G, C/G, H, W), or None when the sizes differ."""
    sizes = tuple(int(v) for v in region.sizes)
    if mask.size != int(np.prod(sizes, dtype=np.int64)):
        return None
    if region.tensor == "W" and mask.ndim == 4 and mask.shape[1:] == sizes[2:]:
        return mask.reshape(sizes)
    if region.tensor == "I" and mask.ndim == 4 and mask.shape[0] == sizes[0] \
            and mask.shape[2:] == sizes[3:]:
        return mask.reshape(sizes)
    return None


def _needed_weight_runs(region: Region, needed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs (region linear order) of the weights of the needed inputs: weight ``(g, k, c, r,
    s)`` is needed when input channel ``g * C/G + c`` is."""
    from accelsim.sim.dram_lengths import linear_order, runs_of

    g, _, cg = (int(v) for v in region.sizes[:3])
    if needed.size != g * cg:
        raise ValueError(f"needed inputs: {needed.size} channels, the weights have {g * cg}")
    per = np.broadcast_to(needed.reshape(g, 1, cg, 1, 1), tuple(int(v) for v in region.sizes))
    return runs_of(linear_order(region, per))


#: The element blocks of the last streams (the samples of a layer share them: only the
#: compressed element sizes differ), least recently used first: each at most CACHE_RANGES
#: ranges and CACHE_TOTAL ranges in all (24 bytes a range), so memory stays bounded while a
#: network's layers (ResNet-50: about 0.4 M ranges) stay kept across batches of samples.
_BLOCKS: dict[tuple, list] = {}
CACHE_RANGES = 1 << 19
CACHE_TOTAL = 1 << 20
CACHE_STREAMS = 2       # the weights' codes kept (_CODES)


def _recorded(key: tuple, blocks: Iterator) -> Iterator:
    """``blocks`` passed through, kept in :data:`_BLOCKS` when short enough."""
    kept: list | None = []
    size = 0
    for block in blocks:
        if kept is not None:
            size += len(block[0])
            if size <= CACHE_RANGES:
                kept.append(block)
            else:
                kept = None
        yield block
    if kept is not None and size <= CACHE_TOTAL:
        held = sum(_ranges(v) for v in _BLOCKS.values())
        while _BLOCKS and held + size > CACHE_TOTAL:
            held -= _ranges(_BLOCKS.pop(next(iter(_BLOCKS))))
        _BLOCKS[key] = kept


def _ranges(blocks: list) -> int:
    return sum(len(b[0]) for b in blocks)


def layer_dram(layer, nest: LoopNest, mapping, arch, hw, ctx,
               ratios: tuple[float, float, float], masks: tuple | None = None,
               needed_inputs: np.ndarray | None = None) -> tuple[float, float, dict]:
    """``(DRAM level time in accelerator cycles, DRAM energy pJ, row fields)`` of one batch:
    its stream (:func:`stream_of`) through ``hw.dram.device`` (channels, address mapping, page
    policy of ``hw.dram``), from a fresh device state. The level time is the model's, or the
    bus bytes at ``bandwidth_gb_per_s`` when that sustained limit is slower (0 when
    ``dram.ideal``). ``masks`` and ``needed_inputs``: as :func:`stream_of`; the bytes reach the
    device through the transfer engine's burst coalescing (:mod:`accelsim.dram.coalesce`)."""
    from accelsim.dram.model import ENERGY_ACTIONS

    stream = stream_of(layer, nest, mapping, arch, hw, ctx, ratios, masks=masks,
                       needed_inputs=needed_inputs)
    res = served(hw.dram, stream)
    cycles = res.time_ns * hw.technology.clock_mhz * 1e-3
    row = {"dram_cycles": cycles, "dram_row_hit_rate": res.row_hit_rate,
           "dram_bank_parallelism": res.bank_level_parallelism,
           "dram_achieved_gb_per_s": res.bandwidth_gb_per_s,
           "dram_stream_bytes": float(res.bytes)}
    for action in ENERGY_ACTIONS:
        row[f"energy_dram_{action}_pj"] = float(res.energy_pj[action])
    per_cycle = arch.dram_bytes_per_cycle
    time = 0.0 if per_cycle is None else max(cycles, res.bytes / per_cycle)
    return time, res.total_energy_pj, row


def served(dram, stream: Iterable) -> "DramResult":
    """The byte blocks ``(starts, lengths, writes)`` of ``stream`` through a fresh state of
    ``dram.device`` (``dram``: ``hw.dram``), coalesced in the DRAM kernel (the bursts of
    :func:`accelsim.dram.coalesce.coalesced_blocks`). A stream of at most
    :data:`MEMO_RANGES` ranges is looked up first by its exact content and the device's
    configuration (:data:`_SERVED`): the result is a function of those alone (it does not
    depend on how the stream is cut), so a layer whose stream repeats across samples (only
    weights read) is served once; a hit returns the kept object (read it, do not change it)."""
    from accelsim.dram.model import DramState
    from accelsim.dram.presets import get_device

    device = get_device(dram.device) if isinstance(dram.device, str) else dram.device
    config = (id(device), dram.channels, dram.address_mapping, dram.page_policy or "open")
    stream = iter(stream)
    head, size = [], 0
    for block in stream:
        head.append(tuple(np.ascontiguousarray(a, dtype=np.int64) for a in block))
        size += head[-1][0].shape[0]
        if size > MEMO_RANGES:
            break
    key = None
    if size <= MEMO_RANGES:         # the whole stream is in head
        key = config + tuple(np.concatenate([b[i] for b in head] or [_NO_INTS]).tobytes()
                             for i in range(3))
        kept = _SERVED.pop(key, None)
        if kept is not None and kept[0] is device:      # the device kept: its id is not reused
            _SERVED[key] = kept                         # most recently used last
            return kept[1]
    state = DramState(device, dram.channels, dram.address_mapping, config[3], coalesce=True)
    for block in head:
        state.feed(*block)
    for block in stream:
        state.feed(*block)
    res = state.result()
    if key is not None:
        while len(_SERVED) >= CACHE_SERVED:
            _SERVED.pop(next(iter(_SERVED)), None)
        _SERVED[key] = (device, res)
    return res


#: Device results of the last few short streams (:func:`served`) by ``(device id, channels,
#: address mapping, page policy, starts, lengths, writes)`` (the int64 arrays' bytes, the
#: stream concatenated), least recently used first; at most CACHE_SERVED streams of at most
#: MEMO_RANGES ranges (24 bytes a range) each.
_SERVED: dict[tuple, tuple] = {}
CACHE_SERVED = 64
MEMO_RANGES = 1 << 12
_NO_INTS = np.zeros(0, dtype=np.int64)
