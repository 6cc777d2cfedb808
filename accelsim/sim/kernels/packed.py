"""Lowering straight to bit-packed operands: the AND + popcount kernel's words and counts.

:func:`pack_im2col` reads one sample's ``(C, H, W)`` activation mask once and writes the
im2col rows of every conv group as ``uint64`` words (bit ``j`` of word ``w`` of row ``m`` is
reduction index ``r = 64 * w + j``, the layout of
:func:`accelsim.sim.kernels.bitops.pack_equal_rows` applied to im2col code ``1``), together
with the non-zeros of every reduction index. No byte-per-element im2col matrix is built:
the output is 1 bit per im2col element. Padding positions are zero bits; their counts depend
on the geometry only (:func:`pad_columns`).
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from accelsim.numba_config import JIT
from accelsim.sim.kernels.bitops import popcount64


@njit(**JIT)
def _or_run(src, dst, shift):
    """``dst[k] |= (src[k] != 0) << shift`` over a contiguous run; returns its non-zeros."""
    total = 0
    for k in range(dst.shape[0]):
        b = src[k] != 0
        dst[k] |= np.uint64(b) << shift
        total += b
    return total


@njit(**JIT)
def _or_run_masked(src, dst, keep, shift):
    """:func:`_or_run` of ``src[k] & keep[k]`` (``keep`` 0/1: the run's real pixels)."""
    total = 0
    for k in range(dst.shape[0]):
        b = (src[k] != 0) & keep[k]
        dst[k] |= np.uint64(b) << shift
        total += b
    return total


@njit(**JIT)
def pack_im2col(act, groups, kr, ks, out_p, out_q, stride_h, stride_w, pad_h, pad_w, dil_h,
                dil_w):
    """Packed im2col non-zero bits of a ``(C, H, W)`` mask (bool or uint8).

    Returns ``bits`` (G, P*Q, ceil(Kred/64)) ``uint64``, ``row_a`` (G, P*Q) and ``col_a``
    (G, Kred) ``int64``: non-zero activations per output pixel and per reduction index
    ``r = (c*R + u)*S + v`` (as :func:`accelsim.sim.kernels.im2col.code_counts` of the codes).

    Each input channel is split into its stride phases (``y mod stride_h``, ``x mod
    stride_w``), each zero-padded so that every tap ``(u, v)`` reads one contiguous run of
    a phase plane (row pitch ``wq >= Q``; the ``wq - Q`` extra pixels per row are masked
    out). One reduction index at a time, the run's bits are ORed into a per-pixel
    accumulator of the current word (and counted: ``col_a``); every 64 indices the word
    column is stored and popcounted per pixel (``row_a``). Unstrided unpadded layers read
    the channel itself.
    """
    channels, height, width = act.shape
    cg = channels // groups
    kred = cg * kr * ks
    words = (kred + 63) // 64
    m_dim = out_p * out_q
    bits = np.zeros((groups, m_dim, words), dtype=np.uint64)
    col = np.zeros((groups, kred), dtype=np.int64)
    row = np.zeros((groups, m_dim), dtype=np.int64)
    if m_dim == 0 or kred == 0:
        return bits, row, col
    a8 = act.view(np.uint8)   # bool or uint8 0/1 (the engine passes bool)
    flat = a8.reshape(channels, height * width)
    # tap u reads input row y = (p + iy[u]) * stride_h + ry[u]; tap v column likewise
    iy = np.empty(kr, dtype=np.int64)
    ry = np.empty(kr, dtype=np.int64)
    for u in range(kr):
        off = u * dil_h - pad_h
        iy[u] = off // stride_h
        ry[u] = off - iy[u] * stride_h
    ix = np.empty(ks, dtype=np.int64)
    rx = np.empty(ks, dtype=np.int64)
    for v in range(ks):
        off = v * dil_w - pad_w
        ix[v] = off // stride_w
        rx[v] = off - ix[v] * stride_w
    iy0, ix0 = iy.min(), ix.min()
    hq = out_p + iy.max() - iy0
    wq = out_q + ix.max() - ix0
    run = (out_p - 1) * wq + out_q
    direct = (stride_h == 1 and stride_w == 1 and iy0 == 0 and ix0 == 0 and hq == height
              and wq == width)
    used = np.zeros((stride_h, stride_w), dtype=np.bool_)
    for u in range(kr):
        for v in range(ks):
            used[ry[u], rx[v]] = True
    planes = np.zeros((stride_h, stride_w, hq * wq), dtype=np.uint8)
    keep = np.zeros(run, dtype=np.uint8)
    for k in range(run):
        keep[k] = (k % wq) < out_q
    xcol = np.empty((stride_w, wq), dtype=np.int64)   # input column of a plane column, or -1
    for px in range(stride_w):
        for jj in range(wq):
            x = (jj + ix0) * stride_w + px
            xcol[px, jj] = x if 0 <= x < width else -1
    acc = np.zeros(run, dtype=np.uint64)
    for g in range(groups):
        j = 0
        w = 0
        for c in range(cg):
            ch = g * cg + c
            if not direct:   # the stride phases of channel ch, zero outside the input
                for py in range(stride_h):
                    for px in range(stride_w):
                        if not used[py, px]:
                            continue
                        plane = planes[py, px]
                        for ii in range(hq):
                            y = (ii + iy0) * stride_h + py
                            base = ii * wq
                            if y < 0 or y >= height:
                                for jj in range(wq):
                                    plane[base + jj] = 0
                                continue
                            for jj in range(wq):
                                x = xcol[px, jj]
                                plane[base + jj] = a8[ch, y, x] if x >= 0 else 0
            for u in range(kr):
                for v in range(ks):
                    shift = np.uint64(j)
                    start = (iy[u] - iy0) * wq + (ix[v] - ix0)
                    if direct:
                        src = flat[ch, start:start + run]
                    else:
                        src = planes[ry[u], rx[v], start:start + run]
                    if wq == out_q:
                        total = _or_run(src, acc, shift)
                    else:
                        total = _or_run_masked(src, acc, keep, shift)
                    col[g, (c * kr + u) * ks + v] = total
                    j += 1
                    if j == 64 or (c == cg - 1 and u == kr - 1 and v == ks - 1):
                        for p in range(out_p):   # store word column w, count it, clear it
                            for q in range(out_q):
                                k = p * wq + q
                                x64 = acc[k]
                                bits[g, p * out_q + q, w] = x64
                                row[g, p * out_q + q] += popcount64(x64)
                                acc[k] = 0
                        w += 1
                        j = 0
    return bits, row, col


@njit(**JIT)
def or_row_blocks(bits, size):
    """OR of consecutive blocks of ``size`` rows: (G, X, W) -> (G, ceil(X/size), W)."""
    groups, rows, words = bits.shape
    blocks = (rows + size - 1) // size
    out = np.zeros((groups, blocks, words), dtype=np.uint64)
    for g in range(groups):
        for x in range(rows):
            b = x // size
            for w in range(words):
                out[g, b, w] |= bits[g, x, w]
    return out


def unpack_bits(bits: np.ndarray, length: int) -> np.ndarray:
    """Packed rows (..., W) ``uint64`` -> bool (..., length) (inverse of the packing)."""
    as_bytes = np.ascontiguousarray(bits).view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, count=length, bitorder="little").view(bool)


