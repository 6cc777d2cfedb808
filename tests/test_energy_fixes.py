"""Energy fixes found by measurement (issue 12, item 7), checked against hand arithmetic.

Per-access energies are computed here from the packaged table ``horowitz_45nm`` (0.9 V), not
taken from :func:`accelsim.hw.energy_model`:

- 16-bit MAC = 16x16 multiply + 32-bit add = 0.2 * 256/64 + 0.1 = 0.9 pJ;
- scratchpad: ``rf_access_over_mac16`` (1.0) * 0.9 / 16 = 0.05625 pJ per bit;
- NoC: ``noc_hop_over_mac16`` (2.0) * 0.9 / 16 = 0.1125 pJ per bit-hop;
- a gated access costs ``gated_fraction`` = 0.05 of a full one.
"""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.hw.energy import energy_model
from accelsim.sim.engine import simulate_layer
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.layer import LayerTrace
from tests.sim_helpers import make_hw

SPAD_PJ_PER_BIT = 1.0 * (0.2 * 256 / 64 + 0.1) / 16   # 0.05625
NOC_PJ_PER_BIT_HOP = 2.0 * (0.2 * 256 / 64 + 0.1) / 16  # 0.1125
GATED = 0.05


def _one_pe_ws(a_bits=8, w_bits=8, acc_bits=8, **sparsity):
    return make_hw(precision={"activation_bits": a_bits, "weight_bits": w_bits,
                              "accumulator_bits": acc_bits},
                   pe_array={"rows": 1, "cols": 1, "dataflow": "weight_stationary"},
                   scratchpad={"input_bytes": 4, "weight_bytes": 4, "psum_bytes": 8},
                   sparsity=sparsity)


def _one_mac_layer(act: bool, weight: bool, weight_bits: int = 8) -> LayerTrace:
    geo = LayerGeometry(kind="linear", N=1, C=1, H=1, W=1, K=1)
    return LayerTrace.from_masks("one_mac", geo, np.array([[[[weight]]]]),
                                 np.array([[[[act]]]]), weight_bits=weight_bits)


# --- fix 1 (on the one model's systolic mode): gating and the array's chain -----------------
#
# A flat design loads as the loop-nest model's systolic mode (accelsim.hw.port): a
# weight-stationary PE keeps only its weight register; the activation and the partial sum pass
# to the next PE on every issued slot through a pipeline register (written and read, full:
# the chain moves them whether or not the MAC fires, docs/simulator.md section 0); gating
# (gate_zero_operands) gates the follower's read at its innermost level (the weight register)
# and the MAC; the weight register is filled once per weight loaded.

def test_gated_zero_activation_gates_only_the_weight_read():
    """1 MAC on a 1x1 weight-stationary array, 8-bit operands, 8-bit accumulator, gating on;
    the activation is zero, the weight non-zero. Scratchpad bits: activation through the
    pipeline register 8 + 8 and partial sum 8 + 8 (full), weight register filled 8 (full),
    its read for the slot 8 gated: (40 + 8 x 0.05) x 0.05625 = 2.2725 pJ."""
    row = simulate_layer(_one_mac_layer(act=False, weight=True),
                         _one_pe_ws(gate_zero_operands=True))
    assert row["macs_issued"] == 1 and row["macs_gated"] == 1
    assert row["energy_spad_pj"] == pytest.approx((40 + 8 * GATED) * SPAD_PJ_PER_BIT)
    assert row["energy_spad_pj"] == pytest.approx(2.2725)


def test_gated_zero_weight_keeps_the_chain_moving():
    """Same PE, activation non-zero and weight zero (a = 8, w = 4, acc = 24 to tell terms
    apart): activation 8 + 8 and partial sum 24 + 24 through the pipeline registers (full),
    weight register filled 4 (full), its read 4 gated: (68 + 4 x 0.05) x 0.05625 = 3.83625 pJ."""
    row = simulate_layer(_one_mac_layer(act=True, weight=False, weight_bits=4),
                         _one_pe_ws(w_bits=4, acc_bits=24, gate_zero_operands=True))
    assert row["macs_gated"] == 1
    assert row["energy_spad_pj"] == pytest.approx((68 + 4 * GATED) * SPAD_PJ_PER_BIT)


