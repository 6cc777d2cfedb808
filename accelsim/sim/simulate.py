"""``simulate``: a trace (or any iterable of LayerTrace) on one hardware design."""
from __future__ import annotations

import sys
from typing import Iterable

import pandas as pd

from accelsim.errors import AccelsimError
from accelsim.sim.engine import FIDELITIES, HwParams, iter_layers, simulate_layer
from accelsim.sim.result import SimResult, totals_of


def simulate(layers: Iterable, hw, fidelity: str = "fast", samples: int | None = None,
             progress: bool = False, trace_hash: str | None = None) -> SimResult:
    """Simulate every layer of ``layers`` on ``hw``, one layer at a time.

    ``layers``: a :class:`~accelsim.trace.Trace` or any iterable of
    :class:`~accelsim.trace.LayerTrace`; ``fidelity``: ``"fast"`` or ``"cycle"``;
    ``samples``: simulate at most this many captured samples per layer (all when
    ``None``); figures are means over samples (per inference). ``trace_hash`` defaults
    to the trace's ``content_hash``.
    """
    if fidelity not in FIDELITIES:
        raise AccelsimError(f"fidelity: expected one of {', '.join(FIDELITIES)}, got {fidelity!r}")
    params = HwParams.of(hw)
    if trace_hash is None:
        trace_hash = getattr(layers, "content_hash", None)
    items = iter_layers(layers)
    if progress:
        from tqdm import tqdm

        total = None
        try:
            total = len(layers)  # type: ignore[arg-type]
        except TypeError:
            pass
        items = tqdm(items, total=total, desc=f"simulate {hw.name}", unit="layer", file=sys.stderr)
    rows = [simulate_layer(layer, hw, fidelity, samples, params) for layer in items]
    frame = pd.DataFrame(rows)
    meta = {
        "hw_name": hw.name,
        "hw_hash": hw.hash,
        "trace_hash": trace_hash,
        "fidelity": fidelity,
        "samples": samples,
        "pes": params.pes,
        "macs_per_pe": params.lanes,
        "clock_mhz": hw.technology.clock_mhz,
        "provenance": getattr(layers, "provenance", None),
    }
    return SimResult(layers=frame, totals=totals_of(frame, meta), meta=meta)
