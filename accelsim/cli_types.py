"""argparse value types shared by the stage CLIs (bad values become argparse's usage errors)."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def density(text: str) -> float:
    """A fraction in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a density in [0, 1], got {text!r}")
    return value


def shape(text: str) -> tuple[int, ...]:
    """Comma-separated positive integers, e.g. ``3,32,32``."""
    try:
        dims = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"expected positive integers like 3,32,32, got {text!r}")
    return dims
