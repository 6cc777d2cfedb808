"""Magnitude pruning on top of ``torch.nn.utils.prune``.

Masks live where PyTorch keeps them (``<layer>.weight_mask`` buffers and a forward
pre-hook computing ``weight = weight_orig * weight_mask``), so they stay fixed
through later training: a gradient never revives a pruned weight. Sparsity only
grows: pruning to a target prunes the extra weights among those still alive
(PyTorch's ``PruningContainer`` restricts each new step to the unpruned slice).

Masks are keyed by plain parameter name (``conv2.weight``), as in checkpoints.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch
import torch.nn as nn
from torch.nn.utils import prune

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv and linear layers by qualified name, in registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}


def is_pruned(module: nn.Module) -> bool:
    return prune.is_pruned(module) and hasattr(module, "weight_mask")


def pruned_count(module: nn.Module) -> int:
    """Number of weights the mask removes (0 when the layer has no mask)."""
    return int((module.weight_mask == 0).sum()) if is_pruned(module) else 0


def cubic_sparsity(epoch: int, start: int, end: int, initial: float, final: float) -> float:
    """Zhu & Gupta (2017): s = s_f + (s_i - s_f)(1 - (t - t0)/(t1 - t0))^3, clamped to [t0, t1]."""
    if end <= start:
        return final if epoch >= start else initial
    t = min(max(epoch, start), end)
    return final + (initial - final) * (1.0 - (t - start) / (end - start)) ** 3


def prune_layerwise(layers: Mapping[str, nn.Module], targets: Mapping[str, float]) -> None:
    """Raise each named layer's weight sparsity to ``targets[name]`` by L1 magnitude."""
    for name, target in targets.items():
        module = layers[name]
        extra = int(round(target * module.weight.numel())) - pruned_count(module)
        if extra > 0:
            prune.l1_unstructured(module, "weight", amount=extra)


def prune_global(layers: Mapping[str, nn.Module], target: float) -> None:
    """Raise the joint weight sparsity of ``layers`` to ``target``; smallest |w| go first."""
    modules = list(layers.values())
    total = sum(m.weight.numel() for m in modules)
    extra = int(round(target * total)) - sum(pruned_count(m) for m in modules)
    if extra > 0:
        prune.global_unstructured([(m, "weight") for m in modules],
                                  pruning_method=prune.L1Unstructured, amount=extra)


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Boolean keep-masks of every pruned layer, keyed ``<layer>.weight``."""
    return {f"{name}.weight": m.weight_mask.detach().bool().cpu().clone()
            for name, m in prunable_layers(model).items() if is_pruned(m)}


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Attach saved masks (keyed ``<layer>.weight``) with ``prune.custom_from_mask``.

    Layers are processed in model order, so parameter order is reproducible.
    """
    layers = prunable_layers(model)
    unknown = [k for k in masks if not k.endswith(".weight") or k[:-len(".weight")] not in layers]
    if unknown:
        raise ValueError(f"masks for unknown layers: {', '.join(sorted(unknown))}")
    for name, module in layers.items():
        mask = masks.get(f"{name}.weight")
        if mask is None:
            continue
        if tuple(mask.shape) != tuple(module.weight.shape):
            raise ValueError(f"mask {name}.weight has shape {tuple(mask.shape)}, "
                             f"expected {tuple(module.weight.shape)}")
        prune.custom_from_mask(module, "weight", mask.to(module.weight.device, torch.float32))


def plain_state_dict(model: nn.Module, order: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """State dict with pruning made permanent, as ``prune.remove`` would do it.

    ``<layer>.weight_orig`` and ``<layer>.weight_mask`` become ``<layer>.weight =
    weight_orig * weight_mask``, so pruned weights are exactly zero and names are
    plain (``conv1.weight``); the live model keeps its masks. ``order`` (plain
    names) fixes the key order when given.
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    for key in [k for k in state if k.endswith("_orig")]:
        base = key[:-len("_orig")]
        mask = state.pop(base + "_mask", None)
        orig = state.pop(key)
        state[base] = orig * mask.to(orig.dtype) if mask is not None else orig
    if order is None:
        return state
    ranked = {name: i for i, name in enumerate(order)}
    return dict(sorted(state.items(), key=lambda kv: ranked.get(kv[0], len(ranked))))


def weight_sparsity(model: nn.Module) -> tuple[float, dict[str, float]]:
    """Fraction of zero weights over all conv/linear layers, and per layer."""
    per_layer, zeros, total = {}, 0, 0
    for name, module in prunable_layers(model).items():
        w = module.weight.detach()
        z = int((w == 0).sum())
        per_layer[name] = z / w.numel()
        zeros += z
        total += w.numel()
    return (zeros / total if total else 0.0), per_layer
