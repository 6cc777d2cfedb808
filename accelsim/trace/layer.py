"""One traced layer: geometry, precisions and (lazily loaded) zero masks.

This class is the contract between the trace stage and the simulator. A stored
trace and a statistical trace both hand the simulator ``LayerTrace`` objects;
they differ only in where the masks come from (unpacked from the file, or drawn
from a density model with a fixed seed).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from accelsim.errors import TraceError
from accelsim.trace.geometry import LayerGeometry


class LayerTrace:
    """A traced layer.

    Masks are ``True`` where the operand is non-zero:
    ``weight_mask()`` has shape ``(K, C // groups, R, S)``;
    ``act_mask(samples)`` has shape ``(n, C, H, W)`` (input activations, unpadded),
    ``n = min(samples, N)`` or ``N`` when ``samples`` is None.

    A ``matmul`` layer (``geometry.per_sample_weights``) multiplies two activations:
    its weight loader returns one mask per sample, ``(N, K, C // groups, 1, 1)``, and
    ``weight_mask(samples)`` the first ``n`` of them. ``out_mask(samples)`` is the
    optional mask of the outputs the model needs (attention's causal/attn mask),
    ``(n, K, P, Q)``, or None when every output is needed.
    """

    def __init__(
        self,
        index: int,
        name: str,
        geometry: LayerGeometry,
        act_bits: int,
        weight_bits: int,
        weight_loader: Callable[[], np.ndarray],
        act_loader: Callable[[int], np.ndarray],
        output_density: float | None = None,
        stats: dict | None = None,
        out_loader: Callable[[int], np.ndarray] | None = None,
    ):
        self.index = index
        self.name = name
        self.geometry = geometry
        self.act_bits = int(act_bits)
        self.weight_bits = int(weight_bits)
        self.output_density = output_density
        self.stats = dict(stats or {})
        self._weight_loader = weight_loader
        self._act_loader = act_loader
        self._out_loader = out_loader

    @property
    def kind(self) -> str:
        return self.geometry.kind

    @property
    def per_sample_weights(self) -> bool:
        return self.geometry.per_sample_weights

    def _samples(self, samples: int | None) -> int:
        return self.geometry.N if samples is None else max(1, min(int(samples), self.geometry.N))

    def weight_mask(self, samples: int | None = None) -> np.ndarray:
        """Boolean non-zero mask of the weights, shape ``(K, C//groups, R, S)``.

        Per-sample kinds (``matmul``): ``(n, K, C//groups, R, S)``, the first ``n`` samples.
        """
        mask = np.asarray(self._weight_loader(), dtype=bool)
        expected = self.geometry.weight_mask_shape
        if mask.shape != expected:
            raise TraceError(
                f"layer {self.name!r}: weight mask shape {mask.shape} does not match "
                f"the geometry {expected}")
        if self.per_sample_weights and samples is not None:
            mask = mask[:self._samples(samples)]
        return mask

    def out_mask(self, samples: int | None = None) -> np.ndarray | None:
        """Boolean mask of the needed outputs ``(n, K, P, Q)``, or None (all needed)."""
        if self._out_loader is None:
            return None
        n = self._samples(samples)
        mask = np.asarray(self._out_loader(n), dtype=bool)
        expected = (n,) + self.geometry.output_shape[1:]
        if mask.shape != expected:
            raise TraceError(f"layer {self.name!r}: output mask shape {mask.shape} does not "
                             f"match the geometry {expected}")
        return mask

    def act_mask(self, samples: int | None = None) -> np.ndarray:
        """Boolean non-zero mask of the input activations, shape ``(n, C, H, W)``."""
        n = self._samples(samples)
        mask = np.asarray(self._act_loader(n), dtype=bool)
        expected = (n,) + self.geometry.act_shape[1:]
        if mask.shape != expected:
            raise TraceError(
                f"layer {self.name!r}: activation mask shape {mask.shape} does not match "
                f"the geometry {expected}")
        return mask

    @classmethod
    def from_masks(
        cls,
        name: str,
        geometry: LayerGeometry,
        weight_mask: np.ndarray,
        act_mask: np.ndarray,
        act_bits: int = 8,
        weight_bits: int = 8,
        index: int = 0,
        output_density: float | None = None,
    ) -> "LayerTrace":
        """Build a layer from in-memory boolean masks (tests, scripts).

        For a ``matmul`` geometry ``weight_mask`` holds one mask per sample.
        """
        weight_mask = np.asarray(weight_mask, dtype=bool)
        act_mask = np.asarray(act_mask, dtype=bool)
        return cls(index, name, geometry, act_bits, weight_bits,
                   lambda: weight_mask, lambda n: act_mask[:n],
                   output_density=output_density)

    def __repr__(self) -> str:
        g = self.geometry
        return (f"LayerTrace({self.index}, {self.name!r}, {g.kind}, C={g.C} H={g.H} W={g.W} "
                f"K={g.K} R={g.R} S={g.S} N={g.N})")
