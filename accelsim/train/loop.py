"""One training epoch, the optimizer and the learning-rate schedule.

Everything here is a function of its arguments: the learning rate is computed
from the step number (no scheduler state), and the caller seeds the random
number generators per epoch, so an interrupted run resumes exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from accelsim.sweep.progress import progress_counter

from accelsim.train.penalties import ActivationPenalty
from accelsim.train.recipe import AugmentSpec, LRScheduleSpec, OptimizerSpec


def build_optimizer(spec: OptimizerSpec, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    params = list(params)
    if spec.type == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum,
                               weight_decay=spec.weight_decay, nesterov=spec.nesterov)
    if spec.type == "adam":
        return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    if spec.type == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    raise ValueError(f"optimizer type: {spec.type!r}")


def learning_rate(base: float, spec: LRScheduleSpec, epoch: int, step: int, total_steps: int) -> float:
    """Learning rate at ``step`` (0-based, within the stage) in ``epoch``."""
    if spec.type == "constant":
        return base
    if spec.type == "step":
        return base * spec.gamma ** (epoch // spec.step_epochs)
    if spec.type == "cosine":
        progress = step / max(1, total_steps)
        return spec.min_lr + (base - spec.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"lr_schedule type: {spec.type!r}")


def augment_batch(x: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """Random crop after zero padding and random horizontal flip (global torch RNG)."""
    if spec.crop_padding:
        p = spec.crop_padding
        n, _, h, w = x.shape
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,))
        dx = torch.randint(0, 2 * p + 1, (n,))
        rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).to(x.device)  # (n, h)
        cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).to(x.device)  # (n, w)
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        x = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)
    if spec.hflip:
        flip = (torch.rand(x.shape[0]) < 0.5).to(x.device)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    return x.contiguous()


@dataclass
class EpochResult:
    ce: float
    act_penalty: float
    weight_l1: float
    total: float
    accuracy: float
    penalty_terms: dict[str, float]
    lr: float


def train_epoch(model: nn.Module, dataset, optimizer: torch.optim.Optimizer, *,
                batch_size: int, generator: torch.Generator, base_lr: float,
                lr_spec: LRScheduleSpec, epoch: int, epochs: int,
                penalty: ActivationPenalty | None, weight_l1: float,
                weights: list[nn.Module], augment: AugmentSpec,
                device: str | torch.device = "cpu", desc: str = "", progress: bool = True) -> EpochResult:
    """Train ``model`` for one pass over ``dataset`` in a seeded random order.

    loss = cross-entropy + sum_l lambda_l * penalty_l + weight_l1 * mean|w| over ``weights``.
    Returns the means over batches (weighted by batch size) of each loss term.
    """
    model.train()
    n = len(dataset)
    steps = math.ceil(n / batch_size)
    order = torch.randperm(n, generator=generator)
    sums = {"ce": 0.0, "act_penalty": 0.0, "weight_l1": 0.0, "total": 0.0}
    term_sums: dict[str, float] = {}
    correct, lr = 0, base_lr
    bar = progress_counter(steps, desc, unit="batch", enabled=progress)
    for step in range(steps):
        index = order[step * batch_size:(step + 1) * batch_size]
        x, y = dataset.batch(index)
        x = augment_batch(x, augment) if (augment.crop_padding or augment.hflip) else x
        x, y = x.to(device), y.to(device)
        lr = learning_rate(base_lr, lr_spec, epoch, epoch * steps + step, epochs * steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        loss = ce
        act = torch.zeros((), device=logits.device)
        if penalty is not None:
            act = penalty.pop_total().to(logits.device)
            loss = loss + act
            for name, value in penalty.last_terms.items():
                term_sums[name] = term_sums.get(name, 0.0) + value * len(y)
        wl1 = torch.zeros((), device=logits.device)
        if weight_l1 > 0 and weights:
            total_abs = sum(m.weight.abs().sum() for m in weights)
            wl1 = weight_l1 * total_abs / sum(m.weight.numel() for m in weights)
            loss = loss + wl1
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        b = len(y)
        sums["ce"] += float(ce.detach()) * b
        sums["act_penalty"] += float(act.detach()) * b
        sums["weight_l1"] += float(wl1.detach()) * b
        sums["total"] += float(loss.detach()) * b
        correct += int((logits.detach().argmax(1) == y).sum())
        bar.update(1)
    bar.close()
    return EpochResult(ce=sums["ce"] / n, act_penalty=sums["act_penalty"] / n,
                       weight_l1=sums["weight_l1"] / n, total=sums["total"] / n,
                       accuracy=correct / n, penalty_terms={k: v / n for k, v in term_sums.items()},
                       lr=lr)