def pad_columns(geometry) -> np.ndarray:
    """Padding positions per reduction index ``r = (c*R + u)*S + v`` of one conv group,
    ``int64`` (Kred,): output pixels whose tap ``(u, v)`` falls outside the input."""
    g = geometry
    ys = np.arange(g.P)[:, None] * g.stride_h - g.pad_h + np.arange(g.R)[None, :] * g.dil_h
    xs = np.arange(g.Q)[:, None] * g.stride_w - g.pad_w + np.arange(g.S)[None, :] * g.dil_w
    rows_in = ((ys >= 0) & (ys < g.H)).sum(axis=0).astype(np.int64)    # (R,)
    cols_in = ((xs >= 0) & (xs < g.W)).sum(axis=0).astype(np.int64)    # (S,)
    valid = rows_in[:, None] * cols_in[None, :]                          # (R, S)
    pads = g.P * g.Q - valid
    return np.ascontiguousarray(np.broadcast_to(pads[None], (g.c_per_group, g.R, g.S)).reshape(-1))


@functools.lru_cache(maxsize=64)
def pad_bits(geometry) -> tuple[np.ndarray, np.ndarray]:
    """Padding positions of one conv group's im2col matrix, packed as :func:`pack_im2col`'s
    bits: ``(bits (P*Q, ceil(Kred/64)) uint64, per-pixel counts (P*Q,) int64)`` (every group
    alike; the geometry's only, so cached per geometry; read-only)."""
    g = geometry
    ys = np.arange(g.P)[:, None] * g.stride_h - g.pad_h + np.arange(g.R)[None, :] * g.dil_h
    xs = np.arange(g.Q)[:, None] * g.stride_w - g.pad_w + np.arange(g.S)[None, :] * g.dil_w
    y_in = (ys >= 0) & (ys < g.H)                                         # (P, R)
    x_in = (xs >= 0) & (xs < g.W)                                         # (Q, S)
    pad = ~(y_in[:, None, :, None] & x_in[None, :, None, :])              # (P, Q, R, S)
    pad = np.broadcast_to(pad[:, :, None], (g.P, g.Q, g.c_per_group, g.R, g.S))
    kred = g.c_per_group * g.R * g.S
    flat = pad.reshape(g.P * g.Q, kred)
    words = (kred + 63) // 64
    full = np.zeros((g.P * g.Q, words * 64), dtype=bool)
    full[:, :kred] = flat
    bits = np.ascontiguousarray(np.packbits(full, axis=-1, bitorder="little")).view(np.uint64)
    bits = bits.reshape(g.P * g.Q, words)
    counts = flat.sum(axis=1, dtype=np.int64)
    bits.flags.writeable = False
    counts.flags.writeable = False
    return bits, counts
