"""The activations' box words (:func:`accelsim.map.sparse._act_box_words`) against the definition
of a convolution: per im2col row and reduction box, the words hold exactly the (c, r, s) whose
input element is non-zero, and AND-ed with the weight words they count exactly the pairs with
both non-zero."""
from __future__ import annotations

import random

import numpy as np
import pytest

from accelsim.map import sparse
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, LoopNest

_CRS = {sparse._C: 0, sparse._R: 1, sparse._S: 2}


def _element(act, n, ch, h, w, pads, pad_value):
    """Input element ``(n, ch, h, w)`` (unpadded coordinates): the mask, ``pad_value`` inside
    the padding ring, absent past it."""
    H, W = act.shape[2], act.shape[3]
    if 0 <= h < H and 0 <= w < W:
        return bool(act[n, ch, h, w])
    return pad_value and -pads[0] <= h < H + pads[0] and -pads[1] <= w < W + pads[1]


def _definition(act, nest, pads, pad_value):
    """``(N, G, P, Q, C/G, R, S)`` booleans: element (c, r, s) of output pixel (p, q) reads input
    ``(p * stride - pad + r * dilation, q * stride - pad + s * dilation)`` of channel
    ``g * C/G + c``."""
    n_, g_, _, cg, p_, q_, r_, s_ = nest.bounds
    out = np.zeros((act.shape[0], g_, p_, q_, cg, r_, s_), dtype=bool)
    for n in range(act.shape[0]):
        for g in range(g_):
            for c in range(cg):
                for p in range(p_):
                    for q in range(q_):
                        for r in range(r_):
                            for s in range(s_):
                                h = p * nest.stride_h - pads[0] + r * nest.dil_h
                                w = q * nest.stride_w - pads[1] + s * nest.dil_w
                                out[n, g, p, q, c, r, s] = _element(act, n, g * cg + c, h, w,
                                                                    pads, pad_value)
    return out


def _box_slices(plan, box):
    """(c, r, s) slices of reduction box ``box`` (indices along ``plan.order``)."""
    sl = [None, None, None]
    for m, d in enumerate(plan.order):
        lo = box[m] * int(plan.ext[d])
        sl[_CRS[d]] = slice(lo, min(lo + int(plan.ext[d]), int(plan.bounds[d])))
    return tuple(sl)


