"""Simulate a layer on a design with a ``memory_hierarchy``: map, then count from the masks.

1. the layer's loop nest is mapped by the dataflow-constrained mapper (cached per layer shape,
   design and objective);
2. dense per-level accesses of that mapping come from :mod:`accelsim.map.access`;
3. each sample's masks give every PE's work in every step (:mod:`accelsim.map.sparse`);
   the synchronisation groups turn it into compute cycles (the ``fast`` fold recurrence, no
   systolic fill/drain), and load imbalance is where the zeros really are;
4. sparsity scales the accesses: compressed formats move the exact compressed size of the
   tensor (from its mask; outputs from the density after the activation that follows, as
   the output path writes them; the network's input raw in DRAM); each MAC-driven access is
   counted from the slots it serves (:mod:`accelsim.sim.mac_gating`): skipped when none is
   issued (a padding position's slots are issued, as zeros, unless ``sparsity.skip_padding``),
   gated when every issued one is gated (the leader read that finds the zero is charged in
   full), an element's first update reading no partial sum; an action at an outer level skips
   or gates a tensor's transfers into its child whose co-iterated tile is empty
   (:mod:`accelsim.sim.tile_conditions`);
5. each level's traffic against its ports gives the latency and names the bottleneck.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError, MappingError, TraceError
from accelsim.map.access import FILLS, READS, UPDATES, AccessCounts
from accelsim.map.arch import Arch
from accelsim.map.cost import Densities, level_time, sparse_model
from accelsim.map import store as mapping_store
from accelsim.map.mapper import MapResult, search
from accelsim.map.nest import DIMS, LoopNest
from accelsim.map.sparse import (MODE_ACT, MODE_BOTH, MODE_DENSE, MODE_WEIGHT, effectual_pairs,
                                  in_bounds_pes, step_stats, step_work)
from accelsim.sim import dram_stream, fetch, mac_gating, storage, tile_conditions
from accelsim.sim import systolic as systolic_mod
from accelsim.sim.conditions import LiveSlots, live_slots
from accelsim.sim.design import resolve
from accelsim.sim.energy import COMPONENTS
from accelsim.sim.kernels import schedule as sch
from accelsim.sim.residency import LayerContext, written_density


_MAPPINGS: dict[tuple, MapResult] = {}
_SEARCHES: dict[tuple, MapResult] = {}   # by the search's own inputs (shared across designs)
_CACHE_LIMIT = 4096


def _mapped(nest: LoopNest, hw, objective: str, reserved_bits: float = 0.0,
            densities: Densities | None = None) -> MapResult:
    """Mapping cache by (layer shape, design hash, objective, buffer reserved for resident
    weights, densities on a 0.02 grid). The mapper ranks by the cost the layer will be charged
    at those densities (dense when None). Behind it, searches are shared by everything they
    depend on (shape, storage levels and their costs, dataflow, objective, budget, the sparse
    cost model), so the designs of a sweep that differ elsewhere (vector unit, residency,
    names, ...) map a shape once, and behind that the on-disk store shares them across
    processes (:mod:`accelsim.map.store`)."""
    densities = (densities or Densities()).rounded()
    key = (nest, hw.hash, objective, reserved_bits, densities)
    if key not in _MAPPINGS:
        if len(_MAPPINGS) > _CACHE_LIMIT:
            _MAPPINGS.clear()
            _SEARCHES.clear()
        arch = resolve(hw).arch
        if reserved_bits:
            arch = _reserve(arch, reserved_bits)
        model = sparse_model(hw, arch, nest, densities)
        dataflow, size = hw.pe_array.dataflow, hw.mapping.search_size
        inputs = (nest, arch, dataflow, objective, size, model)
        if inputs not in _SEARCHES:
            _SEARCHES[inputs] = mapping_store.cached_search(
                nest, arch, dataflow, objective, size, model,
                lambda: search(nest, arch, dataflow, objective, size, model=model))
        _MAPPINGS[key] = _SEARCHES[inputs]
    return _MAPPINGS[key]


def layer_densities(layer, output_density: float | None = None) -> Densities:
    """The densities the mapper ranks ``layer``'s mappings by: its recorded input and weight
    densities (1 when not recorded) and its stored output's (``output_density``, else the
    layer's own)."""
    def recorded(value) -> float:
        return 1.0 if value is None else float(value)

    out = output_density if output_density is not None else layer.output_density
    return Densities(recorded(layer.stats.get("act_density")),
                     recorded(layer.stats.get("weight_density")), recorded(out))


def _holder(arch: Arch, tensor: str) -> int | None:
    """The outermost on-chip shared level keeping ``tensor`` (where it stays resident)."""
    for i, lv in enumerate(arch.levels):
        if i > 0 and not lv.per_pe and tensor in lv.keeps:
            return i
    return None


def _reserve(arch: Arch, bits: float) -> Arch:
    """``arch`` with ``bits`` of its weight-holding level taken by other layers' weights."""
    i = _holder(arch, "W")
    lv = arch.levels[i]
    if lv.capacity_bits is None:
        return arch
    left = lv.capacity_bits - bits
    if left <= 0:
        raise MappingError(f"layer '' cannot be mapped: the resident weights of the other layers "
                           f"({bits / 8:,.0f} bytes) fill level {lv.name!r}")
    levels = list(arch.levels)
    levels[i] = dataclasses.replace(lv, capacity_bits=left)
    return dataclasses.replace(arch, levels=tuple(levels))


