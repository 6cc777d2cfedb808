"""The mapped nest's DRAM access stream (accelsim.sim.dram_stream) and its use in simulate."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from accelsim.hw.load import load_hw
from accelsim.map.access import READS, UPDATES, analyse
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, LoopNest
from accelsim.sim.dram_stream import dram_ranges, layouts
from accelsim.sim.loopnest import simulate_layer_loopnest
from tests.dram_stream_oracle import oracle_bytes
from tests.sim_helpers import random_layer

EYERISS = "hw_configs/eyeriss_v1.yaml"


def random_case(seed: int):
    """A small random conv nest (stride, dilation, remainders), a random mapping over 4 levels
    and random keeps (every tensor kept below DRAM somewhere)."""
    rng = np.random.default_rng(seed)
    sh, sw = (int(x) for x in rng.integers(1, 3, 2))
    dh = int(rng.integers(1, 3))
    bounds = [int(rng.integers(1, 3)), 1, int(rng.integers(1, 5)), int(rng.integers(1, 5)),
              int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 4)),
              int(rng.integers(1, 4))]
    nest = LoopNest(tuple(bounds), sh, sw, dh, 1)
    nl = 4
    temporal = [[] for _ in range(nl)]
    spatial = [[] for _ in range(nl)]
    for d, b in zip(DIMS, bounds):
        if b == 1:
            continue
        if rng.random() < 0.3 and b > 2:       # a remainder: ceil(b / inner) x inner
            inner = int(rng.integers(2, b))
            factors = [-(-b // inner), inner]
        else:
            divs = [f for f in range(2, b + 1) if b % f == 0]
            f = int(rng.choice(divs))
            factors = [f, b // f] if b // f > 1 else [f]
        levels = sorted(int(x) for x in rng.integers(0, nl, len(factors)))
        for f, lv in zip(factors, levels):
            loop_sp = rng.random() < 0.3 and lv < nl - 1 and f > 1
            (spatial if loop_sp else temporal)[lv].append(
                Loop(d, f, spatial=bool(loop_sp), axis="X" if rng.random() < 0.5 else "Y"))
    for lv in range(nl):       # shuffle within a level, but keep each dim's outer loop first
        order = list(rng.permutation(len(temporal[lv])))
        temporal[lv] = _dim_order_kept([temporal[lv][i] for i in order], temporal[lv])
    mapping = Mapping(tuple(LevelLoops(f"L{i}", tuple(temporal[i]), tuple(spatial[i])) for i in range(nl)))
    keeps = [frozenset("WIO")]
    for lv in range(1, nl):
        keeps.append(frozenset(t for t in "WIO" if rng.random() < 0.5))
    for t in "WIO":
        if not any(t in k for k in keeps[1:]):
            lv = int(rng.integers(1, nl))
            keeps[lv] = keeps[lv] | {t}
    return nest, mapping, tuple(keeps)


def _dim_order_kept(shuffled, original):
    """``shuffled`` with each dim's loops back in their original relative order."""
    per_dim = {}
    for l in original:
        per_dim.setdefault(l.dim, []).append(l)
    out = []
    for l in shuffled:
        out.append(per_dim[l.dim].pop(0))
    return out


def stream_counter(nest, mapping, keeps, drop=False, pads=(0, 0), real=None, on_chip=frozenset()):
    regions = layouts(nest, {"W": 1, "I": 1, "O": 1}, pads, real, drop)
    out = Counter()
    for s, l, w in dram_ranges(nest, mapping, keeps, regions, on_chip, psum_bytes=1, chunk=7):
        for a, n, wr in zip(s.tolist(), l.tolist(), w.tolist()):
            out.update((x, wr) for x in range(a, a + n))
    return out, regions


def check_case(seed: int) -> None:
    nest, mapping, keeps = random_case(seed)
    try:
        mapping.check(nest)
    except Exception:
        return
    got, regions = stream_counter(nest, mapping, keeps)
    want = oracle_bytes(nest, mapping, keeps)
    assert got == want, f"seed {seed}: {mapping.render()}"
    # the totals are the fast model's DRAM accesses
    c = analyse(nest, mapping, keeps).counts[0]
    reads = sum(n for (a, w), n in got.items() if not w)
    writes = sum(n for (a, w), n in got.items() if w)
    assert reads == pytest.approx(c[0, READS] + c[1, READS] + c[2, READS]), seed
    assert writes == pytest.approx(c[2, UPDATES]), seed


@pytest.mark.parametrize("seed", range(25))
def test_stream_matches_brute_force_oracle_and_fast_counts(seed):
    check_case(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(25, 400))
def test_stream_matches_oracle_randomized(seed):
    check_case(seed)


