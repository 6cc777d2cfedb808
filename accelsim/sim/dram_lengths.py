"""Where each element of a compressed tensor lies in DRAM: bit offsets from its real mask.

A tensor stored in DRAM in a compressed format is one code in its region's linear order
(the layout of :mod:`accelsim.sim.dram_stream`), so a run of elements ``[x, x + n)`` occupies
the bits between the offsets of the element boundaries ``x`` and ``x + n``: its *real* length,
from the mask, not the tensor's mean ratio. Per format (``b`` value bits; formats as
:mod:`accelsim.sim.storage` sizes them, so the offset of the last boundary is the tensor's
exact size there):

- ``dense``: ``b`` per element;
- ``bitmap``: one presence bit per element, plus ``b`` per non-zero;
- ``coo``: ``ndim * index_bits + b`` per non-zero;
- ``csr`` (rows = the region's outermost coordinate): ``index_bits + b`` per non-zero, a row
  pointer before each row's first element and the closing pointer after the last element;
- ``run_length``: an entry of ``run_bits + b`` per non-zero, preceded by its overflow
  entries (``gap >> run_bits`` for the ``gap`` zeros before it), placed at the non-zero;
  zeros after the last non-zero cost nothing;
- ``ranked`` (per-rank fibertree formats): sized exactly by :mod:`accelsim.sim.fibertree`,
  but laid out as that exact size spread evenly over the elements (the per-rank payloads
  are not placed element by element here).

Memory stays small for any tensor: the caller's mask, two counters per :data:`BLOCK`
elements and two bytes per element (its entries since its block's start), so an offset is
two array reads; where a zero run is so long that such a rank does not fit in 16 bits, an
offset is the block's counter plus a scan of at most ``BLOCK - 1`` elements (Numba)."""
from __future__ import annotations

import sys

import numpy as np
from numba import njit

from accelsim.numba_config import JIT
from accelsim.sim.kernels.bitops import popcount64
from accelsim.sim import storage

#: Elements per block of the offset tables.
BLOCK = 64
_NO_OVERFLOW = 62    # a run field this wide never overflows (gap >> 62 == 0)


