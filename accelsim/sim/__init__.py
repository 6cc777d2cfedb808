"""Simulator: replay sparsity traces on a zero-skipping accelerator.

Pipeline (one module per stage): ``lower`` (layer -> per-group GEMM, im2col of the
masks) -> ``map`` (dataflow -> array folds, fill/drain) -> ``work`` (surviving pairs
per PE from AND + popcount) -> ``kernels.schedule`` (fast) or ``kernels.cycle``
(cycle-level) -> ``memory`` (tiling, DRAM, footprint) -> ``energy`` -> ``result``.
``storage`` gives exact compressed sizes. The model is documented in
``docs/simulator.md``.

    from accelsim.sim import simulate
    res = simulate(open_trace("lenet5.trace"), load_hw("hw_configs/sparten_like.yaml"))
    res.layers, res.totals, res.save("out.csv")
"""
from accelsim.sim.engine import FIDELITIES, simulate_layer
from accelsim.sim.result import SimResult, compare
from accelsim.sim.simulate import simulate

__all__ = ["simulate", "simulate_layer", "SimResult", "compare", "FIDELITIES"]
