"""Capture: masks equal the real tensors' non-zeros, geometry, options, hook hygiene."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from accelsim.errors import AccelsimError, TraceError
from accelsim.trace import CaptureOptions, MaskRecorder, capture_trace
from accelsim.trace.hooks import layer_kind


class Mixed(nn.Module):
    """Every traced kind and geometry feature on a small input (3x12x12)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)                  # 12 -> 6
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2)             # 6 -> 6
        self.grouped = nn.Conv2d(8, 12, (3, 1), padding=(1, 0), groups=4)    # 6 -> 6
        self.depthwise = nn.Conv2d(12, 24, 3, stride=(2, 1), padding=1, groups=12)  # -> 3x6
        self.tokens = nn.Linear(6, 5)                                        # on (N, 24*3, 6)
        self.fc = nn.Linear(24 * 3 * 5, 7)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.conv(x))
        x = self.relu(self.dilated(x))
        x = self.relu(self.grouped(x))
        x = self.relu(self.depthwise(x))          # (N, 24, 3, 6)
        t = self.relu(self.tokens(x.flatten(1, 2)))  # linear on (N, 72, 6)
        return self.fc(t.flatten(1))


def _model(seed: int = 0) -> Mixed:
    torch.manual_seed(seed)
    model = Mixed()
    with torch.no_grad():  # prune some weights to exact zeros
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                w = module.weight
                w[w.abs() < w.abs().median()] = 0
    return model


