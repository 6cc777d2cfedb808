"""Sweep spec validation and expansion (no simulation needed)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from accelsim.errors import ConfigError
from accelsim.sweep.expand import axis_values, expand
from accelsim.sweep.spec import load_sweep_spec


@pytest.fixture
def spec_dir(tmp_path: Path, minimal_hw: dict) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(minimal_hw))
    (tmp_path / "t.trace").write_bytes(b"")  # existence is all the spec checks
    return tmp_path


def write_spec(folder: Path, **fields) -> Path:
    data = {"version": 1, "base": "base.yaml", "traces": ["t.trace"],
            "axes": {"pe_array.rows": {"values": [2, 4]}}}
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def error_of(folder: Path, **fields) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_sweep_spec(write_spec(folder, **fields))
    return info.value


def test_valid_spec_resolves_paths(spec_dir):
    spec = load_sweep_spec(write_spec(spec_dir))
    assert spec.base_path == str(spec_dir / "base.yaml")
    assert spec.trace_paths == (str(spec_dir / "t.trace"),)
    assert spec.objective_pairs == (("energy_pj", "cycles"),)
    assert spec.fidelity == "fast" and spec.mode == "grid"


@pytest.mark.parametrize("fields, field, expected", [
    ({"version": 2}, "version", "expected one of 1"),
    ({"version": None}, "version", "required field is missing"),
    ({"axes": {"pe_array.rowz": {"values": [2]}}}, "axes.pe_array.rowz",
     "did you mean 'pe_array.rows'"),
    ({"axes": {"pe_array": {"values": [2]}}}, "axes.pe_array", "is a section"),
    ({"axes": {"pe_array.rows": {"values": [2, -4]}}}, "axes.pe_array.rows.values[1]",
     "expected a positive integer, got -4"),
    ({"axes": {"pe_array.dataflow": {"values": ["row_stationery"]}}},
     "axes.pe_array.dataflow.values[0]", "expected one of"),
    ({"axes": {"pe_array.rows": {"values": [2], "range": {"start": 1, "stop": 2, "step": 1}}}},
     "axes.pe_array.rows", "exactly one of values, range or random"),
    ({"axes": {"pe_array.rows": {"range": {"start": 4, "stop": 1, "step": 1}}}},
     "axes.pe_array.rows.range", "is empty"),
    ({"axes": {"pe_array.rows": {"range": {"start": 0, "stop": 4, "step": 2}}}},
     "axes.pe_array.rows.range", "expected a positive integer, got 0"),
    ({"axes": {"pe_array.rows": {"range": {"start": 1, "stop": 4, "step": 0}}}},
     "axes.pe_array.rows.range.step", "non-zero"),
    ({"axes": {"pe_array.rows": {"random": {"low": 1, "high": 8, "integer": True}}}},
     "axes.pe_array.rows.random.count", "required in grid mode"),
    ({"axes": {"global_buffer.size_kib": {"random": {"low": 0, "high": 8, "count": 2,
                                                      "log": True}}}},
     "axes.global_buffer.size_kib.random.low", "log sampling needs low > 0"),
    ({"axes": {"pe_array.rows": {"random": {"low": 8, "high": 2, "count": 2}}}},
     "axes.pe_array.rows.random.high", "expected high >= low"),
    ({"axes": {"pe_array.rows": {"valuez": [2]}}}, "axes.pe_array.rows.valuez",
     "did you mean 'values'"),
    ({"axes": {}}, "axes", "at least one axis"),
    ({"mode": "random"}, "points", "required in random mode"),
    ({"points": 5}, "points", "only allowed in random mode"),
    ({"mode": "exhaustive"}, "mode", "expected one of 'grid', 'random'"),
    ({"constraints": {"max_sram_kib": 10}}, "constraints.max_sram_kib", "expected one of"),
    ({"constraints": {"max_pes": "many"}}, "constraints.max_pes", "expected a finite number"),
    ({"constraints": {"max_pes": 4, "min_pes": 8}}, "constraints.min_pes", "at most max_pes"),
    ({"objectives": [["energy_pj", "cycels"]]}, "objectives[0][1]", "did you mean 'cycles'"),
    ({"objectives": [["energy_pj"]]}, "objectives[0]", "at least 2"),
    ({"objectives": [["cycles", "cycles"]]}, "objectives[0]", "two different metrics"),
    ({"fidelity": "exact"}, "fidelity", "expected one of 'fast', 'cycle'"),
    ({"samples": 0}, "samples", "expected a positive integer"),
    ({"base": "missing.yaml"}, "base", "not found"),
    ({"traces": ["t.trace", "nope.trace"]}, "traces[1]", "not found"),
    ({"traces": []}, "traces", "expected a list of trace file paths"),
    ({"extra": 1}, "extra", "unknown key"),
    ({"base_path": "x"}, "base_path", "unknown key"),
    ({"axes": {"technology.energy_overrides.mac_pjj": {"values": [1.0]}}},
     "axes.technology.energy_overrides.mac_pjj", "did you mean 'mac_pj'"),
    ({"axes": {"pe_array.rows.x": {"values": [1]}}}, "axes.pe_array.rows.x", "is not a section"),
])
def test_spec_errors_name_file_field_and_expectation(spec_dir, fields, field, expected):
    err = error_of(spec_dir, **fields)
    assert err.file == str(spec_dir / "spec.yaml")
    assert err.field == field, str(err)
    assert expected in err.detail, str(err)


def test_empty_and_malformed_spec_files(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("axes: [unclosed")
    with pytest.raises(ConfigError, match="malformed YAML at line 1"):
        load_sweep_spec(path)
    with pytest.raises(ConfigError, match="file not found"):
        load_sweep_spec(tmp_path / "absent.yaml")
    path.write_text("")
    with pytest.raises(ConfigError, match="file is empty; expected a mapping of sweep fields"):
        load_sweep_spec(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping of sweep fields .* at the top level, got list"):
        load_sweep_spec(path)


def test_energy_override_axis_and_list_shorthand(spec_dir):
    spec = load_sweep_spec(write_spec(spec_dir, axes={
        "technology.energy_overrides.dram_pj_per_bit": [10.0, 20.0],
        "pe_array.cols": [2, 4, 8]}))
    expansion = expand(spec)
    assert len(expansion.points) == 6
    assert {p.hw.technology.energy_overrides["dram_pj_per_bit"] for p in expansion.points} == {10.0, 20.0}


def test_grid_expansion_is_the_cartesian_product(spec_dir):
    spec = load_sweep_spec(write_spec(spec_dir, axes={
        "pe_array.rows": {"values": [2, 4, 4]},                     # duplicates collapse
        "pe_array.cols": {"range": {"start": 2, "stop": 8, "step": 2}},  # stop included
        "global_buffer.size_kib": {"random": {"low": 16, "high": 256, "count": 3, "log": True}}}))
    expansion = expand(spec)
    assert len(expansion.points) == 2 * 4 * 3
    params = [tuple(p.params.values()) for p in expansion.points]
    assert len(set(params)) == len(params)
    assert {p.params["pe_array.cols"] for p in expansion.points} == {2, 4, 6, 8}
    sizes = {p.params["global_buffer.size_kib"] for p in expansion.points}
    assert len(sizes) == 3 and all(16 <= s <= 256 for s in sizes)
    for point in expansion.points:
        assert point.hw.pe_array.rows == point.params["pe_array.rows"]
        # a flat design loads ported: the buffer is the hierarchy's shared level
        assert point.hw.memory_hierarchy[0].size_bytes == round(
            point.params["global_buffer.size_kib"] * 1024)
    assert [p.index for p in expansion.points] == list(range(len(expansion.points)))


def test_float_range_includes_stop(spec_dir):
    spec = load_sweep_spec(write_spec(spec_dir, axes={
        "technology.voltage_v": {"range": {"start": 0.6, "stop": 0.9, "step": 0.1}}}))
    assert axis_values("technology.voltage_v", spec.axes["technology.voltage_v"], 0) == \
        pytest.approx([0.6, 0.7, 0.8, 0.9])


def test_random_mode_is_reproducible_and_seeded(spec_dir):
    axes = {"pe_array.rows": {"random": {"low": 1, "high": 64, "integer": True, "log": True}},
            "global_buffer.size_kib": {"random": {"low": 8.0, "high": 512.0}},
            "pe_array.dataflow": {"values": ["output_stationary", "input_stationary"]}}
    first = expand(load_sweep_spec(write_spec(spec_dir, mode="random", points=40, axes=axes)))
    again = expand(load_sweep_spec(write_spec(spec_dir, mode="random", points=40, axes=axes)))
    other = expand(load_sweep_spec(write_spec(spec_dir, mode="random", points=40, seed=7,
                                              axes=axes)))
    assert [p.params for p in first.points] == [p.params for p in again.points]
    assert [p.params for p in first.points] != [p.params for p in other.points]
    assert len(first.points) + first.duplicates == 40
    for p in first.points:
        assert isinstance(p.params["pe_array.rows"], int) and 1 <= p.params["pe_array.rows"] <= 64
        assert 8.0 <= p.params["global_buffer.size_kib"] <= 512.0
    # the order axes are written in does not change the draws
    reordered = dict(reversed(list(axes.items())))
    swapped = expand(load_sweep_spec(write_spec(spec_dir, mode="random", points=40, axes=reordered)))
    assert sorted(map(lambda p: sorted(p.params.items()), swapped.points)) == \
        sorted(map(lambda p: sorted(p.params.items()), first.points))


def test_random_axis_count_only_in_grid_mode(spec_dir):
    err = error_of(spec_dir, mode="random", points=3,
                   axes={"pe_array.rows": {"random": {"low": 1, "high": 4, "count": 2}}})
    assert err.field == "axes.pe_array.rows.random.count"


def test_constraints_drop_and_count(spec_dir):
    # tiny design: 16 B + 16 B + 4 B scratchpads per PE, 64 KiB global buffer
    spec = load_sweep_spec(write_spec(spec_dir, axes={
        "pe_array.rows": [2, 4, 8, 16], "pe_array.cols": [4, 8]},
        constraints={"max_pes": 64, "min_peak_macs_per_cycle": 16}))
    expansion = expand(spec)
    kept = sorted((p.params["pe_array.rows"], p.params["pe_array.cols"]) for p in expansion.points)
    assert kept == [(2, 8), (4, 4), (4, 8), (8, 4), (8, 8), (16, 4)]  # 64 PEs is within budget
    assert expansion.dropped == 2
    assert expansion.drop_reasons == {"max_pes": 1, "min_peak_macs_per_cycle": 1}
    for p in expansion.points:
        assert p.figures["pes"] == p.params["pe_array.rows"] * p.params["pe_array.cols"]


def test_sram_constraint_uses_derived_figures(spec_dir):
    spec = load_sweep_spec(write_spec(spec_dir, axes={"global_buffer.size_kib": [32, 64, 128]},
                                      constraints={"max_onchip_sram_kib": 64.6}))
    expansion = expand(spec)
    # 16 PEs x a 4-B partial-sum register (the output-stationary PE's one level; its input and
    # weight scratchpads are the array's pipeline registers once ported) = 64 B = 0.0625 KiB
    # on top of the global buffer
    assert [p.params["global_buffer.size_kib"] for p in expansion.points] == [32, 64]
    assert expansion.points[1].figures["onchip_sram_kib"] == pytest.approx(64.0625)


def test_invalid_hardware_combination_is_a_failed_point(spec_dir):
    # weight_stationary needs weight_bytes * 8 >= weight_bits * macs_per_pe
    spec = load_sweep_spec(write_spec(spec_dir, axes={
        "pe_array.dataflow": ["output_stationary", "weight_stationary"],
        "scratchpad.weight_bytes": [0, 16]}))
    expansion = expand(spec)
    assert len(expansion.points) == 4 and len(expansion.valid) == 3
    bad = [p for p in expansion.points if p.hw is None][0]
    assert bad.params == {"pe_array.dataflow": "weight_stationary", "scratchpad.weight_bytes": 0}
    assert "scratchpad.weight_bytes" in bad.error


def test_shipped_sweep_specs_are_valid(repo_root, tmp_path):
    specs = sorted((repo_root / "hw_configs" / "sweeps").glob("*.yaml"))
    assert specs
    stand_in = tmp_path / "any.trace"
    stand_in.write_bytes(b"")
    for path in specs:
        spec = load_sweep_spec(path, traces=[stand_in])  # shipped traces may not be built yet
        assert spec.trace_paths == (str(stand_in.resolve()),)
        expansion = expand(spec)
        assert len(expansion.valid) >= 10, path


def test_trace_override_replaces_the_spec_traces(spec_dir, tmp_path, monkeypatch):
    path = write_spec(spec_dir)
    other = tmp_path / "elsewhere" / "net.trace"
    other.parent.mkdir()
    other.write_bytes(b"")
    monkeypatch.chdir(other.parent)
    spec = load_sweep_spec(path, traces=["net.trace"])  # relative to the working directory
    assert spec.trace_paths == (str(other),)
    with pytest.raises(ConfigError, match="traces\\[0\\]: trace file .* not found"):
        load_sweep_spec(path, traces=["missing.trace"])
