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

import numpy as np
from numba import njit

from accelsim.numba_config import JIT
from accelsim.sim.kernels.bitops import popcount64


@njit(**JIT)
def pack_im2col(act, groups, kr, ks, out_p, out_q, stride_h, stride_w, pad_h, pad_w, dil_h,
                dil_w):
    """Packed im2col non-zero bits of a ``(C, H, W)`` mask (bool or uint8).

    Returns ``bits`` (G, P*Q, ceil(Kred/64)) ``uint64``, ``row_a`` (G, P*Q) and ``col_a``
    (G, Kred) ``int64``: non-zero activations per output pixel and per reduction index
    ``r = (c*R + u)*S + v`` (as :func:`accelsim.sim.kernels.im2col.code_counts` of the codes).
    """
    channels, height, width = act.shape
    cg = channels // groups
    kred = cg * kr * ks
    words = (kred + 63) // 64
    m_dim = out_p * out_q
    bits = np.zeros((groups, m_dim, words), dtype=np.uint64)
    col = np.zeros((groups, kred), dtype=np.int64)
    row = np.zeros((groups, m_dim), dtype=np.int64)
    a8 = act.view(np.uint8)   # bool or uint8 0/1 (the engine passes bool)
    for g in range(groups):
        for c in range(cg):
            ch = g * cg + c
            for u in range(kr):
                for v in range(ks):
                    r = (c * kr + u) * ks + v
                    w = r >> 6
                    shift = np.uint64(r & 63)
                    off = v * dil_w - pad_w          # x = q * stride_w + off
                    q_lo = 0
                    while q_lo < out_q and q_lo * stride_w + off < 0:
                        q_lo += 1
                    q_hi = out_q
                    while q_hi > q_lo and (q_hi - 1) * stride_w + off >= width:
                        q_hi -= 1
                    total = 0
                    for p in range(out_p):
                        y = p * stride_h - pad_h + u * dil_h
                        if y < 0 or y >= height:
                            continue
                        base = p * out_q
                        for q in range(q_lo, q_hi):   # branch-free: random masks mispredict
                            b = a8[ch, y, q * stride_w + off] != 0
                            bits[g, base + q, w] |= np.uint64(b) << shift
                            total += b
                    col[g, r] = total
        for m in range(m_dim):
            s = np.uint64(0)
            for w in range(words):
                s += popcount64(bits[g, m, w])
            row[g, m] = s
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
