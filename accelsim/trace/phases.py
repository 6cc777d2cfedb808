"""Phase tags of decoder traces (prefill, decode steps), readable without PyTorch.

:mod:`accelsim.trace.llm` writes them at capture; the reader checks them on open and the
simulator groups layers by them (:mod:`accelsim.sim.decode`), so they live apart from the
capture code, which needs torch.
"""
from __future__ import annotations

import math

PHASES = ("prefill", "decode")
#: Most positions (prompt + decode tokens) one capture traces, whatever the model claims.
MAX_POSITIONS = 8192


def layer_phase(layer) -> tuple[str, int | None]:
    """(phase, step) of a layer (``LayerTrace`` or ``CapturedLayer``); ``("all", None)`` if untagged.

    A step that is not a non-negative integer (NaN, infinity, 1.5, -3, text: a damaged or
    hand-edited trace) raises :class:`~accelsim.errors.TraceError` naming the layer.
    """
    stats = getattr(layer, "stats", None) or {}
    phase = stats.get("phase")
    if phase not in PHASES:
        return "all", None
    step = stats.get("step")
    if step is None:
        return phase, None
    if (isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step)
            or step < 0 or step != int(step) or step > MAX_POSITIONS):
        from accelsim.errors import TraceError, brief

        raise TraceError(f"layer {getattr(layer, 'name', '?')!r}: stats.step: expected the "
                         f"{phase} step as an integer from 0 to {MAX_POSITIONS:,}, got {brief(step)}")
    return phase, int(step)
