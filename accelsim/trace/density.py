"""Density models of statistical traces, and drawing masks from them.

A density model is given per tensor:

- ``uniform``: one density ``d``; every element is non-zero with probability ``d``;
- ``per_channel``: one density per input channel (activations, shape (C,)) or per
  output filter (weights, shape (K,)).

Elements are independent Bernoulli draws. Layer ``i`` of a trace with seed ``s``
draws its weights from ``numpy.random.default_rng([s, i, 0])`` and its activations
from ``default_rng([s, i, 1])``, sample after sample, so the same seed always gives
the same masks and ``act_mask(n)`` is the first ``n`` samples of ``act_mask(N)``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.trace.geometry import LayerGeometry

DENSITY_MODELS = ("uniform", "per_channel")

# Draw this many samples' random numbers at a time (bounds temporary memory).
_DRAW_BLOCK_ELEMENTS = 1 << 24


def check_density(value: float | Sequence[float] | np.ndarray, length: int,
                  what: str) -> float | np.ndarray:
    """Validate a density (a float, or ``length`` floats) in [0, 1]; returns float or float64 array."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        density = float(arr)
        if not 0.0 <= density <= 1.0 or not np.isfinite(density):
            raise AccelsimError(f"{what}: expected a density in [0, 1], got {density!r}")
        return density
    if arr.shape != (length,):
        raise AccelsimError(f"{what}: expected one density or {length} per-channel densities, "
                            f"got shape {arr.shape}")
    if not np.all((arr >= 0.0) & (arr <= 1.0)):
        raise AccelsimError(f"{what}: every per-channel density must lie in [0, 1]")
    return arr


def model_name(density: float | np.ndarray) -> str:
    """``uniform`` for a scalar density, ``per_channel`` for an array."""
    return "uniform" if np.ndim(density) == 0 else "per_channel"


def mean_density(density: float | np.ndarray) -> float:
    """Expected overall density (per-channel densities averaged: channels are equal in size)."""
    return float(density) if np.ndim(density) == 0 else float(np.mean(density))


def draw_weight_mask(geometry: LayerGeometry, density: float | np.ndarray, seed: int,
                     index: int) -> np.ndarray:
    """Weight mask (K, C/g, R, S) of layer ``index`` drawn with ``seed``."""
    rng = np.random.default_rng([int(seed), int(index), 0])
    u = rng.random(geometry.weight_shape, dtype=np.float32)
    if np.ndim(density) == 0:
        return u < np.float32(density)
    return u < np.asarray(density, dtype=np.float32)[:, None, None, None]


def draw_act_mask(geometry: LayerGeometry, density: float | np.ndarray, seed: int,
                  index: int, samples: int) -> np.ndarray:
    """Activation mask (samples, C, H, W) of layer ``index`` drawn with ``seed``."""
    rng = np.random.default_rng([int(seed), int(index), 1])
    shape = (int(samples),) + geometry.act_shape[1:]
    threshold = (np.float32(density) if np.ndim(density) == 0
                 else np.asarray(density, dtype=np.float32)[None, :, None, None])
    out = np.empty(shape, dtype=bool)
    per_sample = max(1, int(np.prod(shape[1:])))
    block = max(1, _DRAW_BLOCK_ELEMENTS // per_sample)
    for start in range(0, shape[0], block):
        stop = min(shape[0], start + block)
        u = rng.random((stop - start,) + shape[1:], dtype=np.float32)
        np.less(u, threshold, out=out[start:stop])
    return out
