"""Bit offsets of compressed DRAM regions (accelsim.sim.dram_lengths) against an encoder that
writes every entry of the code out, each tagged with the element it belongs to.

The oracle builds the code entry by entry the way each format is defined (a bitmap's presence
bit and value, a run-length code's overflow and value entries, CSR's row pointers), so a
boundary's offset is the bits of the entries tagged before it; the code's total is checked
against accelsim.sim.storage's exact size.
"""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.hw.schema import LevelFormat
from accelsim.sim import storage
from accelsim.sim.dram_lengths import BLOCK, BitOffsets


def _entries(mask: np.ndarray, shape: tuple, fmt: LevelFormat, b: int) -> list[tuple[float, int]]:
    """(position, bits) of every entry of the code: position i means 'lies before boundary
    i + 1' (element i's own data; the closing CSR pointer is at the last element)."""
    flat = mask.reshape(-1)
    n = flat.size
    out: list[tuple[float, int]] = []
    if fmt.format == "dense":
        out = [(i, b) for i in range(n)]
    elif fmt.format == "bitmap":
        for i in range(n):
            out.append((i, 1))
            if flat[i]:
                out.append((i, b))
    elif fmt.format == "coo":
        out = [(i, len(shape) * fmt.index_bits + b) for i in range(n) if flat[i]]
    elif fmt.format == "csr":
        row = n // shape[0]
        for i in range(n):
            if i % row == 0:
                out.append((i, fmt.index_bits))          # this row's pointer
            if flat[i]:
                out.append((i, fmt.index_bits + b))
        out.append((n - 1, fmt.index_bits))              # the closing pointer, after the last
    elif fmt.format == "run_length":
        longest = 2 ** fmt.run_bits - 1
        gap = 0
        for i in range(n):
            if not flat[i]:
                gap += 1
                continue
            while gap > longest:                         # a zero entry covering 2**run_bits
                out.append((i, fmt.run_bits + b))
                gap -= longest + 1
            out.append((i, fmt.run_bits + b))
            gap = 0
    return out


def _oracle(mask, shape, fmt, b, xs):
    entries = _entries(mask, shape, fmt, b)
    return np.array([sum(bits for pos, bits in entries if pos < x) for x in xs], dtype=np.int64)


FORMATS = [LevelFormat("dense"), LevelFormat("bitmap"), LevelFormat("coo", index_bits=7),
           LevelFormat("csr", index_bits=5), LevelFormat("run_length", run_bits=2),
           LevelFormat("run_length", run_bits=4)]


def _case(seed: int):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 6, size=int(rng.integers(1, 4))))
    if rng.random() < 0.3:                       # long enough to span several blocks
        shape = (int(rng.integers(1, 4)), int(rng.integers(BLOCK, 3 * BLOCK)))
    density = float(rng.choice([0.0, 1.0, 0.05, 0.5, float(rng.random())]))
    mask = rng.random(shape) < density
    return mask, shape, int(rng.choice([4, 8, 16]))


def _check(seed: int) -> None:
    mask, shape, b = _case(seed)
    n = mask.size
    xs = np.unique(np.concatenate(([0, n], np.random.default_rng(seed).integers(0, n + 1, 12))))
    for fmt in FORMATS:
        got = BitOffsets(mask, shape, fmt, b)
        want = _oracle(mask, shape, fmt, b, xs)
        np.testing.assert_array_equal(got.at(xs), want, err_msg=f"seed {seed} {fmt.format}")
        assert got.total_bits == storage.format_bits(mask, fmt.format, b, fmt.run_bits,
                                                     fmt.index_bits), (seed, fmt.format)


@pytest.mark.parametrize("seed", range(12))
def test_offsets_equal_the_encoder(seed):
    _check(seed)


@pytest.mark.slow
def test_offsets_equal_the_encoder_many_seeds():
    for seed in range(12, 312):
        _check(seed)


