"""The systolic dataflow as a mode of the loop-nest model (issue 23 item 3).

Targets, fixed before the implementation:
- dense cycles, folds and the buffer's input/filter reads equal SCALE-Sim 3.0.0's recorded runs
  (``tests/fixtures/scalesim``; cycles = its last-cycle index + 1), partial-sum writes too for
  weight and input stationary (SCALE-Sim's output-stationary write count carries its
  ``folds * (rows + cols)`` quirk, see ``tests/test_sim_scalesim.py``);
- sparse compute cycles and issued slots equal a brute force written from SCALE-Sim's fold
  definition (operand matrix built element by element from the convolution's index algebra,
  folds walked one by one, each paying fill + drain plus its busiest PE's issued slots);
- the shipped TPU-like design, ported from the flat form to the mapped form, keeps the flat
  engine's compute cycles and folds exactly and its energy within 1 %.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sim_helpers import make_hw, random_layer
from test_sim_scalesim import DATAFLOWS, _layer

from accelsim.errors import ConfigError
from accelsim.hw import load_hw
from accelsim.map.access import READS, UPDATES
from accelsim.sim import simulate
from accelsim.sim.design import resolve
from accelsim.sim.systolic import lower, systolic_result
from accelsim.trace.geometry import LayerGeometry

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "scalesim"
STATIONARY = {"output_stationary": "outputs", "weight_stationary": "weights",
              "input_stationary": "inputs"}
#: SCALE-Sim's fill + drain per fold (its demand matrices): OS rows + cols - 2, WS/IS
#: 2 rows + cols - 2.
FILL_DRAIN = {"output_stationary": lambda r, c: r + c - 2,
              "weight_stationary": lambda r, c: 2 * r + c - 2,
              "input_stationary": lambda r, c: 2 * r + c - 2}


def _systolic_hw(dataflow: str, rows: int, cols: int, **extra):
    levels = [{"name": "glb", "keeps": ["weights", "inputs", "outputs"], "instances": "one",
               "word_bits": 8, "read_words_per_cycle": 1 << 16},
              {"name": "reg", "keeps": [STATIONARY[dataflow]], "instances": "per_pe",
               "size_bytes": 4, "word_bits": 8}]
    pe = {"rows": rows, "cols": cols, "dataflow": dataflow, "systolic": True}
    pe.update(extra.pop("pe_array", {}))
    return make_hw(pe_array=pe, memory_hierarchy=levels, **extra)


def _runs():
    if not FIXTURES.is_dir():
        return []
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("schema") == "accelsim.scalesim_run/1" and not data.get("sparsity_support"):
            out.append(pytest.param(data, id=path.stem))
    return out


@pytest.mark.parametrize("run", _runs())
def test_dense_cycles_and_buffer_reads_equal_scalesim(run):
    dataflow = DATAFLOWS[run["dataflow"]]
    hw = _systolic_hw(dataflow, run["rows"], run["cols"])
    layers = [_layer(row, i) for i, row in enumerate(run["layers"])]
    rows = simulate(layers, hw).layers.to_dict(orient="records")
    arch = resolve(hw).arch
    for layer, row, ours in zip(layers, run["layers"], rows):
        mapping = row["mapping"]
        assert ours["macs_dense"] == row["macs"]
        assert ours["folds"] == mapping["row_folds"] * mapping["col_folds"]
        assert ours["compute_cycles"] == row["total_cycles"] + 1
        low = lower(layer.geometry, layer.act_mask(1)[:1], layer.weight_mask())
        c = systolic_result(layer.name, low.nest, arch, dataflow).counts.counts
        sram = row["sram"]
        assert c[1, 1, READS] == sram["ifmap_reads"]
        assert c[1, 0, READS] == sram["filter_reads"]
        if dataflow != "output_stationary":
            assert c[1, 2, UPDATES] == sram["ofmap_writes"]


def _operand(act: np.ndarray, geo, outside: bool = False) -> np.ndarray:
    """The operand matrix (G, C/G * R * S, N * P * Q) built element by element: entry
    ((c, r, s), (n, p, q)) is the input at row p * stride - pad + r * dilation (``outside``
    where that position is padding)."""
    g, cg = geo.groups, geo.C // geo.groups
    n_, _, h, w = act.shape
    out = np.full((g, cg * geo.R * geo.S, n_ * geo.P * geo.Q), outside, dtype=bool)
    for gi in range(g):
        for c in range(cg):
            for r in range(geo.R):
                for s in range(geo.S):
                    row = (c * geo.R + r) * geo.S + s
                    for n in range(n_):
                        for p in range(geo.P):
                            for q in range(geo.Q):
                                y = p * geo.stride_h - geo.pad_h + r * geo.dil_h
                                x = q * geo.stride_w - geo.pad_w + s * geo.dil_w
                                if 0 <= y < h and 0 <= x < w:
                                    out[gi, row, (n * geo.P + p) * geo.Q + q] = act[n, gi * cg + c, y, x]
    return out


def _check_operand_matrix(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = int(rng.choice([1, 1, 2, 3]))
    r, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    h = int(rng.integers((r - 1) * dh + 1, 9))
    w = int(rng.integers((s - 1) * dw + 1, 9))
    geo = LayerGeometry("conv2d" if g == 1 else "grouped_conv2d", N=1,
                        C=g * int(rng.integers(1, 4)), H=h, W=w, K=g, R=r, S=s,
                        stride_h=int(rng.integers(1, 4)), stride_w=int(rng.integers(1, 4)),
                        pad_h=int(rng.integers(0, 3)), pad_w=int(rng.integers(0, 3)),
                        dil_h=dh, dil_w=dw, groups=g)
    b = int(rng.integers(1, 4))
    act = rng.random((b, geo.C, h, w)) < rng.choice([0.0, 0.5, 1.0])
    wmask = np.ones(geo.weight_shape, dtype=bool)
    low = lower(geo, act, wmask, with_padding=True)
    want = _operand(act, geo).reshape(1, -1, b * geo.P * geo.Q, 1)
    assert np.array_equal(low.act, want), (seed, geo)
    if geo.pad_h or geo.pad_w:      # the padding positions: the operand of ones, outside False
        ones = np.ones_like(act)
        inside = _operand(ones, geo).reshape(want.shape)
        pad = np.zeros_like(want) if low.pad is None else low.pad
        assert np.array_equal(pad, ~inside), (seed, geo)


@pytest.mark.parametrize("seed", range(20))
def test_operand_matrix_equals_the_element_by_element_walk(seed):
    _check_operand_matrix(seed)


@pytest.mark.slow
def test_operand_matrix_equals_the_element_by_element_walk_many_seeds():
    for seed in range(20, 420):
        _check_operand_matrix(seed)


def test_lowered_weights_are_kept_per_mask_object():
    # a layer's batches share its weight mask: the same operand array each time; another mask
    # of the same shape (another layer, or the same one changed into a new array) its own
    geo = LayerGeometry("conv2d", N=1, C=3, H=5, W=5, K=4, R=3, S=3)
    rng = np.random.default_rng(0)
    act = rng.random((1, 3, 5, 5)) < 0.5
    first = rng.random(geo.weight_shape) < 0.5
    second = ~first
    a, b = lower(geo, act, first), lower(geo, act, first)
    assert a.weights is b.weights
    assert np.array_equal(a.weights.reshape(4, -1), first.reshape(4, -1))
    other = lower(geo, act, second)
    assert np.array_equal(other.weights.reshape(4, -1), second.reshape(4, -1))
    assert np.array_equal(lower(geo, act, first).weights, a.weights)


def _brute_effectual(layer) -> int:
    """Slots whose input (never padding) and weight are both non-zero, one sample."""
    geo = layer.geometry
    a = _operand(np.asarray(layer.act_mask(1)[:1], dtype=bool), geo)
    w = np.asarray(layer.weight_mask(), dtype=bool).reshape(geo.groups, geo.K // geo.groups, -1)
    return sum(int((a[g][:, :, None] & w[g].T[:, None, :]).sum()) for g in range(geo.groups))


def _brute_cycles(layer, hw) -> tuple[int, int]:
    """(compute cycles, issued slots) of one sample, fold by fold."""
    geo = layer.geometry
    pe, sp = hw.pe_array, hw.sparsity
    act = np.asarray(layer.act_mask(1)[:1], dtype=bool)
    # a slot is issued unless its input is a skipped zero: padding positions are zeros that
    # activation skipping still issues unless sparsity.skip_padding
    a = _operand(act, geo, outside=not sp.skip_padding)               # (G, C', M)
    w = np.asarray(layer.weight_mask(), dtype=bool).reshape(geo.groups, geo.K // geo.groups, -1)
    rows, cols, lanes = pe.rows, pe.cols, pe.macs_per_pe
    total = issued = 0
    for g in range(geo.groups):
        # issued[c', m, k]: the slot of reduction c', pixel m, filter k happens
        slot = np.ones((a.shape[1], a.shape[2], w.shape[1]), dtype=bool)
        if sp.skip_zero_activations:
            slot &= a[g][:, :, None]
        if sp.skip_zero_weights:
            slot &= w[g].T[:, None, :]
        sizes = {"C": a.shape[1], "M": a.shape[2], "K": w.shape[1]}
        y, x, _ = {"output_stationary": ("M", "K", "C"), "weight_stationary": ("C", "K", "M"),
                   "input_stationary": ("C", "M", "K")}[pe.dataflow]
        for fx in range(math.ceil(sizes[x] / cols)):
            for fy in range(math.ceil(sizes[y] / rows)):
                busiest = 0
                for i in range(rows):
                    for j in range(cols):
                        idx = {y: fy * rows + i, x: fx * cols + j}
                        if idx[y] >= sizes[y] or idx[x] >= sizes[x]:
                            continue
                        sel = [idx.get(d, slice(None)) for d in ("C", "M", "K")]
                        work = int(slot[tuple(sel)].sum())
                        issued += work
                        busiest = max(busiest, -(-work // lanes))
                total += FILL_DRAIN[pe.dataflow](rows, cols) + busiest
    return total, issued


def _case(seed: int):
    rng = np.random.default_rng(seed)
    dataflow = list(STATIONARY)[seed % 3]
    groups = int(rng.choice([1, 1, 2]))
    geometry = dict(C=groups * int(rng.integers(1, 4)), K=groups * int(rng.integers(1, 5)),
                    R=int(rng.integers(1, 4)), S=int(rng.integers(1, 4)),
                    stride_h=int(rng.integers(1, 3)), stride_w=int(rng.integers(1, 3)),
                    pad_h=int(rng.integers(0, 2)), pad_w=int(rng.integers(0, 2)),
                    dil_h=int(rng.integers(1, 3)), dil_w=1, groups=groups,
                    kind="conv2d" if groups == 1 else "grouped_conv2d")
    geometry["H"] = (geometry["R"] - 1) * geometry["dil_h"] + 1 + int(rng.integers(0, 5))
    geometry["W"] = geometry["S"] + int(rng.integers(0, 5))
    density = [0.0, 1.0, 0.5, 0.3][seed % 4]
    layer = random_layer("l", density, 0.6, seed=seed, **geometry)
    rows, cols = (1, 1) if seed % 7 == 0 else (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    skip_a, skip_w = bool(seed % 2), bool((seed // 2) % 2)
    hw = _systolic_hw(dataflow, rows, cols,
                      sparsity={"skip_zero_activations": skip_a, "skip_zero_weights": skip_w,
                                "skip_padding": bool((seed // 4) % 2)})
    return layer, hw


def _check(seed: int) -> None:
    layer, hw = _case(seed)
    row = simulate([layer], hw, samples=1).layers.iloc[0]
    cycles, issued = _brute_cycles(layer, hw)
    assert row["compute_cycles"] == cycles, seed
    assert row["macs_issued"] == issued, seed
    # reported as the layer's own: effectual pairs on any design, the real input's density
    assert row["macs_effectual"] == _brute_effectual(layer), seed
    assert row["act_density"] == pytest.approx(float(np.mean(layer.act_mask(1)[:1])), abs=1e-12)


@pytest.mark.parametrize("seed", range(16))
def test_sparse_cycles_equal_a_fold_by_fold_walk(seed):
    _check(seed)


@pytest.mark.slow
def test_sparse_cycles_equal_a_fold_by_fold_walk_many_seeds():
    for seed in range(16, 216):
        _check(seed)


@pytest.mark.parametrize("seed", range(4))
def test_a_dense_loop_nest_design_reports_its_effectual_pairs(seed):
    # no skipping, no gating: every slot is issued, and macs_effectual still counts the pairs
    # whose operands are both non-zero (docs/simulator.md), as the flat engine reports them
    levels = [{"name": "glb", "keeps": ["weights", "inputs", "outputs"], "instances": "one"},
              {"name": "spad", "keeps": ["weights", "inputs", "outputs"], "instances": "per_pe",
               "size_bytes": 64}]
    hw = make_hw(pe_array={"rows": 3, "cols": 4, "dataflow": "row_stationary"},
                 memory_hierarchy=levels)
    layer = random_layer("l", 0.4, 0.5, seed=seed, C=3, H=7, W=6, K=4, R=3, S=3, pad_h=1,
                         pad_w=1, stride_h=1 + seed % 2)
    row = simulate([layer], hw, samples=1).layers.iloc[0]
    assert row["macs_issued"] == row["macs_dense"]
    assert row["macs_effectual"] == _brute_effectual(layer)


def test_hand_counted_weight_stationary_layer():
    # 1x1 conv, C=3, K=2, 2x2 pixels on a 2x2 array: rows take C (2 folds: 2 + 1), columns K;
    # each fold streams M = 4 pixels and pays 2*2 + 2 - 2 = 4: 2 * (4 + 4) = 16 cycles
    layer = random_layer("l", 1.0, 1.0, C=3, K=2, H=2, W=2, R=1, S=1)
    row = simulate([layer], _systolic_hw("weight_stationary", 2, 2)).layers.iloc[0]
    assert row["compute_cycles"] == 16
    assert row["folds"] == 2
    assert row["fill_drain_cycles"] == 8


@pytest.mark.parametrize("change, field", [
    ({"pe_array": {"dataflow": "row_stationary"}}, "pe_array.dataflow"),
    ({"dram": {"ideal": False, "bandwidth_gb_per_s": 10, "device": "DDR4-3200",
               "access_stream": True}}, "dram.access_stream"),
])
def test_what_the_lowered_gemm_cannot_represent_is_refused(change, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        _systolic_hw("weight_stationary", 4, 4, **change)


def test_a_pe_keeping_a_streamed_tensor_is_refused():
    levels = [{"name": "glb", "keeps": ["weights", "inputs", "outputs"], "instances": "one"},
              {"name": "reg", "keeps": ["weights", "outputs"], "instances": "per_pe",
               "size_bytes": 8}]
    with pytest.raises(ConfigError, match=r"memory_hierarchy\[1\]\.keeps"):
        make_hw(pe_array={"rows": 4, "cols": 4, "dataflow": "weight_stationary", "systolic": True},
                memory_hierarchy=levels)
    with pytest.raises(ConfigError, match="pe_array.systolic"):
        make_hw(pe_array={"rows": 4, "cols": 4, "dataflow": "weight_stationary", "systolic": True})


def test_shipped_tpu_like_keeps_the_flat_engine_figures():
    from accelsim.trace import open_trace

    import yaml

    from accelsim.hw import load_hw_dict

    trace = open_trace(REPO / "traces" / "lenet5_digits_dual.trace")
    path = REPO / "hw_configs" / "dense_ws_tpu_like.yaml"
    # the same design in the flat form it was shipped in before the port (flat engine)
    raw = yaml.safe_load(path.read_text())
    del raw["memory_hierarchy"], raw["pe_array"]["systolic"]
    raw["scratchpad"] = {"input_bytes": 2, "weight_bytes": 2, "psum_bytes": 4}
    raw["global_buffer"] = {"size_kib": 512, "banks": 16, "words_per_cycle": 64, "word_bits": 8}
    flat = simulate(trace, load_hw_dict(raw), samples=2)
    mapped_hw = load_hw(path)
    assert mapped_hw.memory_hierarchy is not None and mapped_hw.pe_array.systolic
    mapped = simulate(trace, mapped_hw, samples=2)
    a, b = flat.layers, mapped.layers
    assert list(a["compute_cycles"]) == list(b["compute_cycles"])
    assert list(a["folds"]) == list(b["folds"])
    assert b["energy_pj"].sum() == pytest.approx(a["energy_pj"].sum(), rel=0.01)
    assert b["cycles"].sum() == pytest.approx(a["cycles"].sum(), rel=0.01)


def test_cycle_fidelity_pays_the_same_folds():
    layer = random_layer("l", 1.0, 1.0, C=5, K=7, H=6, W=6, R=3, S=3, pad_h=1, pad_w=1)
    hw = _systolic_hw("weight_stationary", 4, 3)
    fast = simulate([layer], hw).layers.iloc[0]
    cycle = simulate([layer], hw, fidelity="cycle").layers.iloc[0]
    assert cycle["compute_cycles"] == fast["compute_cycles"]     # dense: the same fold schedule
    assert cycle["cycles"] >= cycle["compute_cycles"]


def test_an_operand_matrix_beyond_the_limit_is_refused(monkeypatch):
    from accelsim.errors import MappingError
    from accelsim.sim import systolic

    monkeypatch.setattr(systolic, "MAX_OPERAND_ELEMENTS", 100)
    layer = random_layer("big", 1.0, 1.0, C=4, K=2, H=6, W=6, R=3, S=3)   # 36 x 16 = 576
    with pytest.raises(MappingError, match="layer 'big'.*576 elements"):
        simulate([layer], _systolic_hw("weight_stationary", 4, 4))


def test_a_dram_bound_stream_cut_into_chunks_reads_each_input_once():
    # ResNet-50's layer1.1.conv1 (1x1, 256 -> 64 channels, 56x56) on the TPU-like flat design
    # with a slow DRAM link: its operand matrix does not fit the buffer whole, so SCALE-Sim's
    # column folds at DRAM would read the input once per column fold (2 x 802,816 B); cutting
    # the pixel stream into chunks that fit reads each input byte once (the weights, kept on
    # chip here, would otherwise be read once per chunk), fewer bytes on the link that bounds
    # the layer (the extra folds' fill and drain cost less)
    layer = random_layer("layer1.1.conv1", 1.0, 1.0, C=256, K=64, H=56, W=56, R=1, S=1)
    hw = load_hw(REPO / "tests" / "fixtures" / "systolic_designs" / "dense_ws_tpu_like.yaml",
                 {"dram.bandwidth_gb_per_s": 2})
    row = simulate([layer], hw).layers.iloc[0]
    assert row["stream_chunks"] > 1
    assert row["dram_act_read_bytes"] == 256 * 56 * 56
    # with the design's own link the layer is compute-bound: the column folds at DRAM win
    fast_link = simulate([layer], load_hw(REPO / "tests" / "fixtures" / "systolic_designs"
                                          / "dense_ws_tpu_like.yaml")).layers.iloc[0]
    assert fast_link["cycles"] <= row["cycles"]


@pytest.mark.parametrize("seed", range(6))
def test_the_systolic_choice_is_the_fastest_fitting_placement_and_chunking(seed):
    # every placement with every chunk count (brute force, not the bisection): the chosen
    # mapping is the fastest run dense, then the one moving the fewest DRAM bits
    from accelsim.errors import MappingError
    from accelsim.map.fixed import fixed_result
    from accelsim.map.nest import LoopNest
    from accelsim.sim import systolic
    from accelsim.sim.systolic import lowered_geometry

    rng = np.random.default_rng(seed)
    dataflow = ("output_stationary", "weight_stationary", "input_stationary")[seed % 3]
    layer = random_layer("l", 1.0, 1.0, C=int(rng.integers(2, 9)), K=int(rng.integers(2, 9)),
                         H=int(rng.integers(4, 9)), W=int(rng.integers(4, 9)), R=3, S=3,
                         pad_h=1, pad_w=1)
    levels = [{"name": "glb", "keeps": ["weights", "inputs", "outputs"], "instances": "one",
               "word_bits": 8, "size_bytes": int(rng.integers(96, 600))},
              {"name": "reg", "keeps": [STATIONARY[dataflow]], "instances": "per_pe",
               "size_bytes": 4, "word_bits": 8}]
    hw = make_hw(pe_array={"rows": 4, "cols": 3, "dataflow": dataflow, "systolic": True},
                 memory_hierarchy=levels,
                 dram={"ideal": False, "bandwidth_gb_per_s": float(rng.choice([0.05, 1.0, 50.0]))})
    arch = resolve(hw).arch
    nest = LoopNest.of_geometry(lowered_geometry(layer.geometry, 1))
    stream = systolic.ROLES[dataflow][2]
    options = []
    for where in systolic.PLACEMENTS:
        for chunks in range(1, nest.bound(stream) + 1):
            try:
                options.append(fixed_result("l", systolic.systolic_mapping(
                    nest, arch, dataflow, where, chunks), nest, arch))
            except MappingError:
                continue
    chosen = systolic.systolic_result("l", nest, arch, dataflow)
    best = min(systolic._dense_time(r, arch, dataflow, frozenset()) for r in options)
    assert systolic._dense_time(chosen, arch, dataflow, frozenset()) == best


def _distinct_inputs(geo, batch: int, m0: int, pixels: int, r0: int, reduction: int) -> int:
    """Distinct real inputs (sample, channel, row, column) of an operand-matrix tile, walked
    element by element from the convolution's index algebra (padding reads nothing)."""
    seen = set()
    for m in range(m0, m0 + pixels):
        n, rest = divmod(m, geo.P * geo.Q)
        p, q = divmod(rest, geo.Q)
        for r in range(r0, r0 + reduction):
            c, tap = divmod(r, geo.R * geo.S)
            u, v = divmod(tap, geo.S)
            h = p * geo.stride_h - geo.pad_h + u * geo.dil_h
            w = q * geo.stride_w - geo.pad_w + v * geo.dil_w
            if 0 <= h < geo.H and 0 <= w < geo.W:
                seen.add((n, c, h, w))
    return len(seen)


