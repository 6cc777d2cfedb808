"""Per-PE, per-step work from real masks equals an independent brute force."""
from __future__ import annotations

import random
from itertools import product

import numpy as np
import pytest

from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, LoopNest
from sim_helpers import split_factors
from accelsim.map.sparse import MODE_ACT, MODE_BOTH, MODE_DENSE, MODE_WEIGHT, effectual_pairs, step_work


def _digits(value: int, factors: list[int]) -> list[int]:
    """Mixed-radix digits (outer first) of ``value`` for loop ``factors`` (outer first)."""
    out = []
    for f in reversed(factors):
        out.append(value % f)
        value //= f
    return out[::-1]


def brute_work(nest, mapping, fan, act, wmask, pads, mode):
    """Decompose every MAC's coordinates into loop indices (the inverse of the kernel's walk)."""
    flat = [(lv, l) for lv, level in enumerate(mapping.levels) for l in level.temporal + level.spatial]
    per_dim = {d: [i for i, (lv, l) in enumerate(flat) if l.dim == d] for d in DIMS}
    outer = [i for i, (lv, l) in enumerate(flat) if lv <= fan and not l.spatial]
    ys = [i for i, (lv, l) in enumerate(flat) if lv == fan and l.spatial and l.axis == "Y"]
    xs = [i for i, (lv, l) in enumerate(flat) if lv == fan and l.spatial and l.axis == "X"]
    size = lambda idx: int(np.prod([flat[i][1].factor for i in idx])) if idx else 1
    work = np.zeros((size(outer), size(ys), size(xs)), dtype=np.int64)
    n_, g_, k_, c_, p_, q_, r_, s_ = nest.bounds
    H, W = act.shape[2], act.shape[3]
    for n, g, k, c, p, q, r, s in product(*[range(b) for b in nest.bounds]):
        value = dict(zip(DIMS, (n, g, k, c, p, q, r, s)))
        idx = {}
        for d in DIMS:
            for i, digit in zip(per_dim[d], _digits(value[d], [flat[i][1].factor for i in per_dim[d]])):
                idx[i] = digit

        def coord(loops):
            v = 0
            for i in loops:
                v = v * flat[i][1].factor + idx[i]
            return v
        h, w = p * nest.stride_h + r * nest.dil_h - pads[0], q * nest.stride_w + s * nest.dil_w - pads[1]
        a = bool(act[n, g * c_ + c, h, w]) if (0 <= h < H and 0 <= w < W) else False
        wt = bool(wmask[g * k_ + k, c, r, s])
        hit = {MODE_DENSE: True, MODE_ACT: a, MODE_WEIGHT: wt, MODE_BOTH: a and wt}[mode]
        work[coord(outer), coord(ys), coord(xs)] += int(hit)
    return work


def _case(rng):
    b = dict(N=rng.choice([1, 2]), G=rng.choice([1, 2]), K=rng.choice([1, 2, 4]), C=rng.choice([1, 2, 3]),
             P=rng.choice([1, 3, 4]), Q=rng.choice([1, 2, 3]), R=rng.choice([1, 2, 3]), S=rng.choice([1, 3]))
    nest = LoopNest(tuple(b[d] for d in DIMS), rng.choice([1, 2]), rng.choice([1, 2]),
                    rng.choice([1, 2]), rng.choice([1, 2]))
    levels = [[[], []] for _ in range(3)]
    for d in DIMS:
        for j, f in enumerate(split_factors(b[d], 4, rng)):
            lv = (0, 1, 1, 2)[j]
            spatial = j == 2
            levels[lv][int(spatial)].append(Loop(d, f, spatial, rng.choice("XY")))
    mapping = Mapping(tuple(LevelLoops(f"L{i}", tuple(t), tuple(s)) for i, (t, s) in enumerate(levels)))
    pads = (rng.choice([0, 1]), rng.choice([0, 1, 2]))
    H = (b["P"] - 1) * nest.stride_h + (b["R"] - 1) * nest.dil_h + 1 - 2 * pads[0]
    W = (b["Q"] - 1) * nest.stride_w + (b["S"] - 1) * nest.dil_w + 1 - 2 * pads[1]
    H, W = max(H, 1), max(W, 1)
    density = rng.choice([0.0, 0.3, 0.7, 1.0])
    np_rng = np.random.default_rng(rng.randrange(1 << 30))
    act = np_rng.random((b["N"], b["G"] * b["C"], H, W)) < density
    wmask = np_rng.random((b["G"] * b["K"], b["C"], b["R"], b["S"])) < rng.choice([0.0, 0.5, 1.0])
    return nest, mapping, act, wmask, pads


