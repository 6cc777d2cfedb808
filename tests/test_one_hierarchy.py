"""One source for every size (issue 23): memory_hierarchy levels are the sizes; the flat
``global_buffer``/``scratchpad`` sections are shorthand that must agree with them, levels are
swept by name, and the dense twin is dense at every level."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from accelsim.errors import ConfigError
from accelsim.hw import load_hw, load_hw_dict
from accelsim.hw.hierarchy import levels_of, onchip_sram_bytes, shared_bytes
from accelsim.hw.load import resolve_extends
from accelsim.sim.engine import simulate_layer
from sim_helpers import BASE_HW, make_hw, random_layer

ROOT = Path(__file__).resolve().parents[1]
EYERISS = ROOT / "hw_configs" / "eyeriss_v1.yaml"

GLB = {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 65536,
       "word_bits": 64, "read_words_per_cycle": 8, "banks": 4}
SPADS = [{"name": "ispad", "instances": "per_pe", "keeps": ["inputs"], "size_bytes": 16},
         {"name": "wspad", "instances": "per_pe", "keeps": ["weights"], "size_bytes": 32},
         {"name": "pspad", "instances": "per_pe", "keeps": ["outputs"], "size_bytes": 8}]


def _raw(**changes) -> dict:
    data = copy.deepcopy(BASE_HW)
    data.pop("global_buffer")
    data.pop("scratchpad")
    data["memory_hierarchy"] = [dict(GLB)] + [dict(s) for s in SPADS]
    data.update(changes)
    return data


def test_shorthand_that_agrees_is_dropped_and_changes_nothing():
    plain = load_hw_dict(_raw())
    both = load_hw_dict(_raw(global_buffer={"size_kib": 64, "words_per_cycle": 8, "word_bits": 64,
                                            "banks": 4},
                             scratchpad={"input_bytes": 16, "weight_bytes": 32, "psum_bytes": 8}))
    assert both == plain
    assert plain.global_buffer is None and plain.scratchpad is None


@pytest.mark.parametrize("section, value, names", [
    ("global_buffer", {"size_kib": 4, "words_per_cycle": 8}, ("global_buffer.size_kib",
                                                              "memory_hierarchy[0].size_bytes")),
    ("global_buffer", {"size_kib": 64, "words_per_cycle": 2}, ("global_buffer.words_per_cycle",
                                                               "memory_hierarchy[0].read_words_per_cycle")),
    ("global_buffer", {"size_kib": 64, "words_per_cycle": 8, "banks": 27},
     ("global_buffer.banks", "memory_hierarchy[0].banks")),
    ("scratchpad", {"input_bytes": 16, "weight_bytes": 448, "psum_bytes": 8},
     ("scratchpad.weight_bytes", "memory_hierarchy[2].size_bytes")),
])
def test_a_size_stated_twice_differently_is_one_error_naming_both(section, value, names):
    with pytest.raises(ConfigError) as err:
        load_hw_dict(_raw(**{section: value}), source="d.yaml")
    text = str(err.value)
    assert text.startswith("d.yaml: ") and "\n" not in text
    for name in names:
        assert name in text


def test_shorthand_cannot_stand_for_several_levels():
    raw = _raw(global_buffer={"size_kib": 64, "words_per_cycle": 8})
    raw["memory_hierarchy"].insert(0, {"name": "l2", "keeps": ["weights"], "size_bytes": 1 << 20})
    with pytest.raises(ConfigError, match="global_buffer: .* has 2 .*'l2', 'glb'"):
        load_hw_dict(raw)
    raw = _raw(scratchpad={"input_bytes": 16, "weight_bytes": 32, "psum_bytes": 8})
    raw["memory_hierarchy"][1]["keeps"] = ["inputs", "weights"]
    with pytest.raises(ConfigError, match="scratchpad: .*keeps"):
        load_hw_dict(raw)


def test_a_design_without_a_shared_buffer_is_written_without_one():
    hw = load_hw_dict(_raw(memory_hierarchy=[dict(s, size_bytes=4096) for s in SPADS],
                           pe_array={"rows": 2, "cols": 2, "dataflow": "output_stationary"}))
    assert shared_bytes(hw) == 0.0
    assert onchip_sram_bytes(hw) == 3 * 4096 * 4
    row = simulate_layer(random_layer("l", C=2, H=5, W=5, K=3, R=3, S=3), hw)
    assert row["cycles"] > 0 and row["energy_pj"] > 0


def test_a_flat_design_still_needs_its_buffer():
    raw = copy.deepcopy(BASE_HW)
    del raw["global_buffer"]
    with pytest.raises(ConfigError, match=r"<t>: global_buffer: required without a memory_hierarchy"):
        load_hw_dict(raw, source="<t>")


def test_flat_shorthand_expands_to_levels_with_the_same_sizes():
    # an output-stationary flat design loads as the systolic mode: the buffer, then the PE's
    # partial-sum register (its input and weight scratchpads are the chain's registers)
    hw = make_hw()
    levels = {lv.name: lv for lv in levels_of(hw)}
    assert list(levels) == ["global_buffer", "psum_reg"]
    assert levels["global_buffer"].size_bytes == 256 * 1024
    assert levels["global_buffer"].keeps == ("weights", "inputs", "outputs")
    assert levels["psum_reg"].size_bytes == 4 and levels["psum_reg"].instances == "per_pe"
    assert onchip_sram_bytes(hw) == 256 * 1024 + 4 * hw.num_pes


def test_eyeriss_states_each_size_once_and_sweeping_the_shorthand_is_refused():
    raw = resolve_extends(EYERISS)
    assert "global_buffer" not in raw and "scratchpad" not in raw
    with pytest.raises(ConfigError) as err:
        load_hw(EYERISS, {"global_buffer.size_kib": 4})
    assert "global_buffer.size_kib" in str(err.value)
    assert "memory_hierarchy[0].size_bytes" in str(err.value)


def test_levels_are_swept_by_name_and_the_size_reaches_the_results():
    layer = random_layer("l", C=16, H=14, W=14, K=32, R=3, S=3, density_a=0.6)
    small = load_hw(EYERISS, {"memory_hierarchy.glb.size_bytes": 2048})
    big = load_hw(EYERISS, {"memory_hierarchy.glb.size_bytes": 110592})
    assert small.memory_hierarchy[0].size_bytes == 2048
    a, b = simulate_layer(layer, small), simulate_layer(layer, big)
    assert (a["cycles"], a["energy_pj"]) != (b["cycles"], b["energy_pj"])
    with pytest.raises(ConfigError, match="no level named 'gbl'; its levels: glb, ifmap_spad"):
        load_hw(EYERISS, {"memory_hierarchy.gbl.size_bytes": 2048})


def test_sweep_spec_checks_level_fields_by_their_own_rule():
    from accelsim.sweep.spec import load_sweep_dict

    def spec(path, values):
        return {"version": 1, "name": "s", "base": str(EYERISS), "axes": {path: {"values": values}},
                "traces": [str(ROOT / "traces" / "lenet5_digits_dual.trace")]}
    load_sweep_dict(spec("memory_hierarchy.glb.size_bytes", [4096, 8192]))
    with pytest.raises(ConfigError, match="size_bytes"):
        load_sweep_dict(spec("memory_hierarchy.glb.size_bytes", [-1]))
    with pytest.raises(ConfigError, match="did you mean 'size_bytes'"):
        load_sweep_dict(spec("memory_hierarchy.glb.size_byte", [4096]))


def test_the_dense_twin_is_dense_at_every_level():
    fmt = {"inputs": {"format": "run_length", "run_bits": 4}, "weights": {"format": "csr"}}
    sparse = load_hw_dict(_raw(memory_hierarchy=[dict(GLB, formats=fmt)] + SPADS,
                               sparsity={"gate_zero_operands": True}))
    dense_by_hand = load_hw_dict(_raw())
    twin = sparse.dense_twin()
    assert all(not lv.formats for lv in twin.memory_hierarchy)
    assert not twin.has_sparsity
    layer = random_layer("l", C=8, H=10, W=10, K=8, R=3, S=3, density_a=0.3, density_w=0.5)
    got, want = simulate_layer(layer, twin), simulate_layer(layer, dense_by_hand)
    for key in ("cycles", "energy_pj", "dram_bytes"):
        assert got[key] == pytest.approx(want[key], rel=1e-12)
