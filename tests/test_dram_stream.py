"""The mapped nest's DRAM access stream (accelsim.sim.dram_stream) and its use in simulate."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from accelsim.errors import ConfigError
from accelsim.hw.load import load_hw
from accelsim.hw.schema import DRAMLayout, TensorLayout
from accelsim.map.access import READS, UPDATES, analyse
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, TENSOR_NAMES, LoopNest
from accelsim.sim.dram_stream import (I_READ, O_READ, O_SPILL, O_WRITE, W_READ, dram_ranges,
                                      element_blocks, layouts)
from accelsim.sim.loopnest import simulate_layer_loopnest
from tests.dram_stream_oracle import oracle_bytes
from tests.sim_helpers import random_layer

EYERISS = "hw_configs/eyeriss_v1.yaml"


def random_case(seed: int, groups: bool = False, spatial: bool = True):
    """A small random conv nest (stride, dilation, remainders), a random mapping over 4 levels
    and random keeps (every tensor kept below DRAM somewhere). ``groups``: a random G too;
    ``spatial`` False: no spatial loop (a single PE)."""
    rng = np.random.default_rng(seed)
    sh, sw = (int(x) for x in rng.integers(1, 3, 2))
    dh = int(rng.integers(1, 3))
    bounds = [int(rng.integers(1, 3)), 1, int(rng.integers(1, 5)), int(rng.integers(1, 5)),
              int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 4)),
              int(rng.integers(1, 4))]
    if groups:
        bounds[1] = int(rng.integers(1, 4))
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
            loop_sp = rng.random() < 0.3 and lv < nl - 1 and f > 1 and spatial
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


def stream_counter(nest, mapping, keeps, drop=False, pads=(0, 0), real=None, on_chip=frozenset(),
                   layout=None):
    regions = layouts(nest, {"W": 1, "I": 1, "O": 1}, pads, real, drop, layout=layout,
                      mapping=mapping, keeps=keeps)
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


def code_counter(nest, mapping, keeps, on_chip=frozenset()):
    """Counter of ``(byte address, kind)`` over the element stream with unit elements: kind 0
    a read, 1 an output's final value written, 2 a partial sum written before its reduction
    ends."""
    regions = layouts(nest, {"W": 1, "I": 1, "O": 1}, mapping=mapping, keeps=keeps)
    base = [regions[t].base for t in "WIO"] + [regions["O"].base] * 2
    kind = {W_READ: 0, I_READ: 0, O_READ: 0, O_WRITE: 1, O_SPILL: 2}
    out = Counter()
    for s, l, c in element_blocks(nest, mapping, keeps, regions, on_chip, chunk=7):
        for a, n, code in zip(s.tolist(), l.tolist(), c.tolist()):
            out.update((base[code] + x, kind[code]) for x in range(a, a + n))
    return out


def check_spills(seed: int) -> None:
    nest, mapping, keeps = random_case(seed)
    try:
        mapping.check(nest)
    except Exception:
        return
    for on_chip in (frozenset(), frozenset("O")):
        got = code_counter(nest, mapping, keeps, on_chip)
        assert got == oracle_bytes(nest, mapping, keeps, on_chip=on_chip, spills=True), \
            f"seed {seed} {set(on_chip)}: {mapping.render()}"
    # every output element's value is written once; the fast model's other drains are spills
    got = code_counter(nest, mapping, keeps)
    finals = sum(n for (a, k), n in got.items() if k == 1)
    spills = sum(n for (a, k), n in got.items() if k == 2)
    n_, g, k, _, p, q, _, _ = nest.bounds
    assert finals == n_ * g * k * p * q and all(n == 1 for (a, k_), n in got.items() if k_ == 1)
    drains = analyse(nest, mapping, keeps).counts[0][2, UPDATES]
    assert finals + spills == pytest.approx(drains), seed


@pytest.mark.parametrize("seed", range(25))
def test_drains_split_into_final_values_and_spilled_partial_sums_as_the_oracle(seed):
    check_spills(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(25, 400))
def test_drains_split_into_final_values_and_spilled_partial_sums_randomized(seed):
    check_spills(seed)


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
    else:      # the shipped file streams under tile-major layouts: a design without a device
        chosen.update({"dram.access_stream": False, "dram.layout": {}})
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
    from accelsim.sim.design import resolve
    from accelsim.sim.loopnest import map_layer
    from accelsim.sim.residency import LayerContext

    layer = random_layer(C=16, H=8, W=8, K=24, R=3, S=3, N=2, seed=4)
    hw = _hw(**{"storage.activations": {"format": "dense"}, "storage.outputs": {"format": "dense"}})
    row = simulate_layer_loopnest(layer, hw, context=LayerContext(batch=2))
    mapped = map_layer(layer, hw, 2)
    nest = LoopNest.of_geometry(layer.geometry, 2)
    r = w = 0
    for s, l, wr in stream_of(layer, nest, mapped.mapping, resolve(hw).arch, hw, LayerContext(batch=2),
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
    from accelsim.sim.design import resolve
    from accelsim.sim.loopnest import map_layer
    from accelsim.sim.residency import LayerContext

    layer = random_layer(C=8, H=8, W=8, K=16, R=3, S=3, N=1, seed=8, pad_h=1, pad_w=1)
    hw = _hw()
    mapping = map_layer(layer, hw, 1).mapping
    nest = LoopNest.of_geometry(layer.geometry, 1)
    arch = resolve(hw).arch

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


# ---- declared layouts (dram.layout: order, tile_major, base) -----------------------------------
def _layout(spec: dict) -> DRAMLayout:
    """A :class:`DRAMLayout` from ``{"W": {"order": [...], "tile_major": bool, "base": int}}``."""
    return DRAMLayout(**{TENSOR_NAMES[t]: TensorLayout(tuple(v["order"]) if v.get("order") else None,
                                                       bool(v.get("tile_major")), v.get("base"))
                         for t, v in spec.items()})


def random_layout(rng) -> dict:
    """Per tensor: a random dimension order (G sometimes listed, anywhere), tile-major or not, and a
    declared base on a random MiB boundary sometimes."""
    from tests.dram_stream_oracle import NAMES

    free = list(rng.permutation(12))
    out = {}
    for t in "WIO":
        spec = {}
        if rng.random() < 0.7:
            dims = [d for d in NAMES[t] if d != "G"]
            order = [dims[i] for i in rng.permutation(len(dims))]
            if rng.random() < 0.4:        # G listed, anywhere
                order.insert(int(rng.integers(0, len(order) + 1)), "G")
            spec["order"] = order
        spec["tile_major"] = bool(rng.random() < 0.6)
        if rng.random() < 0.3:
            spec["base"] = int(free.pop()) << 20
        out[t] = spec
    return out


def check_layout_case(seed: int) -> None:
    """The stream under a random declared layout of a random nest (groups, padding, a single PE
    for some seeds) against the oracle's addresses computed from the layout's definition."""
    rng = np.random.default_rng(10_000 + seed)
    nest, mapping, keeps = random_case(seed, groups=True, spatial=seed % 4 != 3)
    try:
        mapping.check(nest)
    except Exception:
        return
    spec = random_layout(rng)
    pads = (0, 0)
    lo = sizes = None
    if seed % 3 == 0:         # padding: the stored input drops it
        ext = [(nest.bound(o) - 1) * s_ + (nest.bound(i) - 1) * d + 1
               for o, i, s_, d in (("P", "R", nest.stride_h, nest.dil_h), ("Q", "S", nest.stride_w, nest.dil_w))]
        pads = tuple(int(rng.integers(0, (e + 1) // 2)) for e in ext)
        lo = {"I": (0, 0, 0) + pads}
        sizes = {"I": [nest.bound("N"), nest.bound("G"), nest.bound("C")]
                 + [max(e - 2 * p, 1) if p else e for e, p in zip(ext, pads)]}
    got, regions = stream_counter(nest, mapping, keeps, drop=seed % 3 == 0, pads=pads,
                                  layout=_layout(spec))
    want = oracle_bytes(nest, mapping, keeps, lo=lo, sizes=sizes, layout=spec)
    assert got == want, f"seed {seed}: {spec} {mapping.render()}"
    for t, v in spec.items():
        if v.get("base") is not None:
            assert regions[t].base == v["base"]
    # the totals do not depend on the layout
    plain, _ = stream_counter(nest, mapping, keeps, drop=seed % 3 == 0, pads=pads)
    for w in (0, 1):
        assert sum(n for (a, wr), n in got.items() if wr == w) == \
            sum(n for (a, wr), n in plain.items() if wr == w), seed


@pytest.mark.parametrize("seed", [*range(16), 67])     # 67: blocks of one element, innermost
def test_declared_layouts_match_oracle(seed):
    check_layout_case(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(16, 216))
def test_declared_layouts_match_oracle_randomized(seed):
    check_layout_case(seed)


def _ranges(nest, mapping, keeps, layout, tensor="W"):
    regions = layouts(nest, {"W": 1, "I": 1, "O": 1}, drop_padding=False, layout=layout,
                      mapping=mapping, keeps=keeps)
    r = regions[tensor]
    out = []
    for s_, l, w in dram_ranges(nest, mapping, keeps, regions):
        sel = (s_ >= r.base) & (s_ < r.base + r.nbytes)
        out += [(int(a) - r.base, int(n)) for a, n in zip(s_[sel], l[sel])]
    return out


def test_tile_major_weights_one_range_per_tile():
    """W ``[K=4][C=4]`` (1x1) in 2x2 tiles, the DRAM loops K then C: row-major, each tile is two
    rows of two elements (two ranges); tile-major, tile ``(k, c)`` is the 4 elements at
    ``4 (2 k + c)`` (tiles in the loops' order), one range each."""
    nest = LoopNest((1, 1, 4, 4, 1, 1, 1, 1))
    mapping = Mapping((LevelLoops("DRAM", (Loop("K", 2), Loop("C", 2))),
                       LevelLoops("buf", (Loop("K", 2), Loop("C", 2)))))
    keeps = (frozenset("WIO"), frozenset("WIO"))
    row = _ranges(nest, mapping, keeps, None)
    assert row == [(0, 2), (4, 2), (2, 2), (6, 2), (8, 2), (12, 2), (10, 2), (14, 2)]
    tiled = _ranges(nest, mapping, keeps, _layout({"W": {"tile_major": True}}))
    assert tiled == [(0, 4), (4, 4), (8, 4), (12, 4)]
    # the loops C then K: tiles stored C-major, still one range each, in visiting order
    swapped = Mapping((LevelLoops("DRAM", (Loop("C", 2), Loop("K", 2))), mapping.levels[1]))
    assert _ranges(nest, swapped, keeps, _layout({"W": {"tile_major": True}})) == \
        [(0, 4), (4, 4), (8, 4), (12, 4)]
    # inside a tile, the declared order: [C][K] puts (k, c) at 2 c + k
    inner = _layout({"W": {"tile_major": True, "order": ["C", "K", "R", "S"]}})
    regions = layouts(nest, {"W": 1, "I": 1, "O": 1}, layout=inner, mapping=mapping, keeps=keeps)
    assert oracle_bytes(nest, mapping, keeps, layout={"W": {"tile_major": True,
                                                           "order": ["C", "K", "R", "S"]}}) == \
        stream_counter(nest, mapping, keeps, layout=inner)[0]
    assert regions["W"].elements == 16
    # blocks of one column along the innermost coordinate (an input row, S above the child):
    # block w holds [C=2] at 2 w + c, so the tile of columns 0, 1 is 0..3, the step adds 4, 5
    nest_s = LoopNest((1, 1, 1, 2, 1, 2, 1, 2))
    cols = Mapping((LevelLoops("DRAM", (Loop("S", 2),)), LevelLoops("buf", (Loop("C", 2), Loop("Q", 2)))))
    got = _ranges(nest_s, cols, keeps, _layout({"I": {"tile_major": True}}), "I")
    assert sorted(x for a, n in got for x in range(a, a + n)) == [0, 1, 2, 3, 4, 5]


def test_dimension_order_nhwc_inputs():
    """Inputs ``[N=1][C=3][H=2][W=2]`` (1x1 conv), one pixel's channels per tile: NCHW strides
    the channels 4 apart (3 ranges per pixel), NHWC stores them together (one range at
    ``3 (2 h + w)``)."""
    nest = LoopNest((1, 1, 1, 3, 2, 2, 1, 1))
    mapping = Mapping((LevelLoops("DRAM", (Loop("P", 2), Loop("Q", 2))),
                       LevelLoops("buf", (Loop("C", 3),))))
    keeps = (frozenset("WIO"), frozenset("WIO"))
    nchw = _ranges(nest, mapping, keeps, None, "I")
    assert nchw[:3] == [(0, 1), (4, 1), (8, 1)] and len(nchw) == 12
    nhwc = _ranges(nest, mapping, keeps, _layout({"I": {"order": ["N", "H", "W", "C"]}}), "I")
    # one range per pixel (touching ones of consecutive fills may merge), in pixel order
    assert [x for a, n in nhwc for x in range(a, a + n)] == list(range(12))
    assert len(nhwc) <= 4 and all(a % 3 == 0 and n % 3 == 0 for a, n in nhwc)


def test_tile_major_inputs_halo_in_neighbouring_tile():
    """A 3-tap 1-D convolution, ``P = 4`` in two tiles of 2 (``H = 6``), a ``K`` loop inside the
    ``P`` loop (so each tile is read whole): the input grid has blocks of the tile's step, 2
    rows, and the tile at ``p = 2`` (rows 2..5) is block 1 plus its halo, the first rows of
    block 2: one range of 4 at row 2; the first tile (rows 0..3) at row 0."""
    nest = LoopNest((1, 1, 2, 1, 4, 1, 3, 1))
    mapping = Mapping((LevelLoops("DRAM", (Loop("P", 2), Loop("K", 2))),
                       LevelLoops("buf", (Loop("P", 2), Loop("R", 3)))))
    keeps = (frozenset("WIO"), frozenset("WIO"))
    tiled = _layout({"I": {"tile_major": True}})
    regions = layouts(nest, {"W": 1, "I": 1, "O": 1}, layout=tiled, mapping=mapping, keeps=keeps)
    assert regions["I"].tile == (0, 0, 0, 2, 0) and regions["I"].elements == 6
    assert _ranges(nest, mapping, keeps, tiled, "I") == [(0, 4), (2, 4)]
    # C = 2 in each block: block b holds (c, row 2 b + r) at 4 b + 2 c + r ([C][H] inside), so a
    # tile is its block and the next one's rows: 8 contiguous elements from 4 b
    nest2 = LoopNest((1, 1, 2, 2, 4, 1, 3, 1))
    mapping2 = Mapping((mapping.levels[0],
                        LevelLoops("buf", (Loop("C", 2), Loop("P", 2), Loop("R", 3)))))
    assert _ranges(nest2, mapping2, keeps, tiled, "I") == [(0, 8), (4, 8)]
    nhwc = _layout({"I": {"tile_major": True, "order": ["N", "H", "W", "C"]}})
    assert _ranges(nest2, mapping2, keeps, nhwc, "I") == [(0, 8), (4, 8)]
    # row-major [C][H]: each tile is one run per channel
    assert _ranges(nest2, mapping2, keeps, None, "I") == [(0, 4), (6, 4), (2, 4), (8, 4)]
    # padding 1: stored rows are index rows 1..4, blocks of index rows [0, 2), [2, 4), [4, 6)
    # (3 blocks; index row 0 a hole): tile 0 reads rows 1..3 at 1..3, tile 1 rows 2..4 at 2..4
    padded = layouts(nest, {"W": 1, "I": 1, "O": 1}, (1, 0), None, True, layout=tiled,
                     mapping=mapping, keeps=keeps)["I"]
    assert padded.sizes[3] == 4 and padded.blocks[3] == 3 and padded.elements == 6
    got = stream_counter(nest, mapping, keeps, drop=True, pads=(1, 0), layout=tiled)[0]
    in_i = sorted(a - padded.base for a, w in got.elements() if padded.base <= a < padded.base + 6)
    assert in_i == [1, 2, 2, 3, 3, 4]
    assert got == oracle_bytes(nest, mapping, keeps, lo={"I": (0, 0, 0, 1, 0)},
                               sizes={"I": [1, 1, 1, 4, 1]}, layout={"I": {"tile_major": True}})


def test_declared_bases_place_and_overlaps_are_errors():
    nest = LoopNest((1, 1, 4, 4, 2, 2, 1, 1))
    mapping = Mapping((LevelLoops("DRAM", (Loop("K", 2),)),
                       LevelLoops("buf", (Loop("K", 2), Loop("C", 4), Loop("P", 2), Loop("Q", 2)))))
    keeps = (frozenset("WIO"), frozenset("WIO"))
    big = {"W": 3 << 20, "I": 1, "O": 1}     # W spans 48 MiB
    regions = layouts(nest, big, layout=_layout({"O": {"base": 0x4000000}}))
    assert (regions["W"].base, regions["I"].base, regions["O"].base) == (0, 48 << 20, 0x4000000)
    regions = layouts(nest, big, layout=_layout({"I": {"base": 0}}))
    assert (regions["I"].base, regions["W"].base, regions["O"].base) == (0, 1 << 20, 49 << 20)
    with pytest.raises(ConfigError, match=r"dram\.layout\.inputs\.base: .*overlaps weights"):
        layouts(nest, big, layout=_layout({"W": {"base": 0}, "I": {"base": 32 << 20}}))


@pytest.mark.parametrize("layout, message", [
    ({"weights": {"order": ["K", "C", "R", "X"]}}, r"dram\.layout\.weights\.order\[3\]: 'X' is not a dimension"),
    ({"inputs": {"order": ["N", "H", "H", "C"]}}, r"dram\.layout\.inputs\.order\[2\]: dimension 'H' is listed twice"),
    ({"outputs": {"order": ["N", "K", "P"]}}, r"dram\.layout\.outputs\.order: missing dimension\(s\) Q"),
    ({"weights": {"order": ["K", "C", "R", "S", "S"]}}, r"dram\.layout\.weights\.order\[4\]: dimension 'S' is listed twice"),
    ({"weights": {"order": []}}, r"dram\.layout\.weights\.order: expected a non-empty list"),
    ({"outputs": {"base": 0x4000010}}, r"dram\.layout\.outputs\.base: 0x4000010 is not a multiple of dram\.burst_bytes"),
    ({"weights": {"base": 0}, "outputs": {"base": 0}}, r"dram\.layout\.outputs\.base: 0x0 is also the base"),
    ({"inputs": {"base": -64}}, r"dram\.layout\.inputs\.base: expected a byte address"),
    ({"inputs": {"blocked": True}}, r"dram\.layout\.inputs\.blocked: unknown key"),
    ({"inputs": {"tile_major": "yes"}}, r"dram\.layout\.inputs\.tile_major: expected true or false"),
])
def test_layout_config_errors(layout, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_hw(EYERISS, {"dram.device": "LPDDR4X-4266", "dram.access_stream": True, "dram.layout": layout})
    assert "\n" not in str(err.value)


def test_layout_needs_device_and_loads():
    with pytest.raises(ConfigError, match=r"dram\.layout: is only meaningful with dram\.device"):
        load_hw(EYERISS, {"dram.device": None, "dram.layout": {"inputs": {"tile_major": True}}})
    hw = load_hw(EYERISS, {"dram.device": "LPDDR4X-4266", "dram.access_stream": True,
                           "dram.layout": {"weights": {"order": ["K", "C", "R", "S"]},
                                           "inputs": {"order": ["N", "H", "W", "C"], "tile_major": True},
                                           "outputs": {"base": 0x4000000}}})
    lay = hw.dram.layout
    assert lay.full_order("weights") == ("G", "K", "C", "R", "S")
    assert lay.full_order("inputs") == ("G", "N", "H", "W", "C")
    assert lay.full_order("outputs") == ("N", "G", "K", "P", "Q")
    listed = load_hw(EYERISS, {"dram.device": "LPDDR4X-4266",
                               "dram.layout": {"weights": {"order": ["K", "G", "C", "R", "S"]}}})
    assert listed.dram.layout.full_order("weights") == ("K", "G", "C", "R", "S")
    assert lay.inputs.tile_major and lay.outputs.base == 0x4000000
    shipped = load_hw(EYERISS).dram.layout     # eyeriss_v1 ships every tensor tile-major
    assert all(getattr(shipped, t).tile_major for t in ("weights", "inputs", "outputs"))


def test_tile_major_through_simulate_fewer_bursts(conv_layer):
    """On eyeriss with a device, tile-major weights and inputs move the same bytes in fewer,
    longer ranges: fewer bus bytes (whole bursts) and no more DRAM time than row-major."""
    base = {"dram.device": "LPDDR4X-4266", "dram.bandwidth_gb_per_s": None}
    row = simulate_layer_loopnest(conv_layer, _hw(**base, **{"dram.layout": {}}))
    tiled = simulate_layer_loopnest(conv_layer, _hw(**base, **{"dram.layout": {
        "weights": {"tile_major": True}, "inputs": {"tile_major": True},
        "outputs": {"tile_major": True}}}))
    assert tiled["dram_bytes"] == pytest.approx(row["dram_bytes"])
    assert tiled["dram_stream_bytes"] < row["dram_stream_bytes"]
    assert tiled["dram_cycles"] < row["dram_cycles"]
