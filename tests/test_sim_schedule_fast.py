"""The no-gating fold schedule (array and per-PE sync) against the plain-Python recurrence of
tests/naive.py (a finish[s][f] table and explicit PE timelines): layers of one fold per conv
group (the flat pass, the never-mapped PEs carried as one finish time), several folds,
lanes > 1 (busy cycles divided fold by fold), one PE, all-zero and constant work."""
from __future__ import annotations

import numpy as np
import pytest

import naive
from accelsim.sim.kernels import schedule as sch

KEYS = ((sch.ST_CYCLES, "cycles"), (sch.ST_FOLDS, "folds"), (sch.ST_SUM_MAX_BUSY, "sum_max_busy"),
        (sch.ST_SUM_MEAN_BUSY, "sum_mean_busy"), (sch.ST_BUSY_PE_CYCLES, "busy_pe_cycles"),
        (sch.ST_ACTIVE_PE_CYCLES, "active_pe_cycles"),
        (sch.ST_MAPPED_PE_FOLDS, "mapped_pe_folds"), (sch.ST_FILL_DRAIN, "fill_drain"))


def _check(work, rows, cols, lanes, overhead, sync, depth):
    got = sch.fold_schedule(sch.as_work(work), rows, cols, lanes, overhead, sync, depth, False, 1)
    ref = naive.schedule(np.asarray(work), rows, cols, lanes, overhead, sync, depth)
    for index, key in KEYS:        # the mean's float sum in fold order, as the reference's
        assert got[index] == ref[key], (key, got[index], ref[key])
    assert got[sch.ST_GATED_PE_CYCLES] == 0 and got[sch.ST_WAKEUPS] == 0
    assert got[sch.ST_ISSUED] == int(np.asarray(work, dtype=np.int64).sum())
    return got


def test_one_fold_per_group_by_hand():
    """2x2 array, decoupled, depth 1, overhead 2; one mapped PE (three never mapped) working
    5, 0, 3 cycles: finish 0+2+5 = 7; max(7, 7)+2+0 = 9; max(9, 9)+2+3 = 14 (the idle PEs
    reach 2, 9, 11: never the latest). Whole-array sync: the same here."""
    work = np.array([5, 0, 3]).reshape(3, 1, 1)
    for sync in (sch.SYNC_DECOUPLED, sch.SYNC_ARRAY):
        got = _check(work, 2, 2, 1, 2, sync, 1)
        assert got[sch.ST_CYCLES] == 14
        assert got[sch.ST_ACTIVE_PE_CYCLES] == (2 + 5) + (2 + 3)   # PEs with work only
    # lanes 2: busy 3, 0, 2 -> 0+2+3 = 5, 5+2 = 7, 7+2+2 = 11; issued stays 8
    got = _check(work, 2, 2, 2, 2, sch.SYNC_DECOUPLED, 1)
    assert got[sch.ST_CYCLES] == 11 and got[sch.ST_ISSUED] == 8 and got[sch.ST_BUSY_PE_CYCLES] == 5


def test_decoupled_pes_drift_within_the_queue_depth_by_hand():
    """A 1x2 array, two PEs both mapped every fold (one fold per group), depth 2, no
    overhead: PE0 works 4, 1, 1, PE1 1, 1, 4. Fold f may start once fold f-2 ended everywhere:
    PE0 4, 5, 6; PE1 1, 2, max(2, G[0] = 4) + 4 = 8 -> 8 cycles (lock-step: 4 + 1 + 4 = 9)."""
    work = np.array([[4, 1], [1, 1], [1, 4]]).reshape(3, 1, 2)
    assert _check(work, 1, 2, 1, 0, sch.SYNC_DECOUPLED, 2)[sch.ST_CYCLES] == 8
    assert _check(work, 1, 2, 1, 0, sch.SYNC_ARRAY, 2)[sch.ST_CYCLES] == 9


@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (4, 4), (5, 2)])
@pytest.mark.parametrize("lanes", [1, 3])
def test_edge_shapes(rows, cols, lanes):
    """One fold per group (full, partial, one PE), several folds (edge folds), no groups."""
    rng = np.random.default_rng(rows * 10 + cols + lanes)
    shapes = [(3, rows, cols), (2, 1, 1), (4, max(1, rows - 1), cols), (2, rows + 1, 2 * cols + 1),
              (0, rows, cols), (1, 3 * rows, 1)]
    for shape in shapes:
        for work in (rng.integers(0, 12, size=shape), np.zeros(shape, np.int64),
                     np.full(shape, 7)):
            for sync in (sch.SYNC_ARRAY, sch.SYNC_DECOUPLED):
                for depth in (1, 3):
                    _check(work, rows, cols, lanes, 1, sync, depth)


def test_random_cases():
    rng = np.random.default_rng(77)
    for _ in range(60):
        _random_case(rng)


@pytest.mark.slow
def test_random_cases_many_seeds():
    rng = np.random.default_rng(78)
    for _ in range(2000):
        _random_case(rng)


def _random_case(rng):
    rows, cols = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    if rng.random() < 0.5:     # one fold per group
        shape = (int(rng.integers(0, 6)), int(rng.integers(1, rows + 1)), int(rng.integers(1, cols + 1)))
    else:
        shape = (int(rng.integers(0, 4)), int(rng.integers(1, 15)), int(rng.integers(1, 15)))
    work = rng.integers(0, 25, size=shape) * (rng.random(shape) < rng.random())
    lanes, overhead, depth = int(rng.integers(1, 4)), int(rng.integers(0, 4)), int(rng.integers(1, 6))
    for sync in (sch.SYNC_ARRAY, sch.SYNC_DECOUPLED):
        _check(work, rows, cols, lanes, overhead, sync, depth)


def test_plain_schedule_compiles_once():
    """One specialisation of the plain kernel and its fold pass for the simulator's arrays."""
    for lanes in (1, 2):
        _check(np.ones((2, 3, 3), np.int64), 4, 4, lanes, 0, sch.SYNC_DECOUPLED, 2)
        _check(np.ones((2, 9, 3), np.int64), 4, 4, lanes, 0, sch.SYNC_ARRAY, 2)
    for kernel in (sch._fold_schedule_plain, sch._fold_pass):
        if hasattr(kernel, "signatures") and kernel.signatures:   # none: loaded from the cache
            assert len(kernel.signatures) == 1, kernel.signatures