def map_layer(layer, hw, batch: int = 1, reserved_bytes: float = 0.0,
              output_density: float | None = None) -> MapResult:
    """The mapping of one layer for ``batch`` samples (cached per layer shape, design hash,
    objective, the buffer bytes reserved for other layers' resident weights and the layer's
    densities, :func:`layer_densities`)."""
    nest = LoopNest.of_geometry(layer.geometry, batch=batch)
    nest = LoopNest(nest.bounds, nest.stride_h, nest.stride_w, nest.dil_h, nest.dil_w, "")
    try:
        result = _mapped(nest, hw, hw.mapping.objective, float(reserved_bytes) * 8.0,
                         layer_densities(layer, output_density))
    except MappingError as exc:
        raise MappingError(str(exc).replace("layer ''", f"layer {layer.name!r}")) from None
    return result


def _mode(hw) -> int:
    s = hw.sparsity
    if s.skip_zero_activations and s.skip_zero_weights:
        return MODE_BOTH
    if s.skip_zero_activations:
        return MODE_ACT
    if s.skip_zero_weights:
        return MODE_WEIGHT
    return MODE_DENSE


def _metadata_ratio(mask: np.ndarray, fmt, bits: int, batched: bool = False) -> float:
    """Metadata bits of the tensor in ``fmt`` per bit of its dense form (exact, from the mask)."""
    dense = mask.size * bits
    return float(storage.metadata_bits(mask, fmt, bits, batched)) / dense if dense else 0.0


def _compressed_ratio(mask: np.ndarray, fmt, bits: int, batched: bool = False) -> float:
    """Bits of the tensor in ``fmt`` per bit of its dense form (exact, from the mask;
    ``batched``: the first axis is the sample)."""
    dense = mask.size * bits
    return float(storage.tensor_bits(mask, fmt, bits, batched)) / dense if dense else 1.0


_RATIOS = ("utilization", "load_imbalance", "act_density", *dram_stream.ROW_RATIOS)


def simulate_layer_loopnest(layer, hw, fidelity: str = "fast", samples: int | None = None,
                            context: LayerContext | None = None, mapping=None,
                            executor=None) -> dict:
    """One layer's result row (means over samples = per inference) on a loop-nest design.

    Samples run in batches of ``context.batch`` (the nest's ``N``); what the context puts on
    chip (resident weights, the previous layer's output, this layer's output) moves nothing
    off chip: the DRAM traffic of those tensors is dropped and their fills into the buffer that
    holds them too (they are already there). ``mapping``: a fixed :class:`Mapping` instead of
    the mapper's (:mod:`accelsim.map.fixed`). ``executor``: a thread pool that runs the batches
    after the first concurrently (figures do not depend on it).
    """
    ctx = context or LayerContext()
    d = resolve(hw)
    hw = d.hw
    if fidelity not in ("fast", "cycle"):
        raise AccelsimError(f"{hw.name}: fidelity: expected fast or cycle, got {fidelity!r}")
    arch, em = d.arch, d.energy
    geo = layer.geometry
    if layer.act_bits > hw.precision.activation_bits or layer.weight_bits > hw.precision.weight_bits:
        raise MappingError(
            f"layer {layer.name!r}: the trace has {layer.act_bits}-bit activations and "
            f"{layer.weight_bits}-bit weights but hardware {hw.name!r} has "
            f"precision.activation_bits={hw.precision.activation_bits} and "
            f"precision.weight_bits={hw.precision.weight_bits}")
    wmasks = np.asarray(layer.weight_mask(), dtype=bool)
    per_sample_weights = wmasks.ndim == 5      # matmul: the second operand is per sample
    mode = _mode(hw)
    bsz = 1 if per_sample_weights else ctx.batch     # a matmul shares no weights across samples
    rows: list[np.ndarray] = []
    weights: list[int] = []
    keys: list[str] = []
    bottlenecks: dict[str, int] = {}
    mappings: list = []
    shared_ratios = None if per_sample_weights else _weight_ratios(wmasks, hw)

    systolic = hw.pe_array.systolic
    if systolic and mapping is not None:
        raise AccelsimError(f"{hw.name}: a systolic design (pe_array.systolic) runs SCALE-Sim's "
                            f"mapping; layer {layer.name!r} cannot take a fixed mapping")

    def one_batch(start: int, group: np.ndarray) -> tuple[dict, int, object]:
        b = group.shape[0]
        wmask = wmasks[start] if per_sample_weights else wmasks
        ratios = _weight_ratios(wmask, hw) if per_sample_weights else shared_ratios
        if hw.sparsity.skip_weight_fetch:  # zero inputs skip their weights (accelsim.sim.fetch)
            frac = fetch.hw_fetch_fraction(layer, group, hw)
            stream_w = (ratios[1], fetch.needed_inputs(group)) if fetch.skips(geo) else None
            ratios = (ratios[0] * frac, ratios[1] * frac)
        else:
            stream_w = None
        if systolic:   # the im2col GEMM on SCALE-Sim's mapping (accelsim.sim.systolic)
            low = systolic_mod.lower(geo, group, wmask, layer.name,
                                     with_padding=mode in (MODE_ACT, MODE_BOTH)
                                     and not hw.sparsity.skip_padding)
            held = _reserve(arch, ctx.reserved_bytes * 8.0) if ctx.reserved_bytes else arch
            mapped = _systolic_mapped(layer.name, low.nest, held, hw.pe_array.dataflow, ctx,
                                      (geo, int(group.shape[0])))
            timing = (systolic_mod.overhead(hw.pe_array.dataflow, arch.rows, arch.cols),
                      systolic_mod.dram_input_scale(low), low.pad)
            row = _sample(_LoweredLayer(layer.name, low.geometry, layer.output_density, group),
                          low.act,
                          low.weights, low.nest, mapped.mapping, mapped.counts, arch, em, hw, mode,
                          ratios, ctx, fidelity, None, timing)
            row["stream_chunks"] = float(systolic_mod.stream_chunks(mapped.mapping,
                                                                    hw.pe_array.dataflow))
            return row, b, mapped.mapping
        nest = LoopNest.of_geometry(geo, batch=b)
        if mapping is not None:
            from accelsim.map.fixed import fixed_result

            held = _reserve(arch, ctx.reserved_bytes * 8.0) if ctx.reserved_bytes else arch
            mapped = fixed_result(layer.name, mapping, nest, held)
        else:
            mapped = map_layer(layer, hw, b, ctx.reserved_bytes, written_density(layer, ctx))
        row = _sample(layer, group, wmask, nest, mapped.mapping, mapped.counts, arch, em, hw, mode,
                      ratios, ctx, fidelity, stream_w)
        return row, b, mapped.mapping

    def collect(row: dict, b: int, mapped) -> None:
        if not keys:
            keys.extend(key for key in row if not key.startswith("_"))
        # a batch's totals -> per inference; one compact vector per batch (memory flat)
        rows.append(np.array([row[k] if k in _RATIOS else row[k] / b for k in keys]))
        weights.append(b)
        bottlenecks[row["_bottleneck"]] = bottlenecks.get(row["_bottleneck"], 0) + 1
        if not mappings:
            mappings.append(mapped)

    # the masks are read in blocks of whole batches, so memory is flat in the samples; with a
    # thread pool the batches after the first (which maps the layer) run concurrently (the
    # kernels release the GIL) and are collected in order. The access-stream cache is not
    # shared across threads: such designs run their batches in turn.
    pool = executor if executor is not None and not hw.dram.access_stream else None
    pending: list = []
    for start, group in _batches(layer, samples, bsz):
        if pool is None or not rows:
            collect(*one_batch(start, group))
            continue
        pending.append(pool.submit(one_batch, start, group))
        if len(pending) >= _WINDOW:
            for future in pending:
                collect(*future.result())
            pending.clear()
    for future in pending:
        collect(*future.result())
    first_mapping = mappings[0] if mappings else None
    if not rows:
        raise TraceError(f"layer {layer.name!r} has no samples to simulate")
    out: dict = {"layer": layer.name, "index": int(layer.index), "kind": geo.kind,
                 "samples": int(sum(weights))}
    means = np.average(np.stack(rows), axis=0, weights=weights)
    out.update({key: float(value) for key, value in zip(keys, means)})
    out["spill"] = bool(out.get("offchip_peak_bytes", 0.0) > 0.0)   # partial sums in DRAM
    out["weight_density"] = np.count_nonzero(wmasks) / wmasks.size if wmasks.size else 0.0
    out["tiling"] = "loop-nest"
    out["bottleneck"] = max(bottlenecks, key=bottlenecks.get)
    out["mapping"] = mapping_text(first_mapping)
    return out