def test_activation_skipping_skips_the_chain_of_a_zero_activation():
    """Activation skipping + gating, a = 8, w = 4, acc = 24, activation zero: no slot is issued,
    so nothing passes through the pipeline registers; only the weight register's fill (4 b)
    is paid: 4 x 0.05625 = 0.225 pJ, and no MAC is gated."""
    row = simulate_layer(_one_mac_layer(act=False, weight=True, weight_bits=4),
                         _one_pe_ws(w_bits=4, acc_bits=24, gate_zero_operands=True,
                                    skip_zero_activations=True))
    assert row["macs_issued"] == 0 and row["macs_gated"] == 0
    assert row["energy_spad_pj"] == pytest.approx(4 * SPAD_PJ_PER_BIT)


# --- fix 2: overrides scale with voltage -----------------------------------------------------

def test_energy_overrides_scale_with_voltage_like_table_values():
    """``mac_pj: 0.25`` is given at the table's nominal 0.9 V; at 1.8 V dynamic energy is
    (1.8 / 0.9)^2 = 4x: 1.00 pJ, gated MAC 0.05 x 1.00 = 0.05 pJ, clock per PE-cycle
    ``pe_clock_over_mac`` 0.1 x 1.00 = 0.10 pJ. Leakage per cycle scales with V/V_nominal (2x);
    DRAM energy per bit is not voltage-scaled (as the table's)."""
    overrides = {"mac_pj": 0.25, "glb_pj_per_bit": 0.5, "pe_leakage_pj_per_cycle": 0.01,
                 "dram_pj_per_bit": 10.0}
    e = energy_model(make_hw(technology={"clock_mhz": 500, "voltage_v": 1.8,
                                         "energy_overrides": overrides}))
    assert e.mac_pj == pytest.approx(1.00)
    assert e.gated_mac_pj == pytest.approx(0.05)
    assert e.pe_clock_pj_per_cycle == pytest.approx(0.10)
    assert e.glb_pj_per_bit == pytest.approx(2.0)
    assert e.pe_leakage_pj_per_cycle == pytest.approx(0.02)
    assert e.dram_pj_per_bit == pytest.approx(10.0)
    nominal = energy_model(make_hw(technology={"clock_mhz": 500, "voltage_v": 0.9,
                                               "energy_overrides": overrides}))
    assert nominal.mac_pj == 0.25 and nominal.pe_clock_pj_per_cycle == pytest.approx(0.025)


def test_voltage_scaled_override_reaches_layer_energy():
    """One MAC, no gating: energy_mac_pj is the override at 1.8 V, 4 x 0.25 = 1.00 pJ."""
    hw = make_hw(technology={"clock_mhz": 500, "voltage_v": 1.8,
                             "energy_overrides": {"mac_pj": 0.25}},
                 pe_array={"rows": 1, "cols": 1, "dataflow": "weight_stationary"})
    row = simulate_layer(_one_mac_layer(act=True, weight=True), hw)
    assert row["energy_mac_pj"] == pytest.approx(1.00)


# --- fix 3: NoC and partial-sum hops only for MAC slots that happen ---------------------------

@pytest.mark.parametrize("fidelity", ["fast", "cycle"])
def test_noc_moves_nothing_for_skipped_slots(fidelity):
    """1x1 conv, C = 2 (Kred 2), K = 1, 1x2 pixels (M 2) on a 2x1 weight-stationary array,
    activation skipping, dense 8-bit storage, 24-bit partial sums. Activations (pixel, c):
    (0, 0) non-zero, the other three zero; both weights non-zero. One slot is issued.

    NoC bit-hops on the systolic chain: the issued slot passes its activation (8 b) and its
    partial sum (24 b) one hop; the three skipped slots move nothing; both stationary weights
    are loaded and travel (rows + 1) / 2 = 1.5 hops: 2 x 8 x 1.5 = 24. Total 32 + 24 = 56
    bit-hops = 56 x 0.1125 = 6.3 pJ (the dense array would pass 4 x 32 = 128 + 24)."""
    geo = LayerGeometry(kind="conv2d", N=1, C=2, H=1, W=2, K=1)
    act = np.zeros(geo.act_shape, dtype=bool)
    act[0, 0, 0, 0] = True
    layer = LayerTrace.from_masks("l", geo, np.ones(geo.weight_shape, dtype=bool), act)
    hw = make_hw(pe_array={"rows": 2, "cols": 1, "dataflow": "weight_stationary"},
                 sparsity={"skip_zero_activations": True})
    row = simulate_layer(layer, hw, fidelity=fidelity)
    assert row["macs_issued"] == 1
    assert row["noc_bit_hops"] == pytest.approx(56)
    assert row["energy_noc_pj"] == pytest.approx(56 * NOC_PJ_PER_BIT_HOP)
