"""Bit counting for packed masks: ``popcount64`` (one POPCNT; the loop-nest model's block
counts AND two operands' packed words and count the set bits, 64 pairs a word) and the set
bits of ``np.packbits`` rows.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import config as numba_config
from numba import njit, types
from numba.extending import intrinsic

from accelsim.numba_config import JIT


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
