"""Magnitude pruning: schedules, exact counts, masks that persist through training and saving."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import prune

from accelsim.train.checkpoint import load_checkpoint, save_checkpoint
from accelsim.train.pruning import (apply_masks, cubic_sparsity, get_masks, plain_state_dict,
                                    prunable_layers, prune_global, prune_layerwise, weight_sparsity)
from accelsim.zoo import get_model


def _lenet(seed: int = 0):
    torch.manual_seed(seed)
    return get_model("lenet5")


def test_cubic_schedule_zhu_gupta():
    assert cubic_sparsity(0, 0, 10, 0.0, 0.8) == 0.0
    assert cubic_sparsity(10, 0, 10, 0.0, 0.8) == pytest.approx(0.8)
    assert cubic_sparsity(15, 0, 10, 0.0, 0.8) == pytest.approx(0.8)
    assert cubic_sparsity(5, 0, 10, 0.1, 0.9) == pytest.approx(0.9 + (0.1 - 0.9) * 0.5 ** 3)
    assert cubic_sparsity(2, 4, 8, 0.2, 0.9) == pytest.approx(0.2)  # before the start
    values = [cubic_sparsity(e, 0, 10, 0.0, 0.9) for e in range(11)]
    assert values == sorted(values)
    steps = [b - a for a, b in zip(values, values[1:])]
    assert steps == sorted(steps, reverse=True)  # prunes fast first, then slowly
    assert cubic_sparsity(3, 3, 3, 0.0, 0.5) == 0.5


def test_layerwise_pruning_removes_smallest_magnitudes_exactly():
    model = _lenet()
    layers = prunable_layers(model)
    before = model.fc1.weight.detach().abs().clone()
    prune_layerwise(layers, {"fc1": 0.75, "conv1": 0.5})
    mask = model.fc1.weight_mask.bool()
    assert int((~mask).sum()) == round(0.75 * before.numel())
    assert before[~mask].max() <= before[mask].min()
    assert int((model.conv1.weight == 0).sum()) == 75
    assert not hasattr(model.conv2, "weight_mask")
    assert list(get_masks(model)) == ["conv1.weight", "fc1.weight"]


def test_gradual_pruning_only_grows_the_mask():
    model = _lenet()
    layers = prunable_layers(model)
    prune_layerwise(layers, {"conv2": 0.3})
    first = model.conv2.weight_mask.bool().clone()
    with torch.no_grad():  # make pruned-away positions of weight_orig large: they must stay pruned
        model.conv2.weight_orig[~first] = 100.0
    prune_layerwise(layers, {"conv2": 0.6})
    second = model.conv2.weight_mask.bool()
    assert torch.all(second <= first)
    assert int((~second).sum()) == round(0.6 * second.numel())
    prune_layerwise(layers, {"conv2": 0.6})  # idempotent
    assert torch.equal(model.conv2.weight_mask.bool(), second)


def test_global_pruning_hits_the_joint_target():
    model = _lenet()
    layers = {k: v for k, v in prunable_layers(model).items() if k != "conv1"}
    total = sum(m.weight.numel() for m in layers.values())
    prune_global(layers, 0.5)
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    assert zeros == round(0.5 * total)
    threshold = max(float(m.weight_orig.detach()[m.weight_mask == 0].abs().max()) for m in layers.values())
    kept = min(float(m.weight_orig.detach()[m.weight_mask == 1].abs().min()) for m in layers.values())
    assert threshold <= kept
    prune_global(layers, 0.8)
    assert sum(int((m.weight == 0).sum()) for m in layers.values()) == round(0.8 * total)
    overall, per_layer = weight_sparsity(model)
    assert per_layer["conv1"] == 0.0 and 0.7 < overall < 0.8


def test_masks_persist_through_training():
    model = _lenet()
    prune_layerwise(prunable_layers(model), {"conv2": 0.5, "fc1": 0.9})
    masks = get_masks(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    torch.manual_seed(1)
    for _ in range(5):
        x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert all(torch.equal(get_masks(model)[k], v) for k, v in masks.items())
    assert torch.all(model.fc1.weight[~masks["fc1.weight"]] == 0)
    assert torch.all(model.conv2.weight[~masks["conv2.weight"]] == 0)


def test_plain_state_dict_and_checkpoint_round_trip(tmp_path):
    model = _lenet()
    prune_layerwise(prunable_layers(model), {"conv2": 0.5, "fc2": 0.7})
    reference = get_model("lenet5").state_dict()
    state = plain_state_dict(model, list(reference))
    assert list(state) == list(reference)  # plain names in the usual order
    assert hasattr(model.conv2, "weight_orig")  # the live model keeps its masks
    masks = get_masks(model)
    assert torch.all(state["conv2.weight"][~masks["conv2.weight"]] == 0)
    save_checkpoint(tmp_path / "m.pt", state, {"model": "lenet5"}, masks)
    loaded, loaded_masks, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["model"] == "lenet5" and set(loaded_masks) == {"conv2.weight", "fc2.weight"}
    fresh = get_model("lenet5")
    fresh.load_state_dict(loaded)
    apply_masks(fresh, loaded_masks)
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(fresh(x), model(x))
    assert torch.equal(get_masks(fresh)["fc2.weight"], masks["fc2.weight"])
    for name in ("conv2", "fc2"):  # same tensors as PyTorch's own prune.remove
        prune.remove(getattr(model, name), "weight")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_apply_masks_validates():
    model = _lenet()
    with pytest.raises(ValueError, match="unknown layers"):
        apply_masks(model, {"fc9.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        apply_masks(model, {"fc1.weight": torch.ones(3, dtype=torch.bool)})
