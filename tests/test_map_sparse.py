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


# --- the ordered kernels (output written in its own order; single-row blocks on padded spaces)

def _single_case(rng, kind=None):
    """A layer whose blocks are one (n, g, p, q) row x one filter (N, G, K, P, Q never split
    below the fan-out level), the reduction split anywhere, with or without remainders: conv
    (stride, dilation, padding, groups), depthwise, linear; one PE or an array."""
    from test_map_access import remainder_factors

    kind = kind or rng.choice(["conv", "conv", "depthwise", "linear"])
    sizes = [1, 2, 3, 5, 7]
    b = dict(N=rng.choice([1, 2]), G=rng.choice([1, 1, 2]), K=rng.choice(sizes), C=rng.choice(sizes),
             P=rng.choice(sizes), Q=rng.choice([1, 2, 3]), R=rng.choice([1, 2, 3]), S=rng.choice([1, 3]))
    if kind == "depthwise":
        b.update(G=rng.choice([2, 3, 4]), K=1, C=1)
    if kind == "linear":
        b.update(P=1, Q=1, R=1, S=1, C=rng.choice([3, 64, 65, 130]), K=rng.choice([1, 4, 9]))
    stride = (1, 1) if kind == "linear" else (rng.choice([1, 2]), rng.choice([1, 2]))
    dil = (1, 1) if kind == "linear" else (rng.choice([1, 2]), rng.choice([1, 2]))
    nest = LoopNest(tuple(b[d] for d in DIMS), *stride, *dil)
    one_pe = rng.random() < 0.2
    exact = rng.random() < 0.4
    levels = [[[], []] for _ in range(3)]
    for d in DIMS:
        # (level, spatial) slots: nothing of N, G, K, P, Q inside a PE; one PE: no spatial loop
        slots = [(0, False), (1, False), (1, True), (2, False)]
        if d not in "CRS":
            slots = slots[:3]
        if one_pe:
            slots = [sl for sl in slots if not sl[1]]
        fs = (split_factors(b[d], len(slots), rng) if exact
              else remainder_factors(b[d], len(slots), rng))
        for (lv, spatial), f in zip(slots, fs):
            levels[lv][int(spatial)].append(Loop(d, f, spatial, rng.choice("XY")))
    mapping = Mapping(tuple(LevelLoops(f"L{i}", tuple(t), tuple(s)) for i, (t, s) in enumerate(levels)))
    mapping.check(nest)
    pads = (0, 0) if kind == "linear" else (rng.choice([0, 1]), rng.choice([0, 1, 2]))
    H = max((b["P"] - 1) * nest.stride_h + (b["R"] - 1) * nest.dil_h + 1 - 2 * pads[0], 1)
    W = max((b["Q"] - 1) * nest.stride_w + (b["S"] - 1) * nest.dil_w + 1 - 2 * pads[1], 1)
    np_rng = np.random.default_rng(rng.randrange(1 << 30))
    act = np_rng.random((b["N"], b["G"] * b["C"], H, W)) < rng.choice([0.0, 0.3, 0.8, 1.0])
    wmask = np_rng.random((b["G"] * b["K"], b["C"], b["R"], b["S"])) < rng.choice([0.0, 0.5, 1.0])
    return nest, mapping, act, wmask, pads


def _check_single(seed):
    from accelsim.map import sparse

    rng = random.Random(9100 + seed)
    nest, mapping, act, wmask, pads = _single_case(rng)
    assert sparse._plan(nest, mapping, 1).single
    for mode in (MODE_DENSE, MODE_ACT, MODE_WEIGHT, MODE_BOTH):
        for pad_issued in ((False, True) if mode in (MODE_ACT, MODE_BOTH) and any(pads) else (False,)):
            slow = brute_work(nest, mapping, 1, act, wmask, pads, mode) if not pad_issued else \
                brute_work_padded(nest, mapping, 1, act, wmask, pads, mode)
            for method in ("packed", "boxed"):
                fast = step_work(nest, mapping, 1, act, wmask, pads, mode, method, pad_issued)
                assert fast.dtype == np.int64
                np.testing.assert_array_equal(fast, slow, err_msg=f"{method} mode {mode}")


def brute_work_padded(nest, mapping, fan, act, wmask, pads, mode):
    """``brute_work`` with padding positions counted as present activations (pad_issued):
    the same walk over a mask whose padding ring is ones and no padding."""
    n, c, h, w = act.shape
    big = np.ones((n, c, h + 2 * pads[0], w + 2 * pads[1]), dtype=bool)
    big[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + w] = act
    return brute_work(nest, mapping, fan, big, wmask, (0, 0), mode)