def test_padding_is_not_fetched_and_residents_move_nothing():
    nest = LoopNest((1, 1, 2, 2, 4, 4, 3, 3), 1, 1, 1, 1)
    mapping = Mapping((LevelLoops("DRAM", (Loop("K", 2), Loop("P", 2))),
                       LevelLoops("buf", (Loop("C", 2), Loop("P", 2), Loop("Q", 4), Loop("R", 3),
                                          Loop("S", 3)))))
    keeps = (frozenset("WIO"), frozenset("WIO"))
    full, _ = stream_counter(nest, mapping, keeps)
    real = {"I": (0, 0, 0, 1, 1)}
    sizes = {"I": [1, 1, 2, 4, 4]}
    dropped, regions = stream_counter(nest, mapping, keeps, drop=True, pads=(1, 1), real=(4, 4))
    assert regions["I"].sizes == (1, 1, 2, 4, 4)
    assert dropped == oracle_bytes(nest, mapping, keeps, lo=real, sizes=sizes)
    assert sum(dropped.values()) < sum(full.values())
    # W resident: no W bytes at all; O on chip: no drains (the psum reads stay, as counted)
    no_w, regions = stream_counter(nest, mapping, keeps, on_chip=frozenset("W"))
    w_end = regions["W"].base + regions["W"].nbytes
    assert not any(a < w_end for a, _ in no_w) and any(a < w_end for a, _ in full)
    no_o, _ = stream_counter(nest, mapping, keeps, on_chip=frozenset("O"))
    assert not any(w for _, w in no_o)


# ---- through simulate on eyeriss ----------------------------------------------------------------
@pytest.fixture(scope="module")
def conv_layer():
    return random_layer(C=16, H=10, W=10, K=16, R=3, S=3, N=2, seed=3)


def _hw(**overrides):
    """eyeriss_v1 without its DRAM device (priced per bit), plus ``overrides``; a device given
    there is driven by the layers' access streams."""
    chosen = {"dram.device": None, **overrides}
    if chosen["dram.device"] is not None:
        chosen.setdefault("dram.access_stream", True)
    return load_hw(EYERISS, chosen)


def test_designs_without_device_unchanged(conv_layer, monkeypatch):
    from accelsim.sim import dram_stream

    hw = _hw()
    before = simulate_layer_loopnest(conv_layer, hw)
    called = []
    monkeypatch.setattr(dram_stream, "layer_dram", lambda *a, **k: called.append(1))
    after = simulate_layer_loopnest(conv_layer, hw)
    assert not called and before == after
    assert not any(k.startswith("dram_row") or k.startswith("energy_dram_activate") for k in before)


def test_stream_bytes_equal_row_bytes(conv_layer):
    """Without padding the stream moves exactly the row's DRAM bytes (dense formats)."""
    from accelsim.sim.dram_stream import stream_of
    from accelsim.sim.loopnest import _design, map_layer
    from accelsim.sim.residency import LayerContext

    layer = random_layer(C=16, H=8, W=8, K=24, R=3, S=3, N=2, seed=4)
    hw = _hw(**{"storage.activations": {"format": "dense"}, "storage.outputs": {"format": "dense"}})
    row = simulate_layer_loopnest(layer, hw, context=LayerContext(batch=2))
    mapped = map_layer(layer, hw, 2)
    nest = LoopNest.of_geometry(layer.geometry, 2)
    r = w = 0
    for s, l, wr in stream_of(layer, nest, mapped.mapping, _design(hw).arch, hw, LayerContext(batch=2),
                              (1.0, 1.0, 1.0), drop_padding=False):
        r += int(l[wr == 0].sum())
        w += int(l[wr == 1].sum())
    assert r / 2 == pytest.approx(row["dram_read_bytes"])
    assert w / 2 == pytest.approx(row["dram_write_bytes"])


def test_presets_differ_and_row_fields(conv_layer):
    rows = {}
    for dev in ("LPDDR5-6400", "HBM3"):
        hw = _hw(**{"dram.device": dev, "dram.bandwidth_gb_per_s": None})
        rows[dev] = simulate_layer_loopnest(conv_layer, hw)
    a, b = rows["LPDDR5-6400"], rows["HBM3"]
    for row in (a, b):
        assert 0.0 < row["dram_row_hit_rate"] <= 1.0
        assert row["dram_cycles"] > 0 and row["dram_achieved_gb_per_s"] > 0
        assert row["dram_bank_parallelism"] >= 1.0
        parts = sum(row[f"energy_dram_{k}_pj"] for k in
                    ("activate", "precharge", "read", "write", "refresh", "background", "io"))
        assert row["energy_dram_pj"] == pytest.approx(parts)
        assert row["level_DRAM_cycles"] == pytest.approx(row["dram_cycles"])
    assert a["dram_cycles"] != pytest.approx(b["dram_cycles"])
    assert a["energy_dram_pj"] != pytest.approx(b["energy_dram_pj"])


