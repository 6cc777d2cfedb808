"""Liveness: the live set at every op and the peak, checked against hand counts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from accelsim.errors import TraceError
from accelsim.hw.load import load_hw_dict
from accelsim.sim.liveness import lifetimes, liveness
from accelsim.trace import CaptureOptions, capture_trace
from accelsim.zoo.resnet import BasicBlock


def _hw(minimal_hw, fmt: str = "bitmap"):
    data = dict(minimal_hw)
    data["storage"] = {"activations": {"format": fmt}, "outputs": {"format": fmt},
                       "weights": {"format": fmt}}
    return load_hw_dict(data)


class Plain(nn.Module):
    """The residual block without its shortcut."""

    def __init__(self, block: BasicBlock):
        super().__init__()
        self.b = block

    def forward(self, x):
        b = self.b
        return b.relu(b.bn2(b.conv2(b.relu(b.bn1(b.conv1(x))))))


def _block(seed: int = 0) -> BasicBlock:
    torch.manual_seed(seed)
    block = BasicBlock(4, 4).eval()
    with torch.no_grad():
        for bn in (block.bn1, block.bn2):   # shift so that about half of each ReLU is zero
            bn.bias.uniform_(-0.5, 0.5)
    return block


def _nnz_bits(t: torch.Tensor) -> np.ndarray:
    """Bitmap bits per sample of ``t`` at 8 bits: one bit per element + 8 per non-zero."""
    flat = t.reshape(t.shape[0], -1)
    return flat.shape[1] + 8 * (flat != 0).sum(dim=1).numpy().astype(np.float64)


@pytest.fixture(scope="module")
def block_capture():
    block = _block()
    x = torch.randn(3, 4, 6, 6)
    x[x.abs() < 0.4] = 0     # a sparse input, so the input's size is not the dense one
    data = capture_trace(block, [x], CaptureOptions(samples=3))
    with torch.no_grad():    # the real tensors, computed here step by step
        a = block.conv1(x)
        b = block.bn1(a)
        b_relu = torch.relu(b)
        c = block.conv2(b_relu)
        d = block.bn2(c)
        e = d + x
        e_relu = torch.relu(e)
    return data, {"x": x, "a": a, "b": b, "b'": b_relu, "c": c, "d": d, "e": e, "e'": e_relu}


def test_residual_block_peak_matches_a_hand_count(block_capture, minimal_hw):
    data, real = block_capture
    g = data.graph
    assert [op.kind for op in g.ops] == ["layer", "norm", "activation", "layer", "norm", "add",
                                         "activation"]
    hw = _hw(minimal_hw)
    lv = liveness(g, hw, layers=data.layer_traces(), weights="none")
    # Hand count of what must be held while each op runs (in-place ReLUs overwrite their
    # input; the shortcut input x stays until the add reads it; the output stays to the end).
    live = [["x", "a"], ["x", "a", "b"], ["x", "b'"], ["x", "b'", "c"], ["x", "c", "d"],
            ["x", "d", "e"], ["e'"]]
    bits = {k: _nnz_bits(v) for k, v in real.items()}
    hand = np.array([sum(bits[k] for k in step) / 8 for step in live])
    np.testing.assert_allclose(lv.per_sample, hand)
    assert lv.peak_bytes == pytest.approx(hand.max())
    assert lv.peak_step == int(np.argmax(hand.max(axis=1)))
    assert lv.peak_bytes_mean == pytest.approx(hand.max(axis=0).mean())
    assert [s.live_bytes for s in lv.steps] == pytest.approx(list(hand.mean(axis=1)))


def test_skipped_residual_branch_keeps_its_tensor_alive(block_capture, minimal_hw):
    data, _ = block_capture
    g = data.graph
    lv = liveness(g, _hw(minimal_hw), weights="none")
    x_id = 0
    roles = [{t.id: t.role for t in s.tensors}.get(x_id) for s in lv.steps]
    assert roles == ["inputs", "kept-alive", "kept-alive", "kept-alive", "kept-alive",
                     "inputs", None]
    assert lifetimes(g)[x_id] == (0, 5)
    # the same block without its shortcut frees x after the first convolution
    plain = capture_trace(Plain(_block()), [torch.randn(3, 4, 6, 6)],
                          CaptureOptions(samples=3)).graph
    plain_roles = [{t.id: t.role for t in s.tensors}.get(0) for s in liveness(
        plain, _hw(minimal_hw), weights="none").steps]
    assert plain_roles == ["inputs"] + [None] * 5


def test_weights_current_and_resident(block_capture, minimal_hw):
    data, _ = block_capture
    hw = _hw(minimal_hw, "dense")
    layers = data.layer_traces()
    none = liveness(data.graph, hw, layers=layers, weights="none")
    cur = liveness(data.graph, hw, layers=layers, weights="current")
    res = liveness(data.graph, hw, layers=layers, weights="resident")
    w = 4 * 4 * 3 * 3  # bytes of one conv's weights at 8 bits, dense
    extra_cur = cur.per_sample - none.per_sample
    assert list(extra_cur[:, 0]) == [w, 0, 0, w, 0, 0, 0]
    np.testing.assert_allclose(res.per_sample - none.per_sample, 2 * w)
    step = cur.steps[0]
    assert step.by_role()["weights"] == w and step.tensors[0].role == "inputs"
    # dense sizes do not depend on the masks: x, a are 4x6x6 one-byte values
    assert none.per_sample[0, 0] == 2 * 144


def test_trace_without_graph_is_refused(minimal_hw):
    with pytest.raises(TraceError, match="does not record the ops between layers"):
        liveness(None, _hw(minimal_hw))


def test_resnet18_liveness_runs_on_a_real_capture(minimal_hw):
    from accelsim.zoo import build_model

    torch.manual_seed(0)
    model = build_model("resnet18_cifar")
    data = capture_trace(model, [torch.randn(1, 3, 32, 32)], CaptureOptions(samples=1))
    lv = liveness(data.graph, _hw(minimal_hw), layers=data.layer_traces())
    assert len(lv.steps) == len(data.graph.ops)
    # the largest tensors are stage 1's (64x32x32): a residual step holds three of them
    add = next(s for s in lv.steps if s.kind == "add")
    assert len([t for t in add.tensors if t.role != "weights"]) == 3
    assert lv.peak_bytes >= max(s.live_bytes_max for s in lv.steps) - 1e-9


def test_timeline_plot_and_cli(block_capture, minimal_hw, tmp_path, capsys):
    from accelsim.cli import main
    from accelsim.hw.load import dump_hw
    from accelsim.plot.timeline import plot_timeline, timeline_table
    from accelsim.trace.writer import write_trace

    data, _ = block_capture
    hw = _hw(minimal_hw)
    lv = liveness(data.graph, hw, layers=data.layer_traces())
    for by in ("role", "tensor"):
        table = timeline_table(lv, by)
        sums = table.drop(columns="step").sum(axis=1).to_numpy()
        np.testing.assert_allclose(sums, [s.live_bytes for s in lv.steps])
        assert plot_timeline(lv, by=by, glb_bytes=65536).figure is not None
    trace = write_trace(tmp_path / "b.trace", data)
    hw_file = tmp_path / "hw.yaml"
    hw_file.write_text(dump_hw(hw))
    out = tmp_path / "t.png"
    assert main(["plot", "memory", "--timeline", "--trace", str(trace), "--hw", str(hw_file),
                 "-o", str(out)]) == 0 and out.stat().st_size > 0
    old = write_trace(tmp_path / "old.trace", type(data)(layers=data.layers,
                                                           provenance=data.provenance))
    assert main(["plot", "memory", "--timeline", "--trace", str(old), "--hw", str(hw_file),
                 "-o", str(out)]) != 0
    assert "does not record the ops between layers" in capsys.readouterr().err
