"""On-chip traffic of one sample: buffer port, NoC and scratchpads (see docs/simulator.md §7).

Leader / follower rule. An operand whose zeros are skipped is a *leader*: the port
reads it whole at its storage cost (a dense tensor every element, a compressed one
its non-zeros with their metadata) to find the pairs. The other operand is a
*follower*: an element is read only if some surviving pair of its fold uses it.
Without skipping every pair survives, so both operands are read whole (SCALE-Sim's
counts); with both skips both are leaders.

Element costs are ``a_cost[code]`` (im2col codes 0 zero, 1 non-zero, 2 padding = free)
and ``w_cost[code]`` in bits.

Skipped slots move nothing inside the array: a leader's zeros cross the port (the skip
logic at the array edge reads them to find the pairs) but do not enter the NoC, and
partial sums hop once per MAC slot that happens (issued pairs, gated ones included).

Scratchpad accesses of a gated pair (``gate_zero_operands``): the operand writes and the
read that detects the zero are full; the accesses conditioned on it are gated. The PE
checks the activation first, except with activation skipping alone (every issued
activation is then non-zero, so it checks the weight). If the checked operand is zero,
the other operand's read and the partial-sum update are gated; if only the other one is
zero, both reads are full and only the partial-sum update (and the MAC) is gated.
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
    spad_write_per_pair: float   # scratchpad writes of streamed operands per issued pair
    spad_act_read: float         # activation read per issued pair
    spad_weight_read: float      # weight read per issued pair
    spad_psum_per_pair: float    # partial-sum read + write per issued pair
    spad_stationary_bits: float  # scratchpad writes of stationary operands

    @property
    def array_bits(self) -> float:
        """Bits through the buffer port (operands in, partial sums and outputs)."""
        return self.glb_act_bits + self.glb_weight_bits + self.glb_psum_bits + self.glb_out_bits

    @property
    def spad_per_pair(self) -> float:
        """Scratchpad bits of one issued, ungated pair."""
        return (self.spad_write_per_pair + self.spad_act_read + self.spad_weight_read
                + self.spad_psum_per_pair)


@dataclass(frozen=True)
class GatedPairs:
    """Issued pairs with a zero operand under gating, by which read finds the zero."""

    weight_first: bool   # the PE checks the weight first (activation skipping alone)
    lead_zero: float     # the first-checked operand is zero (or padding)
    follow_zero: float   # the first-checked operand is non-zero, the other zero

    @property
    def total(self) -> float:
        return self.lead_zero + self.follow_zero


def gated_pairs(counts, m_dim: int, n_dim: int, skip_a: bool, skip_w: bool) -> GatedPairs:
    """Gated pairs of one sample from its :class:`~accelsim.sim.work.OperandCounts`.

    ``m_dim`` and ``n_dim`` are the pixels and filters per conv group. Per reduction index
    ``r``: ``a`` non-zero activations (``M - a`` zero or padding), ``w`` non-zero weights.
    """
    a_nz = counts.col_a.astype(np.float64)
    a_zero = m_dim - a_nz
    w_nz = counts.row_w.astype(np.float64)
    w_zero = n_dim - w_nz
    if skip_a and skip_w:
        return GatedPairs(False, 0.0, 0.0)
    if skip_a:   # issued activations are non-zero: the weight is checked first
        return GatedPairs(True, float((a_nz * w_zero).sum()), 0.0)
    partners = w_nz if skip_w else float(n_dim)
    lead = float((a_zero * partners).sum())
    follow = 0.0 if skip_w else float((a_nz * w_zero).sum())
    return GatedPairs(False, lead, follow)


def spad_bits(tr: Traffic, issued: float, gp: GatedPairs | None) -> tuple[float, float]:
    """(full, gated) scratchpad bits of one sample; ``gp`` None: no gating."""
    full = issued * tr.spad_per_pair + tr.spad_stationary_bits
    if gp is None:
        return full, 0.0
    follower_read = tr.spad_act_read if gp.weight_first else tr.spad_weight_read
    gated = gp.lead_zero * follower_read + gp.total * tr.spad_psum_per_pair
    return full - gated, gated


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


def operand_bits(acodes, wcodes, counts, m: Mapping, skip_a: bool,
                 skip_w: bool, a_cost: np.ndarray, w_cost: np.ndarray) -> tuple[float, float]:
    """Bits of activations and of weights the port moves into the array (leader/follower).

    ``counts`` is the :class:`~accelsim.sim.work.OperandCounts` of the operands;
    ``acodes`` im2col codes or :class:`~accelsim.sim.lower.PackedActs`, ``wcodes`` weight
    codes or :class:`~accelsim.sim.lower.PackedWeights`.
    """
    wcodes = getattr(wcodes, "codes", wcodes)
    act_reps, weight_reps = _repeats(m)
    # bits of all elements of each reduction index r, (G, Kred)
    cost_a_r = counts.col_a * a_cost[1] + counts.col_a_zero * a_cost[0]
    if skip_w and not skip_a:   # activations read only where a non-zero weight needs them
        act = _needed_bits(_fold_any(wcodes == 1, _act_fold(m), axis=1), cost_a_r)
    else:
        act = act_reps * float(cost_a_r.sum())
    n_dim = wcodes.shape[1]
    cost_w_r = counts.row_w * w_cost[1] + (n_dim - counts.row_w) * w_cost[0]
    if skip_a and not skip_w:   # weights read only where a non-zero activation needs them
        size = _weight_fold(m)
        need = (acodes.fold_any(size) if hasattr(acodes, "fold_any")
                else _fold_any(acodes == 1, size, axis=1))
        weight = _needed_bits(need, cost_w_r)
    else:
        weight = weight_reps * float(cost_w_r.sum())
    return act, weight


def array_operand_bits(counts, m: Mapping, skip_a: bool, skip_w: bool, a_cost: np.ndarray,
                       w_cost: np.ndarray, port: tuple[float, float]) -> tuple[float, float]:
    """Bits of activations and of weights that enter the array's NoC.

    As the port's (``port``, from :func:`operand_bits`), except that a leader's zero
    elements stay at the array edge with their skipped slots: a leader enters with its
    non-zeros only (at their storage cost), as many times as the port reads it.
    """
    act_reps, weight_reps = _repeats(m)
    act, weight = port
    if skip_a:
        act = act_reps * float(counts.col_a.sum()) * float(a_cost[1])
    if skip_w:
        weight = weight_reps * float(counts.row_w.sum()) * float(w_cost[1])
    return act, weight


def _repeats(m: Mapping) -> tuple[int, int]:
    """How many times the port reads every activation and every weight (no followers):
    OS: column folds / row folds; WS: column folds / chunks; IS: chunks / column folds."""
    if m.dataflow == "output_stationary":   # rows: pixels m, columns: filters n, stream: r
        return m.col_folds, m.row_folds
    if m.dataflow == "weight_stationary":   # rows: r, columns: filters n, stream: pixels m
        return m.col_folds, m.chunks
    return m.chunks, m.col_folds            # input stationary: rows r, columns pixels m


def _act_fold(m: Mapping) -> int:
    """Filters sharing one read of a follower activation: a column fold (OS streamed, WS
    streamed along a row) or a stream chunk (IS stationary)."""
    return m.chunk_steps if m.dataflow == "input_stationary" else m.cols


def _weight_fold(m: Mapping) -> int:
    """Pixels sharing one read of a follower weight: a row fold (OS), a stream chunk (WS
    stationary) or a column fold (IS streamed)."""
    if m.dataflow == "output_stationary":
        return m.rows
    return m.chunk_steps if m.dataflow == "weight_stationary" else m.cols


def _needed_bits(need: np.ndarray, cost_r: np.ndarray) -> float:
    """Sum over folds (axis 1 of ``need``, (G, folds, Kred)) of the costs of needed indices."""
    return float((need * cost_r[:, None, :]).sum())


def layer_traffic(gemm: Gemm, m: Mapping, act_bits: float, weight_bits: float, a_bits: int,
                  w_bits: int, acc_bits: int, mapped_pe_folds: float, *,
                  issued: float | None = None,
                  array_bits: tuple[float, float] | None = None) -> Traffic:
    """Partial sums, outputs, NoC bit-hops and scratchpad bits around the operand traffic.

    ``act_bits``/``weight_bits`` are the port's; ``array_bits`` the operand bits that enter
    the array (:func:`array_operand_bits`; None: the port's, i.e. no skipping) and
    ``issued`` the MAC slots that happen (None: every slot of the dense GEMM).
    Streamed elements are multicast along a row or column: on average ``Sc / col_folds``
    (or ``Sr / row_folds``) PEs; stationary elements travel ``(rows + 1) / 2`` hops;
    WS/IS partial sums move one hop per MAC slot that happens; OS outputs ``(rows + 1) / 2``
    hops.
    """
    outputs = gemm.groups * gemm.M * gemm.N
    slots = float(outputs * gemm.Kred) if issued is None else float(issued)
    act_in, weight_in = (act_bits, weight_bits) if array_bits is None else array_bits
    half_column = (m.rows + 1) / 2.0
    across_cols = m.Sc / m.col_folds
    if m.dataflow == "output_stationary":
        out = outputs * a_bits
        return Traffic(act_bits, weight_bits, 0.0, out,
                       act_in * across_cols + weight_in * m.Sr / m.row_folds
                       + out * half_column,
                       float(a_bits + w_bits), float(a_bits), float(w_bits), 2.0 * acc_bits, 0.0)
    psum = outputs * acc_bits * (2 * m.row_folds - 1)
    psum_hops = slots * acc_bits
    if m.dataflow == "weight_stationary":
        return Traffic(act_bits, weight_bits, psum, 0.0,
                       act_in * across_cols + weight_in * half_column + psum_hops,
                       float(a_bits), float(a_bits), float(w_bits), 2.0 * acc_bits,
                       mapped_pe_folds * w_bits)
    return Traffic(act_bits, weight_bits, psum, 0.0,
                   weight_in * across_cols + act_in * half_column + psum_hops,
                   float(w_bits), float(a_bits), float(w_bits), 2.0 * acc_bits,
                   mapped_pe_folds * a_bits)