def _independent_hooks(model: nn.Module) -> tuple[dict[str, list[torch.Tensor]], list]:
    """Record every conv/linear input with our own hooks (not the recorder's)."""
    seen: dict[str, list[torch.Tensor]] = {}
    handles = [m.register_forward_hook(
        lambda mod, args, out, n=n: seen.setdefault(n, []).append(args[0].detach().clone()))
        for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return seen, handles


def _check_masks_against(model: nn.Module, data, seen: dict, threshold: float = 0.0) -> None:
    for layer in data.layer_traces():
        real = torch.cat(seen[layer.name]).float()
        if layer.kind == "linear":
            real = real.reshape(real.shape[0], -1, real.shape[-1]).transpose(1, 2).unsqueeze(-1)
        expected = (real != 0) & (real.abs() >= threshold)
        np.testing.assert_array_equal(layer.act_mask(), expected.numpy(), err_msg=layer.name)
        module = dict(model.named_modules())[layer.name]
        w = module.weight.detach()
        expected_w = (w.reshape(w.shape[0], w.shape[1], 1, 1) if layer.kind == "linear" else w) != 0
        np.testing.assert_array_equal(layer.weight_mask(), expected_w.numpy())
        assert layer.stats["weight_density"] == pytest.approx(expected_w.float().mean().item())


def test_masks_equal_real_nonzeros():
    model = _model()
    x = torch.relu(torch.randn(5, 3, 12, 12))
    seen, handles = _independent_hooks(model)  # see the very tensors of the same forward
    try:
        data = capture_trace(model, [x[:2], x[2:]], CaptureOptions(samples=5))
    finally:
        for h in handles:
            h.remove()
    assert data.layer_names == ["conv", "dilated", "grouped", "depthwise", "tokens", "fc"]
    _check_masks_against(model, data, seen)
    assert all(0.0 < l.stats["act_density"] < 1.0 for l in data.layers[1:])


def test_torch_side_packing_path_matches():
    """Tensors NumPy cannot view (here bfloat16; on an accelerator, all) are packed by torch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(13, 9), nn.ReLU(), nn.Linear(9, 16), nn.ReLU(),
                          nn.Linear(16, 3)).to(torch.bfloat16)
    x = torch.randn(6, 4, 13).to(torch.bfloat16)
    seen, handles = _independent_hooks(model)
    try:
        data = capture_trace(model, [x[:4], x[4:]], CaptureOptions(samples=6, threshold=0.05))
    finally:
        for h in handles:
            h.remove()
    _check_masks_against(model, data, seen, threshold=0.05)
    from accelsim.trace.maskwork import cpu_job, DeviceResult

    mask = torch.rand(3, 5, 3, 7) < 0.4
    out = torch.randn(3, 4) * (torch.rand(3, 4) < 0.5)
    a, b = cpu_job(mask.numpy(), (out != 0).numpy()), DeviceResult(mask, out).result()
    np.testing.assert_array_equal(a.packed, b.packed)
    np.testing.assert_array_equal(a.per_sample_channel, b.per_sample_channel)
    assert (a.out_nnz, a.out_total) == (b.out_nnz, b.out_total)


def test_geometry_stride_padding_dilation_groups_linear3d():
    data = capture_trace(_model(), [torch.randn(3, 3, 12, 12)], CaptureOptions(samples=3))
    g = {layer.name: layer.geometry for layer in data.layers}
    assert (g["conv"].kind, g["conv"].N, g["conv"].C, g["conv"].H, g["conv"].K) == ("conv2d", 3, 3, 12, 8)
    assert (g["conv"].stride_h, g["conv"].pad_h, g["conv"].P, g["conv"].Q) == (2, 1, 6, 6)
    assert (g["dilated"].dil_h, g["dilated"].dil_w, g["dilated"].pad_h, g["dilated"].P) == (2, 2, 2, 6)
    gr = g["grouped"]
    assert (gr.kind, gr.groups, gr.R, gr.S, gr.pad_h, gr.pad_w, gr.weight_shape) == \
        ("grouped_conv2d", 4, 3, 1, 1, 0, (12, 2, 3, 1))
    dw = g["depthwise"]
    assert (dw.kind, dw.groups, dw.stride_h, dw.stride_w, dw.P, dw.Q, dw.K) == \
        ("depthwise_conv2d", 12, 2, 1, 3, 6, 24)
    tok = g["tokens"]
    assert (tok.kind, tok.C, tok.H, tok.W, tok.K, tok.P, tok.Q) == ("linear", 6, 72, 1, 5, 72, 1)
    fc = g["fc"]
    assert (fc.C, fc.H, fc.W, fc.K) == (360, 1, 1, 7)


def test_stats_match_masks_and_output_density():
    model = _model(1)
    x = torch.relu(torch.randn(4, 3, 12, 12))
    data = capture_trace(model, [x], CaptureOptions(samples=4))
    outputs = {}
    handles = [m.register_forward_hook(lambda mod, a, out, n=n: outputs.__setitem__(n, out))
               for n, m in model.named_modules() if layer_kind(m)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    for layer in data.layer_traces():
        acts, weights = layer.act_mask(), layer.weight_mask()
        np.testing.assert_allclose(layer.stats["act_density_per_channel"], acts.mean(axis=(0, 2, 3)))
        np.testing.assert_allclose(layer.stats["act_density_per_sample"], acts.mean(axis=(1, 2, 3)))
        np.testing.assert_allclose(layer.stats["weight_density_per_filter"],
                                   weights.reshape(weights.shape[0], -1).mean(axis=1))
        assert layer.output_density == pytest.approx((outputs[layer.name] != 0).float().mean().item())


def test_threshold_and_quantisation():
    lin = nn.Linear(4, 2)
    x = torch.tensor([[1.0, 0.3, 0.001, 0.0], [-2.0, 0.05, 0.004, 0.02]])
    default = capture_trace(lin, [x], CaptureOptions(samples=2)).layers[0].act_mask()
    np.testing.assert_array_equal(default[:, :, 0, 0], (x != 0).numpy())
    thr = capture_trace(lin, [x], CaptureOptions(samples=2, threshold=0.04)).layers[0].act_mask()
    np.testing.assert_array_equal(thr[:, :, 0, 0], (x.abs() >= 0.04).numpy())
    # 4 bits: sample 0 is unsigned (max 1.0, 15 levels) so |x| < 1/30 rounds to zero;
    # sample 1 has a negative value: signed, max 2.0, 7 levels, so |x| < 1/7 is zero.
    q = capture_trace(lin, [x], CaptureOptions(samples=2, act_bits=4, quantize_acts=True))
    layer = q.layers[0]
    assert layer.act_bits == 4
    np.testing.assert_array_equal(layer.act_mask()[:, :, 0, 0],
                                  [[True, True, False, False], [True, False, False, False]])


def test_weight_quantisation_and_bits_recorded():
    lin = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.01, -0.5], [0.2, 0.0, 0.001]]))
    data = capture_trace(lin, [torch.ones(1, 3)],
                         CaptureOptions(samples=1, weight_bits=4, quantize_weights=True))
    layer = data.layers[0]
    assert layer.weight_bits == 4
    # per-filter signed scale: filter 0 max 1.0 -> |w| < 1/14 zero; filter 1 max 0.2
    np.testing.assert_array_equal(layer.weight_mask()[:, :, 0, 0],
                                  [[True, False, True], [True, False, False]])


def test_kinds_filter_and_repeated_module_names():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)
            self.fc = nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(self.conv(self.conv(x)).flatten(1))

    x = torch.randn(2, 2, 2, 2)
    data = capture_trace(Twice(), [x], CaptureOptions(samples=2))
    assert data.layer_names == ["conv", "conv#1", "fc"]
    only_linear = capture_trace(Twice(), [x], CaptureOptions(samples=2, kinds=("linear",)))
    assert only_linear.layer_names == ["fc"]
    with pytest.raises(TraceError, match="kinds"):
        CaptureOptions(kinds=("conv3d",))


def test_sample_limit_cuts_batches_and_stops_early():
    model = _model()
    calls = []
    model.conv.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))

    def batches():
        for _ in range(10):
            yield torch.randn(4, 3, 12, 12), torch.zeros(4)

    data = capture_trace(model, batches(), CaptureOptions(samples=6))
    assert calls == [4, 2]
    assert data.num_samples == 6 and data.provenance["num_samples"] == 6
    assert all(layer.geometry.N == 6 for layer in data.layers)
    with pytest.warns(UserWarning, match="only 3"):
        short = capture_trace(model, [torch.randn(3, 3, 12, 12)], CaptureOptions(samples=8))
    assert short.num_samples == 3


def test_hooks_removed_even_when_forward_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            self.fc = nn.Linear(1, 1)

        def forward(self, x):
            self.conv(x)
            raise RuntimeError("boom")

    model = Boom()
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        capture_trace(model, [torch.randn(1, 1, 2, 2)], CaptureOptions(samples=1))
    assert not model.conv._forward_hooks and not model.fc._forward_hooks
    assert model.training  # mode restored
    with pytest.raises(RuntimeError):
        with MaskRecorder(model, CaptureOptions(samples=1)):
            model(torch.randn(1, 1, 2, 2))
    assert not model.conv._forward_hooks


def test_transformer_linear_layers_on_tokens():
    from accelsim.zoo import get_model

    torch.manual_seed(0)
    model = get_model("tiny_transformer")
    x = torch.randn(3, 16, 64)
    data = capture_trace(model, [x], CaptureOptions(samples=3))
    layers = {layer.name: layer for layer in data.layers}
    fc2 = layers["layers.0.fc2"]
    assert (fc2.geometry.C, fc2.geometry.H, fc2.geometry.W, fc2.geometry.K) == (256, 16, 1, 64)
    assert fc2.stats["act_density"] < 0.75  # the ReLU MLP makes fc2's input sparse
    assert layers["head"].geometry.H == 1
    kinds = [layer.geometry.kind for layer in data.layers]
    assert kinds.count("linear") == 2 * 6 + 1 and kinds.count("matmul") == 2 * 2  # q.k^T, p.v


def test_bad_options_and_inputs():
    with pytest.raises(AccelsimError, match="samples"):
        CaptureOptions(samples=0)
    with pytest.raises(AccelsimError, match="threshold"):
        CaptureOptions(threshold=-1.0)
    with pytest.raises(AccelsimError, match="batches"):
        capture_trace(nn.Linear(2, 2), ["text"], CaptureOptions(samples=1))
    with pytest.raises(TraceError, match="no layers"):
        capture_trace(nn.ReLU(), [torch.randn(1, 2)], CaptureOptions(samples=1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["resnet18_cifar", "mobilenet_v2_cifar", "tiny_transformer"])
def test_capture_on_cuda_matches_real_tensors(name):
    from accelsim.zoo import get_model, model_input_shape

    torch.manual_seed(0)
    model = get_model(name).cuda().eval()
    x = torch.randn(7, *model_input_shape(name), device="cuda")
    seen, handles = _independent_hooks(model)
    try:
        data = capture_trace(model, [x[:3], x[3:]], CaptureOptions(samples=7, threshold=0.01))
    finally:
        for h in handles:
            h.remove()
    seen = {k: [t.cpu() for t in v] for k, v in seen.items()}
    _check_masks_against(model.cpu(), data, seen, threshold=0.01)
    for layer in data.layer_traces():
        np.testing.assert_allclose(layer.stats["act_density_per_channel"],
                                   layer.act_mask().mean(axis=(0, 2, 3)))