def _check_input_tile_bound(seed: int) -> None:
    from accelsim.sim.systolic import input_tile_bound

    rng = np.random.default_rng(seed)
    while True:     # a geometry whose filter fits its padded input
        r, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        try:
            geo = LayerGeometry("conv2d", N=1, C=int(rng.integers(1, 4)),
                                H=int(rng.integers(3, 9)), W=int(rng.integers(3, 9)), K=2, R=r,
                                S=s, stride_h=int(rng.integers(1, 3)),
                                stride_w=int(rng.integers(1, 3)), pad_h=int(rng.integers(0, r)),
                                pad_w=int(rng.integers(0, s)), dil_h=int(rng.integers(1, 3)),
                                dil_w=int(rng.integers(1, 3)))
            break
        except ValueError:
            continue
    batch = int(rng.integers(1, 3))
    m_total, r_total = batch * geo.P * geo.Q, geo.C * r * s
    for pixels in sorted({1, 2, geo.Q, geo.Q + 1, int(rng.integers(1, m_total + 1)), m_total}):
        pixels = min(pixels, m_total)
        for reduction in sorted({1, 2, r * s, int(rng.integers(1, r_total + 1)), r_total}):
            reduction = min(reduction, r_total)
            bound = input_tile_bound(geo, batch, pixels, reduction)
            worst = max(_distinct_inputs(geo, batch, m0, pixels, r0, reduction)
                        for m0 in range(0, m_total - pixels + 1)
                        for r0 in range(0, r_total - reduction + 1))
            assert bound >= worst, (seed, pixels, reduction, bound, worst)
            assert bound <= pixels * reduction
    # the whole operand matrix of a layer whose every input is read: exactly the real input
    whole = _distinct_inputs(geo, batch, 0, m_total, 0, r_total)
    if whole == batch * geo.C * geo.H * geo.W:
        assert input_tile_bound(geo, batch, m_total, r_total) == whole


