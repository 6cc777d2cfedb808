"""Area model (accelsim.hw.area): components from the hierarchy, scaling rules, hw show, totals."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from accelsim.cli import main
from accelsim.errors import AccelsimError
from accelsim.hw import area as area_mod
from accelsim.hw.area import area_of, logic_area_scale, node_of, sram_area_scale
from accelsim.hw.energy import technology_data
from accelsim.hw.load import load_hw

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "hw_configs").glob("*.yaml"))
EYERISS = REPO / "hw_configs" / "eyeriss_v1.yaml"
TPU = REPO / "hw_configs" / "dense_ws_tpu_like.yaml"
SPARTEN = REPO / "hw_configs" / "sparten_like.yaml"


def _mm2(path, overrides=None, **kw) -> dict[str, float]:
    return area_of(load_hw(path, overrides), **kw).by_name()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_design_has_a_positive_breakdown(path):
    area = area_of(load_hw(path))
    assert area.total_mm2 > 0
    assert all(c.mm2 >= 0 for c in area.components)
    assert area.total_mm2 == pytest.approx(sum(area.by_name().values()))
    assert area.cells_mm2 * area.layout_overhead == pytest.approx(area.total_mm2)


def test_one_component_per_level_then_datapath():
    hw = load_hw(EYERISS)
    names = [c.name for c in area_of(hw).components]
    assert names[:4] == [lv.name for lv in hw.memory_hierarchy]
    assert "mac" in names and "noc" in names and "zero_gating" in names


def test_per_pe_components_scale_with_the_pe_count_and_shared_ones_do_not():
    small, big = _mm2(EYERISS), _mm2(EYERISS, {"pe_array.cols": 28})
    for name in ("ifmap_spad", "filter_spad", "psum_spad", "mac", "noc", "zero_gating"):
        assert big[name] == pytest.approx(2 * small[name], rel=1e-12), name
    assert big["glb"] == pytest.approx(small["glb"], rel=1e-12)


def test_mac_area_grows_with_operand_widths():
    a8 = _mm2(TPU)["mac"]
    a16 = _mm2(TPU, {"precision.activation_bits": 16, "precision.weight_bits": 16})["mac"]
    prim = area_mod._Primitives(45)
    expected = (prim.multiplier(16, 16) + prim.adder(32)) / (prim.multiplier(8, 8) + prim.adder(32))
    assert a16 / a8 == pytest.approx(expected, rel=1e-12)
    assert prim.multiplier(16, 16) == pytest.approx(4 * prim.multiplier(8, 8))


def test_sram_by_capacity_banks_and_ports():
    base = _mm2(TPU)["unified_buffer"]
    double = _mm2(TPU, {"memory_hierarchy.unified_buffer.size_bytes": 1 << 20})["unified_buffer"]
    assert 1.9 < double / base <= 2.0            # per-bit area falls slightly with bank size
    more_banks = _mm2(TPU, {"memory_hierarchy.unified_buffer.banks": 256})["unified_buffer"]
    assert more_banks > base                     # smaller banks are less dense (CACTI's points)
    hw = load_hw(EYERISS, {"memory_hierarchy.glb.write_words_per_cycle": 2})
    two_port = area_of(hw).by_name()["glb"]
    factor = technology_data()["area"]["sram_two_port_factor"]
    assert two_port == pytest.approx(_mm2(EYERISS)["glb"] * factor, rel=1e-12)


def test_small_levels_are_registers_and_large_ones_sram():
    limit = technology_data()["area"]["register_file_max_bytes"]
    comps = {c.name: c for c in area_of(load_hw(EYERISS)).components}
    assert comps["ifmap_spad"].kind == comps["psum_spad"].kind == "registers"   # 24 B, 48 B
    assert comps["filter_spad"].kind == comps["glb"].kind == "sram"             # 448 B, 108 KiB
    assert 48 <= limit < 448


def test_unbounded_level_has_no_area():
    hw = load_hw(EYERISS, {"memory_hierarchy.glb.size_bytes": None})
    assert area_of(hw).by_name()["glb"] == 0.0


def test_sparse_logic_only_where_declared():
    dense = {c.name for c in area_of(load_hw(SPARTEN).dense_twin()).components}
    sparse = {c.name for c in area_of(load_hw(SPARTEN)).components}
    assert "sparse_join" in sparse and "codecs" in sparse
    assert not {"sparse_join", "sparse_skip", "zero_gating", "codecs"} & dense
    one_sided_hw = load_hw(SPARTEN, {"sparsity.skip_zero_weights": False})
    one_sided = {c.name for c in area_of(one_sided_hw).components}
    assert "sparse_skip" in one_sided and "sparse_join" not in one_sided
    queued = _mm2(SPARTEN, {"pe_array.operand_queue_depth": 8})
    assert queued["operand_queues"] > 0


def test_area_does_not_depend_on_voltage_or_clock():
    a = area_of(load_hw(EYERISS)).total_mm2
    b = area_of(load_hw(EYERISS, {"technology.voltage_v": 0.82, "technology.clock_mhz": 100})).total_mm2
    assert a == b


def test_nodes_shrink_area_monotonically():
    totals = [area_of(load_hw(EYERISS, {"technology.node_nm": n})).total_mm2
              for n in (65, 45, 28, 16, 7)]
    assert all(x > y for x, y in zip(totals, totals[1:]))


def test_scaling_factors_follow_the_tables():
    sb = technology_data()["stillmaker_baas_area_vs_45nm"]
    assert logic_area_scale(65) == pytest.approx(sb[65])
    assert logic_area_scale(7) == pytest.approx(sb[7])
    assert sb[32] < logic_area_scale(28) < sb[20] or sb[20] < logic_area_scale(28) < sb[32]
    cells = technology_data()["sram_bitcell_um2"]
    assert sram_area_scale(16) == pytest.approx(cells[16] / cells[45])


def test_node_of_design_without_node_is_its_tables():
    assert node_of(load_hw(REPO / "hw_configs" / "edge_lowpower.yaml")) == 22
    assert node_of(load_hw(TPU)) == 45
    assert node_of(load_hw(EYERISS)) == 65


def test_logic_gate_count_is_node_independent():
    g65 = area_of(load_hw(EYERISS)).logic_gates
    g28 = area_of(load_hw(EYERISS, {"technology.node_nm": 28})).logic_gates
    assert g65 == pytest.approx(g28, rel=1e-9)


def test_hw_show_prints_core_area_and_breakdown(capsys):
    assert main(["hw", "show", str(EYERISS)]) == 0
    out = capsys.readouterr().out
    assert "area at 65 nm" in out
    total = area_of(load_hw(EYERISS)).total_mm2
    assert f"{total:9.4f} mm2" in out
    for name in ("glb", "filter_spad", "mac", "noc"):
        assert any(line.strip().startswith(name) and "mm2" in line for line in out.splitlines())


def test_hw_show_json_carries_the_area(capsys):
    assert main(["hw", "show", "--json", str(EYERISS)]) == 0
    out = capsys.readouterr().out
    area = json.loads(out)["derived"]["area"]
    assert area["node_nm"] == 65
    assert area["total_mm2"] == pytest.approx(sum(c["mm2"] for c in area["components"]))


def test_simulate_totals_carry_the_area(tmp_path):
    from accelsim.sim import simulate
    from accelsim.trace.geometry import LayerGeometry
    from accelsim.trace.records import StatisticalLayer, TraceData
    from accelsim.trace.writer import write_trace
    from accelsim.trace import open_trace

    layer = StatisticalLayer("fc", LayerGeometry("linear", N=1, C=32, H=1, W=1, K=8), 8, 8, 0.5, 0.5)
    write_trace(tmp_path / "t.trace", TraceData([layer], {"model": "t"}, statistical=True, seed=0))
    hw = load_hw(SPARTEN)
    result = simulate(open_trace(tmp_path / "t.trace"), hw)
    area = area_of(hw)
    assert result.totals["area_mm2"] == pytest.approx(area.total_mm2)
    assert result.totals["area_by_component_mm2"] == pytest.approx(area.by_name())


def test_hwcomponents_backend_missing_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "hwcomponents", None)   # import fails
    with pytest.raises(AccelsimError, match=r"pip install 'accelsim\[hwcomponents\]'"):
        area_of(load_hw(EYERISS), backend="hwcomponents")
    monkeypatch.setenv(area_mod.BACKEND_ENV, "hwcomponents")
    with pytest.raises(AccelsimError, match="needs the hwcomponents package"):
        area_of(load_hw(EYERISS))
    # the built-in tables always work
    assert area_of(load_hw(EYERISS), backend="builtin").total_mm2 > 0


def test_unknown_backend_is_refused():
    with pytest.raises(AccelsimError, match="expected one of builtin, hwcomponents"):
        area_of(load_hw(EYERISS), backend="cacti")


def test_hwcomponents_backend_asks_its_models(monkeypatch):
    asked = []

    def get_area(component, attributes):
        asked.append((component, dict(attributes)))
        return 1e-12 * {"SRAM": 1000.0}.get(component, 10.0)   # m^2

    monkeypatch.setitem(sys.modules, "hwcomponents", types.SimpleNamespace(get_area=get_area))
    area = area_of(load_hw(EYERISS), backend="hwcomponents")
    kinds = {c for c, _ in asked}
    assert {"SRAM", "Register", "Multiplier", "Adder"} <= kinds
    sram = [a for c, a in asked if c == "SRAM"]
    assert {a["width"] for a in sram} == {64, 16}
    assert all(a["tech_node"] == pytest.approx(65e-9) for a in sram)
    glb = next(a for a in sram if a["width"] == 64)
    assert glb["depth"] == 110592 * 8 // 64 and glb["n_banks"] == 27
    assert area.by_name()["glb"] == pytest.approx(1000.0 * 1e-6 * area.layout_overhead)

    def broken(component, attributes):
        raise RuntimeError("no model")

    monkeypatch.setitem(sys.modules, "hwcomponents", types.SimpleNamespace(get_area=broken))
    with pytest.raises(AccelsimError, match="no .* area for"):
        area_of(load_hw(EYERISS), backend="hwcomponents")


def test_vector_unit_counts_when_described():
    assert "vector_unit" not in _mm2(TPU)
    with_vu = _mm2(TPU, {"vector_unit": {"lanes": 32}})
    double = _mm2(TPU, {"vector_unit": {"lanes": 64}})
    assert with_vu["vector_unit"] > 0
    assert double["vector_unit"] == pytest.approx(2 * with_vu["vector_unit"])
