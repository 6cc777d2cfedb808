"""How many issued MAC slots have each combination of non-zero operands (from the masks).

A gate or skip action conditioned on a set S of operands (Sparseloop's ``condition_on``)
acts on the issued slots where some operand of S is zero; the others proceed. Which slots are
issued depends on what the design skips: every slot (dense), those with a non-zero input
(input skipping, plus padding positions unless ``skip_padding``), those with a non-zero weight,
or those with both. A padding position is a zero input. Counts are over the whole layer for the
samples given; :func:`live_slots` returns, for each condition set, the issued slots where every
operand of the set is non-zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.map.nest import LoopNest
from accelsim.map.sparse import MODE_ACT, MODE_BOTH, MODE_DENSE, MODE_WEIGHT, effectual_pairs


@dataclass(frozen=True)
class LiveSlots:
    """Issued slots, and those of them whose condition operands are all non-zero."""

    issued: float
    inputs: float        # issued with a non-zero input
    weights: float       # issued with a non-zero weight
    both: float          # issued with both non-zero (effectual)

    def live(self, condition_on) -> float:
        """Issued slots with every operand of ``condition_on`` non-zero."""
        cond = set(condition_on)
        if cond >= {"inputs", "weights"}:
            return self.both
        if "inputs" in cond:
            return self.inputs
        if "weights" in cond:
            return self.weights
        return self.issued


def live_slots(nest: LoopNest, act: np.ndarray, wmask: np.ndarray, pads: tuple[int, int],
               mode: int, pad_issued: bool, issued: float, both: float | None = None,
               pad_slots: float = 0.0) -> LiveSlots:
    """:class:`LiveSlots` of one batch (``act``: (N, C, H, W), ``wmask``: (K, C/g, R, S)).

    ``issued``: the slots the schedule issued; ``both``: the effectual slots if already counted;
    ``pad_slots``: slots of padding positions with a non-zero weight that ``pads`` does not
    describe (a lowered layer's padding lies inside its operand matrix).
    """
    act = np.asarray(act, dtype=bool)
    wmask = np.asarray(wmask, dtype=bool)
    if both is None:
        both = float(effectual_pairs(nest, act, wmask, pads))
    a_nz = float(effectual_pairs(nest, act, np.ones_like(wmask), pads))      # input != 0
    w_in = float(effectual_pairs(nest, np.ones_like(act), wmask, pads))      # weight != 0, in bounds
    n, p, q = nest.bound("N"), nest.bound("P"), nest.bound("Q")
    w_all = float(n * p * q) * float(wmask.sum())                               # padding slots too
    pad_w = w_all - w_in + pad_slots   # slots of padding positions with a non-zero weight
    if mode == MODE_DENSE:
        return LiveSlots(issued, a_nz, w_all, both)
    if mode == MODE_ACT:            # issued: non-zero inputs (+ padding positions when issued)
        return LiveSlots(issued, a_nz, both + (pad_w if pad_issued else 0.0), both)
    if mode == MODE_WEIGHT:         # issued: non-zero weights
        return LiveSlots(issued, both, issued, both)
    if mode == MODE_BOTH:           # issued: both non-zero (+ padding slots with a weight)
        return LiveSlots(issued, both, issued, both)
    raise ValueError(f"mode: unknown {mode!r}")
