"""Network (NoC) traffic by one rule for every design (fidelity issue: operands read straight
from a shared level were charged only when a design had no per-PE storage at all, and partial
sums leaving the PEs never). Targets are hand counts of a one-PE layer."""
from __future__ import annotations

import pytest

from accelsim.sim.engine import simulate_layer
from sim_helpers import make_hw, random_layer

GLB = {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 65536,
       "word_bits": 64, "read_words_per_cycle": 8}
W_SPAD = {"name": "wspad", "instances": "per_pe", "keeps": ["weights"], "size_bytes": 2,
          "word_bits": 16}


def _hw(hierarchy):
    return make_hw(pe_array={"rows": 1, "cols": 1, "dataflow": "output_stationary"},
                   memory_hierarchy=hierarchy)


def _layer():
    # C=2, K=3, 4x4 input, 3x3 filter, no padding: 2x2 outputs
    return random_layer("l", density_a=1.0, density_w=1.0, C=2, H=4, W=4, K=3, R=3, S=3,
                        output_density=1.0)


MACS = 3 * 2 * 2 * 2 * 9
OUTPUTS = 3 * 2 * 2


def test_no_per_pe_storage_every_operand_and_psum_crosses_the_network():
    hw = _hw([GLB])
    row = simulate_layer(_layer(), hw)
    wb, ib = hw.precision.weight_bits, hw.precision.activation_bits
    ob = hw.precision.accumulator_bits
    # each MAC gets its weight and input from the buffer, and reads (all but the first update of
    # each output) and writes its partial sum there
    assert row["noc_bit_hops"] == pytest.approx(MACS * (wb + ib) + (2 * MACS - OUTPUTS) * ob)


def test_a_weight_spad_changes_only_the_weight_deliveries():
    bare, spad = _hw([GLB]), _hw([GLB, W_SPAD])
    row_bare, row_spad = simulate_layer(_layer(), bare), simulate_layer(_layer(), spad)
    wb = bare.precision.weight_bits
    fills = row_spad["level_wspad_write_bits"]      # weights delivered into the PE's spad
    assert 0 < fills < MACS * wb
    assert row_bare["noc_bit_hops"] - row_spad["noc_bit_hops"] == pytest.approx(MACS * wb - fills)
