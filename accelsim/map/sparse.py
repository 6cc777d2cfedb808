"""Work of every PE in every step of a mapping, from the real zero masks, on packed words.

A step is one iteration of the temporal loops at the shared levels; everything a PE's own levels
iterate inside is that PE's *block*, a box of the iteration space (each dimension a contiguous
range, the loops below the fan-out being the lowest digits of every index). For each
(step, PE row, PE column) the kernel counts the MAC slots the PE must issue: all of them (dense),
those with a non-zero activation, a non-zero weight, or both non-zero.

Masks are packed once per batch into 64-bit words: for every output pixel the im2col row of its
receptive field (padding as zeros, or as present elements when the design issues the MAC slots
of padding positions: ``sparsity.skip_padding`` false) and for every filter its weights, both
with the (C, R, S) bits in the order that makes the block's reduction range contiguous
(dimensions the block spans fully innermost, those it fixes outermost). A block's work is then,
for each (sample, group, filter, pixel) of the block, a popcount of ``row & filter`` over its bit
segments: one when the block's reduction box is contiguous in that order, one per value of the
outer partial ranges otherwise. When a block has many output rows and a small reduction box
(row-stationary PEs, say), the same count is cheaper factored: the sum over its (c, r, s) box of
(non-zero activations over its pixels, from 2-D prefix sums) x (non-zero weights over its
filters, from prefix sums); the cheaper of the two is used per layer.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from accelsim.map.mapping import Mapping
from accelsim.map.nest import DIMS, LoopNest
from accelsim.numba_config import JIT
from accelsim.sim.kernels.bitops import popcount64

MODE_DENSE, MODE_ACT, MODE_WEIGHT, MODE_BOTH = 0, 1, 2, 3
_N, _G, _K, _C, _P, _Q, _R, _S = range(8)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_CRS = {_C: 0, _R: 1, _S: 2}


@njit(**JIT)
def _segment(arow, wrow, start, length, use_a, use_w):
    """Set bits of ``a & w`` (or of one of them) over bits ``[start, start + length)``."""
    total = 0
    end = start + length
    word = start >> 6
    while word * 64 < end:
        lo = max(start - word * 64, 0)
        hi = min(end - word * 64, 64)
        x = _ALL
        if use_a:
            x &= arow[word]
        if use_w:
            x &= wrow[word]
        if lo > 0:
            x &= _ALL << np.uint64(lo)
        if hi < 64:
            x &= (np.uint64(1) << np.uint64(hi)) - np.uint64(1)
        total += popcount64(x)
        word += 1
    return total


@njit(**JIT)
def _advance(idx, val, coord, dim, factor, stride, coord_of, place):
    """Odometer over the outer and spatial loops (innermost first): the next block's dimension
    bases and (step, y, x); False after the last block."""
    l = dim.shape[0] - 1
    while l >= 0:
        idx[l] += 1
        val[dim[l]] += stride[l]
        coord[coord_of[l]] += place[l]
        if idx[l] < factor[l]:
            return True
        idx[l] = 0
        val[dim[l]] -= stride[l] * factor[l]
        coord[coord_of[l]] -= place[l] * factor[l]
        l -= 1
    return False


@njit(**JIT)
def _clip(val, ext, bounds, d):
    """End of dimension ``d``'s range in the block at ``val`` (a remainder tile stops at the
    bound)."""
    return min(val[d] + ext[d], bounds[d])


@njit(**JIT)
def _blocks_factored(dim, factor, stride, coord_of, place, n_outer, ny, nx, ext, aint, wcum,
                     use_a, use_w, bounds):
    """Same counts, factored over the reduction: a block's work is the sum over its
    (c, r, s) box of (non-zero activations in its (n, p, q) box, from 2-D prefix sums ``aint``)
    x (non-zero weights in its k range, from prefix sums ``wcum``). Blocks are clipped to
    ``bounds`` (remainder tiles)."""
    work = np.zeros((n_outer, ny, nx), dtype=np.int64)
    idx = np.zeros(max(dim.shape[0], 1), dtype=np.int64)
    val = np.zeros(8, dtype=np.int64)
    coord = np.zeros(3, dtype=np.int64)
    while True:
        count = 0
        p0, q0 = val[_P], val[_Q]
        p1, q1 = _clip(val, ext, bounds, _P), _clip(val, ext, bounds, _Q)
        k0, k1 = val[_K], _clip(val, ext, bounds, _K)
        n1 = _clip(val, ext, bounds, _N)
        pixels = max(n1 - val[_N], 0) * max(p1 - p0, 0) * max(q1 - q0, 0)
        if k1 <= k0 or pixels == 0:
            count = 0
        else:
            for g in range(val[_G], _clip(val, ext, bounds, _G)):
                for c in range(val[_C], _clip(val, ext, bounds, _C)):
                    for r in range(val[_R], _clip(val, ext, bounds, _R)):
                        for s_ in range(val[_S], _clip(val, ext, bounds, _S)):
                            a = pixels
                            if use_a:
                                a = 0
                                for n in range(val[_N], n1):
                                    a += (aint[n, g, c, r, s_, p1, q1] - aint[n, g, c, r, s_, p0, q1]
                                          - aint[n, g, c, r, s_, p1, q0] + aint[n, g, c, r, s_, p0, q0])
                            w = k1 - k0
                            if use_w:
                                w = wcum[g, k1, c, r, s_] - wcum[g, k0, c, r, s_]
                            count += a * w
        work[coord[0], coord[1], coord[2]] += count
        if not _advance(idx, val, coord, dim, factor, stride, coord_of, place):
            break
    return work


@njit(**JIT)
def _blocks(dim, factor, stride, coord_of, place, n_outer, ny, nx, ext, apack, wpack,
            order, sizes, use_a, use_w, bounds):
    """``work[step, y, x]`` over the blocks enumerated by the outer and spatial loops.

    Bits of a receptive field are packed in ``order`` (a permutation of C, R, S, outermost
    first, with ``sizes`` their full extents): the bit of ``(x0, x1, x2)`` in that order is
    ``(x0 * sizes[1] + x1) * sizes[2] + x2``. A block's range of the innermost dimension is
    one segment for each value of the outer two (merged when the inner ranges are full).
    Blocks are clipped to ``bounds`` (remainder tiles).
    """
    work = np.zeros((n_outer, ny, nx), dtype=np.int64)
    idx = np.zeros(max(dim.shape[0], 1), dtype=np.int64)
    val = np.zeros(8, dtype=np.int64)
    coord = np.zeros(3, dtype=np.int64)
    cut = np.zeros(8, dtype=np.int64)
    s1, s2 = sizes[1], sizes[2]
    while True:
        for d in range(8):
            cut[d] = max(_clip(val, ext, bounds, d) - val[d], 0)
        if not use_a and not use_w:
            count = cut[_N] * cut[_G] * cut[_K] * cut[_C] * cut[_P] * cut[_Q] * cut[_R] * cut[_S]
        else:
            count = 0
            e0, e1, e2 = cut[order[0]], cut[order[1]], cut[order[2]]
            # merge: a full innermost range joins the next one out, and so on
            seg_len = e2
            outer1 = e1
            outer0 = e0
            if e2 == s2:
                seg_len = e1 * s2
                outer1 = 1
                if e1 == s1:
                    seg_len = e0 * s1 * s2
                    outer0 = 1
            if e0 * e1 * e2 == 0:
                outer0 = 0
            b0, b1, b2 = val[order[0]], val[order[1]], val[order[2]]
            for n in range(val[_N], val[_N] + cut[_N]):
                for g in range(val[_G], val[_G] + cut[_G]):
                    for k in range(val[_K], val[_K] + cut[_K]):
                        wrow = wpack[g, k]
                        for p in range(val[_P], val[_P] + cut[_P]):
                            for q in range(val[_Q], val[_Q] + cut[_Q]):
                                arow = apack[n, g, p, q]
                                for x0 in range(b0, b0 + outer0):
                                    for x1 in range(b1, b1 + outer1):
                                        count += _segment(arow, wrow, (x0 * s1 + x1) * s2 + b2,
                                                          seg_len, use_a, use_w)
        work[coord[0], coord[1], coord[2]] += count
        if not _advance(idx, val, coord, dim, factor, stride, coord_of, place):
            break
    return work


@njit(**JIT)
def _read64(row, bit):
    """The 64 bits of ``row`` from bit ``bit`` (zeros past its end)."""
    w = bit >> 6
    o = bit & 63
    if w >= row.shape[0]:
        return np.uint64(0)
    x = row[w] >> np.uint64(o)
    if o > 0 and w + 1 < row.shape[0]:
        x |= row[w + 1] << np.uint64(64 - o)
    return x


@njit(**JIT)
def _extract(row, starts, lengths, out):
    """Copy the bit ranges ``[starts[i], starts[i] + lengths[i])`` of ``row`` into ``out``,
    one after the other from bit 0 (``out`` zeroed first)."""
    out[:] = 0
    pos = 0
    for i in range(starts.shape[0]):
        off = 0
        while off < lengths[i]:
            n = min(64, lengths[i] - off)
            chunk = _read64(row, starts[i] + off)
            if n < 64:
                chunk &= (np.uint64(1) << np.uint64(n)) - np.uint64(1)
            dw = pos >> 6
            do = pos & 63
            out[dw] |= chunk << np.uint64(do)
            if do > 0 and do + n > 64:
                out[dw + 1] |= chunk >> np.uint64(64 - do)
            pos += n
            off += n


@njit(**JIT)
def _contributions(dim, factor, stride, coord_of, place, bound, d, ny, nx):
    """Per value ``v < bound`` of dimension ``d``: its flat ``(step, y, x)`` offset, the sum over
    the outer and spatial loops over ``d`` of their digit ``(v // stride) % factor`` times
    their place (the block coordinate is additive over dimensions)."""
    out = np.zeros(bound, dtype=np.int64)
    scale = np.array([ny * nx, nx, 1], dtype=np.int64)
    for v in range(bound):
        total = 0
        for l in range(dim.shape[0]):
            if dim[l] == d:
                total += ((v // stride[l]) % factor[l]) * place[l] * scale[coord_of[l]]
        out[v] = total
    return out


@njit(**JIT)
def _blocks_boxed(dim, factor, stride, coord_of, place, n_outer, ny, nx, ext, apack, wpack,
                  order, sizes, use_a, use_w, bounds):
    """The counts of :func:`_blocks`, grouped by reduction box: every block whose (C, R, S)
    ranges are one box shares that box's bits, so each activation row and weight row is cut
    to the box once (compact, word-aligned), every (n, g, p, q) x k pair costs a plain AND +
    popcount over the compact words, and its count lands on the block coordinate, which is a
    sum of per-dimension offsets (:func:`_contributions`)."""
    work = np.zeros(n_outer * ny * nx, dtype=np.int64)
    contrib = [_contributions(dim, factor, stride, coord_of, place, bounds[d], d, ny, nx)
               for d in range(8)]
    nb, gb, kb, pb, qb = bounds[0], bounds[1], bounds[2], bounds[4], bounds[5]
    s1, s2 = sizes[1], sizes[2]
    o0, o1, o2 = order[0], order[1], order[2]
    n0 = -(-bounds[o0] // ext[o0])
    n1 = -(-bounds[o1] // ext[o1])
    n2 = -(-bounds[o2] // ext[o2])
    max_words = (sizes[0] * s1 * s2 + 63) // 64 + 1
    abox = np.zeros((nb, gb, pb, qb, max_words), dtype=np.uint64)
    wbox = np.zeros((gb, kb, max_words), dtype=np.uint64)
    wcount = np.zeros((gb, kb), dtype=np.int64)
    starts = np.zeros(ext[o0] * ext[o1] + 1, dtype=np.int64)
    lengths = np.zeros(ext[o0] * ext[o1] + 1, dtype=np.int64)
    for i0 in range(n0):
        b0 = i0 * ext[o0]
        e0 = min(b0 + ext[o0], bounds[o0]) - b0
        for i1 in range(n1):
            b1 = i1 * ext[o1]
            e1 = min(b1 + ext[o1], bounds[o1]) - b1
            for i2 in range(n2):
                b2 = i2 * ext[o2]
                e2 = min(b2 + ext[o2], bounds[o2]) - b2
                # the box's bit ranges: one per (x0, x1), the innermost range contiguous
                nseg = 0
                for x0 in range(b0, b0 + e0):
                    for x1 in range(b1, b1 + e1):
                        start = (x0 * s1 + x1) * s2 + b2
                        if nseg > 0 and starts[nseg - 1] + lengths[nseg - 1] == start:
                            lengths[nseg - 1] += e2     # adjacent: merge
                        else:
                            starts[nseg] = start
                            lengths[nseg] = e2
                            nseg += 1
                bits = e0 * e1 * e2
                words = (bits + 63) // 64
                offset = contrib[o0][b0] + contrib[o1][b1] + contrib[o2][b2]
                if use_w:
                    for g in range(gb):
                        for k in range(kb):
                            _extract(wpack[g, k], starts[:nseg], lengths[:nseg], wbox[g, k, :words])
                if use_a:
                    for n in range(nb):
                        for g in range(gb):
                            for p in range(pb):
                                for q in range(qb):
                                    _extract(apack[n, g, p, q], starts[:nseg], lengths[:nseg],
                                             abox[n, g, p, q, :words])
                ck = contrib[2]
                if use_w and not use_a:
                    for g in range(gb):
                        for k in range(kb):
                            c = 0
                            for w in range(words):
                                c += popcount64(wbox[g, k, w])
                            wcount[g, k] = c
                for n in range(nb):
                    for g in range(gb):
                        wg = wbox[g]
                        for p in range(pb):
                            for q in range(qb):
                                base = (offset + contrib[0][n] + contrib[1][g] + contrib[4][p]
                                        + contrib[5][q])
                                arow = abox[n, g, p, q]
                                if use_a and use_w:
                                    k4 = kb - kb % 4
                                    for k in range(0, k4, 4):
                                        c0 = 0
                                        c1 = 0
                                        c2 = 0
                                        c3 = 0
                                        for w in range(words):
                                            x = arow[w]
                                            c0 += popcount64(x & wg[k, w])
                                            c1 += popcount64(x & wg[k + 1, w])
                                            c2 += popcount64(x & wg[k + 2, w])
                                            c3 += popcount64(x & wg[k + 3, w])
                                        work[base + ck[k]] += c0
                                        work[base + ck[k + 1]] += c1
                                        work[base + ck[k + 2]] += c2
                                        work[base + ck[k + 3]] += c3
                                    for k in range(k4, kb):
                                        c0 = 0
                                        for w in range(words):
                                            c0 += popcount64(arow[w] & wg[k, w])
                                        work[base + ck[k]] += c0
                                elif use_a:
                                    acount = 0
                                    for w in range(words):
                                        acount += popcount64(arow[w])
                                    for k in range(kb):
                                        work[base + ck[k]] += acount
                                elif use_w:
                                    for k in range(kb):
                                        work[base + ck[k]] += wcount[g, k]
                                else:
                                    for k in range(kb):
                                        work[base + ck[k]] += bits
    return work.reshape((n_outer, ny, nx))


def _segments(ext: np.ndarray, order: tuple[int, int, int], nest: LoopNest) -> int:
    """Segments (times their words) one output row of a block costs in ``order``."""
    e = [int(ext[d]) for d in order]
    full = [nest.bound(DIMS[d]) for d in order]
    if e[2] == full[2] and e[1] == full[1]:
        return max(1, (e[0] * full[1] * full[2] + 63) // 64)
    if e[2] == full[2]:
        return e[0] * max(1, (e[1] * full[2] + 63) // 64)
    return e[0] * e[1] * max(1, (e[2] + 63) // 64)


def reduction_order(ext: np.ndarray, nest: LoopNest) -> tuple[int, int, int]:
    """C, R, S ordered for the fewest segments: fixed (one value) first, then partial ranges,
    then full ranges innermost."""
    full = {d: nest.bound(DIMS[d]) for d in (_C, _R, _S)}
    def rank(d):
        return (0 if ext[d] == 1 else 2 if ext[d] == full[d] else 1, d)
    return tuple(sorted((_C, _R, _S), key=rank))


def _words(bits: int) -> int:
    return (bits + 63) // 64


def im2col(act: np.ndarray, nest: LoopNest, pads: tuple[int, int],
           pad_value: bool = False) -> np.ndarray:
    """``(N, G, P, Q, C, R, S)`` booleans: each output pixel's receptive field (padding:
    ``pad_value``)."""
    _, g, _, cg, p, q, r, s = nest.bounds
    act = np.asarray(act, dtype=bool)
    padded = np.pad(act, ((0, 0), (0, 0), (pads[0], pads[0]), (pads[1], pads[1])),
                    constant_values=pad_value)
    hh = (p - 1) * nest.stride_h + 1
    ww = (q - 1) * nest.stride_w + 1
    cols = np.zeros((act.shape[0], act.shape[1], r, s, p, q), dtype=bool)
    for i in range(r):
        for j in range(s):
            h0, w0 = i * nest.dil_h, j * nest.dil_w
            window = padded[:, :, h0:h0 + hh:nest.stride_h, w0:w0 + ww:nest.stride_w]
            cols[:, :, i, j, :window.shape[2], :window.shape[3]] = window
    return cols.reshape(act.shape[0], g, cg, r, s, p, q).transpose(0, 1, 5, 6, 2, 3, 4)


def pack_im2col(act: np.ndarray, nest: LoopNest, pads: tuple[int, int],
                order: tuple[int, int, int] = (_C, _R, _S), pad_value: bool = False) -> np.ndarray:
    """``(N, G, P, Q, words)``: each output pixel's receptive field, its (C, R, S) bits
    packed in ``order`` (outermost first; padding positions are ``pad_value``)."""
    n_, g, _, cg, p, q, r, s = nest.bounds
    cols = im2col(act, nest, pads, pad_value)
    axes = [4 + _CRS[d] for d in order]            # C, R, S are axes 4, 5, 6
    cols = cols.transpose(0, 1, 2, 3, *axes)
    return _pack(cols.reshape(cols.shape[0], g, p, q, cg * r * s))


def act_prefix(act: np.ndarray, nest: LoopNest, pads: tuple[int, int],
               pad_value: bool = False) -> np.ndarray:
    """``(N, G, C, R, S, P+1, Q+1)`` 2-D prefix sums over the pixels of the im2col booleans."""
    cols = im2col(act, nest, pads, pad_value).transpose(0, 1, 4, 5, 6, 2, 3)
    out = np.zeros(cols.shape[:5] + (cols.shape[5] + 1, cols.shape[6] + 1), dtype=np.int64)
    out[..., 1:, 1:] = cols.cumsum(axis=5, dtype=np.int64).cumsum(axis=6)
    return out


def weight_prefix(wmask: np.ndarray, nest: LoopNest) -> np.ndarray:
    """``(G, K+1, C, R, S)`` prefix sums over the filters of the weight mask."""
    _, g, k, cg, _, _, r, s = nest.bounds
    w = np.asarray(wmask, dtype=bool).reshape(g, k, cg, r, s)
    out = np.zeros((g, k + 1, cg, r, s), dtype=np.int64)
    out[:, 1:] = w.cumsum(axis=1, dtype=np.int64)
    return out


def pack_weights(wmask: np.ndarray, nest: LoopNest,
                 order: tuple[int, int, int] = (_C, _R, _S)) -> np.ndarray:
    """``(G, K, words)``: each filter's (C, R, S) bits packed in ``order``."""
    _, g, k, cg, _, _, r, s = nest.bounds
    w = np.asarray(wmask, dtype=bool).reshape(g, k, cg, r, s)
    w = w.transpose(0, 1, *[2 + _CRS[d] for d in order])
    return _pack(w.reshape(g, k, cg * r * s))


