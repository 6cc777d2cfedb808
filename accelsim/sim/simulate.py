"""``simulate``: a trace (or any iterable of LayerTrace) on one hardware design."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from accelsim.errors import AccelsimError, MappingError
from accelsim.sim.engine import FIDELITIES, iter_layers, simulate_layer
from accelsim.sim.design import Design, resolve
from accelsim.sim.residency import plan_network, streamed
from accelsim.sim.result import SimResult, totals_of


def simulate(layers: Iterable, hw, fidelity: str = "fast", samples: int | None = None,
             progress: bool = False, trace_hash: str | None = None,
             batch: int | None = None, mappings: dict | None = None,
             threads: int | None = None) -> SimResult:
    """Simulate every layer of ``layers`` on ``hw``, one layer at a time.

    ``layers``: a :class:`~accelsim.trace.Trace` or any iterable of
    :class:`~accelsim.trace.LayerTrace`; ``fidelity``: ``"fast"`` or ``"cycle"``;
    ``samples``: simulate at most this many captured samples per layer (all when
    ``None``); ``batch``: samples run together (weights fetched once per batch when the
    mapping allows; default ``hw.residency.batch``, so sweeps can vary it as a hardware axis). Figures are per inference (means over samples); what stays on chip
    between layers and inferences follows ``hw.residency`` (:mod:`accelsim.sim.residency`).
    ``trace_hash`` defaults to the trace's ``content_hash``. ``mappings``: ``{layer name:
    Mapping}`` fixed by the user (:mod:`accelsim.map.fixed`); other layers use the mapper.
    ``threads``: samples simulated at once in threads (the kernels release the GIL; figures
    are the same for any count); default ``ACCELSIM_SIM_THREADS`` or 1.
    """
    if fidelity not in FIDELITIES:
        raise AccelsimError(f"fidelity: expected one of {', '.join(FIDELITIES)}, got {fidelity!r}")
    design = resolve(hw)      # the description resolved once; everything below reads it
    hw = design.hw
    if trace_hash is None:
        trace_hash = getattr(layers, "content_hash", None)
    if batch is None:
        batch = hw.residency.batch
    threads = sample_threads(threads)
    items = list(iter_layers(layers))
    plan = plan_network(items, design, batch, samples=samples,
                        graph=getattr(layers, "graph", None))
    executor = ThreadPoolExecutor(threads, thread_name_prefix="accelsim-sim") if threads > 1 else None
    try:
        try:
            rows = _run(items, design, fidelity, samples, plan, progress, mappings,
                        executor)
        except MappingError:
            if not (plan.weights_resident and hw.residency.weights == "auto"):
                raise
            plan = streamed(plan, items, design)     # auto: resident weights left too little room
            rows = _run(items, design, fidelity, samples, plan, progress, mappings,
                        executor)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    meta = {
        "hw_name": hw.name,
        "hw_hash": hw.hash,
        "trace_hash": trace_hash,
        "fidelity": fidelity,
        "samples": samples,
        "batch": int(batch),
        "weights_resident": plan.weights_resident,
        "residency_notes": list(plan.notes),
        "pes": hw.num_pes,
        "macs_per_pe": hw.pe_array.macs_per_pe,
        "clock_mhz": hw.technology.clock_mhz,
        "provenance": getattr(layers, "provenance", None),
    }
    totals = totals_of(rows, meta)
    totals["batch"] = int(batch)
    totals["weight_load_bytes"] = plan.weight_load_bytes
    # Silicon area of the design (accelsim.hw.area: core estimate at its node; not simulated).
    from accelsim.hw.area import area_of

    area = area_of(hw)
    totals["area_mm2"] = area.total_mm2
    totals["area_by_component_mm2"] = area.by_name()
    graph = getattr(layers, "graph", None)
    _add_vector_ops(totals, meta, graph, hw, samples)
    _add_between_ops_dram(totals, plan, design)
    if graph is not None and graph.ops:   # runtime memory from the tensors' real lifetimes
        from accelsim.sim.liveness import liveness

        mode = "resident" if plan.weights_resident else "current"
        live = liveness(graph, hw, items, samples, weights=mode)
        totals["peak_layer_live_bytes"] = totals.get("peak_live_bytes", 0.0)
        totals["peak_live_bytes"] = float(live.peak_bytes) * batch
        totals["peak_live_step"] = int(live.peak_step)
    return SimResult(rows=rows, totals=totals, meta=meta)


def sample_threads(threads: int | None = None) -> int:
    """Threads for a simulation's samples: ``threads``, else ``ACCELSIM_SIM_THREADS``, else 1."""
    if threads is None:
        value = os.environ.get("ACCELSIM_SIM_THREADS", "").strip()
        if not value:
            return 1
        try:
            threads = int(value)
        except ValueError:
            raise AccelsimError(f"ACCELSIM_SIM_THREADS: expected a positive integer, got "
                                f"{value!r}") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise AccelsimError(f"threads: expected a positive integer, got {threads!r}")
    return min(threads, MAX_THREADS)


