"""The DRAM access stream of a mapped loop nest, streamed through the DRAM model.

Every DRAM transfer of the mapping becomes address ranges under a fixed layout (see
:func:`layouts`), generated in nest order, chunk by chunk, in element units
(:func:`element_blocks`) and then bytes (:func:`to_bytes`; both: :func:`dram_ranges`), so memory
stays flat in the stream's length:

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
transfer engine reads a tile in address order). The counts equal the fast model's DRAM
accesses (``counts[0]``) by construction; ``tests/test_dram_stream.py`` checks them and the
addresses against an element-by-element walk of the nest (``tests/dram_stream_oracle.py``).
:func:`layer_dram` serves a layer's stream through ``hw.dram.device`` for ``loopnest._sample``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from accelsim.map.access import _Flat
from accelsim.map.nest import TENSORS, LoopNest

ALIGN = 1 << 20            # tensor regions start on a 1 MiB boundary (a multiple of any row)
CHUNK = 1 << 16            # ranges per block handed to the DRAM model
NONE, STEP, FULL = 0, 1, 2  # what a move of the tile fills: nothing, the new part, the whole tile


@dataclass(frozen=True)
class Region:
    """One tensor in DRAM: row-major over its coordinates (``LoopNest.tensor_dims`` order).

    Element ``x`` (index space of the nest) is stored at coordinate ``x - lo`` when that is in
    ``[0, size)`` (else it is not in DRAM: padding); its byte address is
    ``base + round(linear index * elem_bytes)``."""

    tensor: str
    base: int
    sizes: tuple[int, ...]
    lo: tuple[int, ...]
    elem_bytes: float

    @property
    def elements(self) -> int:
        return int(np.prod(self.sizes, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return int(np.ceil(self.elements * self.elem_bytes))


def layouts(nest: LoopNest, elem_bytes: dict[str, float], pads: tuple[int, int] = (0, 0),
            real_hw: tuple[int, int] | None = None, drop_padding: bool = True,
            reserve_bytes: dict[str, float] | None = None) -> dict[str, Region]:
    """The fixed layout: ``W`` as ``[G][K][C][R][S]`` (PyTorch's ``[K][C/G][R][S]``), ``I`` as
    ``[N][G][C][H][W]`` and ``O`` as ``[N][G][K][P][Q]``, row-major, one after another, each
    on an :data:`ALIGN` boundary. ``I``'s ``H``/``W`` coordinates: the nest indexes the padded
    input; with ``drop_padding`` the stored rows and columns are the real ones (``pads``
    removed, ``real_hw`` the unpadded height and width when known), so padding positions move
    nothing; without it the padded extent is stored, as the fast model counts it. A region
    reserves ``reserve_bytes`` per element (default ``elem_bytes``; the dense size keeps the
    bases independent of the compressed ratios)."""
    out: dict[str, Region] = {}
    base = 0
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
        region = Region(tensor, base, tuple(sizes), tuple(lo), float(elem_bytes[tensor]))
        out[tensor] = region
        reserve = (reserve_bytes or elem_bytes)[tensor]
        base += -(-max(int(np.ceil(region.elements * reserve)), 1) // ALIGN) * ALIGN
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
        es = np.ones(self.nc, dtype=np.int64)
        for ci in range(self.nc - 2, -1, -1):
            es[ci] = es[ci + 1] * region.sizes[ci + 1]
        self.es = es
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
        key = tuple(key)
        offset = int(np.dot(origin, self.es))
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
            vals.append(v - self.region.lo[ci])
            oks.append(ok)
        # trailing coordinates every sibling holds whole: one block
        block, last = 1, nc - 1
        while last > 0 and vals[last].shape[0] == 1 and oks[last].all() \
                and vals[last].shape[1] == self.region.sizes[last] \
                and vals[last][0, 0] == 0 and vals[last][0, -1] == self.region.sizes[last] - 1:
            block *= self.region.sizes[last]
            last -= 1
        # runs along the last kept coordinate: start flags and lengths
        v, ok = vals[last], oks[last]
        prev_ok = np.zeros_like(ok)
        prev_ok[:, 1:] = ok[:, :-1] & (v[:, 1:] == v[:, :-1] + 1)
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
            addr = addr + (vals[ci] * self.es[ci]).reshape(shape)
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
W_READ, I_READ, O_READ, O_WRITE = 0, 1, 2, 3


def element_blocks(nest: LoopNest, mapping, keeps: tuple[frozenset, ...],
                   regions: dict[str, Region], on_chip: frozenset = frozenset(),
                   chunk: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Blocks ``(element starts, element lengths, codes)`` of the mapping's DRAM stream in nest
    order: element indices in each tensor's region (its layout's linear index) and a code
    (:data:`W_READ`, :data:`I_READ`, :data:`O_READ` psum spills, :data:`O_WRITE` drains).

    ``keeps[i]``: the tensors level ``i`` keeps (level 0 is DRAM). ``on_chip``: tensors that
    move nothing (``"W"``, ``"I"``; ``"O"`` drops the drains only, as the fast model does).
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
                if g >= 0 and o_writes:
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


def to_bytes(blocks, regions: dict[str, Region], psum_bytes: float | None = None
             ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Byte blocks ``(starts, lengths, writes)`` of element blocks: a run of ``n`` elements at
    index ``x`` of a region covers bytes ``[round(x e), round((x + n) e))`` past its base (``e``
    its element bytes; totals telescope); a psum spill reads ``round(n psum_bytes)`` bytes."""
    base = np.array([regions["W"].base, regions["I"].base, regions["O"].base, regions["O"].base],
                    dtype=np.int64)
    eb = np.array([regions["W"].elem_bytes, regions["I"].elem_bytes, regions["O"].elem_bytes,
                   regions["O"].elem_bytes])
    whole = bool(np.all(eb == np.rint(eb))) and (psum_bytes is None or psum_bytes == int(psum_bytes))
    pb = eb.copy()
    if psum_bytes is not None:
        pb[O_READ] = psum_bytes
    for starts, lens, codes in blocks:
        if whole:     # uncompressed: integer arithmetic
            yield (base[codes] + starts * eb.astype(np.int64)[codes],
                   lens * pb.astype(np.int64)[codes], (codes == O_WRITE).astype(np.int64))
            continue
        e = eb[codes]
        b0 = np.rint(starts * e).astype(np.int64)
        b1 = np.rint((starts + lens) * e).astype(np.int64)
        spill = codes == O_READ
        if spill.any():
            b1[spill] = b0[spill] + np.rint(lens[spill] * pb[O_READ]).astype(np.int64)
        yield base[codes] + b0, b1 - b0, (codes == O_WRITE).astype(np.int64)


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
              drop_padding: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The DRAM stream of one batch of ``layer`` under ``mapping`` on ``arch``: element bytes
    from the precision times ``ratios`` (the off-chip compressed ratios of W, I and O the fast
    model charges; a fetch fraction of skipped weight rows is in W's), and what the residency
    context ``ctx`` keeps on chip moves nothing (:func:`element_blocks`, :func:`to_bytes`)."""
    from accelsim.sim.loopnest import _holder

    p = hw.precision
    w_r, a_r, o_r = ratios
    elem = {"W": p.weight_bits / 8.0 * w_r, "I": p.activation_bits / 8.0 * a_r,
            "O": p.activation_bits / 8.0 * o_r}
    geo = layer.geometry
    dense = {"W": p.weight_bits / 8.0, "I": p.activation_bits / 8.0, "O": p.activation_bits / 8.0}
    regions = layouts(nest, elem, (int(geo.pad_h), int(geo.pad_w)), (int(geo.H), int(geo.W)),
                      drop_padding, reserve_bytes=dense)
    on_chip = frozenset(t for t, flag in (("W", ctx.weights_resident), ("I", ctx.input_on_chip),
                                          ("O", ctx.output_on_chip))
                        if flag and _holder(arch, t) is not None)
    key = (nest, mapping, arch.keeps, on_chip,
           tuple((r.sizes, r.lo) for r in regions.values()))
    blocks = _BLOCKS.get(key)
    if blocks is None:
        blocks = _recorded(key, element_blocks(nest, mapping, arch.keeps, regions, on_chip))
    return to_bytes(blocks, regions, psum_bytes=p.accumulator_bits / 8.0 * o_r)


#: The element blocks of the last few streams (the samples of a layer share them: only the
#: compressed element sizes differ), each at most CACHE_RANGES ranges, so memory stays bounded.
_BLOCKS: dict[tuple, list] = {}
CACHE_RANGES = 1 << 19
CACHE_STREAMS = 2


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
    if kept is not None:
        while len(_BLOCKS) >= CACHE_STREAMS:
            _BLOCKS.pop(next(iter(_BLOCKS)), None)
        _BLOCKS[key] = kept


def layer_dram(layer, nest: LoopNest, mapping, arch, hw, ctx,
               ratios: tuple[float, float, float]) -> tuple[float, float, dict]:
    """``(DRAM level time in accelerator cycles, DRAM energy pJ, row fields)`` of one batch:
    its stream (:func:`stream_of`) through ``hw.dram.device`` (channels, address mapping, page
    policy of ``hw.dram``), from a fresh device state. The level time is the model's, or the
    bus bytes at ``bandwidth_gb_per_s`` when that sustained limit is slower (0 when
    ``dram.ideal``)."""
    from accelsim.dram.model import ENERGY_ACTIONS, stream_ranges

    d = hw.dram
    res = stream_ranges(d.device, stream_of(layer, nest, mapping, arch, hw, ctx, ratios),
                        d.channels, d.address_mapping, d.page_policy or "open")
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