@pytest.mark.parametrize("seed", range(12))
def test_an_operand_tile_holds_at_most_its_bound_of_real_inputs(seed):
    _check_input_tile_bound(seed)


@pytest.mark.slow
def test_an_operand_tile_holds_at_most_its_bound_of_real_inputs_many_seeds():
    for seed in range(12, 212):
        _check_input_tile_bound(seed)


def _chunked_os_design(glb_bytes: int, **overrides):
    """A 2x2 systolic OS array whose shared level of ``glb_bytes`` cuts a stream into chunks."""
    levels = [{"name": "glb", "keeps": ["weights", "inputs", "outputs"], "instances": "one",
               "word_bits": 8, "size_bytes": glb_bytes},
              {"name": "reg", "keeps": ["outputs"], "instances": "per_pe", "size_bytes": 4,
               "word_bits": 8}]
    return make_hw(pe_array={"rows": 2, "cols": 2, "dataflow": "output_stationary",
                             "systolic": True}, memory_hierarchy=levels, **overrides)


def _chunked_layer():
    """4 filters over 8 x 6 x 6 inputs, 3x3, padded: 144 outputs (output density 0.5)."""
    return random_layer("l", 0.6, 0.6, C=8, K=4, H=6, W=6, R=3, S=3, pad_h=1, pad_w=1,
                        output_density=0.5)


