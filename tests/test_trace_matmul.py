"""Every matmul is traced: MACs equal PyTorch's FlopCounter, masks equal the real zeros,
matmul layers simulate per sample, untraced work is listed, the recorder always cleans up."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from accelsim.errors import TraceError
from accelsim.trace import CaptureOptions, MaskRecorder, capture_trace, open_trace, write_trace
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.layer import LayerTrace
from accelsim.trace.operands import einsum_gemm
from sim_helpers import make_hw

ROOT = Path(__file__).resolve().parents[1]


def _flop_macs(model: nn.Module, x: torch.Tensor) -> tuple[int, bool]:
    """(MACs FlopCounterMode counts, whether it counted attention kernels), fast path off."""
    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(was)
    ops = counter.get_flop_counts().get("Global", {})
    return counter.get_total_flops() // 2, any("scaled_dot_product" in str(op) for op in ops)


def _traced_macs(data) -> int:
    return sum(layer.geometry.N * layer.geometry.macs_per_sample for layer in data.layers)


def _untraced_macs(data) -> int:
    return sum(entry["macs"] for entry in data.untraced)


def test_transformer_encoder_macs_equal_flopcounter():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    n, length, dim = 3, 10, 32
    x = torch.randn(n, length, dim)
    flops, counted_attention = _flop_macs(model, x)
    # FlopCounterMode misses the attention products on the CPU path (fused SDPA kernel):
    # per layer and sample Q.K^T and P.V are each L*L*E MACs (summed over the heads).
    attention = 0 if counted_attention else 2 * 2 * n * length * length * dim
    data = capture_trace(model, [x], CaptureOptions(samples=n))
    assert _traced_macs(data) + _untraced_macs(data) == flops + attention
    assert data.untraced == []
    names = [layer.name for layer in data.layers]
    assert names[:4] == ["layers.0.self_attn.in_proj", "layers.0.self_attn.attn_qk",
                         "layers.0.self_attn.attn_pv", "layers.0.self_attn.out_proj"]
    qk = data.layers[1].geometry
    assert (qk.kind, qk.groups, qk.H, qk.C, qk.K) == ("matmul", 4, length, dim, 4 * length)
    assert torch.backends.mha.get_fastpath_enabled()  # restored


def test_bare_multihead_attention_macs_equal_flopcounter():
    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(self.mha(x, x, x)[0])

    torch.manual_seed(1)
    model = Attn().eval()
    x = torch.randn(2, 7, 16)
    flops, _ = _flop_macs(model, x)  # need_weights=True: the bmm path, which it counts
    data = capture_trace(model, [x], CaptureOptions(samples=2))
    assert _traced_macs(data) == flops and data.untraced == []
    assert [layer.name for layer in data.layers] == ["mha.in_proj", "mha.bmm", "mha.bmm#1",
                                                     "mha.out_proj", "fc"]


def test_zoo_tiny_transformer_macs_equal_flopcounter():
    from accelsim.zoo import get_model

    torch.manual_seed(2)
    model = get_model("tiny_transformer").eval()
    x = torch.randn(2, 16, 64)
    flops, _ = _flop_macs(model, x)
    data = capture_trace(model, [x], CaptureOptions(samples=2))
    assert _traced_macs(data) == flops and data.untraced == []


class _Products(nn.Module):
    """A ReLU'd activation multiplied with itself by einsum, @ and causal SDPA."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.up = nn.ConvTranspose2d(1, 2, 2)  # not a traced kind: listed as untraced work

    def forward(self, x):
        h = torch.relu(self.fc(x))                           # (n, T, F)
        a = torch.einsum("btf,bsf->bts", h, h)
        b = h.transpose(1, 2) @ a                            # (n, F, T) @ (n, T, T)
        y = F.scaled_dot_product_attention(h[:, None], h[:, None], h[:, None], is_causal=True)
        self.up(a[:, None])
        return b.sum() + y.sum()


