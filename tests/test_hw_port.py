"""``accelsim hw port``: a flat design written as the one model's systolic mode (issue 23)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from accelsim.cli import main
from accelsim.errors import ConfigError
from accelsim.hw import load_hw, load_hw_dict
from accelsim.hw.hierarchy import onchip_sram_bytes
from accelsim.hw.port import port

REPO = Path(__file__).resolve().parents[1]
FLAT = REPO / "tests" / "fixtures" / "systolic_designs"


def _level_fields(level) -> tuple:
    return (tuple(level.keeps), level.instances, level.size_bytes, level.banks, level.word_bits,
            level.read_words_per_cycle)


@pytest.mark.parametrize("path", sorted(FLAT.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_flat_design_ports_to_a_valid_systolic_design(path, tmp_path, capsys):
    flat = load_hw(path, port=False)
    assert flat.memory_hierarchy is None
    assert load_hw(path) == port(flat, str(path))   # a flat file loads through the port
    assert main(["hw", "port", str(path), "-o", str(tmp_path / "out.yaml")]) == 0
    ported = load_hw(tmp_path / "out.yaml")
    assert ported.memory_hierarchy is not None and ported.pe_array.systolic
    assert ported == port(flat, str(path))       # the file says what the library builds
    # one shared level with the buffer's figures, one per-PE level with the stationary tensor
    shared, pe = ported.memory_hierarchy
    gb = flat.global_buffer
    assert (shared.size_bytes, shared.banks, shared.word_bits, shared.read_words_per_cycle) == (
        int(gb.size_kib * 1024), gb.banks, gb.word_bits, gb.words_per_cycle)
    stationary = {"output_stationary": ("outputs", flat.scratchpad.psum_bytes),
                  "weight_stationary": ("weights", flat.scratchpad.weight_bytes),
                  "input_stationary": ("inputs", flat.scratchpad.input_bytes)}
    tensor, size = stationary[flat.pe_array.dataflow]
    assert pe.keeps == (tensor,) and pe.instances == "per_pe" and pe.size_bytes == size
    # everything but the storage sections is the flat file's
    for section in ("precision", "sparsity", "storage", "technology", "dram", "low_power",
                    "residency"):
        assert getattr(ported, section) == getattr(flat, section), section
    assert onchip_sram_bytes(ported) <= onchip_sram_bytes(flat)


def test_the_ported_tpu_is_the_shipped_tpus_hierarchy():
    # hw_configs/dense_ws_tpu_like.yaml was ported by hand from the flat fixture (issue 23)
    ported = load_hw(FLAT / "dense_ws_tpu_like.yaml")
    shipped = load_hw(REPO / "hw_configs" / "dense_ws_tpu_like.yaml")
    assert [_level_fields(lv) for lv in ported.memory_hierarchy] == [
        _level_fields(lv) for lv in shipped.memory_hierarchy]


def test_stdout_is_a_loadable_file_keeping_defaults_implicit(capsys):
    assert main(["hw", "port", str(FLAT / "sparten_like.yaml")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# sparten-like: ported by `accelsim hw port`")
    raw = yaml.safe_load(text)
    assert "global_buffer" not in raw and "scratchpad" not in raw
    assert "mapping" not in raw          # not in the flat file: stays a default
    assert load_hw_dict(raw).pe_array.systolic


@pytest.mark.parametrize("change, field", [
    ({"scratchpad": {"psum_bytes": 2}}, "scratchpad.psum_bytes"),      # 24-bit accumulator
    ({"pe_array": {"dataflow": "input_stationary", "macs_per_pe": 2},
      "scratchpad": {"input_bytes": 1}}, "scratchpad.input_bytes"),   # two 8-bit inputs
])
def test_what_cannot_be_ported_is_one_line(change, field, tmp_path, capsys):
    raw = yaml.safe_load((FLAT / "sparten_like.yaml").read_text())
    for section, values in change.items():
        raw[section].update(values)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_hw(path, port=False)      # valid flat fields, but no room when ported
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        port(config, str(path))
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_hw(path)
    assert main(["hw", "port", str(path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0] and "Traceback" not in err[0]


def test_a_design_with_a_hierarchy_is_not_ported(capsys):
    assert main(["hw", "port", str(REPO / "hw_configs" / "eyeriss_v1.yaml")]) != 0
    err = capsys.readouterr().err
    assert "memory_hierarchy" in err and "already" in err


def test_output_never_replaces_a_non_regular_file(tmp_path, capsys):
    target = tmp_path / "dir"
    target.mkdir()
    assert main(["hw", "port", str(FLAT / "sparten_like.yaml"), "-o", str(target)]) != 0
    assert target.is_dir() and not os.listdir(target)


def test_show_says_a_flat_file_was_ported(capsys):
    assert main(["hw", "show", str(FLAT / "sparten_like.yaml")]) == 0
    out = capsys.readouterr().out
    assert "ported to a memory_hierarchy" in out
    assert "memory_hierarchy =" not in out and "pe_array.systolic = true" not in out  # not defaults
    assert "psum_reg: per PE, 4 B, keeps O" in out
