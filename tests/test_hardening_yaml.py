"""Strict YAML: one loader for hardware files, sweep specs and recipes."""
from __future__ import annotations

import os
import time

import pytest
import yaml

from accelsim.errors import ConfigError
from accelsim.hw import load_hw
from accelsim.sweep.spec import load_sweep_spec
from accelsim.train.recipe import load_recipe
from accelsim.yamlio import MAX_BYTES, MAX_DEPTH, load_yaml_text, read_yaml

HW = """version: 1
name: tiny
technology: {clock_mhz: 500}
pe_array: {rows: 4, cols: 4, dataflow: output_stationary}
scratchpad: {input_bytes: 16, weight_bytes: 16, psum_bytes: 4}
global_buffer: {size_kib: 64, words_per_cycle: 8}
dram: {ideal: true}
"""
RECIPE = """version: 1
model: lenet5
data: {dataset: digits}
stages: [{name: dense, epochs: 1}]
"""


def _loaders(tmp_path):
    (tmp_path / "base.yaml").write_text(HW)
    (tmp_path / "t.trace").write_bytes(b"")
    spec_head = "version: 1\nbase: base.yaml\ntraces: [t.trace]\naxes: {pe_array.rows: [4, 8]}\n"
    return {"hw": (HW, load_hw), "sweep": (spec_head, load_sweep_spec),
            "recipe": (RECIPE, load_recipe)}


@pytest.mark.parametrize("kind", ["hw", "sweep", "recipe"])
@pytest.mark.parametrize("extra,words", [
    ("version: 1\n", r"line \d+, column 1: duplicate key 'version' \(first given at line \d+\)"),
    ("x: 020\n", "'020' means different things in YAML 1.1 and 1.2"),
    ("x: 1:30\n", "'1:30' means different things"),
    ("x: yes\n", "'yes' means different things.*write true or false"),
    ("x: off\n", "'off' means different things"),
    ("x: 1_000\n", "'1_000' means different things"),
    ("<<: {x: 1}\n", "merge keys are not supported"),
])
def test_every_loader_refuses_duplicates_and_yaml11_surprises(tmp_path, kind, extra, words):
    text, load = _loaders(tmp_path)[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text + extra)
    with pytest.raises(ConfigError, match=words) as info:
        load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_second_section_no_longer_replaces_the_first(tmp_path):
    path = tmp_path / "hw.yaml"
    path.write_text(HW + "pe_array: {rows: 8, cols: 8, dataflow: weight_stationary}\n")
    with pytest.raises(ConfigError, match="line 8, column 1: duplicate key 'pe_array'"):
        load_hw(path)


def test_yaml_12_core_scalars():
    data = load_yaml_text("a: 0o20\nb: 0x1F\nc: 1e3\nd: -1.5e-3\ne: 2024-01-01\nf: ~\ng: True\n"
                          "h: '020'\ni: 20\nj: 0\nk: 0.5\nl: n\n")
    assert data == {"a": 16, "b": 31, "c": 1000.0, "d": -0.0015, "e": "2024-01-01",
                    "f": None, "g": True, "h": "020", "i": 20, "j": 0, "k": 0.5, "l": "n"}
    assert type(data["c"]) is float and type(data["i"]) is int


def test_alias_bomb_is_refused_fast():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    assert len(text) < 600
    assert yaml.safe_load(text)  # PyYAML itself accepts it (the expansion happens later)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases expand to more than 1,000,000 nodes"):
        load_yaml_text(text, "bomb.yaml")
    assert time.perf_counter() - start < 1.0
    assert load_yaml_text("x: &x [1, 2]\ny: *x\n") == {"x": [1, 2], "y": [1, 2]}


def test_recursive_alias_is_refused():
    with pytest.raises(ConfigError, match="refers to the node that contains it"):
        load_yaml_text("a: &x [1, *x]\n")


@pytest.mark.parametrize("text", ["[" * 1000 + "]" * 1000,
                                  "".join("  " * i + "k:\n" for i in range(1000)) + "  " * 1000 + "v"])
def test_deep_nesting_is_one_line(text):
    with pytest.raises(ConfigError, match=f"nesting deeper than {MAX_DEPTH} levels"):
        load_yaml_text(text, "deep.yaml")
    load_yaml_text("[" * MAX_DEPTH + "]" * MAX_DEPTH)  # at the limit: fine


def test_non_utf8_and_oversized_and_non_regular_files(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text \(byte 0xe9 at offset 9\)"):
        load_hw(bad)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than the 1,048,576-byte limit"):
        read_yaml(big)
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO, expected a regular"):
        load_hw(fifo)  # would block forever in open()
    with pytest.raises(ConfigError, match="is a device"):
        read_yaml("/dev/zero")
    with pytest.raises(ConfigError, match="is a directory"):
        load_recipe(tmp_path)


def test_huge_integer_literal_is_one_line():
    with pytest.raises(ConfigError, match="out of range"):
        load_yaml_text("rows: 1" + "0" * 5000)


def test_long_extends_chain_is_refused(tmp_path):
    (tmp_path / "f0.yaml").write_text(HW)
    for i in range(1, 3000):
        (tmp_path / f"f{i}.yaml").write_text(f"extends: f{i - 1}.yaml\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="extends: the extends: chain is longer than 32 files"):
        load_hw(tmp_path / "f2999.yaml")
    assert time.perf_counter() - start < 2.0
    assert load_hw(tmp_path / "f20.yaml").name == "tiny"  # a reasonable chain still loads