_IN_BOUNDS: dict[tuple, np.ndarray] = {}


def _in_bounds(nest: LoopNest, mapping, fan: int) -> np.ndarray:
    """``(steps,)``: the PEs holding an iteration of the nest at each step (a remainder leaves
    some outside the loop bounds; :func:`accelsim.map.sparse.in_bounds_pes`, cached per nest
    and mapping)."""
    key = (nest, mapping, fan)
    mapped = _IN_BOUNDS.get(key)
    if mapped is None:
        if len(_IN_BOUNDS) > _CACHE_LIMIT:
            _IN_BOUNDS.clear()
        mapped = _IN_BOUNDS[key] = in_bounds_pes(nest, mapping, fan)
    return mapped


@dataclass(frozen=True)
class _LoweredLayer:
    """What the row of a lowered (im2col) batch reads of its layer."""

    name: str
    geometry: object
    output_density: float | None
    input: np.ndarray           # the batch's real input mask (b, C, H, W): what rows report


_SYSTOLIC: dict[tuple, MapResult] = {}


def on_chip_tensors(arch: Arch, ctx: LayerContext | None) -> frozenset:
    """The tensors (W, I, O) the residency context keeps on chip at a level holding them: they
    move nothing between DRAM and the array for this layer."""
    if ctx is None:
        return frozenset()
    return frozenset(t for t, flag in (("W", ctx.weights_resident), ("I", ctx.input_on_chip),
                                       ("O", ctx.output_on_chip))
                     if flag and _holder(arch, t) is not None)


def _systolic_mapped(name: str, nest: LoopNest, arch: Arch, dataflow: str,
                     ctx: LayerContext | None = None, source: tuple | None = None) -> MapResult:
    """SCALE-Sim's mapping of a lowered nest that fits ``arch``, its DRAM traffic judged with
    what ``ctx`` keeps on chip, its input tiles the real input's when ``source`` gives the
    ``(layer geometry, batch)`` it lowers (cached per nest, arch, those tensors and source)."""
    on_chip = on_chip_tensors(arch, ctx)
    key = (nest, arch, dataflow, on_chip, source)
    if key not in _SYSTOLIC:
        if len(_SYSTOLIC) > _CACHE_LIMIT:
            _SYSTOLIC.clear()
        try:
            _SYSTOLIC[key] = systolic_mod.systolic_result(name, nest, arch, dataflow, on_chip,
                                                          source)
        except MappingError as exc:
            raise MappingError(str(exc).replace("layer ''", f"layer {name!r}").replace(
                "fixed mapping:", "systolic mapping:")) from None
    return _SYSTOLIC[key]


