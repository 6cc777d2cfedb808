"""Sparseloop's per-level vocabulary, first part (fidelity issue item 4): gating on a chosen
operand (``sparsity.gate_on``: Eyeriss gates on zero inputs only) and gate/skip actions on a
level's MAC-driven accesses conditioned on named operands, with their own gated energy.

The oracle enumerates every MAC slot of the layer (every loop index, padding included) and
decides from the masks alone which slots are issued and which have non-zero operands."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from accelsim.errors import ConfigError
from accelsim.map.nest import LoopNest
from accelsim.map.sparse import MODE_ACT, MODE_BOTH, MODE_DENSE, MODE_WEIGHT
from accelsim.sim.conditions import live_slots
from accelsim.sim.engine import simulate_layer
from sim_helpers import make_hw, random_layer


def _slots(layer):
    """Every MAC slot as (input non-zero, weight non-zero, is padding)."""
    g = layer.geometry
    act = np.asarray(layer.act_mask(), dtype=bool)
    w = np.asarray(layer.weight_mask(), dtype=bool)
    cg, kg = g.c_per_group, g.k_per_group
    for n, grp, k, c, p, q, r, s in itertools.product(range(act.shape[0]), range(g.groups),
                                                      range(kg), range(cg), range(g.P), range(g.Q),
                                                      range(g.R), range(g.S)):
        h = p * g.stride_h + r * g.dil_h - g.pad_h
        x = q * g.stride_w + s * g.dil_w - g.pad_w
        pad = not (0 <= h < g.H and 0 <= x < g.W)
        a = False if pad else bool(act[n, grp * cg + c, h, x])
        yield a, bool(w[grp * kg + k, c, r, s]), pad


def _brute(layer, mode, pad_issued):
    issued = {"": 0, "inputs": 0, "weights": 0, "both": 0}
    for a, w, pad in _slots(layer):
        present = a or (pad and pad_issued)
        go = {MODE_DENSE: True, MODE_ACT: present, MODE_WEIGHT: w, MODE_BOTH: present and w}[mode]
        if go:
            issued[""] += 1
            issued["inputs"] += a
            issued["weights"] += w
            issued["both"] += a and w
    return issued


CASES = [dict(C=3, H=5, W=5, K=2, R=3, S=3, pad_h=1, pad_w=1),
         dict(C=4, H=7, W=6, K=4, R=3, S=2, stride_h=2, pad_h=1, pad_w=0, groups=2),
         dict(C=2, H=6, W=6, K=3, R=2, S=2, dil_h=2, dil_w=2, pad_h=2, pad_w=1),
         dict(C=1, H=4, W=4, K=1, R=1, S=1)]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("mode", [MODE_DENSE, MODE_ACT, MODE_WEIGHT, MODE_BOTH])
@pytest.mark.parametrize("pad_issued", [False, True])
@pytest.mark.parametrize("density", [0.0, 0.4, 1.0])
def test_live_slots_match_every_slot_enumerated(case, mode, pad_issued, density):
    layer = random_layer("l", density_a=density, density_w=max(density, 0.3), seed=case,
                         N=2, **CASES[case])
    want = _brute(layer, mode, pad_issued)
    nest = LoopNest.of_geometry(layer.geometry, batch=2)
    g = layer.geometry
    got = live_slots(nest, layer.act_mask(), layer.weight_mask(), (g.pad_h, g.pad_w), mode,
                     pad_issued, float(want[""]))
    assert (got.issued, got.inputs, got.weights, got.both) == (
        want[""], want["inputs"], want["weights"], want["both"])
    assert got.live(["inputs", "weights"]) == want["both"]
    assert got.live([]) == want[""]


# ---- in the loop-nest model ---------------------------------------------------------------

def _hw(gate_on=("inputs", "weights"), actions=None, gated_read_pj=None):
    wspad = {"name": "wspad", "instances": "per_pe", "keeps": ["weights"], "size_bytes": 64,
             "word_bits": 8}
    if actions is not None:
        wspad["actions"] = actions
    if gated_read_pj is not None:
        wspad["gated_read_pj"] = gated_read_pj
    return make_hw(pe_array={"rows": 1, "cols": 1, "dataflow": "output_stationary"},
                   sparsity={"gate_zero_operands": True, "gate_on": list(gate_on)},
                   memory_hierarchy=[
                       {"name": "glb", "keeps": ["weights", "inputs", "outputs"],
                        "size_bytes": 65536, "word_bits": 8},
                       wspad])


LAYER = dict(C=4, H=6, W=6, K=3, R=3, S=3, pad_h=1, pad_w=1)


def _layer():
    return random_layer("l", density_a=0.5, density_w=0.4, seed=3, **LAYER)


def test_gating_on_inputs_only_gates_exactly_the_zero_input_slots():
    layer = _layer()
    slots = list(_slots(layer))
    both = simulate_layer(layer, _hw(("inputs", "weights")))
    inputs = simulate_layer(layer, _hw(("inputs",)))
    assert both["macs_gated"] == sum(1 for a, w, _ in slots if not (a and w))
    assert inputs["macs_gated"] == sum(1 for a, w, _ in slots if not a)
    assert inputs["macs_gated"] < both["macs_gated"]
    # fewer slots gated: more MAC energy, same cycles (gating keeps the slot)
    assert inputs["energy_mac_pj"] > both["energy_mac_pj"]
    assert inputs["cycles"] == both["cycles"]


def test_weight_read_action_gate_vs_skip():
    layer = _layer()
    slots = list(_slots(layer))
    zero_input = sum(1 for a, _, _ in slots if not a)
    bits = 8
    gate = simulate_layer(layer, _hw(actions=[{"kind": "gate", "target": "weights",
                                                "condition_on": ["inputs"]}], gated_read_pj=0.0))
    skip = simulate_layer(layer, _hw(actions=[{"kind": "skip", "target": "weights",
                                                "condition_on": ["inputs"]}]))
    full = simulate_layer(layer, _hw(actions=[{"kind": "gate", "target": "weights",
                                                "condition_on": ["weights"]}], gated_read_pj=0.0))
    # a gated access at 0 pJ costs what a skipped one does; the reads that happen differ by the
    # slots each condition removes (zero inputs vs zero weights)
    assert gate["energy_spad_pj"] == pytest.approx(skip["energy_spad_pj"], rel=1e-12)
    zero_weight = sum(1 for _, w, _ in slots if not w)
    per_read = (full["energy_spad_pj"] - gate["energy_spad_pj"]) / (zero_input - zero_weight)
    assert per_read > 0
    assert gate["spad_bits"] == pytest.approx(full["spad_bits"] - (zero_input - zero_weight) * bits)


def test_a_gated_access_is_charged_its_own_energy():
    layer = _layer()
    cheap = simulate_layer(layer, _hw(gated_read_pj=0.0))
    dear = simulate_layer(layer, _hw(gated_read_pj=1.0))
    gated_reads = sum(1 for a, w, _ in _slots(layer) if not (a and w))
    assert dear["energy_spad_pj"] - cheap["energy_spad_pj"] == pytest.approx(gated_reads * 1.0)


@pytest.mark.parametrize("change, field, words", [
    ({"target": "inputs"}, "actions[0].target", "does not keep inputs"),
    ({"condition_on": []}, "actions[0].condition_on", "at least one operand"),
    ({"kind": "squash"}, "actions[0].kind", "'gate', 'skip'"),
])
def test_bad_actions_are_one_line_errors(change, field, words):
    action = {"kind": "gate", "target": "weights", "condition_on": ["inputs"], **change}
    with pytest.raises(ConfigError) as err:
        _hw(actions=[action])
    assert field in str(err.value) and words in str(err.value)


def test_an_action_on_outputs_at_an_outer_level_is_refused():
    # outer-level actions on weights and inputs are modelled (tests/test_outer_actions.py)
    with pytest.raises(ConfigError, match="innermost level keeping them .'pspad'."):
        make_hw(pe_array={"rows": 1, "cols": 1, "dataflow": "output_stationary"},
                memory_hierarchy=[
                    {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 65536,
                     "actions": [{"kind": "skip", "target": "outputs", "condition_on": ["inputs"]}]},
                    {"name": "pspad", "instances": "per_pe", "keeps": ["outputs"], "size_bytes": 64}])


def test_a_flat_design_gating_on_one_operand_gates_those_slots():
    # a flat file loads ported onto the loop nest's systolic mode, which honours gate_on: the
    # gated slots of a dense array are those with a zero input (padding included), counted
    # here by direct convolution loops
    import naive
    from accelsim.sim.engine import simulate_layer
    from sim_helpers import random_layer

    hw = make_hw(sparsity={"gate_zero_operands": True, "gate_on": ["inputs"]})
    assert hw.memory_hierarchy is not None and tuple(hw.sparsity.gate_on) == ("inputs",)
    layer = random_layer(C=3, H=6, W=5, K=4, R=3, S=3, stride_h=1, stride_w=1, pad_h=1,
                         pad_w=1, density_a=0.4, density_w=0.6, seed=3)
    geo = layer.geometry
    row = simulate_layer(layer, hw, samples=1)
    act = np.asarray(layer.act_mask(1), dtype=bool)[0]
    nonzero_input = naive.effectual_pairs(act, np.ones(geo.weight_shape, bool), geo)
    assert row["macs_issued"] == geo.macs_per_sample
    assert row["macs_gated"] == geo.macs_per_sample - nonzero_input