@pytest.mark.parametrize("seed", range(30))
def test_step_work_equals_brute_force(seed):
    rng = random.Random(seed)
    nest, mapping, act, wmask, pads = _case(rng)
    for mode in (MODE_DENSE, MODE_ACT, MODE_WEIGHT, MODE_BOTH):
        slow = brute_work(nest, mapping, 1, act, wmask, pads, mode)
        for method in ("packed", "boxed", "factored", "auto"):
            fast = step_work(nest, mapping, 1, act, wmask, pads, mode, method)
            np.testing.assert_array_equal(fast, slow, err_msg=method)
        if mode == MODE_BOTH:
            assert effectual_pairs(nest, act, wmask, pads) == slow.sum()


def test_dense_total_is_every_mac_and_single_pe():
    nest = LoopNest((1, 1, 2, 3, 4, 4, 3, 3))
    mapping = Mapping((LevelLoops("DRAM", (Loop("K", 2),)), LevelLoops("PE", (Loop("C", 3), Loop("P", 4),
                        Loop("Q", 4), Loop("R", 3), Loop("S", 3)))))
    act = np.ones((1, 3, 6, 6), bool)
    wmask = np.zeros((2, 3, 3, 3), bool)
    dense = step_work(nest, mapping, 0, act, wmask, (0, 0), MODE_DENSE)
    assert dense.shape == (2, 1, 1) and dense.sum() == nest.macs
    assert step_work(nest, mapping, 0, act, wmask, (0, 0), MODE_BOTH).sum() == 0


def _remainder_case(rng):
    """A case whose mapping leaves remainders (odd sizes, factors not dividing)."""
    from test_map_access import remainder_factors

    b = dict(N=rng.choice([1, 2]), G=rng.choice([1, 2]), K=rng.choice([1, 3, 5]), C=rng.choice([1, 3, 5]),
             P=rng.choice([1, 5, 7]), Q=rng.choice([1, 3]), R=rng.choice([1, 3]), S=rng.choice([1, 3]))
    nest = LoopNest(tuple(b[d] for d in DIMS), rng.choice([1, 2]), rng.choice([1, 2]),
                    rng.choice([1, 2]), rng.choice([1, 2]))
    levels = [[[], []] for _ in range(3)]
    for d in DIMS:
        for j, f in enumerate(remainder_factors(b[d], 4, rng)):
            lv = (0, 1, 1, 2)[j]
            spatial = j == 2
            levels[lv][int(spatial)].append(Loop(d, f, spatial, rng.choice("XY")))
    mapping = Mapping(tuple(LevelLoops(f"L{i}", tuple(t), tuple(s)) for i, (t, s) in enumerate(levels)))
    mapping.check(nest)
    pads = (rng.choice([0, 1]), rng.choice([0, 1]))
    H = max((b["P"] - 1) * nest.stride_h + (b["R"] - 1) * nest.dil_h + 1 - 2 * pads[0], 1)
    W = max((b["Q"] - 1) * nest.stride_w + (b["S"] - 1) * nest.dil_w + 1 - 2 * pads[1], 1)
    np_rng = np.random.default_rng(rng.randrange(1 << 30))
    act = np_rng.random((b["N"], b["G"] * b["C"], H, W)) < rng.choice([0.0, 0.4, 1.0])
    wmask = np_rng.random((b["G"] * b["K"], b["C"], b["R"], b["S"])) < rng.choice([0.0, 0.5, 1.0])
    return nest, mapping, act, wmask, pads


def _check_remainder_work(seed):
    rng = random.Random(7000 + seed)
    nest, mapping, act, wmask, pads = _remainder_case(rng)
    for mode in (MODE_DENSE, MODE_ACT, MODE_WEIGHT, MODE_BOTH):
        slow = brute_work(nest, mapping, 1, act, wmask, pads, mode)
        for method in ("packed", "boxed", "factored", "auto"):
            fast = step_work(nest, mapping, 1, act, wmask, pads, mode, method)
            np.testing.assert_array_equal(fast, slow, err_msg=method)
    assert step_work(nest, mapping, 1, act, wmask, pads, MODE_DENSE).sum() == nest.macs


@pytest.mark.parametrize("seed", range(25))
def test_step_work_with_remainder_tiles_equals_brute_force(seed):
    _check_remainder_work(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(200))
def test_step_work_with_remainder_tiles_many_seeds(seed):
    _check_remainder_work(seed)
