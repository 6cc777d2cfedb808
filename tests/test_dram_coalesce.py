"""Burst coalescing (accelsim.dram.coalesce) against a burst-by-burst walk of the stream."""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.dram.coalesce import coalesce, coalesced_blocks


def _walk(starts, lengths, writes, bb):
    """Every burst each range touches, in order, a burst dropped when it repeats the burst
    served just before it in the same direction."""
    served = []
    for s, n, w in zip(starts, lengths, writes):
        for b in range(s // bb, (s + n - 1) // bb + 1) if n > 0 else ():
            if served and served[-1] == (b, bool(w)):
                continue
            served.append((b, bool(w)))
    return served


def _bursts(starts, lengths, writes, bb):
    return [(b, bool(w)) for s, n, w in zip(starts, lengths, writes)
            for b in range(s // bb, (s + n) // bb)]


def _random_stream(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    starts = np.cumsum(rng.integers(-40, 80, n)) + 1000
    lengths = rng.integers(0, 90, n)
    writes = (rng.random(n) < 0.2).astype(np.int64)
    return starts.astype(np.int64), lengths.astype(np.int64), writes


def _check(seed):
    bb = int(np.random.default_rng(seed + 7).choice([1, 8, 32, 64]))
    starts, lengths, writes = _random_stream(seed)
    s, n, w, _ = coalesce(starts, lengths, writes, bb)
    assert np.all(s % bb == 0) and np.all(n % bb == 0) and np.all(n > 0)
    assert _bursts(s, n, w, bb) == _walk(starts, lengths, writes, bb), seed
    cut = int(np.random.default_rng(seed).integers(0, len(starts) + 1))   # any cut of the stream
    blocks = [(starts[:cut], lengths[:cut], writes[:cut]), (starts[cut:], lengths[cut:], writes[cut:])]
    got = [x for b in coalesced_blocks(blocks, bb) for x in _bursts(*b, bb)]
    assert got == _walk(starts, lengths, writes, bb), seed


@pytest.mark.parametrize("seed", range(20))
def test_coalesce_equals_the_burst_walk(seed):
    _check(seed)


@pytest.mark.slow
def test_coalesce_equals_the_burst_walk_many_seeds():
    for seed in range(20, 420):
        _check(seed)


def test_hand_counted():
    # 64-byte bursts: [0,10) [10,20) share burst 0 -> one burst; [60,70) touches 0 and 1 ->
    # burst 1 only; a write to burst 1 is not a repeat of a read; [200, 264) bursts 3, 4
    s, n, w, last = coalesce(np.array([0, 10, 60, 100, 200]), np.array([10, 10, 10, 8, 64]),
                             np.array([0, 0, 0, 1, 0]), 64)
    assert s.tolist() == [0, 64, 64, 192]
    assert n.tolist() == [64, 64, 64, 128]
    assert w.tolist() == [0, 0, 1, 0]
    assert last == (4, 0)
