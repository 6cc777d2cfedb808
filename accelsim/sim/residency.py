"""Network-level memory: batches, weights that stay on chip, outputs kept for the next layer.

:func:`plan_network` decides, before any layer runs, what each layer finds on chip:

- **weights** (``residency.weights``): ``resident`` keeps every layer's weights (on-chip format)
  in the on-chip buffer across inferences, so a steady-state inference reads no weights from DRAM;
  the one-time load is reported apart (``weight_load_bytes``). The resident weights of the
  *other* layers are reserved out of the buffer a layer can tile with; a layer that then cannot
  be mapped is an error for ``resident`` and makes ``auto`` fall back to ``streamed``.
- **activations** (``residency.activations: auto``): a layer's output (the whole batch, on-chip
  format, the largest over samples of the next layer's real input, i.e. after the pooling and
  activations between them) stays on chip as the next layer's input when it
  fits, together with the layer's own kept input, in what the resident weights leave (sizes from
  the per-sample densities the trace records: exact for dense and bitmap formats, expected for
  run-length/CSR/COO; no mask is read for planning) (working
  tiles of resident tensors are read from their resident copies and need no extra room).
  Without records of the ops between layers, each layer's input is taken to be the previous
  layer's output (pooling and activations between them run on chip).
- **batch**: ``B`` samples run together; weights are fetched once per batch when the mapping
  allows (the loop nest has ``N = B``; the systolic mode lowers the batch into one operand
  matrix), activations per sample. Rows report per inference.

DRAM traffic is split into a *compulsory* part (the network's input and output, and streamed
weights once per batch) and a *capacity* part (everything a bigger buffer would avoid:
re-fetches of tiles, intermediate activations, partial-sum spills).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from accelsim.errors import ConfigError
from accelsim.sim import storage
from accelsim.sim.design import resolve


@dataclass(frozen=True)
class LayerContext:
    """What one layer finds on chip, and its place in the network."""

    batch: int = 1
    weights_resident: bool = False
    input_on_chip: bool = False
    output_on_chip: bool = False
    reserved_bytes: float = 0.0      # buffer held by other layers' resident weights
    network_input: bool = True       # its input is the network's input (compulsory traffic)
    network_output: bool = True      # its output is the network's output (compulsory traffic)
    output_density: float | None = None  # density of what it writes: after the activation
                                         # that follows it (None: its raw output's density)


def written_density(layer, ctx: LayerContext) -> float:
    """Density of the output a layer stores: after its activation (``ctx``), else its raw output's."""
    if ctx.output_density is not None:
        return float(ctx.output_density)
    return 1.0 if layer.output_density is None else float(layer.output_density)


@dataclass(frozen=True)
class NetworkPlan:
    contexts: tuple[LayerContext, ...]
    weights_resident: bool
    weight_load_bytes: float         # one-time load of the resident weights (DRAM format)
    capacity_bytes: float | None     # the on-chip buffer the plan fills
    notes: tuple[str, ...] = ()
    between_ops_dram_bytes: float = 0.0   # per inference: ops between layers reading/writing DRAM


def buffer_capacity(hw, tensor: str) -> float | None:
    """Bytes of the on-chip buffer that would hold ``tensor`` (``weights``/``inputs``/
    ``outputs``): the outermost shared storage level keeping it (the flat shorthand's global
    buffer keeps every tensor; ``None``: unbounded; ``0``: no shared level keeps it)."""
    return resolve(hw).capacity[tensor]


def streamed_reason(hw, weight_bytes: float, capacity: float | None) -> str:
    """Why the weights are streamed: no shared level keeps them (they bypass it), or they do
    not fit the level that would keep them (its capacity)."""
    if capacity == 0:
        shared = [lv for lv in hw.memory_hierarchy or () if lv.instances == "one"]
        keeps = "; ".join(f"{lv.name} keeps {', '.join(lv.keeps) or 'nothing'}" for lv in shared)
        return (f"weights streamed (bypass): no shared on-chip level keeps weights ({keeps}), so "
                f"their {weight_bytes:,.0f} bytes come from DRAM every inference")
    level = next((lv for lv in hw.memory_hierarchy or ()
                  if lv.instances == "one" and "weights" in lv.keeps), None)
    where = (("global buffer's", "global_buffer.size_kib") if level is None
             else (f"{level.name} level's", "memory_hierarchy size_bytes"))
    return (f"weights streamed (capacity): {weight_bytes:,.0f} bytes of weights exceed the "
            f"{where[0]} {capacity:,.0f} bytes ({where[1]})")


