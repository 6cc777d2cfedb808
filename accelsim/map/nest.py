"""A layer as a loop nest: problem dimensions, bounds and the tensors they index.

Dimensions (Timeloop's names plus groups): ``N`` batch, ``G`` groups, ``K`` output channels
per group, ``C`` input channels per group, ``P``/``Q`` output rows/columns, ``R``/``S`` filter
rows/columns. Tensors: ``W`` weights ``[G, K, C, R, S]``, ``I`` inputs ``[N, G, C, H, W]`` with
``h = p*stride_h + r*dil_h`` (padding is not an index: it only matters to masks), ``O`` outputs
``[N, G, K, P, Q]``. A linear layer is the 1x1 case (``P`` = tokens).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

DIMS = ("N", "G", "K", "C", "P", "Q", "R", "S")
TENSORS = ("W", "I", "O")
TENSOR_NAMES = {"W": "weights", "I": "inputs", "O": "outputs"}


@dataclass(frozen=True)
class TensorDim:
    """One coordinate of a tensor: ``outer * stride + inner * dilation`` (or a single dim)."""

    outer: str
    inner: str | None = None
    stride: int = 1
    dilation: int = 1

    @property
    def dims(self) -> tuple[str, ...]:
        return (self.outer,) if self.inner is None else (self.outer, self.inner)


@dataclass(frozen=True)
class LoopNest:
    """Bounds of the eight loops and the strides/dilations of the input projection."""

    bounds: tuple[int, ...]          # in DIMS order
    stride_h: int = 1
    stride_w: int = 1
    dil_h: int = 1
    dil_w: int = 1
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.bounds) != len(DIMS) or any(int(b) < 1 for b in self.bounds):
            raise ValueError(f"bounds: expected {len(DIMS)} positive integers, got {self.bounds}")

    @classmethod
    def of_geometry(cls, geometry, batch: int = 1) -> "LoopNest":
        """The nest of a :class:`~accelsim.trace.geometry.LayerGeometry` for ``batch`` samples."""
        g = geometry
        return cls((int(batch), g.groups, g.k_per_group, g.c_per_group, g.P, g.Q, g.R, g.S),
                   g.stride_h, g.stride_w, g.dil_h, g.dil_w, getattr(g, "name", ""))

    def bound(self, dim: str) -> int:
        return self.bounds[DIMS.index(dim)]

    @property
    def macs(self) -> int:
        out = 1
        for b in self.bounds:
            out *= b
        return out

    def tensor_dims(self, tensor: str) -> tuple[TensorDim, ...]:
        """The coordinates of ``tensor`` as functions of the loop dimensions."""
        return _tensor_dims(self.stride_h, self.stride_w, self.dil_h, self.dil_w, tensor)

    def relevant(self, tensor: str) -> frozenset[str]:
        """Loop dimensions that index ``tensor`` (the others give it reuse)."""
        return frozenset(d for td in self.tensor_dims(tensor) for d in td.dims)

    def tensor_size(self, tensor: str) -> int:
        """Elements of the whole tensor (inputs: the unpadded extent the loops touch)."""
        size = 1
        for td in self.tensor_dims(tensor):
            if td.inner is None:
                size *= self.bound(td.outer)
            else:
                size *= (self.bound(td.outer) - 1) * td.stride + (self.bound(td.inner) - 1) * td.dilation + 1
        return size


@lru_cache(maxsize=1024)
def _tensor_dims(stride_h: int, stride_w: int, dil_h: int, dil_w: int, tensor: str) -> tuple[TensorDim, ...]:
    """The coordinates of a tensor as functions of the loop dimensions."""
    if tensor == "W":
        return tuple(TensorDim(d) for d in ("G", "K", "C", "R", "S"))
    if tensor == "O":
        return tuple(TensorDim(d) for d in ("N", "G", "K", "P", "Q"))
    if tensor == "I":
        return (TensorDim("N"), TensorDim("G"), TensorDim("C"),
                TensorDim("P", "R", stride_h, dil_h),
                TensorDim("Q", "S", stride_w, dil_w))
    raise ValueError(f"tensor: expected one of {TENSORS}, got {tensor!r}")
