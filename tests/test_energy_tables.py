"""Energy tables: sourced values, interpolation and the node-scaling rule."""
from __future__ import annotations

import pytest

from accelsim.hw.energy import available_tables, int_mult_pj, load_table, sram_pj_per_bit


def test_tables_present() -> None:
    assert {"horowitz_45nm", "scaled_22nm"} <= set(available_tables())


def test_horowitz_points_are_reproduced() -> None:
    t = load_table("horowitz_45nm")
    assert sram_pj_per_bit(t, 8) * 64 == pytest.approx(10.0)
    assert sram_pj_per_bit(t, 32) * 64 == pytest.approx(20.0)
    assert sram_pj_per_bit(t, 1024) * 64 == pytest.approx(100.0)
    assert int_mult_pj(t, 8, 8) == pytest.approx(0.2)


def test_sram_interpolation_is_monotonic() -> None:
    t = load_table("horowitz_45nm")
    sizes = [0.5, 2, 8, 16, 32, 100, 512, 1024, 4096]
    values = [sram_pj_per_bit(t, s) for s in sizes]
    assert values == sorted(values)
    assert sram_pj_per_bit(t, 8) < sram_pj_per_bit(t, 16) < sram_pj_per_bit(t, 32)


def test_scaled_node_follows_documented_rule() -> None:
    base, scaled = load_table("horowitz_45nm"), load_table("scaled_22nm")
    factor = (22 / 45) * (0.8 / 0.9) ** 2
    assert scaled["int_mult_pj"][8] == pytest.approx(base["int_mult_pj"][8] * factor, rel=1e-3)
    assert scaled["sram_read_64b_pj"][32] == pytest.approx(base["sram_read_64b_pj"][32] * factor, rel=1e-3)
    assert scaled["dram_pj_per_bit"] == base["dram_pj_per_bit"]
    assert scaled["pe_leakage_uw"] < base["pe_leakage_uw"]
