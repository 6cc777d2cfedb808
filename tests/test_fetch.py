"""Activation-driven weight fetch (accelsim.sim.fetch) against a brute-force burst count,
and its hooks in both simulator engines."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.sim import fetch
from accelsim.trace.geometry import LayerGeometry


def brute_force_bytes(needed, outputs: int, layout: str, bits: int, burst: int) -> float:
    """Every needed element's bits, the set of bursts they touch, each counted inside the matrix."""
    c = len(needed)
    total = outputs * c * bits
    touched = set()
    for k in range(outputs):
        for ch in range(c):
            if not needed[ch]:
                continue
            index = ch * outputs + k if layout == "input_major" else k * c + ch
            for bit in range(index * bits, (index + 1) * bits):
                touched.add(bit // (8 * burst))
    size = 0
    for b in touched:
        lo, hi = b * 8 * burst, (b + 1) * 8 * burst
        size += min(hi, total) - lo
    return size / 8.0


@pytest.mark.parametrize("layout", fetch.LAYOUTS)
def test_fetched_bytes_equal_brute_force_on_random_cases(layout):
    rng = np.random.default_rng(0)
    for _ in range(150):
        c = int(rng.integers(1, 24))
        k = int(rng.integers(1, 12))
        bits = int(rng.choice([1, 3, 4, 8, 16]))
        burst = int(rng.choice([1, 2, 4, 8, 32, 64]))
        needed = rng.random(c) < rng.random()
        got = fetch.fetched_weight_bytes(needed, k, layout, bits, burst)
        assert got == brute_force_bytes(needed, k, layout, bits, burst), (c, k, bits, burst, needed)


@pytest.mark.parametrize("layout", fetch.LAYOUTS)
def test_edge_cases(layout):
    # all needed: exactly the dense matrix (no burst rounding); none: nothing
    for c, k, bits, burst in ((7, 5, 8, 64), (16, 16, 8, 4), (3, 1, 4, 1), (1, 1, 8, 64)):
        dense = c * k * bits / 8
        assert fetch.fetched_weight_bytes(np.ones(c, bool), k, layout, bits, burst) == dense
        assert fetch.fetched_weight_bytes(np.zeros(c, bool), k, layout, bits, burst) == 0.0
    with pytest.raises(AccelsimError, match="weight layout"):
        fetch.fetched_weight_bytes(np.ones(3, bool), 2, "diagonal", 8, 64)
    with pytest.raises(AccelsimError, match="burst_bytes"):
        fetch.fetched_weight_bytes(np.ones(3, bool), 2, layout, 8, 0)


def test_layout_granularity_hand_counts():
    # 128 outputs x 64 inputs, 8-bit, 64-byte bursts: input-major has two bursts per input
    needed = np.zeros(64, bool)
    needed[::2] = True                       # every other input
    assert fetch.fetched_weight_bytes(needed, 128, "input_major", 8, 64) == 32 * 128
    # output-major: each 64-byte row holds all 64 inputs of one output: nothing is skipped
    assert fetch.fetched_weight_bytes(needed, 128, "output_major", 8, 64) == 64 * 128
    needed[:] = False
    needed[:32] = True                       # the first half: half of each row = one 32 B half burst
    assert fetch.fetched_weight_bytes(needed, 128, "output_major", 8, 32) == 32 * 128


def test_needed_inputs_and_fraction():
    act = np.zeros((2, 6, 3, 1), bool)      # (n, C, tokens, 1)
    act[0, 1, 2] = True
    act[1, 4, 0] = True
    assert fetch.needed_inputs(act).tolist() == [False, True, False, False, True, False]
    assert fetch.needed_inputs(act[0]).tolist() == [False, True, False, False, False, False]
    g = LayerGeometry("linear", N=2, C=6, H=3, W=1, K=4)
    assert fetch.fetch_fraction(act, g, "input_major", 8, 4) == pytest.approx(2 / 6)
    conv = LayerGeometry("conv2d", N=2, C=6, H=3, W=1, K=4)
    assert fetch.fetch_fraction(act, conv, "input_major", 8, 4) == 1.0
    with pytest.raises(AccelsimError, match="expected a"):
        fetch.needed_inputs(np.zeros(3, bool))


def _linear_layer(density: float, seed: int = 0):
    from accelsim.trace.layer import LayerTrace

    rng = np.random.default_rng(seed)
    c, k = 256, 256
    g = LayerGeometry("linear", N=2, C=c, H=1, W=1, K=k)
    act = rng.random((2, c, 1, 1)) < density
    w = np.ones((k, c, 1, 1), bool)
    return LayerTrace(0, "fc", g, 8, 8, lambda: w, lambda n=None: act[: (2 if n is None else n)],
                      output_density=1.0, stats={}), act


def _hw(tmp_path, **sparsity):
    from accelsim.hw import load_hw

    hw = load_hw("hw_configs/edge_npu_lpddr.yaml")
    return dataclasses.replace(hw, sparsity=dataclasses.replace(hw.sparsity, **sparsity))


@pytest.mark.parametrize("loopnest", [False, True])
def test_engines_fetch_only_needed_weights(tmp_path, loopnest):
    from accelsim.sim.engine import simulate_layer

    layer, act = _linear_layer(0.3)
    hw_skip = _hw(tmp_path, skip_weight_fetch=True)
    hw_plain = _hw(tmp_path, skip_weight_fetch=False)
    if loopnest:
        from accelsim.hw import load_hw

        base = load_hw("hw_configs/eyeriss_v1.yaml")
        hw_skip = dataclasses.replace(base, sparsity=dataclasses.replace(
            base.sparsity, skip_weight_fetch=True), residency=hw_skip.residency)
        hw_plain = dataclasses.replace(hw_skip, sparsity=base.sparsity)
    skip = simulate_layer(layer, hw_skip)
    plain = simulate_layer(layer, hw_plain)
    frac = np.mean([fetch.hw_fetch_fraction(layer, act[i:i + 1], hw_skip) for i in range(2)])
    assert 0.2 < frac < 0.4
    assert skip["dram_weight_read_bytes"] == pytest.approx(plain["dram_weight_read_bytes"] * frac,
                                                           rel=1e-9)
    assert skip["dram_bytes"] < plain["dram_bytes"]