@pytest.mark.parametrize("seed", range(16))
def test_single_row_blocks_equal_brute_force(seed):
    _check_single(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(300))
def test_single_row_blocks_many_seeds(seed):
    _check_single(seed)


def test_single_row_blocks_by_hand():
    """K over two PEs (X), steps C-box x P; C = 3 cut in boxes of 2 (the second box has one
    channel, its outer loop a padded remainder): every count written out."""
    nest = LoopNest((1, 1, 2, 3, 2, 1, 1, 1))
    mapping = Mapping((LevelLoops("L0", (Loop("C", 2), Loop("P", 2))),
                       LevelLoops("L1", (), (Loop("K", 2, True, "X"),)),
                       LevelLoops("L2", (Loop("C", 2),))))
    a = np.array([[1, 1], [0, 1], [1, 0]], dtype=bool)          # a[c, p]
    act = a.reshape(1, 3, 2, 1)
    w = np.array([[1, 1, 1], [0, 1, 1]], dtype=bool)            # w[k, c]
    wmask = w.reshape(2, 3, 1, 1)
    # steps: (box 0 = c 0..1, p 0), (box 0, p 1), (box 1 = c 2, p 0), (box 1, p 1); x = k
    expect = {MODE_BOTH: [[1, 0], [2, 1], [1, 1], [0, 0]],
              MODE_ACT: [[1, 1], [2, 2], [1, 1], [0, 0]],
              MODE_WEIGHT: [[2, 1], [2, 1], [1, 1], [1, 1]],
              MODE_DENSE: [[2, 2], [2, 2], [1, 1], [1, 1]]}
    for mode, want in expect.items():
        for method in ("boxed", "packed", "auto"):
            got = step_work(nest, mapping, 1, act, wmask, (0, 0), mode, method)
            np.testing.assert_array_equal(got, np.array(want).reshape(4, 1, 2), err_msg=method)


def test_caches_follow_the_masks_and_hand_out_copies():
    """The weight side is cached per mask object but recomputed when its content changes; the
    dense work is cached per mapping and every call gets its own array."""
    rng = random.Random(5)
    nest, mapping, act, wmask, pads = _single_case(rng, "conv")
    wmask = np.ones_like(wmask)
    first = step_work(nest, mapping, 1, act, wmask, pads, MODE_BOTH, "boxed")
    np.testing.assert_array_equal(first, brute_work(nest, mapping, 1, act, wmask, pads, MODE_BOTH))
    wmask[...] = False                               # same object, new content
    again = step_work(nest, mapping, 1, act, wmask, pads, MODE_BOTH, "boxed")
    assert again.sum() == 0
    dense = step_work(nest, mapping, 1, act, wmask, pads, MODE_DENSE, "boxed")
    dense[...] = -1
    fresh = step_work(nest, mapping, 1, act, wmask, pads, MODE_DENSE, "boxed")
    np.testing.assert_array_equal(fresh, brute_work(nest, mapping, 1, act, wmask, pads, MODE_DENSE))


def test_large_box_arrays_fall_back_to_packed(monkeypatch):
    from accelsim.map import sparse

    monkeypatch.setattr(sparse, "_BOX_WORDS_LIMIT", 0)
    for seed in range(4):
        nest, mapping, act, wmask, pads = _single_case(random.Random(300 + seed))
        for mode in (MODE_ACT, MODE_BOTH):
            np.testing.assert_array_equal(step_work(nest, mapping, 1, act, wmask, pads, mode, "boxed"),
                                          brute_work(nest, mapping, 1, act, wmask, pads, mode))


def test_ordered_kernels_compile_once():
    """One specialisation each (arrays int64 / uint64 C-contiguous, flags as ints)."""
    from accelsim.map import sparse

    for seed in range(3):
        _check_single(seed)
        test_step_work_with_remainder_tiles_equals_brute_force(seed)
    test_act_box_words_equal_brute_force(1)
    for kernel in (sparse._blocks_ordered, sparse._blocks_ordered_single, sparse._act_words):
        if hasattr(kernel, "signatures"):       # NUMBA_DISABLE_JIT runs plain Python
            assert len(kernel.signatures) == 1, kernel.signatures


# --- the activations' box words, written straight from the mask (no im2col array)