def test_masks_equal_the_real_zeros_of_both_operands():
    torch.manual_seed(3)
    model = _Products()
    x = torch.randn(4, 5, 6)
    seen = {}
    model.fc.register_forward_hook(lambda m, a, out: seen.setdefault("h", torch.relu(out)))
    with pytest.warns(UserWarning, match="not traced"):
        data = capture_trace(model, [x], CaptureOptions(samples=4))
    h = seen["h"].detach().numpy()                          # (n, T, F)
    n, t, f = h.shape
    layers = {layer.name: layer for layer in data.layer_traces()}
    assert set(layers) == {"fc", "einsum", "matmul", "attn_qk", "attn_pv"}
    nz = h != 0
    # einsum: A = h (T x F), B = h^T (F x T); act[c, m] = A[m, c], weight[k, r] = B[r, k]
    e = layers["einsum"]
    assert e.geometry.groups == 1 and (e.geometry.C, e.geometry.H, e.geometry.K) == (f, t, t)
    assert np.array_equal(e.act_mask()[..., 0], nz.transpose(0, 2, 1))
    assert np.array_equal(e.weight_mask()[..., 0, 0], nz)
    # h^T @ a: A = h^T (F x T), B = a (T x T)
    a = np.einsum("btf,bsf->bts", h, h)
    m = layers["matmul"]
    assert np.array_equal(m.act_mask()[..., 0], nz)
    assert np.array_equal(m.weight_mask()[..., 0, 0], (a != 0).transpose(0, 2, 1))
    # attention: P.V's first operand is softmax(causal scores), zero above the diagonal
    scores = a / math.sqrt(f)
    causal = np.tril(np.ones((t, t), dtype=bool))
    scores = np.where(causal, scores, -np.inf)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    pv = layers["attn_pv"]
    assert np.array_equal(pv.act_mask()[..., 0], (p != 0).transpose(0, 2, 1))
    assert np.array_equal(pv.weight_mask()[..., 0, 0], nz.transpose(0, 2, 1))
    qk = layers["attn_qk"]
    assert np.array_equal(qk.out_mask()[..., 0], np.broadcast_to(causal.T, (n, t, t)))
    assert layers["einsum"].out_mask() is None
    # the transposed convolution is listed with its MACs (n * C_in * K * R * S * H * W)
    assert data.untraced == [{"name": "up", "op": "aten.convolution", "calls": 1,
                              "macs": n * 1 * 2 * 2 * 2 * t * t}]


def test_matmul_trace_round_trip_and_info(tmp_path):
    from accelsim.trace.cli import info_data

    torch.manual_seed(4)
    with pytest.warns(UserWarning):
        data = capture_trace(_Products(), [torch.randn(3, 5, 6)], CaptureOptions(samples=3))
    path = write_trace(tmp_path / "p.trace", data)
    trace = open_trace(path)
    assert trace.schema_version == 2 and trace.untraced == data.untraced
    for mem, disk in zip(data.layer_traces(), trace):
        assert np.array_equal(mem.weight_mask(), disk.weight_mask())
        assert np.array_equal(mem.act_mask(), disk.act_mask())
        assert (mem.out_mask() is None) == (disk.out_mask() is None)
        if mem.out_mask() is not None:
            assert np.array_equal(mem.out_mask(2), disk.out_mask(2))
    info = info_data(str(path))
    assert info["untraced"]["macs_per_sample"] == data.untraced[0]["macs"] / 3
    row = next(r for r in info["layers"] if r["name"] == "einsum")
    masks = trace.layer("einsum")
    a, w = masks.act_mask(), masks.weight_mask()
    both = sum(int((a[i, :, :, 0].T[:, None, :] & w[i, :, :, 0, 0][None, :, :]).sum())
               for i in range(3))                     # (m, r) x (n, r) pairs, brute force
    assert row["frac_macs_both_nonzero"] == pytest.approx(both / (3 * 5 * 6 * 5))


def test_version_1_traces_still_read():
    trace = open_trace(ROOT / "traces" / "lenet5_digits_baseline.trace")
    assert trace.schema_version == 1 and trace.untraced == []
    layer = trace.layer(0)
    assert layer.weight_mask().shape == layer.geometry.weight_shape


def _random_matmul(seed: int, n=3, heads=2, m=3, kr=4, nc=5, density=0.5) -> LayerTrace:
    rng = np.random.default_rng(seed)
    geo = LayerGeometry("matmul", N=n, C=heads * kr, H=m, W=1, K=heads * nc, groups=heads)
    act = rng.random(geo.act_shape) < density
    weight = rng.random(geo.weight_mask_shape) < density
    return LayerTrace.from_masks("mm", geo, weight, act)


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary"])
def test_matmul_layer_simulates_per_sample_against_brute_force(dataflow):
    from accelsim.sim.engine import simulate_layer

    layer = _random_matmul(5)
    g = layer.geometry
    heads, m, kr, nc = g.groups, g.H, g.c_per_group, g.k_per_group
    a, w = layer.act_mask(), layer.weight_mask()
    effectual = act_nz = 0
    for i in range(g.N):                      # A[h, m, r] = act[h*kr + r, m]; B[h, r, c] = w[h*nc + c, r]
        for h in range(heads):
            for mm in range(m):
                for r in range(kr):
                    for c in range(nc):
                        av, bv = a[i, h * kr + r, mm, 0], w[i, h * nc + c, r, 0, 0]
                        effectual += bool(av and bv)
                        act_nz += bool(av)
    both = simulate_layer(layer, make_hw(pe_array={"dataflow": dataflow},
                                         sparsity={"skip_zero_activations": True,
                                                   "skip_zero_weights": True}))
    assert both["macs_dense"] == heads * m * kr * nc
    assert both["macs_effectual"] == pytest.approx(effectual / g.N)
    assert both["macs_issued"] == pytest.approx(effectual / g.N)  # skipping both: only pairs
    acts_only = simulate_layer(layer, make_hw(pe_array={"dataflow": dataflow},
                                              sparsity={"skip_zero_activations": True}))
    assert acts_only["macs_issued"] == pytest.approx(act_nz / g.N)
    assert acts_only["macs_skipped"] == pytest.approx(heads * m * kr * nc - act_nz / g.N)


