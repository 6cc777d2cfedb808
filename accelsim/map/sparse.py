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

The popcount method (``boxed``) writes the work in its own order: the outer and spatial loops,
sorted by their weight in the flat ``(step, y, x)`` index, form a mixed radix that an odometer
visits in order. Each operand row is cut to every reduction box once, straight from the mask
(``[box][row][word]``, a box's bits laid out on its extents). When every block is one row x one
filter the operands sit on the mapping's padded index spaces (zeros past a bound) and the
offsets of the innermost loops are tabulated, so a chunk of outputs is a plain gather + AND +
popcount. What depends on (nest, mapping, fan-out level) alone, the dense work and a layer's
weight side are cached (bounded).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from accelsim.map.mapping import Mapping
from accelsim.map.nest import DIMS, LoopNest
from accelsim.numba_config import JIT
from accelsim.sim.kernels import schedule as sch
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
def _blocks_ordered(sdim, sfactor, sstride, ext, bounds, order, nbx, mode, wpb, abits, wbits,
                    acnt, wcnt, total):
    """``work`` (flat, ``total`` = steps x Y x X) written in its own order.

    ``sdim/sfactor/sstride``: the outer and spatial loops (factor > 1) sorted by their weight
    in the flat ``(step, y, x)`` index, heaviest first: an odometer over them visits the flat
    index 0, 1, 2, ... (a mixed radix). The innermost loop runs as a chunk of consecutive
    outputs whose block bases move linearly (row, filter row, reduction box). A block's count,
    by ``mode``: dense (product of its clipped ranges), act (``acnt``: set bits per box and
    (n, g, p, q) row, times its filters), weight (``wcnt``: per box and (g, k), times its
    pixels), both (AND + popcount of the box's words ``abits`` x ``wbits``, laid out
    ``[box][row][word]``). Boxes: ``b = (i0 * nbx[1] + i1) * nbx[2] + i2`` with
    ``i = val[order[m]] // ext[order[m]]``.
    """
    out = np.zeros(total, dtype=np.int64)
    nn, gg, kk, pp, qq = bounds[_N], bounds[_G], bounds[_K], bounds[_P], bounds[_Q]
    rows = nn * gg * pp * qq
    gk = gg * kk
    rowmul = np.zeros(8, dtype=np.int64)
    rowmul[_N] = gg * pp * qq
    rowmul[_G] = pp * qq
    rowmul[_P] = qq
    rowmul[_Q] = 1
    boxmul = np.zeros(8, dtype=np.int64)
    boxmul[order[0]] = nbx[1] * nbx[2]
    boxmul[order[1]] = nbx[2]
    boxmul[order[2]] = 1
    L = sdim.shape[0]
    d_in, f_in, st = sdim[L - 1], sfactor[L - 1], sstride[L - 1]
    idx = np.zeros(L, dtype=np.int64)
    val = np.zeros(8, dtype=np.int64)
    cut = np.zeros(8, dtype=np.int64)
    db = (st // ext[d_in]) * boxmul[d_in] if boxmul[d_in] > 0 else 0
    dr = st * rowmul[d_in]
    dw = st * kk if d_in == _G else (st if d_in == _K else 0)
    o = 0
    while True:
        ok = True
        for d in range(8):
            if d != d_in and val[d] >= bounds[d]:
                ok = False
            cut[d] = min(ext[d], bounds[d] - val[d])
        if ok and val[d_in] < bounds[d_in]:
            jmax = min(f_in, (bounds[d_in] - val[d_in] + st - 1) // st) if st > 0 else f_in
            b0 = 0
            for m in range(3):
                b0 += (val[order[m]] // ext[order[m]]) * boxmul[order[m]]
            r0 = ((val[_N] * gg + val[_G]) * pp + val[_P]) * qq + val[_Q]
            w0 = val[_G] * kk + val[_K]
            for j in range(jmax):
                cut[d_in] = min(ext[d_in], bounds[d_in] - (val[d_in] + j * st))
                b = b0 + j * db
                r = r0 + j * dr
                wr = w0 + j * dw
                count = 0
                if mode == MODE_DENSE:
                    count = 1
                    for d in range(8):
                        count *= cut[d]
                elif mode == MODE_ACT:
                    for n in range(cut[_N]):
                        for g in range(cut[_G]):
                            for p in range(cut[_P]):
                                rr = b * rows + r + ((n * gg + g) * pp + p) * qq
                                for q in range(cut[_Q]):
                                    count += acnt[rr + q]
                    count *= cut[_K]
                elif mode == MODE_WEIGHT:
                    for g in range(cut[_G]):
                        for k in range(cut[_K]):
                            count += wcnt[b * gk + wr + g * kk + k]
                    count *= cut[_N] * cut[_P] * cut[_Q]
                else:
                    for n in range(cut[_N]):
                        for g in range(cut[_G]):
                            for p in range(cut[_P]):
                                for q in range(cut[_Q]):
                                    ra = (b * rows + r + ((n * gg + g) * pp + p) * qq + q) * wpb
                                    for k in range(cut[_K]):
                                        rw = (b * gk + wr + g * kk + k) * wpb
                                        for w in range(wpb):
                                            count += np.int64(popcount64(abits[ra + w]
                                                                         & wbits[rw + w]))
                out[o + j] = count
        o += f_in
        l = L - 2
        while l >= 0:
            idx[l] += 1
            val[sdim[l]] += sstride[l]
            if idx[l] < sfactor[l]:
                break
            idx[l] = 0
            val[sdim[l]] -= sstride[l] * sfactor[l]
            l -= 1
        if l < 0:
            break
    return out


@njit(**JIT)
def _single_chunk(ot, off, ta, tw, tc, tk, mode, wpb, abits, wbits, xcnt, ycnt):
    """One chunk of :func:`_blocks_ordered_single` into ``ot`` (the chunk's outputs), its
    operand bases ``off``."""
    chunk = ot.shape[0]
    a0, w0 = np.uint64(off[0]), np.uint64(off[1])
    if mode == MODE_BOTH and wpb == 1:
        for i in range(chunk):
            ot[i] = np.int64(popcount64(abits[a0 + ta[i]] & wbits[w0 + tw[i]]))
    elif mode == MODE_BOTH and wpb == 2:
        a1, w1 = a0 + np.uint64(1), w0 + np.uint64(1)
        for i in range(chunk):
            ot[i] = np.int64(popcount64(abits[a0 + ta[i]] & wbits[w0 + tw[i]])
                             + popcount64(abits[a1 + ta[i]] & wbits[w1 + tw[i]]))
    elif mode == MODE_BOTH:
        ot[:] = 0
        for x in range(wpb):
            ax = a0 + np.uint64(x)
            wx = w0 + np.uint64(x)
            for i in range(chunk):
                ot[i] += np.int64(popcount64(abits[ax + ta[i]] & wbits[wx + tw[i]]))
    else:
        c0, k0 = np.uint64(off[2]), np.uint64(off[3])
        for i in range(chunk):
            ot[i] = xcnt[c0 + tc[i]] * ycnt[k0 + tk[i]]


@njit(**JIT)
def _single_next(idx, off, ofactor, odeltas):
    """Advance the outer loops' odometer ``idx`` and the operand bases ``off``; False past
    the last chunk."""
    l = ofactor.shape[0] - 1
    while l >= 0:
        idx[l] += 1
        for t in range(4):
            off[t] += odeltas[t, l]
        if idx[l] < ofactor[l]:
            return True
        idx[l] = 0
        for t in range(4):
            off[t] -= odeltas[t, l] * ofactor[l]
        l -= 1
    return False


@njit(**JIT)
def _blocks_ordered_single(ofactor, odeltas, tables, mode, wpb, abits, wbits, xcnt, ycnt,
                           total):
    """:func:`_blocks_ordered` where every block is one (n, g, p, q) row x one filter, over
    operands laid out on the mapping's padded index spaces (every loop value has a slot; slots
    past a bound hold zero words / counts, so blocks past a bound count nothing).

    The innermost loops form a chunk of consecutive outputs whose operand offsets are
    ``tables[t, i]`` (t: abits, wbits, xcnt, ycnt; unsigned, so indexing needs no wraparound
    test and the loop vectorises) from the chunk's base; the outer loops ``ofactor`` (possibly
    none) move the bases by ``odeltas[t, l]`` per step (an odometer). Mode both: AND +
    popcount of the ``wpb`` consecutive box words of a row; act and weight: ``xcnt x ycnt``
    (set bits of one operand x 0/1 presence of the other)."""
    out = np.empty(total, dtype=np.int64)
    chunk = tables.shape[1]
    idx = np.zeros(ofactor.shape[0], dtype=np.int64)
    off = np.zeros(4, dtype=np.int64)
    o = 0
    while True:
        _single_chunk(out[o:o + chunk], off, tables[0], tables[1], tables[2], tables[3], mode,
                      wpb, abits, wbits, xcnt, ycnt)
        o += chunk
        if not _single_next(idx, off, ofactor, odeltas):
            break
    return out


@njit(**sch.STRICT)
def _single_schedule(ofactor, odeltas, tables, mode, wpb, abits, wbits, xcnt, ycnt, n,
                     pes, lanes, overhead, decoupled, depth, mean_pes):
    """:func:`_blocks_ordered_single`'s outputs run through the fold recurrence as they are
    made (:func:`accelsim.sim.kernels.schedule.plain_step`, ``n`` outputs a step on an array
    of ``pes`` PEs), never stored whole: the statistics vector of
    :func:`~accelsim.sim.kernels.schedule.fold_schedule_over` over the work array."""
    chunk = tables.shape[1]
    cap = 2 * n + chunk
    buf = np.empty(cap, dtype=np.int64)
    scratch = np.empty(n, dtype=np.int64)
    fin = np.zeros(n, dtype=np.int64)
    history = np.zeros(depth, dtype=np.int64)
    ist = np.zeros(4, dtype=np.int64)
    fst = np.zeros(5, dtype=np.float64)
    has_idle = n < pes
    idx = np.zeros(ofactor.shape[0], dtype=np.int64)
    off = np.zeros(4, dtype=np.int64)
    start = 0
    fill = 0
    step = 0
    while True:
        if fill + chunk > cap:      # move the unfinished step to the front
            for t in range(fill - start):
                buf[t] = buf[start + t]
            fill -= start
            start = 0
        _single_chunk(buf[fill:fill + chunk], off, tables[0], tables[1], tables[2], tables[3],
                      mode, wpb, abits, wbits, xcnt, ycnt)
        fill += chunk
        while fill - start >= n:
            sch.plain_step(buf[start:start + n], scratch, fin, history, ist, fst, lanes,
                           overhead, decoupled, depth, has_idle,
                           mean_pes[step] if mean_pes.shape[0] else n)
            start += n
            step += 1
        if not _single_next(idx, off, ofactor, odeltas):
            break
    return sch.plain_stats(ist, fst, fin, decoupled, has_idle, overhead, lanes)


#: Most outputs in one chunk of :func:`_blocks_ordered_single` (its offset tables).
_CHUNK = 4096


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


class _Plan(NamedTuple):
    """What ``step_work`` derives from (nest, mapping, fan-out level) alone."""
    arrays: tuple            # dim, factor, stride, coord_of, place of the outer loops
    coord_size: tuple        # steps, Y, X
    ext: np.ndarray          # a block's extent per dimension
    bounds: np.ndarray
    order: tuple             # C, R, S packing order (outermost first)
    sizes: np.ndarray        # their full extents in that order
    seq: tuple               # sdim, sfactor, sstride: outer loops in flat-index order
    nbx: tuple               # reduction boxes along each order dimension (over the bounds)
    box: tuple               # a box's bits along each order dimension (its extent, clipped)
    wpb: int                 # words per box
    single: bool             # every block one (n, g, p, q) row x one filter
    span: tuple              # per dimension, the values its loops reach (factor product)
    nbxp: tuple              # reduction boxes along each order dimension over the span
    row_axes: tuple          # N, G, P, Q in the single kernel's row layout (outermost first)
    ofactor: np.ndarray      # loops outside the chunk of _blocks_ordered_single
    odeltas: np.ndarray      # (4, loops): offsets of abits, wbits, xcnt, ycnt per loop step
    tables: np.ndarray       # (4, chunk) uint64: the same offsets over one chunk's outputs


_PLANS: dict = {}
_PLAN_LIMIT = 512
#: Largest box-word array (words; packed from a boolean array of 64 bytes per word) the
#: ordered kernels build; past it ``packed`` runs.
_BOX_WORDS_LIMIT = 1 << 22


def _plan(nest: LoopNest, mapping: Mapping, fanout_level: int) -> _Plan:
    """The cached :class:`_Plan` of (nest, mapping, fan-out level) (a bounded dict)."""
    key = (nest, mapping, fanout_level)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _make_plan(nest, mapping, fanout_level)
        if len(_PLANS) >= _PLAN_LIMIT:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def _make_plan(nest: LoopNest, mapping: Mapping, fanout_level: int) -> _Plan:
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
    arrays = tuple(np.array(list(reversed(v)), dtype=np.int64)
                   for v in (dim, factor, stride, coord_of, place))
    # the flat (step, y, x) index is a mixed radix over the loops: weight place x coordinate
    # scale; heaviest first, an odometer visits it in order (factor-1 loops carry no digit)
    scale = (coord_size[1] * coord_size[2], coord_size[2], 1)
    seq = sorted(((place[j] * scale[coord_of[j]], dim[j], factor[j], stride[j])
                  for j in range(len(dim)) if factor[j] > 1), reverse=True)
    if not seq:
        seq = [(1, _N, 1, 0)]
    seq_arrays = tuple(np.array([row[i] for row in seq], dtype=np.int64) for i in (1, 2, 3))
    bounds = np.array(nest.bounds, dtype=np.int64)
    order = reduction_order(np.minimum(ext, bounds), nest)
    sizes = np.array([nest.bound(DIMS[d]) for d in order], dtype=np.int64)
    # reduction boxes: box i of an order dimension covers [i * ext, (i + 1) * ext); its bits
    # are laid out on the (clipped) extents of the three, the same for both operands
    nbx = tuple(-(-int(bounds[d]) // int(ext[d])) for d in order)
    box = tuple(min(int(ext[d]), int(bounds[d])) for d in order)
    wpb = _words(box[0] * box[1] * box[2])
    # the single-row kernel's operands live on the padded index spaces: every value a loop
    # reaches (its dimension's factor product) has a slot, those past a bound hold zeros
    span = tuple(mapping.factor_product(d) for d in DIMS)
    nbxp = tuple(span[d] // int(ext[d]) for d in order)
    single = all(int(ext[d]) == 1 for d in (_N, _G, _K, _P, _Q))
    # rows (n, g, p, q) laid out with the innermost loop's dimension last
    d_in = seq[-1][1]
    row_axes = tuple([d for d in (_N, _G, _P, _Q) if d != d_in]
                     + ([d_in] if d_in in (_N, _G, _P, _Q) else []))
    rowmul, mul = {}, 1
    for d in reversed(row_axes):
        rowmul[d] = mul
        mul *= span[d]
    rows, gk = mul, span[_G] * span[_K]
    boxmul = {order[0]: nbxp[1] * nbxp[2], order[1]: nbxp[2], order[2]: 1}
    cols = []
    for _, d, f, st in seq:
        dbox = (st // int(ext[d])) * boxmul[d] if d in boxmul else 0
        drow = st * rowmul.get(d, 0)
        dk = st * span[_K] if d == _G else (st if d == _K else 0)
        cols.append((f, (dbox * rows + drow) * wpb, (dbox * gk + dk) * wpb, dbox * rows + drow,
                     dbox * gk + dk))
    # the innermost loops whose outputs fit one chunk: their offsets tabulated
    split, size = len(cols), 1
    while split > 0 and size * cols[split - 1][0] <= _CHUNK:
        split -= 1
        size *= cols[split][0]
    tables = np.zeros((4, 1), dtype=np.int64)
    for f, *delta in cols[split:]:
        step = np.arange(f, dtype=np.int64)
        tables = (tables[:, :, None] + step[None, None, :] * np.array(delta)[:, None, None]
                  ).reshape(4, -1)
    ofactor = np.array([c[0] for c in cols[:split]], dtype=np.int64)
    odeltas = np.array([c[1:] for c in cols[:split]], dtype=np.int64).reshape(-1, 4).T
    return _Plan(arrays, tuple(coord_size), ext, bounds, order, sizes, seq_arrays, nbx, box,
                 wpb, single, span, nbxp, row_axes, ofactor, np.ascontiguousarray(odeltas),
                 np.ascontiguousarray(tables, dtype=np.uint64))


_NO_WORDS = np.zeros(1, dtype=np.uint64)
_NO_COUNTS = np.zeros(1, dtype=np.int64)
#: Dense work per (nest, mapping, fan-out level) (it reads no mask), and the weight side of
#: the ordered kernels per (plan, layout, weight mask); each bounded by its bytes.
_DENSE: dict = {}
_WEIGHTS: dict = {}
_CACHE_BYTES = 1 << 27


def _remember(cache: dict, key, value, nbytes: int) -> None:
    """Store ``value`` under ``key``, emptying ``cache`` first when it would pass
    ``_CACHE_BYTES`` (entries: ``(value, bytes)``)."""
    if sum(b for _, b in cache.values()) + nbytes > _CACHE_BYTES:
        cache.clear()
    if nbytes <= _CACHE_BYTES:
        cache[key] = (value, nbytes)


def _same_mask(copy: np.ndarray, mask: np.ndarray) -> bool:
    """``np.array_equal(copy, mask)`` for a boolean ``copy`` of the same shape, compared 8
    elements per step when both are contiguous booleans of a whole number of words."""
    if (mask.dtype == np.bool_ and copy.nbytes % 8 == 0 and copy.flags.c_contiguous
            and mask.flags.c_contiguous):
        return bool(np.array_equal(copy.reshape(-1).view(np.uint64),
                                   mask.reshape(-1).view(np.uint64)))
    return bool(np.array_equal(copy, mask))


def _weight_side(wmask: np.ndarray, nest: LoopNest, plan: _Plan, single: bool,
                 want: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(words, counts)`` of the weights (:func:`_ordered_bits`), cached per plan, layout and
    mask object: a layer's weights are the same for every sample. The entry keeps the plan and
    a copy of the mask, and is used only for that plan and an equal mask (content compared)."""
    wmask = np.asarray(wmask)
    key = (id(plan), single, want, id(wmask))
    hit = _WEIGHTS.get(key)
    if hit is not None:
        (owner, copy, words, counts), _ = hit
        if owner is plan and copy.shape == wmask.shape and _same_mask(copy, wmask):
            return words, counts
    _, g, k, _, _, _, _, _ = nest.bounds
    w = np.asarray(wmask, dtype=bool).reshape(g, k, *nest.bounds[3:4], *nest.bounds[6:8])
    w = w.transpose(0, 1, *[2 + _CRS[d] for d in plan.order])
    words, counts = _ordered_bits(w, plan, (g, k), (_G, _K), single, want)
    copy = np.array(wmask, dtype=bool, copy=True)
    _remember(_WEIGHTS, key, (plan, copy, words, counts),
              copy.nbytes + words.nbytes + counts.nbytes)
    return words, counts


def _box_words(bits: np.ndarray, plan: _Plan, row_real: tuple, boxes: tuple, row_slots: tuple,
               axes: tuple) -> np.ndarray:
    """Words ``(box0, box1, box2, *row_slots, wpb)`` of an operand's bits ``bits`` (``(*rows,
    C, R, S)`` booleans, the reduction axes in ``plan.order``): each row cut to every reduction
    box, its bits laid out on the box's extents (``plan.box``) and packed little-endian; rows
    permuted by ``axes`` into ``row_slots`` (at least ``row_real``), boxes over ``boxes`` (at
    least ``plan.nbx``); slots past the real ones hold zeros."""
    nr = len(row_real)
    e = plan.box
    cube = e[0] * e[1] * e[2]
    out = np.zeros(tuple(boxes) + tuple(row_slots) + (plan.wpb * 64,), dtype=bool)
    dst = out[..., :cube].reshape(tuple(boxes) + tuple(row_slots) + e)
    rsl = tuple(slice(0, row_real[i]) for i in axes)
    # along each order axis: the full boxes (a reshape) and a clipped last one (when any)
    parts = []
    for m in range(3):
        size, ext = int(plan.sizes[m]), int(plan.ext[plan.order[m]])
        full = size // ext if ext <= size else 0
        part = [(slice(0, full * ext), slice(0, full), full, ext)] if full else []
        if full * ext < size:
            part.append((slice(full * ext, size), slice(full, full + 1), 1, size - full * ext))
        parts.append(part)
    for p0 in parts[0]:
        for p1 in parts[1]:
            for p2 in parts[2]:
                src = bits[(Ellipsis, p0[0], p1[0], p2[0])]
                src = src.reshape(src.shape[:nr] + (p0[2], p0[3], p1[2], p1[3], p2[2], p2[3]))
                src = src.transpose((nr, nr + 2, nr + 4) + tuple(axes) + (nr + 1, nr + 3, nr + 5))
                dst[(p0[1], p1[1], p2[1]) + rsl + (slice(0, p0[3]), slice(0, p1[3]),
                                                   slice(0, p2[3]))] = src
    return np.packbits(out, axis=-1, bitorder="little").view(np.uint64).reshape(-1)


def _act_box_words(act: np.ndarray, nest: LoopNest, pads: tuple[int, int], pad_value: bool,
                   plan: _Plan, boxes: tuple, slots: tuple, axes: tuple) -> np.ndarray:
    """The words of :func:`_box_words` for the activations' im2col rows, written straight from
    the mask (no im2col array): bit ``pos`` of box ``b`` of a row (both the digits of (c, r, s)
    over the box extents, laid out in ``plan.order``) is the element that (c, r, s) reads for
    that row's pixel; rows ``(n, g, p, q)`` permuted by ``axes`` into ``slots``; a padding
    position is ``pad_value``."""
    _, g, _, cg, p, q, r_, s_ = nest.bounds
    crs = (_C, _R, _S)
    # per order dimension: its C/R/S code, full size, box extent, bits in a box, boxes
    dims = np.array([[crs.index(d) for d in plan.order],
                     [int(x) for x in plan.sizes],
                     [int(plan.ext[d]) for d in plan.order],
                     [int(x) for x in plan.box],
                     [int(x) for x in boxes]], dtype=np.int64)
    rowmul = np.zeros(4, dtype=np.int64)       # per n, g, p, q: the row multiplier
    mul = 1
    for i in reversed(range(len(axes))):
        rowmul[axes[i]] = mul
        mul *= int(slots[i])
    geometry = np.array([g, cg, p, q, r_, s_, nest.stride_h, nest.stride_w, nest.dil_h,
                         nest.dil_w, pads[0], pads[1]], dtype=np.int64)
    # one array type for the kernel (a read-only mask would compile a second specialisation)
    return _act_words(np.require(act, dtype=np.bool_, requirements=("C", "W")), geometry, dims,
                      rowmul, mul, int(plan.wpb), bool(pad_value))


@njit(**JIT)
def _act_words(act, geometry, dims, rowmul, nslots, wpb, pad_value):
    """Box words ``[box][row][word]`` (boxes of ``nslots`` row slots) of the activations ``act``
    ``(N, G * Cg, H, W)`` for :func:`_act_box_words`. ``geometry``: G, Cg, P, Q, R, S,
    strides, dilations, pads; ``dims`` (5, 3): per order dimension its C/R/S code, size, box
    extent, bits in a box and boxes; ``rowmul`` per n, g, p, q: the row multiplier.

    With C innermost, each tap's channels are copied from the channel-packed mask
    (:func:`_channel_runs`, :func:`_copy_fields`); with C outermost and at most 64 bits of
    taps in a box, each channel's tap code (:func:`_tap_words`); otherwise bit by bit
    (:func:`_act_bits`)."""
    taps = dims[3, 1] * dims[3, 2]
    if dims[0, 2] == 0:                     # C (code 0) innermost
        src, width, srcmul, fields, first = _channel_runs(act, geometry, dims, pad_value)
        return _copy_fields(src, width, srcmul, fields, first, act.shape[0], geometry, rowmul,
                            nslots, wpb)
    if dims[0, 0] == 0 and taps <= 16:      # C outermost; narrow codes: more lanes
        return _tap_words(act, geometry, dims, rowmul, nslots, wpb, pad_value,
                          np.zeros(1, dtype=np.uint16))
    if dims[0, 0] == 0 and taps <= 64:
        return _tap_words(act, geometry, dims, rowmul, nslots, wpb, pad_value,
                          np.zeros(1, dtype=np.uint64))
    return _act_bits(act, geometry, dims, rowmul, nslots, wpb, pad_value)


@njit(**JIT)
def _padded_plane(act, geometry, pad_value):
    """``act`` ``(N, C, H, W)`` in a plane as large as the layer reads (``geometry`` as in
    :func:`_act_words`): ``pad_value`` in the padding ring, zeros past the padded mask; the
    mask itself when it needs neither."""
    pp, qq, rr, ss = geometry[2], geometry[3], geometry[4], geometry[5]
    sh, sw, dh, dw, ph, pw = geometry[6], geometry[7], geometry[8], geometry[9], geometry[10], \
        geometry[11]
    n_, c_, h_, w_ = act.shape[0], act.shape[1], act.shape[2], act.shape[3]
    hp = max(h_ + 2 * ph, (pp - 1) * sh + (rr - 1) * dh + 1)
    wp = max(w_ + 2 * pw, (qq - 1) * sw + (ss - 1) * dw + 1)
    if hp == h_ and wp == w_:
        return act
    plane = np.zeros((n_, c_, hp, wp), dtype=np.bool_)
    if pad_value:       # the padded mask's frame (zeros past it: absent positions)
        plane[:, :, :min(hp, h_ + 2 * ph), :min(wp, w_ + 2 * pw)] = True
    plane[:, :, ph:ph + h_, pw:pw + w_] = act
    return plane


@njit(**JIT)
def _valid(dims, m, i):
    """Bits of box ``i`` along order dimension ``m`` that lie inside its size (the last box is
    clipped; <= 0 past the size)."""
    return min(dims[3, m], dims[1, m] - i * dims[2, m])


@njit(**JIT)
def _pack_channels(plane, g_, cg):
    """``(words (N, G, H, W, cw) flat, cw)``: each pixel's ``cg`` channels of each group of
    ``plane`` ``(N, G * cg, H, W)``, bit ``c`` of a pixel in word ``c // 64``."""
    n_, hw = plane.shape[0], plane.shape[2] * plane.shape[3]
    cw = (cg + 63) // 64
    flat = plane.reshape(-1).view(np.uint8)
    src = np.zeros(n_ * g_ * hw * cw, dtype=np.uint64)
    acc = np.empty(hw, dtype=np.uint64)
    for ng in range(n_ * g_):
        for word in range(cw):
            acc[:] = 0          # one word of channels over the plane, contiguous
            for c in range(word * 64, min(cg, word * 64 + 64)):
                a0 = np.uint64((ng * cg + c) * hw)
                bit = np.uint64(c & 63)
                for x in range(hw):
                    acc[x] |= np.uint64(flat[a0 + np.uint64(x)]) << bit
            o = ng * hw * cw + word
            for x in range(hw):
                src[o + x * cw] = acc[x]
    return src, cw


@njit(**JIT)
def _channel_runs(act, geometry, dims, pad_value):
    """:func:`_copy_fields`'s source for C innermost in ``plan.order``: the padded plane with
    each pixel's channels of a group packed in words (source rows: pixels ``(n, g, h, w)``);
    per box, a field per tap ``(x0, x1)``: its channels, at bit ``(x0 * e1 + x1) * e2``."""
    g_, cg, sh, sw, dh, dw = geometry[0], geometry[1], geometry[6], geometry[7], geometry[8], \
        geometry[9]
    plane = _padded_plane(act, geometry, pad_value)
    hp, wp = plane.shape[2], plane.shape[3]
    src, cw = _pack_channels(plane, g_, cg)
    srcmul = np.array([g_ * hp * wp, hp * wp, sh * wp, sw], dtype=np.int64)
    unit = np.array([0, dh * wp, dw], dtype=np.int64)     # source rows per step of C, R, S
    e1, e2 = dims[3, 1], dims[3, 2]
    nb0, nb1, nb2 = dims[4, 0], dims[4, 1], dims[4, 2]
    fields = np.zeros((nb0 * nb1 * nb2 * dims[3, 0] * e1, 4), dtype=np.int64)
    first = np.zeros(nb0 * nb1 * nb2 + 1, dtype=np.int64)
    k = 0
    for b in range(nb0 * nb1 * nb2):
        i0, i1, i2 = b // (nb1 * nb2), (b // nb2) % nb1, b % nb2
        v0, v1, v2 = _valid(dims, 0, i0), _valid(dims, 1, i1), _valid(dims, 2, i2)
        if v0 > 0 and v1 > 0 and v2 > 0:
            for x0 in range(v0):
                for x1 in range(v1):
                    fields[k, 0] = ((i0 * dims[2, 0] + x0) * unit[dims[0, 0]]
                                    + (i1 * dims[2, 1] + x1) * unit[dims[0, 1]])
                    fields[k, 1] = i2 * dims[2, 2]
                    fields[k, 2] = v2
                    fields[k, 3] = (x0 * e1 + x1) * e2
                    k += 1
        first[b + 1] = k
    return src, cw, srcmul, fields, first


@njit(**JIT)
def _tap_codes(codes, plane, geometry, dims, nr2):
    """Fill ``codes`` ``(i1, i2, N, C, P, Q)`` (pairs of tap boxes inside the sizes, ``nr2``
    along order dimension 2) for C outermost in ``plan.order`` (``dims`` as in
    :func:`_act_words`): bit ``x1 * e2 + x2`` of (n, c, p, q) is the element tap (x1, x2) of
    those boxes reads for pixel (p, q), from the padded plane (:func:`_padded_plane`)."""
    pp, qq, sh, sw, dh, dw = geometry[2], geometry[3], geometry[6], geometry[7], geometry[8], \
        geometry[9]
    nc_, hp, wp = plane.shape[0] * plane.shape[1], plane.shape[2], plane.shape[3]
    flat = plane.reshape(-1).view(np.uint8)
    for nc in range(nc_):       # a channel's codes stay in cache over its taps
        for j in range(codes.shape[0] // (nc_ * pp * qq)):
            i1, i2 = j // nr2, j % nr2
            for x1 in range(_valid(dims, 1, i1)):
                for x2 in range(_valid(dims, 2, i2)):
                    t1, t2 = i1 * dims[2, 1] + x1, i2 * dims[2, 2] + x2
                    r, s = (t1, t2) if dims[0, 1] == 1 else (t2, t1)
                    _or_tap(codes, flat, (j * nc_ + nc) * pp * qq,
                            (nc * hp + r * dh) * wp + s * dw, pp, qq, sh * wp, sw,
                            x1 * dims[3, 2] + x2)


@njit(**JIT)
def _or_tap(codes, flat, o, a, rows, cols, row_step, col_step, bit):
    """``codes[o + i * cols + j] |= flat[a + i * row_step + j * col_step] << bit`` over
    ``rows x cols``: one tap of a channel's codes (unsigned offsets: no wraparound test, a
    vectorised inner loop)."""
    # the shift bounded by the codes' width (a constant per type): the loop runs in narrow lanes
    b = codes.dtype.type(bit & (15 if codes.dtype.type(-1) == 0xFFFF else 63))
    ucols, ustep = np.uint64(cols), np.uint64(col_step)
    for i in range(rows):
        uo, ua = np.uint64(o + i * cols), np.uint64(a + i * row_step)
        if col_step == 1:           # the common strides as constants
            for j in range(ucols):
                codes[uo + j] |= codes.dtype.type(flat[ua + j]) << b
        elif col_step == 2:
            for j in range(ucols):
                codes[uo + j] |= codes.dtype.type(flat[ua + j * np.uint64(2)]) << b
        else:
            for j in range(ucols):
                codes[uo + j] |= codes.dtype.type(flat[ua + j * ustep]) << b


@njit(**JIT)
def _tap_words(act, geometry, dims, rowmul, nslots, wpb, pad_value, proto):
    """:func:`_act_words` for C outermost in ``plan.order`` and at most 64 bits of taps in a
    box: a box of a row is its channels' tap codes (:func:`_tap_codes`, of proto's type) end to
    end, channel ``xc`` at bit ``xc * e1 * e2``."""
    # tap boxes inside the sizes (those past them hold no bits)
    nr1 = min(dims[4, 1], (dims[1, 1] + dims[2, 1] - 1) // dims[2, 1])
    nr2 = min(dims[4, 2], (dims[1, 2] + dims[2, 2] - 1) // dims[2, 2])
    codes = np.zeros(nr1 * nr2 * act.shape[0] * act.shape[1] * geometry[2] * geometry[3],
                     dtype=proto.dtype)
    _tap_codes(codes, _padded_plane(act, geometry, pad_value), geometry, dims, nr2)
    out = np.zeros(dims[4, 0] * dims[4, 1] * dims[4, 2] * nslots * wpb, dtype=np.uint64)
    _join_codes(out, codes, act.shape[0], act.shape[1], geometry, dims, rowmul, nslots, wpb,
                nr2)
    return out


@njit(**JIT)
def _join_codes(out, codes, n_, c_, geometry, dims, rowmul, nslots, wpb, nr2):
    """Write each box of each row of :func:`_tap_words` into ``out``: its channels' codes end
    to end."""
    g_, cg, pp, qq = geometry[0], geometry[1], geometry[2], geometry[3]
    pq, span = pp * qq, dims[3, 1] * dims[3, 2]
    nb0, nb1, nb2 = dims[4, 0], dims[4, 1], dims[4, 2]
    for b in range(nb0 * nb1 * nb2):
        i0, i1, i2 = b // (nb1 * nb2), (b // nb2) % nb1, b % nb2
        v0 = _valid(dims, 0, i0)
        if v0 <= 0 or _valid(dims, 1, i1) <= 0 or _valid(dims, 2, i2) <= 0:
            continue
        for n in range(n_):
            for g in range(g_):
                c0 = (((i1 * nr2 + i2) * n_ + n) * c_ + g * cg + i0 * dims[2, 0]) * pq
                for p in range(pp):
                    o1 = (b * nslots + n * rowmul[0] + g * rowmul[1] + p * rowmul[2]) * wpb
                    for q in range(qq):
                        src = c0 + p * qq + q
                        w = o1 + q * rowmul[3] * wpb
                        acc = np.uint64(0)
                        fill = 0        # bits of acc taken
                        for xc in range(v0):
                            x = np.uint64(codes[src + xc * pq])
                            acc |= x << np.uint64(fill)
                            fill += span
                            if fill >= 64:      # word full: the rest of x starts the next
                                out[w] = acc
                                w += 1
                                fill -= 64
                                acc = x >> np.uint64(span - fill) if fill > 0 else np.uint64(0)
                        if fill > 0:
                            out[w] = acc


@njit(**JIT)
def _word_ops(fields, first, width):
    """:func:`_copy_fields`'s fields cut into word operations ``(source word, source shift,
    reads a second word, mask, box word, box shift, writes a second word)``, unsigned, and
    each box's first operation."""
    nops = 0
    for f in range(fields.shape[0]):
        nops += (fields[f, 2] + 63) // 64
    ops = np.zeros((nops, 7), dtype=np.uint64)
    opfirst = np.zeros(first.shape[0], dtype=np.int64)
    m = 0
    for b in range(first.shape[0] - 1):
        for f in range(first[b], first[b + 1]):
            for done in range(0, fields[f, 2], 64):
                k = min(64, fields[f, 2] - done)
                at, to = fields[f, 1] + done, fields[f, 3] + done
                ops[m, 0] = fields[f, 0] * width + (at >> 6)
                ops[m, 1] = at & 63
                ops[m, 2] = (at & 63) > 0 and (at & 63) + k > 64
                ops[m, 3] = _ALL if k == 64 else (np.uint64(1) << np.uint64(k)) - np.uint64(1)
                ops[m, 4] = to >> 6
                ops[m, 5] = to & 63
                ops[m, 6] = (to & 63) > 0 and (to & 63) + k > 64
                m += 1
        opfirst[b + 1] = m
    return ops, opfirst


@njit(**JIT)
def _copy_fields(src, width, srcmul, fields, first, n_, geometry, rowmul, nslots, wpb):
    """Box words ``[box][row][word]`` (as :func:`_act_words`) from a source of rows of
    ``width`` words: the row of pixel (n, g, p, q) reads the source rows from
    ``n * srcmul[0] + g * srcmul[1] + p * srcmul[2] + q * srcmul[3]`` on; box ``b`` is its
    fields ``first[b]`` to ``first[b + 1]``, each ``(source row offset, source bit, bits,
    box bit)``, copied a word at a time (:func:`_word_ops`)."""
    g_, pp, qq = geometry[0], geometry[2], geometry[3]
    ops, opfirst = _word_ops(fields, first, width)
    one, w64 = np.uint64(1), np.uint64(64)
    nbox = first.shape[0] - 1
    out = np.zeros(nbox * nslots * wpb, dtype=np.uint64)
    for b in range(nbox):
        if opfirst[b] == opfirst[b + 1]:
            continue
        for n in range(n_):
            for g in range(g_):
                for p in range(pp):
                    base = n * srcmul[0] + g * srcmul[1] + p * srcmul[2]
                    o1 = (b * nslots + n * rowmul[0] + g * rowmul[1] + p * rowmul[2]) * wpb
                    for q in range(qq):
                        s = np.uint64((base + q * srcmul[3]) * width)
                        o = np.uint64(o1 + q * rowmul[3] * wpb)
                        for m in range(opfirst[b], opfirst[b + 1]):
                            i = s + ops[m, 0]
                            x = src[i] >> ops[m, 1]
                            if ops[m, 2]:
                                x |= src[i + one] << (w64 - ops[m, 1])
                            x &= ops[m, 3]
                            j = o + ops[m, 4]
                            out[j] |= x << ops[m, 5]
                            if ops[m, 6]:
                                out[j + one] |= x >> (w64 - ops[m, 5])
    return out


@njit(**JIT)
def _act_bits(act, geometry, dims, rowmul, nslots, wpb, pad_value):
    """:func:`_act_words` bit by bit, for any order: a box's bit ``pos`` of the row of pixel
    (p, q) reads the padded plane (:func:`_padded_plane`) at the pixel's offset plus a per-box
    table entry; each word is gathered in a register."""
    g_, cg, pp, qq = geometry[0], geometry[1], geometry[2], geometry[3]
    sh, sw, dh, dw = geometry[6], geometry[7], geometry[8], geometry[9]
    plane = _padded_plane(act, geometry, pad_value)
    n_, c_, hp, wp = plane.shape[0], plane.shape[1], plane.shape[2], plane.shape[3]
    flat = plane.reshape(-1)
    # the source offset of one step of C, R, S
    unit = np.array([hp * wp, dh * wp, dw], dtype=np.int64)
    e0, e1, e2 = dims[3, 0], dims[3, 1], dims[3, 2]
    nb0, nb1, nb2 = dims[4, 0], dims[4, 1], dims[4, 2]
    cube = e0 * e1 * e2
    delta = np.empty(cube, dtype=np.uint64)      # unsigned: no wraparound test
    shift = np.empty(cube, dtype=np.uint64)
    wstart = np.empty(wpb + 1, dtype=np.int64)
    out = np.zeros(nb0 * nb1 * nb2 * nslots * wpb, dtype=np.uint64)
    for i0 in range(nb0):
        for i1 in range(nb1):
            for i2 in range(nb2):
                b = (i0 * nb1 + i1) * nb2 + i2
                # valid extents of this box (the last one along a dimension is clipped; boxes
                # past the size hold zeros)
                v0 = min(e0, dims[1, 0] - i0 * dims[2, 0])
                v1 = min(e1, dims[1, 1] - i1 * dims[2, 1])
                v2 = min(e2, dims[1, 2] - i2 * dims[2, 2])
                if v0 <= 0 or v1 <= 0 or v2 <= 0:
                    continue
                base = (i0 * dims[2, 0] * unit[dims[0, 0]] + i1 * dims[2, 1] * unit[dims[0, 1]]
                        + i2 * dims[2, 2] * unit[dims[0, 2]])
                m = 0
                for w in range(wpb + 1):
                    wstart[w] = 0
                for x0 in range(v0):
                    for x1 in range(v1):
                        for x2 in range(v2):
                            pos = (x0 * e1 + x1) * e2 + x2
                            delta[m] = np.uint64(base + x0 * unit[dims[0, 0]]
                                                 + x1 * unit[dims[0, 1]] + x2 * unit[dims[0, 2]])
                            shift[m] = np.uint64(pos & 63)
                            wstart[(pos >> 6) + 1] = m + 1
                            m += 1
                for w in range(1, wpb + 1):       # words without a bit: empty ranges
                    wstart[w] = max(wstart[w], wstart[w - 1])
                for n in range(n_):
                    for g in range(g_):
                        src0 = (n * c_ + g * cg) * hp * wp
                        o0 = (b * nslots + n * rowmul[0] + g * rowmul[1]) * wpb
                        for p in range(pp):
                            src1 = src0 + p * sh * wp
                            o1 = o0 + p * rowmul[2] * wpb
                            for q in range(qq):
                                src = np.uint64(src1 + q * sw)
                                o = o1 + q * rowmul[3] * wpb
                                for w in range(wpb):
                                    k0, k1 = wstart[w], wstart[w + 1]
                                    acc = np.uint64(0)
                                    if k1 - k0 == 64:    # a full word: bit k is entry k0 + k
                                        # four independent OR chains
                                        a1 = a2 = a3 = np.uint64(0)
                                        for k in range(0, 64, 4):
                                            j = k0 + k
                                            acc |= np.uint64(flat[src + delta[j]]) << np.uint64(k)
                                            a1 |= (np.uint64(flat[src + delta[j + 1]])
                                                   << np.uint64(k + 1))
                                            a2 |= (np.uint64(flat[src + delta[j + 2]])
                                                   << np.uint64(k + 2))
                                            a3 |= (np.uint64(flat[src + delta[j + 3]])
                                                   << np.uint64(k + 3))
                                        acc |= a1 | a2 | a3
                                    else:
                                        a1 = np.uint64(0)
                                        for k in range(k0, k1 - 1, 2):
                                            acc |= np.uint64(flat[src + delta[k]]) << shift[k]
                                            a1 |= (np.uint64(flat[src + delta[k + 1]])
                                                   << shift[k + 1])
                                        if (k1 - k0) % 2:
                                            acc |= (np.uint64(flat[src + delta[k1 - 1]])
                                                    << shift[k1 - 1])
                                        acc |= a1
                                    out[o + w] = acc
    return out


def _row_axes(plan: _Plan, row_dims: tuple) -> tuple:
    """The single kernel's row layout of an operand: activations (n, g, p, q) in
    ``plan.row_axes``, weights (g, k) as they are."""
    if row_dims == (_G, _K):
        return (0, 1)
    return tuple(row_dims.index(d) for d in plan.row_axes)


def _ordered_bits(bits: np.ndarray, plan: _Plan, row_real: tuple, row_dims: tuple,
                  single: bool, want: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(words, counts)`` of one operand for :func:`_blocks_ordered` (``single``: padded and
    permuted for :func:`_blocks_ordered_single`); words only when ``want``."""
    if single:
        axes = _row_axes(plan, row_dims)
        slots = tuple(plan.span[row_dims[i]] for i in axes)
        boxes = plan.nbxp
    else:
        axes = tuple(range(len(row_dims)))
        slots, boxes = tuple(row_real), plan.nbx
    words = _box_words(bits, plan, row_real, boxes, slots, axes)
    counts = np.bitwise_count(words.reshape(-1, plan.wpb)).sum(axis=1, dtype=np.int64)
    return (words if want else _NO_WORDS), counts


def step_work(nest: LoopNest, mapping: Mapping, fanout_level: int, act: np.ndarray,
              wmask: np.ndarray, pads: tuple[int, int], mode: int,
              method: str = "auto", pad_issued: bool = False) -> np.ndarray:
    """Issued MAC slots ``(steps, Y, X)`` of one batch of ``act`` ``(N, C, H, W)`` masks.

    ``fanout_level``: the innermost level whose spatial loops spread over the PE array (spatial
    loops at it and above index PEs); temporal loops at it and above are steps, loops at levels
    below it (and the MAC lanes) are PE blocks. ``method``: ``packed`` (popcounts over packed
    segments, block by block), ``boxed`` (the same popcounts over each row's bits cut to its
    reduction box, written in the output's order), ``factored`` (prefix sums over the
    reduction box) or ``auto`` (boxed or factored, the cheaper).
    ``pad_issued``: activation skipping issues the slots of padding positions (they count as
    present activations; ``sparsity.skip_padding`` false); otherwise padding is a skipped zero.
    A mapping with remainder tiles runs its padded loops: blocks are clipped to the bounds
    (a block past a bound has no work, in every mode).
    """
    prepared = _prepared(nest, mapping, fanout_level, act, wmask, pads, mode, method, pad_issued)
    if isinstance(prepared, np.ndarray):
        return prepared
    plan, args = prepared
    return _blocks_ordered_single(*args, int(np.prod(plan.coord_size))).reshape(plan.coord_size)


def step_stats(nest: LoopNest, mapping: Mapping, fanout_level: int, act: np.ndarray,
               wmask: np.ndarray, pads: tuple[int, int], mode: int, schedule: tuple,
               mean_pes: np.ndarray | None = None, pad_issued: bool = False) -> np.ndarray:
    """The fold schedule's statistics vector (:func:`accelsim.sim.kernels.schedule.
    fold_schedule_over`) of :func:`step_work`'s array, each step one fold. ``schedule``:
    ``(rows, cols, lanes, overhead, sync, depth, gate, gate threshold)``; ``mean_pes``: per
    step, the PEs its mean busy cycles is over (None: every mapped PE). Where the steps run
    the plain recurrence (no power gating, whole-array or per-PE sync) on the single block
    kernel, the work is scheduled as it is counted and never stored whole."""
    rows, cols, lanes, overhead, sync, depth, gate, threshold = schedule
    pes = np.empty(0, dtype=np.int64) if mean_pes is None else np.ascontiguousarray(
        mean_pes, dtype=np.int64)
    prepared = _prepared(nest, mapping, fanout_level, act, wmask, pads, mode, "auto",
                         pad_issued)
    if not isinstance(prepared, np.ndarray):
        plan, args = prepared
        _, ys, xs = plan.coord_size
        if not gate and sync in (sch.SYNC_DECOUPLED, sch.SYNC_ARRAY) and ys <= rows \
                and xs <= cols:
            return _single_schedule(*args, int(ys * xs), int(rows * cols), int(lanes),
                                    int(overhead), sync == sch.SYNC_DECOUPLED, int(depth), pes)
        prepared = _blocks_ordered_single(*args, int(np.prod(plan.coord_size))).reshape(
            plan.coord_size)
    return sch.fold_schedule_over(sch.as_work(prepared), rows, cols, lanes, overhead, sync,
                                  depth, gate, threshold, pes)


def _prepared(nest: LoopNest, mapping: Mapping, fanout_level: int, act: np.ndarray,
              wmask: np.ndarray, pads: tuple[int, int], mode: int, method: str,
              pad_issued: bool):
    """:func:`step_work`'s array, or ``(plan, arguments of the single block kernel but its
    length)`` where that kernel counts it."""
    if method not in ("auto", "packed", "boxed", "factored"):
        raise ValueError(f"method: expected auto, packed, boxed or factored, got {method!r}")
    plan = _plan(nest, mapping, fanout_level)
    ext, bounds, order = plan.ext, plan.bounds, plan.order
    shape = plan.coord_size
    use_a = mode in (MODE_ACT, MODE_BOTH)
    use_w = mode in (MODE_WEIGHT, MODE_BOTH)
    n, g, k, _, p, q, _, _ = nest.bounds
    if use_a or use_w:
        # two exact ways to count a block: popcounts over its packed reduction segments
        # (~ one word op per segment per output row) or the factored sum over its reduction box
        # (one product per reduction element); take the cheaper
        rows = int(ext[_N] * ext[_G] * ext[_K] * ext[_P] * ext[_Q])
        segment_ops = rows * _segments(np.minimum(ext, bounds), order, nest)
        box_ops = int(ext[_G] * ext[_C] * ext[_R] * ext[_S]) * (int(ext[_N]) if use_a else 1)
        if method == "factored" or (method == "auto" and box_ops < segment_ops):
            aint = (act_prefix(act, nest, pads, pad_issued) if use_a
                    else np.zeros((1,) * 7, np.int64))
            wcum = weight_prefix(wmask, nest) if use_w else np.zeros((1,) * 5, np.int64)
            return _blocks_factored(*plan.arrays, shape[0], shape[1], shape[2], ext,
                                    aint, wcum, use_a, use_w, bounds)
    single = plan.single and mode != MODE_DENSE
    sp = plan.span
    nbox = int(np.prod(plan.nbxp if single else plan.nbx))
    slots = (sp[_N] * sp[_G] * sp[_P] * sp[_Q], sp[_G] * sp[_K]) if single else (n * g * p * q,
                                                                                 g * k)
    too_big = nbox * plan.wpb * max(slots) > _BOX_WORDS_LIMIT
    if method == "packed" or (too_big and mode != MODE_DENSE):
        # an operand the mode ignores is never read: a one-word placeholder row per index
        apack = (pack_im2col(act, nest, pads, order, pad_issued) if use_a
                 else np.zeros((n, g, p, q, 1), np.uint64))
        wpack = pack_weights(wmask, nest, order) if use_w else np.zeros((g, k, 1), np.uint64)
        return _blocks(*plan.arrays, shape[0], shape[1], shape[2], ext, apack, wpack,
                       np.array(order, dtype=np.int64), plan.sizes, use_a, use_w, bounds)
    if mode == MODE_DENSE:        # reads no mask: cached per plan
        key = (nest, mapping, fanout_level)
        hit = _DENSE.get(key)
        if hit is None:
            work = _blocks_ordered(*plan.seq, ext, bounds, np.array(order, dtype=np.int64),
                                   np.array(plan.nbx, dtype=np.int64), int(mode),
                                   int(plan.wpb), _NO_WORDS, _NO_WORDS, _NO_COUNTS, _NO_COUNTS,
                                   int(shape[0] * shape[1] * shape[2])).reshape(shape)
            _remember(_DENSE, key, work, work.nbytes)
            return work.copy()
        return hit[0].copy()
    both = mode == MODE_BOTH
    abits, acnt = _NO_WORDS, _NO_COUNTS
    wbits, wcnt = _NO_WORDS, _NO_COUNTS
    if use_a:
        if single:
            axes = _row_axes(plan, (_N, _G, _P, _Q))
            slots = tuple(plan.span[(_N, _G, _P, _Q)[i]] for i in axes)
            boxes = plan.nbxp
        else:
            axes, slots, boxes = (0, 1, 2, 3), (n, g, p, q), plan.nbx
        abits = _act_box_words(act, nest, pads, pad_issued, plan, boxes, slots, axes)
        if not both:    # set bits per (box, row): mode act's counts (mode both ANDs the words)
            acnt = np.bitwise_count(abits.reshape(-1, plan.wpb)).sum(axis=1, dtype=np.int64)
            abits = _NO_WORDS
    if use_w:
        wbits, wcnt = _weight_side(wmask, nest, plan, single, both)
    total = shape[0] * shape[1] * shape[2]
    if single:
        if both:
            xc = yc = _NO_COUNTS
        elif use_a:     # set bits per (box, row) x presence of the filter
            abits, xc = _NO_WORDS, acnt
            yc = _presence(plan, (g, k), (_G, _K))
        else:           # presence of the row x set bits per (box, filter)
            wbits, yc = _NO_WORDS, wcnt
            xc = _presence(plan, (n, g, p, q), (_N, _G, _P, _Q))
        return plan, (plan.ofactor, plan.odeltas, plan.tables, int(mode), int(plan.wpb), abits,
                      wbits, xc, yc)
    work = _blocks_ordered(*plan.seq, ext, bounds, np.array(order, dtype=np.int64),
                           np.array(plan.nbx, dtype=np.int64), int(mode), int(plan.wpb),
                           abits, wbits, acnt, wcnt, int(total))
    return work.reshape(shape)


def in_bounds_pes(nest: LoopNest, mapping: Mapping, fanout_level: int) -> np.ndarray:
    """``(steps,)``: at each step (:func:`step_work`'s first axis), the PEs whose block starts
    inside the loop bounds in every dimension (a remainder tile leaves the others without
    work). A block's start in a dimension is the sum of its loops' index x stride over the
    temporal loops at and above the fan-out level (the step) and the spatial ones there (the
    PE); counted per distinct step start, so memory stays ``distinct starts x PEs``."""
    flat = mapping.flat()
    radix: dict = {}
    strides = [0] * len(flat)
    for i in range(len(flat) - 1, -1, -1):
        d = flat[i][1].dim
        strides[i] = radix.get(d, 1)
        radix[d] = strides[i] * flat[i][1].factor
    steps = np.zeros((1, len(DIMS)), dtype=np.int64)
    pes = np.zeros((1, len(DIMS)), dtype=np.int64)
    for i, (lv, loop) in enumerate(flat):
        if lv > fanout_level or loop.factor == 1:
            continue
        values = np.zeros((loop.factor, len(DIMS)), dtype=np.int64)
        values[:, DIMS.index(loop.dim)] = np.arange(loop.factor) * strides[i]
        if loop.spatial:
            pes = (pes[:, None, :] + values[None]).reshape(-1, len(DIMS))
        else:
            steps = (steps[:, None, :] + values[None]).reshape(-1, len(DIMS))
    bounds = np.array(nest.bounds, dtype=np.int64)
    over = [d for d in range(len(DIMS)) if steps[:, d].max() + pes[:, d].max() >= bounds[d]]
    if not over:
        return np.full(steps.shape[0], pes.shape[0], dtype=np.int64)
    starts, which = np.unique(steps[:, over], axis=0, return_inverse=True)
    inside = np.ones((starts.shape[0], pes.shape[0]), dtype=bool)
    for j, d in enumerate(over):
        inside &= (starts[:, j][:, None] + pes[:, d][None, :]) < bounds[d]
    return inside.sum(axis=1, dtype=np.int64)[np.asarray(which).reshape(-1)]


def _presence(plan: _Plan, row_real: tuple, row_dims: tuple) -> np.ndarray:
    """1 per real row of every box (padded and permuted like the single kernel's counts)."""
    axes = _row_axes(plan, row_dims)
    slots = tuple(plan.span[row_dims[i]] for i in axes)
    out = np.zeros(tuple(plan.nbxp) + slots, dtype=np.int64)
    out[(Ellipsis,) + tuple(slice(0, row_real[i]) for i in axes)] = 1
    return out.reshape(-1)


def effectual_pairs(nest: LoopNest, act: np.ndarray, wmask: np.ndarray,
                    pads: tuple[int, int]) -> int:
    """MAC slots with both operands non-zero over the whole layer (any mapping gives the same
    total; a padding position is a zero, so its slots are never effectual): per group and
    reduction index (c, r, s), non-zero activations over all pixels x non-zero weights over all
    filters."""
    _, g, k, cg, p, q, r, s = nest.bounds
    if r == 1 and s == 1 and not any(pads):    # one tap (a lowered operand matrix, say)
        window = np.asarray(act, dtype=bool)[:, :, :(p - 1) * nest.stride_h + 1:nest.stride_h,
                                             :(q - 1) * nest.stride_w + 1:nest.stride_w]
        taps = window.sum(axis=(0, 2, 3), dtype=np.int64)
    else:
        act = np.ascontiguousarray(act, dtype=bool)
        taps = _tap_counts(act.view(np.uint8), int(pads[0]), int(pads[1]), int(nest.stride_h),
                           int(nest.stride_w), int(nest.dil_h), int(nest.dil_w), int(p), int(q),
                           int(r), int(s))
    w = _filter_counts(wmask, g, k, cg, r, s)
    return int((taps.reshape(g, cg, r, s) * w).sum())


def _filter_counts(wmask: np.ndarray, g: int, k: int, cg: int, r: int, s: int) -> np.ndarray:
    """Non-zero weights over the filters of each group per (c, r, s): ``(G, C/G, R, S)``; the
    last few masks' counts are kept (a layer's samples share its weights)."""
    key = (id(wmask), g, k, cg, r, s)
    kept = _FILTER_COUNTS.get(key)
    if kept is not None and kept[0] is wmask:
        return kept[1]
    w = np.asarray(wmask, dtype=bool).reshape(g, k, cg, r, s).sum(axis=1, dtype=np.int64)
    while len(_FILTER_COUNTS) >= 4:
        _FILTER_COUNTS.pop(next(iter(_FILTER_COUNTS)))
    _FILTER_COUNTS[key] = (wmask, w)      # the mask kept: its id is not reused meanwhile
    return w


_FILTER_COUNTS: dict[tuple, tuple] = {}


@njit(**JIT)
def _in_range(start, step, count, size):
    """``[lo, hi)``: the ``i`` in ``[0, count)`` with ``0 <= start + i * step < size``
    (``step`` > 0)."""
    lo = 0
    if start < 0:
        lo = (-start + step - 1) // step
    hi = count
    if start + (count - 1) * step >= size:
        hi = max(0, (size - 1 - start) // step + 1) if size - 1 - start >= 0 else 0
    return lo, max(lo, hi)


@njit(**JIT)
def _tap_counts(act, ph, pw, sh, sw, dh, dw, P, Q, R, S):
    """Non-zero activations each filter tap ``(r, s)`` of each channel reads over all output
    pixels of all samples: ``(C, R, S)``; tap ``(i, j)`` of pixel ``(p, q)`` reads input
    ``(p sh - ph + i dh, q sw - pw + j dw)``, nothing outside the input (padding). Separable:
    per channel, the row sums of each column tap, then the column sums of each row tap."""
    N, C, H, W = act.shape
    out = np.zeros((C, R, S), dtype=np.int64)
    rows = np.zeros((S, H), dtype=np.int64)
    for c in range(C):
        rows[:, :] = 0
        for j in range(S):
            x0 = j * dw - pw
            lo, hi = _in_range(x0, sw, Q, W)
            for n in range(N):
                for h in range(H):
                    t = 0
                    for x in range(x0 + lo * sw, x0 + hi * sw, sw):
                        t += act[n, c, h, x]
                    rows[j, h] += t
        for i in range(R):
            y0 = i * dh - ph
            lo, hi = _in_range(y0, sh, P, H)
            for j in range(S):
                t = 0
                for y in range(y0 + lo * sh, y0 + hi * sh, sh):
                    t += rows[j, y]
                out[c, i, j] = t
    return out
