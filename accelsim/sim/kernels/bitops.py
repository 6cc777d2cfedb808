"""Bit-packed operand vectors and the AND + popcount work-count kernel.

Operand masks are packed along the stream dimension into ``uint64`` words: bit ``j``
of word ``w`` of row ``x`` is element ``64 * w + j`` of that row. The number of
operand pairs of output ``(m, k)`` whose two operands are both non-zero is then
``sum_w popcount(a[m, w] & b[k, w])``: 64 MAC evaluations per AND + popcount.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import config as numba_config
from numba import njit, prange, types
from numba.extending import intrinsic

from accelsim.numba_config import JIT, JIT_PARALLEL


@intrinsic
def _ctpop64(typingctx, x):
    if x != types.uint64:
        return None
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return sig, codegen


if numba_config.DISABLE_JIT:  # plain-Python kernels (coverage runs): no LLVM intrinsic
    def popcount64(x):
        """Number of set bits of a ``uint64``."""
        return np.uint64(int(x).bit_count())
else:
    popcount64 = _ctpop64
    popcount64.__doc__ = "Number of set bits of a ``uint64`` (LLVM ``ctpop``: one POPCNT)."


@njit(**JIT)
def pack_equal_rows(codes, value):
    """Pack ``codes == value`` of a 2-D ``uint8`` array row by row into ``uint64`` words."""
    rows, length = codes.shape
    words = (length + 63) // 64
    out = np.zeros((rows, words), dtype=np.uint64)
    for x in range(rows):
        for w in range(words):
            start = w * 64
            stop = min(length, start + 64)
            word = np.uint64(0)
            for j in range(start, stop):
                word |= np.uint64(codes[x, j] == value) << np.uint64(j - start)
            out[x, w] = word
    return out


@njit(**JIT_PARALLEL)
def and_popcount(a, b):
    """``out[m, k] = sum_w popcount(a[m, w] & b[k, w])``; packed rows ``a`` (M, W), ``b`` (N, W)."""
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
    and_popcount_into(a, b, out)
    return out


@njit(**JIT_PARALLEL)
def and_popcount_into(a, b, out):
    """:func:`and_popcount` written into ``out`` (M, N) ``int32`` (e.g. one group of a work
    matrix: no temporary, no copy)."""
    m_rows, words = a.shape
    n_rows = b.shape[0]
    n4 = n_rows - n_rows % 4
    for m in prange(m_rows):
        for k in range(0, n4, 4):
            s0 = np.uint64(0)
            s1 = np.uint64(0)
            s2 = np.uint64(0)
            s3 = np.uint64(0)
            for w in range(words):
                x = a[m, w]
                s0 += popcount64(x & b[k, w])
                s1 += popcount64(x & b[k + 1, w])
                s2 += popcount64(x & b[k + 2, w])
                s3 += popcount64(x & b[k + 3, w])
            out[m, k] = s0
            out[m, k + 1] = s1
            out[m, k + 2] = s2
            out[m, k + 3] = s3
        for k in range(n4, n_rows):
            s = np.uint64(0)
            for w in range(words):
                s += popcount64(a[m, w] & b[k, w])
            out[m, k] = s


@njit(**JIT)
def popcount_rows(a):
    """Set bits of each packed row: ``out[x] = sum_w popcount(a[x, w])``."""
    rows, words = a.shape
    out = np.empty(rows, dtype=np.int64)
    for x in range(rows):
        s = np.uint64(0)
        for w in range(words):
            s += popcount64(a[x, w])
        out[x] = s
    return out


@njit(**JIT)
def count_packed_rows(packed, width):
    """Set bits of each row of ``np.packbits`` rows (``uint8`` (rows, ceil(width/8)), big bit
    order): the non-zeros of each row's first ``width`` elements (pad bits are ignored)."""
    rows = packed.shape[0]
    out = np.zeros(rows, dtype=np.int64)
    full = width // 8
    tail = width - full * 8
    last = (0xFF << (8 - tail)) & 0xFF
    for r in range(rows):
        s = np.uint64(0)
        for k in range(full):
            s += popcount64(np.uint64(packed[r, k]))
        if tail:
            s += popcount64(np.uint64(packed[r, full] & last))
        out[r] = s
    return out
