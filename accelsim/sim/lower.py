"""The GEMM shape a layer lowers to, per group: ``out[m, n] = sum_r act[m, r] * weight[r, n]``.

For one sample and conv group ``g``: ``M = P*Q`` output pixels (``m = p*Q + q``),
``Kred = (C/groups)*R*S`` reduction indices (``r = (c*R + u)*S + v``) and
``N = K/groups`` filters. Linear layers are 1x1 convolutions (``M`` = tokens).
Groups are independent GEMMs run one after another.
"""
from __future__ import annotations

from dataclasses import dataclass

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