def _mapping(nest, inner, middle, rng):
    """Every N, G, K, P, Q loop outside the PE (fan-out level 1), C, R, S split as outer x
    ``middle`` (outside) x ``inner`` (inside the PE: the reduction box), the outermost running
    ``ceil`` (a remainder, boxes past the size when ``middle`` overshoots)."""
    outer, mid = [], []
    for d, b in zip(DIMS, nest.bounds):
        if d in "CRS":
            f_in, f_mid = inner[d], middle[d]
            outer.append(Loop(d, -(-b // (f_in * f_mid))))
            mid.append(Loop(d, f_mid))
        else:
            outer.append(Loop(d, b))
    rng.shuffle(outer)
    return Mapping((LevelLoops("L0", tuple(outer)), LevelLoops("L1", tuple(mid)),
                    LevelLoops("L2", tuple(Loop(d, inner[d]) for d in "CRS"))))


def _check(nest, mapping, act, wmask, pads):
    """Both layouts of the box words (every row, the single kernel's padded one) and both
    padding semantics against :func:`_definition`."""
    n_, g_, k_, cg, p_, q_, r_, s_ = nest.bounds
    plan = sparse._plan(nest, mapping, 1)
    w = np.asarray(wmask, dtype=bool).reshape(g_, k_, cg, r_, s_)
    layouts = [(plan.nbx, (n_, g_, p_, q_), (0, 1, 2, 3), False)]
    if plan.single:
        axes = sparse._row_axes(plan, (sparse._N, sparse._G, sparse._P, sparse._Q))
        spans = (plan.span[sparse._N], plan.span[sparse._G], plan.span[sparse._P],
                 plan.span[sparse._Q])
        layouts.append((plan.nbxp, tuple(spans[a] for a in axes), axes, True))
    for pad_value in (False, True):
        cols = _definition(act, nest, pads, pad_value)
        for boxes, slots, axes, single in layouts:
            words = sparse._act_box_words(act, nest, pads, pad_value, plan, boxes, slots, axes)
            words = words.reshape(tuple(boxes) + tuple(slots) + (plan.wpb,))
            wwords = sparse._weight_side(wmask, nest, plan, single, True)[0]
            wslots = (plan.span[sparse._G], plan.span[sparse._K]) if single else (g_, k_)
            wwords = wwords.reshape(tuple(boxes) + wslots + (plan.wpb,))
            seen = np.zeros(words.shape[:-1], dtype=bool)
            for box in np.ndindex(*plan.nbx):
                sl = _box_slices(plan, box)
                bits = cols[(Ellipsis,) + sl]                      # (N, G, P, Q, c, r, s)
                want = bits.sum(axis=(4, 5, 6))
                pairs = np.einsum("ngpqcrs,gkcrs->ngpqk", bits.astype(np.int64),
                                  w[(Ellipsis,) + sl].astype(np.int64))
                for n, g, p, q in np.ndindex(n_, g_, p_, q_):
                    slot = tuple((n, g, p, q)[a] for a in axes)
                    row = words[box + slot]
                    seen[box + slot] = True
                    assert int(np.bitwise_count(row).sum()) == want[n, g, p, q], \
                        (pad_value, single, box, (n, g, p, q))
                    both = np.bitwise_count(row[None, :] & wwords[box + (g,)][:k_]).sum(axis=1)
                    np.testing.assert_array_equal(both, pairs[n, g, p, q],
                                                  err_msg=f"{pad_value} {single} {box}")
            assert not words[~seen].any()        # padded slots and boxes past the size


def _random_case(rng):
    """A random layer, mask and split of the reduction: stride, dilation, padding wider than
    the input, groups, depthwise, 1x1, one channel, odd and clipped boxes, every density."""
    kind = rng.choice(["conv", "conv", "depthwise", "pointwise", "wide"])
    g = rng.choice([1, 1, 2, 3])
    c = rng.choice([1, 2, 3, 5, 7, 13])
    r, s = rng.choice([1, 2, 3]), rng.choice([1, 3])
    if kind == "depthwise":
        g, c = rng.choice([2, 3, 4]), 1
    if kind == "pointwise":
        r = s = 1
        c = rng.choice([1, 3, 64, 70, 130])
    if kind == "wide":         # more than 64 taps in a box, or channels past a word
        r, s, c = rng.choice([(9, 9, 2), (3, 3, 70), (1, 3, 67)])
    stride = (rng.choice([1, 2, 3]), rng.choice([1, 2]))
    dil = (rng.choice([1, 2]), rng.choice([1, 2]))
    p, q = rng.choice([1, 2, 3, 4]), rng.choice([1, 2, 3])
    nest = LoopNest((rng.choice([1, 2]), g, rng.choice([1, 2, 3]), c, p, q, r, s), *stride, *dil)
    inner = {d: rng.choice([1, b, b, max(1, b // 2), max(1, b - 1)])
             for d, b in zip("CRS", (c, r, s))}
    middle = {d: rng.choice([1, 1, 2]) for d in "CRS"}
    pads = (rng.choice([0, 1, 2]), rng.choice([0, 1, 3]))
    h = max(1, (p - 1) * stride[0] + (r - 1) * dil[0] + 1 - 2 * pads[0] + rng.choice([-1, 0, 0, 1]))
    w = max(1, (q - 1) * stride[1] + (s - 1) * dil[1] + 1 - 2 * pads[1] + rng.choice([-1, 0, 0, 2]))
    np_rng = np.random.default_rng(rng.randrange(1 << 30))
    act = np_rng.random((nest.bounds[0], g * c, h, w)) < rng.choice([0.0, 0.3, 0.7, 1.0])
    wmask = np_rng.random((g * nest.bounds[2], c, r, s)) < rng.choice([0.0, 0.5, 1.0])
    return nest, _mapping(nest, inner, middle, rng), act, wmask, pads


def _path(plan) -> str:
    """Which way :func:`accelsim.map.sparse._act_words` builds the plan's words."""
    if plan.order[2] == sparse._C:
        return "channel runs"
    if plan.order[0] == sparse._C and plan.box[1] * plan.box[2] <= 64:
        return "tap codes"
    return "bit by bit"


# (bounds N G K C P Q R S, strides, dilations, pads, inner C R S, middle C R S)
_CASES = {
    "pointwise, whole words": ((1, 1, 2, 130, 3, 2, 1, 1), (1, 1), (1, 1), (0, 0), (128, 1, 1),
                               (1, 1, 1)),
    "pointwise, stride, clipped": ((2, 1, 2, 70, 2, 3, 1, 1), (2, 2), (1, 1), (0, 0), (33, 1, 1),
                                   (1, 1, 1)),
    "3x3 taps, channel boxes": ((1, 2, 2, 5, 3, 3, 3, 3), (1, 1), (1, 1), (1, 1), (2, 3, 3),
                                (1, 1, 1)),
    "7x7 stride 2, wide codes": ((1, 1, 1, 3, 2, 3, 7, 7), (2, 2), (1, 1), (3, 3), (2, 7, 7),
                                 (1, 1, 1)),
    "depthwise, dilated": ((1, 3, 1, 1, 3, 2, 3, 3), (2, 1), (2, 2), (2, 1), (1, 3, 3),
                           (1, 1, 1)),
    "taps split, C innermost": ((1, 1, 2, 6, 2, 2, 3, 3), (1, 2), (1, 1), (1, 0), (6, 1, 1),
                                (1, 1, 1)),
    "C in the middle": ((1, 1, 2, 4, 2, 2, 1, 3), (1, 1), (1, 1), (0, 1), (3, 1, 3), (1, 1, 1)),
    "over 64 taps": ((1, 1, 1, 2, 2, 1, 9, 9), (1, 1), (1, 1), (4, 4), (1, 9, 9), (1, 1, 1)),
    "boxes past the size": ((1, 1, 1, 5, 2, 2, 3, 1), (1, 1), (1, 1), (1, 0), (2, 1, 1),
                            (2, 1, 1)),
}


@pytest.mark.parametrize("name", sorted(_CASES))
def test_act_words_by_definition(name):
    bounds, stride, dil, pads, inner, middle = _CASES[name]
    nest = LoopNest(bounds, *stride, *dil)
    mapping = _mapping(nest, dict(zip("CRS", inner)), dict(zip("CRS", middle)),
                       random.Random(7))
    n, g, k, c, p, q, r, s = bounds
    h = (p - 1) * stride[0] + (r - 1) * dil[0] + 1 - 2 * pads[0]
    w = (q - 1) * stride[1] + (s - 1) * dil[1] + 1 - 2 * pads[1]
    rng = np.random.default_rng(len(name))
    # the mask as large as the layer reads, and one row and column short (the layer then reads
    # past the padded mask: absent elements)
    for density, short in ((0.0, 0), (0.5, 0), (1.0, 0), (0.5, 1), (1.0, 1)):
        act = rng.random((n, g * c, max(h - short, 1), max(w - short, 1))) < density
        wmask = rng.random((g * k, c, r, s)) < 0.6
        _check(nest, mapping, act, wmask, pads)


def test_cases_reach_every_path():
    """The named cases run each way of building the words."""
    paths = set()
    for bounds, stride, dil, _, inner, middle in _CASES.values():
        nest = LoopNest(bounds, *stride, *dil)
        plan = sparse._plan(nest, _mapping(nest, dict(zip("CRS", inner)),
                                           dict(zip("CRS", middle)), random.Random(7)), 1)
        paths.add(_path(plan))
    assert paths == {"channel runs", "tap codes", "bit by bit"}


@pytest.mark.parametrize("seed", range(4))
def test_act_words_random(seed):
    _check(*_random_case(random.Random(seed)))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4, 400))
def test_act_words_random_many(seed):
    _check(*_random_case(random.Random(seed)))
