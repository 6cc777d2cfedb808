"""Technology nodes: node tables from Stillmaker-Baas, node_nm selection, defaults unchanged."""
from __future__ import annotations

from pathlib import Path

import pytest

from accelsim.errors import ConfigError
from accelsim.hw.energy import (available_tables, energy_model, int_add_pj, int_mult_pj, load_table,
                                sb17_energy_scale, technology_data, technology_nodes)
from accelsim.hw.load import load_hw, load_hw_dict, resolve_extends, apply_overrides

REPO = Path(__file__).resolve().parents[1]
TPU = REPO / "hw_configs" / "dense_ws_tpu_like.yaml"
EYERISS = REPO / "hw_configs" / "eyeriss_v1.yaml"


def _poly(node: int, volts: float) -> float:
    a, b, c = technology_data()["stillmaker_baas_energy"][node]
    return a * volts ** 2 + b * volts + c


def test_the_five_nodes_have_tables():
    assert technology_nodes() == (65, 45, 28, 16, 7)
    for node in technology_nodes():
        name = technology_data()["nodes"][node]["energy_table"]
        assert name in available_tables()
        assert load_table(name)["node_nm"] == node
    assert "technology_nodes" not in available_tables()


def test_45nm_stays_the_default_and_is_unchanged():
    hw = load_hw(TPU)
    assert hw.technology.node_nm is None and hw.technology.energy_table == "horowitz_45nm"
    table = load_table("horowitz_45nm")
    assert energy_model(hw).mac_pj == pytest.approx(
        (int_mult_pj(table, 8, 8) + int_add_pj(table, 32)) * (0.9 / 0.9) ** 2)
    assert table["int_mult_pj"][8] == 0.2 and table["sram_read_64b_pj"][32] == 20.0
    assert load_hw(TPU, {"technology.node_nm": 45}).technology.energy_table == "horowitz_45nm"


@pytest.mark.parametrize("node", [65, 28, 16, 7])
def test_node_tables_scale_horowitz_by_stillmaker_baas(node):
    t = load_table(technology_data()["nodes"][node]["energy_table"])
    base = load_table("horowitz_45nm")
    volts = float(t["nominal_voltage_v"])
    if node in technology_data()["stillmaker_baas_energy"]:
        expected = _poly(node, volts) / _poly(45, 0.9)
        assert sb17_energy_scale(node, volts, 45, 0.9) == pytest.approx(expected)
    else:
        expected = sb17_energy_scale(node, volts, 45, 0.9)
    for key in ("int_mult_pj", "int_add_pj"):
        for width, value in base[key].items():
            assert t[key][width] == pytest.approx(value * expected), (key, width)
    assert t["pe_leakage_uw"] == pytest.approx(base["pe_leakage_uw"] * expected)
    assert t["dram_pj_per_bit"] == base["dram_pj_per_bit"]          # interface: unscaled
    assert t["rf_access_over_mac16"] == base["rf_access_over_mac16"]


def test_28nm_interpolates_between_32_and_20nm():
    lo, hi = _poly(32, 0.9), _poly(20, 0.9)
    value = sb17_energy_scale(28, 0.9, 45, 0.9) * _poly(45, 0.9)
    assert min(lo, hi) < value < max(lo, hi)
    # 28 nm is nearer 32 nm than 20 nm in log(node)
    assert abs(value - lo) < abs(value - hi)


def test_energy_falls_with_the_node():
    macs = [energy_model(load_hw(TPU, {"technology.node_nm": n,
                                       "technology.voltage_v": None})).mac_pj
            for n in technology_nodes()]
    assert all(a > b for a, b in zip(macs, macs[1:]))


def test_eyeriss_65nm_carries_eyeriss_buffer_ratio():
    t = load_table("eyeriss_65nm")
    mac16 = int_mult_pj(t, 16, 16) + int_add_pj(t, 32)
    assert t["sram_read_64b_pj"][100] == pytest.approx(6 * mac16 * 4, rel=1e-3)   # [E16]: 6x per 16 b
    assert t["rf_access_over_mac16"] == 1.0 and t["noc_hop_over_mac16"] == 2.0
    assert list(t["sram_read_64b_pj"]) == sorted(t["sram_read_64b_pj"])


def test_eyeriss_v1_ships_at_its_operating_point():
    hw = load_hw(EYERISS)
    assert hw.technology.node_nm == 65 and hw.technology.energy_table == "eyeriss_65nm"
    assert hw.technology.voltage_v == 1.0 and hw.precision.accumulator_bits == 16
    t = load_table("eyeriss_65nm")
    assert energy_model(hw).mac_pj == pytest.approx(int_mult_pj(t, 16, 16) + int_add_pj(t, 16))


def test_node_and_conflicting_table_is_one_clear_error():
    raw = apply_overrides(resolve_extends(TPU), {"technology.node_nm": 65,
                                                 "technology.energy_table": "scaled_22nm"})
    with pytest.raises(ConfigError, match=r"technology\.node_nm: 65 nm, but energy_table 'scaled_22nm'"):
        load_hw_dict(raw, "x.yaml")


@pytest.mark.parametrize("bad", [22, 45.0, True, "65"])
def test_unknown_node_is_refused(bad):
    raw = apply_overrides(resolve_extends(TPU), {"technology.node_nm": bad})
    with pytest.raises(ConfigError, match=r"technology\.node_nm: expected one of 65, 45, 28, 16, 7"):
        load_hw_dict(raw, "x.yaml")


def test_resolved_config_round_trips():
    hw = load_hw(EYERISS)
    again = load_hw_dict(hw.to_dict(), "again")
    assert again == hw and again.hash == hw.hash
    twin = hw.dense_twin()
    assert twin.technology == hw.technology
