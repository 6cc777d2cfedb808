"""Work counts from the real masks: operand statistics and the per-PE work matrix.

A pair ``(activation, weight)`` survives when neither operand is a skipped zero:
with ``skip_zero_activations`` a zero (or padding) activation removes it, with
``skip_zero_weights`` a zero weight does. A design that issues the slots of padding
positions (``sparsity.skip_padding`` false, the default) passes its activations with the
padding present (:meth:`accelsim.sim.lower.PackedActs.with_padding_issued`, im2col
code 1). The work matrix holds, for every element ``(x, y)`` of the mapped GEMM (see
:mod:`accelsim.sim.map`), the surviving pairs of its stream:

- output stationary ``work[m, n] = sum_r s(A[m, r], W[r, n])``: with both skips this
  is ``popcount(A[m, :] & W[:, n])`` over bit-packed rows (the AND + popcount kernel);
- weight stationary ``work[r, n] = sum_m s(A[m, r], W[r, n])``: the weight is fixed
  along the stream, so it is the weight bit times the non-zeros of column ``r``;
- input stationary ``work[r, m] = sum_n s(A[m, r], W[r, n])``: the activation bit
  times the non-zero weights of reduction row ``r``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.sim.kernels.bitops import and_popcount_into, pack_equal_rows
from accelsim.sim.kernels.im2col import code_counts
from accelsim.sim.lower import PackedActs, PackedWeights
from accelsim.sim.map import Mapping


@dataclass(frozen=True)
class OperandCounts:
    """Element counts of one sample's lowered operands (summed over conv groups
    unless the name says per group)."""

    act_nonzero: int          # im2col elements that are non-zero activations
    act_zero: int             # im2col elements that are zero activations (not padding)
    act_pad: int              # im2col padding positions
    weight_nonzero: int
    weight_zero: int
    effectual: int            # pairs with both operands non-zero
    col_a: np.ndarray         # (G, Kred) non-zero activations per reduction index
    row_a: np.ndarray         # (G, M) non-zero activations per output pixel
    row_w: np.ndarray         # (G, Kred) non-zero weights per reduction index
    col_w: np.ndarray         # (G, N) non-zero weights per filter
    col_a_zero: np.ndarray    # (G, Kred) zero (not padding) activations per reduction index


def operand_counts(acodes: np.ndarray, wcodes: np.ndarray) -> OperandCounts:
    """Counts of im2col codes ``acodes`` (G, M, Kred) and weight codes ``wcodes`` (G, N, Kred)."""
    col_a, row_a, col_a_zero, pads = code_counts(acodes)
    row_w, col_w, _, _ = code_counts(wcodes)
    n_pad = int(pads.sum())
    n_nz = int(col_a.sum())
    w_total = int(row_w.sum())
    return OperandCounts(
        act_nonzero=n_nz,
        act_zero=int(acodes.size) - n_nz - n_pad,
        act_pad=n_pad,
        weight_nonzero=w_total,
        weight_zero=int(wcodes.size) - w_total,
        effectual=int((col_a * row_w).sum()),
        col_a=col_a, row_a=row_a, row_w=row_w, col_w=col_w, col_a_zero=col_a_zero)


def weight_counts(wcodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row_w (G, Kred), col_w (G, N)): non-zero weights per reduction index and per filter."""
    row_w, col_w, _, _ = code_counts(wcodes)
    return row_w, col_w


def packed_counts(acts: PackedActs, wcodes: np.ndarray,
                  wcounts: tuple[np.ndarray, np.ndarray] | None = None) -> OperandCounts:
    """:func:`operand_counts` of packed activations (no codes needed); ``wcounts`` the
    weights' :func:`weight_counts` when already known (they are per layer)."""
    row_w, col_w = weight_counts(wcodes) if wcounts is None else wcounts
    groups, m_dim, kred = acts.shape
    col_a = acts.col_a
    n_nz = int(col_a.sum())
    n_pad = int(acts.pad_col.sum()) * groups
    w_total = int(row_w.sum())
    return OperandCounts(
        act_nonzero=n_nz,
        act_zero=groups * m_dim * kred - n_nz - n_pad,
        act_pad=n_pad,
        weight_nonzero=w_total,
        weight_zero=int(wcodes.size) - w_total,
        effectual=int((col_a * row_w).sum()),
        col_a=col_a, row_a=acts.row_a, row_w=row_w, col_w=col_w,
        col_a_zero=m_dim - col_a - acts.pad_col[None, :])


