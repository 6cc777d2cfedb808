"""``sparsity.skip_padding``: whether a design that skips zero activations also skips the MAC
slots whose activation is a padding position.

The hardware studied (and Timeloop) process padding: a padded 3x3 convolution issues every
slot of its receptive fields, padding included. So by default (``skip_padding: false``) a
padding position is a *present* activation for skipping purposes (its slots are issued and
take time) but a zero for everything else: it is never effectual, gating designs gate it, and
it is never stored or fetched. With ``skip_padding: true`` padding is skipped like a zero
activation. Dense designs issue everything either way.

Targets are independent of the simulator: the hand count of a depthwise 3x3 layer on an 8x8
input with padding 1 (every slot 8*8*9 = 576 per channel; in-bounds taps (7+8+7)^2 = 22^2 = 484
per channel, i.e. padding is 1 - (22/24)^2 of the work) and a direct loop over the convolution's
definition for random masks, on both engines (the flat systolic ``simulate`` and the loop-nest
model of a design with a ``memory_hierarchy``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import naive
from sim_helpers import make_hw, random_layer, unbounded_port
from accelsim.hw import load_hw
from accelsim.sim.engine import simulate_layer
from accelsim.sim.kernels import cycle as cyk
from accelsim.sim.kernels import schedule as sch
from accelsim.sim.lower import gemm_of, lower_acts, lower_weights, pack_acts
from accelsim.sim.map import map_gemm
from accelsim.sim.traffic import layer_traffic, operand_bits
from accelsim.sim.work import operand_counts, packed_counts, work_matrix
from accelsim.trace.geometry import LayerGeometry

REPO = Path(__file__).resolve().parents[1]

HIERARCHY = [
    {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 65536,
     "word_bits": 64, "read_words_per_cycle": 8},
    {"name": "spad", "instances": "per_pe", "keeps": ["weights", "inputs", "outputs"],
     "size_bytes": 256, "word_bits": 16},
]
FLAT_DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary")
NEST_DATAFLOWS = ("row_stationary", "weight_stationary", "output_stationary", "input_stationary")
SKIP_A = {"skip_zero_activations": True}
SKIP_BOTH = {"skip_zero_activations": True, "skip_zero_weights": True}


def with_skip_padding(hw, value: bool):
    return dataclasses.replace(hw, sparsity=dataclasses.replace(hw.sparsity, skip_padding=value))


def flat_hw(dataflow="output_stationary", sparsity=None, skip_padding=False, **kw):
    return make_hw(pe_array={"rows": 3, "cols": 4, "dataflow": dataflow},
                   sparsity=dict(sparsity or {}, skip_padding=skip_padding), **kw)


def nest_hw(dataflow="row_stationary", sparsity=None, skip_padding=False, **kw):
    return make_hw(pe_array={"rows": 4, "cols": 4, "dataflow": dataflow},
                   memory_hierarchy=HIERARCHY,
                   sparsity=dict(sparsity or {}, skip_padding=skip_padding), **kw)


def brute(layer, skip_w: bool, skip_padding: bool) -> tuple[int, int]:
    """(issued, effectual) MAC slots of sample 0 by a direct loop over the conv definition.

    Issued: the activation is in bounds and non-zero, or out of bounds (a padding position)
    and padding is not skipped; with weight skipping the weight must be non-zero too.
    Effectual: both operands non-zero (padding never is)."""
    g = layer.geometry
    a = np.asarray(layer.act_mask(1))[0]
    w = np.asarray(layer.weight_mask())
    kg, cg = g.K // g.groups, g.C // g.groups
    issued = effectual = 0
    for k in range(g.K):
        grp = k // kg
        for c in range(cg):
            for r in range(g.R):
                for s in range(g.S):
                    wv = bool(w[k, c, r, s])
                    for p in range(g.P):
                        for q in range(g.Q):
                            h = p * g.stride_h + r * g.dil_h - g.pad_h
                            x = q * g.stride_w + s * g.dil_w - g.pad_w
                            inside = 0 <= h < g.H and 0 <= x < g.W
                            av = inside and bool(a[grp * cg + c, h, x])
                            present = av or (not inside and not skip_padding)
                            issued += present and (wv or not skip_w)
                            effectual += av and wv
    return issued, effectual


def depthwise_ones(channels=4):
    return random_layer("dw", kind="depthwise_conv2d", C=channels, H=8, W=8, K=channels, R=3,
                        S=3, pad_h=1, pad_w=1, groups=channels, density_a=1.0, density_w=1.0)


# ---- the hand count: depthwise 3x3, 8x8, padding 1, all ones -----------------------------

def test_hand_count_of_the_depthwise_layer():
    layer = depthwise_ones(1)
    assert brute(layer, False, False) == (8 * 8 * 9, 22 * 22)
    assert brute(layer, False, True) == (22 * 22, 22 * 22)
    assert 22 * 22 / (8 * 8 * 9) == pytest.approx((22 / 24) ** 2)


def _designs():
    cnv = load_hw(REPO / "hw_configs" / "cnvlutin_like.yaml")
    out = [("cnvlutin_like", lambda sp: with_skip_padding(cnv, sp), ("fast", "cycle"))]
    for df in FLAT_DATAFLOWS:
        for flags in (SKIP_A, SKIP_BOTH):
            out.append((f"flat-{df}-{len(flags)}",
                        lambda sp, df=df, flags=flags: flat_hw(df, flags, sp), ("fast", "cycle")))
    for df in NEST_DATAFLOWS:
        for flags in (SKIP_A, SKIP_BOTH):
            out.append((f"nest-{df}-{len(flags)}",
                        lambda sp, df=df, flags=flags: nest_hw(df, flags, sp), ("fast",)))
    return out


DESIGNS = _designs()


@pytest.mark.parametrize("name,build,fidelities", DESIGNS, ids=[d[0] for d in DESIGNS])
def test_depthwise_all_ones(name, build, fidelities):
    channels = 4
    layer = depthwise_ones(channels)
    for fidelity in fidelities:
        processed = simulate_layer(layer, build(False), fidelity=fidelity, samples=1)
        skipped = simulate_layer(layer, build(True), fidelity=fidelity, samples=1)
        assert processed["macs_issued"] == channels * 8 * 8 * 9, (name, fidelity)
        assert skipped["macs_issued"] == channels * 22 * 22, (name, fidelity)
        for row in (processed, skipped):
            assert row["macs_dense"] == channels * 8 * 8 * 9
            assert row["macs_effectual"] == channels * 22 * 22   # padding is never effectual
            assert row["macs_skipped"] == row["macs_dense"] - row["macs_issued"]
        assert processed["compute_cycles"] > skipped["compute_cycles"]


def test_default_is_padding_processed():
    assert make_hw().sparsity.skip_padding is False
    assert load_hw(REPO / "hw_configs" / "cnvlutin_like.yaml").sparsity.skip_padding is False
    assert "skip_padding" in make_hw().to_dict()["sparsity"]


# ---- random masks against the direct loop ------------------------------------------------

LAYERS = [
    dict(C=3, H=7, W=6, K=4, R=3, S=3, pad_h=1, pad_w=1),
    dict(kind="depthwise_conv2d", C=4, H=6, W=5, K=4, R=3, S=3, pad_h=1, pad_w=1, groups=4),
    dict(C=2, H=9, W=7, K=3, R=3, S=3, stride_h=2, stride_w=2, pad_h=1, pad_w=2),
    dict(C=2, H=8, W=8, K=2, R=3, S=2, dil_h=2, dil_w=3, pad_h=2, pad_w=1),
    dict(kind="grouped_conv2d", C=4, H=5, W=5, K=6, R=3, S=3, pad_h=1, pad_w=1, groups=2),
]


def _layer(i, geo, density_a=0.4):
    return random_layer(f"l{i}", density_a=density_a, density_w=0.6, seed=10 + i, **geo)


@pytest.mark.parametrize("i", range(len(LAYERS)))
@pytest.mark.parametrize("dataflow", FLAT_DATAFLOWS)
def test_flat_engine_random_masks(i, dataflow):
    layer = _layer(i, LAYERS[i])
    for flags in (SKIP_A, SKIP_BOTH):
        for skip_padding in (False, True):
            want_issued, want_eff = brute(layer, len(flags) == 2, skip_padding)
            hw = flat_hw(dataflow, flags, skip_padding)
            for fidelity in ("fast", "cycle"):
                row = simulate_layer(layer, hw, fidelity=fidelity, samples=1)
                label = (flags, skip_padding, fidelity)
                assert row["macs_issued"] == want_issued, label
                assert row["macs_effectual"] == want_eff, label


@pytest.mark.parametrize("i", range(len(LAYERS)))
@pytest.mark.parametrize("dataflow", NEST_DATAFLOWS)
def test_loopnest_random_masks(i, dataflow):
    layer = _layer(i, LAYERS[i])
    for flags in (SKIP_A, SKIP_BOTH):
        for skip_padding in (False, True):
            want_issued, want_eff = brute(layer, len(flags) == 2, skip_padding)
            row = simulate_layer(layer, nest_hw(dataflow, flags, skip_padding), samples=1)
            assert row["macs_issued"] == want_issued, (flags, skip_padding)
            assert row["macs_effectual"] == want_eff, (flags, skip_padding)


def test_split_stream_counts_padding_too():
    """A small buffer moves the folds (or the cut stream) to DRAM: padding is still issued."""
    layer = _layer(0, LAYERS[0])
    for dataflow in ("weight_stationary", "input_stationary"):
        for flags in (SKIP_A, SKIP_BOTH):
            hw = flat_hw(dataflow, flags, False, global_buffer={"size_kib": 0.09})
            row = simulate_layer(layer, hw, fidelity="cycle", samples=1)
            assert row["macs_issued"] == brute(layer, len(flags) == 2, False)[0]


# ---- gating: a padding zero is a zero operand -------------------------------------------

@pytest.mark.parametrize("build", [flat_hw, nest_hw], ids=["flat", "nest"])
def test_gating_gates_issued_padding(build):
    layer = _layer(1, LAYERS[1])
    for flags in (SKIP_A, SKIP_BOTH):
        issued, effectual = brute(layer, len(flags) == 2, False)
        row = simulate_layer(layer, build(sparsity=dict(flags, gate_zero_operands=True)),
                             samples=1)
        assert row["macs_issued"] == issued and row["macs_effectual"] == effectual
        assert row["macs_gated"] == issued - effectual > 0
        ungated = simulate_layer(layer, build(sparsity=flags), samples=1)
        assert ungated["macs_gated"] == 0
        assert row["energy_mac_pj"] < ungated["energy_mac_pj"]
        assert row["spad_bits"] <= ungated["spad_bits"]


# ---- what skip_padding must not change ----------------------------------------------------

def _rows_equal(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key, value in a.items():
        assert b[key] == value, key


@pytest.mark.parametrize("flags", [{}, {"skip_zero_weights": True}, {"gate_zero_operands": True}])
def test_designs_without_activation_skipping_ignore_it(flags):
    layer = _layer(0, LAYERS[0])
    for build, fidelities in ((flat_hw, ("fast", "cycle")), (nest_hw, ("fast",))):
        for fidelity in fidelities:
            _rows_equal(simulate_layer(layer, build(sparsity=flags, skip_padding=False),
                                       fidelity=fidelity, samples=1),
                        simulate_layer(layer, build(sparsity=flags, skip_padding=True),
                                       fidelity=fidelity, samples=1))


def test_layers_without_padding_ignore_it():
    layer = random_layer("nopad", C=3, H=7, W=6, K=4, R=3, S=3, density_a=0.4, seed=3)
    for build, fidelities in ((flat_hw, ("fast", "cycle")), (nest_hw, ("fast",))):
        for fidelity in fidelities:
            for flags in (SKIP_A, SKIP_BOTH):
                _rows_equal(simulate_layer(layer, build(sparsity=flags, skip_padding=False),
                                           fidelity=fidelity, samples=1),
                            simulate_layer(layer, build(sparsity=flags, skip_padding=True),
                                           fidelity=fidelity, samples=1))


def test_padding_is_never_fetched():
    """Issued padding slots fetch nothing from DRAM (padding is made in the array, not
    stored): DRAM traffic does not depend on whether padding is issued."""
    layer = _layer(0, LAYERS[0])
    for dataflow in FLAT_DATAFLOWS:
        rows = [simulate_layer(layer, flat_hw(dataflow, SKIP_BOTH, sp), samples=1)
                for sp in (False, True)]
        assert rows[0]["macs_issued"] > rows[1]["macs_issued"]
        assert rows[0]["level_DRAM_read_bits"] == rows[1]["level_DRAM_read_bits"]


# ---- the cycle kernel with padding issued -------------------------------------------------

def _kernel_inputs(dataflow, skip_w, rows=3, cols=2, capacity=None, seed=5):
    geo = LayerGeometry(kind="conv2d", N=1, C=2, H=6, W=5, K=3, R=3, S=3, pad_h=1, pad_w=1,
                        stride_w=2)
    rng = np.random.default_rng(seed)
    act = rng.random(geo.act_shape[1:]) < 0.5
    weight = rng.random(geo.weight_shape) < 0.6
    acodes, wcodes = lower_acts(act, geo), lower_weights(weight, geo)
    issue_codes = np.where(acodes == 2, np.uint8(1), acodes)   # padding present
    m = map_gemm(gemm_of(geo), dataflow, rows, cols, capacity, acc_bits=24)
    work = work_matrix(issue_codes, wcodes, operand_counts(issue_codes, wcodes), m, True, skip_w)
    return geo, act, weight, acodes, issue_codes, wcodes, work, m


@pytest.mark.parametrize("dataflow", FLAT_DATAFLOWS)
@pytest.mark.parametrize("skip_w", [False, True])
@pytest.mark.parametrize("qdepth,bw", [(0, 0.0), (2, 7.5), (1, 30.0)])
def test_cycle_kernel_issues_padding_as_the_reference(dataflow, skip_w, qdepth, bw):
    """The kernel on the real codes with ``pad_issued`` is the per-cycle reference on codes
    where padding is a non-zero (same element costs for both)."""
    _, _, _, acodes, issue_codes, wcodes, work, m = _kernel_inputs(dataflow, skip_w)
    a_cost, w_cost = np.array([1.0, 9.0, 9.0]), np.array([2.0, 9.0])
    for lanes, sync in ((1, sch.SYNC_ARRAY), (2, sch.SYNC_DECOUPLED)):
        args = (work, m.code, m.chunk_steps, True, skip_w, 3, 2, lanes, m.fill, m.drain, sync, 2,
                qdepth, bw, a_cost, w_cost, 24.0, 8.0)
        got = cyk.cycle_simulate(acodes, wcodes, *args, True)
        ref = naive.cycle(issue_codes, wcodes, work, dataflow, *args[2:])
        assert got[cyk.CY_CYCLES] == ref["cycles"]
        assert got[cyk.CY_STARVED] == ref["starved"]
        assert got[cyk.CY_BLOCKED] == ref["blocked"]
        assert got[cyk.CY_PAIRS] == ref["pairs"] == work.sum()
        assert got[cyk.CY_GLB_BITS] == pytest.approx(ref["glb_bits"], rel=1e-12)
        # the default (padding skipped) is the reference on the real codes
        skipped = work_matrix(acodes, wcodes, operand_counts(acodes, wcodes), m, True, skip_w)
        base = cyk.cycle_simulate(acodes, wcodes, skipped, *args[1:])
        assert base[cyk.CY_PAIRS] == skipped.sum() < work.sum()


@pytest.mark.parametrize("dataflow", FLAT_DATAFLOWS)
@pytest.mark.parametrize("skip_w", [False, True])
def test_cycle_kernel_unbounded_equals_schedule_and_port_bits(dataflow, skip_w):
    geo, act, weight, acodes, _, wcodes, work, m = _kernel_inputs(dataflow, skip_w, capacity=30)
    fast = sch.fold_schedule(work, 3, 2, 1, m.overhead, sch.SYNC_ARRAY, 1, False, 1)
    a_cost, w_cost = np.array([0.0, 11.0, 0.0]), np.array([8.0, 8.0])
    cyc = cyk.cycle_simulate(acodes, wcodes, work, m.code, m.chunk_steps, True, skip_w, 3, 2, 1,
                             m.fill, m.drain, sch.SYNC_ARRAY, 1, 0, 0.0, a_cost, w_cost, 24.0,
                             8.0, True)
    assert cyc[cyk.CY_CYCLES] == fast[sch.ST_CYCLES]
    assert cyc[cyk.CY_STARVED] == 0 and cyc[cyk.CY_BLOCKED] == 0
    # the analytic port bits (fast fidelity): followers read for issued pairs, padding free
    acts = pack_acts(act, geo)
    view = acts.with_padding_issued()
    wc = lower_weights(weight, geo)
    act_b, weight_b = operand_bits(view, wc, packed_counts(acts, wc), m, True, skip_w, a_cost,
                                   w_cost)
    tr = layer_traffic(gemm_of(geo), m, act_b, weight_b, 8, 8, 24, 0.0)
    assert cyc[cyk.CY_GLB_BITS] == pytest.approx(tr.array_bits)


def test_padding_issued_view_of_packed_activations():
    geo, act, _, acodes, issue_codes, _, _, _ = _kernel_inputs("output_stationary", False)
    acts = pack_acts(act, geo)
    view = acts.with_padding_issued()
    assert np.array_equal(view.nonzero(), issue_codes == 1)
    assert np.array_equal(view.codes(), issue_codes)
    assert np.array_equal(view.row_a, (issue_codes == 1).sum(axis=2))
    assert np.array_equal(view.col_a, (issue_codes == 1).sum(axis=1))
    assert not view.pad_col.any()
    assert np.array_equal(acts.codes(), acodes)   # the real activations are untouched
    nopad = LayerGeometry(kind="conv2d", N=1, C=2, H=6, W=5, K=3, R=3, S=3)
    plain = pack_acts(np.ones(nopad.act_shape[1:], dtype=bool), nopad)
    assert plain.with_padding_issued() is plain


def test_engine_cycle_equals_fast_with_an_unbounded_port():
    layer = _layer(2, LAYERS[2])
    for dataflow in FLAT_DATAFLOWS:
        for flags in (SKIP_A, SKIP_BOTH):
            hw = unbounded_port(flat_hw(dataflow, flags, False))
            fast = simulate_layer(layer, hw, fidelity="fast", samples=1)
            cyc = simulate_layer(layer, hw, fidelity="cycle", samples=1)
            assert cyc["cycles"] == fast["cycles"] and cyc["macs_issued"] == fast["macs_issued"]