def test_hand_counted_run_length():
    # run_bits 2 (longest run 3), 8-bit values: 0 0 0 0 0 1 | 0 1 1 -> gap 5 before element 5:
    # one overflow entry (covers 4) then the value entry (run 1): 2 entries of 10 bits at
    # element 5; element 7: 1 entry; element 8: 1 entry. Trailing zeros cost nothing.
    mask = np.array([0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0], dtype=bool)
    off = BitOffsets(mask, mask.shape, LevelFormat("run_length", run_bits=2), 8)
    np.testing.assert_array_equal(off.at(np.array([0, 5, 6, 7, 8, 9, 11])),
                                  [0, 0, 20, 20, 30, 40, 40])


def test_hand_counted_bitmap_and_csr():
    mask = np.array([[1, 0, 0], [0, 1, 1]], dtype=bool)
    bm = BitOffsets(mask, (2, 3), LevelFormat("bitmap"), 8)
    np.testing.assert_array_equal(bm.at(np.array([0, 1, 3, 6])), [0, 9, 11, 30])
    csr = BitOffsets(mask, (2, 3), LevelFormat("csr", index_bits=4), 8)
    # row pointer 4 + (4 + 8) for element 0; row 1's pointer before element 3; closing pointer
    np.testing.assert_array_equal(csr.at(np.array([0, 1, 3, 4, 6])), [0, 16, 16, 20, 48])


def test_ranked_spreads_the_exact_size_evenly():
    rng = np.random.default_rng(3)
    mask = rng.random((4, 6, 5)) < 0.3
    fmt = LevelFormat("ranked", ranks=("UOP", "CP", "B"))
    off = BitOffsets(mask, mask.shape, fmt, 8)
    total = storage.tensor_bits(mask, fmt, 8)
    assert off.total_bits == total
    assert off.at(np.array([60]))[0] == round(60 * total / mask.size)


def test_boundaries_outside_the_region_are_refused():
    off = BitOffsets(np.ones(5, dtype=bool), (5,), LevelFormat("bitmap"), 8)
    with pytest.raises(ValueError):
        off.at(np.array([6]))
    with pytest.raises(ValueError):
        BitOffsets(np.ones(5, dtype=bool), (6,), LevelFormat("bitmap"), 8)


# ---- cutting ranges to the needed elements ---------------------------------------------------
from accelsim.sim.dram_lengths import cut_to_runs, runs_of  # noqa: E402


