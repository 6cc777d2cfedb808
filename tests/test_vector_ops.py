"""Vector-unit costs of the ops between layers, against hand counts on a small graph."""
from __future__ import annotations

import math

import numpy as np
import pytest

from accelsim.errors import ConfigError
from accelsim.hw.energy import energy_model, int_add_pj, load_table
from accelsim.hw.load import load_hw_dict
from accelsim.sim.vector_ops import vector_op_costs
from accelsim.trace.graph import GraphOp, GraphTensor, OpGraph

RNG = np.random.default_rng(3)


def _graph():
    """input -> conv -> bn -> relu_ -> maxpool(2x2) -> view -> add(view, pool) -> cat."""
    T = GraphTensor
    tensors = [T(0, (1, 4, 4), 16, True, "input"), T(1, (2, 4, 4), 32, True, "layer", 0),
               T(2, (2, 4, 4), 32, True, "op", 1), T(3, (2, 4, 4), 32, True, "op", 2, inplace_of=2),
               T(4, (2, 2, 2), 8, True, "op", 3), T(5, (8,), 8, True, "op", 4, alias_of=4),
               T(6, (8,), 8, True, "op", 5), T(7, (16,), 16, True, "op", 6)]
    O = GraphOp
    ops = [O(0, "layer", "conv", "conv", [0], [1], layer=0),
           O(1, "norm", "batch_norm", "bn", [1], [2], params=8),
           O(2, "activation", "relu", "relu", [2], [3], inplace=True),
           O(3, "pool", "max_pool2d", "pool", [3], [4], attrs={"kernel": 4}),
           O(4, "reshape", "view", "", [4], [5], attrs={"alias": True}),
           O(5, "add", "add", "", [5, 4], [6]),
           O(6, "concat", "cat", "", [6, 5], [7])]
    masks = {}
    for t in tensors:
        if t.alias_of is None:
            masks[t.id] = RNG.random((2, t.elements)) < 0.5
            t.has_mask = True
    return OpGraph(tensors, ops, [7], lambda tid, n: masks[tid][:n], 2), masks


def _hw(minimal_hw, vector_unit=None, words_per_cycle=1):
    data = dict(minimal_hw)
    data["global_buffer"] = {"size_kib": 64, "words_per_cycle": words_per_cycle, "word_bits": 16}
    data["storage"] = {"activations": {"format": "dense"}, "outputs": {"format": "bitmap"}}
    if vector_unit is not None:
        data["vector_unit"] = vector_unit
    return load_hw_dict(data)


def _reference(graph, masks, hw, lanes, e_op, overhead, port_bits, per_element):
    """Plain per-op, per-sample loop from the definitions (dense acts, bitmap layer outputs)."""
    glb = energy_model(hw).glb_pj_per_bit
    storage = {5: 4}

    def bits(tid, s):
        tid = storage.get(tid, tid)
        m = masks[tid][s]
        if graph.tensors[tid].source == "layer":
            return m.size + 8 * int(m.sum())
        return 8 * m.size

    rows = []
    for op in graph.ops[1:]:
        for s in range(2):
            if op.kind == "reshape":
                ops, read, write = 0, 0, 0
            else:
                out = sum(graph.tensors[t].elements for t in op.outputs)
                if op.kind == "norm":
                    ops = 2 * out
                elif op.kind == "pool":
                    ops = out * op.attrs["kernel"]
                elif op.kind == "add":
                    ops = out * (len(op.inputs) - 1)
                elif op.kind == "concat":
                    ops = 0
                else:
                    ops = out
                ops *= per_element.get(op.kind, 1)
                read = sum(bits(t, s) for t in {storage.get(t, t) for t in op.inputs})
                write = sum(bits(t, s) for t in op.outputs)
            compute = math.ceil(ops / lanes) + overhead if ops else 0
            port = math.ceil((read + write) / port_bits) if port_bits else 0
            rows.append((op.index, s, ops, max(compute, port), read, write,
                         ops * e_op + (read + write) * glb))
    return rows


@pytest.mark.parametrize("words", [1, None])
def test_costs_equal_a_hand_count(minimal_hw, words):
    graph, masks = _graph()
    hw = _hw(minimal_hw, {"lanes": 4, "energy_pj_per_op": 0.5, "op_overhead_cycles": 2}, words)
    costs = vector_op_costs(graph, hw)
    assert costs.unit_given and [op.index for op in costs.ops] == [1, 2, 3, 4, 5, 6]
    ref = _reference(graph, masks, hw, 4, 0.5, 2, 16 if words else None, {})
    got = costs.per_sample
    for op_index, s, ops, cycles, read, write, energy in ref:
        row = op_index - 1
        assert got["ops"][row, s] == ops
        assert got["cycles"][row, s] == cycles
        assert (got["read_bits"][row, s], got["write_bits"][row, s]) == (read, write)
        assert got["energy_pj"][row, s] == pytest.approx(energy)
    table = costs.table()
    assert list(table["ops"]) == [64, 32, 32, 0, 8, 0]
    totals = costs.totals()
    assert totals["energy_pj"] == pytest.approx(sum(r[-1] for r in ref) / 2)


def test_overrides_and_defaults(minimal_hw):
    graph, masks = _graph()
    hw = _hw(minimal_hw, {"lanes": 8, "ops_per_element": {"norm": 3, "activation": 0}})
    costs = vector_op_costs(graph, hw)
    assert list(costs.per_sample["ops"][:2, 0]) == [96, 0]
    table = load_table(hw.technology.energy_table)
    assert costs.energy_pj_per_op == pytest.approx(int_add_pj(table, 8))   # the default
    plain = vector_op_costs(graph, _hw(minimal_hw))
    assert not plain.unit_given and plain.unit.lanes == 16
    volts = dict(minimal_hw, technology={"clock_mhz": 500, "voltage_v": 0.5})
    low = vector_op_costs(graph, _hw(volts, {"energy_pj_per_op": 1.0}))
    nominal = float(table["nominal_voltage_v"])
    assert low.energy_pj_per_op == pytest.approx((0.5 / nominal) ** 2)


@pytest.mark.parametrize("section,field", [
    ({"lanes": 0}, "vector_unit.lanes"),
    ({"ops_per_element": {"warp": 1}}, "vector_unit.ops_per_element.warp"),
    ({"energy_pj_per_op": -1}, "vector_unit.energy_pj_per_op"),
    ({"lane": 4}, "vector_unit.lane"),
])
def test_bad_vector_unit_is_one_line(minimal_hw, section, field):
    with pytest.raises(ConfigError) as info:
        _hw(minimal_hw, section)
    assert field in str(info.value) and "\n" not in str(info.value)
