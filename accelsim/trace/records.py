"""In-memory traces: what capture and the statistical builders produce, what ``write_trace`` stores.

- :class:`CapturedLayer`: geometry, precisions, the bit-packed weight mask (1-D uint8,
  ``pack_flat`` of (K, C/g, R, S)), the bit-packed activation masks as chunks of rows
  (uint8 (n_i, ceil(C*H*W/8)), one row per sample), output density and statistics.
  A ``matmul`` layer's weight mask is per sample: ``weight_packed`` is then uint8
  rows (N, ceil(K*C/g/8)); ``out_packed`` optionally holds the rows of its needed-output
  mask (N, ceil(K*P*Q/8)) (attention's causal/attn mask).
- :class:`StatisticalLayer`: geometry, precisions and a density model per tensor
  (see :mod:`accelsim.trace.density`).
- :class:`TraceData`: the layers in execution order plus provenance; ``statistical``
  tells which layer type it holds, ``seed`` is the statistical traces' seed; ``graph``
  the captured data flow with the ops between layers (:class:`~accelsim.trace.graph.OpGraph`,
  None when unknown).

``TraceData.layer_traces()`` turns either kind into the simulator's ``LayerTrace``
objects without going through a file.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.trace import density as dens
from accelsim.trace.bits import unpack_flat, unpack_rows
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.layer import LayerTrace

# Seed stream offset of a matmul's second operand (layer indices stay far below it).
_SECOND_OPERAND_STREAM = 1 << 40

# Names of the per-layer statistics (``LayerTrace.stats`` keys).
SCALAR_STATS = ("act_density", "weight_density", "output_density")
ARRAY_STATS = ("act_density_per_channel", "act_density_per_sample", "weight_density_per_filter")


@dataclass
class CapturedLayer:
    """One captured layer with its real, bit-packed masks."""

    name: str
    geometry: LayerGeometry
    act_bits: int
    weight_bits: int
    weight_packed: np.ndarray
    act_chunks: list[np.ndarray]
    output_density: float | None
    stats: dict = field(default_factory=dict)
    out_packed: np.ndarray | None = None

    def weight_mask(self) -> np.ndarray:
        g = self.geometry
        if g.per_sample_weights:
            return unpack_rows(self.weight_packed, g.weight_mask_shape)
        return unpack_flat(self.weight_packed, g.weight_shape)

    def out_mask(self, samples: int | None = None) -> np.ndarray:
        n = self.geometry.N if samples is None else int(samples)
        return unpack_rows(self.out_packed[:n], (n,) + self.geometry.output_shape[1:])

    def act_packed(self) -> np.ndarray:
        """All samples' packed activation rows as one (N, row_bytes) array."""
        return np.concatenate(self.act_chunks, axis=0) if len(self.act_chunks) != 1 else self.act_chunks[0]

    def act_mask(self, samples: int | None = None) -> np.ndarray:
        packed = self.act_packed()
        n = packed.shape[0] if samples is None else int(samples)
        return unpack_rows(packed[:n], (n,) + self.geometry.act_shape[1:])


@dataclass
class StatisticalLayer:
    """One layer of a statistical trace: geometry plus density models."""

    name: str
    geometry: LayerGeometry
    act_bits: int
    weight_bits: int
    act_density: float | np.ndarray
    weight_density: float | np.ndarray

    def __post_init__(self) -> None:
        if isinstance(self.act_density, dens.NOfM):
            raise AccelsimError(f"layer {self.name!r}: act density: N:M sparsity applies to "
                                "weights only; give a density in [0, 1]")
        self.act_density = dens.check_density(self.act_density, self.geometry.C,
                                              f"layer {self.name!r}: act density")
        self.weight_density = dens.check_density(self.weight_density, self.geometry.K,
                                                 f"layer {self.name!r}: weight density")

    def expected_stats(self) -> dict:
        """The statistics the density model implies (expected values)."""
        g = self.geometry
        act_pc = np.broadcast_to(np.asarray(self.act_density, dtype=np.float64), (g.C,)).copy()
        filter_len = g.c_per_group * g.R * g.S
        w_pf = np.broadcast_to(np.asarray(dens.mean_density(self.weight_density, filter_len)
                                          if isinstance(self.weight_density, dens.NOfM)
                                          else self.weight_density, dtype=np.float64),
                               (g.K,)).copy()
        act = dens.mean_density(self.act_density)
        return {
            "act_density": act,
            "act_density_per_channel": act_pc,
            "act_density_per_sample": np.full(g.N, act),
            "weight_density": dens.mean_density(self.weight_density, filter_len),
            "weight_density_per_filter": w_pf,
        }


@dataclass
class TraceData:
    """A whole trace in memory (captured or statistical)."""

    layers: list
    provenance: dict
    statistical: bool = False
    seed: int | None = None
    untraced: list = field(default_factory=list)
    graph: object | None = None   # accelsim.trace.graph.OpGraph, or None (ops between layers unknown)

    @property
    def num_samples(self) -> int:
        return self.layers[0].geometry.N if self.layers else 0

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def layer_traces(self) -> list[LayerTrace]:
        """The layers as ``LayerTrace`` objects (masks unpacked or drawn on demand)."""
        out = []
        for i, layer in enumerate(self.layers):
            if self.statistical:
                out.append(statistical_layer_trace(i, layer, int(self.seed or 0)))
            else:
                stats = dict(layer.stats)
                out.append(LayerTrace(i, layer.name, layer.geometry, layer.act_bits,
                                      layer.weight_bits, layer.weight_mask, layer.act_mask,
                                      output_density=layer.output_density, stats=stats,
                                      out_loader=None if layer.out_packed is None
                                      else layer.out_mask))
        return out


def statistical_layer_trace(index: int, layer: StatisticalLayer, seed: int) -> LayerTrace:
    """A ``LayerTrace`` whose loaders draw masks from ``layer``'s density models."""
    geometry = layer.geometry
    act_density, weight_density = layer.act_density, layer.weight_density
    stats = layer.expected_stats()
    stats["density_model"] = {"act": dens.model_name(act_density),
                              "weight": dens.model_name(weight_density), "seed": seed}
    weights = lambda: dens.draw_weight_mask(geometry, weight_density, seed, index)  # noqa: E731
    if geometry.per_sample_weights:
        weights = lambda: _draw_per_sample_weights(geometry, weight_density, seed, index)  # noqa: E731
    return LayerTrace(
        index, layer.name, geometry, layer.act_bits, layer.weight_bits, weights,
        lambda n: dens.draw_act_mask(geometry, act_density, seed, index, n),
        output_density=None, stats=stats)


def _draw_per_sample_weights(geometry: LayerGeometry, density, seed: int,
                             index: int) -> np.ndarray:
    """One second-operand mask per sample of a ``matmul`` layer, (N, K, C/g, 1, 1).

    Drawn like activations (one independent stream per layer, distinct from the
    first operand's): row ``k`` of a sample keeps each element with density[k].
    """
    if isinstance(density, dens.NOfM):
        raise AccelsimError(f"matmul layer {index}: N:M density models apply to weights, "
                            "not to a matmul's second operand")
    g = geometry
    as_acts = LayerGeometry("linear", N=g.N, C=g.K, H=g.c_per_group, W=1, K=1)
    drawn = dens.draw_act_mask(as_acts, density, seed, _SECOND_OPERAND_STREAM + index, g.N)
    return drawn.reshape(g.weight_mask_shape)
