"""Exact compressed sizes of a tensor in each storage format, from its zero mask.

Layouts (bits; ``b`` value bits, ``n`` elements, ``z`` non-zeros):

- ``dense``: ``n * b``;
- ``bitmap``: one presence bit per element plus the non-zero values: ``n + z * b``;
- ``run_length``: the tensor flattened in C order; each non-zero is an entry
  ``(run, value)`` of ``run_bits + b`` bits whose run counts the zeros since the
  previous entry. A gap of ``g`` zeros longer than ``2**run_bits - 1`` first needs
  ``g // 2**run_bits`` overflow entries (a zero value with the longest run, covering
  ``2**run_bits`` positions). Zeros after the last non-zero cost nothing (the
  length is known);
- ``csr``: the tensor as a matrix ``(shape[0], rest)``: ``rows + 1`` row pointers and
  one column index per non-zero, ``index_bits`` each, plus the values;
- ``coo``: one ``index_bits`` coordinate per tensor dimension per non-zero, plus the values;
- ``ranked``: per-rank formats (``U``, ``UOP``, ``CP``, ``B``, ``RLE``; :mod:`accelsim.sim.fibertree`),
  sized per sample.

:func:`expected_bits` gives the expected size of a tensor whose elements are
independently non-zero with probability ``d`` (used for outputs, whose masks are
not traced).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from accelsim.numba_config import JIT

FORMATS = ("dense", "bitmap", "run_length", "csr", "coo", "ranked")


def run_length_entries(mask: np.ndarray, run_bits: int) -> int:
    """Entries (non-zeros + overflow entries) of the run-length code of ``mask``."""
    flat = np.ascontiguousarray(np.asarray(mask, dtype=bool)).reshape(-1).view(np.uint8)
    return int(_run_length_entries(flat, min(int(run_bits), 62)))


_ALL_ONES = np.uint64(0x0101010101010101)   # eight bool bytes, all True


@njit(**JIT)
def _run_length_entries(flat, run_bits):
    """One pass: each non-zero is an entry, plus ``gap >> run_bits`` overflow entries for the
    ``gap`` zeros before it (zeros after the last non-zero cost nothing). Eight bytes at a
    time: all zero or all one take one step (long zero runs, dense tensors), others go byte
    by byte, branch-free."""
    n = flat.shape[0]
    n8 = n - n % 8
    entries = np.int64(0)
    gap = np.int64(0)
    words = flat[:n8].view(np.uint64)
    for w in range(words.shape[0]):
        x = words[w]
        if x == 0:
            gap += 8
        elif x == _ALL_ONES:
            entries += 8 + (gap >> run_bits)
            gap = 0
        else:
            for k in range(8 * w, 8 * w + 8):
                nz = np.int64(flat[k] != 0)
                entries += nz * (1 + (gap >> run_bits))
                gap = (gap + 1) * (1 - nz)
    for k in range(n8, n):
        nz = np.int64(flat[k] != 0)
        entries += nz * (1 + (gap >> run_bits))
        gap = (gap + 1) * (1 - nz)
    return entries


#: Formats whose size depends on the tensor's shape and non-zero count only (not positions).
COUNT_FORMATS = ("dense", "bitmap", "csr", "coo")


def format_bits(mask: np.ndarray, fmt: str, value_bits: int, run_bits: int = 4,
                index_bits: int = 16) -> int:
    """Exact size in bits of the tensor whose non-zero mask is ``mask`` stored as ``fmt``."""
    mask = np.asarray(mask, dtype=bool)
    if fmt == "run_length":
        return run_length_entries(mask, run_bits) * (run_bits + value_bits)
    nnz = 0 if fmt == "dense" else int(np.count_nonzero(mask))
    return count_bits(mask.shape, nnz, fmt, value_bits, index_bits)


def count_bits(shape: tuple[int, ...], nnz: int, fmt: str, value_bits: int,
               index_bits: int = 16) -> int:
    """:func:`format_bits` of a tensor of ``shape`` with ``nnz`` non-zeros, for the formats
    whose size does not depend on where the non-zeros are (:data:`COUNT_FORMATS`)."""
    n = math.prod(shape)
    if fmt == "dense":
        return n * value_bits
    if fmt == "bitmap":
        return n + nnz * value_bits
    if fmt == "csr":
        rows = shape[0] if len(shape) >= 1 else 1
        return (rows + 1) * index_bits + nnz * (index_bits + value_bits)
    if fmt == "coo":
        return nnz * (max(len(shape), 1) * index_bits + value_bits)
    if fmt in ("run_length", "ranked"):
        raise ValueError(f"storage format {fmt}: the size depends on where the non-zeros "
                         "are; use tensor_bits with the mask")
    raise ValueError(f"storage format: unknown {fmt!r}; expected one of {FORMATS}")


def expected_bits(shape: tuple[int, ...], density: float, fmt: str, value_bits: int,
                  run_bits: int = 4, index_bits: int = 16) -> float:
    """Expected size in bits of a tensor of ``shape`` with i.i.d. density ``density``.

    Run-length overflow entries use the geometric gap distribution: each non-zero
    is preceded by ``floor(gap / 2**run_bits)`` overflow entries on average
    ``q**L / (1 - q**L)`` with ``q = 1 - density``, ``L = 2**run_bits``.
    """
    n = float(math.prod(shape))
    d = min(max(float(density), 0.0), 1.0)
    nnz = n * d
    if fmt == "dense":
        return n * value_bits
    if fmt == "bitmap":
        return n + nnz * value_bits
    if fmt == "run_length":
        if d <= 0.0:
            return 0.0
        ql = (1.0 - d) ** (2 ** run_bits)
        overflow = ql / (1.0 - ql) if ql < 1.0 else 0.0
        return nnz * (1.0 + overflow) * (run_bits + value_bits)
    if fmt == "csr":
        rows = shape[0] if shape else 1
        return (rows + 1) * index_bits + nnz * (index_bits + value_bits)
    if fmt == "coo":
        return nnz * (max(len(shape), 1) * index_bits + value_bits)
    raise ValueError(f"storage format: unknown {fmt!r}; expected one of {FORMATS}")


def tensor_bits(mask: np.ndarray, tensor_format, value_bits: int, batched: bool = False) -> int:
    """Size in bits of ``mask``'s tensor in a :class:`~accelsim.hw.schema.TensorFormat` or
    :class:`~accelsim.hw.schema.LevelFormat` (``batched``: ``mask``'s first axis is the sample,
    and a ranked format sizes each sample's tensor)."""
    if tensor_format.format == "ranked":
        from accelsim.sim.fibertree import ranked_bits

        masks = mask if batched else (mask,)
        return sum(ranked_bits(m, tensor_format.ranks, value_bits, tensor_format.run_bits,
                               tensor_format.coord_bits, tensor_format.offset_bits) for m in masks)
    return format_bits(mask, tensor_format.format, value_bits, tensor_format.run_bits,
                       tensor_format.index_bits)


def metadata_bits(mask: np.ndarray, tensor_format, value_bits: int, batched: bool = False) -> int:
    """The metadata part of :func:`tensor_bits` (presence bits, runs, indices, coordinates,
    offsets): the size less the values it stores."""
    fmt = tensor_format.format
    if fmt == "dense":
        return 0
    mask = np.asarray(mask, dtype=bool)
    if fmt == "run_length":
        return run_length_entries(mask, tensor_format.run_bits) * tensor_format.run_bits
    if fmt == "ranked":   # a ranked size with zero-width values is its metadata
        from accelsim.sim.fibertree import ranked_bits

        masks = mask if batched else (mask,)
        return sum(ranked_bits(m, tensor_format.ranks, 0, tensor_format.run_bits,
                               tensor_format.coord_bits, tensor_format.offset_bits) for m in masks)
    return tensor_bits(mask, tensor_format, value_bits, batched) - int(np.count_nonzero(mask)) * value_bits


def expected_tensor_bits(shape: tuple[int, ...], samples: int, density: float, tensor_format,
                         value_bits: int, flat: bool = True) -> float:
    """Expected bits of ``samples`` tensors of per-sample ``shape`` at i.i.d. ``density`` in a
    tensor or level format (ranked formats per sample; the others by :func:`expected_bits` over
    one flat vector of every element, or over ``shape`` itself with ``flat=False``)."""
    if tensor_format.format == "ranked":
        from accelsim.sim.fibertree import expected_ranked_bits

        return samples * expected_ranked_bits(shape, density, tensor_format.ranks, value_bits,
                                              tensor_format.run_bits, tensor_format.coord_bits,
                                              tensor_format.offset_bits)
    whole = (samples * math.prod(shape),) if flat else tuple(shape)
    return expected_bits(whole, density, tensor_format.format, value_bits,
                         tensor_format.run_bits, tensor_format.index_bits)


def bits_to_bytes(bits: float) -> float:
    """Whole bytes holding ``bits`` (expected sizes stay fractional)."""
    if float(bits).is_integer():
        return float((int(bits) + 7) // 8)
    return bits / 8.0
