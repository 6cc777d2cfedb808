"""Simulate layers: lower -> count work -> schedule folds -> memory -> energy.

Each captured sample is simulated on its own (a layer starts from an empty buffer,
as in SCALE-Sim); a layer's row reports the mean over samples, i.e. figures per
inference. See ``docs/simulator.md`` for the model.
"""
from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from accelsim.errors import AccelsimError, ConfigError, MappingError, TraceError
from accelsim.sim import energy as energy_mod
from accelsim.sim import fetch
from accelsim.sim import storage
from accelsim.sim.kernels import cycle as cyk
from accelsim.sim.kernels import schedule as sch
from accelsim.sim.kernels.packed import pad_columns
from accelsim.sim.lower import Gemm, PackedWeights, gemm_of, lower_weights, pack_acts
from accelsim.sim.memo import memoised, seen
from accelsim.sim.map import DATAFLOW_CODES, SCALESIM_LAYER_OFFSET, Mapping, map_gemm
from accelsim.sim.memory import per_inference, plan_memory, total_cycles
from accelsim.hw.schema import LevelFormat
from accelsim.sim.design import resolve
from accelsim.sim.residency import LayerContext, written_density
from accelsim.sim.traffic import (GatedPairs, array_operand_bits, gated_pairs, layer_traffic,
                                   operand_bits, spad_bits)
from accelsim.sim.work import packed_counts, weight_counts, work_matrix

RAW = LevelFormat()   # dense: the network's input as the host writes it

FIDELITIES = ("fast", "cycle")
SYNC_CODES = sch.SYNC_CODES


@dataclass(frozen=True)
class HwParams:
    """What the simulator reads from a :class:`~accelsim.hw.HardwareConfig`, resolved once."""

    hw: object
    em: object
    rows: int
    cols: int
    lanes: int
    dataflow: str
    sync: int
    depth: int
    qdepth: int               # <= 0: unbounded
    glb_bits_per_cycle: float  # <= 0: unbounded
    glb_bytes: float
    dram_bytes_per_cycle: float | None
    a_bits: int
    w_bits: int
    acc_bits: int
    skip_a: bool
    skip_w: bool
    pad_issued: bool          # activation skipping issues padding slots (not skip_padding)
    gate: bool
    power_gating: bool
    gate_threshold: int
    clock_gating: bool

    @classmethod
    def of(cls, hw) -> "HwParams":
        """The parameters of a design (a :class:`~accelsim.sim.design.Design` or a
        :class:`~accelsim.hw.HardwareConfig`, resolved once)."""
        d = resolve(hw)
        hw = d.hw
        pe, lp = hw.pe_array, hw.low_power
        if pe.dataflow not in DATAFLOW_CODES and hw.memory_hierarchy is None:
            raise ConfigError(hw.name, "pe_array.dataflow",
                              f"the simulator models {', '.join(DATAFLOW_CODES)}; got "
                              f"{pe.dataflow!r}")
        if pe.sync not in SYNC_CODES:
            raise ConfigError(hw.name, "pe_array.sync",
                              f"the simulator models {', '.join(SYNC_CODES)}; got {pe.sync!r}")
        words, word_bits = d.shared_port
        return cls(
            hw=hw, em=d.energy, rows=pe.rows, cols=pe.cols, lanes=pe.macs_per_pe,
            dataflow=pe.dataflow, sync=SYNC_CODES[pe.sync], depth=max(1, int(pe.work_queue_depth)),
            qdepth=int(pe.operand_queue_depth or 0),
            glb_bits_per_cycle=float(words * word_bits) if words else 0.0,
            glb_bytes=d.shared_bytes,
            dram_bytes_per_cycle=d.dram_bytes_per_cycle,
            a_bits=hw.precision.activation_bits, w_bits=hw.precision.weight_bits,
            acc_bits=hw.precision.accumulator_bits,
            skip_a=hw.sparsity.skip_zero_activations, skip_w=hw.sparsity.skip_zero_weights,
            pad_issued=hw.sparsity.skip_zero_activations and not hw.sparsity.skip_padding,
            gate=hw.sparsity.gate_zero_operands, power_gating=lp.power_gating,
            gate_threshold=max(1, lp.min_idle_cycles, lp.wakeup_cycles),
            clock_gating=lp.clock_gating)

    @property
    def pes(self) -> int:
        return self.rows * self.cols