def test_matmul_geometry_and_shapes():
    with pytest.raises(ValueError, match="1x1"):
        LayerGeometry("matmul", N=1, C=4, H=3, W=1, K=4, R=3)
    layer = _random_matmul(6)
    assert layer.weight_mask(2).shape == (2,) + layer.geometry.weight_shape
    bad = LayerTrace("x", "x", layer.geometry, 8, 8, lambda: np.ones(layer.geometry.weight_shape),
                     lambda n: np.ones((n,) + layer.geometry.act_shape[1:]))
    with pytest.raises(Exception, match="weight mask shape"):
        bad.weight_mask()


@pytest.mark.parametrize("equation,shapes", [
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("b...d,b...e->b...de", [(2, 3, 4), (2, 3, 5)]),
    ("bqd,bkd->bkq", [(2, 3, 4), (2, 5, 4)]),
])
def test_einsum_as_gemm_equals_einsum(equation, shapes):
    torch.manual_seed(7)
    x, y = (torch.randn(*s) for s in shapes)
    a, b = einsum_gemm(equation, x, y)
    ref = torch.einsum(equation, x, y)
    assert torch.allclose(torch.matmul(a, b).sum(), ref.sum(), atol=1e-4)
    assert a.shape[0] == b.shape[0] == shapes[0][0] and a.shape[-1] == b.shape[-2]
    assert sorted(torch.matmul(a, b).flatten().tolist()) == pytest.approx(
        sorted(ref.flatten().tolist()), abs=1e-4)


@pytest.mark.parametrize("equation", ["ij,jk->ik", "bij,bjk->bk", "bii,bij->bij", "bij,bjk"])
def test_einsum_that_is_not_a_per_sample_gemm(equation):
    x, y = torch.randn(3, 3, 3), torch.randn(3, 3, 3)
    if equation == "ij,jk->ik":
        x, y = torch.randn(3, 3), torch.randn(3, 3)
    assert einsum_gemm(equation, x, y) is None


def test_hooks_and_modes_removed_when_forward_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            y = self.mha(x, x, x)[0]
            q = torch.einsum("btf,bsf->bts", y, y)
            raise RuntimeError(f"boom {q.shape[0]}")

    model = Boom()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        capture_trace(model, [torch.randn(2, 3, 8)], CaptureOptions(samples=2))
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert torch._C._len_torch_function_stack() == 0
    assert torch._C._len_torch_dispatch_stack() == 0
    assert torch.backends.mha.get_fastpath_enabled() == fastpath
    with pytest.raises(RuntimeError, match="boom"):
        with MaskRecorder(model, CaptureOptions(samples=1)):
            model(torch.randn(1, 3, 8))
    assert torch._C._len_torch_function_stack() == 0
    assert all(not m._forward_hooks for m in model.modules())


def test_per_sample_forward_traces_flattened_layouts():
    class Flat(nn.Module):
        def forward(self, x):                                  # (n, T, F) -> (n*T, F) rows
            rows = x.reshape(-1, x.shape[-1])
            return rows @ rows.t()

    x = torch.relu(torch.randn(2, 3, 4))
    with pytest.raises(TraceError, match=r"no layer.*aten\.mm.*per_sample_forward"):
        capture_trace(Flat(), [x], CaptureOptions(samples=2))  # batched: no sample dimension
    data = capture_trace(Flat(), [x], CaptureOptions(samples=2, per_sample_forward=True))
    (layer,) = data.layer_traces()
    assert layer.geometry.N == 2 and (layer.geometry.H, layer.geometry.C) == (3, 4)
    assert np.array_equal(layer.act_mask()[..., 0], (x != 0).numpy().transpose(0, 2, 1))
