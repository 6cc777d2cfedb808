"""User mappings (``--mappings FILE``) checked against every resource of the design.

PE array fan-out (rows x cols), MAC lanes per PE (``pe_array.macs_per_pe``), level capacity
(by the mapper's own validity test), factors (positive integers multiplying to the bounds);
every refusal is one line naming the mapping file, the field, and the layer.
"""
from __future__ import annotations

import pytest
import yaml

from accelsim.cli import main
from accelsim.errors import MappingError
from accelsim.hw import load_hw
from accelsim.hw.load import load_hw_dict
from accelsim.map import mapper
from accelsim.map.access import analyse
from accelsim.map.fixed import fixed_result, parse_mappings
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import LoopNest
from accelsim.sim import simulate
from accelsim.sim.design import resolve
from accelsim.trace import open_trace

TRACE = "traces/lenet5_digits_dual.trace"
HW = "hw_configs/eyeriss_v1.yaml"      # 12x14 PEs, 1 MAC lane per PE

# conv2 of LeNet-5: K16 C6 P10 Q10 R5 S5 on eyeriss_v1 (DRAM, glb, ifmap/filter/psum spads)
GOOD = [{"level": "DRAM", "temporal": [["K", 2], ["C", 6]]},
        {"level": "glb", "temporal": [["Q", 10]], "spatial": [["P", 10, "X"], ["R", 5, "Y"]]},
        {"level": "ifmap_spad", "temporal": []},
        {"level": "filter_spad", "temporal": [["K", 8]]},
        {"level": "psum_spad", "temporal": [["S", 5]]}]
# 15 MAC lanes (C3 x S5) at the last per-PE level of a 1-lane design
LANES_15 = [{"level": "DRAM", "temporal": [["K", 2], ["C", 2]]}, GOOD[1], GOOD[2], GOOD[3],
            {"level": "psum_spad", "spatial": [["C", 3, "X"], ["S", 5, "X"]]}]


