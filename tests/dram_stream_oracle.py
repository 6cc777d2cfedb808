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


#: The oracle's own names of each tensor's coordinates (the layout's dimension names).
NAMES = {"W": ("G", "K", "C", "R", "S"), "I": ("N", "G", "C", "H", "W"), "O": ("N", "G", "K", "P", "Q")}
MIB = 1 << 20


def _blocking(nest, loops, child, tensor):
    """Per coordinate ``(tile step or 0, rank of its outermost loop above the child)``, straight
    from the layout's definition: a coordinate a loop above the child moves is cut into blocks
    of the child tile's step (the product of the child-and-below factors of its dim, times the
    stride; an input row: ``P``'s step, else ``R``'s)."""
    out = []
    for td in nest.tensor_dims(tensor):
        def ext(dim):
            e = 1
            for lv, l in loops:
                if lv >= child and l.dim == dim:
                    e *= l.factor
            return e

        def outermost(dim):
            for k, (lv, l) in enumerate(loops):
                if lv < child and l.dim == dim and l.factor > 1:
                    return k
            return None

        if outermost(td.outer) is not None:
            step = ext(td.outer) * td.stride
        elif td.inner is not None and outermost(td.inner) is not None:
            step = ext(td.inner) * td.dilation
        else:
            out.append((0, None))
            continue
        ranks = [outermost(d) for d in td.dims if outermost(d) is not None]
        out.append((step, min(ranks)))
    return out


def oracle_bytes(nest, mapping, keeps, lo=None, sizes=None, on_chip=frozenset(), layout=None,
                 spills=False):
    """Counter of ``(byte address, is_write)`` over the stream, 1 byte per element, regions in
    TENSORS order each at ``base`` = sum of earlier regions rounded up to 1 MiB (as
    :func:`accelsim.sim.dram_stream.layouts` with unit elements).

    ``layout``: per tensor a dict of ``order`` (dimension names, outermost first; G, when left
    out, outermost), ``tile_major`` and ``base`` (declared byte base; the others take the
    lowest MiB boundary after the previous one that overlaps no region). An element at
    index-space coordinate ``x`` of a tile-major tensor lies in block ``x // T`` at ``x % T``
    along each blocked coordinate (``T`` its tile step, :func:`_blocking`), at ``x - lo`` in
    the single block of the others; blocks are row-major in the order of their outermost loops,
    each block row-major in ``order`` over ``T`` (or the size) per coordinate.

    ``spills``: an output write that is not the last write of its address (a partial sum that
    leaves before its reduction ends) counts as ``is_write`` 2, and only the last writes (the
    final values) are dropped for an output kept on chip (``"O" in on_chip``)."""
    loops = [(lv, l) for lv, l in mapping.flat()]
    radix = _radix(loops)
    out = Counter()
    layout = layout or {}
    geom = {}
    for tensor in TENSORS:
        tds = nest.tensor_dims(tensor)
        lo_t = (lo or {}).get(tensor, (0,) * len(tds))
        if sizes and tensor in sizes:
            size_t = list(sizes[tensor])
        else:
            size_t = [nest.bound(td.outer) if td.inner is None else
                      (nest.bound(td.outer) - 1) * td.stride + (nest.bound(td.inner) - 1) * td.dilation + 1
                      for td in tds]
        decl = layout.get(tensor, {})
        names = NAMES[tensor]
        order = list(decl.get("order") or names)
        if "G" not in order:
            order = ["G"] + order
        within = [names.index(d) for d in order]
        child = next((i for i in range(1, len(keeps)) if tensor in keeps[i]), None)
        blocks = [(0, None)] * len(tds)
        if decl.get("tile_major") and child is not None:
            blocks = _blocking(nest, loops, child, tensor)
        extent = [b[0] if b[0] else n for b, n in zip(blocks, size_t)]
        count = [-(-(l + n) // b[0]) if b[0] else 1 for b, n, l in zip(blocks, size_t, lo_t)]
        block_order = sorted((k for k in range(len(tds)) if blocks[k][0]),
                             key=lambda k: (blocks[k][1], k))
        n_elems = 1
        for e, c in zip(extent, count):
            n_elems *= e * c
        geom[tensor] = (lo_t, size_t, within, blocks, extent, count, block_order, n_elems, child)
    bases, spans = {}, {}
    for tensor in TENSORS:
        spans[tensor] = -(-max(geom[tensor][7], 1) // MIB) * MIB
        if layout.get(tensor, {}).get("base") is not None:
            bases[tensor] = layout[tensor]["base"]
    cursor = 0
    for tensor in TENSORS:
        if tensor in bases:
            continue
        while any(cursor < bases[t] + spans[t] and bases[t] < cursor + spans[tensor] for t in bases):
            cursor += MIB
        bases[tensor] = cursor
        cursor += spans[tensor]
    for tensor in TENSORS:
        tds = nest.tensor_dims(tensor)
        lo_t, size_t, within, blocks, extent, count, block_order, n_elems, child = geom[tensor]
        region_base = bases[tensor]
        if child is None or (tensor in on_chip and tensor != "O"):
            continue
        real = _real_sets(nest, tensor)

        def address(c):
            stored = [v - l for v, l in zip(c, lo_t)]
            if any(not 0 <= s < n for s, n in zip(stored, size_t)) or \
                    any(v not in r for v, r in zip(c, real)):
                return None
            block = [v // b[0] if b[0] else 0 for v, b in zip(c, blocks)]
            inside = [v % b[0] if b[0] else s for v, s, b in zip(c, stored, blocks)]
            lin = 0
            for k in block_order:
                lin = lin * count[k] + block[k]
            for k in within:
                lin = lin * extent[k] + inside[k]
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
        drains = []         # output addresses in the order they are written
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
                    if prev_tiles is not None:
                        drains.extend(prev_tiles[k])
                    out.update((a, 0) for a in t if a in seen)
                    seen |= t
                elif shift is not None and shift == step:
                    out.update((a, 0) for a in t - prev_tiles[k])
                else:
                    out.update((a, 0) for a in t)
            prev_tiles, prev_origin = tiles, o
        if tensor == "O" and prev_tiles is not None:
            for t in prev_tiles:
                drains.extend(t)
            _count_drains(out, drains, spills, "O" in on_chip)
    return out


def _count_drains(out: Counter, drains: list, spills: bool, kept: bool) -> None:
    """Add the output writes ``drains`` (addresses in write order) to ``out``: as ``(a, 1)``
    (none when ``kept`` on chip), or with ``spills`` each address's last write as ``(a, 1)``
    (dropped when ``kept``) and the earlier ones as ``(a, 2)``."""
    if not spills:
        if not kept:
            out.update((a, 1) for a in drains)
        return
    times = Counter(drains)
    for a, n in times.items():
        if n > 1:
            out[(a, 2)] += n - 1
        if not kept:
            out[(a, 1)] += 1