def _codes_of(acts) -> np.ndarray:
    return acts.codes() if isinstance(acts, PackedActs) else acts


def _wcodes_of(weights) -> np.ndarray:
    return weights.codes if isinstance(weights, PackedWeights) else weights


def work_matrix(acodes, wcodes, counts: OperandCounts,
                mapping: Mapping, skip_a: bool, skip_w: bool) -> np.ndarray:
    """Surviving pairs per mapped element, ``int32`` (G * chunks, Sr, Sc).

    ``acodes``: im2col codes (G, M, Kred) or :class:`~accelsim.sim.lower.PackedActs`;
    ``wcodes``: weight codes (G, N, Kred) or :class:`~accelsim.sim.lower.PackedWeights`.
    With a split stream (``mapping.chunks > 1``, WS/IS) entry ``g * chunks + c`` holds
    conv group ``g``'s pairs within stream chunk ``c``.
    """
    if mapping.chunks == 1:
        return _work(acodes, wcodes, counts, mapping.dataflow, mapping.T, mapping.Sr,
                     mapping.Sc, skip_a, skip_w)
    acodes, wcodes = _codes_of(acodes), _wcodes_of(wcodes)
    parts = []
    step = mapping.chunk_steps
    for g in range(acodes.shape[0]):
        for t0 in range(0, mapping.T, step):
            t1 = min(mapping.T, t0 + step)
            if mapping.dataflow == "weight_stationary":
                a, w = acodes[g:g + 1, t0:t1], wcodes[g:g + 1]
            else:
                a, w = acodes[g:g + 1], wcodes[g:g + 1, t0:t1]
            parts.append(_work(a, w, operand_counts(a, w), mapping.dataflow, t1 - t0,
                               mapping.Sr, mapping.Sc, skip_a, skip_w))
    return np.concatenate(parts)


def _work(acodes, wcodes, counts: OperandCounts, df: str, t_len: int,
          sr: int, sc: int, skip_a: bool, skip_w: bool) -> np.ndarray:
    groups, m_dim, kred = acodes.shape
    n_dim = wcodes.shape[1]
    packed_a = isinstance(acodes, PackedActs)
    packed_w = isinstance(wcodes, PackedWeights)
    shape = (groups, sr, sc)
    if not skip_a and not skip_w:
        return np.full(shape, t_len, dtype=np.int32)
    if df == "output_stationary":
        if skip_a and skip_w:
            out = np.empty(shape, dtype=np.int32)
            for g in range(groups):
                a_bits = acodes.bits[g] if packed_a else pack_equal_rows(acodes[g], 1)
                w_bits = wcodes.bits[g] if packed_w else pack_equal_rows(wcodes[g], 1)
                and_popcount_into(a_bits, w_bits, out[g])
            return out
        if skip_a:
            return _broadcast(counts.row_a[:, :, None], shape)
        return _broadcast(counts.col_w[:, None, :], shape)
    wcodes = _wcodes_of(wcodes)
    if df == "weight_stationary":
        if skip_a and skip_w:
            return (wcodes.transpose(0, 2, 1) * counts.col_a[:, :, None]).astype(np.int32)
        if skip_a:
            return _broadcast(counts.col_a[:, :, None], shape)
        return (wcodes.transpose(0, 2, 1).astype(np.int32) * m_dim)
    # input stationary
    a_nz = acodes.nonzero() if packed_a else acodes == 1
    a_nz_t = a_nz.transpose(0, 2, 1)  # (G, Kred, M)
    if skip_a and skip_w:
        return (a_nz_t * counts.row_w[:, :, None]).astype(np.int32)
    if skip_a:
        return a_nz_t.astype(np.int32) * n_dim
    return _broadcast(counts.row_w[:, :, None], shape)


def _broadcast(values: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(values.astype(np.int32), shape))
