"""Brute-force reference for mapping access counts: walk every step, hold explicit sets.

Written from the definition (Timeloop's conventions, see tests/fixtures/timeloop/README.md),
sharing no code with ``accelsim.map.access``. At every step of the temporal loops each
storage-level instance holds the set of elements that the loops at its level and below touch.
When only the innermost temporal loop above it advanced, it is filled with the elements it does
not hold (sliding-window reuse); when an outer loop advanced (the inner ones wrapped) it reloads
its whole tile unless the tile is unchanged. A parent is read once per group of siblings that
differ only in spatial loops of dimensions that do not index the tensor (multicast); outputs
from such a group are reduced to one update. Psums: a child refills an element it held before
(a read at the parent unless the parent never got it); an evicted element is one update at the
parent, and reads the parent's copy first when that copy exists and the evicting child did not
start from it (unicast siblings sharing an output: read-modify-write). The MAC units read each operand from the innermost level that keeps it every step and
update the innermost output level, reading the psum unless it is that element's first update.
"""
from __future__ import annotations

from itertools import product

DIM_ORDER = ("N", "G", "K", "C", "P", "Q", "R", "S")
RELEVANT = {"W": {"G", "K", "C", "R", "S"}, "I": {"N", "G", "C", "P", "Q", "R", "S"},
            "O": {"N", "G", "K", "P", "Q"}}


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


def brute_counts(nest, mapping, keeps, unicast=frozenset()):
    """{(level, tensor, action): count} plus ('mac', tensor) reads, by walking every step."""
    loops = [(lv, l) for lv, level in enumerate(mapping.levels) for l in level.temporal + level.spatial]
    nl = len(mapping.levels)
    temporal = [i for i, (lv, l) in enumerate(loops) if not l.spatial]
    spatial = [i for i, (lv, l) in enumerate(loops) if l.spatial]
    counts = {}

    def add(key, n):
        counts[key] = counts.get(key, 0) + n

    def instance_of(level, sidx):
        return tuple(sidx[k] for k, i in enumerate(spatial) if loops[i][0] < level)

    def group_of(tensor, lo, hi, sidx):
        """Siblings under one parent that need different data: relevant spatial indices
        (every sibling on its own when the parent ``lo`` has no multicast)."""
        return tuple(sidx[k] for k, i in enumerate(spatial)
                     if lo <= loops[i][0] < hi and (loops[i][1].dim in RELEVANT[tensor] or lo in unicast))

    def tile(tensor, level, tidx, sidx):
        fixed = {i: tidx[k] for k, i in enumerate(temporal)}
        fixed.update({i: sidx[k] for k, i in enumerate(spatial)})
        free = [i for i, (lv, l) in enumerate(loops) if lv >= level]
        out = set()
        for combo in product(*[range(loops[i][1].factor) for i in free]):
            idx = [fixed.get(i, 0) for i in range(len(loops))]
            for i, c in zip(free, combo):
                idx[i] = c
            out.add(_element(tensor, _dim_values(loops, idx), nest))
        return out

    def wrapped(level, prev, tidx):
        """Did a temporal loop above ``level`` other than its innermost non-trivial one change?"""
        above = [k for k, i in enumerate(temporal) if loops[i][0] < level and loops[i][1].factor > 1]
        if prev is None or not above:
            return False
        return any(prev[k] != tidx[k] for k in above[:-1])

    spatial_space = list(product(*[range(loops[i][1].factor) for i in spatial]))
    steps = list(product(*[range(loops[i][1].factor) for i in temporal]))
    for tensor in ("W", "I", "O"):
        chain = [i for i in range(nl) if tensor in keeps[i]]
        held = {lvl: {} for lvl in chain}
        ever = {lvl: {} for lvl in chain}      # outputs: elements an instance ever held
        written = {lvl: {} for lvl in chain}   # outputs: elements written into an instance
        refilled = {lvl: {} for lvl in chain}  # outputs: per (instance, group) the elements whose
        #                                        current residency started from a parent read

        def move(parent, child, tidx, prev, final=False):
            groups = {}
            for sidx in spatial_space:
                pinst = instance_of(parent, sidx)
                groups.setdefault(pinst, {}).setdefault(group_of(tensor, parent, child, sidx), {})[
                    instance_of(child, sidx)] = sidx
            wrap = wrapped(child, prev, tidx)
            for pinst, by_group in groups.items():
                for gkey, members in by_group.items():
                    news, gones = [], []
                    for inst, sidx in members.items():
                        now = set() if final else tile(tensor, child, tidx, sidx)
                        before = held[child].get(inst, set())
                        if wrap and now != before:
                            new, gone = now, before
                        else:
                            new, gone = now - before, before - now
                        held[child][inst] = now
                        if tensor != "O":
                            add((child, tensor, "fills"), len(new))
                        else:
                            seen = ever[child].setdefault(inst, set())
                            add((child, tensor, "fills"), len(new & seen))
                            seen |= new
                        news.append(new)
                        gones.append(gone)
                    new, gone = news[0], gones[0]   # every member of a group holds the same tile
                    if tensor != "O":
                        add((parent, tensor, "reads"), len(new))
                        continue
                    add((parent, tensor, "updates"), len(gone))
                    wp = written[parent].setdefault(pinst, set())
                    fed = refilled[parent].setdefault((pinst, gkey), set())
                    # A drained psum lands on the parent's one copy of the element. If this
                    # group's residency started from that copy (a refill, read below) the drain
                    # overwrites it; otherwise a copy already there (another group drained it:
                    # unicast siblings that differ only in dims not indexing the output hold the
                    # same elements) must be read and added to. E.g. C=4, buf spatial C2 unicast,
                    # reg for C in [0:2): both PEs start the one output from zero, each drains it
                    # once: 2 updates at buf, the first initialises, the second is a read-modify-
                    # write: 1 read (not 0). With multicast the groups hold disjoint elements and
                    # this adds nothing.
                    add((parent, tensor, "reads"), len((gone & wp) - fed))
                    fed -= gone
                    wp |= gone
                    refill = new & wp
                    add((parent, tensor, "reads"), len(refill))
                    fed |= refill

        prev = None
        for tidx in steps:
            for parent, child in zip(chain, chain[1:]):
                move(parent, child, tidx, prev)
            inner = chain[-1]
            groups = {}
            for sidx in spatial_space:
                idx = [0] * len(loops)
                for k, i in enumerate(temporal):
                    idx[i] = tidx[k]
                for k, i in enumerate(spatial):
                    idx[i] = sidx[k]
                key = (instance_of(inner, sidx), group_of(tensor, inner, nl, sidx))
                groups[key] = _element(tensor, _dim_values(loops, idx), nest)
            for (inst, _), point in groups.items():
                if tensor != "O":
                    add((inner, tensor, "reads"), 1)
                    add(("mac", tensor), 1)
                else:
                    w = written[inner].setdefault(inst, set())
                    first = point not in w
                    add((inner, tensor, "reads"), 0 if first else 1)
                    add(("mac", tensor), 0 if first else 1)
                    add((inner, tensor, "updates"), 1)
                    w.add(point)
            prev = tidx
        if tensor == "O":
            for parent, child in zip(chain, chain[1:]):
                move(parent, child, steps[-1], steps[-1], final=True)
    return counts
