"""Layer geometry: the loop bounds of one conv2d / linear layer.

This is part of the trace contract (see ``docs/architecture.md``). A linear layer
is represented as a 1x1 convolution: ``C`` = in_features, ``K`` = out_features,
and every position of the leading (non-batch, non-feature) dimensions of its
input is one pixel: ``H`` = number of tokens (1 for a plain 2-D input), ``W`` = 1.

A ``matmul`` layer is a product of two activations, per sample ``B`` independent
GEMMs ``(M x Kr) . (Kr x Nc)`` (``B`` = heads and other batch dimensions). It is
stored as a grouped 1x1 convolution with ``groups = B``, ``C = B*Kr``, ``K = B*Nc``,
``H = M``, ``W = 1``: the first operand is the "activation" (per sample
``(B*Kr, M, 1)``), the second the "weight" (``(B*Nc, Kr, 1, 1)``), but its mask is
**per sample** (see :attr:`LayerGeometry.per_sample_weights`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

LAYER_KINDS = ("conv2d", "grouped_conv2d", "depthwise_conv2d", "linear", "matmul")
#: Kinds whose second operand ("weights") is an activation, with one mask per sample.
PER_SAMPLE_WEIGHT_KINDS = ("matmul",)


def conv_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """PyTorch's output-size rule for one spatial dimension."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class LayerGeometry:
    """Shape of one layer. ``N`` is the number of traced samples.

    Weight tensor: (K, C // groups, R, S). Input activations: (N, C, H, W),
    unpadded. Output: (N, K, P, Q).
    """

    kind: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int = 1
    S: int = 1
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    dil_h: int = 1
    dil_w: int = 1
    groups: int = 1
    P: int = -1
    Q: int = -1

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"kind: expected one of {LAYER_KINDS}, got {self.kind!r}")
        for field in ("N", "C", "H", "W", "K", "R", "S", "stride_h", "stride_w",
                      "dil_h", "dil_w", "groups"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field}: expected a positive integer, got {value!r}")
        for field in ("pad_h", "pad_w"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{field}: expected a non-negative integer, got {value!r}")
        if self.C % self.groups or self.K % self.groups:
            raise ValueError(
                f"groups: {self.groups} must divide C={self.C} and K={self.K}")
        p = conv_output_size(self.H, self.R, self.stride_h, self.pad_h, self.dil_h)
        q = conv_output_size(self.W, self.S, self.stride_w, self.pad_w, self.dil_w)
        if p < 1 or q < 1:
            raise ValueError(
                f"output size {p}x{q} is empty: the filter {self.R}x{self.S} (dilation "
                f"{self.dil_h}x{self.dil_w}) does not fit the padded input")
        if self.kind == "matmul" and (self.R, self.S, self.W, self.stride_h, self.stride_w,
                                      self.pad_h, self.pad_w) != (1, 1, 1, 1, 1, 0, 0):
            raise ValueError("matmul: expected a 1x1 geometry (R = S = W = 1, stride 1, no "
                             "padding)")
        if self.P == -1:
            object.__setattr__(self, "P", p)
        if self.Q == -1:
            object.__setattr__(self, "Q", q)
        if (self.P, self.Q) != (p, q):
            raise ValueError(f"P, Q: expected {p}x{q} from the geometry, got {self.P}x{self.Q}")

    @property
    def c_per_group(self) -> int:
        return self.C // self.groups

    @property
    def k_per_group(self) -> int:
        return self.K // self.groups

    @property
    def per_sample_weights(self) -> bool:
        """True when the second operand is an activation (one mask per sample)."""
        return self.kind in PER_SAMPLE_WEIGHT_KINDS

    @property
    def weight_mask_shape(self) -> tuple[int, ...]:
        """Shape of ``LayerTrace.weight_mask()``: ``(N,) + weight_shape`` when per sample."""
        return ((self.N,) if self.per_sample_weights else ()) + self.weight_shape

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.K, self.c_per_group, self.R, self.S)

    @property
    def act_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.K, self.P, self.Q)

    @property
    def macs_per_sample(self) -> int:
        """Dense multiply-accumulates for one sample (padding positions included)."""
        return self.K * self.P * self.Q * self.c_per_group * self.R * self.S

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LayerGeometry":
        return cls(**data)
