"""On-chip traffic of one sample: buffer port, NoC and scratchpads (see docs/simulator.md §7).

Leader / follower rule. An operand whose zeros are skipped is a *leader*: the port
reads it whole at its storage cost (a dense tensor every element, a compressed one
its non-zeros with their metadata) to find the pairs. The other operand is a
*follower*: an element is read only if some surviving pair of its fold uses it.
Without skipping every pair survives, so both operands are read whole (SCALE-Sim's
counts); with both skips both are leaders.

Element costs are ``a_cost[code]`` (im2col codes 0 zero, 1 non-zero, 2 padding = free)
and ``w_cost[code]`` in bits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.sim.lower import Gemm
from accelsim.sim.map import Mapping


@dataclass(frozen=True)
class Traffic:
    """Bits and bit-hops of one sample of a layer."""

    glb_act_bits: float
    glb_weight_bits: float
    glb_psum_bits: float
    glb_out_bits: float
    noc_bit_hops: float
    spad_per_pair: float         # scratchpad bits per issued pair
    spad_stationary_bits: float  # scratchpad writes of stationary operands

    @property
    def array_bits(self) -> float:
        """Bits through the buffer port (operands in, partial sums and outputs)."""
        return self.glb_act_bits + self.glb_weight_bits + self.glb_psum_bits + self.glb_out_bits


def _fold_any(mask: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``any`` over consecutive blocks of ``size`` along ``axis`` (the last block may be short)."""
    length = mask.shape[axis]
    blocks = -(-length // size)
    pad = blocks * size - length
    if pad:
        widths = [(0, 0)] * mask.ndim
        widths[axis] = (0, pad)
        mask = np.pad(mask, widths)
    shape = mask.shape[:axis] + (blocks, size) + mask.shape[axis + 1:]
    return mask.reshape(shape).any(axis=axis + 1)


def operand_bits(acodes: np.ndarray, wcodes: np.ndarray, counts, m: Mapping, skip_a: bool,
                 skip_w: bool, a_cost: np.ndarray, w_cost: np.ndarray) -> tuple[float, float]:
    """Bits of activations and of weights the port moves into the array (leader/follower).

    ``counts`` is the :class:`~accelsim.sim.work.OperandCounts` of the operands.
    """
    n_dim = wcodes.shape[1]
    # bits of all elements of each reduction index r, (G, Kred)
    cost_a_r = counts.col_a * a_cost[1] + counts.col_a_zero * a_cost[0]
    cost_w_r = counts.row_w * w_cost[1] + (n_dim - counts.row_w) * w_cost[0]
    df = m.dataflow
    follow_a = skip_w and not skip_a         # activations read only where needed
    follow_w = skip_a and not skip_w         # weights read only where needed
    if df == "output_stationary":            # rows: pixels m, columns: filters n, stream: r
        if follow_a:   # act (m, r) is needed in column fold fc if a weight of r in fc is non-zero
            act = _needed_bits(_fold_any(wcodes == 1, m.cols, axis=1), cost_a_r)
        else:
            act = m.col_folds * float(cost_a_r.sum())
        if follow_w:   # weight (n, r) is needed in row fold fr if an act of r in fr is non-zero
            weight = _needed_bits(_fold_any(acodes == 1, m.rows, axis=1), cost_w_r)
        else:
            weight = m.row_folds * float(cost_w_r.sum())
        return act, weight
    step = m.chunk_steps
    if df == "weight_stationary":            # rows: r, columns: n, stream: pixels m
        if follow_a:   # streamed act (m, r) needed if a weight of row r in the column fold is
            act = _needed_bits(_fold_any(wcodes == 1, m.cols, axis=1), cost_a_r)
        else:
            act = m.col_folds * float(cost_a_r.sum())
        if follow_w:   # stationary weight (r, n) needed if an act of r in the chunk is non-zero
            weight = _needed_bits(_fold_any(acodes == 1, step, axis=1), cost_w_r)
        else:
            weight = m.chunks * float(cost_w_r.sum())
        return act, weight
    # input stationary: rows: r, columns: pixels m, stream: filters n
    if follow_a:       # stationary act (m, r) needed if a weight of r in the chunk is non-zero
        act = _needed_bits(_fold_any(wcodes == 1, step, axis=1), cost_a_r)
    else:
        act = m.chunks * float(cost_a_r.sum())
    if follow_w:       # streamed weight (n, r) needed if an act of r in the column fold is
        weight = _needed_bits(_fold_any(acodes == 1, m.cols, axis=1), cost_w_r)
    else:
        weight = m.col_folds * float(cost_w_r.sum())
    return act, weight


def _needed_bits(need: np.ndarray, cost_r: np.ndarray) -> float:
    """Sum over folds (axis 1 of ``need``, (G, folds, Kred)) of the costs of needed indices."""
    return float((need * cost_r[:, None, :]).sum())


def layer_traffic(gemm: Gemm, m: Mapping, act_bits: float, weight_bits: float, a_bits: int,
                  w_bits: int, acc_bits: int, mapped_pe_folds: float) -> Traffic:
    """Partial sums, outputs, NoC bit-hops and scratchpad bits around the operand traffic.

    Streamed elements are multicast along a row or column: on average ``Sc / col_folds``
    (or ``Sr / row_folds``) PEs; stationary elements travel ``(rows + 1) / 2`` hops;
    WS/IS partial sums move one hop per MAC slot; OS outputs ``(rows + 1) / 2`` hops.
    """
    outputs = gemm.groups * gemm.M * gemm.N
    half_column = (m.rows + 1) / 2.0
    across_cols = m.Sc / m.col_folds
    if m.dataflow == "output_stationary":
        out = outputs * a_bits
        return Traffic(act_bits, weight_bits, 0.0, out,
                       act_bits * across_cols + weight_bits * m.Sr / m.row_folds
                       + out * half_column,
                       2.0 * (a_bits + w_bits + acc_bits), 0.0)
    psum = outputs * acc_bits * (2 * m.row_folds - 1)
    psum_hops = outputs * gemm.Kred * acc_bits
    if m.dataflow == "weight_stationary":
        return Traffic(act_bits, weight_bits, psum, 0.0,
                       act_bits * across_cols + weight_bits * half_column + psum_hops,
                       2.0 * a_bits + w_bits + 2.0 * acc_bits, mapped_pe_folds * w_bits)
    return Traffic(act_bits, weight_bits, psum, 0.0,
                   weight_bits * across_cols + act_bits * half_column + psum_hops,
                   2.0 * w_bits + a_bits + 2.0 * acc_bits, mapped_pe_folds * a_bits)
