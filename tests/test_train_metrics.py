"""Exact multiplication counts and the evaluation summary."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn as nn

from accelsim.datasets import load_dataset
from accelsim.trace.geometry import LayerGeometry
from accelsim.train.metrics import effective_macs, evaluate, execution_order
from accelsim.train.pruning import prunable_layers, prune_layerwise
from accelsim.zoo import get_model


def naive_conv_pairs(act: np.ndarray, weight: np.ndarray, stride: int, pad: int, dil: int,
                     groups: int) -> tuple[int, int]:
    """Brute force: every (output, c, r, s) pair, counting those with both operands non-zero."""
    n, c, h, w = act.shape
    k, cg, r, s = weight.shape
    p = (h + 2 * pad - dil * (r - 1) - 1) // stride + 1
    q = (w + 2 * pad - dil * (s - 1) - 1) // stride + 1
    kg = k // groups
    both = dense = 0
    for b, kk, y, x in itertools.product(range(n), range(k), range(p), range(q)):
        g = kk // kg
        for ci, rr, ss in itertools.product(range(cg), range(r), range(s)):
            dense += 1
            iy, ix = y * stride - pad + rr * dil, x * stride - pad + ss * dil
            if 0 <= iy < h and 0 <= ix < w and act[b, g * cg + ci, iy, ix] and weight[kk, ci, rr, ss]:
                both += 1
    return both, dense


@pytest.mark.parametrize("stride,pad,dil,groups", [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1),
                                                   (1, 1, 1, 2), (2, 1, 1, 4)])
def test_conv_effective_macs_match_brute_force(stride, pad, dil, groups):
    rng = np.random.default_rng(stride * 10 + pad + groups)
    conv = nn.Conv2d(4, 4, 3, stride=stride, padding=pad, dilation=dil, groups=groups, bias=False)
    act = rng.random((2, 4, 7, 6)) * (rng.random((2, 4, 7, 6)) < 0.5)
    weight = rng.standard_normal(conv.weight.shape) * (rng.random(conv.weight.shape) < 0.6)
    got = effective_macs(conv, torch.tensor(act, dtype=torch.float32), torch.tensor(weight, dtype=torch.float32))
    assert got == naive_conv_pairs(act != 0, weight != 0, stride, pad, dil, groups)
    geom = LayerGeometry("conv2d" if groups == 1 else "grouped_conv2d", N=2, C=4, H=7, W=6, K=4, R=3, S=3,
                         stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad, dil_h=dil, dil_w=dil,
                         groups=groups)
    assert got[1] == 2 * geom.macs_per_sample


def test_linear_effective_macs_match_brute_force():
    rng = np.random.default_rng(3)
    act = (rng.random((5, 3, 6)) < 0.4) * 1.0  # (batch, tokens, features)
    weight = (rng.random((4, 6)) < 0.5) * rng.standard_normal((4, 6))
    both = sum(bool(act[b, t, f]) and bool(weight[k, f])
               for b in range(5) for t in range(3) for k in range(4) for f in range(6))
    got = effective_macs(nn.Linear(6, 4), torch.tensor(act), torch.tensor(weight))
    assert got == (both, 5 * 3 * 6 * 4)


def test_evaluate_lenet_counts():
    torch.manual_seed(0)
    model = get_model("lenet5")
    data = load_dataset("synthetic:1,32,32,10,20")
    dense_model = evaluate(model, data, batch_size=7)
    assert dense_model["act_sparsity"]["conv1"] == 0.0
    assert dense_model["weight_sparsity"] == 0.0
    per_sample = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert dense_model["dense_macs"] == 20 * per_sample
    assert list(dense_model["act_sparsity"]) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    hidden = [dense_model["act_sparsity"][k] for k in ("conv2", "fc1", "fc2", "fc3")]
    assert dense_model["mean_act_sparsity"] == pytest.approx(sum(hidden) / 4)
    # conv1 sees a dense input and dense weights: all its pairs are multiplied
    assert dense_model["layer_mult_reduction"]["conv1"] == 0.0
    prune_layerwise(prunable_layers(model), {"conv1": 0.4, "fc1": 0.5})
    pruned = evaluate(model, data, batch_size=20)
    assert pruned["layer_weight_sparsity"]["conv1"] == pytest.approx(0.4)
    assert pruned["layer_mult_reduction"]["conv1"] == pytest.approx(0.4)
    assert pruned["mult_reduction"] > dense_model["mult_reduction"]
    assert 0.0 <= pruned["accuracy"] <= 1.0 and pruned["test_loss"] > 0


def test_execution_order_and_training_mode_kept():
    model = get_model("lenet5").train()
    assert execution_order(model, torch.zeros(1, 1, 32, 32)) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert model.training
    assert all(len(m._forward_pre_hooks) == 0 for m in model.modules())
