"""Statistical traces: layer geometry plus a density model, no captured masks.

Builders (each returns a :class:`~accelsim.trace.records.TraceData` with
``statistical=True`` and writes it too when ``output`` is given):

- :func:`statistical_from_topology` — a SCALE-Sim topology CSV;
- :func:`statistical_from_model` — a zoo or user model's geometry (one forward on the
  ``meta`` device when the model is built by name, so no weights are allocated);
- :func:`statistical_from_trace` — a captured trace's measured densities
  (``per_channel`` or ``uniform``), to resample it with other seeds or sample counts.

Densities are a float (``uniform``), or a mapping from layer name to a float or a
per-channel sequence (``per_channel``: C values for activations, K for weights).
Masks are drawn as described in :mod:`accelsim.trace.density`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Sequence

import numpy as np

import accelsim
from accelsim.errors import AccelsimError
from accelsim.trace import density as dens
from accelsim.trace.geometry import LAYER_KINDS, LayerGeometry
from accelsim.trace.records import StatisticalLayer, TraceData

DensitySpec = float | Mapping[str, float | Sequence[float]]


def _created() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _density_for(spec: DensitySpec, name: str, what: str):
    if isinstance(spec, Mapping):
        if name in spec:
            return spec[name]
        if "*" in spec:
            return spec["*"]
        raise AccelsimError(f"{what}: no density given for layer {name!r} (add it, or a '*' "
                            "default, to the mapping)")
    return spec


def _describe(spec: DensitySpec):
    def one(value):
        if isinstance(value, dens.NOfM):
            return str(value)
        return float(value) if np.ndim(value) == 0 else "per_channel"

    if isinstance(spec, Mapping):
        return {k: one(v) for k, v in spec.items()}
    return one(spec)


def _build(layers: list[tuple[str, LayerGeometry]], act_density: DensitySpec,
           weight_density: DensitySpec, seed: int, act_bits: int, weight_bits: int,
           provenance: dict, output: str | os.PathLike | None) -> TraceData:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise AccelsimError(f"seed: expected a non-negative integer, got {seed!r}")
    for name, bits in (("act_bits", act_bits), ("weight_bits", weight_bits)):
        if not isinstance(bits, int) or not 1 <= bits <= 32:
            raise AccelsimError(f"{name}: expected an integer from 1 to 32, got {bits!r}")
    records = [StatisticalLayer(name, geometry, act_bits, weight_bits,
                                _density_for(act_density, name, "act density"),
                                _density_for(weight_density, name, "weight density"))
               for name, geometry in layers]
    prov = {"accelsim_version": accelsim.__version__, "created": _created(),
            "num_samples": layers[0][1].N if layers else 0,
            "act_density": _describe(act_density), "weight_density": _describe(weight_density),
            "seed": int(seed)}
    prov.update(provenance)
    data = TraceData(layers=records, provenance=prov, statistical=True, seed=int(seed))
    if output is not None:
        from accelsim.trace.writer import write_trace

        write_trace(output, data)
    return data


def statistical_from_topology(csv_path: str | os.PathLike, act_density: DensitySpec,
                              weight_density: DensitySpec, seed: int = 0, act_bits: int = 8,
                              weight_bits: int = 8, samples: int = 1,
                              output: str | os.PathLike | None = None) -> TraceData:
    """A statistical trace of every layer of a SCALE-Sim topology CSV."""
    from accelsim.trace.topology import read_topology

    layers, notes = read_topology(csv_path, samples=samples)
    structured = {l.name: dens.NOfM(*l.nm) for l in layers if l.nm is not None}
    if structured:  # the CSV's N:M column sets those layers' weight masks
        base = weight_density
        weight_density = dict(base) if isinstance(base, Mapping) else {"*": base}
        weight_density.update(structured)
        notes = notes + [f"layer {name!r}: N:M weight sparsity {nm} from the topology"
                         for name, nm in structured.items()]
    prov = {"source": "scalesim_topology", "topology": str(csv_path), "model": None,
            "notes": notes}
    return _build([(l.name, l.geometry) for l in layers], act_density, weight_density, seed,
                  act_bits, weight_bits, prov, output)


def _model_layers(model_or_name, input_shape: Sequence[int] | None,
                  kinds: Sequence[str]) -> tuple[list, str, tuple[int, ...]]:
    import torch

    from accelsim.trace.capture import probe_layers
    from accelsim.zoo import build_model, model_input_shape

    if isinstance(model_or_name, str):
        name = model_or_name
        if input_shape is None:
            if ":" in name:
                raise AccelsimError(f"model {name!r}: give the input shape of one sample "
                                    "(e.g. --input 3,224,224)")
            input_shape = model_input_shape(name)
        try:
            with torch.device("meta"):
                model = build_model(name)
            found = probe_layers(model, torch.zeros((1, *input_shape), device="meta"), kinds)
        except AccelsimError:
            raise
        except Exception:  # some models do not run on the meta device: use real tensors
            model = build_model(name)
            found = probe_layers(model, torch.zeros((1, *input_shape)), kinds)
    else:
        model = model_or_name
        name = type(model).__name__
        if input_shape is None:
            raise AccelsimError("statistical_from_model: input_shape is required for a model "
                                "instance")
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        found = probe_layers(model, torch.zeros((1, *input_shape), device=device), kinds)
    if not found:
        raise AccelsimError(f"model {name!r} has no layers of kinds {', '.join(kinds)}")
    return found, name, tuple(int(d) for d in input_shape)


def statistical_from_model(model_or_name, input_shape: Sequence[int] | None,
                           act_density: DensitySpec, weight_density: DensitySpec,
                           seed: int = 0, act_bits: int = 8, weight_bits: int = 8,
                           samples: int = 1, kinds: Sequence[str] = LAYER_KINDS,
                           input_density: float | None = None,
                           output: str | os.PathLike | None = None) -> TraceData:
    """A statistical trace with the geometry of a model (zoo name, spec or instance).

    ``input_shape`` is one sample's shape (defaults to the zoo's); ``input_density``,
    if given, replaces the activation density of the first layer (the network input,
    usually dense).
    """
    from accelsim.trace.hooks import parse_kinds

    if not isinstance(samples, int) or samples < 1:
        raise AccelsimError(f"samples: expected a positive integer, got {samples!r}")
    found, name, shape = _model_layers(model_or_name, input_shape, parse_kinds(kinds))
    layers = []
    for key, _kind, geometry in found:
        data = geometry.to_dict()
        data["N"] = samples
        layers.append((key, LayerGeometry.from_dict(data)))
    if input_density is not None:
        first = layers[0][0]
        base = act_density
        act_density = {"*": base} if not isinstance(base, Mapping) else dict(base)
        act_density[first] = input_density
    prov = {"source": "model_geometry", "model": name, "input_shape": list(shape)}
    return _build(layers, act_density, weight_density, seed, act_bits, weight_bits, prov, output)


def statistical_from_trace(trace, model: str = "per_channel", seed: int = 0,
                           samples: int | None = None,
                           output: str | os.PathLike | None = None) -> TraceData:
    """A statistical trace carrying a captured trace's measured densities.

    ``model`` is ``per_channel`` (activation density per input channel, weight
    density per filter) or ``uniform`` (one density per tensor).
    """
    if model not in ("uniform", "per_channel"):
        raise AccelsimError(f"density model: expected 'uniform' or 'per_channel', got {model!r}")
    layers, act, weight = [], {}, {}
    for layer in trace:
        data = layer.geometry.to_dict()
        data["N"] = int(samples or layer.geometry.N)
        layers.append((layer.name, LayerGeometry.from_dict(data)))
        if model == "uniform":
            act[layer.name] = layer.stats["act_density"]
            weight[layer.name] = layer.stats["weight_density"]
        else:
            act[layer.name] = layer.stats["act_density_per_channel"]
            weight[layer.name] = layer.stats["weight_density_per_filter"]
    bits = {"act": trace.layer(0).act_bits, "weight": trace.layer(0).weight_bits}
    data = _build(layers, act, weight, seed, bits["act"], bits["weight"],
                  {"source": "trace_densities", "model": trace.provenance.get("model"),
                   "from_trace": str(getattr(trace, "path", "")),
                   "from_trace_hash": getattr(trace, "content_hash", None),
                   "density_model": model}, None)
    for record, layer in zip(data.layers, trace):  # keep each layer's own precisions
        record.act_bits, record.weight_bits = layer.act_bits, layer.weight_bits
    if output is not None:
        from accelsim.trace.writer import write_trace

        write_trace(output, data)
    return data