def check_layer(layer, p: HwParams) -> None:
    """Raise :class:`MappingError` when ``layer`` cannot run on the hardware."""
    hw = p.hw
    if layer.act_bits > p.a_bits or layer.weight_bits > p.w_bits:
        raise MappingError(
            f"layer {layer.name!r}: the trace has {layer.act_bits}-bit activations and "
            f"{layer.weight_bits}-bit weights but hardware {hw.name!r} has "
            f"precision.activation_bits={p.a_bits} and precision.weight_bits={p.w_bits}; "
            "use hardware with at least the trace's precision (or capture at lower precision)")
    spad = hw.scratchpad
    needs = (("input_bytes", spad.input_bytes, p.lanes * p.a_bits, "activation"),
             ("weight_bytes", spad.weight_bytes, p.lanes * p.w_bits, "weight"),
             ("psum_bytes", spad.psum_bytes, p.acc_bits, "partial sum"))
    for field, have, need_bits, what in needs:
        if have * 8 < need_bits:
            raise MappingError(
                f"layer {layer.name!r} cannot be mapped on {hw.name!r}: scratchpad.{field} is "
                f"{have} bytes but each PE must hold at least {math.ceil(need_bits / 8)} bytes "
                f"({what} operands of one cycle)")


def _element_costs(mask: np.ndarray, fmt, value_bits: int,
                   nnz: int | None = None) -> tuple[float, float, float]:
    """(tensor bits, bits per zero element, bits per non-zero element) moved by the buffer port.

    Dense storage moves every element at full width; a compressed format moves only
    the non-zeros, each carrying its share of the format's metadata. ``nnz``: the mask's
    non-zeros when already counted.
    """
    if fmt.format in storage.COUNT_FORMATS:
        if nnz is None:
            nnz = int(np.count_nonzero(mask))
        bits = float(storage.count_bits(mask.shape, nnz, fmt.format, value_bits, fmt.index_bits))
    else:
        bits = float(storage.tensor_bits(mask, fmt, value_bits))
    if fmt.format == "dense":
        return bits, float(value_bits), float(value_bits)
    if nnz is None:
        nnz = int(np.count_nonzero(mask))
    return bits, 0.0, (bits / nnz if nnz else 0.0)


