"""The loop-nest (mapping-aware) simulator on designs with a memory_hierarchy."""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.errors import ConfigError, MappingError
from accelsim.hw import load_hw
from accelsim.sim.engine import simulate_layer
from accelsim.sim.loopnest import map_layer
from sim_helpers import make_hw, random_layer

HIERARCHY = [
    {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 65536, "word_bits": 64,
     "read_words_per_cycle": 8},
    {"name": "spad", "instances": "per_pe", "keeps": ["weights", "inputs", "outputs"],
     "size_bytes": 256, "word_bits": 16},
]


def loopnest_hw(dataflow="row_stationary", sparsity=None, hierarchy=None, **kw):
    return make_hw(pe_array={"rows": 4, "cols": 4, "dataflow": dataflow},
                   memory_hierarchy=hierarchy or HIERARCHY, sparsity=sparsity or {}, **kw)


def brute_pairs(layer, mode):
    """Issued MACs of one sample by a direct loop over the conv definition."""
    g = layer.geometry
    a = np.asarray(layer.act_mask(1))[0]
    w = np.asarray(layer.weight_mask())
    kg, cg = g.K // g.groups, g.C // g.groups
    count = 0
    for k in range(g.K):
        grp = k // kg
        for c in range(cg):
            for r in range(g.R):
                for s in range(g.S):
                    for p in range(g.P):
                        for q in range(g.Q):
                            h = p * g.stride_h + r * g.dil_h - g.pad_h
                            x = q * g.stride_w + s * g.dil_w - g.pad_w
                            av = bool(a[grp * cg + c, h, x]) if (0 <= h < g.H and 0 <= x < g.W) else False
                            wv = bool(w[k, c, r, s])
                            count += {"dense": 1, "act": av, "weight": wv, "both": av and wv}[mode]
    return count


LAYERS = [
    dict(C=3, H=9, W=9, K=8, R=3, S=3, pad_h=1, pad_w=1),
    dict(C=4, H=10, W=10, K=4, R=3, S=3, stride_h=2, stride_w=2),
    dict(C=8, H=8, W=8, K=8, R=3, S=3, groups=8, pad_h=1, pad_w=1),       # depthwise
    dict(C=4, H=9, W=9, K=6, R=3, S=3, dil_h=2, dil_w=2),
    dict(C=16, H=5, W=5, K=12, R=1, S=1),
]


@pytest.mark.parametrize("dataflow", ["row_stationary", "weight_stationary", "output_stationary",
                                      "input_stationary"])
@pytest.mark.parametrize("geo", LAYERS)
def test_issued_macs_equal_brute_force(dataflow, geo):
    layer = random_layer(density_a=0.4, density_w=0.6, seed=len(geo), **geo)
    for flags, mode in (({}, "dense"), ({"skip_zero_activations": True, "skip_padding": True}, "act"),
                        ({"skip_zero_weights": True}, "weight"),
                        ({"skip_zero_activations": True, "skip_zero_weights": True,
                          "skip_padding": True}, "both")):
        row = simulate_layer(layer, loopnest_hw(dataflow, flags), samples=1)
        assert row["macs_issued"] == brute_pairs(layer, mode), (flags, dataflow)
        assert row["macs_dense"] == brute_pairs(layer, "dense")
        assert row["cycles"] >= row["compute_cycles"] > 0 or row["macs_issued"] == 0
        assert row["energy_pj"] > 0 and row["bottleneck"]


def test_dense_compute_cycles_are_the_mappings_steps():
    layer = random_layer(C=4, H=8, W=8, K=8, R=3, S=3)
    hw = loopnest_hw("weight_stationary")
    row = simulate_layer(layer, hw, samples=1)
    assert row["compute_cycles"] == map_layer(layer, hw).counts.steps
    assert row["macs_issued"] == row["macs_dense"] and row["fill_drain_cycles"] == 0


def test_skipping_cuts_cycles_and_all_zero_activations_do_no_work():
    layer = random_layer(C=8, H=8, W=8, K=8, R=3, S=3, density_a=0.0)
    hw = loopnest_hw("output_stationary", {"skip_zero_activations": True})
    row = simulate_layer(layer, hw, samples=1)
    assert row["macs_issued"] == 0 and row["compute_cycles"] == 0
    dense = simulate_layer(layer, hw.dense_twin(), samples=1)
    assert dense["compute_cycles"] > 0


def test_gating_keeps_cycles_and_saves_energy():
    layer = random_layer(C=8, H=8, W=8, K=8, R=3, S=3, density_a=0.3)
    gated = simulate_layer(layer, loopnest_hw("row_stationary", {"gate_zero_operands": True}), samples=1)
    plain = simulate_layer(layer, loopnest_hw("row_stationary"), samples=1)
    assert gated["cycles"] == plain["cycles"]
    assert gated["energy_mac_pj"] < plain["energy_mac_pj"]
    assert gated["energy_spad_pj"] < plain["energy_spad_pj"]
    assert gated["macs_gated"] == gated["macs_issued"] - gated["macs_effectual"] > 0


def test_too_small_scratchpad_names_layer_and_level():
    tiny = [dict(HIERARCHY[0]), dict(HIERARCHY[1], size_bytes=1)]
    layer = random_layer(name="convX", C=4, H=8, W=8, K=8, R=3, S=3)
    with pytest.raises(MappingError, match=r"convX.*spad"):
        simulate_layer(layer, loopnest_hw("row_stationary", hierarchy=tiny), samples=1)


