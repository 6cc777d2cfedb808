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

from sim_helpers import make_hw, random_layer, unbounded_port
from accelsim.hw import load_hw
from accelsim.sim.engine import simulate_layer

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


def test_engine_cycle_equals_fast_with_an_unbounded_port():
    layer = _layer(2, LAYERS[2])
    for dataflow in FLAT_DATAFLOWS:
        for flags in (SKIP_A, SKIP_BOTH):
            hw = unbounded_port(flat_hw(dataflow, flags, False))
            fast = simulate_layer(layer, hw, fidelity="fast", samples=1)
            cyc = simulate_layer(layer, hw, fidelity="cycle", samples=1)
            assert cyc["cycles"] == fast["cycles"] and cyc["macs_issued"] == fast["macs_issued"]