def _check_cut(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    needed = rng.random(n) < float(rng.choice([0.0, 1.0, 0.2, 0.7]))
    k = int(rng.integers(0, 30))
    starts = rng.integers(0, n, k)
    lengths = np.minimum(rng.integers(0, 40, k), n - starts)
    got_s, got_n, got_src = cut_to_runs(starts, lengths, *runs_of(needed))
    want = []          # element by element: maximal runs of needed elements inside each range
    for i, (s, m) in enumerate(zip(starts, lengths)):
        x = s
        while x < s + m:
            if needed[x]:
                y = x
                while y < s + m and needed[y]:
                    y += 1
                want.append((x, y - x, i))
                x = y
            else:
                x += 1
    assert list(zip(got_s.tolist(), got_n.tolist(), got_src.tolist())) == want, seed


@pytest.mark.parametrize("seed", range(15))
def test_cut_to_runs_equals_an_element_walk(seed):
    _check_cut(seed)


@pytest.mark.slow
def test_cut_to_runs_equals_an_element_walk_many_seeds():
    for seed in range(15, 315):
        _check_cut(seed)


def test_holes_of_a_tile_major_order_are_zeros_of_the_code():
    # 5 stored elements plus 3 holes (a tile-major edge block): the holes cost what zeros cost
    linear = np.array([1, 0, 1, 0, 0, 0, 1, 1], dtype=bool)     # holes at positions 3, 4, 5
    off = BitOffsets(linear, (5,), LevelFormat("bitmap"), 8)
    np.testing.assert_array_equal(off.at(np.array([0, 3, 6, 8])), [0, 19, 22, 40])
    with pytest.raises(ValueError):
        BitOffsets(linear, (5,), LevelFormat("ranked", ranks=("B",)), 8)
    with pytest.raises(ValueError):
        BitOffsets(linear[:4], (5,), LevelFormat("bitmap"), 8)


def _enumerated_order(region, mask: np.ndarray) -> np.ndarray:
    """A region's linear order built by walking its storage: the blocks one after another
    (``block_order``, outermost first; the other coordinates have one block), inside each
    block its positions row-major in ``perm`` over the block's extents; a position maps to the
    element ``block * T + inner - lo`` (row-major: ``inner``), a hole when outside the sizes."""
    import itertools

    nc = len(region.sizes)
    perm = region.perm if region.perm is not None else tuple(range(nc))
    tile = region.tile or (0,) * nc
    ext = [t if t else s for t, s in zip(tile, region.sizes)]
    nblocks = [-(-(l + s) // t) if t else 1 for t, s, l in zip(tile, region.sizes, region.lo)]
    out = []
    for outer in itertools.product(*(range(nblocks[c]) for c in region.block_order)):
        block = [0] * nc
        for c, b in zip(region.block_order, outer):
            block[c] = b
        for inner in itertools.product(*(range(ext[c]) for c in perm)):
            coord = [0] * nc
            for c, i in zip(perm, inner):
                coord[c] = block[c] * tile[c] + i - region.lo[c] if tile[c] else i
            inside = all(0 <= x < s for x, s in zip(coord, region.sizes))
            out.append(bool(mask[tuple(coord)]) if inside else False)
    return np.array(out, dtype=bool)


@pytest.mark.parametrize("seed", range(12))
def test_linear_order_equals_a_walk_of_the_storage(seed):
    from accelsim.sim.dram_lengths import linear_order
    from accelsim.sim.dram_stream import Region

    rng = np.random.default_rng(seed)
    nc = int(rng.integers(1, 6))
    sizes = tuple(int(v) for v in rng.integers(1, 6, nc))
    lo = tuple(int(v) for v in rng.integers(0, 3, nc))
    perm = tuple(int(v) for v in rng.permutation(nc))
    mask = rng.random(sizes) < [0.0, 0.4, 1.0][seed % 3]
    row_major = Region("I", 0, sizes, lo, 1.0, perm=perm)
    np.testing.assert_array_equal(linear_order(row_major, mask), _enumerated_order(row_major, mask))
    tile = tuple(int(rng.integers(1, 4)) if rng.random() < 0.7 else 0 for _ in range(nc))
    blocked = tuple(c for c in rng.permutation(nc) if tile[c])
    tiled = Region("I", 0, sizes, lo, 1.0, perm=perm, tile=tile, block_order=blocked)
    np.testing.assert_array_equal(linear_order(tiled, mask), _enumerated_order(tiled, mask))


# ---- byte ranges of element runs in one kernel (accelsim.sim.dram_stream._scaled_bytes) ----
def _bytes_reference(starts, lens, codes, base, eb, pb, codes_of):
    """Per run, its byte range from first principles: a run of a code with a real code
    covers the whole bytes holding the bits between its boundaries (bits from the entry-by-
    entry encoder); else round-half-even of the element bytes (Python's round), a psum
    spill its own length."""
    out = []
    for x, n, c in zip(starts.tolist(), lens.tolist(), codes.tolist()):
        if c in codes_of:
            mask, shape, fmt, b = codes_of[c]
            lo, hi = _oracle(mask, shape, fmt, b, [x, x + n])
            out.append((base[c] + lo // 8, -(-hi // 8) - lo // 8, 0))
            continue
        b0 = round(x * eb[c])
        b1 = b0 + round(n * pb[c]) if c == 2 else round((x + n) * eb[c])
        out.append((base[c] + b0, b1 - b0, int(c == 3)))
    return out


def _bytes_check(seed: int) -> None:
    from accelsim.sim.dram_stream import _scaled_bytes

    rng = np.random.default_rng(seed)
    codes_of, offsets = {}, {}
    for code in (0, 1):                  # W_READ, I_READ: a real code (or the mean ratio)
        if rng.random() < 0.8:
            mask, shape, b = _case(seed * 2 + code)
            fmt = FORMATS[int(rng.integers(1, len(FORMATS)))]
            codes_of[code] = (mask, shape, fmt, b)
            offsets[code] = BitOffsets(mask, shape, fmt, b)
    k = int(rng.integers(1, 40))
    codes = rng.integers(0, 4, k).astype(np.int64)
    starts = np.empty(k, dtype=np.int64)
    lens = np.empty(k, dtype=np.int64)
    for i, c in enumerate(codes):
        size = codes_of[c][0].size if c in codes_of else 1000
        starts[i] = rng.integers(0, size + 1)
        lens[i] = rng.integers(0, size - starts[i] + 1)
    base = np.array([0, 1 << 20, 2 << 20, 2 << 20], dtype=np.int64)
    eb = np.array([float(rng.choice([0.5, 1.25, 2.5, 1 / 3, 0.7])) for _ in range(4)])
    pb = eb.copy()
    pb[2] = float(rng.choice([2.5, 3.0, 0.375]))
    s, n, w = _scaled_bytes(starts, lens, codes, base, eb, pb, offsets)
    assert list(zip(s.tolist(), n.tolist(), w.tolist())) == _bytes_reference(
        starts, lens, codes, base, eb, pb, codes_of), seed


@pytest.mark.parametrize("seed", range(12))
def test_run_bytes_equal_the_encoder_and_rounding(seed):
    _bytes_check(seed)


@pytest.mark.slow
def test_run_bytes_equal_the_encoder_and_rounding_many_seeds():
    for seed in range(12, 312):
        _bytes_check(seed)


def test_run_bytes_by_hand():
    from accelsim.sim.dram_stream import _scaled_bytes

    # W: bitmap of 1 0 1 1 (8-bit values): boundaries 0, 1, 2, 3, 4 at bits 0, 9, 10, 19, 28;
    # the run [1, 3) spans bits [9, 19): bytes 1..2 (floor 9/8 = 1, ceil 19/8 = 3): 2 bytes.
    # O read (psum spill) at 2.5 bytes/element, 3 psums of 2.5 bytes: start rint(1 * 2.5) =
    # 2 (half to even), 7.5 bytes -> rint 8. An O write of [1, 2) at 2.5: rint 2.5 = 2, rint 5.0.
    mask = np.array([1, 0, 1, 1], dtype=bool)
    offsets = {0: BitOffsets(mask, (4,), LevelFormat("bitmap"), 8)}
    base = np.array([100, 200, 300, 300], dtype=np.int64)
    eb = np.array([1.0, 1.0, 2.5, 2.5])
    pb = eb.copy()
    s, n, w = _scaled_bytes(np.array([1, 1, 1]), np.array([2, 3, 1]), np.array([0, 2, 3]),
                            base, eb, pb, offsets)
    assert s.tolist() == [101, 302, 302]
    assert n.tolist() == [2, 8, 3]
    assert w.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="boundaries"):
        _scaled_bytes(np.array([3]), np.array([2]), np.array([0]), base, eb, pb, offsets)


def test_run_length_ranks_that_overflow_fall_back_to_the_scan():
    # run_bits 1: 140,000 zeros before a non-zero are 70,000 overflow entries; the next
    # element shares its block (140,000 % 64 = 32), so its rank in the block does not fit
    # 16 bits: offsets come from the scan, still the encoder's
    mask = np.zeros(140_010, dtype=bool)
    mask[[140_000, 140_001, 140_005]] = True
    fmt = LevelFormat("run_length", run_bits=1)
    off = BitOffsets(mask, mask.shape, fmt, 8)
    assert off.terms() is None
    xs = np.array([0, 64, 140_000, 140_001, 140_002, 140_003, 140_006, 140_010])
    np.testing.assert_array_equal(off.at(xs), _oracle(mask, mask.shape, fmt, 8, xs))
    # a short run: ranks fit, offsets from the ranks
    small = BitOffsets(mask[139_000:], (1010,), fmt, 8)
    assert small.terms() is not None
    xs = np.arange(0, 1011, 7)
    np.testing.assert_array_equal(small.at(xs), _oracle(mask[139_000:], (1010,), fmt, 8, xs))
