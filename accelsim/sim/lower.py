"""Lower a layer to per-group GEMMs: ``out[m, n] = sum_r act[m, r] * weight[r, n]``.

For one sample and conv group ``g``: ``M = P*Q`` output pixels (``m = p*Q + q``),
``Kred = (C/groups)*R*S`` reduction indices (``r = (c*R + u)*S + v``) and
``N = K/groups`` filters. Linear layers are 1x1 convolutions (``M`` = tokens).
Groups are independent GEMMs run one after another.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.sim.kernels.im2col import im2col_codes
from accelsim.trace.geometry import LayerGeometry


@dataclass(frozen=True)
class Gemm:
    """GEMM shape of one sample of a layer."""

    groups: int
    M: int
    Kred: int
    N: int

    @property
    def macs(self) -> int:
        """Dense MACs of one sample (all groups, padding positions included)."""
        return self.groups * self.M * self.Kred * self.N


def gemm_of(geometry: LayerGeometry) -> Gemm:
    """The GEMM a layer lowers to."""
    g = geometry
    return Gemm(groups=g.groups, M=g.P * g.Q, Kred=g.c_per_group * g.R * g.S, N=g.k_per_group)


def lower_weights(weight_mask: np.ndarray, geometry: LayerGeometry) -> np.ndarray:
    """Weight codes ``(groups, N, Kred)`` (``uint8`` 0/1); row ``n`` is filter ``g*N + n``."""
    gemm = gemm_of(geometry)
    mask = np.asarray(weight_mask, dtype=bool)
    return np.ascontiguousarray(mask.reshape(gemm.groups, gemm.N, gemm.Kred)).view(np.uint8)


def lower_acts(act_mask: np.ndarray, geometry: LayerGeometry) -> np.ndarray:
    """im2col codes ``(groups, M, Kred)`` of one sample's ``(C, H, W)`` activation mask.

    Codes: 0 zero, 1 non-zero, 2 padding (see :mod:`accelsim.sim.kernels.im2col`).
    """
    g = geometry
    act = np.ascontiguousarray(np.asarray(act_mask, dtype=bool))
    return im2col_codes(act, g.groups, g.R, g.S, g.P, g.Q, g.stride_h, g.stride_w,
                        g.pad_h, g.pad_w, g.dil_h, g.dil_w)


class PackedActs:
    """One sample's lowered activations, bit-packed (:func:`pack_acts`).

    ``bits`` (G, M, ceil(Kred/64)) ``uint64``: non-zero im2col elements (padding is 0);
    ``row_a`` (G, M) and ``col_a`` (G, Kred): non-zeros per output pixel and per reduction
    index; ``pad_col`` (Kred,): padding positions per reduction index (every group alike).
    The byte-per-element codes (:func:`lower_acts`) are built only if asked for
    (:meth:`codes`: the ``cycle`` fidelity and split streams need them).
    """

    def __init__(self, act: np.ndarray, geometry: LayerGeometry, pad_col: np.ndarray):
        from accelsim.sim.kernels.packed import pack_im2col

        g = geometry
        self.act = act
        self.geometry = geometry
        self.bits, self.row_a, self.col_a = pack_im2col(
            act, g.groups, g.R, g.S, g.P, g.Q, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
            g.dil_h, g.dil_w)
        self.pad_col = pad_col
        self._codes = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(G, M, Kred), as the codes'."""
        return (self.bits.shape[0], self.bits.shape[1], self.col_a.shape[1])

    def codes(self) -> np.ndarray:
        """The im2col codes (0 zero, 1 non-zero, 2 padding), built on first use."""
        if self._codes is None:
            self._codes = lower_acts(self.act, self.geometry)
        return self._codes

    def nonzero(self) -> np.ndarray:
        """bool (G, M, Kred): the non-zero im2col elements (codes == 1)."""
        from accelsim.sim.kernels.packed import unpack_bits

        return unpack_bits(self.bits, self.shape[2])

    def fold_any(self, size: int) -> np.ndarray:
        """bool (G, ceil(M/size), Kred): any non-zero in each block of ``size`` pixels."""
        from accelsim.sim.kernels.packed import or_row_blocks, unpack_bits

        return unpack_bits(or_row_blocks(self.bits, size), self.shape[2])

    def with_padding_issued(self) -> "PackedActs":
        """The activations as a design that skips zero activations but not padding sees them
        (``sparsity.skip_padding: false``): every padding position is a *present* element
        (its bit set, counted in ``row_a`` / ``col_a``, code 1), so the pairs it takes part in
        are issued. Only for what survives skipping (work, issued slots, the weights those
        slots need): effectual pairs, gating and the bits the port moves come from the real
        activations (a padding position is a zero that is never stored or fetched).
        ``self`` when the layer has no padding."""
        if not self.pad_col.any():
            return self
        from accelsim.sim.kernels.packed import pad_bits

        pbits, prow = pad_bits(self.geometry)
        view = _PaddingIssued.__new__(_PaddingIssued)
        view.act = self.act
        view.geometry = self.geometry
        view.bits = self.bits | pbits[None]   # disjoint: a padding position has no non-zero bit
        view.row_a = self.row_a + prow[None]
        view.col_a = self.col_a + self.pad_col[None]
        view.pad_col = np.zeros_like(self.pad_col)
        view._codes = None
        return view


class _PaddingIssued(PackedActs):
    """:meth:`PackedActs.with_padding_issued`: padding positions present (code 1)."""

    def codes(self) -> np.ndarray:
        if self._codes is None:
            from accelsim.sim.kernels.im2col import PAD

            base = lower_acts(self.act, self.geometry)
            base[base == PAD] = 1
            self._codes = base
        return self._codes


class PackedWeights:
    """A weight mask lowered once per layer: codes (G, N, Kred) ``uint8`` 0/1 and their
    rows packed for the AND + popcount kernel (``bits`` (G, N, ceil(Kred/64)))."""

    def __init__(self, codes: np.ndarray):
        from accelsim.sim.kernels.bitops import pack_equal_rows

        self.codes = codes
        self.bits = np.stack([pack_equal_rows(codes[g], 1) for g in range(codes.shape[0])])

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.codes.shape


def pack_acts(act_mask: np.ndarray, geometry: LayerGeometry,
              pad_col: np.ndarray | None = None) -> PackedActs:
    """Lower one sample's ``(C, H, W)`` mask straight to packed words and counts."""
    from accelsim.sim.kernels.packed import pad_columns

    act = np.ascontiguousarray(np.asarray(act_mask, dtype=bool))
    return PackedActs(act, geometry, pad_columns(geometry) if pad_col is None else pad_col)
