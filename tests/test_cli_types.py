"""Shared argparse value types."""
from __future__ import annotations

import argparse

import pytest

from accelsim.cli_types import density, positive_int, shape


def test_good_values() -> None:
    assert positive_int("3") == 3
    assert density("0") == 0.0 and density("1") == 1.0 and density("0.25") == 0.25
    assert shape("3,32,32") == (3, 32, 32) and shape("16, 64") == (16, 64)


@pytest.mark.parametrize("func, text", [(positive_int, "0"), (positive_int, "-2"), (positive_int, "x"),
                                        (density, "1.5"), (density, "-0.1"), (density, "nan"),
                                        (shape, ""), (shape, "3,0"), (shape, "3,x")])
def test_bad_values(func, text) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected"):
        func(text)
