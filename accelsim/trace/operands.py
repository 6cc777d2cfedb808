"""Operands of traced functional ops in the trace's layouts.

Every helper takes operands whose leading dimension is the sample (``n`` samples)
and returns tensors laid out as the trace stores them (see
:mod:`accelsim.trace.geometry`):

- :func:`linear_operands`: ``F.linear(x, W)`` on ``x`` (n, ..., C) -> activation
  (n, C, T, 1) and the geometry (T = tokens).
- :func:`gemm_operands`: a batched product ``A (n, B, M, Kr) . Bop (n, B, Kr, Nc)`` ->
  activation (n, B*Kr, M, 1), per-sample "weights" (n, B*Nc, Kr, 1, 1) and the
  ``matmul`` geometry (``groups = B``).
- :func:`matmul_gemm` / :func:`einsum_gemm`: ``torch.matmul`` (broadcasting, 1-D
  operands) and two-operand ``einsum`` equations reduced to that batched product;
  they return None for products that are not a per-sample GEMM (the caller then
  leaves the op untraced, and it is listed as untraced work).
"""
from __future__ import annotations

import math
import string

import torch

from accelsim.trace.geometry import LayerGeometry


def linear_operands(x: torch.Tensor, out_features: int) -> tuple[torch.Tensor, LayerGeometry]:
    """(activation (n, C, T, 1), geometry with N=1) of a linear layer on ``x`` (n, ..., C)."""
    n, c = int(x.shape[0]), int(x.shape[-1])
    flat = x.reshape(n, -1, c)
    geometry = LayerGeometry("linear", N=1, C=c, H=int(flat.shape[1]), W=1, K=int(out_features))
    return flat.transpose(1, 2).unsqueeze(-1), geometry


def gemm_operands(a: torch.Tensor, b: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, LayerGeometry]:
    """Trace layouts of ``a`` (n, B, M, Kr) . ``b`` (n, B, Kr, Nc)."""
    n, heads, m, kr = (int(s) for s in a.shape)
    nc = int(b.shape[-1])
    act = a.transpose(-1, -2).reshape(n, heads * kr, m, 1)
    weight = b.transpose(-1, -2).reshape(n, heads * nc, kr, 1, 1)
    geometry = LayerGeometry("matmul", N=1, C=heads * kr, H=m, W=1, K=heads * nc, groups=heads)
    return act, weight, geometry


def gemm_output_layout(mask: torch.Tensor) -> torch.Tensor:
    """An output-shaped mask (n, B, M, Nc) in the layer's output layout (n, B*Nc, M, 1)."""
    n, heads, m, nc = (int(s) for s in mask.shape)
    return mask.transpose(-1, -2).reshape(n, heads * nc, m, 1)


def matmul_gemm(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``torch.matmul(a, b)`` with sample-leading operands as (n, B, M, Kr), (n, B, Kr, Nc).

    Both operands are per sample, so each has at least 2 dimensions (sample + 1); a
    per-sample vector is a 1-row / 1-column matrix. Batch dimensions broadcast.
    """
    if a.dim() < 2 or b.dim() < 2 or a.shape[0] != b.shape[0]:
        return None
    a = a.unsqueeze(1) if a.dim() == 2 else a          # (n, K) -> (n, 1, K)
    b = b.unsqueeze(-1) if b.dim() == 2 else b         # (n, K) -> (n, K, 1)
    if a.shape[-1] != b.shape[-2]:
        return None
    try:
        batch = torch.broadcast_shapes(a.shape[1:-2], b.shape[1:-2])
    except RuntimeError:
        return None
    n, heads = int(a.shape[0]), math.prod(int(s) for s in batch)
    a = a.expand(n, *batch, *a.shape[-2:]).reshape(n, heads, *a.shape[-2:])
    b = b.expand(n, *batch, *b.shape[-2:]).reshape(n, heads, *b.shape[-2:])
    return a, b


def einsum_gemm(equation: str, a: torch.Tensor, b: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A two-operand ``einsum`` as (n, B, M, Kr), (n, B, Kr, Nc), or None if it is not one.

    Indices in both inputs and the output are batch indices (the first of each
    operand must be one: the sample), in both inputs only are contracted, in one
    input and the output are its rows/columns. Diagonals and indices summed within
    one operand are not a GEMM.
    """
    eq = equation.replace(" ", "")
    if "->" not in eq:
        return None
    lhs, out = eq.split("->")
    specs = lhs.split(",")
    if len(specs) != 2:
        return None
    extra = {}
    for spec, t in ((specs[0], a), (specs[1], b)):
        if "..." in spec:
            extra[spec] = t.dim() - len(spec.replace("...", ""))
    if len(set(extra.values())) > 1 or any(v < 0 for v in extra.values()):
        return None                                    # broadcasting ellipses: not handled
    if extra or "..." in out:
        if not extra:
            return None
        used = set(eq) - {".", ",", "-", ">"}
        dots = "".join(c for c in string.ascii_letters if c not in used)[:next(iter(extra.values()))]
        specs, out = [sp.replace("...", dots) for sp in specs], out.replace("...", dots)
    sa, sb = specs
    if len(sa) != a.dim() or len(sb) != b.dim():
        return None
    if len(set(sa)) != len(sa) or len(set(sb)) != len(sb) or len(set(out)) != len(out):
        return None
    if not sa or not sb or sa[0] != sb[0] or not out or out[0] != sa[0]:
        return None                                    # the sample index must lead
    batch = [c for c in sa if c in sb and c in out]
    contract = [c for c in sa if c in sb and c not in out]
    rows = [c for c in sa if c not in sb and c in out]
    cols = [c for c in sb if c not in sa and c in out]
    if len(batch) + len(contract) + len(rows) != len(sa) or \
            len(batch) + len(contract) + len(cols) != len(sb) or \
            set(out) != set(batch) | set(rows) | set(cols):
        return None                                    # an index summed within one operand
    size = {c: int(a.shape[i]) for i, c in enumerate(sa)}
    for i, c in enumerate(sb):
        if size.setdefault(c, int(b.shape[i])) != int(b.shape[i]):
            return None                                # broadcasting einsum: not handled
    pa = a.permute(*[sa.index(c) for c in batch + rows + contract])
    pb = b.permute(*[sb.index(c) for c in batch + contract + cols])
    n = size[batch[0]]
    heads = math.prod(size[c] for c in batch[1:])
    m = math.prod(size[c] for c in rows)
    kr = math.prod(size[c] for c in contract)
    nc = math.prod(size[c] for c in cols)
    return pa.reshape(n, heads, m, kr), pb.reshape(n, heads, kr, nc)