def test_dram_bound_layer_names_dram():
    """A slow single-channel DDR4 behind a fast array: DRAM binds and is the bottleneck."""
    layer = random_layer(C=256, H=2, W=2, K=512, R=1, S=1, N=1, seed=1)
    hw = _hw(**{"dram.device": "DDR4-3200", "dram.bandwidth_gb_per_s": None,
                "technology.clock_mhz": 2000})
    row = simulate_layer_loopnest(layer, hw)
    assert row["bottleneck"] == "DRAM"
    assert row["cycles"] == pytest.approx(row["dram_cycles"])


def test_sequential_walk_hits_rows_more_than_strided():
    """One weight tensor ``[K=64][C=1024]`` (1x1, 64-byte elements), two mappings: filling
    whole K rows walks the layout in order; filling one C column of every row at a time strides
    across it (one burst per row)."""
    from accelsim.dram.model import stream_ranges

    nest = LoopNest((1, 1, 64, 1024, 1, 1, 1, 1))
    keeps = (frozenset("WIO"), frozenset("WIO"))
    regions = layouts(nest, {"W": 64.0, "I": 64.0, "O": 64.0}, drop_padding=False)
    along = Mapping((LevelLoops("DRAM", (Loop("K", 64),)), LevelLoops("buf", (Loop("C", 1024),))))
    across = Mapping((LevelLoops("DRAM", (Loop("C", 1024),)), LevelLoops("buf", (Loop("K", 64),))))
    results = {}
    for name, mapping in (("along", along), ("across", across)):
        w_only = [(s[s < regions["I"].base], l[s < regions["I"].base], w[s < regions["I"].base])
                  for s, l, w in dram_ranges(nest, mapping, keeps, regions)]
        assert sum(int(l.sum()) for _, l, _ in w_only) == 64 * 1024 * 64
        results[name] = stream_ranges("LPDDR4X-4266", w_only)
    assert results["along"].row_hit_rate > results["across"].row_hit_rate + 0.3
    assert results["along"].cycles < results["across"].cycles


def test_network_totals_carry_dram_fields():
    from accelsim.sim.simulate import simulate

    layers = [random_layer(name="a", C=8, H=6, W=6, K=16, R=3, S=3, N=1, seed=5, index=0),
              random_layer(name="b", C=16, H=6, W=6, K=8, R=1, S=1, N=1, seed=6, index=1)]
    res = simulate(layers, _hw(**{"dram.device": "HBM3", "dram.bandwidth_gb_per_s": None}))
    rows = res.layers
    t = res.totals
    assert t["dram_cycles"] == pytest.approx(rows["dram_cycles"].sum())
    assert t["energy_dram_activate_pj"] == pytest.approx(rows["energy_dram_activate_pj"].sum())
    w = rows["dram_stream_bytes"]
    assert t["dram_row_hit_rate"] == pytest.approx((rows["dram_row_hit_rate"] * w).sum() / w.sum())
    plain = simulate(layers, _hw())
    assert "dram_row_hit_rate" not in plain.totals and "dram_cycles" not in plain.totals


def test_compressed_ratios_scale_runs_and_cached_streams_agree():
    """A layer's samples share the element stream (cached); the compressed ratios scale each
    run, so the bytes are the ratio times the dense bytes up to one byte per range."""
    from accelsim.sim import dram_stream
    from accelsim.sim.loopnest import _design, map_layer
    from accelsim.sim.residency import LayerContext

    layer = random_layer(C=8, H=8, W=8, K=16, R=3, S=3, N=1, seed=8, pad_h=1, pad_w=1)
    hw = _hw()
    mapping = map_layer(layer, hw, 1).mapping
    nest = LoopNest.of_geometry(layer.geometry, 1)
    arch = _design(hw).arch

    def collect(ratios):
        blocks = list(dram_stream.stream_of(layer, nest, mapping, arch, hw, LayerContext(), ratios))
        return [np.concatenate(x) for x in zip(*blocks)]

    dram_stream._BLOCKS.clear()
    dense = collect((1.0, 1.0, 1.0))
    assert len(dram_stream._BLOCKS) == 1
    again = collect((1.0, 1.0, 1.0))
    assert all(np.array_equal(a, b) for a, b in zip(dense, again))
    half = collect((1.0, 0.5, 0.25))
    assert np.array_equal(half[2], dense[2]) and len(half[0]) == len(dense[0])
    base_i = layouts(nest, {"W": 2.0, "I": 2.0, "O": 2.0})["I"].base
    base_o = layouts(nest, {"W": 2.0, "I": 2.0, "O": 2.0})["O"].base
    for lo, hi, ratio in ((0, base_i, 1.0), (base_i, base_o, 0.5)):
        sel = (dense[0] >= lo) & (dense[0] < hi)
        assert abs(half[1][sel].sum() - ratio * dense[1][sel].sum()) <= sel.sum()
        assert np.array_equal(half[0][sel] >= lo, np.ones(sel.sum(), dtype=bool))
