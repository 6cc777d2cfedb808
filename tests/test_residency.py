"""Network-level memory: batches, resident weights, outputs kept on chip for the next layer."""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.errors import ConfigError
from accelsim.hw import load_hw, load_hw_dict
from accelsim.sim import simulate
from accelsim.sim.residency import plan_network
from accelsim.sim import storage
from accelsim.trace import open_trace
from sim_helpers import make_hw, random_layer

TRACE = "traces/lenet5_digits_dual.trace"


def _with(path: str, **residency):
    data = load_hw(path).to_dict()
    data["residency"] = dict(data["residency"], **residency)
    return load_hw_dict(data, source=path)


def test_lenet5_edge_resident_weights_dram_is_input_plus_output_only():
    trace = open_trace(TRACE)
    hw = _with("hw_configs/edge_lowpower.yaml", weights="resident", activations="auto")
    res = simulate(trace, hw, samples=16)
    layers = list(trace)
    acts = layers[0].act_mask(16)
    assert hw.storage.raw_network_input   # the network's input sits in DRAM raw: 1 byte each
    dram_in = float(acts[0].size)
    last = layers[-1].geometry
    fmt = hw.storage.outputs.off_chip
    # the mapped model moves a compressed tensor's expected bits (not rounded up to a byte)
    dram_out = storage.expected_bits(
        (last.K, last.P, last.Q), layers[-1].output_density, fmt.format, 8, fmt.run_bits,
        fmt.index_bits) / 8.0
    t = res.totals
    assert res.meta["weights_resident"]
    assert t["dram_weight_read_bytes"] == 0 and t["dram_capacity_bytes"] == pytest.approx(0, abs=1e-6)
    assert t["dram_bytes"] == pytest.approx(dram_in + dram_out)
    assert t["weight_load_bytes"] == sum(np.asarray(l.weight_mask()).size for l in layers)  # dense, 8-bit
    streamed = simulate(trace, _with("hw_configs/edge_lowpower.yaml", weights="streamed",
                                     activations="streamed"), samples=16).totals
    assert streamed["dram_bytes"] > 50 * t["dram_bytes"]
    # the dual model's saving over the dense twin is now mostly on chip
    dense = simulate(trace, hw.dense_twin(), samples=16).totals
    saving = 1 - t["energy_pj"] / dense["energy_pj"]
    dram_part = (dense["energy_dram_pj"] - t["energy_dram_pj"]) / (dense["energy_pj"] - t["energy_pj"])
    assert saving > 0.2 and dram_part < 0.5


def test_weights_that_do_not_fit_are_an_error_or_streamed():
    trace = open_trace(TRACE)
    small = _with("hw_configs/edge_lowpower.yaml", weights="resident")
    data = small.to_dict()
    glb = next(lv for lv in data["memory_hierarchy"] if lv["name"] == "glb")
    glb["size_bytes"] = 16 * 1024
    with pytest.raises(ConfigError, match="residency.weights"):
        simulate(trace, load_hw_dict(data, "small.yaml"), samples=2)
    data["residency"]["weights"] = "auto"
    res = simulate(trace, load_hw_dict(data, "small.yaml"), samples=2)
    assert not res.meta["weights_resident"] and res.meta["residency_notes"]
    assert res.totals["dram_weight_read_bytes"] > 0


@pytest.mark.parametrize("path", ["hw_configs/edge_lowpower.yaml", "hw_configs/sparten_like.yaml",
                                  "hw_configs/eyeriss_v1.yaml"])
def test_batch_divides_streamed_weight_traffic(path):
    trace = open_trace(TRACE)
    hw = _with(path, weights="streamed", activations="streamed")
    one = simulate(trace, hw, samples=8, batch=1).totals["dram_weight_read_bytes"]
    assert one > 0
    for b in (2, 4):
        got = simulate(trace, hw, samples=8, batch=b).totals["dram_weight_read_bytes"]
        assert got == pytest.approx(one / b, rel=0.05)


def test_batch_stops_helping_when_the_buffer_runs_out():
    """Weights larger than the buffer: a batch still shares each weight pass, but its
    activations must then be re-read once per pass, so DRAM per inference stops falling as 1/B."""
    layer = random_layer(C=64, H=16, W=16, K=64, R=3, S=3, pad_h=1, pad_w=1, N=16,
                         density_a=1.0, density_w=1.0)
    hw = make_hw(global_buffer={"size_kib": 24, "words_per_cycle": 16, "word_bits": 16},
                 pe_array={"rows": 4, "cols": 4, "dataflow": "weight_stationary"},
                 residency={"weights": "streamed", "activations": "streamed"})
    res = {b: simulate([layer], hw, batch=b).totals for b in (1, 2, 16)}
    act_bytes = 64 * 16 * 16      # one sample's input, 8-bit dense
    weights = 64 * 64 * 9
    assert res[2]["dram_weight_read_bytes"] == pytest.approx(res[1]["dram_weight_read_bytes"] / 2)
    wasted = (res[16]["dram_weight_read_bytes"] - weights / 16) + (res[16]["dram_act_read_bytes"] - act_bytes)
    assert wasted > 0.5 * act_bytes    # re-reads from running out of buffer
    assert res[16]["dram_bytes"] > res[1]["dram_bytes"] / 16 + act_bytes


