"""Per-sample stored sizes of the tensors of a captured graph, in a design's formats.

A tensor produced by a traced layer is stored in the design's ``storage.outputs``
format, every other activation (the network input, the outputs of the ops between
layers) in ``storage.activations``; values have ``precision.activation_bits`` bits.
Sizes are exact counts from each sample's mask in its per-sample shape
(:func:`accelsim.sim.storage.format_bits`; formats that need only the non-zero count read
the packed rows without unpacking them);
a tensor without a mask (a shared tensor) gets the expected size at its recorded
density (dense when none is recorded). An alias (a view) has no storage of its own:
its size is its storage tensor's.
"""
from __future__ import annotations

import math
import weakref
from collections import OrderedDict

import numpy as np

from accelsim.sim.kernels.bitops import count_packed_rows
from accelsim.sim.storage import COUNT_FORMATS, count_bits, expected_tensor_bits
from accelsim.sim.storage import tensor_bits as storage_bits

LEVELS = ("on_chip", "off_chip")


def tensor_format(graph, tid: int, hw, level: str = "on_chip"):
    """The :class:`~accelsim.hw.schema.LevelFormat` tensor ``tid`` is stored in."""
    if level not in LEVELS:
        raise ValueError(f"level: expected one of {LEVELS}, got {level!r}")
    source = graph.tensors[graph.storage_of(tid)].source
    tensor = hw.storage.outputs if source == "layer" else hw.storage.activations
    return getattr(tensor, level)


def _spec(fmt) -> tuple:
    return (fmt.format, fmt.run_bits, fmt.index_bits, tuple(fmt.ranks), fmt.coord_bits,
            fmt.offset_bits)


#: {graph: {(level formats, value bits, samples): bits}}: a simulation asks for the same sizes
#: several times (residency, vector ops, liveness); the masks are read once for all levels.
_MEMO: "weakref.WeakKeyDictionary[object, OrderedDict]" = weakref.WeakKeyDictionary()
_MEMO_ENTRIES = 16   # per graph (a sweep varies the formats)


def tensor_bits(graph, hw, samples: int | None = None, level: str = "on_chip") -> np.ndarray:
    """float64 (tensors, n): each tensor's stored bits per sample (aliases: their storage's).

    Masks are read a block of samples at a time, once for both levels (kept per graph)."""
    n = graph.num_samples if samples is None else max(1, min(int(samples), graph.num_samples))
    value_bits = hw.precision.activation_bits
    keys = {lv: (tuple(_spec(tensor_format(graph, t.id, hw, lv)) for t in graph.tensors),
                 value_bits, n) for lv in (level,) + tuple(x for x in LEVELS if x != level)}
    try:
        memo = _MEMO.setdefault(graph, OrderedDict())
    except TypeError:   # not weak-referenceable: nothing kept
        memo = OrderedDict()
    if keys[level] not in memo:
        for lv, bits in _tensor_bits(graph, hw, n, value_bits, list(keys)).items():
            memo[keys[lv]] = bits
        while len(memo) > _MEMO_ENTRIES:
            memo.popitem(last=False)
    memo.move_to_end(keys[level])
    return memo[keys[level]].copy()


def _tensor_bits(graph, hw, n: int, value_bits: int, levels: list[str]) -> dict:
    """{level: bits (tensors, n)} from one pass over the masks."""
    out = {lv: np.zeros((len(graph.tensors), n), dtype=np.float64) for lv in levels}
    for tensor in graph.tensors:
        if tensor.alias_of is not None:
            continue
        fmts = {lv: tensor_format(graph, tensor.id, hw, lv) for lv in levels}
        if tensor.has_mask:
            distinct = {_spec(fmt): fmt for fmt in fmts.values()}
            for rows, sizes in _mask_sizes(graph, tensor, n, list(distinct.values()), value_bits):
                for spec, size in zip(distinct, sizes):
                    for lv in levels:
                        if _spec(fmts[lv]) == spec:
                            out[lv][tensor.id, rows] = size
        else:
            density = 1.0 if tensor.density is None else tensor.density
            for lv, fmt in fmts.items():
                out[lv][tensor.id] = expected_tensor_bits(sample_shape(tensor), 1, density, fmt,
                                                          value_bits)
    for bits in out.values():
        for tensor in graph.tensors:
            if tensor.alias_of is not None:
                bits[tensor.id] = bits[graph.storage_of(tensor.id)]
    return out


def sample_shape(tensor) -> tuple[int, ...]:
    """A graph tensor's per-sample shape (its flat size when the recorded shape disagrees)."""
    shape = tuple(int(d) for d in tensor.shape)
    return shape if shape and math.prod(shape) == tensor.elements else (int(tensor.elements),)


def _mask_sizes(graph, tensor, n: int, fmts: list, value_bits: int):
    """``(rows, [bits per sample of each format])`` a block of samples at a time. Formats whose
    size needs only the non-zero count take the counts the trace records, or popcount the
    packed rows (no unpacking); a run-length format reads the masks."""
    shape = sample_shape(tensor)
    if all(fmt.format in COUNT_FORMATS for fmt in fmts):
        nnz = graph.nonzeros(tensor.id, n)   # recorded by the writer: no mask is read
        if nnz is not None:
            blocks = [(0, nnz)]
        else:
            packed = graph.packed_blocks(tensor.id, n)
            blocks = None if packed is None else (
                (start, count_packed_rows(rows, tensor.elements)) for start, rows in packed)
        if blocks is not None:
            for start, counts in blocks:
                yield slice(start, start + len(counts)), [
                    [count_bits(shape, int(c), fmt.format, value_bits, fmt.index_bits)
                     for c in counts] for fmt in fmts]
            return
    for start, mask in graph.mask_blocks(tensor.id, n):
        masks = mask.reshape((mask.shape[0],) + shape)
        yield slice(start, start + mask.shape[0]), [
            [storage_bits(m, fmt, value_bits) for m in masks]
            for fmt in fmts]