def brute_act_words(act, nest, pads, pad_value, plan, boxes, slots, axes):
    """Words ``[box0][box1][box2][row slots][word]`` bit by bit from their definition: row
    (n, g, p, q) at the slot of its values permuted by ``axes``; reduction element (c, r, s) in
    box ``coord // ext`` along each order dimension at bit ``(x0 * e1 + x1) * e2 + x2`` (``x``:
    ``coord % ext``, ``e``: the box's bits per dimension); the element read at padded position
    (p * stride + r * dilation, ...): the mask, ``pad_value`` in the padding ring, absent past
    the padded mask."""
    from accelsim.map.sparse import _C, _R, _S

    n_, g_, _, cg, p_, q_, r_, s_ = nest.bounds
    h_, w_ = act.shape[2], act.shape[3]
    e = plan.box
    words = {}
    for n, g, p, q, c, r, s in product(range(act.shape[0]), range(g_), range(p_), range(q_),
                                       range(cg), range(r_), range(s_)):
        hp, wp = p * nest.stride_h + r * nest.dil_h, q * nest.stride_w + s * nest.dil_w
        if hp >= h_ + 2 * pads[0] or wp >= w_ + 2 * pads[1]:
            continue
        h, w = hp - pads[0], wp - pads[1]
        bit = act[n, g * cg + c, h, w] if (0 <= h < h_ and 0 <= w < w_) else pad_value
        if not bit:
            continue
        coord = {_C: c, _R: r, _S: s}
        box = tuple(coord[d] // int(plan.ext[d]) for d in plan.order)
        x = [coord[d] % int(plan.ext[d]) for d in plan.order]
        pos = (x[0] * e[1] + x[1]) * e[2] + x[2]
        slot = tuple((n, g, p, q)[a] for a in axes)
        key = box + slot + (pos // 64,)
        words[key] = words.get(key, 0) | (1 << (pos % 64))
    out = np.zeros(tuple(boxes) + tuple(slots) + (plan.wpb,), dtype=np.uint64)
    for key, value in words.items():
        out[key] = value
    return out.reshape(-1)


def _check_act_words(seed):
    from accelsim.map import sparse

    rng = random.Random(4400 + seed)
    nest, mapping, act, _, pads = _single_case(rng) if seed % 2 else _case(rng)
    if seed % 5 == 0:                 # odd mask sizes: wider / narrower than the layer reads
        act = np.random.default_rng(seed).random(act.shape[:2] + (act.shape[2] + seed % 3,
                                                                  max(1, act.shape[3] - 1))) < 0.5
    for fan in (0, 1, 2):
        plan = sparse._plan(nest, mapping, fan)
        n, g, _, _, p, q, _, _ = nest.bounds
        layouts = [(plan.nbx, (n, g, p, q), (0, 1, 2, 3))]
        if plan.single:
            axes = sparse._row_axes(plan, (sparse._N, sparse._G, sparse._P, sparse._Q))
            layouts.append((plan.nbxp, tuple(plan.span[(sparse._N, sparse._G, sparse._P,
                                                        sparse._Q)[i]] for i in axes), axes))
        for boxes, slots, axes in layouts:
            for pad_value in (False, True):
                got = sparse._act_box_words(act, nest, pads, pad_value, plan, boxes, slots, axes)
                want = brute_act_words(act, nest, pads, pad_value, plan, boxes, slots, axes)
                assert got.dtype == np.uint64
                np.testing.assert_array_equal(got, want, err_msg=f"fan {fan} pad {pad_value}")


@pytest.mark.parametrize("seed", range(20))
def test_act_box_words_equal_brute_force(seed):
    _check_act_words(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20, 400))
def test_act_box_words_many_seeds(seed):
    _check_act_words(seed)


def test_act_box_words_by_hand():
    """C = 3 in boxes of 2 (the second clipped to one channel), R = 1, S = 2 (a full box), one
    pixel row of Q = 2, stride 1, pad 1 on the left and right; order R, C, S (R fixed first):
    the bit of (c, s) in its box is (c % 2) * 2 + s."""
    from accelsim.map import sparse

    nest = LoopNest((1, 1, 1, 3, 1, 2, 1, 2))
    mapping = Mapping((LevelLoops("L0", (Loop("C", 2),)), LevelLoops("L1", ()),
                       LevelLoops("L2", (Loop("C", 2), Loop("S", 2)))))
    plan = sparse._plan(nest, mapping, 1)
    assert plan.order == (sparse._R, sparse._C, sparse._S) and plan.box == (1, 2, 2)
    act = np.array([[1], [0], [1]], dtype=bool).reshape(1, 3, 1, 1)   # W = 1, padded to 3
    # pixel q reads padded columns q, q + 1: q = 0 -> (pad, a), q = 1 -> (a, pad)
    # zero padding: box 0 (c 0, 1): q0: c0 s1 -> bit 1; q1: c0 s0 -> bit 0; box 1 (c 2): the
    # same; padding present: q0 adds (c0, s0), (c1, s0) -> bits 0, 2; q1 adds (c0, s1),
    # (c1, s1) -> bits 1, 3; box 1 adds bit 0 (q0) and bit 1 (q1)
    want = {False: [0b10, 0b01, 0b10, 0b01], True: [0b0111, 0b1011, 0b11, 0b11]}
    for pad_value, words in want.items():
        got = sparse._act_box_words(act, nest, (0, 1), pad_value, plan, plan.nbx, (1, 1, 1, 2),
                                    (0, 1, 2, 3))
        assert got.tolist() == words, (pad_value, got.tolist())


@pytest.mark.parametrize("bounds,stride,pads", [((1, 1, 2, 130, 1, 1, 1, 1), 1, (0, 0)),
                                                ((2, 2, 2, 70, 3, 2, 1, 1), 2, (1, 0)),
                                                ((1, 1, 3, 8, 3, 3, 3, 3), 1, (1, 1))])
def test_act_box_words_with_whole_words(bounds, stride, pads):
    """Boxes of 64 and more bits (whole words of the box): the reduction inside the PE."""
    from accelsim.map import sparse

    nest = LoopNest(bounds, stride, stride)
    n, g, k, c, p, q, r, s = bounds
    mapping = Mapping((LevelLoops("L0", (Loop("N", n), Loop("G", g), Loop("P", p), Loop("Q", q))),
                       LevelLoops("L1", (), (Loop("K", k, True, "X"),)),
                       LevelLoops("L2", (Loop("C", c), Loop("R", r), Loop("S", s)))))
    h = (p - 1) * stride + r - 2 * pads[0]
    w = (q - 1) * stride + s - 2 * pads[1]
    rng = np.random.default_rng(c)
    for act in (rng.random((n, g * c, h, w)) < 0.5, np.ones((n, g * c, h, w), bool)):
        plan = sparse._plan(nest, mapping, 1)
        assert plan.wpb >= 2
        for pad_value in (False, True):
            got = sparse._act_box_words(act, nest, pads, pad_value, plan, plan.nbx, (n, g, p, q),
                                        (0, 1, 2, 3))
            np.testing.assert_array_equal(got, brute_act_words(act, nest, pads, pad_value, plan,
                                                               plan.nbx, (n, g, p, q),
                                                               (0, 1, 2, 3)))


def _effectual_case(seed: int, one_tap: bool = False):
    """A random layer (odd sizes, padding wider than the input, stride, dilation, groups) with
    masks at a random density (all zeros and all ones included); ``one_tap``: a 1x1 filter
    without padding (a lowered operand matrix's shape)."""
    from types import SimpleNamespace

    rng = random.Random(seed)
    groups = rng.choice([1, 1, 2, 3])
    cg, kg = rng.randint(1, 3), rng.randint(1, 3)
    r, s = (1, 1) if one_tap else (rng.randint(1, 4), rng.randint(1, 4))
    sh, sw, dh, dw = (rng.choice([1, 1, 2, 3]) for _ in range(4))
    ph, pw = (0, 0) if one_tap else (rng.randint(0, 3), rng.randint(0, 3))
    h, w = rng.randint(1, 9), rng.randint(1, 9)
    p = (h + 2 * ph - dh * (r - 1) - 1) // sh + 1
    q = (w + 2 * pw - dw * (s - 1) - 1) // sw + 1
    if p < 1 or q < 1:
        return None
    geo = SimpleNamespace(C=groups * cg, K=groups * kg, groups=groups, H=h, W=w, P=p, Q=q, R=r,
                          S=s, stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw, dil_h=dh, dil_w=dw)
    n = rng.randint(1, 3)
    np_rng = np.random.default_rng(seed)
    act = np_rng.random((n, groups * cg, h, w)) < rng.choice([0.0, 0.4, 0.8, 1.0])
    wmask = np_rng.random((groups * kg, cg, r, s)) < rng.choice([0.0, 0.5, 1.0])
    nest = LoopNest((n, groups, kg, cg, p, q, r, s), sh, sw, dh, dw)
    return geo, nest, act, wmask


def _check_effectual(seed: int, one_tap: bool = False) -> None:
    import naive

    case = _effectual_case(seed, one_tap)
    if case is None:
        return
    geo, nest, act, wmask = case
    expected = sum(naive.effectual_pairs(act[i], wmask, geo) for i in range(act.shape[0]))
    assert effectual_pairs(nest, act, wmask, (geo.pad_h, geo.pad_w)) == expected, seed


@pytest.mark.parametrize("seed", range(60))
def test_effectual_pairs_equal_direct_convolution_loops(seed):
    _check_effectual(seed)
    _check_effectual(seed, one_tap=True)


@pytest.mark.slow
def test_effectual_pairs_equal_direct_convolution_loops_many_seeds():
    for seed in range(60, 660):
        _check_effectual(seed)
        _check_effectual(seed, one_tap=True)


def _check_step_stats(seed: int) -> None:
    """The fused count-and-schedule path equals the fold schedule of the stored work array
    (every statistic, exactly), for each sync group kind it takes and the ones it leaves to
    the array, with and without per-step mean counts."""
    from accelsim.map.sparse import step_stats
    from accelsim.sim.kernels import schedule as sch

    rng = random.Random(seed)
    nest, mapping, act, wmask, pads = _case(rng)
    for mode in (MODE_ACT, MODE_WEIGHT, MODE_BOTH):
        work = step_work(nest, mapping, 1, act, wmask, pads, mode)
        steps, ys, xs = work.shape
        rows, cols = ys + rng.choice([0, 0, 1, 3]), xs + rng.choice([0, 0, 2])
        mean_pes = (None if rng.random() < 0.5 else
                    np.array([rng.randint(0, ys * xs) for _ in range(steps)], dtype=np.int64))
        for sync in (sch.SYNC_DECOUPLED, sch.SYNC_ARRAY, sch.SYNC_ROW):
            for gate in (False, True):
                schedule = (rows, cols, rng.choice([1, 2, 3]), rng.choice([0, 2]), sync,
                            rng.choice([1, 2, 4]), gate, 2)
                pes = np.empty(0, np.int64) if mean_pes is None else mean_pes
                expected = sch.fold_schedule_over(sch.as_work(work), *schedule, pes)
                got = step_stats(nest, mapping, 1, act, wmask, pads, mode, schedule, mean_pes)
                np.testing.assert_array_equal(got, expected, err_msg=f"{seed} {mode} {sync}")
                # the mean busy PE per step, over the PEs it is given
                busy = -(-work.reshape(steps, -1) // schedule[2])
                counts = busy.shape[1] * np.ones(steps, np.int64) if mean_pes is None else mean_pes
                terms = [busy[i].sum() / counts[i] for i in range(steps) if counts[i] > 0]
                assert got[sch.ST_SUM_MEAN_BUSY] == pytest.approx(sum(terms), rel=1e-12, abs=0)


@pytest.mark.parametrize("seed", range(20))
def test_fused_step_schedule_equals_the_schedule_of_the_work_array(seed):
    _check_step_stats(seed)


@pytest.mark.slow
def test_fused_step_schedule_equals_the_schedule_of_the_work_array_many_seeds():
    for seed in range(20, 320):
        _check_step_stats(seed)


def _check_in_bounds(seed: int) -> None:
    """The PEs with work at each step of a mapping with remainder tiles equal those whose
    dense brute-force work is non-zero."""
    from accelsim.map.sparse import in_bounds_pes

    rng = random.Random(9100 + seed)
    nest, mapping, act, wmask, pads = _remainder_case(rng)
    for fan in (0, 1):
        dense = brute_work(nest, mapping, fan, act, wmask, pads, MODE_DENSE)
        expected = (dense.reshape(dense.shape[0], -1) > 0).sum(axis=1)
        np.testing.assert_array_equal(in_bounds_pes(nest, mapping, fan), expected, err_msg=seed)


@pytest.mark.parametrize("seed", range(20))
def test_pes_inside_the_bounds_per_step_equal_the_brute_force(seed):
    _check_in_bounds(seed)


@pytest.mark.slow
def test_pes_inside_the_bounds_per_step_equal_the_brute_force_many_seeds():
    for seed in range(20, 420):
        _check_in_bounds(seed)