def _file(tmp_path, levels, name="m.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, "layers": {"conv2": levels}}))
    return path


def _parse(levels, source="m.yaml"):
    return parse_mappings({"version": 1, "layers": {"conv2": levels}}, source)


def _lanes_hw(lanes: int):
    """eyeriss_v1 with ``lanes`` MAC lanes per PE and spads 16x as large (room for their tiles)."""
    data = load_hw(HW).to_dict()
    data["pe_array"]["macs_per_pe"] = lanes
    for level in data["memory_hierarchy"]:
        if level.get("instances") == "per_pe" and level.get("size_bytes"):
            level["size_bytes"] *= 16
    return load_hw_dict(data, source=f"lanes{lanes}.yaml")


def test_mac_lanes_beyond_the_design_are_refused():
    with pytest.raises(MappingError) as info:
        simulate(open_trace(TRACE), load_hw(HW), samples=1, mappings=_parse(LANES_15))
    text = str(info.value)
    assert text.startswith("m.yaml: layers.conv2[4].spatial: layer 'conv2': ")
    assert "15 MAC lanes" in text and "each PE has 1 (pe_array.macs_per_pe)" in text


def test_mac_lanes_up_to_the_design_are_used():
    """The same 15 lanes fit a 15-lane design (and 16 lanes); a 14-lane design refuses them."""
    for lanes in (15, 16):
        result = simulate(open_trace(TRACE), _lanes_hw(lanes), samples=1, mappings=_parse(LANES_15))
        row = result.layers.set_index("layer").loc["conv2"]
        assert 0 < row["utilization"] <= 1.0
    with pytest.raises(MappingError, match="15 MAC lanes; each PE has 14"):
        simulate(open_trace(TRACE), _lanes_hw(14), samples=1, mappings=_parse(LANES_15))


def test_pe_array_fan_out_names_the_file_and_field():
    levels = [GOOD[0], dict(GOOD[1], spatial=[["P", 10, "X"], ["R", 5, "Y"], ["K", 4, "Y"]]),
              GOOD[2], dict(GOOD[3], temporal=[["K", 2]]), GOOD[4]]
    with pytest.raises(MappingError, match=r"^m.yaml: layers.conv2\[1\].spatial: layer 'conv2': "
                                           r".*need 20x10 PEs, the array is 12x14"):
        simulate(open_trace(TRACE), load_hw(HW), samples=1, mappings=_parse(levels))


def test_spatial_loops_at_an_inner_level_are_refused():
    levels = GOOD[:2] + [dict(GOOD[2], spatial=[["K", 2, "X"]]), dict(GOOD[3], temporal=[["K", 4]]),
                         GOOD[4]]
    with pytest.raises(MappingError, match=r"^m.yaml: layers.conv2\[2\].spatial: .*'ifmap_spad'"):
        simulate(open_trace(TRACE), load_hw(HW), samples=1, mappings=_parse(levels))


def test_capacity_names_the_level_and_uses_the_mappers_test(monkeypatch):
    levels = ([dict(GOOD[0], temporal=[["K", 2]])] + GOOD[1:3]
              + [dict(GOOD[3], temporal=[["K", 8], ["C", 6]])] + GOOD[4:])
    fixed = _parse(levels)
    with pytest.raises(MappingError, match=r"^m.yaml: layers.conv2\[2\]: layer 'conv2': .*"
                                           r"'ifmap_spad' holds 24 bytes.*need 60 bytes"):
        simulate(open_trace(TRACE), load_hw(HW), samples=1, mappings=fixed)
    # the decision is the mapper's own: where its test passes, the fixed mapping is taken
    arch = resolve(load_hw(HW)).arch
    nest = LoopNest.of_geometry(open_trace(TRACE).geometry("conv2"), batch=1)
    assert not mapper._exact_fit(analyse(nest, fixed["conv2"], arch.keeps, arch.unicast), arch)
    monkeypatch.setattr(mapper, "_exact_fit", lambda counts, arch: True)
    assert fixed_result("conv2", fixed["conv2"], nest, arch).mapping == fixed["conv2"]


def test_factors_must_multiply_to_the_bounds_and_be_integers():
    bad = [dict(GOOD[0], temporal=[["K", 2], ["C", 3]])] + GOOD[1:]
    with pytest.raises(MappingError, match=r"^m.yaml: layers.conv2: layer 'conv2': fixed mapping: "
                                           r"mapping factors of C multiply to 3, expected the bound 6"):
        simulate(open_trace(TRACE), load_hw(HW), samples=1, mappings=_parse(bad))
    arch = resolve(load_hw(HW)).arch
    nest = LoopNest.of_geometry(open_trace(TRACE).geometry("conv2"), batch=1)
    good = _parse(GOOD)["conv2"]
    first = good.levels[0]
    fractional = Mapping((LevelLoops(first.level, first.temporal + (Loop("K", 1.5),)),)
                         + good.levels[1:])
    with pytest.raises(MappingError, match="factor: expected a positive integer, got 1.5"):
        fixed_result("conv2", fractional, nest, arch)


@pytest.mark.parametrize("command", ["simulate", "map"])
def test_cli_refusal_is_one_line_naming_the_file(tmp_path, capsys, command):
    path = _file(tmp_path, LANES_15)
    argv = [command, "--trace", TRACE, "--hw", HW, "--mappings", str(path)]
    if command == "simulate":
        argv += ["--samples", "1", "-o", str(tmp_path / "r.csv")]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert f"{path}: layers.conv2[4].spatial" in err and "MAC lanes" in err


def test_good_mapping_from_a_file_still_runs(tmp_path):
    path = _file(tmp_path, GOOD)
    assert main(["map", "--trace", TRACE, "--hw", HW, "--mappings", str(path), "--layer", "conv2",
                 "--json"]) == 0


@pytest.mark.parametrize("version", ["true", "1.0"])
def test_mapping_file_version_is_the_integer_one(tmp_path, version):
    from accelsim.errors import ConfigError
    from accelsim.map.fixed import load_mappings

    path = tmp_path / "m.yaml"
    path.write_text(f"version: {version}\nlayers: {{}}\n")
    with pytest.raises(ConfigError, match="version: expected 1"):
        load_mappings(path)
