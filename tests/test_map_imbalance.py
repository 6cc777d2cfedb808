"""Load imbalance in the mapper's ranking (issue 22, item 3 leftover): ``sparse_cost``'s compute
term is the expected step time of the sync groups (each step as long as the busiest PE of its
group), not the mean work. Checked against brute force over outcomes, against the schedule
kernel on drawn work, and against the simulator's own path on real random masks."""
from __future__ import annotations

import dataclasses
import itertools
import math
import random

import numpy as np
import pytest

from accelsim.hw import load_hw
from accelsim.map import cost as C
from accelsim.map import mapper as M
from accelsim.map.access import analyse
from accelsim.map.arch import arch_of
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import LoopNest
from accelsim.map.sparse import MODE_ACT, MODE_BOTH, MODE_WEIGHT, step_work
from accelsim.sim.kernels import schedule as sch

MODES = {(True, True): MODE_BOTH, (True, False): MODE_ACT, (False, True): MODE_WEIGHT}


def _binom(n: int, p: float, x: int) -> float:
    return math.comb(n, x) * p ** x * (1 - p) ** (n - x)


@pytest.mark.parametrize("n,p,m,lanes,pes", [(1, 0.5, 1, 1, 1), (3, 0.3, 1, 1, 3), (4, 0.7, 2, 1, 2),
                                             (3, 0.5, 1, 2, 3), (2, 0.2, 3, 2, 4), (4, 0.0, 1, 1, 2),
                                             (3, 1.0, 2, 4, 2), (5, 0.45, 1, 3, 2)])
