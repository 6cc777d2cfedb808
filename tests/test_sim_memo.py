"""Reusing layer objects across designs changes no figure (every design on the one model;
the flat engine's mask memo, ``accelsim.sim.memo``, is not on its path)."""
from __future__ import annotations

import pandas as pd
import pytest

from accelsim.sim import simulate
from sim_helpers import make_hw, random_layer

DESIGNS = [
    dict(pe_array={"rows": 4, "cols": 4, "dataflow": "output_stationary"},
         sparsity={"skip_zero_activations": True, "skip_zero_weights": True}),
    dict(pe_array={"rows": 2, "cols": 8, "dataflow": "output_stationary", "sync": "decoupled"},
         sparsity={"skip_zero_activations": True, "skip_zero_weights": True},
         storage={"activations": {"format": "bitmap"}}),
    dict(pe_array={"rows": 4, "cols": 2, "dataflow": "weight_stationary"},
         sparsity={"skip_zero_activations": True}),
    dict(pe_array={"rows": 3, "cols": 5, "dataflow": "input_stationary"},
         sparsity={"gate_zero_operands": True}, storage={"weights": {"format": "run_length"}}),
]


def _layers():
    return [random_layer("a", C=3, H=7, W=6, K=5, R=3, S=3, pad_h=1, pad_w=1, N=2, seed=1),
            random_layer("b", C=4, H=5, W=5, K=4, R=1, S=1, groups=2, N=2, seed=2, index=1)]


@pytest.mark.parametrize("fidelity", ["fast", "cycle"])
def test_reused_layers_give_the_same_results_as_fresh_ones(fidelity) -> None:
    shared = _layers()
    for design in DESIGNS + DESIGNS[::-1]:
        hw = make_hw(**design)
        reused = simulate(shared, hw, fidelity=fidelity).layers
        fresh = simulate(_layers(), hw, fidelity=fidelity).layers
        pd.testing.assert_frame_equal(reused, fresh)
