"""A deterministic, offline sample text for studies and tests (no data set download).

Sentences drawn from a small grammar about accelerators: a language model learns its
statistics in a few dozen steps, so perplexity moves measurably when activations are
sparsified.
"""
from __future__ import annotations

import random

_SUBJECTS = ("The accelerator", "A sparse kernel", "The memory system", "Every decoder layer",
             "The weight buffer", "A systolic array", "The compiler", "Each token")
_VERBS = ("reads", "skips", "stores", "fetches", "multiplies", "streams", "caches", "compresses")
_OBJECTS = ("the weights of active inputs", "zero activations", "one burst at a time",
            "the key and value cache", "a matrix by a vector", "the partial sums",
            "the rows of the embedding", "every channel that is not zero")
_TAILS = ("before the next token.", "when the input is zero.", "from low power DRAM.",
          "in the global buffer.", "at the end of each step.", "without any training.",
          "with a calibrated threshold.", "while the array waits.")


def synthetic_text(lines: int = 400, seed: int = 0) -> str:
    """``lines`` sentences, one per line, the same for the same seed."""
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(part) for part in (_SUBJECTS, _VERBS, _OBJECTS, _TAILS))
                     for _ in range(lines)) + "\n"


def disjoint_halves(text: str) -> tuple[str, str]:
    """``text`` split by content into (calibration, held-out): every distinct line goes to one
    half only (alternately, in order of first appearance), with all its repeats, so no sentence
    of the held-out half was seen in calibration or training."""
    side: dict[str, int] = {}
    halves: tuple[list, list] = ([], [])
    for line in text.splitlines():
        if line not in side:
            side[line] = len(side) % 2
        halves[side[line]].append(line)
    return "\n".join(halves[0]) + "\n", "\n".join(halves[1]) + "\n"
