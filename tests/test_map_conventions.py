"""Counting conventions of ``accelsim.map.access``, derived from Timeloop's source.

Read in github.com/NVlabs/timeloop at 4cf6d4c (2025-03-31), and at tag v3.0.3 (6b41058,
2023-10-05) for the stride rule in force until a12fff5 (2025-01-21), i.e. when the reference
outputs in tests/fixtures/timeloop were generated (2024-05):

- src/loop-analysis/nest-analysis.cpp: ``ComputeDeltas`` (a level's delta = its point set
  minus the one of its previous invocation, kept per loop and spatial instance),
  ``ComputeTemporalWorkingSet`` (deltas summed per storage boundary; by default only
  iterations 0 and 1 of each loop are run and iteration 1 is weighted n-1),
  ``ComputeSpatialWorkingSet`` / ``FillSpatialDeltas`` (each child's delta; children after
  the first are its translates), ``ComputeAccurateMulticastedAccesses`` (children whose
  deltas are equal, ``CheckEquality``, share one access: multicast factor = their number),
  ``ComputeNetworkLinkTransfers`` (neighbour forwarding, not modelled here).
- src/workload/shape-models/operation-space.cpp: ``OperationSpace::SaveAndSubtractIfSameStride``
  (both versions: v3.0.3 records every translation, a zero one too; a12fff5, 2025-01, skips
  zero ones).
- src/loop-analysis/point-set-multi-aahr.cpp (exact ``Subtract``, centroid ``GetTranslation``,
  ``operator==``) and point-set-aahr.cpp.
- src/loop-analysis/tiling.cpp: ``MaskTiles`` (a level that bypasses a tensor: its parent's
  accesses are scaled by the bypassed level's, so the multicast of each spatial level
  multiplies), ``ComputeParentAccessShare``; nest-analysis-tile-info.cpp
  (``AccessStatMatrix::TotalAccesses`` / ``WeightedAccesses``).

Conventions they give (tests/naive_nest.py walks them on explicit sets):

- multicast: children of one instance of a level whose data are the same set share a read,
  whatever loop dims they differ in: row-stationary PEs ``(p, r)`` with equal
  ``p*stride + r*dilation`` need the same input row. Sharing is per level: PEs split over
  two levels (columns above rows, the eyeriss fixtures) share nothing across the split.
  Children whose tiles only overlap (halos) do not share (Timeloop compares whole deltas).
- time: each step the tile is translated; the new elements are moved in while the
  translation repeats the last one, so a sliding window keeps its overlap across steps,
  also when its loop is split in two and the outer one advances; a changed translation
  reloads the whole tile (reset on stride change). As in v3.0.3 a zero translation is
  recorded, so the move after a stationary step reloads (design-eyeriss_like's DRAM input
  reads need it); a step that leaves the tile in place costs nothing (as since a12fff5).
- we walk every step; Timeloop's default run extrapolates each loop from its iterations 0
  and 1, so it sees an outer loop's jump from inner loops at iteration 1, not n-1: the two
  can differ only when a loop inside the advancing one moves the tile and has more than 2
  iterations (see test_three_way_split_window_walks_every_step).
"""
from __future__ import annotations

import random

import pytest

from accelsim.map.access import ACTIONS, analyse
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, TENSORS, LoopNest
from naive_nest import brute_counts
from sim_helpers import split_factors

ALL = frozenset(TENSORS)


def _compare(nest, mapping, keeps, unicast=frozenset(), pad=(0, 0)):
    fast = analyse(nest, mapping, keeps, unicast)
    brute = brute_counts(nest, mapping, keeps, unicast, pad)
    for lv in range(len(keeps)):
        for ti, t in enumerate(TENSORS):
            for ai, action in enumerate(ACTIONS):
                assert fast.counts[lv, ti, ai] == brute.get((lv, t, action), 0), (
                    lv, t, action, mapping.render(), nest, sorted(unicast), pad)
    for ti, t in enumerate(TENSORS):
        assert fast.macs_reads[ti] == brute.get(("mac", t), 0), (t, mapping.render(), nest)
    return fast


def _nest(**bounds) -> LoopNest:
    stride = bounds.pop("stride", 1)
    return LoopNest(tuple(bounds.get(d, 1) for d in DIMS), stride, 1, 1, 1)


# ---- time: sliding windows keep their overlap ------------------------------------------------

