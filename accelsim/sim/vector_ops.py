"""Time and energy of the ops between traced layers on the design's vector unit.

:func:`vector_op_costs` is a pure function of a captured graph
(:class:`~accelsim.trace.graph.OpGraph`) and a hardware description. Per between-layer
op and per sample:

- **element operations** ``ops``: output elements (``out``) or input elements (``in``)
  times a per-kind cost (:data:`DEFAULT_OPS_PER_ELEMENT`, overridable per kind by
  ``vector_unit.ops_per_element``): ``add``/``mul`` ``out x (activation inputs - 1)``
  (at least ``out``); ``pool`` with a window ``out x kernel``, adaptive pooling and
  ``reduce`` ``in``; ``norm`` ``out x 2`` for batch norm (inference scale and shift),
  ``out x 5`` for layer/group/instance norm (mean, variance, normalise, scale, shift);
  ``softmax`` ``out x 4`` (max, exp, sum, divide); ``activation``, ``elementwise``,
  ``resize``, ``other`` ``out x 1``; data movement (``concat``, ``slice``, ``pad``,
  ``embedding``) 0; aliases (views) and the opaque ``attention`` op (its products are
  traced layers) 0; ``untraced_compute`` 0 (listed as untraced work instead);
- **buffer traffic**: the stored bits of the op's distinct input tensors read and its
  outputs written, in the design's formats (:mod:`accelsim.sim.graph_sizes`); an alias
  moves nothing;
- **cycles**: ``ceil(ops / lanes) + op_overhead_cycles`` against the buffer port time
  ``ceil(traffic / (global_buffer.words_per_cycle x word_bits))`` (unbounded port: 0);
  the op takes the larger (reads, compute and writes overlap);
- **energy**: ``ops x energy_pj_per_op`` (given at the table's nominal voltage and
  scaled by ``(V / V_nominal)^2``; default the table's integer add at the activation
  precision) plus ``traffic x glb_pj_per_bit``.

A design without a ``vector_unit`` section is costed with the section's defaults
(:attr:`VectorCosts.unit_given` is then False).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accelsim.hw.energy import int_add_pj, load_table
from accelsim.hw.hierarchy import shared_port
from accelsim.hw.schema import VectorUnit
from accelsim.sim.graph_sizes import tensor_bits

#: Element operations per element, by op kind (``None``: the rule in the module docstring).
DEFAULT_OPS_PER_ELEMENT = {
    "add": 1.0, "mul": 1.0, "activation": 1.0, "norm": 2.0, "pool": 1.0, "softmax": 4.0,
    "concat": 0.0, "slice": 0.0, "reduce": 1.0, "pad": 0.0, "resize": 1.0, "elementwise": 1.0,
    "embedding": 0.0, "attention": 0.0, "other": 1.0, "reshape": 0.0, "untraced_compute": 0.0,
}
#: Norms that compute their statistics at run time (not folded into a scale and shift).
_STATISTIC_NORMS = {"layer_norm": 5.0, "group_norm": 5.0, "instance_norm": 5.0,
                    "rms_norm": 4.0, "local_response_norm": 5.0, "normalize": 4.0}

COLUMNS = ("op_index", "name", "kind", "op", "elements_in", "elements_out", "ops",
           "compute_cycles", "buffer_cycles", "cycles", "read_bits", "write_bits",
           "energy_ops_pj", "energy_glb_pj", "energy_pj")


@dataclass
class VectorCosts:
    """Costs of every between-layer op; arrays are (ops, samples), rows in ``ops`` order."""

    ops: list               # the GraphOp of each row
    per_sample: dict        # column -> float64 (len(ops), n)
    unit: VectorUnit
    unit_given: bool
    energy_pj_per_op: float  # at the design's voltage

    def table(self):
        """One row per op, means over the samples (pandas DataFrame)."""
        import pandas as pd

        rows = []
        for i, op in enumerate(self.ops):
            row = {"op_index": op.index, "name": op.name, "kind": op.kind, "op": op.op}
            row.update({k: float(v[i].mean()) if v.shape[1] else 0.0
                        for k, v in self.per_sample.items()})
            rows.append(row)
        return pd.DataFrame(rows, columns=list(COLUMNS))

    def totals(self) -> dict:
        """Per inference (mean over the samples): summed over the ops."""
        return {k: float(v.sum(axis=0).mean()) if v.size else 0.0
                for k, v in self.per_sample.items()
                if k not in ("elements_in", "elements_out")}


def ops_per_element(op, unit: VectorUnit) -> float:
    """The per-element cost of ``op`` (the unit's override for its kind, else the default)."""
    if op.kind in unit.ops_per_element:
        return float(unit.ops_per_element[op.kind])
    if op.kind == "norm":
        return _STATISTIC_NORMS.get(op.op, DEFAULT_OPS_PER_ELEMENT["norm"])
    return DEFAULT_OPS_PER_ELEMENT.get(op.kind, 1.0)


def element_ops(op, elements_in: float, elements_out: float, activation_inputs: int,
                unit: VectorUnit) -> float:
    """Element operations of one op on one sample."""
    if op.is_alias:
        return 0.0
    cost = ops_per_element(op, unit)
    if op.kind in ("add", "mul"):
        return elements_out * max(1, activation_inputs - 1) * cost
    if op.kind == "pool":
        kernel = op.attrs.get("kernel")
        return elements_out * kernel * cost if kernel else elements_in * cost
    if op.kind == "reduce":
        return elements_in * cost
    return elements_out * cost


def _energy_per_op(hw, unit: VectorUnit) -> float:
    table = load_table(hw.technology.energy_table)
    v_nom = float(table["nominal_voltage_v"])
    dyn = ((hw.technology.voltage_v or v_nom) / v_nom) ** 2
    if unit.energy_pj_per_op is not None:
        return float(unit.energy_pj_per_op) * dyn
    return int_add_pj(table, hw.precision.activation_bits) * dyn


def vector_op_costs(graph, hw, samples: int | None = None, level: str = "on_chip",
                    bits: np.ndarray | None = None) -> VectorCosts:
    """Cycles, element operations, traffic and energy of every between-layer op per sample.

    ``bits``: the tensors' stored bits (``graph_sizes.tensor_bits``), if already computed.
    """
    unit = hw.vector_unit if hw.vector_unit is not None else VectorUnit()
    if bits is None:
        bits = tensor_bits(graph, hw, samples, level)
    n = bits.shape[1]
    e_op = _energy_per_op(hw, unit)
    from accelsim.sim.design import resolve

    glb = resolve(hw).energy.glb_pj_per_bit
    words, word_bits = shared_port(hw)
    port_bits = None if words is None else words * word_bits
    ops = graph.between_layer_ops
    out = {k: np.zeros((len(ops), n)) for k in COLUMNS[4:]}
    for row, op in enumerate(ops):
        inputs = list(dict.fromkeys(op.inputs))
        e_in = float(sum(graph.tensors[t].elements for t in inputs))
        e_out = float(sum(graph.tensors[t].elements for t in op.outputs))
        count = element_ops(op, e_in, e_out, len(op.inputs), unit)
        if op.is_alias:
            read = write = np.zeros(n)
        else:
            storages = list(dict.fromkeys(graph.storage_of(t) for t in inputs))
            read = bits[storages].sum(axis=0) if storages else np.zeros(n)
            write = bits[op.outputs].sum(axis=0) if op.outputs else np.zeros(n)
        compute = (math.ceil(count / unit.lanes) + unit.op_overhead_cycles) if count else 0.0
        traffic = read + write
        buffer = (np.ceil(traffic / port_bits) if port_bits else np.zeros(n))
        out["elements_in"][row] = e_in
        out["elements_out"][row] = e_out
        out["ops"][row] = count
        out["compute_cycles"][row] = compute
        out["buffer_cycles"][row] = buffer
        out["cycles"][row] = np.maximum(compute, buffer)
        out["read_bits"][row] = read
        out["write_bits"][row] = write
        out["energy_ops_pj"][row] = count * e_op
        out["energy_glb_pj"][row] = traffic * glb
        out["energy_pj"][row] = count * e_op + traffic * glb
    return VectorCosts(ops, out, unit, hw.vector_unit is not None, e_op)
