"""What the sparsifiers share: the layers they act on, text batches, perplexity, reports."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from accelsim.errors import AccelsimError
from accelsim.hooks import HookOwner


def _is_projection(module: nn.Module) -> bool:
    """``nn.Linear`` or GPT-2's ``Conv1D`` (a linear layer with a transposed weight)."""
    weight = getattr(module, "weight", None)
    return (isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D") and \
        isinstance(weight, torch.Tensor) and weight.dim() == 2


def sparsified_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of the linear layers inside the decoder blocks (not the LM head)."""
    found = [(name, m) for name, m in model.named_modules()
             if _is_projection(m) and "lm_head" not in name and name]
    if not found:
        raise AccelsimError(f"{type(model).__name__}: no linear layers to sparsify")
    return found


def weight_bytes(module: nn.Module) -> int:
    return int(module.weight.numel())


def windows(ids: torch.Tensor, length: int) -> torch.Tensor:
    """A 1-D token sequence cut into (n, length) non-overlapping windows (the rest dropped)."""
    ids = ids.reshape(-1)
    n = ids.numel() // length
    if n < 1:
        raise AccelsimError(f"the text has {ids.numel()} tokens; at least {length} are needed")
    return ids[: n * length].reshape(n, length)


@torch.no_grad()
def perplexity(model: nn.Module, ids: torch.Tensor, length: int = 64) -> float:
    """exp(mean next-token cross-entropy) over ``length``-token windows of ``ids``."""
    was = model.training
    model.eval()
    try:
        batch = windows(ids, length)
        logits = model(input_ids=batch, use_cache=False).logits
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                           batch[:, 1:].reshape(-1))
    finally:
        model.train(was)
    return float(math.exp(float(loss)))


class InputZeros(HookOwner):
    """Counts the zero elements of the inputs of named layers (forward pre-hooks)."""

    def __init__(self, layers: list[tuple[str, nn.Module]]):
        self.layers = layers
        self.zeros = {name: 0 for name, _ in layers}
        self.total = {name: 0 for name, _ in layers}

    def hook_specs(self):
        return [(module, self._hook(name), True) for name, module in self.layers]

    def _hook(self, name: str):
        def hook(module, args):
            x = args[0]
            self.zeros[name] += int((x == 0).sum())
            self.total[name] += int(x.numel())
        return hook

    def sparsity(self) -> dict[str, float]:
        return {n: self.zeros[n] / self.total[n] if self.total[n] else 0.0 for n in self.zeros}


@torch.no_grad()
def measure_sparsity(model: nn.Module, ids: torch.Tensor, length: int = 64,
                     layers: list[tuple[str, nn.Module]] | None = None) -> dict[str, float]:
    """Share of exact zeros in each sparsified layer's input over ``length``-token windows."""
    layers = layers or sparsified_layers(model)
    was = model.training
    model.eval()
    try:
        with InputZeros(layers) as counter:
            model(input_ids=windows(ids, length), use_cache=False)
    finally:
        model.train(was)
    return counter.sparsity()


@dataclass
class SparsityReport:
    """Sparsity reached per layer (share of zero inputs) and the quality metric."""

    method: str
    target: float | None
    per_layer: dict[str, float]
    perplexity: float
    dense_perplexity: float
    details: dict = field(default_factory=dict)

    @property
    def mean_sparsity(self) -> float:
        return sum(self.per_layer.values()) / len(self.per_layer) if self.per_layer else 0.0

    def to_dict(self) -> dict:
        return {"method": self.method, "target": self.target, "per_layer": dict(self.per_layer),
                "mean_sparsity": self.mean_sparsity, "perplexity": self.perplexity,
                "dense_perplexity": self.dense_perplexity, **self.details}

    def text(self) -> str:
        width = max(len(n) for n in self.per_layer)
        lines = [f"{self.method}: target sparsity {self.target if self.target is not None else '-'}"
                 f", mean reached {self.mean_sparsity:.3f}; perplexity {self.perplexity:.2f} "
                 f"(dense {self.dense_perplexity:.2f})"]
        lines += [f"  {name:<{width}}  {s:.3f}" for name, s in self.per_layer.items()]
        return "\n".join(lines)


def train_lm(model: nn.Module, ids: torch.Tensor, steps: int, length: int, lr: float,
             penalty=None, seed: int = 0, batch: int = 8) -> list[float]:
    """Next-token fine-tuning on windows of ``ids``; ``penalty(step)`` adds a regulariser."""
    if steps < 0:
        raise AccelsimError(f"steps: expected an integer >= 0, got {steps}")
    data = windows(ids, length)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        pick = torch.randint(0, data.shape[0], (min(batch, data.shape[0]),), generator=gen)
        x = data[pick]
        logits = model(input_ids=x, use_cache=False).logits
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                           x[:, 1:].reshape(-1))
        total = loss + (penalty(step) if penalty is not None else 0.0)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
