"""The cheaper per-sample DRAM stream, each part against an independent reference: results
of repeated streams kept by their exact bytes (accelsim.sim.dram_stream.served) against a
fresh device fed the same stream; the mask's linear order with merged trailing coordinates,
its plan kept per region shape (accelsim.sim.dram_lengths.linear_order), against an
element-by-element walk of the layout's formula."""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.dram.model import stream_ranges
from accelsim.hw.load import load_hw
from accelsim.map.nest import LoopNest
from accelsim.sim import dram_stream
from accelsim.sim.design import resolve
from accelsim.sim.dram_lengths import linear_order
from accelsim.sim.dram_stream import Region
from accelsim.sim.loopnest import map_layer
from accelsim.sim.residency import LayerContext
from tests.sim_helpers import random_layer

EYERISS = "hw_configs/eyeriss_v1.yaml"


class _Dram:
    """The fields of ``hw.dram`` that :func:`dram_stream.served` reads."""

    def __init__(self, device="DDR4-3200", channels=1, address_mapping=None, page_policy="open"):
        self.device, self.channels = device, channels
        self.address_mapping, self.page_policy = address_mapping, page_policy


def _fresh(dram: _Dram, blocks: list):
    """The stream through a fresh device, no memo (the reference)."""
    return stream_ranges(dram.device, iter(blocks), dram.channels, dram.address_mapping,
                         dram.page_policy, coalesce=True)


def _random_stream(rng, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    starts = rng.integers(0, 1 << 24, n).astype(np.int64)
    lens = rng.integers(0, 300, n).astype(np.int64)
    writes = (rng.random(n) < 0.3).astype(np.int64)
    return starts, lens, writes


def _cut(stream, rng) -> list:
    """The stream cut into 1-3 blocks at random points."""
    n = stream[0].size
    cuts = sorted(rng.integers(0, n + 1, int(rng.integers(0, 3))).tolist())
    edges = [0, *cuts, n]
    return [tuple(a[lo:hi] for a in stream) for lo, hi in zip(edges, edges[1:])]


def _variants(stream, rng):
    """The stream with one input changed: a start, a length or a write flag."""
    starts, lens, writes = stream
    i = int(rng.integers(0, starts.size))
    for which, delta in ((0, 64), (1, 1), (2, None)):
        arrays = [a.copy() for a in stream]
        arrays[which][i] = 1 - arrays[which][i] if delta is None else arrays[which][i] + delta
        yield tuple(arrays)


def _check_memo(seed: int) -> None:
    rng = np.random.default_rng(seed)
    dram_stream._SERVED.clear()
    dram = _Dram(channels=int(rng.integers(1, 3)), page_policy=["open", "closed"][seed % 2])
    stream = _random_stream(rng, int(rng.integers(1, 60)))
    first = dram_stream.served(dram, iter(_cut(stream, rng)))
    assert first == _fresh(dram, [stream])
    again = dram_stream.served(dram, iter(_cut(stream, rng)))   # cut elsewhere: same stream
    assert again is first
    for other in _variants(stream, rng):
        got = dram_stream.served(dram, iter([other]))
        assert got is not first and got == _fresh(dram, [other])
    for changed in (_Dram(dram.device, dram.channels + 1, None, dram.page_policy),
                    _Dram(dram.device, dram.channels, None,
                          "open" if dram.page_policy == "closed" else "closed"),
                    _Dram("LPDDR4X-4266", dram.channels, None, dram.page_policy)):
        got = dram_stream.served(changed, iter([stream]))
        assert got is not first and got == _fresh(changed, [stream])
    assert dram_stream.served(dram, [stream]) is first
    dram_stream._SERVED.clear()
    assert dram_stream.served(dram, _cut(stream, rng)) == first      # a list: fed once


@pytest.mark.parametrize("seed", range(6))
def test_memoised_result_equals_a_fresh_device_and_any_change_misses(seed):
    _check_memo(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6, 206))
def test_memoised_result_many_seeds(seed):
    _check_memo(seed)


def test_memo_edges_empty_one_byte_long_streams_and_bounds(monkeypatch):
    dram = _Dram()
    dram_stream._SERVED.clear()
    empty = (np.zeros(0, dtype=np.int64),) * 3
    assert dram_stream.served(dram, iter([])) == _fresh(dram, [empty])
    assert dram_stream.served(dram, iter([empty])) is dram_stream.served(dram, iter([]))
    one = (np.array([5], dtype=np.int64), np.array([1], dtype=np.int64),
           np.array([0], dtype=np.int64))
    got = dram_stream.served(dram, iter([one]))
    assert got == _fresh(dram, [one]) and got.requests == 1
    assert got is not dram_stream.served(dram, iter([]))
    # a stream longer than MEMO_RANGES is served, not kept
    monkeypatch.setattr(dram_stream, "MEMO_RANGES", 8)
    rng = np.random.default_rng(3)
    long = _random_stream(rng, 20)
    kept = len(dram_stream._SERVED)
    blocks = _cut(long, rng)
    assert dram_stream.served(dram, iter(blocks)) == _fresh(dram, blocks)
    assert len(dram_stream._SERVED) == kept
    # at most CACHE_SERVED streams kept, least recently used dropped first
    monkeypatch.setattr(dram_stream, "CACHE_SERVED", 3)
    for n in range(1, 6):
        dram_stream.served(dram, iter([_random_stream(rng, n)]))
        assert len(dram_stream._SERVED) <= 3