@njit(**JIT)
def _tables(flat, run_bits, block, rank):
    """Per block start: entries before it (non-zeros plus overflow entries) and the zero gap
    open there. With a ``rank`` of ``n + 1`` entries, also per element boundary ``x`` the
    entries between its block's start and ``x`` (``rank[x]``), so a boundary's entries are
    ``cum[x // block] + rank[x]`` without a scan; the third value is False when some rank
    did not fit ``rank``'s type (long zero runs of a run-length code; ``rank`` is then not
    to be read)."""
    n = flat.shape[0]
    ranked = rank.shape[0] == n + 1
    top = 65535                 # rank: uint16
    fits = True
    nb = n // block + 1
    cum = np.zeros(nb, dtype=np.int64)
    gaps = np.zeros(nb, dtype=np.int64)
    entries = np.int64(0)
    gap = np.int64(0)
    for b in range(nb):
        cum[b] = entries
        gaps[b] = gap
        lo = b * block
        hi = min(lo + block, n)
        if run_bits >= _NO_OVERFLOW:    # no overflow entries: a count of the non-zeros
            c = np.int64(0)
            if ranked:
                for i in range(lo, hi):
                    rank[i] = c
                    c += flat[i] != 0
            else:
                for i in range(lo, hi):
                    c += flat[i] != 0
            entries += c
            continue
        for i in range(lo, hi):
            if ranked:
                r = entries - cum[b]
                if r > top:
                    fits = False
                else:
                    rank[i] = r
            if flat[i] != 0:
                entries += 1 + (gap >> run_bits)
                gap = 0
            else:
                gap += 1
    if ranked:      # boundary n: the entries of its (possibly empty, last) block before it
        r = entries - cum[n // block]
        if r > top:
            fits = False
        else:
            rank[n] = r
    return cum, gaps, fits


@njit(**JIT)
def _entries_before(flat, run_bits, block, cum, gaps, xs, out):
    """Entries before each element boundary ``xs[j]`` (non-zeros plus overflow entries)."""
    for j in range(xs.shape[0]):
        x = xs[j]
        b = x // block
        entries = cum[b]
        if run_bits >= _NO_OVERFLOW:
            c = np.int64(0)
            for i in range(b * block, x):
                c += flat[i] != 0
            out[j] = entries + c
            continue
        gap = gaps[b]
        for i in range(b * block, x):
            if flat[i] != 0:
                entries += 1 + (gap >> run_bits)
                gap = 0
            else:
                gap += 1
        out[j] = entries


@njit(**JIT)
def _scatter5(mask, p0, p1, p2, p3, p4, out):
    """``out[p0[a] + p1[b] + p2[c] + p3[d] + p4[e]] = mask[a, b, c, d, e]``."""
    for a in range(mask.shape[0]):
        for b in range(mask.shape[1]):
            ab = p0[a] + p1[b]
            for c in range(mask.shape[2]):
                abc = ab + p2[c]
                for d in range(mask.shape[3]):
                    abcd = abc + p3[d]
                    for e in range(mask.shape[4]):
                        out[abcd + p4[e]] = mask[a, b, c, d, e]


_NO_RANK = np.zeros(0, dtype=np.uint16)
_NO_WORDS = np.zeros(0, dtype=np.uint64)


def _packed_words(flat: np.ndarray) -> np.ndarray:
    """``flat`` (bool) packed little-endian into uint64 words, bit ``i`` of word ``b`` element
    ``64 b + i``, with one word past the last element (boundary ``n`` has a word)."""
    n = flat.shape[0]
    words = np.zeros(n // BLOCK + 1, dtype=np.uint64)
    packed = np.packbits(flat, bitorder="little")
    words.view(np.uint8)[:packed.shape[0]] = packed
    if sys.byteorder != "little":       # the bytes' order within a word
        words = words.byteswap()
    return words


@njit(**JIT)
def entries_at(cum, rank, words, x):
    """Entries before element boundary ``x`` from :meth:`BitOffsets.terms`'s tables: packed
    ``words`` (a counter per word plus a popcount of the bits below ``x``), else the per-element
    ``rank``."""
    b = x // BLOCK
    if words.shape[0]:
        below = (np.uint64(1) << np.uint64(x - b * BLOCK)) - np.uint64(1)
        return cum[b] + np.int64(popcount64(words[b] & below))
    return cum[b] + np.int64(rank[x])


class BitOffsets:
    """Bit offsets of a region's element boundaries ``0..n`` in a storage format, from the
    region's mask in its linear order (``n`` its length; the mask is kept by reference).
    ``shape``: the region's coordinate sizes, outermost first (CSR's rows, COO's coordinates);
    a tile-major region's linear order also holds the holes of its edge blocks (zeros of the
    code, ``n`` at least the product of ``shape``)."""

    def __init__(self, mask: np.ndarray, shape: tuple[int, ...], fmt, value_bits: int):
        flat = np.ascontiguousarray(np.asarray(mask, dtype=bool)).reshape(-1)
        n = int(flat.size)
        stored = int(np.prod(shape, dtype=np.int64))
        if n < stored:
            raise ValueError(f"BitOffsets: the mask has {n} elements, the region stores {stored}")
        self.n = n
        self.format = fmt.format
        self.value_bits = int(value_bits)
        self._flat = flat.view(np.uint8)
        self._run_bits = _NO_OVERFLOW
        self._row = max(n // max(int(shape[0]), 1), 1) if shape else max(n, 1)
        self._index_bits = int(fmt.index_bits)
        self._ndim = max(len(shape), 1)
        self._scale = None
        if self.format == "run_length":
            self._run_bits = min(int(fmt.run_bits), _NO_OVERFLOW)
            self._entry = int(fmt.run_bits) + self.value_bits
        elif self.format == "ranked":
            if n != stored:
                raise ValueError("BitOffsets: a ranked format is sized on the tensor itself, "
                                 "not on a linear order with holes")
            total = storage.tensor_bits(flat.reshape(shape), fmt, self.value_bits)
            self._scale = total / n if n else 0.0
        self._rank = _NO_RANK
        self._words = _NO_WORDS
        if self.format not in ("dense", "ranked") and self._run_bits >= _NO_OVERFLOW:
            # entries are the non-zeros: the mask packed 64 elements a word (BLOCK) and the
            # non-zeros before each word; a boundary's entries are its word's counter plus a
            # popcount of the word's bits below it
            self._words = _packed_words(flat)
            self._cum = np.zeros(self._words.shape[0], dtype=np.int64)
            np.cumsum(np.bitwise_count(self._words[:-1]), out=self._cum[1:])
        elif self.format not in ("dense", "ranked"):
            # a boundary's entries: a block counter plus its rank in the block (two bytes per
            # element), read without a scan; a rank that does not fit: the scan
            self._rank = np.empty(n + 1, dtype=np.uint16)
            self._cum, self._gaps, fits = _tables(self._flat, np.int64(self._run_bits),
                                                  np.int64(BLOCK), self._rank)
            if not fits:
                self._rank = self._rank[:0]

    def terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """``(cum, rank, words, (A, E, P, row, n))`` when an offset is a formula of the entries
        read without a scan: ``bits(x) = A x + E e(x) + P (ceil(x / row) + (x == n))``, ``e(x)``
        by :func:`entries_at` (:meth:`at`'s arithmetic, for a kernel); else None."""
        if self.format in ("dense", "ranked") or not (self._rank.shape[0]
                                                      or self._words.shape[0]):
            return None
        b = self.value_bits
        ib = self._index_bits
        a, e, p = {"run_length": (0, self._entry if self.format == "run_length" else 0, 0),
                   "bitmap": (1, b, 0), "coo": (0, self._ndim * ib + b, 0),
                   "csr": (0, ib + b, ib)}[self.format]
        return (self._cum, self._rank, self._words,
                np.array([a, e, p, self._row, self.n], dtype=np.int64))

    @property
    def total_bits(self) -> int:
        """Bits of the whole region (the offset of boundary ``n``)."""
        return int(self.at(np.array([self.n], dtype=np.int64))[0])

    def at(self, xs: np.ndarray) -> np.ndarray:
        """Bit offsets (int64) of element boundaries ``xs`` (each in ``[0, n]``)."""
        xs = np.ascontiguousarray(xs, dtype=np.int64)
        if xs.size and (xs.min() < 0 or xs.max() > self.n):
            raise ValueError(f"BitOffsets: boundaries must lie in [0, {self.n}]")
        b = self.value_bits
        if self.format == "dense":
            return xs * b
        if self.format == "ranked":
            return np.rint(xs * self._scale).astype(np.int64)
        if self._words.shape[0]:
            below = (np.uint64(1) << (xs % BLOCK).astype(np.uint64)) - np.uint64(1)
            entries = (self._cum[xs // BLOCK]
                       + np.bitwise_count(self._words[xs // BLOCK] & below).astype(np.int64))
        elif self._rank.shape[0]:
            entries = self._cum[xs // BLOCK] + self._rank[xs]
        else:
            entries = np.empty(xs.shape[0], dtype=np.int64)
            _entries_before(self._flat, np.int64(self._run_bits), np.int64(BLOCK), self._cum,
                            self._gaps, xs, entries)
        if self.format == "run_length":
            return entries * self._entry
        if self.format == "bitmap":
            return xs + entries * b
        if self.format == "coo":
            return entries * (self._ndim * self._index_bits + b)
        if self.format == "csr":
            ib = self._index_bits
            pointers = -(-xs // self._row) + (xs == self.n)   # rows started before x, closing
            return entries * (ib + b) + pointers * ib
        raise ValueError(f"storage format: unknown {self.format!r}")


# ---- masks in a region's linear order; ranges cut to the elements needed -------------------
def linear_order(region, mask: np.ndarray) -> np.ndarray:
    """``mask`` over a region's stored elements (shape ``region.sizes``, coordinates in
    ``LoopNest.tensor_dims`` order) as a flat array in the region's linear order
    (:class:`accelsim.sim.dram_stream.Region`; the holes of a tile-major grid are False)."""
    mask = np.asarray(mask, dtype=bool)
    sizes = tuple(int(s) for s in region.sizes)
    if mask.shape != sizes:
        raise ValueError(f"linear_order: the mask has shape {mask.shape}, region "
                         f"{region.tensor} {sizes}")
    if region.tile is None:
        perm = region.perm if region.perm is not None else tuple(range(len(sizes)))
        return np.ascontiguousarray(mask.transpose(perm)).reshape(-1)
    shape, parts, elements = _scatter_plan(region)
    out = np.zeros(elements, dtype=np.uint8)
    _scatter5(np.ascontiguousarray(mask).reshape(shape).view(np.uint8), *parts, out)
    return out.view(bool)


def _scatter_plan(region) -> tuple[tuple[int, ...], list[np.ndarray], int]:
    """How :func:`linear_order` scatters a tile-major region's mask in one pass (no index
    array of the tensor's size): ``(the mask's shape as 5 coordinates, per coordinate the
    linear index of each of its positions (their sum: an element's), the region's
    elements)``. Trailing coordinates shorter than :data:`MERGED` are merged into the one
    before (their sums flat), so the innermost loop is not a few elements. Kept per region
    shape (:data:`_PLANS`): a layer's samples share it."""
    key = region.shape_key
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    off, step, outer, inner = region.coord_maps()
    parts = []
    for c, size in enumerate(region.sizes):
        x = region.lo[c] + np.arange(size, dtype=np.int64) - off[c]
        parts.append(outer[c] * (x // step[c]) + inner[c] * (x % step[c]))
    while len(parts) > 1 and parts[-1].size < MERGED:
        last = parts.pop()
        parts[-1] = (parts[-1][:, None] + last[None, :]).reshape(-1)
    if len(parts) > 5:
        raise ValueError(f"linear_order: regions have at most 5 coordinates, got "
                         f"{len(region.sizes)}")
    lead = 5 - len(parts)
    plan = ((1,) * lead + tuple(p.size for p in parts),
            [np.zeros(1, dtype=np.int64)] * lead + parts, region.elements)
    while len(_PLANS) >= CACHE_PLANS:
        _PLANS.pop(next(iter(_PLANS)), None)
    _PLANS[key] = plan
    return plan


#: :func:`linear_order` merges trailing coordinates shorter than this into the one before.
MERGED = 16
#: Scatter plans of the last few region shapes (:func:`_scatter_plan`), oldest first.
_PLANS: dict[tuple, tuple] = {}
CACHE_PLANS = 16


def runs_of(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of the runs of True in a flat bool array (ends exclusive)."""
    padded = np.concatenate(([False], np.asarray(flat, dtype=bool).reshape(-1), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2].astype(np.int64), edges[1::2].astype(np.int64)


def cut_to_runs(starts: np.ndarray, lengths: np.ndarray, run_starts: np.ndarray,
                run_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The parts of element ranges ``[starts, starts + lengths)`` inside the sorted, disjoint
    runs ``[run_starts, run_ends)``, in range order then address order: ``(starts, lengths,
    index of the range each part comes from)``."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = starts + np.asarray(lengths, dtype=np.int64)
    first = np.searchsorted(run_ends, starts, side="right")    # first run ending after start
    last = np.searchsorted(run_starts, ends, side="left")      # runs starting before the end
    count = np.maximum(last - first, 0)
    src = np.repeat(np.arange(starts.size, dtype=np.int64), count)
    offset = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    run = np.repeat(first, count) + offset
    lo = np.maximum(run_starts[run], starts[src])
    hi = np.minimum(run_ends[run], ends[src])
    keep = hi > lo
    return lo[keep], (hi - lo)[keep], src[keep]
