"""What the capture hooks need to know about a module: its kind, geometry and masks.

Kinds: ``conv2d`` (groups == 1), ``depthwise_conv2d`` (groups == C),
``grouped_conv2d`` (any other groups > 1) and ``linear``. A linear layer on an
input (N, ..., F) is a 1x1 convolution with C = F, H = the product of the middle
dimensions (tokens) and W = 1; its activation mask is transposed to (N, F, T, 1).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from accelsim.errors import TraceError
from accelsim.trace.geometry import LAYER_KINDS, LayerGeometry


def layer_kind(module: nn.Module) -> str | None:
    """The trace kind of ``module``, or None if it is not a traced layer type."""
    if isinstance(module, nn.Conv2d):
        if module.groups == 1:
            return "conv2d"
        if module.groups == module.in_channels:
            return "depthwise_conv2d"
        return "grouped_conv2d"
    if isinstance(module, nn.Linear):
        return "linear"
    return None


def parse_kinds(kinds) -> tuple[str, ...]:
    """Validate a list (or comma-separated string) of layer kinds."""
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in LAYER_KINDS]
    if bad or not kinds:
        raise TraceError(f"kinds: expected a non-empty subset of {', '.join(LAYER_KINDS)}, "
                         f"got {', '.join(map(repr, bad)) or 'nothing'}")
    return kinds


def _conv_padding(module: nn.Conv2d, name: str) -> tuple[int, int]:
    padding = module.padding
    if padding == "valid":
        return 0, 0
    if padding == "same":
        pads = []
        for k, d in zip(module.kernel_size, module.dilation):
            total = d * (k - 1)
            if total % 2:
                raise TraceError(f"layer {name!r}: padding='same' with an even effective kernel "
                                 "pads asymmetrically, which the trace geometry cannot express")
            pads.append(total // 2)
        return pads[0], pads[1]
    return int(padding[0]), int(padding[1])


def sample_shape(kind: str, x: torch.Tensor, name: str) -> tuple[int, int, int]:
    """(C, H, W) of one sample of the input ``x`` of a layer of ``kind``."""
    if kind == "linear":
        if x.dim() == 1:
            return int(x.shape[0]), 1, 1
        tokens = math.prod(int(s) for s in x.shape[1:-1]) if x.dim() > 2 else 1
        return int(x.shape[-1]), tokens, 1
    if x.dim() == 3:
        return int(x.shape[0]), int(x.shape[1]), int(x.shape[2])
    if x.dim() != 4:
        raise TraceError(f"layer {name!r}: expected a (N, C, H, W) input, got shape "
                         f"{tuple(x.shape)}")
    return int(x.shape[1]), int(x.shape[2]), int(x.shape[3])


def batch_size(kind: str, x: torch.Tensor) -> int:
    """Samples in the input ``x`` (an unbatched input counts as one)."""
    if (kind == "linear" and x.dim() == 1) or (kind != "linear" and x.dim() == 3):
        return 1
    return int(x.shape[0])


def layer_geometry(module: nn.Module, kind: str, chw: tuple[int, int, int], samples: int,
                   name: str) -> LayerGeometry:
    """Geometry of ``module`` for inputs of shape ``chw`` and ``samples`` samples."""
    c, h, w = chw
    try:
        if kind == "linear":
            return LayerGeometry(kind="linear", N=samples, C=c, H=h, W=w,
                                 K=int(module.out_features))
        pad_h, pad_w = _conv_padding(module, name)
        return LayerGeometry(
            kind=kind, N=samples, C=c, H=h, W=w, K=int(module.out_channels),
            R=int(module.kernel_size[0]), S=int(module.kernel_size[1]),
            stride_h=int(module.stride[0]), stride_w=int(module.stride[1]),
            pad_h=pad_h, pad_w=pad_w,
            dil_h=int(module.dilation[0]), dil_w=int(module.dilation[1]),
            groups=int(module.groups))
    except ValueError as exc:
        raise TraceError(f"layer {name!r}: {exc}") from None


def as_nchw(kind: str, x: torch.Tensor) -> torch.Tensor:
    """View the layer input as (N, C, H, W) (linear: (N, F, T, 1), a transposing copy)."""
    if kind == "linear":
        if x.dim() == 1:
            return x.reshape(1, -1, 1, 1)
        flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (N, T, F)
        return flat.transpose(1, 2).unsqueeze(-1)
    return x.unsqueeze(0) if x.dim() == 3 else x


def quantized_nonzero(x: torch.Tensor, bits: int, per_dim: int) -> torch.Tensor:
    """Mask of values that stay non-zero after linear quantisation to ``bits`` bits.

    The scale is max|x| over every dimension but ``per_dim`` (one scale per sample
    for activations, per output filter for weights). A slice with no negative value
    uses the unsigned range 2**bits - 1, otherwise the signed range 2**(bits-1) - 1.
    Values that round (half to even) to zero are zero.
    """
    dims = tuple(d for d in range(x.dim()) if d != per_dim)
    xf = x.float()
    amax = xf.abs().amax(dim=dims, keepdim=True)
    unsigned = xf.amin(dim=dims, keepdim=True) >= 0
    qmax = torch.where(unsigned, float(2 ** bits - 1), float(2 ** (bits - 1) - 1))
    scale = torch.where(amax > 0, qmax / amax, torch.zeros_like(amax))
    return torch.round(xf * scale) != 0


def nonzero_numpy(t: torch.Tensor, threshold: float = 0.0) -> np.ndarray:
    """Boolean NumPy mask of ``t != 0`` (and ``|t| >= threshold`` when it is > 0).

    On a CPU with few threads NumPy compares fastest; with more, torch's parallel
    kernels do. Tensors on an accelerator are compared there and only the mask is
    copied back.
    """
    if t.device.type == "cpu" and t.dtype in NUMPY_DTYPES and torch.get_num_threads() <= 4:
        a = t.numpy()
        mask = a != 0
        if threshold > 0:
            mask &= np.abs(a) >= threshold
        return mask
    mask = t != 0
    if threshold > 0:
        mask &= t.abs() >= threshold
    return mask.cpu().numpy()


NUMPY_DTYPES = (torch.float32, torch.float64, torch.int8, torch.uint8, torch.int16,
                 torch.int32, torch.int64)


def weight_tensor(module: nn.Module, kind: str) -> torch.Tensor:
    """The weight as (K, C/g, R, S)."""
    weight = module.weight.detach()
    return weight.reshape(weight.shape[0], weight.shape[1], 1, 1) if kind == "linear" else weight
