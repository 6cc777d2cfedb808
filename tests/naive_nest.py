"""Brute-force reference for mapping access counts: walk every step, hold explicit sets.

Written from the definition, sharing no code with ``accelsim.map.access``: nothing here is
decided from which loop dimensions index a tensor. At every step of the temporal loops each
storage-level instance holds the set of tensor elements (``(n, g, c, h, w)`` inputs with
``h = p*stride + r*dilation``, ...) that the loops at its level and below touch, and sharing
and reuse are read off those sets. The conventions are Timeloop's (tests/test_map_conventions.py
names the source they come from):

- *time*: each step a child's tile is translated (the shift of its smallest coordinates). It
  is filled with the elements it does not hold (a sliding window keeps its overlap) when the
  translation is zero, or nothing was recorded, or it equals the translation recorded last;
  otherwise it reloads its whole tile and forgets the record. A translation is recorded when
  nothing was (a zero one too), so after a stationary step the next move reloads. A step that
  leaves the tile in place costs nothing.
- *space*: a parent instance serves its children level by level. Children of one instance of
  a level whose tiles are the same set (for the last level before the child: whose new
  elements are the same set) share one read (multicast) and one update (spatial reduction);
  e.g. row-stationary PEs ``(p, r)`` with equal ``p*stride + r*dilation`` hold the same input
  rows. Through levels that keep nothing of the tensor the sharing of every level applies, so
  a child's group is the chain of tiles of its ancestors below the parent plus its own. A
  parent in ``unicast`` serves every child on its own.
- psums: a child refills an element it held before (a read at the parent unless the parent
  never got it); an evicted element is one update at the parent, and reads the parent's copy
  first when that copy exists and the evicting child did not start from it (unicast siblings
  sharing an output: read-modify-write). The MAC units read each operand from the innermost
  level that keeps it every step (MACs that need the same element share the read) and update
  the innermost output level, reading the psum unless it is that element's first update.
"""
from __future__ import annotations

from itertools import product

# Remainder tiles (a dim's loops multiplying to more than its bound): the walk runs the padded
# loops; a tile is held and moved as the real elements of its padded box (an input coordinate
# keeps the values some real (p, r) pair touches: found here by listing them), translations
# and multicast groups are read off the padded boxes (the controller's fixed bounds), and a MAC
# unit works (reads its operands, updates its psum) only on a point whose indices are all below
# the bounds.

DIM_ORDER = ("N", "G", "K", "C", "P", "Q", "R", "S")
_AT = {d: i for i, d in enumerate(DIM_ORDER)}


def _element(tensor, v, nest, pad=(0, 0)):
    """The tensor coordinates one loop-nest point ``v`` (values in DIM_ORDER) touches; an
    input row is ``p*stride - pad + r*dilation`` (negative: in the padding)."""
    n, g, k, c, p, q, r, s = v
    if tensor == "W":
        return (g, k, c, r, s)
    if tensor == "O":
        return (n, g, k, p, q)
    return (n, g, c, p * nest.stride_h - pad[0] + r * nest.dil_h,
            q * nest.stride_w - pad[1] + s * nest.dil_w)


def _real_test(tensor, nest, pad=(0, 0)):
    """``is_real(element)``: the element exists (every index in bounds; inputs: a row/column
    some real (p, r) / (q, s) pair touches)."""
    n_, g_, k_, c_, p_, q_, r_, s_ = nest.bounds
    if tensor == "W":
        return lambda e: e[0] < g_ and e[1] < k_ and e[2] < c_ and e[3] < r_ and e[4] < s_
    if tensor == "O":
        return lambda e: e[0] < n_ and e[1] < g_ and e[2] < k_ and e[3] < p_ and e[4] < q_
    rows = {p * nest.stride_h - pad[0] + r * nest.dil_h for p in range(p_) for r in range(r_)}
    cols = {q * nest.stride_w - pad[1] + s * nest.dil_w for q in range(q_) for s in range(s_)}
    return lambda e: e[0] < n_ and e[1] < g_ and e[2] < c_ and e[3] in rows and e[4] in cols


