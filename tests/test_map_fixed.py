"""Mappings fixed by the user in YAML (accelsim map --save-mappings / simulate --mappings)."""
from __future__ import annotations

import pytest

from accelsim.cli import main
from accelsim.errors import AccelsimError, ConfigError, MappingError
from accelsim.hw import load_hw
from accelsim.map.fixed import load_mappings, parse_mappings
from accelsim.sim import simulate
from accelsim.trace import open_trace

TRACE = "traces/lenet5_digits_dual.trace"
HW = "hw_configs/eyeriss_v1.yaml"


def test_saved_mappings_reproduce_the_mapper_exactly(tmp_path):
    path = tmp_path / "m.yaml"
    assert main(["map", "--trace", TRACE, "--hw", HW, "--save-mappings", str(path)]) == 0
    hw = load_hw(HW)
    searched = simulate(open_trace(TRACE), hw, samples=3)
    fixed = simulate(open_trace(TRACE), hw, samples=3, mappings=load_mappings(path))
    assert fixed.layers["mapping"].tolist() == searched.layers["mapping"].tolist()
    assert fixed.totals["energy_pj"] == searched.totals["energy_pj"]
    assert fixed.totals["cycles"] == searched.totals["cycles"]


def _conv2(levels):
    return {"version": 1, "layers": {"conv2": levels}}


# conv2 of LeNet-5: K16 C6 P10 Q10 R5 S5 on eyeriss_v1 (DRAM, glb, ifmap/filter/psum spads)
GOOD = [{"level": "DRAM", "temporal": [["K", 2], ["C", 6]]},
        {"level": "glb", "temporal": [["Q", 10]], "spatial": [["P", 10, "X"], ["R", 5, "Y"]]},
        {"level": "ifmap_spad", "temporal": []},
        {"level": "filter_spad", "temporal": [["K", 8]]},
        {"level": "psum_spad", "temporal": [["S", 5]]}]


def test_a_hand_written_mapping_is_used():
    fixed = parse_mappings(_conv2(GOOD))
    res = simulate(open_trace(TRACE), load_hw(HW), samples=2, mappings=fixed)
    row = res.layers.set_index("layer").loc["conv2"]
    assert row["mapping"].startswith("DRAM[K2 C6] glb[Q10 | X:P10 Y:R5]")
    assert row["macs_dense"] == 16 * 6 * 10 * 10 * 25


@pytest.mark.parametrize("levels,match", [
    ([dict(GOOD[0], temporal=[["K", 2], ["C", 3]])] + GOOD[1:], r"conv2.*factors of C multiply to 3"),
    ([dict(GOOD[0], temporal=[["K", 2]])] + GOOD[1:3] + [dict(GOOD[3], temporal=[["K", 8], ["C", 6]])]
     + GOOD[4:], r"conv2.*'ifmap_spad' holds 24 bytes.*need 60 bytes"),
    (GOOD[:2] + GOOD[3:], r"conv2.*levels"),
    ([GOOD[0], dict(GOOD[1], spatial=[["P", 10, "X"], ["R", 5, "Y"], ["K", 4, "Y"]]),
      GOOD[2], dict(GOOD[3], temporal=[["K", 2]]), GOOD[4]], r"conv2.*20x10 PEs"),
])
def test_bad_fixed_mappings_name_layer_level_and_need(levels, match):
    with pytest.raises(MappingError, match=match):
        simulate(open_trace(TRACE), load_hw(HW), samples=1, mappings=parse_mappings(_conv2(levels)))


@pytest.mark.parametrize("raw,field", [
    ({"version": 2, "layers": {"x": GOOD}}, "version"),
    ({"version": 1, "layers": {}}, "layers"),
    ({"version": 1, "layers": {"conv2": [{"level": "DRAM", "temporal": [["Z", 2]]}]}},
     r"layers.conv2\[0\].temporal\[0\]"),
    ({"version": 1, "layers": {"conv2": [{"level": "DRAM", "temporal": [["K", 0]]}]}},
     r"layers.conv2\[0\].temporal\[0\]"),
    ({"version": 1, "layers": {"conv2": [{"level": "glb", "spatial": [["K", 2, "Z"]]}]}},
     r"layers.conv2\[0\].spatial\[0\]"),
    ({"version": 1, "layers": {"conv2": [{"level": "glb", "tiles": []}]}}, r"layers.conv2\[0\].tiles"),
    ({"version": 1, "layers": {"conv2": "DRAM"}}, "layers.conv2"),
])
def test_malformed_files_name_the_field(raw, field):
    with pytest.raises(ConfigError, match=field):
        parse_mappings(raw, "m.yaml")


def test_unknown_layer_and_systolic_design_are_refused():
    fixed = parse_mappings(_conv2(GOOD))
    with pytest.raises(AccelsimError, match="no layer named nope"):
        simulate(open_trace(TRACE), load_hw(HW), samples=1, mappings={"nope": fixed["conv2"]})
    with pytest.raises(AccelsimError, match="SCALE-Sim's mapping"):   # a flat file: systolic
        simulate(open_trace(TRACE), load_hw("tests/fixtures/systolic_designs/dense_ws_tpu_like.yaml"),
                 samples=1, mappings=fixed)
    with pytest.raises(AccelsimError, match="SCALE-Sim's mapping"):   # pe_array.systolic
        simulate(open_trace(TRACE), load_hw("hw_configs/dense_ws_tpu_like.yaml"), samples=1,
                 mappings=fixed)


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nlayers:\n  conv2:\n    - {level: DRAM, temporal: [[K, 3]]}\n")
    code = main(["simulate", "--trace", TRACE, "--hw", HW, "--samples", "1", "--mappings", str(bad)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "conv2" in err


# conv2 with its 10 output rows as 2 passes of a 7-column strip (the last pass has 3 rows)
REMAINDER = [{"level": "DRAM", "temporal": [["K", 2], ["C", 6], ["P", 2]]},
             {"level": "glb", "temporal": [["Q", 10]], "spatial": [["P", 7, "X"], ["R", 5, "Y"]]},
             {"level": "ifmap_spad", "temporal": []},
             {"level": "filter_spad", "temporal": [["K", 8]]},
             {"level": "psum_spad", "temporal": [["S", 5]]}]


def test_a_user_mapping_with_a_remainder_tile_is_used():
    res = simulate(open_trace(TRACE), load_hw(HW), samples=2, mappings=parse_mappings(_conv2(REMAINDER)))
    row = res.layers.set_index("layer").loc["conv2"]
    assert row["mapping"].startswith("DRAM[K2 C6 P2] glb[Q10 | X:P7 Y:R5]")
    assert row["macs_dense"] == 16 * 6 * 10 * 10 * 25      # padded rows do no work
    # the controller runs the padded loops: 2 x 6 x 2 x 10 x 8 x 5 steps
    assert row["compute_cycles"] == 2 * 6 * 2 * 10 * 8 * 5


def test_a_bad_remainder_factor_names_the_ceiling():
    levels = [dict(REMAINDER[0], temporal=[["K", 2], ["C", 6], ["P", 3]])] + REMAINDER[1:]
    with pytest.raises(MappingError, match=r"conv2.*factors of P multiply to 21.*outermost factor 3 "
                                           r"to be 2 \(ceil\(10 / 7\)\)"):
        simulate(open_trace(TRACE), load_hw(HW), samples=1, mappings=parse_mappings(_conv2(levels)))