@pytest.mark.parametrize("on_chip", [(False, False), (True, False), (True, True), (False, True)])
def test_layer_dram_over_samples_equals_it_without_the_memo(on_chip, monkeypatch):
    """Samples of one layer (different input masks and ratios): the same figures with the
    memo as with every stream served afresh, whatever the residency context keeps."""
    layer = random_layer(C=8, H=9, W=9, K=8, R=3, S=3, N=1, seed=5, pad_h=1, pad_w=1,
                         density_a=0.4, density_w=0.5)
    hw = load_hw(EYERISS, {"dram.device": "LPDDR4X-4266", "dram.access_stream": True,
                           "storage.weights": {"format": "bitmap"},
                           "storage.activations": {"format": "bitmap"},
                           "dram.layout": {"inputs": {"tile_major": True}}})
    nest = LoopNest.of_geometry(layer.geometry, 1)
    mapping = map_layer(layer, hw, 1).mapping
    arch = resolve(hw).arch
    ctx = LayerContext(network_input=False, input_on_chip=on_chip[0], output_on_chip=on_chip[1])
    wmask = np.asarray(layer.weight_mask(), dtype=bool)
    rng = np.random.default_rng(1)
    samples = [(rng.random(np.asarray(layer.act_mask()[:1]).shape) < 0.4,
                (0.6, 0.5 - 0.05 * (s % 2), 0.7)) for s in range(4)]

    def run():
        return [dram_stream.layer_dram(layer, nest, mapping, arch, hw, ctx, ratios,
                                       masks=(wmask, act)) for act, ratios in samples]

    dram_stream._SERVED.clear()
    memoised = run()
    # with the input on chip the samples' streams are one stream: served once
    assert len(dram_stream._SERVED) == (1 if on_chip[0] else len(samples))
    monkeypatch.setattr(dram_stream, "MEMO_RANGES", -1)      # nothing kept or looked up
    dram_stream._SERVED.clear()
    assert run() == memoised
    assert not dram_stream._SERVED


# ---- linear order with merged trailing coordinates ------------------------------------------
def _walked_order(region: Region, mask: np.ndarray) -> np.ndarray:
    """Plain Python over every stored element: its linear index from the class's formula."""
    off, step, outer, inner = region.coord_maps()
    out = np.zeros(region.elements, dtype=bool)
    for idx in np.ndindex(*region.sizes):
        x = [region.lo[c] + i - int(off[c]) for c, i in enumerate(idx)]
        pos = sum(int(outer[c]) * (x[c] // int(step[c])) + int(inner[c]) * (x[c] % int(step[c]))
                  for c in range(len(x)))
        out[pos] = mask[idx]
    return out


def _random_region(rng) -> Region:
    nc = int(rng.integers(1, 6))
    sizes = tuple(int(rng.choice([1, 1, 2, 3, 5, 17, 20])) for _ in range(nc))
    lo = tuple(int(v) for v in rng.integers(0, 3, nc))
    perm = tuple(int(v) for v in rng.permutation(nc))
    tile = tuple(int(rng.integers(1, 7)) if rng.random() < 0.6 else 0 for _ in range(nc))
    if not any(tile):
        tile = None
    order = tuple(c for c in rng.permutation(nc) if tile and tile[c])
    return Region("I", 0, sizes, lo, 1.0, perm=perm, tile=tile, block_order=order)


def _check_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    region = _random_region(rng)
    density = [0.0, 1.0, 0.5, 0.1][seed % 4]
    mask = rng.random(region.sizes) < density
    got = linear_order(region, mask)
    assert got.dtype == bool and got.shape == (region.elements,)
    np.testing.assert_array_equal(got, _walked_order(region, mask))
    other = ~mask          # the region's scatter plan kept: another mask, the same order
    np.testing.assert_array_equal(linear_order(region, other), _walked_order(region, other))


@pytest.mark.parametrize("seed", range(24))
def test_linear_order_equals_the_walk_of_the_formula(seed):
    _check_order(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(24, 424))
def test_linear_order_many_seeds(seed):
    _check_order(seed)


def test_linear_order_trailing_unit_and_short_coordinates():
    """A weight region tiled along its outputs with 1 x 1 (and 3 x 3) kernels: the short
    trailing coordinates are merged, the order unchanged."""
    rng = np.random.default_rng(0)
    for sizes, tile, order in (((1, 40, 24, 1, 1), (0, 16, 0, 0, 0), (1,)),
                               ((1, 20, 18, 3, 3), (0, 0, 7, 0, 0), (2,)),
                               ((1, 1, 1, 1, 1), (0, 0, 0, 0, 1), (4,))):
        region = Region("W", 0, sizes, (0,) * 5, 1.0, tile=tile, block_order=order)
        mask = rng.random(sizes) < 0.5
        np.testing.assert_array_equal(linear_order(region, mask), _walked_order(region, mask))
