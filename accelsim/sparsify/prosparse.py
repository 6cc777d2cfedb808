"""ReLU-fication with a progressive sparsity penalty (ProSparse-style, Song et al. 2024).

1. The MLP's gated activation (SiLU/GELU) is replaced by ReLU, so the intermediate
   activations (the input of ``down_proj``/``c_proj``) hold exact zeros;
2. the model is fine-tuned on text with an L1 penalty on those activations whose
   coefficient rises progressively (``lambda_t = lam * min(1, t / ramp)``, in ``stages``
   steps: ProSparse's staged increase), which drives more of them to zero;
3. optionally (``shift``) ReLU becomes FATReLU: values below ``shift`` are zeroed too
   (ProSparse's activation threshold shifting).

Reports the zeros reached at the input of every sparsified linear layer.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from accelsim.errors import AccelsimError
from accelsim.sparsify.common import (SparsityReport, measure_sparsity, perplexity,
                                      sparsified_layers, train_lm)
from accelsim.train.penalties import ActivationPenalty


class FATReLU(nn.Module):
    """ReLU with a threshold: ``x`` if ``x >= shift`` else 0 (``shift`` 0: plain ReLU)."""

    def __init__(self, shift: float = 0.0):
        super().__init__()
        self.shift = float(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (x >= self.shift) if self.shift > 0 else torch.relu(x)


def relufy(model: nn.Module, shift: float = 0.0) -> list[str]:
    """Replace every MLP activation (``act_fn`` / ``act``) by (FAT)ReLU; returns the MLP names."""
    done = []
    for name, module in model.named_modules():
        if not name.endswith("mlp"):
            continue
        for attr in ("act_fn", "act"):
            if callable(getattr(module, attr, None)):
                setattr(module, attr, FATReLU(shift))
                done.append(name)
                break
    if not done:
        raise AccelsimError(f"{type(model).__name__}: no MLP activation (mlp.act_fn / mlp.act) "
                            "to replace by ReLU")
    return done


def _intermediate_layers(model: nn.Module) -> list[str]:
    """The linear layers fed by the MLP activation (down_proj / c_proj of each MLP)."""
    names = [n for n, _ in sparsified_layers(model)
             if n.endswith("mlp.down_proj") or n.endswith("mlp.c_proj")]
    if not names:
        raise AccelsimError(f"{type(model).__name__}: no MLP down projection found")
    return names


def prosparse(model: nn.Module, train_ids: torch.Tensor, eval_ids: torch.Tensor, steps: int = 60,
              lam: float = 1e-2, stages: int = 4, lr: float = 1e-3, shift: float = 0.0,
              length: int = 64, seed: int = 0) -> SparsityReport:
    """ReLU-fy ``model`` in place, fine-tune with the progressive penalty, report."""
    dense = perplexity(model, eval_ids, length)
    relufy(model)
    targets = _intermediate_layers(model)
    stages = max(1, int(stages))
    ramp = max(1, steps)

    def coefficient(step: int) -> float:   # staged increase to lam over the run
        return lam * min(stages, 1 + step * stages // ramp) / stages

    with ActivationPenalty(model, {name: 1.0 for name in targets}, "l1") as pen:
        losses = train_lm(model, train_ids, steps, length, lr,
                          penalty=lambda step: coefficient(step) * pen.pop_total(), seed=seed)
    if shift > 0:
        relufy(model, shift)
    reached = measure_sparsity(model, eval_ids, length)
    ppl = perplexity(model, eval_ids, length)
    return SparsityReport("prosparse", None, reached, ppl, dense,
                          {"steps": steps, "lambda": lam, "stages": stages, "shift": shift,
                           "final_loss": losses[-1] if losses else None,
                           "penalised_layers": targets})
