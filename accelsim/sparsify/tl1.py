"""DSTF's Transformed-L1 penalty on the inputs of a decoder's linear layers, then TEAL thresholds.

Fine-tunes with ``lam * mean_l rho_b(x_l)`` (:func:`accelsim.train.penalties.transformed_l1`)
on the input ``x_l`` of every sparsified linear layer, which pulls small inputs towards
zero; the inputs of a SiLU/GELU decoder are never exactly zero, so thresholds are then
calibrated to ``target`` as in :mod:`accelsim.sparsify.teal`. The report's perplexity is
at that sparsity, comparable with plain TEAL's at the same target.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from accelsim.sparsify.common import SparsityReport, perplexity, sparsified_layers, train_lm
from accelsim.sparsify.teal import ThresholdHooks, calibrate_thresholds
from accelsim.sparsify.common import measure_sparsity
from accelsim.train.penalties import ActivationPenalty


def tl1_finetune(model: nn.Module, train_ids: torch.Tensor, eval_ids: torch.Tensor,
                 target: float, steps: int = 60, lam: float = 1e-2, b: float = 1.0,
                 lr: float = 1e-3, length: int = 64, seed: int = 0
                 ) -> tuple[dict[str, float], SparsityReport]:
    """Fine-tune ``model`` in place with the TL1 penalty, calibrate thresholds, report."""
    dense = perplexity(model, eval_ids, length)
    names = [n for n, _ in sparsified_layers(model)]
    coeff = lam / len(names)
    with ActivationPenalty(model, {n: coeff for n in names}, "tl1", b=b) as pen:
        losses = train_lm(model, train_ids, steps, length, lr, penalty=lambda _: pen.pop_total(),
                          seed=seed)
    thresholds = calibrate_thresholds(model, train_ids, target, length)
    with ThresholdHooks(model, thresholds):
        reached = measure_sparsity(model, eval_ids, length)
        ppl = perplexity(model, eval_ids, length)
    return thresholds, SparsityReport("tl1", target, reached, ppl, dense,
                                      {"steps": steps, "lambda": lam, "b": b,
                                       "final_loss": losses[-1] if losses else None,
                                       "thresholds": dict(thresholds)})