def test_sliding_window_split_over_two_loops_keeps_overlap():
    # 1-D: P=4, R=3, 6 inputs. DRAM: for P in [0:2), buf (keeps W, O): for P in [0:2),
    # win (keeps I): for R in [0:3). The window at p holds inputs {p, p+1, p+2}:
    #   p=0 {0,1,2}: 3 fills; p=1 {1,2,3}: 1; p=2 {2,3,4}: the outer P advanced and the inner
    #   wrapped, but the window moved by 2 - (2-1)*1 = 1, the same as each inner step: 1;
    #   p=3 {3,4,5}: 1.  6 fills (each input once), 6 DRAM reads; reloading at the wrap: 8.
    nest = _nest(P=4, R=3)
    mapping = Mapping((LevelLoops("DRAM", (Loop("P", 2),)), LevelLoops("buf", (Loop("P", 2),)),
                       LevelLoops("win", (Loop("R", 3),))))
    fast = _compare(nest, mapping, (ALL, frozenset("WO"), frozenset("I")))
    assert fast.get(2, "I", "fills") == 6
    assert fast.get(0, "I", "reads") == 6


def test_window_of_the_childs_own_loop_slides_across_the_parents_wrap():
    # 1-D: Q=6, S=3, inputs W=8. DRAM: for Q in [0:2) / for S in [0:3); spad (keeps I):
    # for Q in [0:3). The tile at (q2, s) is {3*q2 + s + j : j < 3}:
    #   q2=0: s=0 {0,1,2} 3, s=1 {1,2,3} 1, s=2 {2,3,4} 1;
    #   q2=1: s=0 {3,4,5}: moved by 3 - (3-1)*1 = 1, as every s step: 1; s=1 1; s=2 1.
    # 8 fills = 8 inputs once each (reloading the whole tile when q2 advances: 10).
    nest = LoopNest((1, 1, 1, 1, 1, 6, 1, 3))
    mapping = Mapping((LevelLoops("DRAM", (Loop("Q", 2), Loop("S", 3))),
                       LevelLoops("spad", (Loop("Q", 3),))))
    fast = _compare(nest, mapping, (ALL, frozenset("I")))
    assert fast.get(1, "I", "fills") == 8
    assert fast.get(0, "I", "reads") == 8


def test_three_way_split_window_walks_every_step():
    # P=6, R=3 (8 inputs): DRAM P2 / buf P3 / win R3. Steps p=0..5 each move the window by 1,
    # the wrap too (3 - (3-1)*1 = 1): 3 + 5 = 8 fills. Timeloop's default run extrapolates
    # (iterations 0 and 1 of each loop): it sees the wrap from p=1 to p=3, a jump of 2 != 1,
    # and reloads there: 3 + 2*1 + 3 + 2*1 = 10. With TIMELOOP_DISABLE_TEMPORAL_EXTRAPOLATION
    # it walks every step, as here.
    nest = _nest(P=6, R=3)
    mapping = Mapping((LevelLoops("DRAM", (Loop("P", 2),)), LevelLoops("buf", (Loop("P", 3),)),
                       LevelLoops("win", (Loop("R", 3),))))
    fast = _compare(nest, mapping, (ALL, frozenset("WO"), frozenset("I")))
    assert fast.get(2, "I", "fills") == 8


def test_move_after_a_stationary_step_reloads():
    # P=2, K=2, R=3. DRAM: for P in [0:2) / for K in [0:2); win (keeps I): for R in [0:3).
    # K does not index inputs: its step moves the window by 0, which Timeloop v3.0.3 records
    # as the stride; the P step then moves it by 1 != 0 and the whole window reloads:
    # 3 + 0 + 3 + 0 = 6 fills (Timeloop since a12fff5 keeps the overlap: 4). The fixtures were
    # produced with this rule: design-eyeriss_like's DRAM reads 157,296 inputs, 16 whole
    # shared_glb tiles (P8 / Q2 / K4: the Q step after the K steps keeps no column).
    nest = _nest(K=2, P=2, R=3)
    mapping = Mapping((LevelLoops("DRAM", (Loop("P", 2), Loop("K", 2))),
                       LevelLoops("win", (Loop("R", 3),))))
    fast = _compare(nest, mapping, (ALL, frozenset("I")))
    assert fast.get(1, "I", "fills") == 6


def test_jump_that_leaves_the_tile_in_place_costs_nothing():
    # stride 2, P=2, R=3: DRAM: for P in [0:2) / for R in [0:3); reg (keeps I) holds one
    # input h = 2p + r: 0, 1, 2 | 2, 3, 4. P advancing (R wraps) moves it by 2 - 2*1 = 0:
    # nothing to fetch. 5 fills (Timeloop v3.0.3 would reload h=2: 6; since a12fff5: 5).
    nest = _nest(P=2, R=3, stride=2)
    mapping = Mapping((LevelLoops("DRAM", (Loop("P", 2), Loop("R", 3))), LevelLoops("reg", ())))
    fast = _compare(nest, mapping, (ALL, frozenset("I")))
    assert fast.get(1, "I", "fills") == 5