def _translation(before, now):
    """How far a tile moved: the shift of its smallest value along each coordinate."""
    assert len(before) == len(now), "a tile changed shape"
    return tuple(min(e[i] for e in now) - min(e[i] for e in before)
                 for i in range(len(next(iter(now)))))


def brute_counts(nest, mapping, keeps, unicast=frozenset(), pad=(0, 0)):
    """{(level, tensor, action): count} plus ('mac', tensor) reads, by walking every step.

    ``pad`` = (rows, columns) of zero padding: padded positions are elements like the others
    (a padded input is read as if pre-padded, as Timeloop's problem shape does)."""
    loops = [(lv, l) for lv, level in enumerate(mapping.levels) for l in level.temporal + level.spatial]
    nl = len(mapping.levels)
    temporal = [i for i, (lv, l) in enumerate(loops) if not l.spatial]
    spatial = [i for i, (lv, l) in enumerate(loops) if l.spatial]
    radix, seen = [0] * len(loops), {}
    for i in range(len(loops) - 1, -1, -1):          # a dim's value: its loops' mixed radix
        d = loops[i][1].dim
        radix[i] = seen.get(d, 1)
        seen[d] = radix[i] * loops[i][1].factor

    def point(pairs):
        v = [0] * len(DIM_ORDER)
        for i, x in pairs:
            v[_AT[loops[i][1].dim]] += x * radix[i]
        return v

    # every combination of the loops at a level and below, as an offset of the loop-nest point
    offsets = {}
    for level in range(nl + 1):
        inner = [i for i, (lv, l) in enumerate(loops) if lv >= level]
        offsets[level] = [point(zip(inner, combo))
                          for combo in product(*[range(loops[i][1].factor) for i in inner])]
    counts = {}

    def add(key, n):
        counts[key] = counts.get(key, 0) + n

    def instance_of(level, sidx):
        return tuple(sidx[k] for k, i in enumerate(spatial) if loops[i][0] < level)

    spatial_space = list(product(*[range(loops[i][1].factor) for i in spatial]))
    steps = list(product(*[range(loops[i][1].factor) for i in temporal]))
    for tensor in ("W", "I", "O"):
        chain = [i for i in range(nl) if tensor in keeps[i]]
        cache, real_cache = {}, {}
        is_real = _real_test(tensor, nest, pad)

        def tile(level, tidx, sidx):
            """Elements of ``tensor`` the padded box of the instance of ``level`` at ``sidx``
            addresses this step (level ``nl``: the one element a MAC unit uses)."""
            key = (level, tidx, instance_of(level, sidx))
            if key not in cache:
                base = point([(i, tidx[k]) for k, i in enumerate(temporal) if loops[i][0] < level]
                             + [(i, sidx[k]) for k, i in enumerate(spatial) if loops[i][0] < level])
                cache[key] = frozenset(_element(tensor, [b + o for b, o in zip(base, off)], nest, pad)
                                       for off in offsets[level])
            return cache[key]

        def real(level, tidx, sidx):
            """The real elements of that box."""
            key = (level, tidx, instance_of(level, sidx))
            if key not in real_cache:
                real_cache[key] = frozenset(e for e in tile(level, tidx, sidx) if is_real(e))
            return real_cache[key]

        def working(tidx, sidx):
            """Is the MAC point of this step and MAC unit inside every bound?"""
            v = point([(i, tidx[k]) for k, i in enumerate(temporal)]
                      + [(i, sidx[k]) for k, i in enumerate(spatial)])
            return all(x < b for x, b in zip(v, nest.bounds))

        held = {lvl: {} for lvl in chain}
        boxes = {lvl: {} for lvl in chain}     # the padded box each instance last held
        record = {lvl: {} for lvl in chain}    # last translation recorded (absent: none)
        ever = {lvl: {} for lvl in chain}      # outputs: elements an instance ever held
        written = {lvl: {} for lvl in chain}   # outputs: elements written into an instance
        refilled = {lvl: {} for lvl in chain}  # outputs: per (instance, group) the elements whose
        #                                        current residency started from a parent read

        def advance(child, inst, now, box, final):
            """(new, gone) of one child instance whose tile becomes ``now`` (real elements;
            ``box``: the padded box, which moves decide from)."""
            before = held[child].get(inst, frozenset())
            held[child][inst] = now
            last_box = boxes[child].get(inst)
            boxes[child][inst] = box
            if final or last_box is None:
                return now - before, before - now
            shift = _translation(last_box, box)
            last = record[child].get(inst)
            if not any(shift):
                if last is None:
                    record[child][inst] = shift
                return now - before, before - now
            if last is None or last == shift:
                record[child][inst] = shift
                return now - before, before - now
            record[child].pop(inst)                   # the stride changed: reload everything
            return now, before

        def move(parent, child, tidx, final=False):
            kids = {}
            for sidx in spatial_space:
                kids.setdefault(instance_of(parent, sidx), {}).setdefault(instance_of(child, sidx), sidx)
            for pinst, members in kids.items():
                groups = {}
                for inst, sidx in members.items():
                    shape = tile(child, tidx, sidx)      # at the final drain: the tile last held
                    new, gone = advance(child, inst, frozenset() if final else real(child, tidx, sidx),
                                        shape, final)
                    if tensor != "O":
                        add((child, tensor, "fills"), len(new))
                    else:
                        seen = ever[child].setdefault(inst, set())
                        add((child, tensor, "fills"), len(new & seen))
                        seen |= new
                    if parent in unicast:
                        key = inst
                    else:   # what the ancestors below the parent hold, then what this child gets
                        key = (tuple(tile(lv, tidx, sidx) for lv in range(parent + 1, child))
                               + (shape,))
                    groups.setdefault(key, []).append((inst, new, gone))
                for members_of in groups.values():
                    _, new, gone = members_of[0]     # every member of a group gets the same
                    if tensor != "O":
                        add((parent, tensor, "reads"), len(new))
                        continue
                    add((parent, tensor, "updates"), len(gone))
                    wp = written[parent].setdefault(pinst, set())
                    gid = (pinst, tuple(sorted(m[0] for m in members_of)))
                    fed = refilled[parent].setdefault(gid, set())
                    # A drained psum lands on the parent's one copy of the element. If this
                    # group's residency started from that copy (a refill, read below) the drain
                    # overwrites it; otherwise a copy already there (another group drained it:
                    # unicast siblings holding the same outputs) must be read and added to.
                    # E.g. C=4, buf spatial C2 unicast, reg for C in [0:2): both PEs start the
                    # one output from zero, each drains it once: 2 updates at buf, the first
                    # initialises, the second is a read-modify-write: 1 read (not 0). With
                    # multicast the groups hold disjoint elements and this adds nothing.
                    add((parent, tensor, "reads"), len((gone & wp) - fed))
                    fed -= gone
                    wp |= gone
                    refill = new & wp
                    add((parent, tensor, "reads"), len(refill))
                    fed |= refill

        prev = None
        for tidx in steps:
            cache.clear()
            real_cache.clear()
            for parent, child in zip(chain, chain[1:]):
                # the child's tile is looked at when a loop above it advances, not its own
                if prev is None or any(prev[k] != tidx[k] for k, i in enumerate(temporal)
                                       if loops[i][0] < child):
                    move(parent, child, tidx)
            prev = tidx
            inner = chain[-1]
            macs = {}
            for sidx in spatial_space:
                if not working(tidx, sidx):
                    continue
                inst = instance_of(inner, sidx)
                if inner in unicast:
                    key = (inst, sidx)
                else:   # MACs (under one instance) that need the same element share it
                    key = (inst,) + tuple(tile(lv, tidx, sidx) for lv in range(inner + 1, nl + 1))
                (element,) = tile(nl, tidx, sidx)
                macs[key] = (inst, element)
            for inst, element in macs.values():
                if tensor != "O":
                    add((inner, tensor, "reads"), 1)
                    add(("mac", tensor), 1)
                else:
                    w = written[inner].setdefault(inst, set())
                    first = element not in w
                    add((inner, tensor, "reads"), 0 if first else 1)
                    add(("mac", tensor), 0 if first else 1)
                    add((inner, tensor, "updates"), 1)
                    w.add(element)
        if tensor == "O":
            cache.clear()
            real_cache.clear()
            for parent, child in zip(chain, chain[1:]):
                move(parent, child, steps[-1], final=True)
    return counts
