"""One layer on the one model: argument checks, then the loop-nest model.

Every design is a memory hierarchy on the loop-nest model (:mod:`accelsim.sim.loopnest`; a flat
file loads ported to its systolic mode, :mod:`accelsim.hw.port`). The flat systolic engine that
lived here (per-sample lowering, its own fold and cycle kernels, traffic and memory plans) was
retired in issue 23; ``docs/simulator.md`` section 0 says what the one model keeps of it.
"""
from __future__ import annotations

from concurrent.futures import Executor
from typing import Iterable

import numpy as np

from accelsim.errors import AccelsimError, TraceError
from accelsim.sim.design import resolve
from accelsim.sim.residency import LayerContext

FIDELITIES = ("fast", "cycle")

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
                   context: LayerContext | None = None, mapping=None,
                   executor: Executor | None = None) -> dict:
    """Simulate one :class:`~accelsim.trace.LayerTrace`; returns its result row (a dict).

    Numeric figures are means over the simulated samples (per inference). ``context`` says
    what the layer finds on chip and the batch (:mod:`accelsim.sim.residency`); by default a
    batch of one that starts and ends in DRAM. ``mapping``: a fixed mapping instead of the
    mapper's. ``executor``: a thread pool that runs the batches after the first concurrently;
    figures do not depend on it.
    """
    ctx = context or LayerContext()
    if fidelity not in FIDELITIES:
        raise AccelsimError(f"fidelity: expected one of {', '.join(FIDELITIES)}, got {fidelity!r}")
    if samples is not None and (not isinstance(samples, (int, np.integer)) or samples < 1):
        raise AccelsimError(f"samples: expected a positive integer, got {samples!r}")
    from accelsim.sim.loopnest import simulate_layer_loopnest
    from accelsim.sim.memo import seen

    seen(layer)    # a layer simulated again (a sweep) keeps its mask-only work (sim.memo)
    return simulate_layer_loopnest(layer, resolve(hw), fidelity, samples, ctx, mapping, executor)


def iter_layers(layers: Iterable) -> Iterable:
    """The layers of a trace or any iterable of LayerTrace, with a clear error when empty."""
    count = 0
    for layer in layers:
        count += 1
        yield layer
    if count == 0:
        raise TraceError("the trace has no layers to simulate")
