"""TEAL-style training-free activation sparsity (Liu et al. 2024).

Each sparsified linear layer zeroes its input elements with ``|x| < t_l``. The per-layer
threshold ``t_l`` is the ``target`` quantile of ``|x|`` of the layer's input on
calibration text, taken in execution order with the thresholds of the layers before
it already applied (so each layer sees the input it will see at run time), which makes
the calibrated model reach the target per layer on that text.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from accelsim.errors import AccelsimError
from accelsim.hooks import HookOwner
from accelsim.sparsify.common import (SparsityReport, measure_sparsity, perplexity,
                                      sparsified_layers, windows)


class ThresholdHooks(HookOwner):
    """Forward pre-hooks zeroing ``|x| < thresholds[name]`` in the inputs of named layers.

    ``calibrate=target``: a layer without a threshold takes the ``target`` quantile of
    the magnitudes of the first input it sees (then applies it).
    """

    def __init__(self, model: nn.Module, thresholds: dict[str, float] | None = None,
                 calibrate: float | None = None, layers=None):
        self.layers = layers or sparsified_layers(model)
        self.thresholds = dict(thresholds or {})
        self.calibrate = calibrate

    def hook_specs(self):
        return [(module, self._hook(name), True) for name, module in self.layers]

    def _hook(self, name: str):
        def hook(module, args):
            x = args[0]
            if name not in self.thresholds:
                if self.calibrate is None:
                    return None
                mags = x.detach().abs().reshape(-1).float()
                self.thresholds[name] = float(torch.quantile(mags, self.calibrate)) \
                    if mags.numel() <= 16_000_000 else float(mags.kthvalue(
                        max(1, int(self.calibrate * mags.numel()))).values)
            t = self.thresholds[name]
            if t <= 0:
                return None
            return (x * (x.abs() >= t),) + tuple(args[1:])
        return hook


def _check_target(target: float) -> float:
    if not (isinstance(target, (int, float)) and 0.0 <= float(target) < 1.0):
        raise AccelsimError(f"target sparsity: expected a number in [0, 1), got {target!r}")
    return float(target)


@torch.no_grad()
def calibrate_thresholds(model: nn.Module, ids: torch.Tensor, target: float,
                         length: int = 64) -> dict[str, float]:
    """Per-layer thresholds reaching ``target`` sparsity on the calibration tokens ``ids``."""
    target = _check_target(target)
    if target == 0.0:
        return {name: 0.0 for name, _ in sparsified_layers(model)}
    was = model.training
    model.eval()
    try:
        with ThresholdHooks(model, calibrate=target) as hooks:
            model(input_ids=windows(ids, length), use_cache=False)
    finally:
        model.train(was)
    return hooks.thresholds


def teal(model: nn.Module, calib_ids: torch.Tensor, eval_ids: torch.Tensor, target: float,
         length: int = 64) -> tuple[dict[str, float], SparsityReport]:
    """Calibrate thresholds on ``calib_ids``; report sparsity and perplexity on ``eval_ids``.

    The model is left unchanged; apply the thresholds with ``ThresholdHooks(model, thresholds)``.
    """
    dense = perplexity(model, eval_ids, length)
    thresholds = calibrate_thresholds(model, calib_ids, target, length)
    with ThresholdHooks(model, thresholds):
        reached = measure_sparsity(model, eval_ids, length)
        ppl = perplexity(model, eval_ids, length)
    return thresholds, SparsityReport("teal", target, reached, ppl, dense,
                                      {"thresholds": dict(thresholds)})
