"""Exact MAC and storage counts against brute force and naive references."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from accelsim.trace.analysis import effective_macs, network_totals, summarize_layer
from accelsim.trace.bits import (pack_flat, pack_rows, rle_entries, storage_bits, unpack_flat,
                                 unpack_rows)
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.layer import LayerTrace

GEOMETRIES = [
    LayerGeometry("conv2d", 3, 4, 7, 6, 5, 3, 3, pad_h=1, pad_w=1),
    LayerGeometry("conv2d", 2, 3, 9, 9, 4, 3, 2, stride_h=2, stride_w=3, pad_h=1, pad_w=0),
    LayerGeometry("conv2d", 2, 2, 9, 8, 3, 3, 3, pad_h=2, pad_w=2, dil_h=2, dil_w=2),
    LayerGeometry("grouped_conv2d", 2, 6, 6, 6, 9, 3, 3, pad_h=1, pad_w=1, groups=3),
    LayerGeometry("depthwise_conv2d", 2, 5, 7, 7, 10, 3, 3, stride_h=2, stride_w=2, pad_h=1,
                  pad_w=1, groups=5),
    LayerGeometry("linear", 2, 12, 4, 1, 7),
]


def _masks(g: LayerGeometry, seed: int):
    rng = np.random.default_rng(seed)
    return rng.random(g.weight_shape) < 0.6, rng.random(g.act_shape) < 0.5


def _brute_force_conv(g: LayerGeometry, w: np.ndarray, a: np.ndarray) -> dict:
    """Full convolution of the float masks (all K filters) with torch."""
    out = F.conv2d(torch.from_numpy(a).double(), torch.from_numpy(w).double(),
                   stride=(g.stride_h, g.stride_w), padding=(g.pad_h, g.pad_w),
                   dilation=(g.dil_h, g.dil_w), groups=g.groups)
    act_only = F.conv2d(torch.from_numpy(a).double(), torch.ones(g.weight_shape, dtype=torch.float64),
                        stride=(g.stride_h, g.stride_w), padding=(g.pad_h, g.pad_w),
                        dilation=(g.dil_h, g.dil_w), groups=g.groups)
    return {"both_nonzero": int(out.sum()), "act_nonzero": int(act_only.sum())}


def _naive_loops(g: LayerGeometry, w: np.ndarray, a: np.ndarray) -> int:
    """Obvious seven-loop count of MACs with both operands non-zero."""
    total = 0
    for n, k, p, q in itertools.product(range(a.shape[0]), range(g.K), range(g.P), range(g.Q)):
        group = k // g.k_per_group
        for c, r, s in itertools.product(range(g.c_per_group), range(g.R), range(g.S)):
            h = p * g.stride_h - g.pad_h + r * g.dil_h
            x = q * g.stride_w - g.pad_w + s * g.dil_w
            if 0 <= h < g.H and 0 <= x < g.W:
                total += int(w[k, c, r, s] and a[n, group * g.c_per_group + c, h, x])
    return total


@pytest.mark.parametrize("g", GEOMETRIES, ids=lambda g: f"{g.kind}-{g.stride_h}-{g.dil_h}-{g.groups}")
def test_effective_macs_equal_brute_force(g):
    w, a = _masks(g, 0)
    counts = effective_macs(g, w, a)
    assert counts["dense"] == a.shape[0] * g.macs_per_sample
    brute = _brute_force_conv(g, w, a)
    assert counts["both_nonzero"] == brute["both_nonzero"]
    assert counts["act_nonzero"] == brute["act_nonzero"]
    assert counts["weight_nonzero"] == a.shape[0] * g.P * g.Q * int(w.sum())
    assert counts["both_nonzero"] == _naive_loops(g, w, a)


def test_effective_macs_dense_operands_count_padding_as_zero():
    g = LayerGeometry("conv2d", 1, 2, 4, 4, 3, 3, 3, pad_h=1, pad_w=1)
    w = np.ones(g.weight_shape, bool)
    a = np.ones(g.act_shape, bool)
    counts = effective_macs(g, w, a)
    inside = sum(1 for p, q, r, s in itertools.product(range(4), range(4), range(3), range(3))
                 if 0 <= p - 1 + r < 4 and 0 <= q - 1 + s < 4)
    assert counts["both_nonzero"] == counts["act_nonzero"] == inside * g.C * g.K
    assert counts["both_nonzero"] < counts["dense"] == counts["weight_nonzero"]


def _naive_rle_encode(row: np.ndarray, run_bits: int) -> list[tuple[int, int]]:
    """Encode a 0/1 row as (zeros before, value) entries; trailing zeros are implicit."""
    longest = 2 ** run_bits - 1
    entries, run = [], 0
    for bit in row:
        if not bit:
            run += 1
            continue
        while run > longest:  # the run field is full: an explicit zero value takes a slot
            entries.append((longest, 0))
            run -= longest + 1
        entries.append((run, 1))
        run = 0
    return entries


def _naive_rle_decode(entries: list[tuple[int, int]], length: int) -> np.ndarray:
    out = []
    for run, value in entries:
        out += [0] * run + [value]
    return np.array(out + [0] * (length - len(out)), dtype=bool)


@pytest.mark.parametrize("density", [0.0, 0.02, 0.3, 1.0])
@pytest.mark.parametrize("run_bits", [1, 2, 4])
def test_rle_entries_equal_naive(density, run_bits):
    rng = np.random.default_rng(int(density * 100) + run_bits)
    mask = rng.random((3, 97)) < density
    encoded = [_naive_rle_encode(row, run_bits) for row in mask]
    for row, entries in zip(mask, encoded):
        np.testing.assert_array_equal(_naive_rle_decode(entries, row.size), row)
    assert rle_entries(mask, run_bits) == sum(len(e) for e in encoded)


def test_storage_bits_and_packing_round_trip():
    mask = np.zeros((2, 20), bool)
    mask[0, [0, 19]] = True
    mask[1, 5] = True
    sizes = storage_bits(mask, value_bits=8, run_bits=4)
    assert sizes["dense"] == 40 * 8
    assert sizes["bitmap"] == 2 * 3 * 8 + 3 * 8
    assert sizes["rle"] == (3 + 1) * 12  # row 0: 18 zeros before the second 1 -> one overflow
    rng = np.random.default_rng(1)
    m = rng.random((4, 3, 5, 7)) < 0.4
    np.testing.assert_array_equal(unpack_rows(pack_rows(m), m.shape), m)
    np.testing.assert_array_equal(unpack_flat(pack_flat(m), m.shape), m)


def test_summary_and_totals():
    g = GEOMETRIES[0]
    w, a = _masks(g, 3)
    layer = LayerTrace.from_masks("l0", g, w, a, act_bits=8, weight_bits=4)
    row = summarize_layer(layer, samples=2)
    assert row.samples == 2 and row.act_density == pytest.approx(a[:2].mean())
    assert row.frac_macs_both_nonzero == pytest.approx(
        _brute_force_conv(g, w, a[:2])["both_nonzero"] / (2 * g.macs_per_sample))
    assert row.weight_bytes["dense"] == w.size * 4 / 8
    assert row.act_bytes["dense"] == g.C * g.H * g.W  # 8-bit, per sample
    totals = network_totals([row, row])
    assert totals["dense_macs_per_sample"] == 2 * g.macs_per_sample
    assert totals["frac_macs_both_nonzero"] == pytest.approx(row.frac_macs_both_nonzero)
    assert totals["act_bytes"]["rle"] == pytest.approx(2 * row.act_bytes["rle"])