# ---- space: PEs that need the same data share a read -----------------------------------------

@pytest.mark.parametrize("stride, r, rows", [(1, 2, 3), (2, 3, 5), (1, 3, 4)])
def test_row_stationary_diagonal_shares_input_rows(stride, r, rows):
    # buf: spatial P2 (X) x R r (Y); each PE keeps one input row for Q=3, S=2 (w = q + s:
    # 4 words). PE (p, r') needs row h = p*stride + r': stride 1, R=2: rows 0,1 | 1,2 -> 3
    # distinct of 4 PEs; stride 2, R=3: 0,1,2 | 2,3,4 -> 5 of 6; stride 1, R=3: 0..2 | 1..3
    # -> 4 of 6. The buffer reads each distinct row once, multicast to the PEs that need it:
    # rows x 4 reads (one per PE: 2r x 4); every PE is still filled with its own row.
    nest = _nest(P=2, Q=3, R=r, S=2, stride=stride)
    mapping = Mapping((LevelLoops("buf", (), (Loop("P", 2, True, "X"), Loop("R", r, True, "Y"))),
                       LevelLoops("pe", (Loop("Q", 3), Loop("S", 2)))))
    fast = _compare(nest, mapping, (ALL, frozenset("I")))
    assert fast.get(0, "I", "reads") == rows * 4
    assert fast.get(1, "I", "fills") == 2 * r * 4
    uni = _compare(nest, mapping, (ALL, frozenset("I")), frozenset({0}))
    assert uni.get(0, "I", "reads") == 2 * r * 4          # no multicast: one read per PE


def test_diagonal_split_over_two_levels_is_not_shared():
    # as above (stride 1, R=2) but P is spread by buf and R by a level below it that keeps
    # nothing: Timeloop compares children per level (MaskTiles multiplies the levels'
    # factors), the two column tiles {0,1} and {1,2} differ, so nothing is shared:
    # 2 x 2 x 4 = 16 reads (the eyeriss fixtures: Q columns above C x S rows).
    nest = _nest(P=2, Q=3, R=2, S=2)
    mapping = Mapping((LevelLoops("buf", (), (Loop("P", 2, True, "X"),)),
                       LevelLoops("row", (), (Loop("R", 2, True, "Y"),)),
                       LevelLoops("pe", (Loop("Q", 3), Loop("S", 2)))))
    fast = _compare(nest, mapping, (ALL, frozenset(), frozenset("I")))
    assert fast.get(0, "I", "reads") == 16


def test_overlapping_halos_are_not_shared():
    # P=4, R=3 over 2 PEs (spatial P2): PE 0 needs inputs 0..3, PE 1 inputs 2..5. Timeloop
    # multicasts equal deltas only: 2 x 4 = 8 reads, not the 6 distinct inputs.
    nest = _nest(P=4, R=3)
    mapping = Mapping((LevelLoops("buf", (), (Loop("P", 2, True, "X"),)),
                       LevelLoops("pe", (Loop("P", 2), Loop("R", 3)))))
    fast = _compare(nest, mapping, (ALL, frozenset("I")))
    assert fast.get(0, "I", "reads") == 8


def test_lenet_conv1_on_eyeriss_v1_glb_input_reads():
    # The mapping the mapper chose for LeNet-5 conv1 (28x28 out, 5x5, K=6) on
    # hw_configs/eyeriss_v1.yaml (DRAM > glb: I, O > ifmap_spad: I > filter_spad: W >
    # psum_spad: O) before this rule: DRAM P2 / glb Q4, spatial P14 (X) x K2 x R5 (Y) /
    # ifmap_spad Q7 / psum_spad K3 S5. Each PE's ifmap_spad gets an 11-word row segment
    # (Q7 + S5 - 1) then 7 new words for each of 3 more Q steps: 32 per DRAM P step, 64 in
    # all (8,960 fills over 140 PEs). Per glb step the PEs need rows p + r, p < 14, r < 5: 18
    # distinct (the K2 pairs and the diagonals share), so the glb reads 18 x 64 = 1,152
    # inputs, not 14 x 5 x 64 = 4,480.
    nest = LoopNest((1, 1, 6, 1, 28, 28, 5, 5))
    mapping = Mapping((
        LevelLoops("DRAM", (Loop("P", 2),)),
        LevelLoops("glb", (Loop("Q", 4),),
                   (Loop("P", 14, True, "X"), Loop("K", 2, True, "Y"), Loop("R", 5, True, "Y"))),
        LevelLoops("ifmap_spad", (Loop("Q", 7),)),
        LevelLoops("filter_spad", ()),
        LevelLoops("psum_spad", (Loop("K", 3), Loop("S", 5)))))
    mapping.check(nest)
    keeps = (ALL, frozenset("IO"), frozenset("I"), frozenset("W"), frozenset("O"))
    counts = analyse(nest, mapping, keeps)
    assert counts.get(2, "I", "fills") == 8960
    assert counts.get(1, "I", "reads") == 1152
    assert counts.get(0, "I", "reads") == 1024         # DRAM: every input once