def _format_bytes(shape: tuple[int, ...], density: float, fmt, bits: int) -> float:
    """Bytes of a tensor of ``shape`` with ``density`` non-zeros in ``fmt``: exact for dense and
    bitmap (they depend on the count only), the expected size for position-dependent formats."""
    elements = int(np.prod(shape))
    if fmt.format == "ranked":
        return storage.expected_tensor_bits(tuple(shape), 1, density, fmt, bits) / 8.0
    nnz = int(round(density * elements))
    if fmt.format == "dense":
        return storage.bits_to_bytes(elements * bits)
    if fmt.format == "bitmap":
        return storage.bits_to_bytes(elements + nnz * bits)
    return storage.expected_bits((elements,), nnz / elements if elements else 0.0, fmt.format,
                                 bits, fmt.run_bits, fmt.index_bits) / 8.0


def _weight_bytes(layer, hw, fmt) -> float:
    """A layer's weights in ``fmt`` (from the trace's recorded density when it has one)."""
    if layer.geometry.per_sample_weights:   # matmul: the second operand is an activation
        return 0.0
    density = layer.stats.get("weight_density") if isinstance(layer.stats, dict) else None
    if density is None:
        wmask = np.asarray(layer.weight_mask(), dtype=bool)
        return storage.bits_to_bytes(storage.tensor_bits(wmask, fmt, hw.precision.weight_bits))
    return _format_bytes(tuple(layer.geometry.weight_shape), float(density), fmt,
                         hw.precision.weight_bits)


def _input_bytes(layer, hw, batch: int, samples: int | None) -> float:
    """The largest on-chip size of one batch of the layer's input: from the per-sample
    densities the trace records (no mask is read), else from its masks."""
    g = layer.geometry
    fmt = hw.storage.activations.on_chip
    per_sample = layer.stats.get("act_density_per_sample") if isinstance(layer.stats, dict) else None
    if per_sample is not None and len(per_sample):
        used = per_sample[:samples] if samples else per_sample
        return batch * max(_format_bytes((g.C, g.H, g.W), float(d), fmt, hw.precision.activation_bits)
                           for d in used)
    from accelsim.sim.memo import memoised

    acts = memoised(layer, ("act_mask", samples), lambda: layer.act_mask(samples))
    bits = max(storage.tensor_bits(np.asarray(a, dtype=bool), fmt, hw.precision.activation_bits)
               for a in acts) if len(acts) else 0
    return batch * storage.bits_to_bytes(bits)


def plan_network(layers: list, hw, batch: int = 1, weights: str | None = None,
                 samples: int | None = None, graph=None) -> NetworkPlan:
    """Residency decisions for ``layers`` (in execution order) on ``hw``.

    ``weights`` overrides ``hw.residency.weights`` (``auto`` is tried as ``resident`` first;
    the caller falls back with ``weights="streamed"`` when a layer cannot then be mapped).
    ``graph``: the trace's recorded data flow; with it, kept activations follow the tensors'
    real lifetimes (:func:`_graph_residency`) instead of the layer order.
    """
    if not isinstance(batch, (int, np.integer)) or isinstance(batch, bool) or batch < 1:
        raise ConfigError(None, "batch", f"expected a positive integer, got {batch!r}")
    design = resolve(hw)
    hw = design.hw
    policy = weights or hw.residency.weights
    n = len(layers)
    w_cap = design.capacity["weights"]
    notes: list[str] = []
    w_bytes = [_weight_bytes(l, hw, hw.storage.weights.on_chip) for l in layers]
    total_w = float(sum(w_bytes))
    resident = False
    if policy in ("resident", "auto"):
        fits = w_cap is None or (w_cap > 0 and total_w <= w_cap)
        if fits:
            resident = True
        elif policy == "resident":
            where = ("no shared memory_hierarchy level keeps weights" if w_cap == 0 else
                     f"the on-chip buffer holds {w_cap:,.0f} bytes")
            raise ConfigError(hw.name, "residency.weights",
                              f"resident weights need {total_w:,.0f} bytes but {where}; use "
                              "streamed or auto")
        else:
            notes.append(streamed_reason(hw, total_w, w_cap))
    a_cap = design.capacity["outputs"]
    keep = [False] * n
    i_cap = design.capacity["inputs"]
    ins_on = [False] * n
    op_dram = 0.0
    use_graph = graph is not None and bool(getattr(graph, "ops", None))
    if hw.residency.activations == "auto" and a_cap != 0 and i_cap != 0 and use_graph:
        free = None if a_cap is None else a_cap - (total_w if resident else 0.0)
        ins_on, keep, op_dram = _graph_residency(graph, layers, hw, batch, samples, free)
    elif hw.residency.activations == "auto" and a_cap != 0 and i_cap != 0:
        free = None if a_cap is None else a_cap - (total_w if resident else 0.0)
        held = 0.0                    # the kept input of the current layer
        for i in range(n - 1):
            # what stays is the next layer's input: this output after the on-chip ops between
            out = _input_bytes(layers[i + 1], hw, batch, samples)
            keep[i] = free is None or held + out <= free
            held = out if keep[i] else 0.0
        ins_on = [i > 0 and keep[i - 1] for i in range(n)]
    from accelsim.sim.stored_output import stored_output_densities

    written = stored_output_densities(layers, graph if use_graph else None, samples)
    contexts = []
    for i in range(n):
        contexts.append(LayerContext(
            batch=int(batch), weights_resident=resident and w_bytes[i] > 0,
            input_on_chip=ins_on[i], output_on_chip=keep[i],
            reserved_bytes=(total_w - w_bytes[i]) if resident else 0.0,
            network_input=i == 0, network_output=i == n - 1, output_density=written[i]))
    load = 0.0
    if resident:
        load = float(sum(_weight_bytes(l, hw, hw.storage.weights.off_chip) for l in layers))
    return NetworkPlan(tuple(contexts), resident, load,
                       None if w_cap is None else float(w_cap), tuple(notes), op_dram / batch)


