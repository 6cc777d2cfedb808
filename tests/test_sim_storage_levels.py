"""A tensor may be stored in one format on chip and another in DRAM (Eyeriss' off-chip RLE)."""
from __future__ import annotations

import pytest

from accelsim.sim import simulate
from sim_helpers import make_hw, random_layer

RLE = {"format": "run_length", "run_bits": 5}


def _layers():
    return [random_layer("c", C=6, H=9, W=9, K=8, R=3, S=3, pad_h=1, pad_w=1, N=2, seed=3,
                         density_a=0.3, density_w=0.6)]


def _run(storage):
    hw = make_hw(storage=storage, dram={"ideal": False, "bandwidth_gb_per_s": 2.0},
                 sparsity={"gate_zero_operands": True})
    return simulate(_layers(), hw).layers.iloc[0]


def test_dram_format_sets_dram_traffic_and_onchip_format_sets_buffer_traffic() -> None:
    dense = _run({})
    rle_both = _run({"activations": RLE, "outputs": RLE})
    rle_dram = _run({"activations": {"format": "dense", "dram": RLE},
                     "outputs": {"format": "dense", "dram": RLE}})
    # DRAM side: as if run-length everywhere
    assert rle_dram["dram_bytes"] == pytest.approx(rle_both["dram_bytes"])
    assert rle_dram["dram_bytes"] < dense["dram_bytes"]
    # on-chip side: buffer-port traffic, footprint and compute as if dense everywhere
    assert rle_dram["level_global_buffer_read_bits"] == pytest.approx(
        dense["level_global_buffer_read_bits"])
    assert rle_dram["onchip_peak_bytes"] == pytest.approx(dense["onchip_peak_bytes"])
    assert rle_dram["compute_cycles"] == dense["compute_cycles"]
    # the buffer is filled with dense data, so its energy sits between the two
    assert rle_dram["energy_dram_pj"] == pytest.approx(rle_both["energy_dram_pj"])
    assert rle_dram["energy_glb_pj"] >= rle_both["energy_glb_pj"]


def test_default_dram_format_is_the_onchip_one() -> None:
    explicit = _run({"activations": {"format": "bitmap", "dram": {"format": "bitmap"}}})
    implicit = _run({"activations": {"format": "bitmap"}})
    assert explicit.equals(implicit)
