"""Evaluation: accuracy, activation and weight sparsity, exact multiplication counts.

The multiplication count of a layer is exact, not estimated from densities: for
every sample it counts the (activation, weight) pairs that meet in some output
and are both non-zero. For a convolution that is
``sum(conv(nonzero(a), nonzero(w)))`` with the layer's own stride, padding,
dilation and groups; summing over output channels first (``w`` summed within each
group) gives the same integer with a single-channel convolution. Dense MACs count
every pair, padding positions included, as :class:`~accelsim.trace.geometry.LayerGeometry`
does. ``mult_reduction = 1 - effective / dense`` over all conv/linear layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from accelsim.hooks import HookOwner, probe_forward
from accelsim.train.pruning import prunable_layers, weight_sparsity

_CONV_FUNCTIONS = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}


def effective_macs(module: nn.Module, act: torch.Tensor, weight: torch.Tensor) -> tuple[int, int]:
    """``(MACs with both operands non-zero, dense MACs)`` of one layer on a batch."""
    a = (act != 0).double()
    w = (weight != 0).double()
    if isinstance(module, nn.Linear):
        features = a.shape[-1]
        a = a.reshape(-1, features)
        effective = float((a.sum(0) * w.sum(0)).sum())
        dense = a.shape[0] * features * w.shape[0]
        return int(round(effective)), int(dense)
    conv = _CONV_FUNCTIONS[type(module)]
    groups = module.groups
    k = w.shape[0]
    w_sum = w.reshape(groups, k // groups, *w.shape[1:]).sum(1)  # (groups, C/groups, *kernel)
    out = conv(a, w_sum, None, module.stride, module.padding, module.dilation, groups)
    per_pair = w[0].numel()  # C/groups * prod(kernel)
    dense = a.shape[0] * k * out[0, 0].numel() * per_pair
    return int(round(float(out.sum()))), int(dense)


@dataclass
class LayerCounts:
    zeros: int = 0
    elements: int = 0
    effective_macs: int = 0
    dense_macs: int = 0

    @property
    def act_sparsity(self) -> float:
        return self.zeros / self.elements if self.elements else 0.0


class SparsityMeter(HookOwner):
    """Forward hooks on every conv/linear layer counting input zeros and exact MACs.

    A context manager; the hooks are removed on exit. ``order`` lists the layers in
    the order they first ran.
    """

    def __init__(self, model: nn.Module):
        self.layers = prunable_layers(model)
        self.counts: dict[str, LayerCounts] = {}
        self.order: list[str] = []
        self._handles: list = []

    def hook_specs(self):
        return [(module, self._hook(name), False) for name, module in self.layers.items()]

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output) -> None:
            x = inputs[0].detach()
            counts = self.counts.get(name)
            if counts is None:
                counts = self.counts[name] = LayerCounts()
                self.order.append(name)
            counts.zeros += int((x == 0).sum())
            counts.elements += x.numel()
            eff, dense = effective_macs(module, x, module.weight.detach())
            counts.effective_macs += eff
            counts.dense_macs += dense
        return hook


def execution_order(model: nn.Module, sample: torch.Tensor) -> list[str]:
    """Conv/linear layer names in the order a forward pass on ``sample`` runs them."""
    order: list[str] = []

    def seen(name: str):
        def hook(module: nn.Module, inputs: tuple) -> None:
            if name not in order:
                order.append(name)
        return hook

    probe_forward(model, sample, [(m, seen(name), True) for name, m in prunable_layers(model).items()])
    return order


@torch.no_grad()
def evaluate(model: nn.Module, dataset, batch_size: int = 512, device: str | torch.device = "cpu",
             skip_layers: int = 1) -> dict:
    """Accuracy, mean cross-entropy and sparsity figures of ``model`` on ``dataset``.

    ``mean_act_sparsity`` is the unweighted mean over the layers that ran, except the
    first ``skip_layers`` in execution order (whose input is the image, not an
    activation map).
    """
    was_training = model.training
    model.eval()
    correct, loss_sum, n = 0, 0.0, len(dataset)
    try:
        with SparsityMeter(model) as meter:
            for start in range(0, n, batch_size):
                x, y = dataset.batch(slice(start, start + batch_size))
                x, y = x.to(device), y.to(device)
                logits = model(x)
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
    finally:
        model.train(was_training)
    act = {name: meter.counts[name].act_sparsity for name in meter.order}
    hidden = meter.order[skip_layers:]
    eff = sum(c.effective_macs for c in meter.counts.values())
    dense = sum(c.dense_macs for c in meter.counts.values())
    w_total, w_layers = weight_sparsity(model)
    return {
        "accuracy": correct / n if n else 0.0,
        "test_loss": loss_sum / n if n else 0.0,
        "act_sparsity": act,
        "mean_act_sparsity": sum(act[k] for k in hidden) / len(hidden) if hidden else 0.0,
        "weight_sparsity": w_total,
        "layer_weight_sparsity": w_layers,
        "effective_macs": eff,
        "dense_macs": dense,
        "layer_mult_reduction": {k: 1 - c.effective_macs / c.dense_macs if c.dense_macs else 0.0
                                 for k, c in ((k, meter.counts[k]) for k in meter.order)},
        "mult_reduction": 1 - eff / dense if dense else 0.0,
    }
