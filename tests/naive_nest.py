"""Brute-force reference for mapping access counts: walk every step, hold explicit sets.

Written from the definition, sharing no code with ``accelsim.map.access``: at every step of the
temporal loops, each storage-level instance must hold the set of elements that the loops at its
level and below touch; new elements are filled from the next outer level that keeps the tensor,
which reads the union of what its children need at that step (multicast). Outputs: evicted
elements are read out and written (updated) to the parent once per step after reduction across
siblings; an arriving psum is fetched only if the parent already holds a written value. MACs
read operands every step and update the innermost output level, reading the psum unless it is
the first update of that element there.
"""
from __future__ import annotations

from itertools import product

DIM_ORDER = ("N", "G", "K", "C", "P", "Q", "R", "S")


def _dim_values(loops, idx):
    """Horner over the loops outer -> inner: each dim's index from its loops' indices."""
    value = {d: 0 for d in DIM_ORDER}
    for (lv, loop), i in zip(loops, idx):
        value[loop.dim] = value[loop.dim] * loop.factor + i
    return value


def _element(tensor, v, nest):
    if tensor == "W":
        return (v["G"], v["K"], v["C"], v["R"], v["S"])
    if tensor == "O":
        return (v["N"], v["G"], v["K"], v["P"], v["Q"])
    return (v["N"], v["G"], v["C"], v["P"] * nest.stride_h + v["R"] * nest.dil_h,
            v["Q"] * nest.stride_w + v["S"] * nest.dil_w)


def brute_counts(nest, mapping, keeps):
    """{(level, tensor, action): count} plus ('mac', tensor) reads, by walking every step."""
    loops = [(lv, l) for lv, level in enumerate(mapping.levels) for l in level.temporal + level.spatial]
    nl = len(mapping.levels)
    temporal = [i for i, (lv, l) in enumerate(loops) if not l.spatial]
    spatial = [i for i, (lv, l) in enumerate(loops) if l.spatial]
    counts = {}

    def add(key, n):
        counts[key] = counts.get(key, 0) + n

    def instance_of(level, spatial_idx):
        """Identity of the instance of ``level``: the spatial indices at levels above it."""
        return tuple(spatial_idx[k] for k, i in enumerate(spatial) if loops[i][0] < level)

    def tile(tensor, level, tidx, sidx):
        fixed = {}
        for k, i in enumerate(temporal):
            fixed[i] = tidx[k]
        for k, i in enumerate(spatial):
            fixed[i] = sidx[k]
        free = [i for i, (lv, l) in enumerate(loops) if lv >= level]
        out = set()
        for combo in product(*[range(loops[i][1].factor) for i in free]):
            idx = [fixed.get(i, 0) for i in range(len(loops))]
            for i, c in zip(free, combo):
                idx[i] = c
            out.add(_element(tensor, _dim_values(loops, idx), nest))
        return out

    spatial_space = list(product(*[range(loops[i][1].factor) for i in spatial]))
    steps = list(product(*[range(loops[i][1].factor) for i in temporal]))
    for tensor in ("W", "I", "O"):
        chain = [i for i in range(nl) if tensor in keeps[i]]
        held = {lvl: {} for lvl in chain}
        written = {lvl: {} for lvl in chain}    # outputs: elements written into an instance

        def move(parent, child, tidx, final=False):
            groups = {}
            for sidx in spatial_space:
                inst = instance_of(child, sidx)
                pinst = instance_of(parent, sidx)
                groups.setdefault(pinst, {})[inst] = sidx
            for pinst, children in groups.items():
                new_union, evict_union = set(), set()
                for inst, sidx in children.items():
                    now = set() if final else tile(tensor, child, tidx, sidx)
                    before = held[child].get(inst, set())
                    new, gone = now - before, before - now
                    held[child][inst] = now
                    if tensor != "O":
                        add((child, tensor, "fills"), len(new))
                    else:
                        add((child, tensor, "reads"), len(gone))
                    new_union |= new
                    evict_union |= gone
                if tensor != "O":
                    add((parent, tensor, "reads"), len(new_union))
                    continue
                add((parent, tensor, "updates"), len(evict_union))
                wp = written[parent].setdefault(pinst, set())
                wp |= evict_union
                refetch = len(new_union & wp)
                add((parent, tensor, "reads"), refetch)
                add((child, tensor, "fills"), refetch)

        for tidx in steps:
            for parent, child in zip(chain, chain[1:]):
                move(parent, child, tidx)
            inner = chain[-1]
            groups = {}
            for sidx in spatial_space:
                idx = [0] * len(loops)
                for k, i in enumerate(temporal):
                    idx[i] = tidx[k]
                for k, i in enumerate(spatial):
                    idx[i] = sidx[k]
                groups.setdefault(instance_of(inner, sidx), set()).add(
                    _element(tensor, _dim_values(loops, idx), nest))
            for inst, points in groups.items():
                if tensor != "O":
                    add((inner, tensor, "reads"), len(points))
                    add(("mac", tensor), len(points))
                else:
                    w = written[inner].setdefault(inst, set())
                    add((inner, tensor, "reads"), len(points & w))
                    add(("mac", tensor), len(points & w))
                    add((inner, tensor, "updates"), len(points))
                    w |= points
        if tensor == "O":
            for parent, child in zip(chain, chain[1:]):
                move(parent, child, steps[-1], final=True)
    return counts