# ---- randomised: fast analysis against the walk ----------------------------------------------

def conventions_case(rng: random.Random, diagonal: bool):
    """A small random layer and mapping biased towards both conventions: an output dim and
    its filter dim on the spatial loops of one level (diagonal sharing), or a window (filter
    loops at or below a level ``win`` that keeps inputs) whose output dim is split over
    temporal loops above it (sliding across wraps); strides, dilations, bypasses, padding,
    unicast levels and loops of other dims anywhere."""
    b = dict(N=rng.choice([1, 1, 2]), G=rng.choice([1, 1, 2]), K=rng.choice([1, 2]),
             C=rng.choice([1, 2]), P=rng.choice([2, 3, 4, 6]), Q=rng.choice([1, 2, 3, 4]),
             R=rng.choice([1, 2, 3]), S=rng.choice([1, 2, 3]))
    strides = (rng.choice([1, 2, 3]), rng.choice([1, 2]), rng.choice([1, 2]), rng.choice([1, 2]))
    out, filt = rng.choice([("P", "R"), ("Q", "S")])
    if diagonal:                      # both dims on one level's PEs
        b[out], b[filt] = rng.choice([2, 3, 4]), rng.choice([2, 3])
    else:                             # a window worth sliding: overlapping, split in loops
        b[out], b[filt] = rng.choice([4, 6, 8]), rng.choice([2, 3])
    nest = LoopNest(tuple(b[d] for d in DIMS), *strides)
    nlev = rng.choice([2, 3, 4])
    temporal = [[] for _ in range(nlev)]
    spatial = [[] for _ in range(nlev)]
    pair_level = rng.randrange(nlev)
    win = rng.randrange(1, nlev)
    for d in DIMS:
        rest = b[d]
        if diagonal and d in (out, filt) and rest > 1:    # both on one level's PEs
            f = rng.choice([x for x in range(2, rest + 1) if rest % x == 0])
            spatial[pair_level].append(Loop(d, f, True, rng.choice("XY")))
            rest //= f
        parts = rng.choice([2, 3]) if d in "PQ" else rng.choice([1, 2])
        for f in split_factors(rest, parts, rng):
            if f == 1:
                continue
            if not diagonal and d == filt:                # the window, at or below ``win``
                temporal[rng.randrange(win, nlev)].append(Loop(d, f))
            elif not diagonal and d == out:               # slides over loops above it
                temporal[rng.randrange(win)].append(Loop(d, f))
            elif rng.random() < 0.2:
                spatial[rng.randrange(nlev)].append(Loop(d, f, True, rng.choice("XY")))
            elif not diagonal and rng.random() < 0.7:     # mostly not between them
                temporal[rng.randrange(win, nlev)].append(Loop(d, f))
            else:
                temporal[rng.randrange(nlev)].append(Loop(d, f))
    for t in temporal:
        rng.shuffle(t)
        if not diagonal and rng.random() < 0.7:           # the output dim's loops innermost
            t.sort(key=lambda loop: loop.dim == out)
    mapping = Mapping(tuple(LevelLoops(f"L{i}", tuple(temporal[i]), tuple(spatial[i]))
                            for i in range(nlev)))
    keeps = [ALL] + [frozenset(t for t in TENSORS if rng.random() < 0.6) for _ in range(nlev - 1)]
    if not diagonal:
        keeps[win] |= {"I"}
    unicast = frozenset(i for i in range(nlev) if rng.random() < 0.2)
    pad = (rng.choice([0, 0, 1, 2]), rng.choice([0, 0, 1]))
    return nest, mapping, tuple(keeps), unicast, pad


def _check_seed(seed: int) -> None:
    # even seeds: diagonal sharing, odd: sliding windows. With the counts before these
    # conventions, seeds 0-11 fail 7 times (3 windows, 4 diagonals), 0-299 124 times.
    rng = random.Random(8000 + seed)
    case = conventions_case(rng, seed % 2 == 0)
    while case[0].macs > 1500:
        case = conventions_case(rng, seed % 2 == 0)
    _compare(*case)


@pytest.mark.parametrize("seed", range(12))
def test_random_conventions_match_brute_force(seed):
    _check_seed(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(300))
def test_random_conventions_match_brute_force_many_seeds(seed):
    _check_seed(seed)
