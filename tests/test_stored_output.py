"""What a layer writes carries the zeros of the activation after it; the network's input sits in
DRAM raw (fidelity issue: ReLU zeros never reached the off-chip coder, and the input was coded).

Targets are counted independently of the simulator: the post-ReLU non-zeros come from running the
layers in PyTorch, the format sizes from the format's definition (bitmap: one bit per element plus
the non-zero values; dense: every value).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from accelsim.hw import load_hw
from accelsim.sim import simulate
from accelsim.trace import open_trace
from sim_helpers import make_hw, random_layer


class _ConvReluConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.b(F.relu(self.a(x)))


def _trace(tmp_path, model, x):
    from accelsim.trace.capture import CaptureOptions, capture_trace
    from accelsim.trace.writer import write_trace

    data = capture_trace(model, [x], CaptureOptions(samples=x.shape[0]))
    return open_trace(write_trace(tmp_path / "t.trace", data))


def _bitmap_design(**extra):
    return make_hw(residency={"weights": "streamed", "activations": "streamed"},
                   storage={"activations": {"format": "bitmap"}, "outputs": {"format": "bitmap"}},
                   **extra)


def test_written_output_has_the_relu_zeros(tmp_path):
    torch.manual_seed(0)
    model, x = _ConvReluConv().eval(), torch.randn(3, 2, 6, 6)
    with torch.no_grad():
        post = F.relu(model.a(x))
    nnz = post.reshape(3, -1).ne(0).sum(1).double().mean().item()
    elements = 4 * 6 * 6
    assert 0 < nnz < elements   # the ReLU zeroed some outputs, the raw output had none
    trace = _trace(tmp_path, model, x)
    assert list(trace)[0].output_density == 1.0
    rows = simulate(trace, _bitmap_design()).layers
    # bitmap: one mask bit per element + 8 bits per non-zero value, per inference
    assert rows["output_bytes"].iloc[0] == pytest.approx((elements + 8 * nnz) / 8)
    # the last layer has no activation after it: its raw output (no zeros) is what it writes
    assert rows["output_bytes"].iloc[1] == pytest.approx((elements + 8 * elements) / 8)


def test_without_a_graph_the_next_input_stands_in():
    first = random_layer("a", index=0, C=2, H=6, W=6, K=4, R=3, S=3, pad_h=1, pad_w=1,
                         output_density=1.0, seed=1)
    second = random_layer("b", index=1, C=4, H=6, W=6, K=4, R=3, S=3, pad_h=1, pad_w=1,
                          density_a=0.25, output_density=1.0, seed=2)
    nxt = np.asarray(second.act_mask(), dtype=bool)
    density = nxt.reshape(nxt.shape[0], -1).mean(axis=1).mean()
    rows = simulate([first, second], _bitmap_design()).layers
    elements = 4 * 6 * 6
    assert rows["output_bytes"].iloc[0] == pytest.approx((elements + 8 * density * elements) / 8)


@pytest.mark.parametrize("raw", [True, False])
def test_network_input_is_raw_in_dram_unless_the_design_codes_it(tmp_path, raw):
    torch.manual_seed(1)
    model = _ConvReluConv().eval()
    x = F.relu(torch.randn(2, 2, 6, 6))     # an input with zeros
    trace = _trace(tmp_path, model, x)
    hw = _bitmap_design()
    hw = dataclasses.replace(hw, storage=dataclasses.replace(hw.storage, raw_network_input=raw))
    row = simulate(trace, hw).layers.iloc[0]
    elements = 2 * 6 * 6
    nnz = x.reshape(2, -1).ne(0).sum(1).double().mean().item()
    want = elements if raw else (elements + 8 * nnz) / 8   # 8-bit values, bitmap: bit per element
    # the first layer reads its whole input from DRAM once per inference on this design
    assert row["dram_act_read_bytes"] == pytest.approx(want)


def test_eyeriss_codes_post_relu_outputs_smaller_than_raw(tmp_path):
    """On eyeriss_v1 (run-length coding off chip) a ReLU output now shrinks in DRAM; before, the
    raw output's density (no zeros) made run-length coding expand it."""
    torch.manual_seed(2)
    model, x = _ConvReluConv().eval(), torch.randn(2, 2, 6, 6)
    trace = _trace(tmp_path, model, x)
    hw = load_hw("hw_configs/eyeriss_v1.yaml")
    hw = dataclasses.replace(hw, residency=dataclasses.replace(hw.residency, activations="streamed"))
    coded = simulate(trace, hw).layers.iloc[0]
    dense = simulate(trace, hw.dense_twin()).layers.iloc[0]
    assert 0 < coded["dram_write_bytes"] < dense["dram_write_bytes"]
