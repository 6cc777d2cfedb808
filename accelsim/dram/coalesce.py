"""Burst coalescing of a transfer engine's requests before they reach the DRAM model.

DRAM moves whole bursts, so a range is served as every burst it touches
(:mod:`accelsim.dram.kernel`). A transfer engine that reads a tile as several small ranges
(a sliding window's new rows, the weights of the non-zero inputs, compressed runs) would
then fetch a burst shared by two neighbouring ranges twice. The engine modelled here keeps
the last burst it moved: a burst equal to the one just served in the same direction is not
requested again. Everything else is served as issued (no reordering, no wider cache).

:func:`coalesce` returns burst-aligned ranges (starts and lengths multiples of the burst), so
``lengths.sum()`` is the bytes the bus carries. The DRAM kernel applies the same rule while it
expands the ranges (``accelsim.dram.model.stream_ranges(..., coalesce=True)``, what
``dram_stream.layer_dram`` uses); this module stays its reference and the NumPy form.
"""
from __future__ import annotations

import numpy as np


def coalesce(starts: np.ndarray, lengths: np.ndarray, writes: np.ndarray, burst_bytes: int,
             last: tuple[int, int] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int] | None]:
    """Burst-aligned ``(starts, lengths, writes)`` of byte ranges served in order, a burst
    equal to the one served just before it in the same direction dropped; ``last`` is
    ``(burst index, is_write)`` of the burst served before this block (None at the start),
    and the fourth value is that of this block's last burst (to carry into the next)."""
    bb = int(burst_bytes)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    writes = np.asarray(writes, dtype=np.int64)
    keep = lengths > 0
    starts, lengths, writes = starts[keep], lengths[keep], writes[keep]
    if starts.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, last
    first = starts // bb
    final = (starts + lengths - 1) // bb
    w = writes != 0
    prev_final = np.empty_like(final)
    prev_w = np.empty_like(w)
    prev_final[1:], prev_w[1:] = final[:-1], w[:-1]
    if last is None:
        prev_final[0], prev_w[0] = -1, False
    else:
        prev_final[0], prev_w[0] = last[0], bool(last[1])
    repeat = (first == prev_final) & (w == prev_w)
    first = first + repeat
    served = first <= final
    out_last = (int(final[-1]), int(w[-1]))
    first, final, w = first[served], final[served], w[served]
    return first * bb, (final - first + 1) * bb, w.astype(np.int64), out_last


def coalesced_blocks(blocks, burst_bytes: int):
    """:func:`coalesce` over a stream of ``(starts, lengths, writes)`` blocks, the last burst
    carried across blocks (so the result does not depend on how the stream is cut)."""
    last = None
    for starts, lengths, writes in blocks:
        s, n, w, last = coalesce(starts, lengths, writes, burst_bytes, last)
        if s.size:
            yield s, n, w
