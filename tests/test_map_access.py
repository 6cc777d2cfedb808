"""Analytical access counts of a mapping equal a brute-force walk of the loop nest."""
from __future__ import annotations

import random

import pytest

from accelsim.map.access import ACTIONS, analyse
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, TENSORS, LoopNest
from naive_nest import brute_counts
from sim_helpers import split_factors


def random_case(rng: random.Random, levels: int = 3):
    """A random small layer, a random mapping over ``levels`` levels, random bypasses."""
    b = dict(N=rng.choice([1, 2]), G=rng.choice([1, 1, 2]), K=rng.choice([1, 2, 3, 4]),
             C=rng.choice([1, 2, 3, 4]), P=rng.choice([1, 2, 3, 5]), Q=rng.choice([1, 2, 3]),
             R=rng.choice([1, 2, 3]), S=rng.choice([1, 2]))
    nest = LoopNest(tuple(b[d] for d in DIMS), rng.choice([1, 2]), rng.choice([1, 2, 3]),
                    rng.choice([1, 2]), rng.choice([1, 2]))
    loops = [[[], []] for _ in range(levels)]
    for d in DIMS:
        for j, f in enumerate(split_factors(b[d], 2 * levels, rng)):
            loops[j // 2][j % 2].append(Loop(d, f, bool(j % 2), rng.choice("XY")))
    for lv in loops:
        rng.shuffle(lv[0])
    mapping = Mapping(tuple(LevelLoops(f"L{i}", tuple(t), tuple(s)) for i, (t, s) in enumerate(loops)))
    keeps = (frozenset(TENSORS),) + tuple(
        frozenset(t for t in TENSORS if rng.random() < 0.7) for _ in range(levels - 1))
    return nest, mapping, keeps


def _compare(nest, mapping, keeps, unicast=frozenset()):
    fast = analyse(nest, mapping, keeps, unicast)
    brute = brute_counts(nest, mapping, keeps, unicast)
    for lv in range(len(keeps)):
        for ti, t in enumerate(TENSORS):
            for ai, action in enumerate(ACTIONS):
                assert fast.counts[lv, ti, ai] == brute.get((lv, t, action), 0), (
                    lv, t, action, mapping.render(), nest)
    for ti, t in enumerate(TENSORS):
        assert fast.macs_reads[ti] == brute.get(("mac", t), 0)
    return fast


def _check_random_seed(seed):
    rng = random.Random(seed)
    nest, mapping, keeps = random_case(rng, levels=rng.choice([2, 3, 4]))
    while nest.macs > 2500:
        nest, mapping, keeps = random_case(rng, levels=rng.choice([2, 3]))
    _compare(nest, mapping, keeps)


@pytest.mark.parametrize("seed", range(40))
def test_random_mappings_match_brute_force(seed):
    _check_random_seed(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(300))
def test_random_mappings_match_brute_force_many_seeds(seed):
    # these cases rarely put a window's two dims on one level's PEs or split a window's loop
    # (tests/test_map_conventions.py draws cases that do), so run many
    _check_random_seed(seed)


def test_single_level_everything_in_dram():
    nest = LoopNest((1, 1, 2, 3, 4, 1, 3, 1))
    mapping = Mapping((LevelLoops("DRAM", tuple(Loop(d, nest.bound(d)) for d in DIMS)),))
    fast = _compare(nest, mapping, (frozenset(TENSORS),))
    assert fast.get(0, "W", "reads") == nest.macs          # no operand register: read per MAC
    assert fast.get(0, "O", "updates") == nest.macs
    assert fast.get(0, "O", "reads") == nest.macs - 2 * 4   # first update of each output is a write


def test_weight_stationary_register_holds_one_weight():
    # K, C, R outside, P innermost: a one-word weight register is filled once per weight
    nest = LoopNest((1, 1, 4, 2, 6, 1, 3, 1))
    mapping = Mapping((
        LevelLoops("DRAM", (Loop("K", 4), Loop("C", 2), Loop("R", 3))),
        LevelLoops("reg", (Loop("P", 6),)),
    ))
    fast = _compare(nest, mapping, (frozenset(TENSORS), frozenset({"W"})))
    assert fast.get(1, "W", "fills") == 4 * 2 * 3 and fast.footprint[1, 0] == 1
    assert fast.get(0, "W", "reads") == 4 * 2 * 3


def test_sliding_window_reuse_of_inputs():
    # 1-D conv, P outer, R inner kept in a window buffer: consecutive windows overlap by R-1
    nest = LoopNest((1, 1, 1, 1, 8, 1, 3, 1))
    mapping = Mapping((LevelLoops("DRAM", (Loop("P", 8),)), LevelLoops("win", (Loop("R", 3),))))
    fast = _compare(nest, mapping, (frozenset(TENSORS), frozenset({"I"})))
    assert fast.get(1, "I", "fills") == 3 + 7      # first window, then one new element per step


def test_multicast_reads_once_for_all_children():
    nest = LoopNest((1, 1, 4, 1, 2, 1, 1, 1))
    mapping = Mapping((LevelLoops("DRAM", (Loop("P", 2),), (Loop("K", 4, True),)),
                       LevelLoops("pe", ())))
    fast = _compare(nest, mapping, (frozenset(TENSORS), frozenset(TENSORS)))
    assert fast.get(1, "I", "fills") == 4 * 2       # each of 4 PEs gets both inputs
    assert fast.get(0, "I", "reads") == 2           # the buffer reads each once (multicast)
    assert list(fast.instances) == [1, 4, 4]


def _mapped_case(rng: random.Random, dataflow: str):
    """A random small layer (depthwise, strided, dilated, 1x1 among them) mapped by the mapper
    on a 4-level hierarchy whose shared buffer bypasses a tensor."""
    from accelsim.map.arch import Arch, Level
    from accelsim.map.mapper import search

    kind = rng.choice(["conv", "depthwise", "strided", "dilated", "1x1", "linear"])
    g = 3 if kind == "depthwise" else 1
    k, c = (1, 1) if kind == "depthwise" else (rng.choice([2, 3, 4]), rng.choice([1, 2, 3]))
    r = 1 if kind in ("1x1", "linear") else rng.choice([2, 3])
    p = rng.choice([2, 3, 4]) if kind != "linear" else rng.choice([1, 2, 4])
    q = 1 if kind == "linear" else rng.choice([2, 3])
    stride = 2 if kind == "strided" else 1
    dil = 2 if kind == "dilated" else 1
    nest = LoopNest((1, g, k, c, p, q, r, 1 if kind == "linear" else r), stride, stride, dil, dil)
    bypass = rng.choice(["W", "I", "O"])
    L = lambda name, keeps, per_pe, cap: Level(name, frozenset(keeps), per_pe, cap, 16, None, None,
                                               True, 0.1 if per_pe else 1.0, 0.1 if per_pe else 1.0, True)
    arch = Arch((L("DRAM", TENSORS, False, None), L("glb", [t for t in TENSORS if t != bypass], False, 4096),
                 L("spad_a", "WI", True, 64), L("spad_b", "O", True, 32)),
                2, 2, 1, (1, 1, 1), 1.0, 0.0, 0.0, 0.0, None)
    return nest, search(nest, arch, dataflow, "energy", 2, seed=rng.randrange(1000)).mapping, arch.keeps


@pytest.mark.parametrize("dataflow", ["weight_stationary", "output_stationary", "input_stationary",
                                      "row_stationary"])
def test_mapper_mappings_match_brute_force_per_dataflow(dataflow):
    rng = random.Random(dataflow)
    for _ in range(30):
        nest, mapping, keeps = _mapped_case(rng, dataflow)
        _compare(nest, mapping, keeps)


def _check_unicast_seed(seed):
    rng = random.Random(1000 + seed)
    nest, mapping, keeps = random_case(rng, levels=3)
    while nest.macs > 2000:
        nest, mapping, keeps = random_case(rng, levels=3)
    uni = frozenset(i for i in range(3) if rng.random() < 0.5)
    fast = _compare(nest, mapping, keeps, uni)
    multi = analyse(nest, mapping, keeps)
    assert (fast.counts >= multi.counts - 1e-9).all()   # no multicast never reads less


@pytest.mark.parametrize("seed", range(12))
def test_unicast_levels_match_brute_force(seed):
    _check_unicast_seed(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(300))
def test_unicast_levels_match_brute_force_many_seeds(seed):
    # seeds 0-11 alone missed unicast psum read-modify-writes (31 of seeds 0-199 failed)
    _check_unicast_seed(seed)


def test_unicast_two_macs_one_output_read_modify_write():
    # one output, C=2 spread over 2 MAC units, one step. Without spatial reduction each MAC
    # sends its own update to the buffer's single copy of the output: the first initialises
    # it, the second must read the first's partial sum (read-modify-write): 2 updates, 1 read.
    nest = LoopNest((1, 1, 1, 2, 1, 1, 1, 1))
    mapping = Mapping((LevelLoops("buf", (), (Loop("C", 2, True),)),))
    keeps = (frozenset(TENSORS),)
    uni = _compare(nest, mapping, keeps, frozenset({0}))
    assert uni.get(0, "O", "updates") == 2
    assert uni.get(0, "O", "reads") == 1
    assert uni.macs_reads[TENSORS.index("O")] == 1
    # a reduction network sums the two products before they reach the buffer: 1 update, 0 reads
    multi = _compare(nest, mapping, keeps)
    assert multi.get(0, "O", "updates") == 1 and multi.get(0, "O", "reads") == 0


def test_unicast_two_pe_registers_drain_one_output():
    # one output, C=4: 2 PEs (C spatial, unicast) each accumulate C=2 in an output register.
    # reg (per PE): 2 MAC updates, the 2nd reads -> 2 x (2 updates, 1 read); no fills.
    # buf: each PE drains the output once -> 2 updates; the 1st initialises, the 2nd is a
    # read-modify-write of the same element -> 1 read.
    nest = LoopNest((1, 1, 1, 4, 1, 1, 1, 1))
    mapping = Mapping((LevelLoops("buf", (), (Loop("C", 2, True),)), LevelLoops("reg", (Loop("C", 2),))))
    keeps = (frozenset(TENSORS), frozenset({"O"}))
    uni = _compare(nest, mapping, keeps, frozenset({0}))
    assert (uni.get(1, "O", "updates"), uni.get(1, "O", "reads"), uni.get(1, "O", "fills")) == (4, 2, 0)
    assert (uni.get(0, "O", "updates"), uni.get(0, "O", "reads")) == (2, 1)
    multi = _compare(nest, mapping, keeps)
    assert (multi.get(0, "O", "updates"), multi.get(0, "O", "reads")) == (1, 0)


def test_unicast_pe_registers_refill_revisited_outputs():
    # K=2 outputs, C=8. buf: for C in [0:2) / for K in [0:2), C spatial x2 (unicast); reg: for
    # C in [0:2). Each PE's register holds output k for residencies (c,k) = (0,0) (0,1) (1,0)
    # (1,1): 4 drains per PE -> buf updates 2 x 4 = 8; each PE refills both outputs once ->
    # reg fills 2 x 2 = 4. Each output gets 4 updates at buf (2 PEs x 2 residencies); only the
    # first initialises, so buf reads = 3 per output = 6 (the 2nd residency's 2 refills + one
    # read-modify-write of the 2nd PE's first drain). reg: 8 MAC updates per PE, 2 distinct
    # outputs -> 6 reads per PE.
    nest = LoopNest((1, 1, 2, 8, 1, 1, 1, 1))
    mapping = Mapping((LevelLoops("buf", (Loop("C", 2), Loop("K", 2)), (Loop("C", 2, True),)),
                       LevelLoops("reg", (Loop("C", 2),))))
    keeps = (frozenset(TENSORS), frozenset({"O"}))
    uni = _compare(nest, mapping, keeps, frozenset({0}))
    assert (uni.get(1, "O", "updates"), uni.get(1, "O", "reads"), uni.get(1, "O", "fills")) == (16, 12, 4)
    assert (uni.get(0, "O", "updates"), uni.get(0, "O", "reads")) == (8, 6)
    multi = _compare(nest, mapping, keeps)    # the two drains of each residency are reduced
    assert (multi.get(0, "O", "updates"), multi.get(0, "O", "reads")) == (4, 2)
    assert multi.get(1, "O", "fills") == 4


# ---- remainder tiles (imperfect factorisation) ----------------------------------------------


def remainder_factors(bound: int, slots: int, rng: random.Random) -> list[int]:
    """Factors of ``bound`` over ``slots`` loops (outer first) with a remainder: the inner
    factors are drawn freely, the outermost is ceil(bound / their product)."""
    out = [1] * slots
    if bound == 1:
        return out
    chosen = sorted(rng.sample(range(slots), min(slots, rng.choice([1, 2, 2, 3]))))
    inner = 1
    for j in reversed(chosen[1:]):
        f = rng.choice([2, 2, 3])
        if inner * f < bound:
            out[j] = f
            inner *= f
    out[chosen[0]] = -(-bound // inner)
    return out


def random_remainder_case(rng: random.Random, levels: int = 3, sizes=(1, 2, 3, 5, 7)):
    """A random small layer (odd sizes, stride, dilation, groups) and a random mapping whose
    factors leave remainders, with random bypasses."""
    b = dict(N=rng.choice([1, 2]), G=rng.choice([1, 1, 2]), K=rng.choice(sizes), C=rng.choice(sizes),
             P=rng.choice(sizes), Q=rng.choice([1, 2, 3]), R=rng.choice([1, 2, 3]), S=rng.choice([1, 2]))
    nest = LoopNest(tuple(b[d] for d in DIMS), rng.choice([1, 2]), rng.choice([1, 2, 3]),
                    rng.choice([1, 2]), rng.choice([1, 2]))
    loops = [[[], []] for _ in range(levels)]
    for d in DIMS:
        for j, f in enumerate(remainder_factors(b[d], 2 * levels, rng)):
            loops[j // 2][j % 2].append(Loop(d, f, bool(j % 2), rng.choice("XY")))
    for lv in loops:
        rng.shuffle(lv[0])
    mapping = Mapping(tuple(LevelLoops(f"L{i}", tuple(t), tuple(s)) for i, (t, s) in enumerate(loops)))
    keeps = (frozenset(TENSORS),) + tuple(
        frozenset(t for t in TENSORS if rng.random() < 0.7) for _ in range(levels - 1))
    return nest, mapping, keeps


def _check_remainder_seed(seed: int) -> None:
    rng = random.Random(5000 + seed)
    nest, mapping, keeps = random_remainder_case(rng, levels=rng.choice([2, 3, 4]))
    while max(nest.macs, _padded_macs(mapping)) > 3000:
        nest, mapping, keeps = random_remainder_case(rng, levels=rng.choice([2, 3]))
    mapping.check(nest)
    uni = frozenset(i for i in range(len(keeps)) if rng.random() < 0.3)
    _compare(nest, mapping, keeps, uni)


def _padded_macs(mapping) -> int:
    out = 1
    for d in DIMS:
        out *= mapping.factor_product(d)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_remainder_mappings_match_brute_force(seed):
    _check_remainder_seed(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(400))
def test_remainder_mappings_match_brute_force_many_seeds(seed):
    _check_remainder_seed(seed)


# ---- the speed-up's own tables (accelsim.map.access: move classes, cached multisets) ----------


def _translation_reference(nest, mapping, tensor, child):
    """Per temporal loop above ``child`` (outer to inner): 0 if advancing it leaves the child's
    tile in place, 1 if it moves it exactly as a step of the innermost such loop, else 2;
    from the tile's base evaluated at the index vectors before and after the advance."""
    loops = [(i, l) for i, lv in enumerate(mapping.levels) for l in lv.temporal + lv.spatial
             if l.factor > 1]
    radix = []
    for j, (_, l) in enumerate(loops):
        r = 1
        for _, l2 in loops[j + 1:]:
            if l2.dim == l.dim:
                r *= l2.factor
        radix.append(r)
    sh, sw, dh, dw = nest.stride_h, nest.stride_w, nest.dil_h, nest.dil_w
    coordinates = {"W": {"G": ("g", 1), "K": ("k", 1), "C": ("c", 1), "R": ("r", 1), "S": ("s", 1)},
                   "O": {"N": ("n", 1), "G": ("g", 1), "K": ("k", 1), "P": ("p", 1), "Q": ("q", 1)},
                   "I": {"N": ("n", 1), "G": ("g", 1), "C": ("c", 1), "P": ("h", sh), "R": ("h", dh),
                         "Q": ("w", sw), "S": ("w", dw)}}[tensor]
    above = [j for j, (lv, l) in enumerate(loops) if lv < child and not l.spatial]

    def base(index: dict) -> dict:
        out: dict = {}
        for j, i in index.items():
            dim = loops[j][1].dim
            if dim in coordinates:
                name, coef = coordinates[dim]
                out[name] = out.get(name, 0) + i * radix[j] * coef
        return {k: v for k, v in out.items() if v}

    def move(j: int) -> dict:
        inside = [k for k in above if k > j]
        before = {j: 0, **{k: loops[k][1].factor - 1 for k in inside}}
        after = {j: 1, **{k: 0 for k in inside}}
        b, a = base(before), base(after)
        return {k: a.get(k, 0) - b.get(k, 0) for k in set(a) | set(b) if a.get(k, 0) != b.get(k, 0)}

    if not above:
        return []
    innermost = move(above[-1])
    return [0 if not move(j) else 1 if move(j) == innermost else 2 for j in above]


def _check_move_classes(nest, mapping, levels):
    from accelsim.map.access import _Flat

    flat = _Flat(nest, mapping)
    for tensor in TENSORS:
        for child in range(1, levels + 1):
            _, classes, _ = flat.classes(tensor, child)
            assert classes == _translation_reference(nest, mapping, tensor, child), (
                tensor, child, mapping.render(), nest)


def test_move_classes_by_hand():
    # inputs below DRAM, 1-D conv P=4, R=3 (stride 1). Loops K 2 (irrelevant), P 4: a P step
    # slides the window (class 1), a K step brings P back by 3 (reload, 2)
    from accelsim.map.access import _Flat

    nest = LoopNest((1, 1, 2, 1, 4, 1, 3, 1))
    dram = lambda *loops: Mapping((LevelLoops("DRAM", loops), LevelLoops("buf", (Loop("R", 3),))))
    assert _Flat(nest, dram(Loop("K", 2), Loop("P", 4))).classes("I", 1)[1] == [2, 1]
    # irrelevant innermost K: its steps keep the tile (0), a P step is not its translation (2)
    assert _Flat(nest, dram(Loop("P", 4), Loop("K", 2))).classes("I", 1)[1] == [2, 0]
    # P split in two: the outer P step (2 - (2-1)*1 = 1) equals the inner's: sliding (1, 1)
    assert _Flat(nest, dram(Loop("P", 2), Loop("P", 2))).classes("I", 1)[1] == [1, 1]
    # stride 2 on h = 2p + r, loops P 2, K 2, P 2: the inner P moves h by 2 (1); K by
    # 0 - (2-1)*2 (2); the outer P by 2*2 - (2-1)*0 - (2-1)*2 = 2, the inner's move (1)
    nest2 = LoopNest((1, 1, 2, 1, 4, 1, 3, 1), 2, 1, 1, 1)
    assert _Flat(nest2, dram(Loop("P", 2), Loop("K", 2), Loop("P", 2))).classes("I", 1)[1] == [1, 2, 1]
    for n, m in ((nest, dram(Loop("K", 2), Loop("P", 4))),
                 (nest2, dram(Loop("P", 2), Loop("K", 2), Loop("P", 2)))):
        _check_move_classes(n, m, 2)


def _check_classes_seed(seed: int) -> None:
    rng = random.Random(7000 + seed)
    levels = rng.choice([1, 2, 3, 4])
    make = random_remainder_case if rng.random() < 0.5 else random_case
    nest, mapping, _ = make(rng, levels=levels)
    if rng.random() < 0.2:     # a zero stride or dilation: the general (vector) rule
        nest = LoopNest(nest.bounds, rng.choice([0, 1]), 1, rng.choice([0, 2]), 1)
    _check_move_classes(nest, mapping, levels)


@pytest.mark.parametrize("seed", range(30))
def test_move_classes_match_tile_positions(seed):
    _check_classes_seed(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(500))
def test_move_classes_match_tile_positions_many_seeds(seed):
    _check_classes_seed(seed)


def _check_multiset_seed(seed: int) -> None:
    from collections import Counter
    from itertools import permutations, product

    from accelsim.map.access import _add, _multiset

    rng = random.Random(seed)
    terms = []
    for _ in range(rng.randrange(0, 4)):
        if rng.random() < 0.6:     # a progression first + a*step, a < count
            first, count, step = rng.choice([0, 0, 1, 3]), rng.randrange(1, 5), rng.randrange(1, 4)
            terms.append(((0, first, count, step), [first + a * step for a in range(count)]))
        else:                      # listed values (with repeats, as sibling offsets give)
            values = sorted(rng.choice([0, 1, 2, 4, 5]) for _ in range(rng.randrange(2, 4)))
            terms.append(((1,) + tuple(values), values))
    counts = Counter(sum(pick) for pick in product(*[v for _, v in terms]))
    expected = [counts.get(v, 0) for v in range(max(counts) + 1)]
    for order in permutations(terms):
        ops = ()
        for op, _ in order:
            ops = _add(ops, op)
        got = _multiset(ops)
        assert list(got) == expected, (order, list(got), expected)
        assert not got.flags.writeable


@pytest.mark.parametrize("seed", range(25))
def test_multiset_of_bases_is_the_sum_of_its_terms_in_any_order(seed):
    _check_multiset_seed(seed)


def test_counts_do_not_depend_on_cache_state():
    # the same remainder cases analysed with cold caches, then again in reverse order with the
    # caches holding every other case's entries: identical results, all equal the brute force
    import accelsim.map.access as access

    rng = random.Random(99)
    cases = []
    while len(cases) < 12:
        nest, mapping, keeps = random_remainder_case(rng, levels=rng.choice([2, 3]))
        if max(nest.macs, _padded_macs(mapping)) <= 1500:
            cases.append((nest, mapping, keeps))
    for value in vars(access).values():
        if hasattr(value, "cache_clear"):
            value.cache_clear()
    cold = [analyse(*c) for c in cases]
    warm = [analyse(*c) for c in reversed(cases)][::-1]
    for (nest, mapping, keeps), a, b in zip(cases, cold, warm):
        assert (a.counts == b.counts).all() and (a.macs_reads == b.macs_reads).all()
        _compare(nest, mapping, keeps)
