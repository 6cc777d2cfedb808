"""Work that does not depend on the sample is computed once per layer, with the same figures."""
from __future__ import annotations

import pytest

from accelsim.hw import load_hw
from accelsim.sim import engine, simulate
from accelsim.trace import open_trace

TRACE = "traces/lenet5_digits_dual.trace"


@pytest.mark.parametrize("design,per_sample", [("eyeriss_like", False), ("dense_ws_tpu_like", False),
                                                ("sparten_like", True), ("edge_lowpower", True)])
def test_work_matrix_once_per_layer_unless_activations_are_skipped(design, per_sample,
                                                                   monkeypatch):
    hw = load_hw(f"tests/fixtures/systolic_designs/{design}.yaml")   # the systolic engine
    with open_trace(TRACE) as trace:
        want = simulate(trace, hw, samples=5)
    calls = []
    real = engine.work_matrix
    monkeypatch.setattr(engine, "work_matrix", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    with open_trace(TRACE) as trace:
        got = simulate(trace, hw, samples=5)
        layers = len(trace)
    assert got.rows == want.rows
    assert len(calls) == (5 * layers if per_sample else layers)
