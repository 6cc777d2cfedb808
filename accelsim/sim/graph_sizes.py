"""Per-sample stored sizes of the tensors of a captured graph, in a design's formats.

A tensor produced by a traced layer is stored in the design's ``storage.outputs``
format, every other activation (the network input, the outputs of the ops between
layers) in ``storage.activations``; values have ``precision.activation_bits`` bits.
Sizes are exact counts from each sample's mask (:func:`accelsim.sim.storage.format_bits`);
a tensor without a mask (a shared tensor) gets the expected size at its recorded
density (dense when none is recorded). An alias (a view) has no storage of its own:
its size is its storage tensor's.
"""
from __future__ import annotations

import numpy as np

from accelsim.sim.storage import expected_bits, format_bits

LEVELS = ("on_chip", "off_chip")


def tensor_format(graph, tid: int, hw, level: str = "on_chip"):
    """The :class:`~accelsim.hw.schema.LevelFormat` tensor ``tid`` is stored in."""
    if level not in LEVELS:
        raise ValueError(f"level: expected one of {LEVELS}, got {level!r}")
    source = graph.tensors[graph.storage_of(tid)].source
    tensor = hw.storage.outputs if source == "layer" else hw.storage.activations
    return getattr(tensor, level)


def tensor_bits(graph, hw, samples: int | None = None, level: str = "on_chip") -> np.ndarray:
    """float64 (tensors, n): each tensor's stored bits per sample (aliases: their storage's)."""
    n = graph.num_samples if samples is None else max(1, min(int(samples), graph.num_samples))
    bits = np.zeros((len(graph.tensors), n), dtype=np.float64)
    value_bits = hw.precision.activation_bits
    for tensor in graph.tensors:
        if tensor.alias_of is not None:
            continue
        fmt = tensor_format(graph, tensor.id, hw, level)
        mask = graph.mask(tensor.id, n) if tensor.has_mask else None
        if mask is not None:
            bits[tensor.id] = [format_bits(mask[i], fmt.format, value_bits, fmt.run_bits,
                                           fmt.index_bits) for i in range(n)]
        else:
            density = 1.0 if tensor.density is None else tensor.density
            bits[tensor.id] = expected_bits((tensor.elements,), density, fmt.format, value_bits,
                                            fmt.run_bits, fmt.index_bits)
    for tensor in graph.tensors:
        if tensor.alias_of is not None:
            bits[tensor.id] = bits[graph.storage_of(tensor.id)]
    return bits
