"""im2col of an activation mask: the GEMM operand of one sample.

Element codes (``uint8``): ``0`` a zero activation, ``1`` a non-zero activation,
``2`` a padding position (zero, and never stored or fetched).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from accelsim.numba_config import JIT, JIT_PARALLEL

ZERO = 0
NONZERO = 1
PAD = np.uint8(2)


@njit(**JIT_PARALLEL)
def im2col_codes(act, groups, kr, ks, out_p, out_q, stride_h, stride_w, pad_h, pad_w,
                 dil_h, dil_w):
    """Lower a ``(C, H, W)`` mask (bool or uint8) to codes ``(groups, P*Q, (C/groups)*R*S)``.

    Row ``m = p*Q + q`` is output pixel ``(p, q)``; column ``(c*R + u)*S + v`` is
    channel ``c`` of the group at filter tap ``(u, v)``: input position
    ``(p*stride_h - pad_h + u*dil_h, q*stride_w - pad_w + v*dil_w)``.
    """
    channels, height, width = act.shape
    cg = channels // groups
    kred = cg * kr * ks
    out = np.empty((groups, out_p * out_q, kred), dtype=np.uint8)
    for gp in prange(groups * out_p):
        g = gp // out_p
        p = gp % out_p
        for q in range(out_q):
            m = p * out_q + q
            for c in range(cg):
                ch = g * cg + c
                for u in range(kr):
                    y = p * stride_h - pad_h + u * dil_h
                    base = (c * kr + u) * ks
                    if y < 0 or y >= height:
                        for v in range(ks):
                            out[g, m, base + v] = PAD
                        continue
                    for v in range(ks):
                        x = q * stride_w - pad_w + v * dil_w
                        if x < 0 or x >= width:
                            out[g, m, base + v] = PAD
                        else:
                            out[g, m, base + v] = np.uint8(act[ch, y, x] != 0)
    return out


@njit(**JIT)
def code_counts(codes):
    """Counts of ``codes`` ``(G, X, L)``: per-column non-zeros ``(G, L)``, per-row non-zeros
    ``(G, X)``, per-column zeros ``(G, L)`` and padding per group ``(G,)``
    (non-zero: code 1, zero: code 0, padding: code 2)."""
    groups, rows, length = codes.shape
    col = np.zeros((groups, length), dtype=np.int64)
    col_zero = np.zeros((groups, length), dtype=np.int64)
    row = np.zeros((groups, rows), dtype=np.int64)
    pads = np.zeros(groups, dtype=np.int64)
    for g in range(groups):
        n_pad = 0
        for x in range(rows):
            s = 0
            for j in range(length):
                code = codes[g, x, j]
                nz = np.int64(code == 1)
                s += nz
                col[g, j] += nz
                col_zero[g, j] += np.int64(code == 0)
                n_pad += np.int64(code == 2)
            row[g, x] = s
        pads[g] = n_pad
    return col, row, col_zero, pads