def test_compulsory_plus_capacity_is_all_dram_traffic():
    trace = open_trace(TRACE)
    for path in ("hw_configs/sparten_like.yaml", "hw_configs/eyeriss_v1.yaml"):
        res = simulate(trace, load_hw(path), samples=4, batch=2)
        rows = res.layers
        np.testing.assert_allclose(rows["dram_compulsory_bytes"] + rows["dram_capacity_bytes"],
                                   rows["dram_bytes"])
        assert (rows["dram_capacity_bytes"] >= -1e-9).all()


def test_default_is_the_single_inference_from_dram():
    trace = open_trace(TRACE)
    hw = load_hw("tests/fixtures/scalesim/../../../hw_configs/sparten_like.yaml")
    plain = _with("hw_configs/sparten_like.yaml", weights="streamed", activations="streamed")
    plan = plan_network(list(trace), plain, 1)
    assert not plan.weights_resident
    assert not any(c.input_on_chip or c.output_on_chip for c in plan.contexts)
    assert hw.residency.weights == "auto"


def test_bad_batch_is_one_clean_error():
    with pytest.raises(ConfigError, match="batch"):
        simulate(open_trace(TRACE), load_hw("hw_configs/sparten_like.yaml"), samples=1, batch=0)


def test_between_layer_ops_and_liveness_fold_into_the_totals(tmp_path):
    import torch

    from accelsim.trace.capture import CaptureOptions, capture_trace
    from accelsim.trace.writer import write_trace
    from accelsim.zoo import get_model

    torch.manual_seed(0)
    data = capture_trace(get_model("lenet5"), [torch.randn(3, 1, 32, 32)], CaptureOptions(samples=3))
    path = write_trace(tmp_path / "g.trace", data)
    trace = open_trace(path)
    assert trace.graph is not None
    res = simulate(trace, load_hw("hw_configs/edge_lowpower.yaml"))
    t = res.totals
    assert t["vector_cycles"] > 0 and t["energy_vector_pj"] > 0
    hw = load_hw("hw_configs/edge_lowpower.yaml")
    from accelsim.hw.energy import energy_model
    from accelsim.sim.memory import dram_bytes_per_cycle

    extra = t["dram_between_ops_bytes"]     # ops between layers whose tensors did not stay
    assert t["cycles"] == pytest.approx(res.layers["cycles"].sum() + t["vector_cycles"]
                                        + extra / dram_bytes_per_cycle(hw))
    assert t["energy_pj"] == pytest.approx(res.layers["energy_pj"].sum() + t["energy_vector_pj"]
                                           + extra * 8 * energy_model(hw).dram_pj_per_bit)
    assert t["peak_live_bytes"] >= t["peak_layer_live_bytes"] > 0
    old = simulate(open_trace(TRACE), load_hw("hw_configs/edge_lowpower.yaml"), samples=2)
    assert old.meta["between_layer_ops"].startswith("unknown") and old.totals["vector_cycles"] == 0


class _Residual(__import__("torch").nn.Module):
    """conv -> relu -> conv (+ skip) -> relu -> conv: the block input lives until the add."""

    def __init__(self):
        import torch.nn as nn

        super().__init__()
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        import torch.nn.functional as F

        y = F.relu(self.a(x))
        z = F.relu(self.b(y) + x)
        return self.c(z)


def _residual_trace(tmp_path):
    import torch

    from accelsim.trace.capture import CaptureOptions, capture_trace
    from accelsim.trace.writer import write_trace

    torch.manual_seed(0)
    data = capture_trace(_Residual(), [torch.randn(2, 8, 16, 16)], CaptureOptions(samples=2))
    return open_trace(write_trace(tmp_path / "res.trace", data))


def _design(size_kib):
    return make_hw(global_buffer={"size_kib": size_kib, "words_per_cycle": 16, "word_bits": 16},
                   residency={"weights": "streamed", "activations": "auto"},
                   storage={"activations": {"format": "dense"}, "outputs": {"format": "dense"}})


def test_residual_input_stays_alive_in_the_graph_plan(tmp_path):
    trace = _residual_trace(tmp_path)
    layers = list(trace)
    roomy = plan_network(layers, _design(256), samples=2, graph=trace.graph)
    assert [c.input_on_chip for c in roomy.contexts] == [False, True, True]
    assert roomy.between_ops_dram_bytes == 0
    # 8x16x16 8-bit tensors are 2 KiB: with 5 KiB the skip tensor (x) plus y and the next
    # result do not all fit, although each layer-to-layer hand-off alone would
    tight_hw = _design(5)
    graph_plan = plan_network(layers, tight_hw, samples=2, graph=trace.graph)
    seq_plan = plan_network(layers, tight_hw, samples=2)
    assert sum(c.input_on_chip for c in graph_plan.contexts) < sum(c.input_on_chip for c in seq_plan.contexts)
    res = simulate(trace, tight_hw, samples=2)
    assert res.totals["dram_between_ops_bytes"] > 0
    assert res.totals["dram_bytes"] == pytest.approx(res.layers["dram_bytes"].sum()
                                                     + res.totals["dram_between_ops_bytes"])
