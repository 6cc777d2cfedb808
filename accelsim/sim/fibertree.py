"""Per-rank compressed formats (Sparseloop's fibertree vocabulary), sized exactly from a mask.

A tensor of per-sample shape ``(d0, d1, ..., dm)`` is a tree of ``k`` ranks, outer to inner:
rank ``j < k - 1`` indexes dimension ``j`` and the last rank the remaining dimensions flattened
(``[UOP, CP]`` on weights ``(K, C, R, S)`` is CSR by filter). Each rank is stored in one format:

- ``U``   uncompressed: every coordinate of each fiber is present, no metadata;
- ``UOP`` uncompressed offset pairs: every coordinate present, plus ``n + 1`` offsets per fiber
  (``offset_bits`` each) into the next rank;
- ``CP``  coordinate payload: only non-empty coordinates, each with its coordinate
  (``coord_bits``);
- ``B``   bitmask: one bit per coordinate of each fiber, only non-empty coordinates kept;
- ``RLE`` run length: only non-empty coordinates, each with the run of empty coordinates before
  it in its fiber (``run_bits``); a run longer than ``2**run_bits - 1`` first needs
  ``run // 2**run_bits`` overflow entries (run field and an empty payload).

A coordinate is *non-empty* when its sub-tree holds a non-zero. The fibers of rank ``j`` are the
coordinates rank ``j - 1`` keeps (one root fiber for rank 0); the values stored are the
coordinates the last rank keeps (zeros included where it is uncompressed), plus RLE's overflow
entries there. Coordinate and offset widths default to the bits that index the rank (or the next
rank's entries).
"""
from __future__ import annotations

import math

import numpy as np

RANK_FORMATS = ("U", "UOP", "CP", "B", "RLE")
COMPRESSED = ("CP", "B", "RLE")
MAX_RANKS = 3            # every traced tensor has at least 3 dimensions per sample


def rank_shape(shape: tuple[int, ...], ranks: int) -> tuple[int, ...]:
    """Sizes of ``ranks`` ranks over a per-sample ``shape`` (leading dims one each, the last
    rank the rest flattened)."""
    shape = tuple(int(d) for d in shape) or (1,)
    if ranks > len(shape):
        shape = (1,) * (ranks - len(shape)) + shape
    return shape[:ranks - 1] + (math.prod(shape[ranks - 1:]),)


def _bits_for(n: float) -> int:
    return max(1, math.ceil(math.log2(max(float(n), 2.0))))


def _widths(ranks, sizes, entries, coord_bits, offset_bits) -> list[int]:
    """Metadata width per rank (``entries[j]``: coordinates rank ``j`` keeps)."""
    out = []
    for j, fmt in enumerate(ranks):
        if fmt == "CP":
            out.append(int(coord_bits) if coord_bits else _bits_for(sizes[j]))
        elif fmt == "UOP":
            nxt = entries[j + 1] if j + 1 < len(ranks) else entries[j]
            out.append(int(offset_bits) if offset_bits else _bits_for(nxt + 1))
        else:
            out.append(0)
    return out


def ranked_bits(mask: np.ndarray, ranks, value_bits: int, run_bits: int = 4,
                coord_bits: int | None = None, offset_bits: int | None = None) -> int:
    """Exact bits (values + metadata) of the tensor whose per-sample mask is ``mask``."""
    ranks = tuple(ranks)
    sizes = rank_shape(np.shape(mask), len(ranks))
    m = np.asarray(mask, dtype=bool).reshape(sizes)
    # non-empty coordinates at depth j: any non-zero below (i0..ij)
    nonempty = [m.reshape(sizes[:j + 1] + (-1,)).any(axis=-1) for j in range(len(ranks))]
    kept, fibers, overflow = [], [], []
    parent = 1                    # coordinates the rank above keeps (fibers of this rank)
    deepest = None                # deepest compressed rank so far
    for j, fmt in enumerate(ranks):
        fibers.append(parent)
        if fmt in COMPRESSED:
            deepest = j
            keep = int(nonempty[j].sum())
        elif deepest is None:
            keep = math.prod(sizes[:j + 1])
        else:
            keep = int(nonempty[deepest].sum()) * math.prod(sizes[deepest + 1:j + 1])
        kept.append(keep)
        overflow.append(_rle_overflow(nonempty[j], run_bits) if fmt == "RLE" else 0)
        parent = keep
    widths = _widths(ranks, sizes, kept, coord_bits, offset_bits)
    return int(_total(ranks, sizes, fibers, kept, overflow, widths, run_bits, value_bits))


def _total(ranks, sizes, fibers, kept, overflow, widths, run_bits: int, value_bits: int) -> float:
    """Metadata of every rank plus the values, from each rank's fibres, kept coordinates and
    RLE overflow entries."""
    meta = 0
    for j, fmt in enumerate(ranks):
        if fmt == "UOP":
            meta += fibers[j] * (sizes[j] + 1) * widths[j]
        elif fmt == "CP":
            meta += kept[j] * widths[j]
        elif fmt == "B":
            meta += fibers[j] * sizes[j]
        elif fmt == "RLE":
            meta += (kept[j] + overflow[j]) * int(run_bits)
    values = kept[-1] + (overflow[-1] if ranks[-1] == "RLE" else 0)
    return meta + values * int(value_bits)


def _rle_overflow(nonempty: np.ndarray, run_bits: int) -> int:
    """Overflow entries of every fiber's run-length code (runs restart at each fiber)."""
    rows = nonempty.reshape(-1, nonempty.shape[-1])
    r, c = np.nonzero(rows)
    if r.size == 0:
        return 0
    prev = np.empty_like(c)
    prev[0] = -1
    prev[1:] = np.where(r[1:] == r[:-1], c[:-1], -1)
    gaps = c - prev - 1
    return int((gaps >> min(int(run_bits), 62)).sum())


def expected_ranked_bits(shape: tuple[int, ...], density: float, ranks, value_bits: int,
                         run_bits: int = 4, coord_bits: int | None = None,
                         offset_bits: int | None = None) -> float:
    """Expected bits of a tensor of per-sample ``shape`` whose elements are independently
    non-zero with probability ``density`` (RLE overflow: the geometric run estimate)."""
    ranks = tuple(ranks)
    sizes = rank_shape(shape, len(ranks))
    d = min(max(float(density), 0.0), 1.0)
    below = [math.prod(sizes[j + 1:]) for j in range(len(ranks))]   # elements under a coordinate
    p_nonempty = [1.0 - (1.0 - d) ** b for b in below]
    coords = [math.prod(sizes[:j + 1]) for j in range(len(ranks))]
    kept, fibers, overflow = [], [], []
    parent, deepest = 1.0, None
    for j, fmt in enumerate(ranks):
        fibers.append(parent)
        if fmt in COMPRESSED:
            deepest = j
            keep = coords[j] * p_nonempty[j]
        elif deepest is None:
            keep = float(coords[j])
        else:
            keep = coords[deepest] * p_nonempty[deepest] * math.prod(sizes[deepest + 1:j + 1])
        kept.append(keep)
        if fmt == "RLE":
            q = (1.0 - p_nonempty[j]) ** (2 ** int(run_bits))
            overflow.append(keep * (q / (1.0 - q)) if q < 1.0 else 0.0)
        else:
            overflow.append(0.0)
        parent = keep
    widths = _widths(ranks, sizes, [int(round(k)) for k in kept], coord_bits, offset_bits)
    return float(_total(ranks, sizes, fibers, kept, overflow, widths, run_bits, value_bits))