def _simulate_sample(layer, act: np.ndarray, weights: tuple, weight_bits_total: float,
                     w_cost: np.ndarray, gemm: Gemm, m: Mapping, p: HwParams,
                     fidelity: str, sample_key: tuple, weight_dram_bits: float,
                     ctx: LayerContext, batch_plan: tuple[Gemm, Mapping, float],
                     pad_col: np.ndarray, layer_work: dict | None = None) -> dict:
    """One sample's result row. ``layer_work``: a dict shared by the layer's samples that keeps
    the work matrix and fold statistics when they do not depend on the sample (no zero
    activations skipped and one weight mask: the same for every sample, computed once)."""
    hw = p.hw
    wcodes, wcounts = weights   # PackedWeights, (row_w, col_w): lowered once per layer
    # Mask-only work is memoised per layer object and sample (see accelsim.sim.memo).
    acodes, counts = memoised(layer, ("lowered",) + sample_key,
                              lambda: _lowered(act, wcodes, wcounts, layer, pad_col))
    act_nnz = memoised(layer, ("act_nnz",) + sample_key, lambda: int(np.count_nonzero(act)))
    act_bits_total, a_zero, a_nz = memoised(
        layer, ("act_cost", hw.storage.activations.on_chip, p.a_bits) + sample_key,
        lambda: _element_costs(act, hw.storage.activations.on_chip, p.a_bits, act_nnz))
    a_cost = np.array([a_zero, a_nz, 0.0])
    geo = layer.geometry
    out_density = written_density(layer, ctx)
    out_fmt, out_dram_fmt = hw.storage.outputs, hw.storage.outputs.off_chip
    out_bits_total = storage.expected_tensor_bits((geo.K, geo.P, geo.Q), 1, out_density,
                                                  out_fmt, p.a_bits, flat=False)
    out_dram_bits = storage.expected_tensor_bits((geo.K, geo.P, geo.Q), 1, out_density,
                                                 out_dram_fmt, p.a_bits, flat=False)
    act_dram_fmt = (RAW if ctx.network_input and hw.storage.raw_network_input
                    else hw.storage.activations.off_chip)
    act_dram_bits = memoised(
        layer, ("act_cost", act_dram_fmt, p.a_bits) + sample_key,
        lambda: _element_costs(act, act_dram_fmt, p.a_bits, act_nnz))[0]
    # what survives skipping: with padding issued (sparsity.skip_padding false) a padding
    # position is a present activation; effectual pairs, gating and port bits stay the real ones
    pad_issued = p.pad_issued and bool(pad_col.any())
    if pad_issued:
        issue_acts, issue_counts = memoised(
            layer, ("padding_issued",) + sample_key,
            lambda: _padding_issued(acodes, wcodes, wcounts))
    else:
        issue_acts, issue_counts = acodes, counts
    shared = layer_work if (not p.skip_a and not geo.per_sample_weights) else None
    if shared is not None and "stats" in shared:   # the same work as the layer's first sample
        work, stats = shared["work"], shared["stats"]
    else:
        if m.dataflow == "output_stationary" and p.skip_a and p.skip_w and m.chunks == 1:
            # the AND + popcount matrix depends on the masks only
            work = memoised(layer, ("os_work", pad_issued) + sample_key,
                            lambda: work_matrix(issue_acts, wcodes, issue_counts, m, p.skip_a,
                                                p.skip_w))
        else:
            work = work_matrix(issue_acts, wcodes, issue_counts, m, p.skip_a, p.skip_w)
        stats = sch.fold_schedule(sch.as_work(work), p.rows, p.cols, p.lanes, m.overhead, p.sync,
                                  p.depth, p.power_gating, p.gate_threshold)
        if shared is not None:
            shared.update(work=work, stats=stats)
    compute = stats[sch.ST_CYCLES] + SCALESIM_LAYER_OFFSET
    # the port's bits: the real operands' costs (padding free), followers read for issued pairs
    act_port, weight_port = operand_bits(issue_acts, wcodes, counts, m, p.skip_a, p.skip_w,
                                         a_cost, w_cost)
    issued = float(stats[sch.ST_ISSUED])
    tr = layer_traffic(gemm, m, act_port, weight_port, p.a_bits, p.w_bits, p.acc_bits,
                       stats[sch.ST_MAPPED_PE_FOLDS], issued=issued,
                       array_bits=array_operand_bits(counts, m, p.skip_a, p.skip_w, a_cost, w_cost,
                                                     (act_port, weight_port)))
    array_bits = tr.array_bits
    extra: dict = {}
    if fidelity == "fast":
        glb_time = (math.ceil(array_bits / p.glb_bits_per_cycle - 1e-9)
                    if p.glb_bits_per_cycle > 0 else 0)
        onchip = max(compute, float(glb_time))
    else:
        # one array type per argument (one compiled specialisation); padding issued: the
        # kernel's receivers and followers count padding as present
        codes = ("C", "W", "A")
        cy = cyk.cycle_simulate(np.require(acodes.codes(), np.uint8, codes),
                                np.require(wcodes.codes, np.uint8, codes), sch.as_work(work),
                                m.code, m.chunk_steps, bool(p.skip_a), bool(p.skip_w),
                                p.rows, p.cols, p.lanes, m.fill, m.drain, p.sync, p.depth,
                                p.qdepth, float(p.glb_bits_per_cycle), a_cost, w_cost,
                                float(p.acc_bits), float(p.a_bits), bool(pad_issued))
        onchip = cy[cyk.CY_CYCLES] + SCALESIM_LAYER_OFFSET
        extra = {"starved_pe_cycles": cy[cyk.CY_STARVED],
                 "output_stall_cycles": cy[cyk.CY_WRITE_STALL],
                 "port_blocked_cycles": cy[cyk.CY_BLOCKED]}
    act_bytes = storage.bits_to_bytes(act_bits_total)
    weight_bytes = storage.bits_to_bytes(weight_bits_total)
    out_bytes = storage.bits_to_bytes(out_bits_total)
    # network-level memory (accelsim.sim.residency): the batch shares one weight pass; what is
    # already on chip (resident weights, the previous layer's output) moves nothing off chip
    bsz = ctx.batch
    gemm_b, m_b, glb_avail = batch_plan
    elements = (int(act.size) * bsz, int(wcodes.codes.size), geo.K * geo.P * geo.Q * bsz)
    act_d = storage.bits_to_bytes(act_dram_bits)
    weight_d = storage.bits_to_bytes(weight_dram_bits)
    out_d = storage.bits_to_bytes(out_dram_bits)
    dram_sizes = (0.0 if ctx.input_on_chip else act_d * bsz,
                  0.0 if ctx.weights_resident else weight_d,
                  0.0 if ctx.output_on_chip else out_d * bsz)
    plan_b = plan_memory(gemm_b, m_b, act_bytes * bsz, weight_bytes, out_bytes * bsz, elements,
                         glb_avail, p.acc_bits, layer.name, dram_sizes=dram_sizes)
    plan = per_inference(plan_b, bsz)
    cycles = total_cycles(onchip * bsz, plan_b, p.dram_bytes_per_cycle) / bsz
    compulsory = ((act_d if ctx.network_input and not ctx.input_on_chip else 0.0)
                  + (out_d if ctx.network_output and not ctx.output_on_chip else 0.0)
                  + (0.0 if ctx.weights_resident else weight_d / bsz))
    compulsory = min(compulsory, plan.dram_bytes)
    a_pass, w_pass = (plan_b.passes, 1) if plan_b.schedule == "weights_resident" else (1, plan_b.passes)
    weight_reads = w_pass * dram_sizes[1] / bsz
    act_reads = a_pass * dram_sizes[0] / bsz

    effectual = float(counts.effectual)
    gated = issued - effectual if p.gate else 0.0
    # gating: the read that finds the zero is full, what it conditions is gated (traffic.py)
    spad_full, spad_gated = spad_bits(tr, issued, _gated_pairs(
        counts, pad_col, acodes.shape[1], wcodes.shape[1], p.skip_a, p.skip_w, pad_issued)
        if p.gate else None)
    glb_bits = array_bits + 8.0 * plan.fill_bytes
    activity = energy_mod.Activity(
        macs_full=issued - gated, macs_gated=gated,
        spad_bits_full=spad_full, spad_bits_gated=spad_gated,
        glb_bits=glb_bits, noc_bit_hops=tr.noc_bit_hops, dram_bytes=plan.dram_bytes,
        cycles=cycles, pes=p.pes, gated_pe_cycles=stats[sch.ST_GATED_PE_CYCLES],
        active_pe_cycles=stats[sch.ST_ACTIVE_PE_CYCLES], wakeups=stats[sch.ST_WAKEUPS])
    energy = energy_mod.layer_energy(activity, p.em, p.clock_gating)

    sum_mean = stats[sch.ST_SUM_MEAN_BUSY]
    act_elements = float(act.size)
    row = {
        "cycles": cycles,
        "compute_cycles": compute,
        "stall_cycles": cycles - compute,
        "glb_stall_cycles": onchip - compute,
        "dram_stall_cycles": cycles - onchip,
        "fill_drain_cycles": stats[sch.ST_FILL_DRAIN] + SCALESIM_LAYER_OFFSET,
        "folds": stats[sch.ST_FOLDS],
        "stream_chunks": float(m.chunks),
        "utilization": issued / (p.pes * p.lanes * cycles) if cycles > 0 else 0.0,
        "load_imbalance": stats[sch.ST_SUM_MAX_BUSY] / sum_mean if sum_mean > 0 else 1.0,
        "busy_max_sum": stats[sch.ST_SUM_MAX_BUSY],
        "busy_mean_sum": sum_mean,
        "macs_dense": float(gemm.macs),
        "macs_issued": issued,
        "macs_skipped": float(gemm.macs) - issued,
        "macs_gated": gated,
        "macs_effectual": effectual,
    }
    for name in energy_mod.COMPONENTS:
        row[f"energy_{name}_pj"] = energy[name]
    row["energy_pj"] = sum(energy.values())
    row.update({
        "spad_bits": activity.spad_bits_full + activity.spad_bits_gated,
        "glb_bits": glb_bits,
        "glb_act_bits": tr.glb_act_bits,
        "glb_weight_bits": tr.glb_weight_bits,
        "glb_psum_bits": tr.glb_psum_bits,
        "glb_out_bits": tr.glb_out_bits,
        "noc_bit_hops": tr.noc_bit_hops,
        "dram_read_bytes": plan.dram_read_bytes,
        "dram_write_bytes": plan.dram_write_bytes,
        "dram_bytes": plan.dram_bytes,
        "dram_weight_read_bytes": weight_reads,
        "dram_act_read_bytes": act_reads,
        "dram_compulsory_bytes": compulsory,
        "dram_capacity_bytes": plan.dram_bytes - compulsory,
        "psum_spill_bytes": plan.psum_spill_bytes,
        "dram_passes": float(plan.passes),
        "act_bytes": act_bytes,
        "weight_bytes": weight_bytes,
        "output_bytes": out_bytes,
        "act_density": act_nnz / act_elements if act_elements else 0.0,
        "live_bytes": plan.live_bytes,
        "onchip_peak_bytes": plan.onchip_bytes,
        "offchip_peak_bytes": plan.offchip_bytes,
        "gated_pe_cycles": activity.gated_pe_cycles,
        "wakeups": activity.wakeups,
    })
    row.update(extra)
    row["_schedule"] = plan.schedule
    return row


