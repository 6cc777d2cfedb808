"""The access stream with the layer's masks: compressed tensors move their real code, and
skipped weight fetches leave holes at the weights' addresses (accelsim.sim.dram_stream).

The expectations are derived here from the masks and the layouts' definitions (row-major
``[K][C][R][S]`` weights; input-major ``[C][K]`` for linear layers), not from the code under
test: a bitmap's bit position is the elements before it plus the values of the non-zeros
before it; a weight ``(k, c)`` is needed when input ``c`` is non-zero.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from accelsim.hw.load import load_hw
from accelsim.map.nest import LoopNest
from accelsim.sim import dram_stream, fetch
from accelsim.sim.dram_stream import layouts
from accelsim.sim.design import resolve
from accelsim.sim.loopnest import map_layer, simulate_layer_loopnest
from accelsim.sim.residency import LayerContext
from tests.sim_helpers import random_layer

EYERISS = "hw_configs/eyeriss_v1.yaml"
NPU = "hw_configs/edge_npu_lpddr.yaml"


def _stream(layer, hw, ctx, ratios, **kw):
    nest = LoopNest.of_geometry(layer.geometry, layer.geometry.N)
    mapping = map_layer(layer, hw, layer.geometry.N).mapping
    arch = resolve(hw).arch
    dram_stream._BLOCKS.clear()
    blocks = list(dram_stream.stream_of(layer, nest, mapping, arch, hw, ctx, ratios, **kw))
    starts, lens, writes = (np.concatenate(x) for x in zip(*blocks))
    regions = dram_stream.layouts(nest, {"W": 1.0, "I": 1.0, "O": 1.0})
    return starts, lens, writes, regions


@pytest.mark.parametrize("seed", range(3))
def test_compressed_weights_move_their_real_code(seed):
    layer = random_layer(C=8, H=6, W=6, K=12, R=3, S=3, N=1, seed=seed, density_w=0.3)
    hw = load_hw(EYERISS, {"dram.device": "LPDDR4X-4266", "dram.access_stream": True,
                           "storage.weights": {"format": "bitmap"}})
    ctx = LayerContext()
    wmask = np.asarray(layer.weight_mask(), dtype=bool)
    act = np.asarray(layer.act_mask()[:1], dtype=bool)
    b = hw.precision.weight_bits
    # the dense stream (b-bit weights) gives the element ranges
    s0, n0, w0, regions = _stream(layer, hw, ctx, (1.0, 1.0, 1.0))
    base_w, base_i = regions["W"].base, regions["I"].base
    sel0 = (s0 >= base_w) & (s0 < base_i)
    x, n = (s0[sel0] - base_w) * 8 // b, n0[sel0] * 8 // b
    # bitmap bit offset of element boundary x in [K][C][R][S] order
    nz = np.concatenate(([0], np.cumsum(wmask.reshape(-1))))
    bit = lambda v: v + b * nz[v]  # noqa: E731
    want = list(zip((bit(x) // 8).tolist(), (-(-bit(x + n) // 8) - bit(x) // 8).tolist()))
    s1, n1, _, _ = _stream(layer, hw, ctx, (1.0, 1.0, 1.0), masks=(wmask, act))
    sel1 = (s1 >= base_w) & (s1 < base_i)
    got = list(zip((s1[sel1] - base_w).tolist(), n1[sel1].tolist()))
    assert got == want
    # the whole code is the tensor's exact bitmap size
    assert -(-bit(wmask.size) // 8) == (wmask.size + b * int(wmask.sum()) + 7) // 8


def _elements(starts, lens, lo, hi):
    """Multiset of element indices (one byte each) the ranges inside [lo, hi) cover."""
    out = Counter()
    for s, n in zip(starts.tolist(), lens.tolist()):
        if lo <= s < hi:
            out.update(range(s - lo, s - lo + n))
    return out


@pytest.mark.parametrize("layout", ["input_major", "output_major"])
def test_skipped_inputs_leave_holes_at_their_weights(layout):
    """A decode-like linear layer: the weights of zero inputs are not read, where they lie."""
    C, K = 48, 16
    layer = random_layer(kind="linear", C=C, H=1, W=1, K=K, R=1, S=1, N=1, seed=5,
                         density_a=0.5, density_w=1.0)
    hw = load_hw(NPU, {"dram.weight_layout": layout})
    act = np.asarray(layer.act_mask()[:1], dtype=bool)
    need = fetch.needed_inputs(act)
    assert 0 < need.sum() < C
    ctx = LayerContext()
    s0, n0, _, regions = _stream(layer, hw, ctx, (1.0, 1.0, 1.0))
    s1, n1, _, _ = _stream(layer, hw, ctx, (1.0, 1.0, 1.0), needed_inputs=need)
    lo, hi = regions["W"].base, regions["I"].base
    dense, kept = _elements(s0, n0, lo, hi), _elements(s1, n1, lo, hi)
    channel = (lambda e: e // K) if layout == "input_major" else (lambda e: e % C)
    assert kept == Counter({e: m for e, m in dense.items() if need[channel(e)]})
    # everything else is untouched
    assert Counter(zip(s0[(s0 < lo) | (s0 >= hi)].tolist(), n0[(s0 < lo) | (s0 >= hi)].tolist())) \
        == Counter(zip(s1[(s1 < lo) | (s1 >= hi)].tolist(), n1[(s1 < lo) | (s1 >= hi)].tolist()))
    if layout == "input_major":   # one contiguous run per run of needed inputs (K bytes each)
        w_runs = n1[(s1 >= lo) & (s1 < hi)]
        assert w_runs.sum() == K * need.sum() * (sum(dense.values()) // (K * C))


def test_decode_stream_input_major_beats_output_major():
    """Through simulate: at half the inputs zero, the input-major stream moves fewer bytes than
    the output-major one (whose skipped weights are single bytes inside needed bursts); with
    every input non-zero both move the dense stream."""
    C, K = 512, 256
    rows = {}
    for density in (0.5, 1.0):
        layer = random_layer(kind="linear", C=C, H=1, W=1, K=K, R=1, S=1, N=1, seed=2,
                             density_a=density, density_w=1.0)
        for layout in ("input_major", "output_major"):
            hw = load_hw(NPU, {"dram.weight_layout": layout})
            rows[density, layout] = simulate_layer_loopnest(layer, hw)
    half_in, half_out = rows[0.5, "input_major"], rows[0.5, "output_major"]
    assert half_in["dram_stream_bytes"] < 0.7 * half_out["dram_stream_bytes"]
    assert half_in["dram_cycles"] < half_out["dram_cycles"]
    assert rows[1.0, "input_major"]["dram_stream_bytes"] == rows[1.0, "output_major"]["dram_stream_bytes"]
    # output-major at 50% random zeros: a 32-byte burst holds 32 inputs of one row, almost
    # never all zero, so nearly every weight burst is still read
    assert half_out["dram_stream_bytes"] >= 0.95 * rows[1.0, "output_major"]["dram_stream_bytes"]


def test_tile_major_compressed_inputs_move_their_code():
    """Eyeriss v1 codes activations run-length in DRAM; under a tile-major input layout (holes
    at the edge blocks) the input ranges carry the code's bytes: fewer than the dense bytes
    at this density, each range at least one byte when it holds a non-zero."""
    layer = random_layer(C=8, H=9, W=9, K=8, R=3, S=3, N=1, seed=4, pad_h=1, pad_w=1,
                         density_a=0.3)
    hw = load_hw(EYERISS, {"dram.device": "LPDDR4X-4266", "dram.access_stream": True,
                           "dram.layout": {"inputs": {"tile_major": True}}})
    assert hw.storage.activations.off_chip.format == "run_length"
    wmask = np.asarray(layer.weight_mask(), dtype=bool)
    act = np.asarray(layer.act_mask()[:1], dtype=bool)
    ctx = LayerContext(network_input=False)
    s0, n0, _, regions = _stream(layer, hw, ctx, (1.0, 1.0, 1.0))
    s1, n1, _, _ = _stream(layer, hw, ctx, (1.0, 1.0, 1.0), masks=(wmask, act))
    lo, hi = regions["I"].base, regions["O"].base
    dense_i = n0[(s0 >= lo) & (s0 < hi)].sum()
    coded_i = n1[(s1 >= lo) & (s1 < hi)].sum()
    assert 0 < coded_i < dense_i
    row = simulate_layer_loopnest(layer, hw, context=ctx)
    assert row["dram_stream_bytes"] > 0 and 0 < row["dram_row_hit_rate"] <= 1


@pytest.mark.parametrize("fmt", ["bitmap", "csr", "run_length"])
def test_layer_dram_equals_the_separate_coalescer(fmt):
    """layer_dram coalesces in the DRAM kernel, from cached layouts and element blocks: the
    same figures as the stream through accelsim.dram.coalesce then a plain device (computed
    here without the caches), for two samples of one layer (the second reuses the caches)."""
    from accelsim.dram.coalesce import coalesced_blocks
    from accelsim.dram.model import stream_ranges
    from accelsim.dram.presets import get_device

    layer = random_layer(C=8, H=9, W=9, K=8, R=3, S=3, N=1, seed=5, pad_h=1, pad_w=1,
                         density_a=0.4, density_w=0.5)
    hw = load_hw(EYERISS, {"dram.device": "LPDDR4X-4266", "dram.access_stream": True,
                           "storage.weights": {"format": fmt},
                           "dram.layout": {"inputs": {"tile_major": True}}})
    nest = LoopNest.of_geometry(layer.geometry, 1)
    mapping = map_layer(layer, hw, 1).mapping
    arch = resolve(hw).arch
    ctx = LayerContext(network_input=False)
    wmask = np.asarray(layer.weight_mask(), dtype=bool)
    rng = np.random.default_rng(1)
    d = hw.dram
    for sample, ratios in ((0, (0.6, 0.5, 0.7)), (1, (0.55, 0.45, 0.65))):
        act = rng.random(np.asarray(layer.act_mask()[:1]).shape) < 0.4
        for cache in (dram_stream._BLOCKS, dram_stream._LAYOUTS, dram_stream._CODES):
            if sample == 0:
                cache.clear()
        got = dram_stream.layer_dram(layer, nest, mapping, arch, hw, ctx, ratios,
                                     masks=(wmask, act))
        saved = {k: dict(v) for k, v in (("b", dram_stream._BLOCKS), ("l", dram_stream._LAYOUTS),
                                          ("c", dram_stream._CODES))}
        for cache in (dram_stream._BLOCKS, dram_stream._LAYOUTS, dram_stream._CODES):
            cache.clear()
        stream = dram_stream.stream_of(layer, nest, mapping, arch, hw, ctx, ratios,
                                       masks=(wmask, act))
        res = stream_ranges(d.device, coalesced_blocks(stream, get_device(d.device).burst_bytes),
                            d.channels, d.address_mapping, d.page_policy or "open")
        dram_stream._BLOCKS.update(saved["b"])
        dram_stream._LAYOUTS.update(saved["l"])
        dram_stream._CODES.update(saved["c"])
        assert got[2]["dram_stream_bytes"] == float(res.bytes) > 0
        assert got[2]["dram_row_hit_rate"] == res.row_hit_rate
        assert got[1] == res.total_energy_pj
        assert got[2]["dram_cycles"] == res.time_ns * hw.technology.clock_mhz * 1e-3


def test_cached_layouts_equal_fresh_ones_and_blocks_stay_bounded(monkeypatch):
    layer = random_layer(C=8, H=6, W=6, K=12, R=3, S=3, N=1, seed=2)
    hw = load_hw(EYERISS, {"dram.device": "LPDDR4X-4266", "dram.access_stream": True})
    nest = LoopNest.of_geometry(layer.geometry, 1)
    mapping = map_layer(layer, hw, 1).mapping
    arch = resolve(hw).arch
    geo = layer.geometry
    dense = {"W": 2.0, "I": 2.0, "O": 2.0}
    layout = dram_stream.stream_layout(hw, geo)
    dram_stream._LAYOUTS.clear()
    for elem in ({"W": 2.0, "I": 2.0, "O": 2.0}, {"W": 0.75, "I": 1.3, "O": 0.4}):
        got = dram_stream._layouts_of(nest, elem, dense, (1, 1), (int(geo.H), int(geo.W)), True,
                                      layout, mapping, arch.keeps)
        want = layouts(nest, elem, (1, 1), (int(geo.H), int(geo.W)), True, reserve_bytes=dense,
                       layout=layout, mapping=mapping, keeps=arch.keeps)
        assert got == want
    assert len(dram_stream._LAYOUTS) == 1
    # the element blocks: least recently used dropped first, never more than CACHE_TOTAL
    monkeypatch.setattr(dram_stream, "CACHE_TOTAL", 0)
    dram_stream._BLOCKS.clear()
    list(dram_stream.stream_of(layer, nest, mapping, arch, hw, LayerContext(), (1.0, 1.0, 1.0)))
    assert not dram_stream._BLOCKS
    monkeypatch.setattr(dram_stream, "CACHE_TOTAL", 1 << 20)

    def stream(k):
        other = random_layer(C=8, H=6, W=6, K=k, R=3, S=3, N=1, seed=2)
        onest = LoopNest.of_geometry(other.geometry, 1)
        list(dram_stream.stream_of(other, onest, map_layer(other, hw, 1).mapping, arch, hw,
                                   LayerContext(), (1.0, 1.0, 1.0)))
        return next(reversed(dram_stream._BLOCKS))      # its key: the most recent

    def held():
        return sum(len(b[0]) for v in dram_stream._BLOCKS.values() for b in v)

    dram_stream._BLOCKS.clear()
    a, b = stream(12), stream(16)
    assert a != b and len(dram_stream._BLOCKS) == 2
    assert stream(12) == a                       # a hit: now the most recently used
    monkeypatch.setattr(dram_stream, "CACHE_TOTAL", held())
    c = stream(4)
    assert c not in (a, b) and b not in dram_stream._BLOCKS and a in dram_stream._BLOCKS
    assert held() <= dram_stream.CACHE_TOTAL
