"""MAC-driven accesses counted access by access from the masks: in full, gated or skipped.

Each MAC step reads every operand from the innermost level keeping it and updates (and, but
on an output element's first update, reads) the partial sum there (:mod:`accelsim.map.access`:
the MAC units hold nothing). One such *access* serves a group of MAC slots of one step:

- a read at a level that multicasts serves every MAC unit below it that needs the same
  element in that step: per level of spatial loops at or below the level, the units whose
  offsets agree on every coordinate of the tensor (Timeloop's grouping, as
  :mod:`accelsim.map.access` counts them), i.e. the units that differ only in spatial loops
  over dims not indexing the tensor (and, for inputs, row stationary's diagonal: spatial
  ``P`` and ``R`` (``Q`` and ``S``) loops of one level with equal ``p*stride + r*dilation``);
- a partial-sum update at a level that reduces in the network serves the units of one step
  that differ only in spatial loops over the reduction dims (C, R, S) at or below it;
- at a level that does not multicast (``unicast``), or a per-PE level with no spatial loop
  below it, every access serves one slot.

Only real slots count (a remainder tile's indices past a bound are no slot); an access with no
real slot does not exist. Per access, from the slots it serves (issued per the design's
skipping: a padding position is a zero input, issued unless ``sparsity.skip_padding`` where
inputs are skipped; live: issued with every operand of the action's ``condition_on``
non-zero):

- **full** when at least one slot it serves is live;
- else **gated** (a gate action) or skipped (a skip action) when at least one is issued;
- else **skipped** (no slot it serves is issued).

The input, which has no action by default (the leader that finds the zero), is read in full
when a slot it serves is issued; a lowered layer's padding is made in the array, so an access
of a padding element is skipped. A partial-sum read accompanies every update that happens
(full or gated, with the update's state) but an element's first one in the level instance
(the first update that is not skipped); an element's copies in different instances of the
level (spatial loops above it over reduction dims) each start once.

Where every access serves one slot the counts are the slot counts of
:mod:`accelsim.sim.conditions` (the caller's closed form); the others are counted here:
weights and inputs separably (the access's element fixes the tensor's own operand, the other
operand varies over the group's free offsets: a windowed "any" per base, times how many of the
tensor's own values are live or issued), partial-sum updates by walking every (element,
update) with an early exit, row stationary's diagonal input groups by a chunked walk of the
slots, and partial-sum reads by walking each element's updates in time order up to its first
issued one. One trade-off: where each update serves one slot and the design skips, the psum
reads keep the skipping model's total (dense reads x issued / dense slots, as a design without
gating has them: exact would walk every output's reduction, too slow for skip-only designs) and
gating takes out of it exactly the reads of non-live updates (all but an element's first
issued update), so gating on and off differ by exactly the gated accesses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from accelsim.map.nest import DIMS, LoopNest
from accelsim.map.sparse import MODE_ACT, MODE_BOTH, MODE_DENSE, MODE_WEIGHT
from accelsim.numba_config import JIT

ZERO, NONZERO, PAD = 0, 1, 2
#: access kinds, in the order of :class:`MacAccesses`' arrays
ACCESSES = ("W read", "I read", "O read", "O update")
_REDUCTION = ("C", "R", "S")


@dataclass(frozen=True)
class MacAccesses:
    """Per access kind (:data:`ACCESSES`): accesses that happen in full and gated (NaN where the
    caller's slot fractions stand), and the real accesses where counted here (else NaN)."""

    full: np.ndarray
    gated: np.ndarray
    dense: np.ndarray


_UNCOUNTED = np.full(4, np.nan)
_UNCOUNTED.flags.writeable = False
#: nothing counted (read-only)
_NOTHING = MacAccesses(_UNCOUNTED, _UNCOUNTED, _UNCOUNTED)


# ---- slot states ---------------------------------------------------------------------------

def input_codes(nest: LoopNest, act: np.ndarray, pads: tuple[int, int],
                pad_mask: np.ndarray | None = None) -> np.ndarray:
    """``(N, G, C/G, H', W')`` uint8 over the positions real slots touch (``H' = (P-1)*stride +
    (R-1)*dilation + 1``): ZERO, NONZERO, or PAD (outside the input, or in ``pad_mask``)."""
    n, g, _, cg, p, q, r, s = nest.bounds
    hs = (p - 1) * nest.stride_h + (r - 1) * nest.dil_h + 1
    ws = (q - 1) * nest.stride_w + (s - 1) * nest.dil_w + 1
    act = np.asarray(act, dtype=bool)
    codes = np.full((n, g * cg, hs, ws), PAD, dtype=np.uint8)
    h0, w0 = int(pads[0]), int(pads[1])
    y0, x0 = max(0, -h0), max(0, -w0)          # input rows / cols that land at index >= 0
    hh = min(act.shape[2] - y0, hs - (h0 + y0))
    ww = min(act.shape[3] - x0, ws - (w0 + x0))
    if hh > 0 and ww > 0:
        block = act[:n, :, y0:y0 + hh, x0:x0 + ww].astype(np.uint8)
        if pad_mask is not None:
            block = np.where(np.asarray(pad_mask, dtype=bool)[:n, :, y0:y0 + hh, x0:x0 + ww],
                             np.uint8(PAD), block)
        codes[:, :, h0 + y0:h0 + y0 + hh, w0 + x0:w0 + x0 + ww] = block
    return codes.reshape(n, g, cg, hs, ws)


_WEIGHT_CODES: dict = {}


def weight_codes(nest: LoopNest, wmask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(G, K/G, C/G, R, S)`` uint8, 1 where the weight is non-zero, and its non-zero count
    per ``(g, c, r, s)`` (the last few masks' kept: a layer's batches share its weights)."""
    _, g, k, cg, _, _, r, s = nest.bounds
    key = (id(wmask), g, k, cg, r, s)
    kept = _WEIGHT_CODES.get(key)
    if kept is not None and kept[0] is wmask:
        return kept[1], kept[2]
    codes = np.ascontiguousarray(np.asarray(wmask, dtype=bool).reshape(g, k, cg, r, s),
                                 dtype=np.uint8)
    nonzero = codes.sum(axis=1, dtype=np.int64)
    while len(_WEIGHT_CODES) >= 4:
        _WEIGHT_CODES.pop(next(iter(_WEIGHT_CODES)))
    _WEIGHT_CODES[key] = (wmask, codes, nonzero)    # the mask kept: its id is not reused
    return codes, nonzero


def issue_tables(mode: int, pad_issued: bool) -> tuple[np.ndarray, np.ndarray]:
    """(by input code, by weight code): 1 where the design issues the slot (as far as that
    operand decides)."""
    skip_a = mode in (MODE_ACT, MODE_BOTH)
    skip_w = mode in (MODE_WEIGHT, MODE_BOTH)
    ia = np.array([0 if skip_a else 1, 1, (1 if pad_issued else 0) if skip_a else 1], np.uint8)
    iw = np.array([0 if skip_w else 1, 1], np.uint8)
    return ia, iw


def live_tables(ia: np.ndarray, iw: np.ndarray, condition) -> tuple[np.ndarray, np.ndarray]:
    """Issued with every operand of ``condition`` (names or W/I) non-zero, per operand code."""
    cond = set(condition)
    la = ia.copy()
    lw = iw.copy()
    if cond & {"inputs", "I"}:
        la[ZERO] = la[PAD] = 0
    if cond & {"weights", "W"}:
        lw[0] = 0
    return la, lw


# ---- the groups of one tensor's MAC-driven accesses ------------------------------------------

def _radix(loops) -> list[int]:
    """Radix stride of each loop (outer to inner): :func:`accelsim.sim.tile_conditions._radix`'s."""
    from accelsim.sim.tile_conditions import _radix as radix_and_ranges

    return radix_and_ranges(loops)[0]


def _sums(terms: list[tuple[int, int]]) -> np.ndarray:
    """Sorted values of ``sum digit_i * stride_i`` over every digit combination."""
    out = np.zeros(1, dtype=np.int64)
    for factor, stride in terms:
        out = (out[:, None] + np.arange(factor, dtype=np.int64)[None, :] * stride).ravel()
    return np.sort(out)


def _combos(terms: list[tuple[str, int, int]], dims: tuple[str, ...]) -> np.ndarray:
    """``(combinations, len(dims))`` offsets of every digit combination of ``terms`` (``(dim,
    factor, stride)``, outer first: rows in lexicographic order, the first term slowest)."""
    rows = np.zeros((1, len(dims)), dtype=np.int64)
    for dim, factor, stride in terms:
        step = np.zeros((factor, len(dims)), dtype=np.int64)
        step[:, dims.index(dim)] = np.arange(factor) * stride
        rows = (rows[:, None, :] + step[None, :, :]).reshape(-1, len(dims))
    return rows


@dataclass(frozen=True)
class _Plan:
    free: list          # (dim, factor, stride) of the loops whose units one access serves
    keyed: list         # the other loops
    diagonal: bool      # inputs: a level's spatial P and R (Q and S) share elements


def _plan(nest: LoopNest, mapping, level: int, tensor: str, multicast: bool) -> _Plan:
    """Which loops one MAC-driven access of ``tensor`` at ``level`` spans: with multicast, the
    spatial loops at or below the level over dims not indexing the tensor (free: the units it
    serves); every other loop names accesses apart (keyed)."""
    loops = mapping.flat()
    stride = _radix(loops)
    relevant = nest.relevant(tensor)
    free, keyed = [], []
    diagonal = False
    below = {}
    for (lv, loop), st in zip(loops, stride):
        shared = multicast and loop.spatial and lv >= level
        if shared and loop.dim not in relevant:
            free.append((loop.dim, loop.factor, st))
        else:
            keyed.append((loop.dim, loop.factor, st))
        if shared:
            below.setdefault(lv, set()).add(loop.dim)
    if tensor == "I":
        diagonal = any({"P", "R"} <= dims or {"Q", "S"} <= dims for dims in below.values())
    return _Plan(free, keyed, diagonal)


_PLANS: dict = {}


def _plans(nest: LoopNest, mapping, arch) -> tuple:
    """``(innermost level of W, I, O, unicast levels, their :func:`_plan`, whether any access
    is shared)``, kept per mapping and arch object (a layer's batches share them, and hashing
    a mapping costs more than planning it)."""
    key = (nest.bounds, id(mapping), id(arch))
    got = _PLANS.get(key)
    if got is not None and got[0] is mapping and got[1] is arch:
        return got[2]
    if len(_PLANS) > 1024:
        _PLANS.clear()
    inner = tuple(max(i for i, lv in enumerate(arch.levels) if t in lv.keeps) for t in "WIO")
    unicast = arch.unicast
    plans = tuple(_plan(nest, mapping, inner[ti], t, inner[ti] not in unicast)
                  for ti, t in enumerate("WIO"))
    out = (inner, unicast, plans, any(p.free or p.diagonal for p in plans))
    _PLANS[key] = (mapping, arch, out)
    return out


def _per_dim(plan: _Plan, dim: str) -> tuple[np.ndarray, np.ndarray]:
    """(base values, free offsets) of one dim."""
    base = _sums([(f, s) for d, f, s in plan.keyed if d == dim])
    off = _sums([(f, s) for d, f, s in plan.free if d == dim])
    return base, off


@njit(**JIT)
def _w_groups(A, ia, la, R, S, N, P, Q, sh, sw, dh, dw, bn, bp, bq, on, op, oq):
    """Per weight position (g, c, r, s): over the bases of the free dims (n, p, q), groups with
    a real slot, with an issued input, with a live input."""
    G, Cg = A.shape[1], A.shape[2]
    out = np.zeros((3, G, Cg, R, S), dtype=np.int64)
    for g in range(G):
        for c in range(Cg):
            for r in range(R):
                for s in range(S):
                    for n0 in bn:
                        if n0 >= N:
                            break
                        for p0 in bp:
                            if p0 >= P:
                                break
                            for q0 in bq:
                                if q0 >= Q:
                                    break
                                anyi = 0
                                anyl = 0
                                for a in range(on.shape[0]):
                                    n = n0 + on[a]
                                    if n >= N:
                                        break
                                    for b in range(op.shape[0]):
                                        p = p0 + op[b]
                                        if p >= P:
                                            break
                                        h = p * sh + r * dh
                                        for e in range(oq.shape[0]):
                                            q = q0 + oq[e]
                                            if q >= Q:
                                                break
                                            code = A[n, g, c, h, q * sw + s * dw]
                                            if ia[code]:
                                                anyi = 1
                                                if la[code]:
                                                    anyl = 1
                                                    break
                                        if anyl:
                                            break
                                    if anyl:
                                        break
                                out[0, g, c, r, s] += 1
                                out[1, g, c, r, s] += anyi
                                out[2, g, c, r, s] += anyl
    return out


@njit(**JIT)
def _i_groups(Wc, iw, lw, K, bk, ok):
    """Per input reduction position (g, c, r, s): over the bases of the free filters, groups
    with a real slot, with an issued weight, with a live weight."""
    G, Cg, R, S = Wc.shape[0], Wc.shape[2], Wc.shape[3], Wc.shape[4]
    out = np.zeros((3, G, Cg, R, S), dtype=np.int64)
    for g in range(G):
        for c in range(Cg):
            for r in range(R):
                for s in range(S):
                    for k0 in bk:
                        if k0 >= K:
                            break
                        anyi = 0
                        anyl = 0
                        for a in range(ok.shape[0]):
                            k = k0 + ok[a]
                            if k >= K:
                                break
                            v = Wc[g, k, c, r, s]
                            if iw[v]:
                                anyi = 1
                                if lw[v]:
                                    anyl = 1
                                    break
                        out[0, g, c, r, s] += 1
                        out[1, g, c, r, s] += anyi
                        out[2, g, c, r, s] += anyl
    return out


@njit(**JIT)
def _input_counts(A, ia, la, R, S, P, Q, sh, sw, dh, dw):
    """Per (g, c, r, s): real (n, p, q) whose input is issued, live."""
    N, G, Cg = A.shape[0], A.shape[1], A.shape[2]
    out = np.zeros((2, G, Cg, R, S), dtype=np.int64)
    for n in range(N):
        for g in range(G):
            for c in range(Cg):
                for r in range(R):
                    for s in range(S):
                        ci = 0
                        cl = 0
                        for p in range(P):
                            h = p * sh + r * dh
                            for q in range(Q):
                                code = A[n, g, c, h, q * sw + s * dw]
                                ci += ia[code]
                                cl += la[code]
                        out[0, g, c, r, s] += ci
                        out[1, g, c, r, s] += cl
    return out


def _input_counts_one_tap(A, ia, la, P, Q, sh, sw) -> np.ndarray:
    """:func:`_input_counts` of a one-tap nest (a lowered operand matrix, say): per (g, c) the
    codes of its strided window counted by value (:func:`_code_counts`), then weighed by the
    issue and live tables."""
    n, g, cg = A.shape[0], A.shape[1], A.shape[2]
    window = np.ascontiguousarray(A[:, :, :, :(P - 1) * sh + 1:sh, :(Q - 1) * sw + 1:sw])
    counts = _code_counts(window.reshape(n, g * cg, -1))                  # (G * Cg, 3)
    out = np.stack([ia, la]).astype(np.int64) @ counts.T                   # (2, G * Cg)
    return out.reshape(2, g, cg, 1, 1)


@njit(**JIT)
def _code_counts(codes):
    """Per channel of ``codes`` ``(N, channels, positions)``: how many positions hold each
    code (ZERO, NONZERO, PAD), over all samples."""
    out = np.zeros((codes.shape[1], 3), dtype=np.int64)
    for n in range(codes.shape[0]):
        for c in range(codes.shape[1]):
            c0 = 0
            c1 = 0
            for i in range(codes.shape[2]):
                v = codes[n, c, i]
                c0 += v == 0
                c1 += v == 1
            out[c, 0] += c0
            out[c, 1] += c1
            out[c, 2] += codes.shape[2] - c0 - c1
    return out


@njit(**JIT)
def _o_groups(A, Wc, ia, la, iw, lw, P, Q, sh, sw, dh, dw, copies, seq, free, all_updates):
    """Partial-sum updates: per output element and copy (``copies``: reduction offsets of the
    instances above the level), its updates in time order (``seq``), each serving the units
    at ``free`` reduction offsets. Returns (real updates, with an issued slot, with a live slot,
    elements whose first update with an issued slot is live, is not live); with
    ``all_updates`` False only the last two (each element's walk stops at that update)."""
    N, G, Cg = A.shape[0], A.shape[1], A.shape[2]
    Kg, R, S = Wc.shape[1], Wc.shape[3], Wc.shape[4]
    dense = 0
    iss = 0
    live = 0
    first_full = 0
    first_gated = 0
    for n in range(N):
        for g in range(G):
            for k in range(Kg):
                for p in range(P):
                    for q in range(Q):
                        for ci in range(copies.shape[0]):
                            started = False
                            for si in range(seq.shape[0]):
                                c0 = copies[ci, 0] + seq[si, 0]
                                r0 = copies[ci, 1] + seq[si, 1]
                                s0 = copies[ci, 2] + seq[si, 2]
                                if c0 >= Cg or r0 >= R or s0 >= S:
                                    continue
                                anyi = 0
                                anyl = 0
                                for fi in range(free.shape[0]):
                                    c = c0 + free[fi, 0]
                                    r = r0 + free[fi, 1]
                                    s = s0 + free[fi, 2]
                                    if c >= Cg or r >= R or s >= S:
                                        continue
                                    a = A[n, g, c, p * sh + r * dh, q * sw + s * dw]
                                    w = Wc[g, k, c, r, s]
                                    if ia[a] and iw[w]:
                                        anyi = 1
                                        if la[a] and lw[w]:
                                            anyl = 1
                                            break
                                if all_updates:
                                    dense += 1
                                    iss += anyi
                                    live += anyl
                                if anyi and not started:
                                    started = True
                                    if anyl:
                                        first_full += 1
                                    else:
                                        first_gated += 1
                                    if not all_updates:
                                        break
    return dense, iss, live, first_full, first_gated


#: slots walked at once by :func:`_brute_groups` (the loops outside are walked in Python)
_CHUNK = 1 << 20


@njit(**JIT)
def _first_updates_by_input(A, Wc, ia, la, lw, P, Q, sh, sw, dh, dw, copies, seq):
    """:func:`_o_groups`' first-update counts where each update serves one slot and only the
    input decides issue (weights not skipped): an element's first issued slot is the same for
    every filter, found once per (n, g, p, q, copy); each filter's weight there decides live."""
    N, G, Cg = A.shape[0], A.shape[1], A.shape[2]
    Kg, R, S = Wc.shape[1], Wc.shape[3], Wc.shape[4]
    first_full = 0
    first_gated = 0
    for n in range(N):
        for g in range(G):
            for p in range(P):
                for q in range(Q):
                    for ci in range(copies.shape[0]):
                        for si in range(seq.shape[0]):
                            c = copies[ci, 0] + seq[si, 0]
                            r = copies[ci, 1] + seq[si, 1]
                            s = copies[ci, 2] + seq[si, 2]
                            if c >= Cg or r >= R or s >= S:
                                continue
                            a = A[n, g, c, p * sh + r * dh, q * sw + s * dw]
                            if not ia[a]:
                                continue
                            if not la[a]:
                                first_gated += Kg
                            else:
                                live = 0
                                for k in range(Kg):
                                    live += lw[Wc[g, k, c, r, s]]
                                first_full += live
                                first_gated += Kg - live
                            break
    return first_full, first_gated


def _brute_groups(nest: LoopNest, mapping, level: int, tensor: str, multicast: bool, A, Wc,
                  ia, la, iw, lw) -> tuple[int, int, int]:
    """(real accesses, with an issued slot, with a live slot) of ``tensor``'s MAC-driven reads
    at ``level``, every slot walked (any grouping, row stationary's diagonal included), in
    chunks of the outermost loops that name accesses apart (each access lies in one chunk)."""
    loops = mapping.flat()
    stride = _radix(loops)
    shared = [multicast and loop.spatial and lv >= level for lv, loop in loops]
    factors = [loop.factor for _, loop in loops]
    n_outer = 0
    rest = int(np.prod(factors)) if factors else 1
    while rest > _CHUNK and n_outer < len(loops) and not shared[n_outer]:
        rest //= factors[n_outer]
        n_outer += 1
    inner_f = factors[n_outer:]
    digits = (np.indices(inner_f, dtype=np.int64).reshape(len(inner_f), -1) if inner_f
              else np.zeros((0, 1), dtype=np.int64))
    tds = nest.tensor_dims(tensor)
    per_level: dict = {}
    for j in range(n_outer, len(loops)):
        if shared[j]:
            per_level.setdefault(loops[j][0], []).append(j)
    keys = [digits[j - n_outer] for j in range(n_outer, len(loops)) if not shared[j]]
    for lv in sorted(per_level):
        for td in tds:
            off = np.zeros(digits.shape[1], dtype=np.int64)
            for j in per_level[lv]:
                dim = loops[j][1].dim
                coef = (1 if dim == td.outer and td.inner is None else td.stride if dim == td.outer
                        else td.dilation if dim == td.inner else 0)
                off += digits[j - n_outer] * stride[j] * coef
            keys.append(off)
    rows = (np.stack(keys, axis=1) if keys else np.zeros((digits.shape[1], 1), np.int64))
    _, group = np.unique(rows, axis=0, return_inverse=True)
    group = group.ravel()
    size = int(group.max()) + 1 if len(group) else 0
    local = {d: np.zeros(digits.shape[1], dtype=np.int64) for d in DIMS}
    for j in range(n_outer, len(loops)):
        local[loops[j][1].dim] += digits[j - n_outer] * stride[j]
    total = [0, 0, 0]
    for prefix in np.ndindex(*factors[:n_outer]):
        idx = {d: local[d].copy() for d in DIMS}
        for j, digit in enumerate(prefix):
            idx[loops[j][1].dim] += digit * stride[j]
        real = np.ones(digits.shape[1], dtype=bool)
        for d in DIMS:
            real &= idx[d] < nest.bound(d)
        sel = np.flatnonzero(real)
        if not len(sel):
            continue
        n, g, k, c = idx["N"][sel], idx["G"][sel], idx["K"][sel], idx["C"][sel]
        p, q, r, s = idx["P"][sel], idx["Q"][sel], idx["R"][sel], idx["S"][sel]
        a = A[n, g, c, p * nest.stride_h + r * nest.dil_h, q * nest.stride_w + s * nest.dil_w]
        w = Wc[g, k, c, r, s]
        gs = group[sel]
        present = np.bincount(gs, minlength=size) > 0
        any_i = np.bincount(gs, weights=ia[a] & iw[w], minlength=size) > 0
        any_l = np.bincount(gs, weights=la[a] & lw[w], minlength=size) > 0
        total[0] += int(present.sum())
        total[1] += int(any_i.sum())
        total[2] += int(any_l.sum())
    return total[0], total[1], total[2]


# ---- the count -------------------------------------------------------------------------------

def mac_accesses(nest: LoopNest, mapping, arch, act: np.ndarray, wmask: np.ndarray,
                 pads: tuple[int, int], mode: int, pad_issued: bool, actions: tuple,
                 slots: tuple, pad_mask: np.ndarray | None = None) -> MacAccesses:
    """Full and gated MAC-driven accesses of one batch per access kind (:data:`ACCESSES`), NaN
    where the caller's slot-fraction counts stand (an access kind with no action whose
    accesses serve one slot each, or no slot is skipped).

    ``actions``: per operand (W, I, O) ``(kind, condition_on)`` or None
    (:func:`accelsim.sim.loopnest._tensor_actions`); ``slots``: ``(dense slots, issued slots,
    per operand (W, I, O) issued slots that are live, issued slots that are gated, dense
    partial-sum reads)``, the slot counts taken as they are where every access serves one slot;
    ``pad_mask``: a lowered layer's padding positions (issued as present zeros).

    An operand with no action has its shared accesses counted where the design skips (an
    access happens when a slot it serves is issued). Partial-sum reads where the updates are
    shared: every update that happens but an element's first. Where each update serves one
    slot, the reads keep the slot-fraction total of skipping (dense reads x issued / dense
    slots, as without gating) and an action takes out of it exactly the reads of updates that
    are not live (gated updates but an element's first issued one)."""
    skipping = mode != MODE_DENSE
    inner, unicast, plans, shared_any = _plans(nest, mapping, arch)
    if not (shared_any and skipping) and all(a is None for a in actions):
        return _NOTHING                             # the slot fractions hold throughout
    full = np.full(4, np.nan)
    gated = np.full(4, np.nan)
    dense = np.full(4, np.nan)
    dense_slots, issued_slots, slot_full, slot_gated, psum_reads = slots
    n_b, _, k_b, c_b, p_b, q_b, r_b, s_b = nest.bounds
    sh, sw, dh, dw = nest.stride_h, nest.stride_w, nest.dil_h, nest.dil_w
    ia, iw = issue_tables(mode, pad_issued)
    codes = None
    wc = w_nonzero = None

    def operands():
        nonlocal codes, wc, w_nonzero
        if codes is None:
            codes = input_codes(nest, act, pads, pad_mask)
            wc, w_nonzero = weight_codes(nest, wmask)
        return codes, wc

    for ti, tensor in enumerate("WIO"):
        action = actions[ti]
        level = inner[ti]
        multicast = level not in unicast
        plan = plans[ti]
        shared = bool(plan.free) or plan.diagonal
        if action is None and not (shared and skipping):
            continue            # every access happens for its issued slot: the slot fractions
        if action is None:       # read (updated) when a slot it serves is issued
            kind, la, lw = "skip", ia.copy(), iw.copy()
            if tensor == "I" and pad_mask is not None:
                la[PAD] = 0      # a lowered layer's padding is made in the array: no read
        else:
            kind = action[0]
            la, lw = live_tables(ia, iw, action[1])
        if tensor == "O":
            A, Wc = operands()
            copy_t, seq_t, sib_t = [], [], []
            for (lv, loop), st in zip(mapping.flat(), _radix(mapping.flat())):
                if loop.dim not in _REDUCTION:
                    continue
                term = (loop.dim, loop.factor, st)
                if not loop.spatial:
                    seq_t.append(term)          # time order: outer to inner
                elif lv < level:
                    copy_t.append(term)         # instances above the level: own copies
                elif not multicast:
                    sib_t.append(term)          # siblings of one step update in turn
            copies = _combos(copy_t, _REDUCTION)
            seq = _combos(seq_t + sib_t, _REDUCTION)
            free = _combos(plan.free, _REDUCTION)
            if not shared and iw[0] and iw[1]:
                d_u = i_u = l_u = 0
                ff, fg = _first_updates_by_input(A, Wc, ia, la, lw, p_b, q_b, sh, sw, dh, dw,
                                                 copies, seq)
            else:
                d_u, i_u, l_u, ff, fg = _o_groups(A, Wc, ia, la, iw, lw, p_b, q_b, sh, sw, dh,
                                                  dw, copies, seq, free, shared)
            if shared:
                dense[3] = d_u
                full[3] = l_u
                gated[3] = (i_u - l_u) if kind == "gate" else 0.0
                # a read with every update that happens but an element's first
                full[2] = l_u - ff
                gated[2] = (i_u - l_u - fg) if kind == "gate" else 0.0
            else:
                full[3], gated[3] = slot_full[2], slot_gated[2]
                total = psum_reads * issued_slots / dense_slots if dense_slots else 0.0
                not_live = max(0.0, (issued_slots - slot_full[2]) - fg)
                full[2] = max(0.0, total - not_live)
                gated[2] = not_live if kind == "gate" else 0.0
            continue
        if plan.diagonal:
            A, Wc = operands()
            d_g, i_g, l_g = _brute_groups(nest, mapping, level, tensor, multicast, A, Wc,
                                          ia, la, iw, lw)
            full[ti], dense[ti] = l_g, d_g
            gated[ti] = (i_g - l_g) if kind == "gate" else 0.0
            continue
        if not shared:           # every access serves one slot: the slot counts
            full[ti], gated[ti] = slot_full[ti], slot_gated[ti]
            continue
        A, Wc = operands()
        if tensor == "W":
            bn, on = _per_dim(plan, "N")
            bp, op = _per_dim(plan, "P")
            bq, oq = _per_dim(plan, "Q")
            win = _w_groups(A, ia, la, r_b, s_b, n_b, p_b, q_b, sh, sw, dh, dw,
                            bn, bp, bq, on, op, oq)
            # filters whose weight at (g, c, r, s) is issued, live
            own_i = int(iw[1]) * w_nonzero + int(iw[0]) * (k_b - w_nonzero)
            own_l = int(lw[1]) * w_nonzero + int(lw[0]) * (k_b - w_nonzero)
            own_real = k_b
        else:
            bk, ok = _per_dim(plan, "K")
            win = _i_groups(Wc, iw, lw, k_b, bk, ok)
            cnt = (_input_counts_one_tap(A, ia, la, p_b, q_b, sh, sw) if r_b == 1 and s_b == 1
                   else _input_counts(A, ia, la, r_b, s_b, p_b, q_b, sh, sw, dh, dw))
            own_i, own_l = cnt[0], cnt[1]
            own_real = n_b * p_b * q_b
        dense[ti] = float(own_real * win[0].sum())
        full[ti] = float((own_l * win[2]).sum())
        issued_any = float((own_i * win[1]).sum())
        gated[ti] = (issued_any - full[ti]) if kind == "gate" else 0.0
    return MacAccesses(full, gated, dense)