def _lowered(act: np.ndarray, weights: PackedWeights, wcounts: tuple, layer,
             pad_col: np.ndarray) -> tuple:
    """One sample's activations lowered straight to packed words, and the operand counts."""
    acts = pack_acts(act, layer.geometry, pad_col)
    return acts, packed_counts(acts, weights.codes, wcounts)


def _padding_issued(acts, weights: PackedWeights, wcounts: tuple) -> tuple:
    """(activations with padding present, their counts): what survives activation skipping
    when padding is issued (:meth:`~accelsim.sim.lower.PackedActs.with_padding_issued`)."""
    view = acts.with_padding_issued()
    return view, packed_counts(view, weights.codes, wcounts)


def _gated_pairs(counts, pad_col: np.ndarray, m_dim: int, n_dim: int, skip_a: bool,
                 skip_w: bool, pad_issued: bool) -> GatedPairs:
    """:func:`~accelsim.sim.traffic.gated_pairs`, with the issued padding pairs when activation
    skipping issues padding: a padding position is a zero operand, so its pairs are gated
    (``issued - effectual`` in all). Both skips: the PE checks the activation (padding) first,
    so the weight read is gated too; activation skipping alone: it checks the weight first
    (as for the other issued pairs), so a padding pair with a zero weight is gated at the
    weight, one with a non-zero weight at the partial-sum update only."""
    if not (pad_issued and skip_a):
        return gated_pairs(counts, m_dim, n_dim, skip_a, skip_w)
    pad = pad_col.astype(np.float64)[None, :]
    a_nz = counts.col_a.astype(np.float64)
    w_nz = counts.row_w.astype(np.float64)
    if skip_w:
        return GatedPairs(False, float((pad * w_nz).sum()), 0.0)
    return GatedPairs(True, float(((a_nz + pad) * (n_dim - w_nz)).sum()),
                      float((pad * w_nz).sum()))


