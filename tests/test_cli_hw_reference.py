"""`accelsim hw schema` / docs.field_docs, `hw tables` energies, defaults named by `hw show`."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import yaml

from accelsim.cli import main
from accelsim.hw import docs, rules
from accelsim.hw.load import load_hw_dict
from accelsim.hw.schema import DATAFLOWS, spec


def _leaf_paths(data: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        path = prefix + key
        out.append(path)
        if isinstance(value, dict) and key != "energy_overrides":
            out += _leaf_paths(value, path + ".")
    return out


def test_every_resolved_field_is_documented(minimal_hw):
    documented = {row.path for row in docs.field_docs()}
    resolved = load_hw_dict(minimal_hw).to_dict()
    # storage.*.dram is null by default; document its fields via the section type
    missing = [p for p in _leaf_paths(resolved) if p not in documented]
    assert missing == []
    assert all(row.meaning for row in docs.field_docs()), "every field needs a doc line"


def test_known_fields_have_unit_default_and_allowed_values():
    rows = {row.path: row for row in docs.field_docs()}
    assert (rows["technology.clock_mhz"].unit, rows["technology.clock_mhz"].default) == ("MHz", "required")
    assert rows["global_buffer.size_kib"].unit == "KiB"
    assert rows["dram.bandwidth_gb_per_s"].unit == "GB/s"
    assert rows["low_power.wakeup_energy_pj"].unit == "pJ"
    assert rows["precision.activation_bits"].default == "8"
    assert rows["precision.activation_bits"].allowed == "an integer from 1 to 32"
    assert rows["precision"].section and rows["precision"].default == "defaults"
    assert rows["pe_array.rows"].allowed.startswith("a positive integer")
    assert all(repr(d) in rows["pe_array.dataflow"].allowed for d in DATAFLOWS)
    assert rows["dram.ideal"].allowed == "true or false"
    assert rows["dram.ideal"].default == "false"
    assert rows["technology.voltage_v"].allowed.endswith(", or null")


@pytest.mark.parametrize("rule, words", [
    (rules.one_of(("a", "b")), "one of 'a', 'b'"),
    (rules.optional(rules.bounded(rules.positive_int, 10)), "a positive integer up to 10, or null"),
    (rules.bounded(rules.positive_float, 2.5), "a positive number up to 2.5"),
    (rules.positive_int, "a positive integer"),       # the generic ceiling is not a field bound
    (rules.int_range(3, 7), "an integer from 3 to 7"),
    (rules.boolean, "true or false"),
])
def test_allowed_values_are_read_off_the_rule(rule, words):
    assert docs.allowed_values(rule) == words


@dataclass(frozen=True)
class _Level:
    name: str = spec(rules.non_empty_str, "level name")
    size_bytes: int = spec(rules.bounded(rules.positive_int, 64), "capacity", 8)
    speed: float = spec(rules.positive_float, "a field with its unit in metadata", 1.0)


@dataclass(frozen=True)
class _Design:
    levels: tuple | None = spec(rules.optional(rules.list_of(rules.section(_Level))),
                                "levels, outermost first", None)
    inner: _Level = spec(rules.section(_Level), "one level", _Level("x"))


def test_walk_is_generic_lists_and_nested_sections():
    rows = {row.path: row for row in docs.field_docs(_Design)}
    assert rows["levels"].type == "list[section] | null" and rows["levels"].default == "null"
    assert rows["levels[].size_bytes"].allowed == "a positive integer up to 64"
    assert rows["levels[].size_bytes"].unit == "bytes" and rows["levels[].name"].default == "required"
    assert rows["inner.size_bytes"].default == "8" and rows["inner"].type == "section"


def test_unit_metadata_wins_over_the_name():
    assert docs.unit_of("speed", {"unit": "GHz"}) == "GHz"
    assert docs.unit_of("clock_mhz", {}) == "MHz"
    assert docs.unit_of("rows", {}) == ""


def test_hw_schema_cli_text_json_markdown(tmp_path, capsys):
    assert main(["hw", "schema"]) == 0
    text = capsys.readouterr().out
    for row in docs.field_docs():
        assert row.path in text
    assert main(["hw", "schema", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"path", "type", "unit", "default", "allowed", "meaning"} <= set(data[0])
    out = tmp_path / "hw.md"
    assert main(["hw", "schema", "--markdown", "-o", str(out)]) == 0
    assert out.read_text() == docs.markdown()
    assert "| `technology.clock_mhz` | number | MHz | `required` |" in out.read_text()


def test_hw_tables_show_the_energies(capsys):
    assert main(["hw", "tables"]) == 0
    out = capsys.readouterr().out
    assert "horowitz_45nm: 45 nm, nominal 0.9 V" in out
    assert "int_mult_pj" in out and "8 bit 0.2, 32 bit 3.1 (pJ each)" in out
    assert "dram_pj_per_bit          30.5 pJ/bit" in out
    # 8x8 MAC = 0.2 pJ multiply + 0.1 pJ 32-bit add (Horowitz 45 nm)
    assert "8x8-bit MAC (32-bit accumulate) 0.3 pJ" in out
    assert main(["hw", "tables", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["horowitz_45nm"]["int_mult_pj"]["8"] == 0.2


def test_hw_show_names_the_defaulted_sections(tmp_path, capsys, minimal_hw):
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(minimal_hw))  # no precision, sparsity, storage, low_power
    assert main(["hw", "show", str(path)]) == 0
    out = capsys.readouterr().out
    block = out.split("# defaults taken")[1].split("# derived figures")[0]
    assert "precision: not in the file, defaults {activation_bits: 8, weight_bits: 8, " \
           "accumulator_bits: 32}" in block
    assert "sparsity: not in the file" in block and "low_power: not in the file" in block
    assert "technology.energy_table = horowitz_45nm" in block
    assert "pe_array.rows" not in block  # given in the file
    given = dict(minimal_hw, precision={"activation_bits": 4, "weight_bits": 4,
                                        "accumulator_bits": 16})
    path.write_text(yaml.safe_dump(given))
    assert main(["hw", "show", "--json", str(path)]) == 0
    defaulted = json.loads(capsys.readouterr().out)["defaulted"]
    assert "precision" not in defaulted["sections"] and "sparsity" in defaulted["sections"]


def test_schema_text_shows_every_allowed_value(capsys):
    """`accelsim hw schema` wraps a long cell instead of cutting it: every choice is printed."""
    from accelsim.hw.schema import STORAGE_FORMATS

    assert main(["hw", "schema"]) == 0
    out = capsys.readouterr().out
    for value in (*DATAFLOWS, *STORAGE_FORMATS):
        assert repr(value) in out, value
    assert "'row_stationary'" in out and "'coo'" in out
    import re

    for row in docs.field_docs():
        for choice in re.findall(r"'[^']+'", row.allowed):
            assert choice in out, (row.path, choice)
