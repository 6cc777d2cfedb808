"""Dual Sparse Training (DSTF): TL1 activation penalties plus magnitude pruning.

``run_recipe(path_or_recipe, out_dir)`` trains a recipe (see :mod:`accelsim.train.recipe`);
``load_recipe(path)`` validates one; checkpoints are read with
:func:`accelsim.train.checkpoint.load_checkpoint`.
"""
from __future__ import annotations

from accelsim.train.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from accelsim.train.metrics import evaluate
from accelsim.train.penalties import (ActivationPenalty, hoyer_square_penalty, l1_penalty,
                                      tl1_penalty, transformed_l1)
from accelsim.train.recipe import Recipe, load_recipe, parse_recipe
from accelsim.train.run import RunResult, run_recipe

__all__ = [
    "ActivationPenalty", "Recipe", "RunResult", "evaluate", "file_sha256", "hoyer_square_penalty",
    "l1_penalty", "load_checkpoint", "load_recipe", "parse_recipe", "run_recipe", "save_checkpoint",
    "tl1_penalty", "transformed_l1",
]