def _lower_weights(mask: np.ndarray, geo) -> tuple:
    """(PackedWeights, (row_w, col_w)) of one weight mask: lowered and packed once."""
    codes = lower_weights(mask, geo)
    return PackedWeights(codes), weight_counts(codes)


#: Samples of activation masks read (and held) at a time (rounded up to whole batches).
SAMPLE_BLOCK = 8


def _act_blocks(layer, samples: int | None, size: int):
    """``(first sample, bool (n, C, H, W))`` blocks of the layer's activation masks, in order
    (layers without ``act_blocks``: slices of ``act_mask``). Consumed to the end, so a trace
    member's checksum is checked before the layer's result is returned."""
    blocks = getattr(layer, "act_blocks", None)
    if blocks is not None:
        yield from blocks(samples, size)
        return
    acts = layer.act_mask(samples)
    for start in range(0, acts.shape[0], size):
        yield start, acts[start:start + size]


def simulate_layer(layer, hw, fidelity: str = "fast", samples: int | None = None,
                   params: HwParams | None = None, context: LayerContext | None = None,
                   mapping=None, executor: Executor | None = None) -> dict:
    """Simulate one :class:`~accelsim.trace.LayerTrace`; returns its result row (a dict).

    Numeric figures are means over the simulated samples (per inference). ``context`` says
    what the layer finds on chip and the batch (:mod:`accelsim.sim.residency`); by default a
    batch of one that starts and ends in DRAM. ``executor``: a thread pool that runs the
    samples of each block concurrently (the kernels release the GIL); the rows are
    collected in sample order, so figures do not depend on it.
    """
    ctx = context or LayerContext()
    if fidelity not in FIDELITIES:
        raise AccelsimError(f"fidelity: expected one of {', '.join(FIDELITIES)}, got {fidelity!r}")
    if samples is not None and (not isinstance(samples, (int, np.integer)) or samples < 1):
        raise AccelsimError(f"samples: expected a positive integer, got {samples!r}")
    design = resolve(hw)
    hw = design.hw
    if design.mapped:   # the mapping-aware loop-nest model
        from accelsim.sim.loopnest import simulate_layer_loopnest

        return simulate_layer_loopnest(layer, design, fidelity, samples, ctx, mapping, executor)
    if mapping is not None:
        raise AccelsimError(f"{hw.name}: a fixed mapping needs a design with a memory_hierarchy "
                            "(the systolic model has SCALE-Sim's mapping)")
    p = params or HwParams.of(design)
    check_layer(layer, p)
    seen(layer)
    geo = layer.geometry
    gemm = gemm_of(geo)
    glb_avail = p.glb_bytes - ctx.reserved_bytes
    if glb_avail <= 0:
        raise MappingError(f"layer {layer.name!r} cannot be mapped: the resident weights of the "
                           f"other layers ({ctx.reserved_bytes:,.0f} bytes) fill the global buffer")
    mapping = map_gemm(gemm, p.dataflow, p.rows, p.cols, glb_avail / 2.0, p.acc_bits)
    if ctx.batch > 1:   # the batch's activations streamed against one pass of the weights
        gemm_b = Gemm(gemm.groups, gemm.M * ctx.batch, gemm.Kred, gemm.N)
        batch_plan = (gemm_b, map_gemm(gemm_b, p.dataflow, p.rows, p.cols, glb_avail / 2.0,
                                       p.acc_bits), glb_avail)
    else:
        batch_plan = (gemm, mapping, glb_avail)
    wmask = memoised(layer, ("weight_mask",), layer.weight_mask)

    def weight_operand(mask: np.ndarray, key: tuple) -> tuple:
        """(codes, on-chip bits, per-element costs, DRAM bits) of one weight mask."""
        wcodes = memoised(layer, ("weight_codes",) + key, lambda: _lower_weights(mask, geo))
        bits_total, w_zero, w_nz = memoised(
            layer, ("weight_cost", hw.storage.weights.on_chip, p.w_bits) + key,
            lambda: _element_costs(mask, hw.storage.weights.on_chip, p.w_bits))
        w_dram_fmt = hw.storage.weights.off_chip
        dram_bits = memoised(layer, ("weight_cost", w_dram_fmt, p.w_bits) + key,
                             lambda: _element_costs(mask, w_dram_fmt, p.w_bits))[0]
        return wcodes, bits_total, np.array([w_zero, w_nz]), dram_bits

    # A matmul multiplies two activations: its second operand ("weights") differs per
    # sample, so each sample is lowered with its own mask (the same GEMM otherwise).
    per_sample = geo.per_sample_weights
    pad_col = pad_columns(geo)   # padding per reduction index: the geometry's, every sample alike
    shared = None if per_sample else weight_operand(wmask, ())
    rows = []
    # activations a block of samples at a time (memory flat in the samples); a block is whole
    # batches, so a batch's shared weight pass sees all its samples
    block = ctx.batch * max(1, -(-SAMPLE_BLOCK // ctx.batch))
    layer_work: dict = {}   # work and fold statistics shared by samples when mask-independent

    def one_sample(acts: np.ndarray, first: int, i: int) -> dict:
        n = first + i
        wcodes, weight_bits_total, w_cost, weight_dram_bits = (
            weight_operand(wmask[n], ("sample", n)) if per_sample else shared)
        if hw.sparsity.skip_weight_fetch:  # zero inputs skip their weights (sim.fetch)
            start = i - n % ctx.batch      # the batch shares one weight pass
            frac = memoised(layer, ("fetch", hw.dram.weight_layout, hw.dram.burst_bytes,
                                    p.w_bits, ctx.batch, samples, n),
                            lambda: fetch.hw_fetch_fraction(
                                layer, acts[start:start + ctx.batch], hw))
            weight_bits_total, weight_dram_bits = (weight_bits_total * frac,
                                                   weight_dram_bits * frac)
        return _simulate_sample(layer, acts[i], wcodes, weight_bits_total, w_cost, gemm,
                                mapping, p, fidelity, (samples, n), weight_dram_bits,
                                ctx, batch_plan, pad_col, layer_work)

    for first, acts in _act_blocks(layer, samples, block):
        if executor is None or acts.shape[0] < 2:
            rows.extend(one_sample(acts, first, i) for i in range(acts.shape[0]))
        else:
            futures = [executor.submit(one_sample, acts, first, i) for i in range(acts.shape[0])]
            rows.extend(f.result() for f in futures)   # in sample order
    if not rows:
        raise TraceError(f"layer {layer.name!r} has no samples to simulate")
    out: dict = {"layer": layer.name, "index": int(layer.index), "kind": geo.kind,
                 "samples": len(rows)}
    for key in rows[0]:
        if key.startswith("_"):
            continue
        out[key] = float(np.mean([r[key] for r in rows]))
    out["spill"] = bool(any(r["offchip_peak_bytes"] > 0 for r in rows))
    out["weight_density"] = float(np.count_nonzero(wmask)) / wmask.size if wmask.size else 0.0
    schedules = [r["_schedule"] for r in rows]
    out["tiling"] = max(set(schedules), key=schedules.count)
    return out


def iter_layers(layers: Iterable) -> Iterable:
    """The layers of a trace or any iterable of LayerTrace, with a clear error when empty."""
    count = 0
    for layer in layers:
        count += 1
        yield layer
    if count == 0:
        raise TraceError("the trace has no layers to simulate")
