"""Bit-level helpers: mask packing and exact compressed-size counts.

Masks are packed with ``np.packbits`` (big bit order) over the C-order flattening
of one sample (activations: C, H, W) or of the whole weight tensor (K, C/g, R, S).
"""
from __future__ import annotations

import numpy as np


def pack_rows(mask: np.ndarray) -> np.ndarray:
    """Pack a boolean array (n, ...) into uint8 rows (n, ceil(prod(...)/8))."""
    mask = np.asarray(mask, dtype=bool)
    return np.packbits(mask.reshape(mask.shape[0], -1), axis=1)


def unpack_rows(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pack_rows`: uint8 rows -> boolean array of ``shape``."""
    per_row = int(np.prod(shape[1:], dtype=np.int64))
    bits = np.unpackbits(packed, axis=1, count=per_row)
    return bits.view(bool).reshape(shape)


def pack_flat(mask: np.ndarray) -> np.ndarray:
    """Pack a boolean array of any shape into a 1-D uint8 array."""
    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1))


def unpack_flat(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pack_flat`."""
    count = int(np.prod(shape, dtype=np.int64))
    return np.unpackbits(packed, count=count).view(bool).reshape(shape)


def packed_row_bytes(elements: int) -> int:
    """Bytes of one packed row of ``elements`` bits."""
    return (int(elements) + 7) // 8


def rle_entries(mask: np.ndarray, run_bits: int) -> int:
    """Entries of a zero-run-length encoding of each row of ``mask`` (n, ...).

    Each non-zero is one entry holding the count of zeros before it in a
    ``run_bits``-wide field. A run longer than ``2**run_bits - 1`` needs an extra
    entry (an explicit zero value with the longest run) per ``2**run_bits``
    skipped positions. Trailing zeros of a row cost nothing (its length is known).
    """
    if run_bits < 1:
        raise ValueError(f"run_bits: expected a positive integer, got {run_bits!r}")
    mask = np.asarray(mask, dtype=bool)
    rows = mask.reshape(mask.shape[0], -1) if mask.ndim > 1 else mask.reshape(1, -1)
    width = rows.shape[1]
    flat = np.flatnonzero(rows)
    if flat.size == 0:
        return 0
    row = flat // width
    col = flat % width
    prev = np.empty_like(col)
    prev[0] = -1
    prev[1:] = np.where(row[1:] == row[:-1], col[:-1], -1)
    zeros_before = col - prev - 1
    overflow = zeros_before >> run_bits  # floor(z / 2**run_bits)
    return int(flat.size + overflow.sum())


def storage_bits(mask: np.ndarray, value_bits: int, run_bits: int) -> dict[str, int]:
    """Exact sizes in bits of ``mask``'s tensor stored dense, as bitmap and run-length.

    ``mask`` is (n, ...): one row per independently encoded tensor (a sample).
    """
    mask = np.asarray(mask, dtype=bool)
    elements = int(mask.size)
    rows = mask.shape[0] if mask.ndim > 1 else 1
    row_elements = elements // max(rows, 1)
    nnz = int(np.count_nonzero(mask))
    return {
        "dense": elements * value_bits,
        "bitmap": rows * packed_row_bytes(row_elements) * 8 + nnz * value_bits,
        "rle": rle_entries(mask, run_bits) * (run_bits + value_bits),
    }
