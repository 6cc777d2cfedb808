"""Density models of statistical traces, and drawing masks from them.

A density model is given per tensor:

- ``uniform``: one density ``d``; every element is non-zero with probability ``d``;
- ``per_channel``: one density per input channel (activations, shape (C,)) or per
  output filter (weights, shape (K,));
- ``n_of_m`` (weights only, :class:`NOfM`): N:M structured sparsity, exactly ``n``
  non-zeros in every block of ``m`` consecutive weights along each filter's
  reduction (``C/groups, R, S`` order), as SCALE-Sim 3's sparsity column describes.

Elements are independent Bernoulli draws. Layer ``i`` of a trace with seed ``s``
draws its weights from ``numpy.random.default_rng([s, i, 0])`` and its activations
from ``default_rng([s, i, 1])``, sample after sample, so the same seed always gives
the same masks and ``act_mask(n)`` is the first ``n`` samples of ``act_mask(N)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.trace.geometry import LayerGeometry

DENSITY_MODELS = ("uniform", "per_channel", "n_of_m")


@dataclass(frozen=True)
class NOfM:
    """N:M structured weight sparsity: ``n`` non-zeros per block of ``m`` weights.

    A filter's last, partial block of ``r`` weights keeps ``min(n, r)`` of them.
    """

    n: int
    m: int

    def __post_init__(self) -> None:
        if (not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                    for v in (self.n, self.m)) or not 1 <= self.n <= self.m):
            raise AccelsimError(f"N:M sparsity: expected integers 1 <= N <= M, got {self.n}:{self.m}")

    @classmethod
    def parse(cls, text: str) -> "NOfM":
        """``"2:4"`` -> ``NOfM(2, 4)``."""
        parts = str(text).replace(" ", "").split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise AccelsimError(f"N:M sparsity: expected 'N:M' (e.g. 2:4), got {text!r}")
        return cls(int(parts[0]), int(parts[1]))

    def density(self, length: int) -> float:
        """Exact fraction of non-zeros in a filter of ``length`` weights."""
        kept = self.n * (length // self.m) + min(length % self.m, self.n)
        return kept / length if length else 0.0

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"

# Draw this many samples' random numbers at a time (bounds temporary memory).
_DRAW_BLOCK_ELEMENTS = 1 << 24


def check_density(value: float | Sequence[float] | np.ndarray, length: int,
                  what: str) -> float | np.ndarray:
    """Validate a density (a float, ``length`` floats in [0, 1], or an :class:`NOfM`)."""
    if isinstance(value, NOfM):
        return value
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


def model_name(density) -> str:
    """``uniform`` for a scalar density, ``per_channel`` for an array, ``n_of_m`` for N:M."""
    if isinstance(density, NOfM):
        return "n_of_m"
    return "uniform" if np.ndim(density) == 0 else "per_channel"


def mean_density(density, length: int | None = None) -> float:
    """Expected overall density (per-channel densities averaged: channels are equal in size).

    For N:M sparsity the exact density of a filter of ``length`` weights (``n/m`` without it).
    """
    if isinstance(density, NOfM):
        return density.density(length) if length else density.n / density.m
    return float(density) if np.ndim(density) == 0 else float(np.mean(density))


def draw_weight_mask(geometry: LayerGeometry, density: float | np.ndarray, seed: int,
                     index: int) -> np.ndarray:
    """Weight mask (K, C/g, R, S) of layer ``index`` drawn with ``seed``."""
    rng = np.random.default_rng([int(seed), int(index), 0])
    if isinstance(density, NOfM):
        return _draw_n_of_m(geometry.weight_shape, density, rng)
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


def _draw_n_of_m(shape: tuple[int, ...], nm: NOfM, rng: np.random.Generator) -> np.ndarray:
    """Per filter, keep ``n`` random positions in every block of ``m`` reduction weights."""
    filters, length = shape[0], int(np.prod(shape[1:]))
    blocks = -(-length // nm.m)
    u = rng.random((filters, blocks * nm.m), dtype=np.float32)
    u[:, length:] = np.inf  # padding of the last, partial block is never kept before real weights
    order = np.argsort(u.reshape(filters, blocks, nm.m), axis=2, kind="stable")
    keep = np.zeros((filters, blocks, nm.m), dtype=bool)
    np.put_along_axis(keep, order[:, :, :nm.n], True, axis=2)
    return keep.reshape(filters, blocks * nm.m)[:, :length].reshape(shape)
