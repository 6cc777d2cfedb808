"""``simulate``: a trace (or any iterable of LayerTrace) on one hardware design."""
from __future__ import annotations

import sys
from typing import Iterable

import pandas as pd

from accelsim.errors import AccelsimError, MappingError
from accelsim.sim.engine import FIDELITIES, HwParams, iter_layers, simulate_layer
from accelsim.sim.residency import plan_network, streamed
from accelsim.sim.result import SimResult, totals_of


def simulate(layers: Iterable, hw, fidelity: str = "fast", samples: int | None = None,
             progress: bool = False, trace_hash: str | None = None, batch: int = 1) -> SimResult:
    """Simulate every layer of ``layers`` on ``hw``, one layer at a time.

    ``layers``: a :class:`~accelsim.trace.Trace` or any iterable of
    :class:`~accelsim.trace.LayerTrace`; ``fidelity``: ``"fast"`` or ``"cycle"``;
    ``samples``: simulate at most this many captured samples per layer (all when
    ``None``); ``batch``: samples run together (weights fetched once per batch when the
    mapping allows). Figures are per inference (means over samples); what stays on chip
    between layers and inferences follows ``hw.residency`` (:mod:`accelsim.sim.residency`).
    ``trace_hash`` defaults to the trace's ``content_hash``.
    """
    if fidelity not in FIDELITIES:
        raise AccelsimError(f"fidelity: expected one of {', '.join(FIDELITIES)}, got {fidelity!r}")
    params = HwParams.of(hw)
    if trace_hash is None:
        trace_hash = getattr(layers, "content_hash", None)
    items = list(iter_layers(layers))
    plan = plan_network(items, hw, batch, samples=samples)
    try:
        rows = _run(items, hw, fidelity, samples, params, plan, progress)
    except MappingError:
        if not (plan.weights_resident and hw.residency.weights == "auto"):
            raise
        plan = streamed(plan, items, hw)     # auto: resident weights left too little room
        rows = _run(items, hw, fidelity, samples, params, plan, progress)
    frame = pd.DataFrame(rows)
    meta = {
        "hw_name": hw.name,
        "hw_hash": hw.hash,
        "trace_hash": trace_hash,
        "fidelity": fidelity,
        "samples": samples,
        "batch": int(batch),
        "weights_resident": plan.weights_resident,
        "residency_notes": list(plan.notes),
        "pes": params.pes,
        "macs_per_pe": params.lanes,
        "clock_mhz": hw.technology.clock_mhz,
        "provenance": getattr(layers, "provenance", None),
    }
    totals = totals_of(frame, meta)
    totals["batch"] = int(batch)
    totals["weight_load_bytes"] = plan.weight_load_bytes
    return SimResult(layers=frame, totals=totals, meta=meta)


def _run(items: list, hw, fidelity: str, samples, params, plan, progress: bool) -> list[dict]:
    work = zip(items, plan.contexts)
    if progress:
        from tqdm import tqdm

        work = tqdm(work, total=len(items), desc=f"simulate {hw.name}", unit="layer", file=sys.stderr)
    return [simulate_layer(layer, hw, fidelity, samples, params, ctx) for layer, ctx in work]