@pytest.mark.parametrize("size, chunks", [(200, 2), (128, 3), (4096, 1)])
def test_partial_sums_that_wait_in_dram_are_the_layers_off_chip_memory(size, chunks):
    # an OS stream cut into chunks drains each output's partial sum to DRAM between chunks and
    # reads it back: 4 filters x 6 x 6 pixels x 3 bytes (24-bit sums) = 432 B wait off chip,
    # read back once per later chunk; the layer spills and its footprint counts them
    res = simulate([_chunked_layer()], _chunked_os_design(size))
    row = res.layers.iloc[0]
    assert row["stream_chunks"] == chunks
    assert row["psum_spill_bytes"] == 432 * (chunks - 1)
    assert row["offchip_peak_bytes"] == (432 if chunks > 1 else 0)
    assert bool(row["spill"]) == (chunks > 1)
    assert row["live_bytes"] == row["onchip_peak_bytes"] + row["offchip_peak_bytes"]
    assert res.totals["spilled_layers"] == (["l"] if chunks > 1 else [])
    # DRAM writes: each output's final value once (144 x 1 B) and each spilled partial sum at
    # its 24-bit width (144 x 3 B per earlier chunk)
    assert row["dram_write_bytes"] == 144 + 432 * (chunks - 1)


@pytest.mark.parametrize("size, chunks", [(200, 2), (128, 3)])
def test_spilled_partial_sums_move_dense_whatever_the_outputs_format(size, chunks):
    # as above with bitmap outputs at density 0.5: the final values move compressed (144-bit
    # map + 72 x 8-bit values = 90 B), the partial sums (not final, their zeros unknown) move
    # dense at 24 bits both ways: 432 B written and read back per earlier chunk
    hw = _chunked_os_design(size, storage={"outputs": {"format": "bitmap"}})
    row = simulate([_chunked_layer()], hw).layers.iloc[0]
    assert row["stream_chunks"] == chunks
    assert row["psum_spill_bytes"] == 432 * (chunks - 1)
    assert row["dram_write_bytes"] == pytest.approx(90 + 432 * (chunks - 1))