def _graph_residency(graph, layers: list, hw, batch: int, samples: int | None,
                     free: float | None) -> tuple[list[bool], list[bool], float]:
    """Which traced layers find their inputs on chip and keep their outputs there, from the
    recorded graph: walking the ops in order, every tensor produced on chip stays there when it
    fits beside the tensors already kept and still alive (a residual branch's input stays until
    its add), and is dropped after its last use; the model's input comes from DRAM and its outputs
    go there. Sizes: on-chip formats from the real masks, the largest over the samples, x batch.
    Also returns the DRAM bytes per batch of the ops between layers: every input they read from a
    tensor that is not on chip and every result they cannot keep (DRAM formats)."""
    from accelsim.sim.graph_sizes import tensor_bits

    bits = tensor_bits(graph, hw, samples, "on_chip")
    size = {t.id: batch * float(bits[t.id].max()) / 8.0 if bits.shape[1] else 0.0
            for t in graph.tensors}
    off = tensor_bits(graph, hw, samples, "off_chip")
    dram_size = {t.id: batch * float(off[t.id].mean()) / 8.0 if off.shape[1] else 0.0
                 for t in graph.tensors}
    op_dram = 0.0
    kept: dict[int, float] = {}
    position = {layer.index: i for i, layer in enumerate(layers)}
    ins_on = [False] * len(layers)
    outs_on = [False] * len(layers)

    def storage(t: int) -> int:
        tensor = graph.tensors[graph.storage_of(t)]
        hops = 0
        while tensor.inplace_of is not None and hops <= len(graph.tensors):
            tensor = graph.tensors[graph.storage_of(tensor.inplace_of)]   # in place: same storage
            hops += 1
        return tensor.id

    last_use: dict[int, int] = {}
    for op in graph.ops:
        for t in list(op.inputs) + list(op.outputs):
            last_use[storage(t)] = op.index
    final = {storage(t) for t in graph.outputs}

    for op in graph.ops:
        for s_id in [s_id for s_id in kept if last_use.get(s_id, -1) < op.index]:
            del kept[s_id]
        if op.is_layer and op.layer in position:
            acts = [storage(t) for t in op.inputs]
            ins_on[position[op.layer]] = bool(acts) and all(a in kept for a in acts)
        if not op.is_layer and not op.is_alias:       # vector-unit ops read what is off chip
            op_dram += sum(dram_size[a] for a in {storage(t) for t in op.inputs} if a not in kept)
        for a in {storage(t) for t in op.inputs}:     # what was just read in stays for later uses
            if (a not in kept and a not in final and last_use.get(a, -1) > op.index
                    and (free is None or sum(kept.values()) + size[a] <= free)):
                kept[a] = size[a]
        for t in op.outputs:
            s_id = storage(t)
            if s_id in kept or graph.tensors[t].alias_of is not None:
                continue
            if s_id not in final and (free is None or sum(kept.values()) + size[s_id] <= free):
                kept[s_id] = size[s_id]
            elif not op.is_layer:                     # ... and write what they cannot keep
                op_dram += dram_size[s_id]
        if op.is_layer and op.layer in position:
            outs_on[position[op.layer]] = all(storage(t) in kept for t in op.outputs) and bool(op.outputs)
    return ins_on, outs_on, op_dram


def streamed(plan: NetworkPlan, layers: list, hw) -> NetworkPlan:
    """The same plan with weights streamed (the ``auto`` fall-back)."""
    contexts = tuple(replace(c, weights_resident=False, reserved_bytes=0.0) for c in plan.contexts)
    return replace(plan, contexts=contexts, weights_resident=False, weight_load_bytes=0.0,
                   notes=plan.notes + ("weights streamed: with all weights resident some layer "
                                       "could not be tiled in the space left",))
