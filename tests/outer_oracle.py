"""Brute-force reference for outer-level gate/skip actions: walk every iteration point.

Written from the definition (``accelsim/sim/tile_conditions.py``'s docstring), sharing no code
with it: plain Python loops over every digit of every loop, explicit sets of tensor elements.

- A tensor's elements are the coordinates some real MAC (every index below its bound) touches:
  weights ``(g, k, c, r, s)``, inputs ``(n, g, c, h, w)`` with ``h = p*stride_h + r*dil_h``.
- At an iteration point of the loops above the child level, a child instance (its spatial
  digits) holds the elements among the coordinates the loops inside the child boundary touch.
- Moving from the previous point of the same instance, the tile's base coordinates are
  translated: no translation moves nothing, the translation of one step of the innermost
  temporal loop above the child moves the elements not held before, any other moves the whole
  tile (the first point: the whole tile).
- The condition tile of an operand is its elements the loops inside the child touch at that
  point; it is empty when none is non-zero (a padding input is non-zero unless skip_padding).
- Reads: siblings under the level (same temporal point, same digits of the spatial loops above
  the level) whose padded tiles at every intermediate level and the child coincide share one
  read (multicast), which is skipped only if all of them skip.
"""
from __future__ import annotations

import itertools

from accelsim.map.nest import DIMS


def _coords(tensor, idx, nest):
    n, g, k, c, p, q, r, s = (idx[d] for d in DIMS)
    if tensor == "W":
        return (g, k, c, r, s)
    if tensor == "I":
        return (n, g, c, p * nest.stride_h + r * nest.dil_h, q * nest.stride_w + s * nest.dil_w)
    return (n, g, k, p, q)


def _all_elements(tensor, nest):
    ranges = [range(nest.bound(d)) for d in DIMS]
    return {_coords(tensor, dict(zip(DIMS, v)), nest) for v in itertools.product(*ranges)}


def _nonzero(operand, element, act, wmask, nest, pads, skip_padding):
    if operand == "W":
        g, k, c, r, s = element
        return bool(wmask[g * nest.bound("K") + k, c, r, s])
    n, g, c, h, w = element
    y, x = h - pads[0], w - pads[1]
    if 0 <= y < act.shape[2] and 0 <= x < act.shape[3]:
        return bool(act[n, g * nest.bound("C") + c, y, x])
    return not skip_padding


def brute_transfers(nest, mapping, level, child, tensor, condition, act, wmask, pads,
                    skip_padding, multicast=True):
    """(fills, fills skipped, reads, reads skipped) in elements of ``tensor``'s transfers from
    ``level`` into ``child``."""
    loops = [(i, l.dim, l.factor, l.spatial) for i, lv in enumerate(mapping.levels)
             for l in lv.temporal + lv.spatial if l.factor > 1]   # a factor-1 loop is no loop
    weight = [0] * len(loops)              # each loop's place value in its dim's index
    place = dict.fromkeys(DIMS, 1)
    for j in reversed(range(len(loops))):
        weight[j] = place[loops[j][1]]
        place[loops[j][1]] *= loops[j][2]
    above = [j for j in range(len(loops)) if loops[j][0] < child]
    inside = [j for j in range(len(loops)) if loops[j][0] >= child]
    temporal = [j for j in above if not loops[j][3]]
    exists = {t: _all_elements(t, nest) for t in set(condition) | {tensor}}

    def index(digits):
        out = dict.fromkeys(DIMS, 0)
        for j, v in digits.items():
            out[loops[j][1]] += v * weight[j]
        return out

    def tile(t, base, loop_set, real=True):
        out = set()
        for v in itertools.product(*[range(loops[j][2]) for j in loop_set]):
            idx = dict(base)
            for j, x in zip(loop_set, v):
                idx[loops[j][1]] += x * weight[j]
            e = _coords(t, idx, nest)
            if not real or e in exists[t]:
                out.add(e)
        return out

    def base_coords(digits):
        return _coords(tensor, index(digits), nest)

    step_k = None
    if temporal:
        zero = {j: 0 for j in above}
        one = dict(zero)
        one[temporal[-1]] = 1
        step_k = tuple(a - b for a, b in zip(base_coords(one), base_coords(zero)))
    fills = fills_skip = reads = reads_skip = 0
    previous = {}                          # instance -> (base coords, tile)
    groups = {}                            # read group -> [(moved, empty) of each member]
    for values in itertools.product(*[range(loops[j][2]) for j in above]):
        digits = dict(zip(above, values))
        base = index(digits)
        instance = tuple(digits[j] for j in above if loops[j][3])
        new = tile(tensor, base, inside)
        coords = _coords(tensor, base, nest)
        if instance not in previous:
            moved = new
        else:
            old_coords, old = previous[instance]
            shift = tuple(a - b for a, b in zip(coords, old_coords))
            if all(x == 0 for x in shift):
                moved = set()
            elif shift == step_k:
                moved = new - old
            else:
                moved = new
        previous[instance] = (coords, new)
        empty = any(not any(_nonzero(op, e, act, wmask, nest, pads, skip_padding)
                            for e in tile(op, base, inside)) for op in condition)
        fills += len(moved)
        fills_skip += len(moved) if empty else 0
        # the read group: the temporal point, the spatial digits above the level, then the
        # padded tile of every virtual instance from the level's spatial loops to the child
        key = [tuple(digits[j] for j in temporal)]
        key += [digits[j] for j in above if loops[j][3] and loops[j][0] < level]
        if multicast:
            for lv in range(level, child):
                if any(loops[j][0] == lv and loops[j][3] for j in above):
                    below = [j for j in range(len(loops)) if loops[j][0] > lv]
                    at = index({j: digits[j] for j in above if loops[j][0] <= lv})
                    key.append(frozenset(tile(tensor, at, below, real=False)))
        else:
            key.append(instance)
        groups.setdefault(tuple(key), []).append((len(moved), empty))
    for members in groups.values():
        moved = members[0][0]
        assert all(m == moved for m, _ in members)
        reads += moved
        reads_skip += moved if all(e for _, e in members) else 0
    return fills, fills_skip, reads, reads_skip