#: More sample threads than this only add contention for the GIL.
MAX_THREADS = 64


def _run(items: list, design: Design, fidelity: str, samples, plan, progress: bool,
         mappings: dict | None = None, executor=None) -> list[dict]:
    hw = design.hw
    work = zip(items, plan.contexts)
    if progress:
        from accelsim.sweep.progress import progress_iter

        work = progress_iter(work, len(items), f"simulate {hw.name}", unit="layer")
    fixed = mappings or {}
    if fixed:
        unknown = sorted(set(fixed) - {layer.name for layer in items})
        if unknown:
            raise AccelsimError(f"mappings: no layer named {', '.join(unknown[:5])} in the trace")
    return [simulate_layer(layer, design, fidelity, samples, ctx, fixed.get(layer.name),
                           executor) for layer, ctx in work]


def _add_vector_ops(totals: dict, meta: dict, graph, hw, samples) -> None:
    """Fold the between-layer ops (pooling, adds, norms, activations) run on the vector unit into
    the network totals: their cycles run between the layers, their energy is its own component."""
    if graph is None:
        meta["between_layer_ops"] = "unknown (trace has no op records)"
        totals["vector_cycles"] = 0.0
        totals["energy_vector_pj"] = 0.0
        return
    from accelsim.sim.vector_ops import vector_op_costs

    costs = vector_op_costs(graph, hw, samples).totals()
    meta["between_layer_ops"] = len(graph.between_layer_ops)
    totals["vector_cycles"] = costs.get("cycles", 0.0)
    totals["energy_vector_pj"] = costs.get("energy_pj", 0.0)
    totals["cycles"] = totals.get("cycles", 0.0) + totals["vector_cycles"]
    totals["energy_pj"] = totals.get("energy_pj", 0.0) + totals["energy_vector_pj"]
    totals["energy_uj"] = totals["energy_pj"] * 1e-6
    if meta.get("clock_mhz"):
        totals["latency_s"] = totals["cycles"] / (meta["clock_mhz"] * 1e6)


def _add_between_ops_dram(totals: dict, plan, design: Design) -> None:
    """DRAM traffic of the ops between layers whose tensors the residency plan could not keep on
    chip (known only when the trace records its graph)."""
    extra = float(plan.between_ops_dram_bytes)
    totals["dram_between_ops_bytes"] = extra
    if not extra:
        return
    hw = design.hw
    energy = extra * 8.0 * design.energy.dram_pj_per_bit
    totals["dram_bytes"] = totals.get("dram_bytes", 0.0) + extra
    totals["dram_capacity_bytes"] = totals.get("dram_capacity_bytes", 0.0) + extra
    totals["energy_dram_pj"] = totals.get("energy_dram_pj", 0.0) + energy
    totals["energy_pj"] = totals.get("energy_pj", 0.0) + energy
    totals["energy_uj"] = totals["energy_pj"] * 1e-6
    per_cycle = design.dram_bytes_per_cycle
    if per_cycle:   # the vector unit waits for its off-chip operands
        totals["cycles"] = totals.get("cycles", 0.0) + extra / per_cycle
        if hw.technology.clock_mhz:
            totals["latency_s"] = totals["cycles"] / (hw.technology.clock_mhz * 1e6)
