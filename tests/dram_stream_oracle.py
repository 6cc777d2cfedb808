"""Brute-force oracle of a mapped nest's DRAM stream (independent of accelsim.sim.dram_stream).

It walks every iteration of the temporal loops above each tensor's child level, builds the
child tiles (one per distinct sibling of each level of spatial loops above it) as explicit
sets of element coordinates, and records byte addresses whenever a tile moves: the new
elements for a step of the innermost loop above the child, the whole tile for any other move
(Timeloop's rule), outputs drained when they leave and read back when seen before.
"""
from __future__ import annotations

import itertools
from collections import Counter

from accelsim.map.nest import DIMS, TENSORS


def _radix(loops):
    """Per loop its radix stride in its dim (inner loops of the dim multiply)."""
    out, acc = [0] * len(loops), {}
    for i in range(len(loops) - 1, -1, -1):
        dim, f = loops[i][1].dim, loops[i][1].factor
        out[i] = acc.get(dim, 1)
        acc[dim] = out[i] * f
    return out


def _coords(nest, tensor, idx):
    """Element coordinates of ``tensor`` at dim indices ``idx``."""
    out = []
    for td in nest.tensor_dims(tensor):
        if td.inner is None:
            out.append(idx[td.outer])
        else:
            out.append(idx[td.outer] * td.stride + idx[td.inner] * td.dilation)
    return tuple(out)


def _real_sets(nest, tensor):
    out = []
    for td in nest.tensor_dims(tensor):
        if td.inner is None:
            out.append(set(range(nest.bound(td.outer))))
        else:
            out.append({o * td.stride + i * td.dilation for o in range(nest.bound(td.outer))
                        for i in range(nest.bound(td.inner))})
    return out


def oracle_bytes(nest, mapping, keeps, lo=None, sizes=None, on_chip=frozenset()):
    """Counter of ``(byte address, is_write)`` over the stream, 1 byte per element, regions in
    TENSORS order each at ``base`` = sum of earlier regions rounded up to 1 MiB (as
    :func:`accelsim.sim.dram_stream.layouts` with unit elements)."""
    loops = [(lv, l) for lv, l in mapping.flat()]
    radix = _radix(loops)
    out = Counter()
    base = 0
    for tensor in TENSORS:
        tds = nest.tensor_dims(tensor)
        lo_t = (lo or {}).get(tensor, (0,) * len(tds))
        if sizes and tensor in sizes:
            size_t = sizes[tensor]
        else:
            size_t = [nest.bound(td.outer) if td.inner is None else
                      (nest.bound(td.outer) - 1) * td.stride + (nest.bound(td.inner) - 1) * td.dilation + 1
                      for td in tds]
        n_elems = 1
        for s in size_t:
            n_elems *= s
        region_base = base
        base += -(-max(n_elems, 1) // (1 << 20)) * (1 << 20)
        child = next((i for i in range(1, len(keeps)) if tensor in keeps[i]), None)
        if child is None or (tensor in on_chip and tensor != "O"):
            continue
        real = _real_sets(nest, tensor)

        def address(c):
            stored = [v - l for v, l in zip(c, lo_t)]
            if any(not 0 <= s < n for s, n in zip(stored, size_t)) or \
                    any(v not in r for v, r in zip(c, real)):
                return None
            lin = 0
            for s, n in zip(stored, size_t):
                lin = lin * n + s
            return region_base + lin

        above = [i for i, (lv, l) in enumerate(loops) if lv < child and not l.spatial]
        inside = [i for i, (lv, l) in enumerate(loops) if lv >= child]
        spatial_levels = sorted({lv for lv, l in loops if l.spatial and lv < child})

        def tile(idx_base):
            """Elements (addresses) of every sibling tile, per distinct sibling per level."""
            per_level = []
            for lv in spatial_levels:
                mine = [i for i, (lv_, l) in enumerate(loops) if lv_ == lv and l.spatial]
                offs = set()
                for digits in itertools.product(*(range(loops[i][1].factor) for i in mine)):
                    idx = dict.fromkeys(DIMS, 0)
                    for i, d in zip(mine, digits):
                        idx[loops[i][1].dim] += d * radix[i]
                    offs.add(_coords(nest, tensor, idx))
                per_level.append(sorted(offs))
            tiles = []
            for combo in itertools.product(*per_level):
                off = [sum(c[k] for c in combo) for k in range(len(tds))]
                elems = set()
                for digits in itertools.product(*(range(loops[i][1].factor) for i in inside)):
                    idx = dict(idx_base)
                    for i, d in zip(inside, digits):
                        idx[loops[i][1].dim] += d * radix[i]
                    c = _coords(nest, tensor, idx)
                    a = address(tuple(v + o for v, o in zip(c, off)))
                    if a is not None:
                        elems.add(a)
                tiles.append(elems)
            return tiles

        def origin(idx):
            return _coords(nest, tensor, idx)

        step = None
        if above:
            idx = dict.fromkeys(DIMS, 0)
            idx[loops[above[-1]][1].dim] = radix[above[-1]]
            step = origin(idx)
        prev_tiles, prev_origin = None, None
        seen = set()
        for digits in itertools.product(*(range(loops[i][1].factor) for i in above)):
            idx = dict.fromkeys(DIMS, 0)
            for i, d in zip(above, digits):
                idx[loops[i][1].dim] += d * radix[i]
            o = origin(idx)
            if prev_origin is not None and o == prev_origin:
                continue
            tiles = tile(idx)
            shift = None if prev_origin is None else tuple(a - b for a, b in zip(o, prev_origin))
            for k, t in enumerate(tiles):
                if tensor == "O":
                    if prev_tiles is not None and "O" not in on_chip:
                        out.update((a, 1) for a in prev_tiles[k])
                    out.update((a, 0) for a in t if a in seen)
                    seen |= t
                elif shift is not None and shift == step:
                    out.update((a, 0) for a in t - prev_tiles[k])
                else:
                    out.update((a, 0) for a in t)
            prev_tiles, prev_origin = tiles, o
        if tensor == "O" and prev_tiles is not None and "O" not in on_chip:
            for t in prev_tiles:
                out.update((a, 1) for a in t)
    return out