def test_lock_step_max_is_the_brute_force_expectation(n, p, m, lanes, pes):
    """Every outcome of ``pes`` PEs' binomial work, weighted by its probability."""
    expected = 0.0
    for xs in itertools.product(range(n + 1), repeat=pes):
        prob = math.prod(_binom(n, p, x) for x in xs)
        expected += prob * max(-(-(m * x) // lanes) for x in xs)
    for k in range(1, pes + 1):
        if pes % k == 0:      # lock-step: any split into groups is the max over all PEs
            assert C.expected_step_max(n, p, m, lanes, k, pes // k, 1) == pytest.approx(expected, abs=1e-12)


def test_both_operands_skipped_against_brute_force():
    """A 2 x 2 grid of PEs: along X two filters (sharing activations), along Y two reduction
    sets: work = sum over 2 reduction positions of (non-zero activations of 2 pixels) x
    (non-zero weight), enumerated over every mask."""
    da, dw = 0.4, 0.6
    e_in, e_both = 2, 2
    outcomes = []
    for a in itertools.product(range(e_in + 1), repeat=2 * e_both):            # (yc, c)
        pa = math.prod(_binom(e_in, da, v) for v in a)
        for w in itertools.product((0, 1), repeat=4 * e_both):                 # (xw, yc, c)
            pw = math.prod(dw if v else 1 - dw for v in w)
            works = [sum(a[yc * 2 + c] * w[(xw * 2 + yc) * 2 + c] for c in range(2))
                     for xw in range(2) for yc in range(2)]
            outcomes.append((pa * pw, max(works)))
    mean = sum(pr * v for pr, v in outcomes)
    sd = math.sqrt(sum(pr * (v - mean) ** 2 for pr, v in outcomes))
    # PE x * 2 + y: column x (a filter), row y (a reduction set): windows by y, blocks by both
    got = C.mc_step_max(e_in, 1, e_both, da, dw, 1, (0, 1, 0, 1), (0, 1, 2, 3), 2, 2, "array", 1)
    assert abs(got - mean) < 4 * sd / math.sqrt(C._DRAWS), (got, mean)
    assert got > e_both * e_in * da * dw      # above a PE's mean work: the max of 4 PEs


@pytest.mark.parametrize("sync,rows,cols", [("decoupled", 8, 8), ("row", 8, 6), ("column", 4, 8)])
@pytest.mark.parametrize("q", [2, 4])
def test_groups_that_drift_against_the_schedule_kernel(sync, rows, cols, q):
    """i.i.d. binomial work through the simulator's fold recurrence, 400 steps x 8 arrays."""
    n, p = 12, 0.35
    rng = np.random.default_rng(1)
    work = rng.binomial(n, p, size=(400 * 8, rows, cols)).astype(np.int64)
    cycles = [sch.fold_schedule(sch.as_work(work[i * 400:(i + 1) * 400]), rows, cols, 1, 0, sch.SYNC_CODES[sync], q,
                                False, 1)[sch.ST_CYCLES] for i in range(8)]
    measured = float(np.mean(cycles)) / 400
    k, groups = {"decoupled": (1, rows * cols), "row": (cols, rows), "column": (rows, cols)}[sync]
    model = C.expected_step_max(n, p, 1, 1, k, groups, q, ((400, "B"),))   # a new block each step
    lock = C.expected_step_max(n, p, 1, 1, k, groups, 1)
    assert model == pytest.approx(measured, rel=0.03)
    assert n * p < model < lock


# -- against the simulator's path on real masks ------------------------------------------------
def _measure(nest, mapping, arch, mode, da, dw, sync, depth, seeds, pads=(0, 0)):
    """Compute cycles of ``mapping`` on random Bernoulli masks, as ``sim/loopnest._sample``:
    per-PE work from the masks (``step_work``; padding positions issued, the default
    ``sparsity.skip_padding: false``) through the fold recurrence."""
    n, g, k, c, p, q, r, s = nest.bounds
    h = (p - 1) * nest.stride_h + r - 2 * pads[0]
    w = (q - 1) * nest.stride_w + s - 2 * pads[1]
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        act = rng.random((n, g * c, h, w)) < da
        wm = rng.random((g * k, c, r, s)) < dw
        work = step_work(nest, mapping, arch.fanout_level, act, wm, pads, mode,
                         pad_issued=mode in (MODE_ACT, MODE_BOTH) and pads != (0, 0))
        out.append(sch.fold_schedule(sch.as_work(work), arch.rows, arch.cols, arch.lanes, 0, sch.SYNC_CODES[sync],
                                     depth, False, 1)[sch.ST_CYCLES])
    return float(np.mean(out)), float(np.std(out)) / math.sqrt(seeds)


def _case(seed: int):
    """A random layer (groups, stride, padding, odd sizes), design and drawn mapping."""
    rng = random.Random(seed)
    hwf = rng.choice(["hw_configs/sparten_like.yaml", "hw_configs/cnvlutin_like.yaml"])
    df = rng.choice(["output_stationary", "weight_stationary", "input_stationary", "row_stationary"])
    hw = load_hw(hwf, {"pe_array.dataflow": df, "pe_array.rows": rng.choice([1, 4, 8, 16]),
                       "pe_array.cols": rng.choice([1, 3, 8, 16]),
                       "pe_array.macs_per_pe": rng.choice([1, 1, 2, 4])})
    arch = arch_of(hw)
    r = rng.choice([1, 1, 3])
    stride = rng.choice([1, 2, 3]) if r == 3 else 1
    pad = 0       # padding is not modelled (see test_padding_is_not_modelled)
    groups = rng.choice([1, 1, 2])
    bounds = (rng.choice([1, 2]), groups, rng.choice([3, 8, 16]), rng.choice([3, 8, 16]),
              rng.choice([3, 7, 14]), rng.choice([4, 7]), r, r)
    nest = LoopNest(bounds, stride, stride, 1, 1, "t")
    space = M._Space(nest, arch, M.DATAFLOW_RULES[df], random.Random(seed))
    choice = space.draw(rng.randrange(len(space.spatials))) if space.spatials else None
    skip = rng.choice(list(MODES))
    da, dw = rng.choice([0.0, 0.2, 0.5, 0.8, 1.0]), rng.choice([0.3, 0.6, 1.0])
    sync = rng.choice(["array", "row", "column", "decoupled"])
    depth = rng.choice([1, 2, 4])
    overlap = r > stride        # neighbouring windows share activations
    return hw, arch, nest, choice and space.build(choice), skip, da, dw, sync, depth, pad, overlap


#: stated before measuring: within 5% (+ 3 standard errors of the measured mean) where no two
#: conv windows share an activation; where they do (stride < filter), the model's independence
#: is wrong (neighbours' and consecutive steps' work correlate) and 25% is all it claims
TOLERANCE, OVERLAP_TOLERANCE = 0.05, 0.25


def _check(seed: int, seeds: int) -> None:
    hw, arch, nest, mapping, skip, da, dw, sync, depth, pad, overlap = _case(seed)
    if mapping is None:
        return
    counts = analyse(nest, mapping, arch.keeps, arch.unicast)
    issue = (da if skip[0] else 1.0) * (dw if skip[1] else 1.0)
    model = dataclasses.replace(C.sparse_model(hw, arch, nest, C.Densities(da, dw)), skip=skip,
                                issue=issue, skip_density=(da, dw), sync=sync, queue_depth=depth)
    expected = C.imbalanced_compute(counts, arch, model, mapping)
    measured, se = _measure(nest, mapping, arch, MODES[skip], da, dw, sync, depth, seeds,
                            (pad, pad))
    if measured == 0:
        assert expected == 0
        return
    tol = (OVERLAP_TOLERANCE if overlap or pad else TOLERANCE) + 3 * se / measured
    assert abs(expected / measured - 1) <= tol, (seed, expected, measured, se, mapping.to_dict())


@pytest.mark.parametrize("seed", range(14))
def test_expected_compute_matches_real_masks(seed):
    _check(seed, 6)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(14, 214))
def test_expected_compute_matches_real_masks_many(seed):
    _check(seed, 16)


@pytest.mark.parametrize("density", [0.0, 1.0])
def test_all_zero_and_all_one_masks(density):
    """All zeros: nothing issued, no cycles; all ones: every PE the whole block each step."""
    hw = load_hw("hw_configs/sparten_like.yaml", {"pe_array.macs_per_pe": 2})
    arch = arch_of(hw)
    nest = LoopNest((1, 1, 5, 6, 3, 5, 1, 1), 1, 1, 1, 1, "t")
    mapping = Mapping((LevelLoops("DRAM", (Loop("K", 5),)),
                       LevelLoops("glb", (Loop("C", 2),), (Loop("P", 3, True, "X"), Loop("Q", 5, True, "Y"))),
                       LevelLoops("input_spad"), LevelLoops("weight_spad"),
                       LevelLoops("psum_spad", (Loop("C", 3),))))
    model = C.sparse_model(hw, arch, nest, C.Densities(density, density))
    counts = analyse(nest, mapping, arch.keeps, arch.unicast)
    got = C.imbalanced_compute(counts, arch, model, mapping)
    # by hand: 10 steps; all ones: 3 slots per PE block on 2 lanes = 2 cycles a step
    assert got == (0.0 if density == 0.0 else 20.0)
    assert got == _measure(nest, mapping, arch, MODE_BOTH, density, density, "decoupled", 4, 1)[0]


def test_padding_is_not_modelled():
    """The model sees no padding (the mapper's nest has none): a padded layer's padding slots,
    issued by default (``sparsity.skip_padding: false``), are charged as activations at the
    layer's density, so at a low density it under-predicts; without padding it matches."""
    hw = load_hw("hw_configs/cnvlutin_like.yaml", {"pe_array.rows": 4, "pe_array.cols": 4})
    arch = arch_of(hw)
    nest = LoopNest((1, 1, 4, 4, 4, 4, 3, 3), 3, 3, 1, 1, "t")     # stride 3: no overlap
    mapping = Mapping((LevelLoops("DRAM", (Loop("C", 4),)),
                       LevelLoops("glb", (), (Loop("P", 4, True, "X"), Loop("Q", 4, True, "Y"))),
                       LevelLoops("synapse_buffer", (Loop("K", 4),)), LevelLoops("input_spad"),
                       LevelLoops("psum_spad", (Loop("R", 3), Loop("S", 3)))))
    model = dataclasses.replace(C.sparse_model(hw, arch, nest, C.Densities(0.2, 1.0)), sync="array")
    counts = analyse(nest, mapping, arch.keeps, arch.unicast)
    expected = C.imbalanced_compute(counts, arch, model, mapping)
    plain = _measure(nest, mapping, arch, MODE_ACT, 0.2, 1.0, "array", 1, 16)
    padded = _measure(nest, mapping, arch, MODE_ACT, 0.2, 1.0, "array", 1, 16, (1, 1))
    assert expected == pytest.approx(plain[0], rel=TOLERANCE + 3 * plain[1] / plain[0])
    assert expected < 0.9 * padded[0]


# -- the ranking effect --------------------------------------------------------------------------
def _two_mappings():
    """Cnvlutin-like (activation skipping, a PE row syncs, 4-step queue), ideal memory; a 1x1
    layer K16 C64 4x4 on 16 columns x 16 rows. A: pixels along the row (X), filters down (Y):
    every row holds 16 different pixels and all rows the same work, so each step waits for the
    busiest of 16; B: filters along the row, pixels down: a row's PEs share their activations
    (equal work) and the 16 rows drift up to 4 steps apart. Same PEs, same steps, same mean."""
    hw = load_hw("hw_configs/cnvlutin_like.yaml",
                 {"dram.ideal": True, "memory_hierarchy.glb.read_words_per_cycle": None})
    arch = arch_of(hw)
    nest = LoopNest((1, 1, 16, 64, 4, 4, 1, 1), 1, 1, 1, 1, "t")

    def mapping(x, y):
        spatial = tuple(Loop(d, f, True, "X") for d, f in x) + tuple(Loop(d, f, True, "Y") for d, f in y)
        return Mapping((LevelLoops("DRAM"), LevelLoops("glb", (Loop("C", 16),), spatial),
                        LevelLoops("synapse_buffer", (Loop("C", 4),)), LevelLoops("input_spad"),
                        LevelLoops("psum_spad")))

    a = mapping((("P", 4), ("Q", 4)), (("K", 16),))
    b = mapping((("K", 16),), (("P", 4), ("Q", 4)))
    return hw, arch, nest, a, b


def test_larger_sync_groups_rank_slower_and_the_mapper_prefers_the_other(monkeypatch):
    hw, arch, nest, a, b = _two_mappings()
    da = 0.5
    model = C.sparse_model(hw, arch, nest, C.Densities(da, 1.0))
    old = dataclasses.replace(model, skip=(False, False))     # the mean work: steps x issue
    ca, cb = (analyse(nest, m, arch.keeps, arch.unicast) for m in (a, b))
    assert C.sparse_cost(ca, arch, old, a).cycles == C.sparse_cost(cb, arch, old, b).cycles == 16 * 4 * da
    meas_a = _measure(nest, a, arch, MODE_ACT, da, 1.0, "row", 4, 20)[0]
    meas_b = _measure(nest, b, arch, MODE_ACT, da, 1.0, "row", 4, 20)[0]
    assert meas_a > 1.3 * meas_b
    cost_a, cost_b = C.sparse_cost(ca, arch, model, a), C.sparse_cost(cb, arch, model, b)
    assert cost_a.bottleneck == cost_b.bottleneck == "compute"
    assert cost_a.cycles == pytest.approx(meas_a, rel=0.05)
    assert cost_b.cycles == pytest.approx(meas_b, rel=0.05)
    # the mapper, free to put filters or pixels on either axis, now takes B's kind of mapping
    monkeypatch.setitem(M.DATAFLOW_RULES, "either", M.DataflowRule(x=("P", "Q", "K"), y=("K", "P", "Q"),
                                                                   pe=("C",)))
    picked = M.search(nest, arch, "either", "latency", 16, model=model).mapping
    assert _measure(nest, picked, arch, MODE_ACT, da, 1.0, "row", 4, 20)[0] <= 1.05 * meas_b
