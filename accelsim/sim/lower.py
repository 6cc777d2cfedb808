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
