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

    @property
    def kind(self) -> str:
        return self.geometry.kind

    def weight_mask(self) -> np.ndarray:
        """Boolean non-zero mask of the weights, shape ``(K, C//groups, R, S)``."""
        mask = np.asarray(self._weight_loader(), dtype=bool)
        if mask.shape != self.geometry.weight_shape:
            raise TraceError(
                f"layer {self.name!r}: weight mask shape {mask.shape} does not match "
                f"the geometry {self.geometry.weight_shape}")
        return mask

    def act_mask(self, samples: int | None = None) -> np.ndarray:
        """Boolean non-zero mask of the input activations, shape ``(n, C, H, W)``."""
        n = self.geometry.N if samples is None else max(1, min(int(samples), self.geometry.N))
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
        """Build a layer from in-memory boolean masks (tests, scripts)."""
        weight_mask = np.asarray(weight_mask, dtype=bool)
        act_mask = np.asarray(act_mask, dtype=bool)
        return cls(index, name, geometry, act_bits, weight_bits,
                   lambda: weight_mask, lambda n: act_mask[:n],
                   output_density=output_density)

    def __repr__(self) -> str:
        g = self.geometry
        return (f"LayerTrace({self.index}, {self.name!r}, {g.kind}, C={g.C} H={g.H} W={g.W} "
                f"K={g.K} R={g.R} S={g.S} N={g.N})")
