"""Samples simulated in threads give the same figures as one thread."""
from __future__ import annotations

import pytest
import torch

from accelsim.errors import AccelsimError
from accelsim.hw import load_hw
from accelsim.sim import simulate
from accelsim.sim.simulate import sample_threads
from accelsim.trace import CaptureOptions, capture_trace, open_trace, write_trace
from accelsim.zoo import get_model

TRACE = "traces/lenet5_digits_dual.trace"


@pytest.fixture(scope="module")
def transformer_trace(tmp_path_factory):
    """A captured transformer: linear layers, per-sample-weight matmuls, a graph (11 samples)."""
    torch.manual_seed(3)
    model = get_model("tiny_transformer").eval()
    x = torch.randn(11, 16, 64)
    data = capture_trace(model, [x[:6], x[6:]], CaptureOptions(samples=11))
    return write_trace(tmp_path_factory.mktemp("thr") / "tt.trace", data)


def _same(a, b) -> None:
    assert a.rows == b.rows
    assert a.totals == b.totals


@pytest.mark.parametrize("design,fidelity,batch", [
    ("sparten_like", "fast", 1), ("edge_lowpower", "fast", 2), ("eyeriss_v1", "fast", 1),
    ("edge_npu_lpddr", "fast", 3), ("cnvlutin_like", "cycle", 1)])
def test_threads_give_the_same_figures(design, fidelity, batch, transformer_trace):
    hw = load_hw(f"hw_configs/{design}.yaml")
    for path in (TRACE, transformer_trace):
        with open_trace(path) as trace:
            one = simulate(trace, hw, fidelity=fidelity, batch=batch, threads=1)
        with open_trace(path) as trace:
            many = simulate(trace, hw, fidelity=fidelity, batch=batch, threads=3)
        _same(one, many)


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.delenv("ACCELSIM_SIM_THREADS", raising=False)
    assert sample_threads(None) == 1
    assert sample_threads(5) == 5
    assert sample_threads(10 ** 6) == 64
    monkeypatch.setenv("ACCELSIM_SIM_THREADS", "4")
    assert sample_threads(None) == 4
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv("ACCELSIM_SIM_THREADS", bad)
        with pytest.raises(AccelsimError, match="ACCELSIM_SIM_THREADS|threads"):
            sample_threads(None)
    for bad in (0, -1, True, 2.0, "3"):
        with pytest.raises(AccelsimError, match="threads"):
            sample_threads(bad)


def test_a_failing_sample_raises_from_the_pool(monkeypatch):
    """An error inside a worker thread reaches the caller (and the pool is shut down)."""
    from accelsim.sim import loopnest

    real = loopnest._sample
    calls = []

    def boom(layer, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("sample failed")
        return real(layer, *args, **kwargs)

    monkeypatch.setattr(loopnest, "_sample", boom)
    hw = load_hw("tests/fixtures/systolic_designs/dense_ws_tpu_like.yaml")   # batches in the pool
    with open_trace(TRACE) as trace, pytest.raises(RuntimeError, match="sample failed"):
        simulate(trace, hw, threads=2)
    assert len(calls) >= 3