def test_cycle_fidelity_runs_the_mapped_nest():
    """Issue 24 item 1: no longer refused (tests/test_cycle_mapped.py checks the semantics)."""
    layer = random_layer(C=2, H=5, W=5, K=2, R=3, S=3)
    fast = simulate_layer(layer, loopnest_hw(), fidelity="fast", samples=1)
    cyc = simulate_layer(layer, loopnest_hw(), fidelity="cycle", samples=1)
    assert cyc["cycles"] >= fast["cycles"] and cyc["compute_cycles"] == fast["compute_cycles"]


@pytest.mark.parametrize("change,field", [
    ({"pe_array": {"rows": 4, "cols": 4, "dataflow": "row_stationary"}, "memory_hierarchy": None},
     "pe_array.dataflow"),
    ({"memory_hierarchy": [dict(HIERARCHY[0], name="DRAM")]}, "memory_hierarchy[0].name"),
    ({"memory_hierarchy": [HIERARCHY[1], HIERARCHY[0]]}, "memory_hierarchy[1].instances"),
    ({"memory_hierarchy": [dict(HIERARCHY[0], keeps=["psums"])]}, "memory_hierarchy[0].keeps[0]"),
    ({"memory_hierarchy": [dict(HIERARCHY[0], size_bytes=-1)]}, "memory_hierarchy[0].size_bytes"),
    ({"memory_hierarchy": []}, "memory_hierarchy"),
])
def test_bad_hierarchies_name_the_field(change, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        make_hw(**change)


def test_shipped_eyeriss_v1_maps_row_stationary_and_roundtrips():
    hw = load_hw("hw_configs/eyeriss_v1.yaml")
    assert hw.pe_array.dataflow == "row_stationary" and len(hw.memory_hierarchy) == 4
    from accelsim.hw import load_hw_dict
    assert load_hw_dict(hw.to_dict()).hash == hw.hash
    layer = random_layer(C=6, H=14, W=14, K=16, R=5, S=5, act_bits=16, weight_bits=16)
    row = simulate_layer(layer, hw, samples=1)
    assert "filter_spad" in row["mapping"] and row["macs_gated"] > 0


def test_map_cli_prints_nest_levels_and_bottleneck(capsys):
    from accelsim.cli import main

    assert main(["map", "--trace", "traces/lenet5_digits_dual.trace", "--hw",
                 "hw_configs/eyeriss_v1.yaml", "--layer", "conv2"]) == 0
    out = capsys.readouterr().out
    assert "== conv2: 240,000 MACs" in out and "<< MAC >>" in out and "bound by" in out
    for level in ("DRAM", "glb", "ifmap_spad", "filter_spad", "psum_spad"):
        assert level in out
    assert main(["map", "--trace", "traces/lenet5_digits_dual.trace", "--hw",
                 "hw_configs/eyeriss_v1.yaml", "--json"]) == 0
    import json
    data = json.loads(capsys.readouterr().out)
    conv2 = [r for r in data["layers"] if r["layer"] == "conv2"][0]
    assert conv2["macs"] == 240000
    # every dimension's factors cover its bound, the outermost one by ceil (remainder tiles)
    bounds = {"N": 1, "G": 1, "K": 16, "C": 6, "P": 10, "Q": 10, "R": 5, "S": 5}
    factors = {d: [] for d in bounds}
    for lv in conv2["mapping"]:
        for d, f in lv["temporal"]:
            factors[d].append(f)
        for d, f, _ in lv["spatial"]:
            factors[d].append(f)
    for d, bound in bounds.items():
        inner = 1
        for f in factors[d][1:]:
            inner *= f
        outer = factors[d][0] if factors[d] else 1
        assert outer == -(-bound // inner) and outer * inner >= bound, (d, factors[d])


def test_map_cli_shows_a_flat_files_systolic_mapping(capsys):
    """A flat file loads ported to the systolic mode: ``map`` prints its SCALE-Sim mapping."""
    from accelsim.cli import main

    assert main(["map", "--trace", "traces/lenet5_digits_dual.trace", "--hw",
                 "tests/fixtures/systolic_designs/dense_ws_tpu_like.yaml"]) == 0
    out = capsys.readouterr().out
    assert "weight_reg" in out and "global_buffer" in out and "conv1" in out


def test_a_larger_array_is_not_slower_with_ideal_memory():
    """The systolic model's partial folds pay the whole array's fill/drain; the loop nest not."""
    layer = random_layer(C=128, H=14, W=14, K=256, R=1, S=1, density_a=1.0, density_w=1.0)
    rows = {}
    for n in (8, 10, 16):
        hw = make_hw(pe_array={"rows": n, "cols": n, "dataflow": "weight_stationary"},
                     memory_hierarchy=[dict(HIERARCHY[0], read_words_per_cycle=None),
                                       dict(HIERARCHY[1], size_bytes=4096)])
        rows[n] = simulate_layer(layer, hw, samples=1)["compute_cycles"]
    assert rows[16] <= rows[10] <= rows[8]


def test_a_level_format_compresses_only_that_levels_traffic():
    layer = random_layer(C=16, H=8, W=8, K=16, R=3, S=3, density_w=0.2)
    plain = loopnest_hw("weight_stationary")
    levels = [dict(HIERARCHY[0], formats={"weights": {"format": "bitmap"}}), HIERARCHY[1]]
    packed = loopnest_hw("weight_stationary", hierarchy=levels)
    a = simulate_layer(layer, plain, samples=1)
    b = simulate_layer(layer, packed, samples=1)
    assert b["level_glb_read_bits"] < a["level_glb_read_bits"]
    assert b["level_spad_read_bits"] == a["level_spad_read_bits"]
    assert b["dram_bytes"] == a["dram_bytes"] and b["macs_issued"] == a["macs_issued"]
