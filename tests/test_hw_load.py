"""Hardware YAML: valid files load; every class of bad input gives a clear error."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from accelsim.errors import ConfigError
from accelsim.hw import dump_hw, energy_model, load_hw, load_hw_dict
from accelsim.hw.summary import derived_figures

HW_DIR = Path(__file__).resolve().parents[1] / "hw_configs"
SHIPPED = sorted(p for p in HW_DIR.glob("*.yaml"))


def write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_hw(path)
    return info.value


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load_and_round_trip(path: Path, tmp_path: Path) -> None:
    config = load_hw(path)
    again = load_hw(write(tmp_path, "again.yaml", dump_hw(config)))
    assert again == config
    assert again.hash == config.hash
    figures = derived_figures(config)
    assert figures["peak_macs_per_cycle"] == config.pe_array.rows * config.pe_array.cols * config.pe_array.macs_per_pe
    levels = list(figures["energy_per_mac_pj"].values())
    assert levels == sorted(levels) and levels[0] > 0


def test_five_shipped_designs_cover_the_brief() -> None:
    configs = [load_hw(p) for p in SHIPPED]
    assert len(configs) >= 5
    assert any(not c.has_sparsity and c.pe_array.dataflow == "weight_stationary" for c in configs)
    assert any(c.sparsity.gate_zero_operands and c.storage.activations.off_chip.format == "run_length"
               for c in configs)
    assert any(c.sparsity.skip_zero_activations and not c.sparsity.skip_zero_weights for c in configs)
    assert any(c.sparsity.skip_zero_activations and c.sparsity.skip_zero_weights
               and c.storage.weights.format == "bitmap" for c in configs)
    assert any(c.low_power.power_gating for c in configs)


def test_minimal_config_defaults(minimal_hw: dict) -> None:
    config = load_hw_dict(minimal_hw)
    assert config.precision.activation_bits == 8
    assert config.pe_array.sync == "array"
    assert config.storage.weights.format == "dense"
    assert not config.has_sparsity


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "name: x\npe_array: [rows: 4\n")
    err = error_of(path)
    assert str(path) in str(err) and "malformed YAML" in str(err) and "line" in str(err)


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    assert "empty" in str(error_of(write(tmp_path, "e.yaml", "")))
    assert "mapping" in str(error_of(write(tmp_path, "l.yaml", "- 1\n- 2\n")))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_hw("does/not/exist.yaml")


@pytest.mark.parametrize("mutate, field, expected", [
    (lambda d: d["pe_array"].pop("rows"), "pe_array.rows", "required field is missing"),
    (lambda d: d.pop("technology"), "technology", "required field is missing"),
    (lambda d: d["pe_array"].__setitem__("rows", "four"), "pe_array.rows", "expected a positive integer"),
    (lambda d: d["pe_array"].__setitem__("rows", 4.5), "pe_array.rows", "expected a positive integer"),
    (lambda d: d["pe_array"].__setitem__("cols", True), "pe_array.cols", "expected a positive integer"),
    (lambda d: d["pe_array"].__setitem__("rows", -4), "pe_array.rows", "expected a positive integer"),
    (lambda d: d["pe_array"].__setitem__("rows", 0), "pe_array.rows", "expected a positive integer"),
    (lambda d: d["global_buffer"].__setitem__("size_kib", 0), "global_buffer.size_kib", "positive number"),
    (lambda d: d["global_buffer"].__setitem__("size_kib", -1.5), "global_buffer.size_kib", "positive number"),
    (lambda d: d["scratchpad"].__setitem__("psum_bytes", -1), "scratchpad.psum_bytes", "non-negative"),
    (lambda d: d["technology"].__setitem__("clock_mhz", "fast"), "technology.clock_mhz", "positive number"),
    (lambda d: d["pe_array"].__setitem__("dataflow", "row_stationery"), "pe_array.dataflow", "expected one of"),
    (lambda d: d.__setitem__("storage", {"weights": {"format": "zip"}}), "storage.weights.format", "expected one of"),
    (lambda d: d["pe_array"].__setitem__("sync", "global"), "pe_array.sync", "expected one of"),
    (lambda d: d.__setitem__("sparsity", {"skip_zero_activations": "yes"}), "sparsity.skip_zero_activations", "true or false"),
    (lambda d: d["pe_array"].__setitem__("colums", 4), "pe_array.colums", "did you mean 'cols'"),
    (lambda d: d.__setitem__("globl_buffer", {}), "globl_buffer", "did you mean 'global_buffer'"),
    (lambda d: d.__setitem__("version", 2), "version", "expected one of 1"),
    (lambda d: d["technology"].__setitem__("energy_table", "horowitz_7nm"), "technology.energy_table", "expected one of"),
    (lambda d: d["technology"].__setitem__("energy_overrides", {"mac_energy": 1.0}), "technology.energy_overrides.mac_energy", "expected one of"),
    (lambda d: d.__setitem__("dram", {"ideal": False}), "dram.bandwidth_gb_per_s", "required unless dram.ideal"),
    (lambda d: d.__setitem__("pe_array", 7), "pe_array", "expected a mapping"),
    (lambda d: d.__setitem__("precision", {"activation_bits": 64}), "precision.activation_bits", "from 1 to 32"),
    (lambda d: d.__setitem__("low_power", {"wakeup_cycles": 5}), "low_power.wakeup_cycles", "power_gating is false"),
])
def test_bad_field_error_names_file_field_and_expectation(minimal_hw, tmp_path, mutate, field, expected) -> None:
    data = copy.deepcopy(minimal_hw)
    mutate(data)
    path = write(tmp_path, "bad.yaml", data)
    err = error_of(path)
    message = str(err)
    assert message.startswith(f"{path}: {field}: "), message
    assert expected in message, message
    assert err.file == str(path) and err.field == field


def test_extends_overrides_fields(minimal_hw, tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", minimal_hw)
    child = write(tmp_path, "child.yaml", {"extends": "base.yaml", "name": "child",
                                           "pe_array": {"rows": 16}})
    config = load_hw(child)
    assert config.name == "child"
    assert config.pe_array.rows == 16 and config.pe_array.cols == 4  # merged, not replaced
    assert config.pe_array.dataflow == "output_stationary"


def test_extends_chain_of_three(minimal_hw, tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", minimal_hw)
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "b.yaml", {"extends": "../a.yaml", "pe_array": {"cols": 8}})
    c = write(tmp_path, "c.yaml", {"extends": "sub/b.yaml", "sparsity": {"skip_zero_weights": True}})
    config = load_hw(c)
    assert (config.pe_array.rows, config.pe_array.cols) == (4, 8)
    assert config.sparsity.skip_zero_weights


def test_broken_extends_chain(tmp_path: Path) -> None:
    path = write(tmp_path, "child.yaml", {"extends": "missing.yaml", "name": "x"})
    err = error_of(path)
    assert err.field == "extends" and "missing.yaml" in str(err) and "not found" in str(err)


def test_extends_cycle(minimal_hw, tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", dict(minimal_hw, extends="b.yaml"))
    write(tmp_path, "b.yaml", {"extends": "a.yaml"})
    err = error_of(tmp_path / "a.yaml")
    assert err.field == "extends" and "cycle" in str(err)


def test_unknown_key_in_parent_is_reported(minimal_hw, tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", dict(minimal_hw, bogus=1))
    child = write(tmp_path, "child.yaml", {"extends": "base.yaml"})
    assert "bogus" in str(error_of(child))


def test_overrides_for_sweeps(minimal_hw, tmp_path: Path) -> None:
    path = write(tmp_path, "base.yaml", minimal_hw)
    config = load_hw(path, overrides={"pe_array.rows": 32, "sparsity.skip_zero_activations": True})
    assert config.pe_array.rows == 32 and config.sparsity.skip_zero_activations
    with pytest.raises(ConfigError, match="pe_array.rows"):
        load_hw(path, overrides={"pe_array.rows": 0})


def test_dense_twin_turns_sparsity_off() -> None:
    config = load_hw(HW_DIR / "sparten_like.yaml")
    twin = config.dense_twin()
    assert config.has_sparsity and not twin.has_sparsity
    assert twin.storage.weights.format == "dense"
    assert twin.pe_array == config.pe_array and twin.hash != config.hash


def test_energy_scales_with_voltage_squared(minimal_hw) -> None:
    low = load_hw_dict(dict(minimal_hw, technology={"clock_mhz": 500, "voltage_v": 0.45}))
    nominal = load_hw_dict(dict(minimal_hw, technology={"clock_mhz": 500, "voltage_v": 0.9}))
    assert energy_model(low).mac_pj == pytest.approx(energy_model(nominal).mac_pj / 4)
    assert energy_model(low).dram_pj_per_bit == energy_model(nominal).dram_pj_per_bit


def test_energy_overrides_replace_table_values(minimal_hw) -> None:
    data = copy.deepcopy(minimal_hw)
    data["technology"]["energy_overrides"] = {"mac_pj": 2.0, "dram_pj_per_bit": 10.0}
    e = energy_model(load_hw_dict(data))
    assert e.mac_pj == 2.0 and e.dram_pj_per_bit == 10.0
    assert e.gated_mac_pj == pytest.approx(2.0 * e.gated_fraction)
