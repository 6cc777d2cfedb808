"""The hardware description is resolved once per simulation (issue 23 item 1): one
:class:`accelsim.sim.design.Design` read by residency planning, sizing, mapping and both
fidelities."""
from __future__ import annotations

from pathlib import Path

import pytest

from sim_helpers import make_hw, random_layer

from accelsim.hw import load_hw
from accelsim.sim import design as design_mod
from accelsim.sim import simulate
from accelsim.sim.design import Design, hardware, resolve
from accelsim.sim.residency import buffer_capacity, plan_network

REPO = Path(__file__).resolve().parents[1]


def _count_builds(monkeypatch) -> list:
    built: list = []
    original = design_mod._build

    def counting(hw):
        built.append(hw.name)
        return original(hw)

    monkeypatch.setattr(design_mod, "_build", counting)
    monkeypatch.setattr(design_mod, "_RESOLVED", {})
    return built


@pytest.mark.parametrize("name", ["eyeriss_v1", "sparten_like", "dense_ws_tpu_like"])
def test_a_simulation_resolves_its_design_once(monkeypatch, name):
    built = _count_builds(monkeypatch)
    hw = load_hw(REPO / "hw_configs" / f"{name}.yaml")
    layers = [random_layer(f"l{i}", 0.5, 0.6, seed=i, index=i, C=4, K=6, H=6, W=6)
              for i in range(3)]
    simulate(layers, hw)
    assert built == [hw.name]


def test_resolve_is_idempotent_and_keeps_the_config():
    hw = make_hw()
    d = resolve(hw)
    assert isinstance(d, Design)
    assert resolve(d) is d and resolve(hw) is d
    assert hardware(d) == hw and hardware(hw) is hw     # an equal config (kept by hash)
    assert d.name == hw.name


def test_capacity_of_the_flat_shorthand_and_of_a_hierarchy():
    # the shorthand's global buffer keeps every tensor: 3 KiB = 3072 bytes for each
    flat = resolve(make_hw(global_buffer={"size_kib": 3}))
    assert dict(flat.capacity) == {"weights": 3072.0, "inputs": 3072.0, "outputs": 3072.0}
    assert flat.mapped and flat.hw.pe_array.systolic      # ported as it loads
    levels = [
        {"name": "glb", "keeps": ["inputs", "outputs"], "instances": "one", "size_bytes": 4096,
         "word_bits": 16, "read_words_per_cycle": 8},
        {"name": "wbuf", "keeps": ["weights"], "instances": "one"},
        {"name": "reg", "keeps": ["inputs", "weights", "outputs"], "instances": "per_pe",
         "size_bytes": 8, "word_bits": 8},
    ]
    mapped = resolve(make_hw(memory_hierarchy=levels))
    assert mapped.mapped
    # inputs and outputs live in the 4 KiB glb; the weight buffer states no size: unbounded
    assert dict(mapped.capacity) == {"weights": None, "inputs": 4096.0, "outputs": 4096.0}
    assert buffer_capacity(mapped.hw, "inputs") == 4096.0
    assert [lv.name for lv in mapped.arch.levels] == ["DRAM", "glb", "wbuf", "reg"]
    assert mapped.arch is mapped.arch          # built once


def test_plan_network_takes_either_form():
    hw = make_hw(global_buffer={"size_kib": 1})
    layers = [random_layer(f"l{i}", 0.5, 0.5, seed=i, index=i, C=8, K=8, H=6, W=6)
              for i in range(2)]
    assert plan_network(layers, hw) == plan_network(layers, resolve(hw))


def test_a_flat_design_loads_with_an_arch():
    # every design is on the one model: a flat file's buffer and stationary register are levels
    arch = resolve(make_hw()).arch
    assert [lv.name for lv in arch.levels] == ["DRAM", "global_buffer", "psum_reg"]
