"""Dual Sparse Training (DSTF): TL1 activation penalties plus magnitude pruning.

``run_recipe(path_or_recipe, out_dir)`` trains a recipe (see :mod:`accelsim.train.recipe`);
``load_recipe(path)`` validates one; checkpoints are read with
:func:`accelsim.train.checkpoint.load_checkpoint`.
"""
from __future__ import annotations

from accelsim.lazy import lazy_getattr

# Imported on first use (they need PyTorch), so registering the `train` verb stays cheap.
_LAZY = {
    **dict.fromkeys(("file_sha256", "load_checkpoint", "save_checkpoint"), "accelsim.train.checkpoint"),
    "evaluate": "accelsim.train.metrics",
    **dict.fromkeys(("ActivationPenalty", "hoyer_square_penalty", "l1_penalty", "tl1_penalty",
                     "transformed_l1"), "accelsim.train.penalties"),
    **dict.fromkeys(("Recipe", "load_recipe", "parse_recipe"), "accelsim.train.recipe"),
    **dict.fromkeys(("RunResult", "run_recipe"), "accelsim.train.run"),
}

__all__ = [
    "ActivationPenalty", "Recipe", "RunResult", "evaluate", "file_sha256", "hoyer_square_penalty",
    "l1_penalty", "load_checkpoint", "load_recipe", "parse_recipe", "run_recipe", "save_checkpoint",
    "tl1_penalty", "transformed_l1",
]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