#: Batches in flight at once on a thread pool (their results are collected in order).
_WINDOW = 8


def _weight_ratios(wmask: np.ndarray, hw) -> tuple[float, float]:
    """Compressed size over dense of a weight mask on chip and off chip."""
    return (_compressed_ratio(wmask, hw.storage.weights.on_chip, hw.precision.weight_bits),
            _compressed_ratio(wmask, hw.storage.weights.off_chip, hw.precision.weight_bits))


def _batches(layer, samples: int | None, bsz: int):
    """``(first sample, bool (b, C, H, W))`` batches of the layer's activation masks, in order,
    read in blocks of whole batches (:func:`accelsim.sim.engine._act_blocks`)."""
    from accelsim.sim.engine import SAMPLE_BLOCK, _act_blocks

    size = bsz * max(1, -(-SAMPLE_BLOCK // bsz))   # as the systolic engine reads them
    for first, block in _act_blocks(layer, samples, size):
        block = np.asarray(block, dtype=bool)
        for start in range(0, block.shape[0], bsz):
            yield first + start, block[start:start + bsz]


def mapping_text(mapping) -> str:
    """One-line loop nest: ``DRAM[K4 C8] GLB[P2 Q28 | X:K2 Y:R3] spad[K16 S3]``."""
    parts = []
    for lv in mapping.levels:
        temporal = " ".join(f"{l.dim}{l.factor}" for l in lv.temporal if l.factor > 1)
        spatial = " ".join(f"{l.axis}:{l.dim}{l.factor}" for l in lv.spatial if l.factor > 1)
        body = " | ".join(p for p in (temporal, spatial) if p)
        parts.append(f"{lv.level}[{body}]")
    return " ".join(parts)


def _block_size(mapping, fan: int) -> tuple[int, int, int]:
    """(outer steps, PE rows used, PE columns used) of a mapping."""
    steps, ys, xs = 1, 1, 1
    for i, lv in enumerate(mapping.levels):
        if i > fan:
            continue
        for l in lv.temporal:
            steps *= l.factor
        if i == fan:
            for l in lv.spatial:
                if l.axis == "X":
                    xs *= l.factor
                else:
                    ys *= l.factor
    return steps, ys, xs


#: Loop dimensions that do not index the output: spatial loops over them are reductions.
_REDUCTION_DIMS = ("C", "R", "S")


def _reduction_fanin(mapping, arch: Arch, fan: int) -> int:
    """PEs whose partial sums one update of the shared output level sums (a network that
    reduces: the product of the spatial reduction factors at the fan-out; unicast: 1, each PE's
    partial sum is its own update there)."""
    parent = max(i for i in range(fan + 1) if "O" in arch.levels[i].keeps) \
        if any("O" in arch.levels[i].keeps for i in range(fan + 1)) else None
    if parent is None or not arch.levels[parent].multicast:
        return 1
    fanin = 1
    for loop in mapping.levels[fan].spatial:
        if loop.dim in _REDUCTION_DIMS:
            fanin *= int(loop.factor)
    return fanin


def network_bits(c: np.ndarray, arch: Arch, fan: int, mac_reads: np.ndarray,
                 mac_updates: float, reduction_fanin: int) -> float:
    """Bits the array's network carries, by one rule for every design: each operand delivered
    into a PE (the fills of the first per-PE level keeping it, or, for a tensor no per-PE level
    keeps, the MACs' reads straight from the shared level) and each partial sum leaving the PEs
    (drains into the shared output level, one per PE before a reducing network sums them, or
    the MACs' own updates of a shared level). ``c``: counts per level, tensor and action;
    ``mac_reads``: MAC-driven reads per tensor as performed; ``mac_updates``: MAC psum updates."""
    bits = np.asarray(arch.tensor_bits, dtype=np.float64)
    total = 0.0
    for ti, tensor in enumerate("WIO"):
        child = next((i for i in range(fan + 1, len(arch.levels)) if tensor in arch.levels[i].keeps),
                     None)
        if child is not None:
            total += float(c[child, ti, FILLS]) * bits[ti]
            if tensor == "O":
                holders = [i for i in range(fan + 1) if "O" in arch.levels[i].keeps]
                if holders:
                    total += float(c[holders[-1], ti, UPDATES]) * reduction_fanin * bits[ti]
        else:
            total += float(mac_reads[ti]) * bits[ti]
            if tensor == "O":
                total += float(mac_updates) * bits[ti]
    return total


def _tensor_actions(hw, arch: Arch) -> tuple:
    """Per operand (W, I, O): ``(kind, condition_on)`` acting on its MAC-driven accesses at the
    innermost level keeping it, or None: the level's own action, else gate_zero_operands'
    default (weights and psums gated on ``sparsity.gate_on``; inputs, the leader, read)."""
    default = ("gate", tuple(hw.sparsity.gate_on)) if hw.sparsity.gate_zero_operands else None
    out = []
    for t, name in zip("WIO", ("weights", "inputs", "outputs")):
        inner = max(i for i, lv in enumerate(arch.levels) if t in lv.keeps)
        own = None
        if inner > 0:
            own = next(((a.kind, tuple(a.condition_on)) for a in hw.memory_hierarchy[inner - 1].actions
                        if a.target == name), None)
        out.append(own if own is not None else (None if t == "I" else default))
    return tuple(out)


def _dram_drains(drains: float, outputs: int) -> tuple[float, float]:
    """``(final, spilled)`` elements of ``drains`` output drains to DRAM: the last drain of each
    of the batch's ``outputs`` elements is its final value, every earlier one a partial sum."""
    finals = min(drains, float(outputs))
    return finals, drains - finals


def _sample(layer, act, wmask, nest, mapping, counts: AccessCounts, arch: Arch, em, hw, mode,
            w_ratios, ctx: LayerContext, fidelity: str = "fast", stream_w: tuple | None = None,
            systolic: tuple[int, float, np.ndarray | None] | None = None) -> dict:
    """One batch's result row. ``w_ratios``: on- and off-chip weight ratios (a skipped weight
    fetch's fraction included); ``stream_w``: ``(off-chip weight ratio without it, inputs
    needed)`` for the access stream, which cuts the skipped weights at their addresses.
    ``systolic``: ``(fill + drain cycles per fold, DRAM input scale, padding positions of the
    operand matrix or None)`` of a lowered layer (:mod:`accelsim.sim.systolic`): the padding
    positions are given when activation skipping issues them, and are issued as present zeros."""
    overhead, input_scale, pad_mask = systolic or (0, 1.0, None)
    geo = layer.geometry
    fan = arch.fanout_level
    p = hw.precision
    dense_macs = float(counts.macs)
    pads = (geo.pad_h, geo.pad_w)
    # activation skipping issues the slots of padding positions unless sparsity.skip_padding:
    # they are zeros (never effectual, gated by gate_zero_operands) that still take their slot
    pad_issued = (mode in (MODE_ACT, MODE_BOTH) and not hw.sparsity.skip_padding
                  and (geo.pad_h > 0 or geo.pad_w > 0 or pad_mask is not None))
    # a lowered layer's padding is inside its operand matrix: issued slots see it as present
    present = act if pad_mask is None else act | pad_mask
    outer, ys, xs = _block_size(mapping, fan)
    block = counts.macs // max(outer * ys * xs, 1)
    lp = hw.low_power
    schedule = (arch.lanes, overhead, sch.SYNC_CODES[hw.pe_array.sync],
                max(1, int(hw.pe_array.work_queue_depth)), lp.power_gating,
                max(1, lp.min_idle_cycles, lp.wakeup_cycles))
    remainder = any(mapping.factor_product(d) != nest.bound(d) for d in DIMS)
    work = None
    if mode == MODE_DENSE and not remainder:   # every PE the same work each step (closed form)
        stats = sch.uniform_fold_stats(outer, ys, xs, block, arch.rows, arch.cols, *schedule)
    else:
        # the mean busy PE of a step is over the PEs inside the loop bounds
        mean_pes = (_in_bounds(nest, mapping, fan) if remainder
                    else None)
        if fidelity == "cycle":     # the cycle-level run reads the work array
            work = step_work(nest, mapping, fan, present, wmask, pads, mode, pad_issued=pad_issued)
            stats = sch.fold_schedule_over(sch.as_work(work), arch.rows, arch.cols, *schedule,
                                           np.empty(0, dtype=np.int64) if mean_pes is None
                                           else mean_pes)
        else:
            stats = step_stats(nest, mapping, fan, present, wmask, pads, mode,
                               (arch.rows, arch.cols, *schedule), mean_pes,
                               pad_issued=pad_issued)
    issued = float(stats[sch.ST_ISSUED])
    gating = hw.sparsity.gate_zero_operands
    if mode == MODE_BOTH and not pad_issued:   # every issued slot has both operands non-zero
        effectual = issued
    else:     # the pairs with both operands non-zero, whatever the design issues
        effectual = float(effectual_pairs(nest, act, wmask, pads))
    actions = _tensor_actions(hw, arch)
    if gating or any(a is not None for a in actions):
        pad_slots = (0.0 if pad_mask is None else
                     float(effectual_pairs(nest, pad_mask, wmask, pads)))
        live = live_slots(nest, act, wmask, pads, mode, pad_issued, issued, effectual, pad_slots)
    else:
        live = LiveSlots(issued, issued, issued, effectual)
    compute = float(stats[sch.ST_CYCLES])

    # accesses: dense counts, scaled by compressed sizes and by skipped / gated MAC slots
    a_mask = act
    a_on = _compressed_ratio(a_mask, hw.storage.activations.on_chip, p.activation_bits, True)
    # the layer's input as it is, not a lowered layer's operand matrix (which repeats elements
    # and holds padding): what DRAM stores and what rows report
    real_input = getattr(layer, "input", None)
    real_input = a_mask if real_input is None else np.asarray(real_input, dtype=bool)
    a_off = (1.0 if ctx.network_input and hw.storage.raw_network_input else
             _compressed_ratio(real_input, hw.storage.activations.off_chip, p.activation_bits,
                               True))
    out_density = written_density(layer, ctx)
    o_elems = geo.K * geo.P * geo.Q * act.shape[0]
    o_shape = (geo.K, geo.P, geo.Q)
    o_on = storage.expected_tensor_bits(o_shape, act.shape[0], out_density, hw.storage.outputs.on_chip,
                                        p.activation_bits) / (o_elems * p.activation_bits)
    o_off = storage.expected_tensor_bits(o_shape, act.shape[0], out_density,
                                         hw.storage.outputs.off_chip,
                                         p.activation_bits) / (o_elems * p.activation_bits)
    issue_frac = issued / dense_macs if dense_macs else 0.0
    # per operand (W, I, psum): the fraction of dense slots whose MAC-driven access at its
    # innermost level happens in full, is gated, or is skipped (its level's action, else
    # gate_zero_operands' default: weight read and psum gated on sparsity.gate_on; the input,
    # the leader, read in full)
    full, gated, skipped = np.full(3, issue_frac), np.zeros(3), np.zeros(3)
    for ti, action in enumerate(actions):
        if action is None or not dense_macs:
            continue
        kind, condition = action
        full[ti] = live.live(condition) / dense_macs
        (gated if kind == "gate" else skipped)[ti] = issue_frac - full[ti]
    if pad_mask is not None and dense_macs and actions[1] is None:
        # a lowered layer's issued padding slots read no input: the zero is made in the array
        pad_read = float(effectual_pairs(nest, pad_mask, wmask if mode == MODE_BOTH
                                         else np.ones_like(wmask), pads)) / dense_macs
        full[1] = max(0.0, full[1] - pad_read)
        skipped[1] += min(pad_read, issue_frac)
    bits = np.asarray(arch.tensor_bits, dtype=np.float64)
    inner = [max(i for i, lv in enumerate(arch.levels) if t in lv.keeps) for t in "WIO"]
    mac_reads = counts.macs_reads
    # MAC-driven accesses at each operand's innermost level, taken apart from the rest
    mac_part = np.zeros_like(counts.counts)
    for ti in range(3):
        mac_part[inner[ti], ti, READS] = mac_reads[ti]
    mac_part[inner[2], 2, UPDATES] = counts.counts[inner[2], 2, UPDATES]
    # MAC-driven accesses done in full and gated (W read, I read, O read, O update): the dense
    # counts at the slot fractions, exact where an access serves one slot; with an action, each
    # access counted from the slots it serves (accelsim.sim.mac_gating: a shared access is
    # gated only when every issued slot it serves is, an element's first update reads no psum)
    dense_acc = np.append(mac_reads, mac_part[inner[2], 2, UPDATES])
    done, done_gated = dense_acc * full[[0, 1, 2, 2]], dense_acc * gated[[0, 1, 2, 2]]
    if dense_macs and (mode != MODE_DENSE or any(a is not None for a in actions)):
        acc = mac_gating.mac_accesses(nest, mapping, arch, act, wmask, pads, mode, pad_issued,
                                      actions, (dense_macs, issued, full * dense_macs,
                                                gated * dense_macs, float(mac_reads[2])), pad_mask)
        counted = ~np.isnan(acc.full)
        done[counted], done_gated[counted] = acc.full[counted], acc.gated[counted]
    c = counts.counts - mac_part
    c[0] *= np.array([w_ratios[1], a_off * input_scale, o_off])[:, None]
    if input_scale != 1.0:   # a lowered layer's input reaches its first on-chip level un-lowered
        first = next((i for i in range(1, len(arch.levels)) if "I" in arch.levels[i].keeps), None)
        if first is not None:
            c[first, 1, FILLS] *= input_scale
    meta = np.zeros_like(c)      # metadata moved at levels that keep it in their own storage
    for i in range(1, len(arch.levels)):    # on chip: each level's own format of W and I
        spec = hw.memory_hierarchy[i - 1]
        w_r = (_compressed_ratio(wmask, spec.formats["weights"], p.weight_bits)
               if "weights" in spec.formats else w_ratios[0])
        a_r = (_compressed_ratio(a_mask, spec.formats["inputs"], p.activation_bits, True)
               if "inputs" in spec.formats else a_on)
        if arch.levels[i].metadata is not None:
            w_m = _metadata_ratio(wmask, spec.formats.get("weights", hw.storage.weights.on_chip),
                                  p.weight_bits)
            a_m = _metadata_ratio(a_mask, spec.formats.get("inputs", hw.storage.activations.on_chip),
                                  p.activation_bits, True)
            meta[i] = c[i] * np.array([w_m, a_m, 0.0])[:, None]
            w_r, a_r = w_r - w_m, a_r - a_m
        c[i] *= np.array([w_r, a_r, 1.0])[:, None]
    # actions at outer levels (accelsim.sim.tile_conditions): a level's reads of the tensor and
    # its child's fills move the live fraction of their volume (data and metadata); the rest
    # is skipped (free) or gated (at the level's gated energy, no port time)
    gated_bits = np.zeros(len(arch.levels))
    for oa in tile_conditions.outer_actions(hw, arch):
        ti = "WIO".index(oa.tensor)
        moved = tile_conditions.transfer_live(nest, mapping, oa.level, oa.child, oa.tensor,
                                              oa.condition, act, wmask, pads,
                                              True,    # padding is zero data for a condition
                                              oa.level not in arch.unicast)
        for lvl, action, frac in ((oa.level, READS, moved.read_live),
                                  (oa.child, FILLS, moved.fill_live)):
            if oa.kind == "gate":
                gated_bits[lvl] += c[lvl, ti, action] * (1.0 - frac) * bits[ti]
            c[lvl, ti, action] *= frac
            meta[lvl, ti, action] *= frac
    # the leader (activations) is read for every issued slot; the follower (weights), the
    # psum read and update happen in full for effectual slots and gated for the others
    for ti in range(3):
        c[inner[ti], ti, READS] += done[ti]
        gated_bits[inner[ti]] += done_gated[ti] * bits[ti]
    c[inner[2], 2, UPDATES] += done[3]
    gated_bits[inner[2]] += done_gated[3] * bits[2]
    # DRAM's outputs: each element's final value written once, at activation width in the
    # outputs' off-chip format; partial sums that leave the chip before their reduction ends
    # are written and read back dense at accumulator width (bits[2])
    finals, spills = _dram_drains(float(counts.counts[0, 2, UPDATES]), o_elems)
    c[0, 2, READS] = counts.counts[0, 2, READS]
    c[0, 2, UPDATES] = spills + finals * o_off * p.activation_bits / bits[2]
    # network-level memory: tensors already on chip move nothing between DRAM and their holder
    # (an output kept on chip still spills the partial sums its mapping sends to DRAM)
    for tensor, on_chip, action in (("W", ctx.weights_resident, READS), ("I", ctx.input_on_chip, READS),
                                    ("O", ctx.output_on_chip, UPDATES)):
        holder = _holder(arch, tensor)
        if on_chip and holder is not None:
            ti = "WIO".index(tensor)
            c[0, ti, action] = spills if tensor == "O" else 0.0
            if tensor != "O":
                c[holder, ti, FILLS] = 0.0
                meta[holder, ti, FILLS] = 0.0
    reads = (c[:, :, READS] * bits).sum(axis=1)
    writes = ((c[:, :, FILLS] + c[:, :, UPDATES]) * bits).sum(axis=1)
    energy = {k: 0.0 for k in COMPONENTS}
    times = []
    meta_times: list[tuple[str, float]] = []
    for i, lv in enumerate(arch.levels):
        e = reads[i] * lv.read_pj_per_bit + writes[i] * lv.write_pj_per_bit
        e += gated_bits[i] * (lv.gated_pj_per_bit if lv.gated_pj_per_bit is not None
                              else lv.read_pj_per_bit * arch.gated_fraction)
        if lv.metadata is not None:   # its own storage: own energy and port
            m_read = float((meta[i, :, READS] * bits).sum())
            m_write = float(((meta[i, :, FILLS] + meta[i, :, UPDATES]) * bits).sum())
            e += m_read * lv.metadata[0] + m_write * lv.metadata[1]
            port = lv.metadata[2]
            m_time = ((m_read + m_write) / max(int(counts.instances[i]), 1) / port) if port else 0.0
            meta_times.append((f"{lv.name}_metadata", m_time))
        energy["dram" if i == 0 else "spad" if lv.per_pe else "glb"] += e
        times.append(level_time(reads[i], writes[i], lv, counts.instances[i],
                                arch.dram_bytes_per_cycle, i == 0))
    dram_row = None
    if hw.dram.device is not None and hw.dram.access_stream:   # the nest's stream through the DRAM model
        w_stream = w_ratios[1] if stream_w is None else stream_w[0]
        times[0], stream_energy, dram_row = dram_stream.layer_dram(
            layer, nest, mapping, arch, hw, ctx, (w_stream, a_off, o_off), masks=(wmask, act),
            needed_inputs=None if stream_w is None else stream_w[1])
        if "dram_pj_per_bit" not in hw.technology.energy_overrides:   # a stated price wins
            energy["dram"] = stream_energy
    delivered = network_bits(c, arch, fan, done[:3], done[3],
                             _reduction_fanin(mapping, arch, fan))
    energy["noc"] = delivered * em.noc_pj_per_bit_hop
    pipeline_bits = 0.0
    if systolic is not None:   # the array's network is the chain between neighbouring PEs
        df = hw.pe_array.dataflow
        st = "WIO".index(systolic_mod.ROLES[df][3])
        keeper = max(i for i, lv in enumerate(arch.levels) if "WIO"[st] in lv.keeps)
        moves = c[fan, st, UPDATES] if df == "output_stationary" else c[keeper, st, FILLS]
        stationary_bits = p.activation_bits if st != 0 else p.weight_bits
        delivered = systolic_mod.chain_bit_hops(df, issued, float(moves), stationary_bits,
                                                arch.rows, p.activation_bits, p.weight_bits,
                                                p.accumulator_bits)
        energy["noc"] = em.noc_pj_per_bit_hop * delivered
        # each passed operand is written into and read from the receiving PE's pipeline register
        pipeline_bits = 2.0 * issued * systolic_mod.passed_bits_per_slot(
            df, p.activation_bits, p.weight_bits, p.accumulator_bits)
        energy["spad"] += pipeline_bits * em.spad_pj_per_bit
    macs_gated = issued - live.live(hw.sparsity.gate_on) if gating else 0.0
    energy["mac"] = (issued - macs_gated) * em.mac_pj + macs_gated * em.gated_mac_pj
    cycles = max([compute] + times + [t for _, t in meta_times])
    names = ["compute"] + [lv.name for lv in arch.levels] + [n for n, _ in meta_times]
    bottleneck = names[int(np.argmax([compute] + times + [t for _, t in meta_times]))]
    pes = arch.rows * arch.cols
    powered = max(pes * cycles - stats[sch.ST_GATED_PE_CYCLES], 0.0)
    clocked = min(stats[sch.ST_ACTIVE_PE_CYCLES], powered) if lp.clock_gating else powered
    energy["leakage"] = (powered * em.pe_leakage_pj_per_cycle + cycles * em.glb_leakage_pj_per_cycle
                         + stats[sch.ST_WAKEUPS] * em.wakeup_energy_pj)
    energy["clock"] = clocked * em.pe_clock_pj_per_cycle
    dram_read = float(reads[0]) / 8.0
    dram_write = float(writes[0]) / 8.0
    w_dram = wmask.size * p.weight_bits * w_ratios[1] / 8.0
    i_dram = a_mask.size * input_scale * p.activation_bits * a_off / 8.0
    o_dram = o_elems * p.activation_bits * o_off / 8.0
    compulsory = ((0.0 if ctx.weights_resident else min(w_dram, c[0, 0, READS] * bits[0] / 8.0))
                  + (min(i_dram, c[0, 1, READS] * bits[1] / 8.0) if ctx.network_input else 0.0)
                  + (min(o_dram, c[0, 2, UPDATES] * bits[2] / 8.0) if ctx.network_output else 0.0))
    onchip = sum(float((counts.footprint[i] * bits).sum()) * counts.instances[i]
                 for i in range(1, len(arch.levels))) / 8.0
    # partial sums that leave the chip before their reduction ends wait in DRAM: at most every
    # output element of the batch at accumulator width
    spilled = o_elems * p.accumulator_bits / 8.0 if c[0, 2, READS] > 0 else 0.0
    sum_mean = stats[sch.ST_SUM_MEAN_BUSY]
    real_on = (a_on if real_input is a_mask else
               _compressed_ratio(real_input, hw.storage.activations.on_chip, p.activation_bits,
                                 True))
    port_times = times[1:] + [t for _, t in meta_times]   # on-chip ports, metadata's included
    row = {
        "cycles": cycles,
        "compute_cycles": compute,
        "stall_cycles": cycles - compute,
        "glb_stall_cycles": max(0.0, max([0.0] + port_times) - compute),
        "dram_stall_cycles": max(0.0, cycles - max([compute] + port_times)),
        "fill_drain_cycles": float(stats[sch.ST_FILL_DRAIN]),
        "folds": stats[sch.ST_FOLDS],
        "stream_chunks": 1.0,
        "utilization": issued / (pes * arch.lanes * cycles) if cycles > 0 else 0.0,
        "load_imbalance": stats[sch.ST_SUM_MAX_BUSY] / sum_mean if sum_mean > 0 else 1.0,
        "busy_max_sum": stats[sch.ST_SUM_MAX_BUSY],
        "busy_mean_sum": sum_mean,
        "macs_dense": dense_macs,
        "macs_issued": issued,
        "macs_skipped": dense_macs - issued,
        "macs_gated": macs_gated,
        "macs_effectual": effectual,
    }
    for name in COMPONENTS:
        row[f"energy_{name}_pj"] = energy[name]
    row["energy_pj"] = sum(energy.values())
    row.update({
        "spad_bits": float(sum(reads[i] + writes[i] for i, lv in enumerate(arch.levels) if lv.per_pe))
                     + pipeline_bits,
        "glb_bits": float(sum(reads[i] + writes[i] for i, lv in enumerate(arch.levels)
                              if i > 0 and not lv.per_pe)),
        "noc_bit_hops": delivered,
        "dram_read_bytes": dram_read,
        "dram_write_bytes": dram_write,
        "dram_bytes": dram_read + dram_write,
        "dram_weight_read_bytes": float(c[0, 0, READS] * bits[0]) / 8.0,
        "dram_act_read_bytes": float(c[0, 1, READS] * bits[1]) / 8.0,
        "dram_compulsory_bytes": compulsory,
        "dram_capacity_bytes": dram_read + dram_write - compulsory,
        "psum_spill_bytes": float(c[0, 2, READS] * bits[2]) / 8.0,
        "act_bytes": real_input.size * p.activation_bits * real_on / 8.0,
        "weight_bytes": wmask.size * p.weight_bits * w_ratios[0] / 8.0,
        "output_bytes": o_elems * p.activation_bits * o_on / 8.0,
        "act_density": np.count_nonzero(real_input) / real_input.size if real_input.size else 0.0,
        "live_bytes": onchip + spilled,
        "onchip_peak_bytes": onchip,
        "offchip_peak_bytes": spilled,
        "gated_pe_cycles": stats[sch.ST_GATED_PE_CYCLES],
        "wakeups": stats[sch.ST_WAKEUPS],
    })
    for i, lv in enumerate(arch.levels):
        row[f"level_{lv.name}_read_bits"] = float(reads[i])
        row[f"level_{lv.name}_write_bits"] = float(writes[i])
        row[f"level_{lv.name}_cycles"] = float(times[i])
    if dram_row is not None:
        row.update(dram_row)
    if fidelity == "cycle":   # the mapped nest run cycle by cycle (accelsim.sim.cycle_mapped)
        from accelsim.sim import cycle_mapped

        cycle_mapped.apply(row, energy, work=work, uniform=(outer, ys, xs, block), mapping=mapping,
                           arch=arch, c=c, times=times, meta_times=meta_times, reads=reads,
                           writes=writes, instances=counts.instances, stats=stats, hw=hw, em=em,
                           overhead=overhead)
    row["_bottleneck"] = bottleneck
    return row