def _pack(bits: np.ndarray) -> np.ndarray:
    width = bits.shape[-1]
    padded = np.zeros(bits.shape[:-1] + (_words(width) * 64,), dtype=bool)
    padded[..., :width] = bits
    packed = np.packbits(padded, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view(np.uint64)


def step_work(nest: LoopNest, mapping: Mapping, fanout_level: int, act: np.ndarray,
              wmask: np.ndarray, pads: tuple[int, int], mode: int,
              method: str = "auto", pad_issued: bool = False) -> np.ndarray:
    """Issued MAC slots ``(steps, Y, X)`` of one batch of ``act`` ``(N, C, H, W)`` masks.

    ``fanout_level``: the innermost level whose spatial loops spread over the PE array (spatial
    loops at it and above index PEs); temporal loops at it and above are steps, loops at levels
    below it (and the MAC lanes) are PE blocks. ``method``: ``packed`` (popcounts over packed
    segments, block by block), ``boxed`` (the same popcounts grouped by reduction box over
    compacted rows), ``factored`` (prefix sums over the reduction box) or ``auto`` (boxed or
    factored, the cheaper).
    ``pad_issued``: activation skipping issues the slots of padding positions (they count as
    present activations; ``sparsity.skip_padding`` false); otherwise padding is a skipped zero.
    A mapping with remainder tiles runs its padded loops: blocks are clipped to the bounds
    (a block past a bound has no work, in every mode).
    """
    if method not in ("auto", "packed", "boxed", "factored"):
        raise ValueError(f"method: expected auto, packed, boxed or factored, got {method!r}")
    flat = mapping.flat()
    radix: dict = {}
    strides = [0] * len(flat)
    for i in range(len(flat) - 1, -1, -1):
        d = DIMS.index(flat[i][1].dim)
        strides[i] = radix.get(d, 1)
        radix[d] = strides[i] * flat[i][1].factor
    ext = np.ones(8, dtype=np.int64)
    dim, factor, stride, coord_of, place = [], [], [], [], []
    coord_size = [1, 1, 1]
    outer = []
    for i, (lv, loop) in enumerate(flat):
        d = DIMS.index(loop.dim)
        if lv > fanout_level:
            ext[d] *= loop.factor
            continue
        outer.append(i)
    for i in reversed(outer):   # places: the last loop of each coordinate is its lowest digit
        lv, loop = flat[i]
        code = 0 if not loop.spatial else (2 if loop.axis == "X" else 1)
        place.append(coord_size[code])
        coord_size[code] *= loop.factor
        coord_of.append(code)
        dim.append(DIMS.index(loop.dim))
        factor.append(loop.factor)
        stride.append(strides[i])
    arrays = [np.array(list(reversed(v)), dtype=np.int64) for v in (dim, factor, stride, coord_of, place)]
    bounds = np.array(nest.bounds, dtype=np.int64)
    use_a = mode in (MODE_ACT, MODE_BOTH)
    use_w = mode in (MODE_WEIGHT, MODE_BOTH)
    n, g, k, _, p, q, _, _ = nest.bounds
    if use_a or use_w:
        # two exact ways to count a block: popcounts over its packed reduction segments
        # (~ one word op per segment per output row) or the factored sum over its reduction box
        # (one product per reduction element); take the cheaper
        rows = int(ext[_N] * ext[_G] * ext[_K] * ext[_P] * ext[_Q])
        order = reduction_order(np.minimum(ext, bounds), nest)
        segment_ops = rows * _segments(np.minimum(ext, bounds), order, nest)
        box_ops = int(ext[_G] * ext[_C] * ext[_R] * ext[_S]) * (int(ext[_N]) if use_a else 1)
        if method == "factored" or (method == "auto" and box_ops < segment_ops):
            aint = (act_prefix(act, nest, pads, pad_issued) if use_a
                    else np.zeros((1,) * 7, np.int64))
            wcum = weight_prefix(wmask, nest) if use_w else np.zeros((1,) * 5, np.int64)
            return _blocks_factored(*arrays, coord_size[0], coord_size[1], coord_size[2], ext,
                                    aint, wcum, use_a, use_w, bounds)
    order = reduction_order(np.minimum(ext, bounds), nest)
    sizes = np.array([nest.bound(DIMS[d]) for d in order], dtype=np.int64)
    # an operand the mode ignores is never read: a one-word placeholder row per index
    apack = (pack_im2col(act, nest, pads, order, pad_issued) if use_a
             else np.zeros((n, g, p, q, 1), np.uint64))
    wpack = pack_weights(wmask, nest, order) if use_w else np.zeros((g, k, 1), np.uint64)
    blocks = _blocks if method == "packed" or not (use_a or use_w) else _blocks_boxed
    return blocks(*arrays, coord_size[0], coord_size[1], coord_size[2], ext, apack, wpack,
                  np.array(order, dtype=np.int64), sizes, use_a, use_w, bounds)


def effectual_pairs(nest: LoopNest, act: np.ndarray, wmask: np.ndarray,
                    pads: tuple[int, int]) -> int:
    """MAC slots with both operands non-zero over the whole layer (any mapping gives the same
    total; a padding position is a zero, so its slots are never effectual): per group and
    reduction index (c, r, s), non-zero activations over all pixels x non-zero weights over all
    filters."""
    _, g, k, cg, p, q, r, s = nest.bounds
    act = np.asarray(act, dtype=bool)
    padded = np.pad(act, ((0, 0), (0, 0), (pads[0], pads[0]), (pads[1], pads[1])))
    hh = (p - 1) * nest.stride_h + 1
    ww = (q - 1) * nest.stride_w + 1
    a = np.zeros((act.shape[1], r, s), dtype=np.int64)    # (C, R, S): im2col column sums
    for i in range(r):
        for j in range(s):   # tap (i, j) reads one strided window of every channel
            h0, w0 = i * nest.dil_h, j * nest.dil_w
            window = padded[:, :, h0:h0 + hh:nest.stride_h, w0:w0 + ww:nest.stride_w]
            a[:, i, j] = window.sum(axis=(0, 2, 3), dtype=np.int64)
    w = np.asarray(wmask, dtype=bool).reshape(g, k, cg, r, s).sum(axis=1, dtype=np.int64)
    return int((a.reshape(g, cg, r, s) * w).sum())
