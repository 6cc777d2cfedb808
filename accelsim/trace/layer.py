"""One traced layer: geometry, precisions and (lazily loaded) zero masks.

This class is the contract between the trace stage and the simulator. A stored
trace and a statistical trace both hand the simulator ``LayerTrace`` objects;
they differ only in where the masks come from (unpacked from the file, or drawn
from a density model with a fixed seed).
"""
from __future__ import annotations

from typing import Callable, Iterator

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

    Reading activations a block of samples at a time (memory flat in the sample count):
    ``act_blocks(samples, size)`` iterates ``act_mask(samples)`` in blocks of ``size``
    samples from one pass over the stored rows; ``act_mask_block(start, stop)`` is samples
    ``[start, stop)``. Layers built without block loaders (in-memory masks, statistical
    draws) slice ``act_mask`` instead.
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
        act_blocks_loader: Callable[[int, int], Iterator[tuple[int, np.ndarray]]] | None = None,
        act_block_loader: Callable[[int, int], np.ndarray] | None = None,
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
        self._act_blocks_loader = act_blocks_loader
        self._act_block_loader = act_block_loader

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
        return self._check_block(self._act_loader(n), n, "activation mask")

    def _check_block(self, mask: np.ndarray, rows: int,
                     what: str = "activation mask block") -> np.ndarray:
        mask = np.asarray(mask, dtype=bool)
        expected = (rows,) + self.geometry.act_shape[1:]
        if mask.shape != expected:
            raise TraceError(f"layer {self.name!r}: {what} shape {mask.shape} does not match "
                             f"the geometry {expected}")
        return mask

    def act_blocks(self, samples: int | None = None,
                   size: int = 8) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, bool (rows, C, H, W))``: ``act_mask(samples)`` in order, at most ``size``
        samples per block; only the current block is held when the layer reads a trace file.

        Blocks read from a trace file are provisional until the iteration ends: the
        member's SHA-256 is checked by then (a corrupt member raises ``TraceError`` from
        the iteration), so consume it to the end before trusting what was computed.
        """
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size: expected a positive integer, got {size!r}")
        n = self._samples(samples)
        if self._act_blocks_loader is None:
            mask = self.act_mask(n)
            for start in range(0, n, size):
                yield start, mask[start:start + size]
            return
        expect = 0
        for start, block in self._act_blocks_loader(n, int(size)):
            rows = min(int(size), n - expect)
            if start != expect:
                raise TraceError(f"layer {self.name!r}: activation block starts at sample "
                                 f"{start}, expected {expect}")
            yield start, self._check_block(block, rows)
            expect += rows
        if expect != n:
            raise TraceError(f"layer {self.name!r}: activation blocks ended after {expect} of "
                             f"{n} samples")

    def act_mask_block(self, start: int, stop: int) -> np.ndarray:
        """Boolean mask of samples ``[start, stop)`` of the input activations,
        ``(stop - start, C, H, W)`` (checked against the trace before it is returned)."""
        n = self.geometry.N
        if not (isinstance(start, (int, np.integer)) and isinstance(stop, (int, np.integer))
                and 0 <= start < stop <= n):
            raise TraceError(f"layer {self.name!r}: samples [{start}, {stop}) are not a "
                             f"non-empty range within the {n} samples")
        start, stop = int(start), int(stop)
        if self._act_block_loader is None:
            return self._check_block(np.asarray(self._act_loader(stop), dtype=bool)[start:],
                                     stop - start)
        return self._check_block(self._act_block_loader(start, stop), stop - start)

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
