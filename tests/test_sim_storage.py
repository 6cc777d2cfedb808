"""Exact compressed sizes against explicit encoders, and the expected-size formulas."""
from __future__ import annotations

import numpy as np
import pytest

import naive
from accelsim.sim import storage

FORMATS = ("dense", "bitmap", "run_length", "csr", "coo")
SHAPES = [(17,), (3, 5, 7), (4, 2, 3, 3), (1, 1, 1)]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_format_bits_match_encoders(fmt, shape, density):
    rng = np.random.default_rng(len(shape) * 7 + int(density * 100))
    mask = rng.random(shape) < density
    for run_bits in (1, 2, 4):
        got = storage.format_bits(mask, fmt, 8, run_bits=run_bits, index_bits=5)
        assert got == naive.encoded_bits(mask, fmt, 8, run_bits=run_bits, index_bits=5)


@pytest.mark.parametrize("run_bits", [1, 2, 3, 5])
def test_run_length_overflow_entries_are_exact(run_bits):
    longest = 2 ** run_bits - 1
    for gap in range(0, 4 * (longest + 1) + 2):
        mask = np.zeros(gap + 1, dtype=bool)
        mask[-1] = True
        entries = naive.encode_run_length(mask, run_bits)
        assert len(entries) == 1 + gap // (longest + 1)
        assert all(run <= longest for run, _ in entries)
        assert np.array_equal(naive.decode_run_length(entries, mask.size), mask)
        assert storage.run_length_entries(mask, run_bits) == len(entries)


def test_run_length_roundtrip_random():
    rng = np.random.default_rng(5)
    for density in (0.01, 0.1, 0.7):
        mask = rng.random(3000) < density
        entries = naive.encode_run_length(mask, 3)
        assert np.array_equal(naive.decode_run_length(entries, mask.size), mask)
        assert storage.run_length_entries(mask, 3) == len(entries)


def test_run_length_agrees_with_trace_analysis():
    bits = pytest.importorskip("accelsim.trace.bits")
    rng = np.random.default_rng(2)
    mask = rng.random((1, 4, 9, 9)) < 0.2
    assert storage.run_length_entries(mask, 4) == bits.rle_entries(mask, 4)


def test_trailing_zeros_and_empty_tensors_are_free():
    mask = np.zeros(50, dtype=bool)
    assert storage.format_bits(mask, "run_length", 8) == 0
    assert storage.format_bits(mask, "coo", 8) == 0
    assert storage.format_bits(mask, "bitmap", 8) == 50
    mask[3] = True
    assert storage.format_bits(mask, "run_length", 8, run_bits=4) == 12


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("density", [0.02, 0.3, 0.9])
def test_expected_bits_match_monte_carlo(fmt, density):
    shape = (16, 40, 40)
    rng = np.random.default_rng(11)
    sizes = [storage.format_bits(rng.random(shape) < density, fmt, 8, run_bits=3, index_bits=6)
             for _ in range(6)]
    expected = storage.expected_bits(shape, density, fmt, 8, run_bits=3, index_bits=6)
    assert np.mean(sizes) == pytest.approx(expected, rel=0.02)


def test_unknown_format_is_rejected():
    with pytest.raises(ValueError, match="unknown 'zip'"):
        storage.format_bits(np.ones(3, bool), "zip", 8)
    with pytest.raises(ValueError, match="unknown 'zip'"):
        storage.expected_bits((3,), 0.5, "zip", 8)


@pytest.mark.parametrize("run_bits", [1, 4, 7, 32])
@pytest.mark.parametrize("case", ["empty", "ones", "zeros", "one_at_end", "sparse", "dense"])
def test_run_length_entries_edge_cases(case, run_bits):
    rng = np.random.default_rng(run_bits)
    mask = {"empty": np.zeros(0, dtype=bool), "ones": np.ones((3, 7), dtype=bool),
            "zeros": np.zeros((4, 9), dtype=bool),
            "one_at_end": np.eye(1, 700, 699, dtype=bool)[0],
            "sparse": rng.random((2, 40, 40)) < 0.003,
            "dense": rng.random((5, 33)) < 0.9}[case]
    assert storage.run_length_entries(mask, run_bits) == len(naive.encode_run_length(
        mask.reshape(-1), run_bits))
