"""Activation-sparsity penalties and the hooks that apply them.

Every penalty is normalised per element and batch: it is the mean over the
activation tensor's elements (Hoyer-square, a per-sample ratio, is divided by the
number of elements per sample and averaged over the batch), so one coefficient
lambda means the same thing for a 6x14x14 map and a 120-vector.

* ``tl1``: Transformed L1, rho_b(x) = (b + 1)|x| / (b + |x|), b > 0 (Yu & Tian 2024);
  rho_b -> 1[x != 0] as b -> 0 and rho_b -> |x| as b -> infinity.
* ``l1``: |x| (Georgiadis 2019).
* ``hoyer_square``: (sum |x|)^2 / sum x^2 per sample (Kurtz et al. 2020).
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn as nn

from accelsim.hooks import HookOwner

PENALTY_KINDS = ("tl1", "l1", "hoyer_square")
HOYER_EPS = 1e-12


def transformed_l1(x: torch.Tensor, b: float) -> torch.Tensor:
    """Element-wise rho_b(x) = (b + 1)|x| / (b + |x|)."""
    if not b > 0:
        raise ValueError(f"b: expected a positive number, got {b!r}")
    a = x.abs()
    return (b + 1.0) * a / (b + a)


def tl1_penalty(x: torch.Tensor, b: float) -> torch.Tensor:
    """Mean of rho_b over all elements of ``x`` (batch included)."""
    return transformed_l1(x, b).mean()


def l1_penalty(x: torch.Tensor) -> torch.Tensor:
    """Mean of |x| over all elements of ``x``."""
    return x.abs().mean()


def hoyer_square_penalty(x: torch.Tensor) -> torch.Tensor:
    """Per sample (sum|x|)^2 / sum x^2 divided by the sample's element count; batch mean.

    A sample that is all zero contributes 0.
    """
    flat = x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(1, -1)
    l1 = flat.abs().sum(dim=1)
    l2sq = flat.pow(2).sum(dim=1)
    return (l1.pow(2) / (l2sq + HOYER_EPS)).mean() / flat.shape[1]


def penalty_function(kind: str, b: float = 1.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """The normalised penalty of ``kind`` as a function of one activation tensor."""
    if kind == "tl1":
        transformed_l1(torch.zeros(()), b)  # validates b
        return lambda x: tl1_penalty(x, b)
    if kind == "l1":
        return l1_penalty
    if kind == "hoyer_square":
        return hoyer_square_penalty
    raise ValueError(f"kind: expected one of {PENALTY_KINDS}, got {kind!r}")


class ActivationPenalty(HookOwner):
    """Adds a penalty on the *input* activations of named layers via forward pre-hooks.

    Use as a context manager around training; the hooks are removed on exit even
    when training fails::

        with ActivationPenalty(model, {"conv2": 1e-3, "fc1": 1e-3}, "tl1", b=1.0) as pen:
            loss = ce(model(x), y) + pen.pop_total()

    ``pop_total()`` returns sum_l lambda_l * penalty(input of l) over the layers run
    since the last call (one term per call of the layer) and forgets them;
    ``last_terms`` holds the per-layer unweighted values of that call.
    """

    def __init__(self, model: nn.Module, coefficients: Mapping[str, float], kind: str,
                 b: float = 1.0):
        self.model = model
        self.coefficients = dict(coefficients)
        self.kind = kind
        self.function = penalty_function(kind, b)
        modules = dict(model.named_modules())
        missing = [name for name in self.coefficients if name not in modules]
        if missing:
            raise ValueError(f"layers not in the model: {', '.join(missing)}")
        self._modules = {name: modules[name] for name in self.coefficients}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._terms: list[tuple[str, torch.Tensor]] = []
        self.last_terms: dict[str, float] = {}

    def hook_specs(self):
        return [(module, self._hook(name), True) for name, module in self._modules.items()]

    def remove(self) -> None:
        """Remove every hook this object registered and drop pending terms."""
        super().remove()
        self._terms.clear()

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple) -> None:
            if module.training and torch.is_grad_enabled():
                self._terms.append((name, self.function(inputs[0])))
        return hook

    def pop_total(self) -> torch.Tensor:
        """Weighted sum of the terms collected since the last call (0 if none)."""
        terms, self._terms = self._terms, []
        self.last_terms = {}
        total = torch.zeros(())
        for name, value in terms:
            self.last_terms[name] = self.last_terms.get(name, 0.0) + float(value.detach())
            total = total + self.coefficients[name] * value
        return total
