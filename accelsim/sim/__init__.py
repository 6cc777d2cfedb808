"""Simulator: replay sparsity traces on a zero-skipping accelerator.

One model (issue 23): every design is a memory hierarchy on the loop-nest model
(``loopnest``: the mapper's or a systolic design's SCALE-Sim mapping, per-step work from the
masks, ``kernels.schedule`` for the fold recurrence, ``cycle_mapped`` for the cycle fidelity,
``dram_stream`` for DRAM access streams) with network-level residency (``residency``) and the
results (``result``). ``storage`` gives exact compressed sizes. The model is documented in
``docs/simulator.md``.

    from accelsim.sim import simulate
    res = simulate(open_trace("lenet5.trace"), load_hw("hw_configs/sparten_like.yaml"))
    res.layers, res.totals, res.save("out.csv")
"""
from __future__ import annotations

import sys
import types

from accelsim.lazy import lazy_getattr

# Imported on first use, so `import accelsim.sim.cli` (the CLI's verb registration) does not
# load Numba and pandas.
_LAZY = {
    "FIDELITIES": "accelsim.sim.engine",
    "simulate_layer": "accelsim.sim.engine",
    "SimResult": "accelsim.sim.result",
    "compare": "accelsim.sim.result",
    "headline_figures": "accelsim.sim.headline",
    "simulate": "accelsim.sim.simulate",
}

__all__ = ["simulate", "simulate_layer", "SimResult", "compare", "headline_figures",
           "FIDELITIES"]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


class _Package(types.ModuleType):
    """Keeps ``accelsim.sim.simulate`` the function once the same-named submodule is imported
    (importing a submodule sets the package attribute; the eager import used to overwrite it)."""

    def __setattr__(self, name: str, value) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
