"""A small pre-norm transformer encoder whose MLP uses ReLU (so its hidden layer is sparse).

Input: token embeddings of shape (N, T, F) (default T=16 tokens, F=64 features); the
registered per-sample input shape is (T, F). Every projection is an ``nn.Linear``
module (query, key, value, output, MLP), so the trace capture sees each of them as a
linear layer on a (N, T, F) input. Attention's two matrix products (Q.K^T and P.V) are
captured as ``matmul`` layers with both operands' masks. A mean over tokens feeds a
linear classifier.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from accelsim.zoo.registry import register


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v/out projections."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads: {heads} must divide the model width {dim}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, f = x.shape
        d = f // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(n, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
        y = (weights @ v).transpose(1, 2).reshape(n, t, f)
        return self.out(y)


class EncoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)); x + fc2(relu(fc1(norm(x))))."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.relu(self.fc1(self.norm2(x))))


class TinyTransformer(nn.Module):
    """``depth`` encoder layers over (N, T, F) embeddings, mean-pooled, then a classifier."""

    def __init__(self, dim: int = 64, depth: int = 2, heads: int = 4, hidden: int = 256,
                 num_classes: int = 10):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x).mean(dim=1))


@register("tiny_transformer", (16, 64),
          "2-layer transformer encoder, input (T=16 tokens, F=64 features), ReLU MLP, 10 classes")
def tiny_transformer(num_classes: int = 10, dim: int = 64, depth: int = 2, heads: int = 4,
                     hidden: int = 256) -> TinyTransformer:
    return TinyTransformer(dim, depth, heads, hidden, num_classes)
