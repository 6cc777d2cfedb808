"""Numba kernel of the DRAM model: address ranges in, per-bank state and counters updated.

The kernel expands each range ``(start byte, bytes, is_write)`` burst by burst (no
per-request arrays) and serves the bursts **in order, per channel** (no request
reordering; channels are independent). Column commands (RD/WR) and activates issue in
request order; a request's PRE and ACT may run ahead of the column commands of the
``lookahead - 1`` requests before it (they come after the column command of request
i - lookahead), and its PRE may also precede their ACTs (``lookahead = 1``: strictly in
order). Every command takes one slot of its channel's command bus (a row command skips
slots held by recent commands). Per request:

- refresh first: while the channel's last command time has reached a rank's refresh
  due time, the rank is refreshed (all open banks precharged by one PREA as soon as
  each allows it, then REF once tRP/tRC/tRFC allow, both after every command issued so
  far; later column commands follow the REF; the banks stay closed for tRFC; the due
  time advances by tREFI). Refreshes are thus issued at request boundaries (JEDEC allows
  postponing up to 8);
- open page: a row hit issues the column command only; a closed bank ACT + CAS; another
  row open PRE + ACT + CAS. Rows stay open until a conflict or a refresh;
- closed page: each column command closes its row with auto-precharge *unless* the
  next request of the channel hits the same bank and row (the controller sees one
  request ahead); the auto-precharge starts when tRAS/tRTP/tWR allow and costs no
  command slot;
- constraints (clocks): ACT: tRC, tRP (after PRE), tRFC (after REF) on the bank, tRRD_L
  in the bank group, tRRD_S and tFAW (4 ACTs) in the rank; PRE: tRAS, tRTP, CWL + BL +
  tWR on the bank; RD/WR: tRCD on the bank, tCCD_L / CWL + BL + tWTR_L / tRTW in the bank
  group, tCCD_S / CWL + BL + tWTR_S / tRTW in the rank, and the channel's data bus
  (a read's data occupies [t + CL, t + CL + BL), a write's [t + CWL, t + CWL + BL)).

Counters: reads, writes, activates, precharges (explicit, PREA per bank, auto),
refreshes, row hits / misses (bank closed) / conflicts (another row open), the last
data-bus clock, and the busy time behind bank-level parallelism (a request occupies
its bank from its first command - or the previous request's start on the channel, if
later - to its data end: BLP = sum over banks of busy time / time any bank of the
channel is busy, summed over channels). For the DRAMPower-style
background energy each rank accounts the clocks with at least one bank open (or a
refresh running) and the sum over banks of open clocks (refresh: all banks). A PRE may
be issued at a clock before earlier ACTs, so the open/close events of each rank wait in
a small buffer and are accounted in time order once the row-command floor (below which
no later command can land) has passed them.

State lives in int64 arrays owned by :class:`accelsim.dram.model.DramState`, so a
stream can be fed in chunks with identical results.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from accelsim.numba_config import JIT

#: The kernels allocate nothing, so they compile without Numba's reference counting (NRT):
#: with it, every request paid the increments and decrements of its state arrays' counts
#: (about half the time of a row hit).
KJIT = {**JIT, "_nrt": False}

INF = np.int64(1) << np.int64(62)
NEG = -(np.int64(1) << np.int64(61))

# timing vector (accelsim.dram.presets.TIMING_FIELDS order, then BURST)
T_CL, T_CWL, T_RCD, T_RP, T_RAS, T_RC, T_CCD_S, T_CCD_L, T_RRD_S, T_RRD_L, T_FAW, T_WR, \
    T_WTR_S, T_WTR_L, T_RTW, T_RTP, T_REFI, T_RFC, T_BURST = range(19)
# configuration vector
K_RANKS, K_GROUPS, K_PER_GROUP, K_BANKS, K_CLOSED, K_BURST_BYTES, K_LOOKAHEAD = range(7)
RING = 16                     # CAS times remembered per channel (lookahead <= RING)
ROW_RING = 2 * RING           # row-command times remembered per channel
# bank state columns
B_ROW, B_NACT, B_NPRE, B_NCAS, B_ACTT, B_BUSY = range(6)
NB_COLS = 6
# bank-group state columns
G_NACT, G_NRD, G_NWR = range(3)
NG_COLS = 3
# rank state columns (R_EVN: events waiting in the rank's buffer)
R_NACT, R_NRD, R_NWR, R_FAW0, R_FAW1, R_FAW2, R_FAW3, R_FAWI, R_REFDUE, R_ACCT, R_OPEN, \
    R_ACTIVE, R_BANKACT, R_EVN = range(14)
NR_COLS = 14
# channel state columns
C_LACT, C_LREF, C_LCAS, C_LMAX, C_BUS, C_PEND, C_COVER, C_SMAX, C_RINGI, C_ROWI, C_RING0 = range(11)
C_ROW0 = C_RING0 + RING
NC_COLS = C_ROW0 + ROW_RING
# event buffer columns (per rank, per slot): time, +1 open / -1 close, start of a closed interval,
# banks it stands for (1, or all banks for a refresh)
E_T, E_D, E_S, E_W = range(4)
NE_COLS = 4
# statistics
S_READS, S_WRITES, S_ACTS, S_PRES, S_REFS, S_HITS, S_MISSES, S_CONFLICTS, S_BANKBUSY, \
    S_CHANBUSY, S_CYCLES, S_REQUESTS = range(12)
N_STATS = 12


@njit(**KJIT)
def _event(rk, ev, ri, t, d, s, w):
    """Queue a rank-activity event: ``d = +1`` an interval opens at ``t``, ``-1`` one that
    opened at ``s`` closes at ``t`` (``w``: banks it stands for)."""
    n = rk[ri, R_EVN]
    if n >= ev.shape[1]:
        raise ValueError("DRAM kernel: rank event buffer overflow")
    ev[ri, n, E_T] = t
    ev[ri, n, E_D] = d
    ev[ri, n, E_S] = s
    ev[ri, n, E_W] = w
    rk[ri, R_EVN] = n + 1


@njit(**KJIT)
def _flush(rk, ev, ri, T):
    """Account rank ``ri``'s active clocks (a bank open or a refresh running) up to ``T``,
    consuming its queued events at or before ``T`` in time order. No event may arrive
    later with a time below ``T`` (the caller's watermark)."""
    while True:
        n = rk[ri, R_EVN]
        best = -1
        bt = INF
        for j in range(n):
            if ev[ri, j, E_T] <= T and ev[ri, j, E_T] < bt:
                bt = ev[ri, j, E_T]
                best = j
        if best < 0:
            break
        acct = rk[ri, R_ACCT]
        if rk[ri, R_OPEN] > 0 and bt > acct:
            rk[ri, R_ACTIVE] += bt - acct
        if bt > acct:
            rk[ri, R_ACCT] = bt
        rk[ri, R_OPEN] += ev[ri, best, E_D]
        last = n - 1
        for col in range(NE_COLS):
            ev[ri, best, col] = ev[ri, last, col]
        rk[ri, R_EVN] = last
    acct = rk[ri, R_ACCT]
    if rk[ri, R_OPEN] > 0 and T > acct:
        rk[ri, R_ACTIVE] += T - acct
    if T > acct:
        rk[ri, R_ACCT] = T


@njit(**KJIT)
def _close(bk, rk, ev, b, ri, t, tm, st):
    """Bank ``b`` precharges at ``t`` (explicit, PREA or auto)."""
    s = bk[b, B_ACTT]
    rk[ri, R_BANKACT] += t - s
    _event(rk, ev, ri, t, -1, s, 1)
    bk[b, B_ROW] = -1
    bk[b, B_NACT] = max(bk[b, B_NACT], t + tm[T_RP])
    st[S_PRES] += 1


@njit(**KJIT)
def _row_floor(ch, c, cfg):
    """Earliest clock of a row command (PRE/ACT) of the current request: after the column
    command of the request ``lookahead`` back and after the channel's last refresh."""
    back = (ch[c, C_RINGI] - cfg[K_LOOKAHEAD]) % RING
    return max(ch[c, C_RING0 + back], ch[c, C_LREF]) + 1


@njit(**KJIT)
def _row_slot(ch, c, t):
    """``t`` or the first later clock whose command slot no recent command holds."""
    moved = True
    while moved:
        moved = False
        for j in range(RING):
            if ch[c, C_RING0 + j] == t:
                t += 1
                moved = True
        for j in range(ROW_RING):
            if ch[c, C_ROW0 + j] == t:
                t += 1
                moved = True
    return t


@njit(**KJIT)
def _row_issued(ch, c, t):
    i = ch[c, C_ROWI]
    ch[c, C_ROW0 + i] = t
    ch[c, C_ROWI] = (i + 1) % ROW_RING
    ch[c, C_LMAX] = max(ch[c, C_LMAX], t)


@njit(**KJIT)
def _refresh(c, ri, bk, rk, ch, ev, tm, cfg, st):
    banks = cfg[K_BANKS]
    b0 = ri * banks
    pend = ch[c, C_PEND]
    if cfg[K_CLOSED] != 0 and pend >= b0 and pend < b0 + banks:
        _close(bk, rk, ev, pend, ri, bk[pend, B_NPRE], tm, st)
        ch[c, C_PEND] = -1
    t0 = ch[c, C_LMAX] + 1
    any_open = False
    tp = t0
    for b in range(b0, b0 + banks):
        if bk[b, B_ROW] >= 0:
            any_open = True
            tp = max(tp, bk[b, B_NPRE])
    if any_open:  # one PREA
        for b in range(b0, b0 + banks):
            if bk[b, B_ROW] >= 0:
                _close(bk, rk, ev, b, ri, tp, tm, st)
        ch[c, C_LMAX] = tp
        t0 = tp + 1
    tr = t0
    for b in range(b0, b0 + banks):
        tr = max(tr, bk[b, B_NACT])
    _event(rk, ev, ri, tr, 1, tr, banks)
    _event(rk, ev, ri, tr + tm[T_RFC], -1, tr, banks)
    rk[ri, R_BANKACT] += banks * tm[T_RFC]
    for b in range(b0, b0 + banks):
        bk[b, B_NACT] = max(bk[b, B_NACT], tr + tm[T_RFC])
    ch[c, C_LMAX] = tr
    ch[c, C_LREF] = tr
    ch[c, C_LACT] = max(ch[c, C_LACT], tr)
    ch[c, C_LCAS] = max(ch[c, C_LCAS], tr)
    rk[ri, R_REFDUE] += tm[T_REFI]
    st[S_REFS] += 1


@njit(**KJIT, inline="always")
def _request(c, r, g, k, row, is_write, bk, bg, rk, ch, ev, tm, cfg, st):
    """Serve one burst at channel ``c``, rank ``r``, bank group ``g``, bank ``k``, ``row``."""
    ranks = cfg[K_RANKS]
    banks = cfg[K_BANKS]
    ri = c * ranks + r
    gi = ri * cfg[K_GROUPS] + g
    b = ri * banks + g * cfg[K_PER_GROUP] + k
    # every later event of the channel's ranks is at or after the row floor: account up to it
    floor = _row_floor(ch, c, cfg)
    for rr in range(ranks):
        _flush(rk, ev, c * ranks + rr, floor)
    for rr in range(ranks):
        rj = c * ranks + rr
        while ch[c, C_LMAX] >= rk[rj, R_REFDUE]:
            _refresh(c, rj, bk, rk, ch, ev, tm, cfg, st)
    if cfg[K_CLOSED] != 0:
        p = ch[c, C_PEND]
        if p >= 0:
            if not (p == b and bk[b, B_ROW] == row):
                _close(bk, rk, ev, p, p // banks, bk[p, B_NPRE], tm, st)
            ch[c, C_PEND] = -1
    floor = _row_floor(ch, c, cfg)
    s = np.int64(-1)
    if bk[b, B_ROW] == row:
        st[S_HITS] += 1
    else:
        if bk[b, B_ROW] >= 0:  # conflict: PRE (may run ahead of earlier requests' ACTs)
            st[S_CONFLICTS] += 1
            t = _row_slot(ch, c, max(floor, bk[b, B_NPRE]))
            _close(bk, rk, ev, b, ri, t, tm, st)
            _row_issued(ch, c, t)
            s = t
        else:
            st[S_MISSES] += 1
        # ACT (in request order)
        fi = rk[ri, R_FAWI]
        t = max(floor, ch[c, C_LACT] + 1)
        t = max(t, bk[b, B_NACT])
        t = max(t, bg[gi, G_NACT])
        t = max(t, rk[ri, R_NACT])
        t = _row_slot(ch, c, max(t, rk[ri, R_FAW0 + fi] + tm[T_FAW]))
        _event(rk, ev, ri, t, 1, t, 1)
        bk[b, B_ACTT] = t
        bk[b, B_ROW] = row
        bk[b, B_NACT] = max(bk[b, B_NACT], t + tm[T_RC])
        bk[b, B_NPRE] = max(bk[b, B_NPRE], t + tm[T_RAS])
        bk[b, B_NCAS] = max(bk[b, B_NCAS], t + tm[T_RCD])
        bg[gi, G_NACT] = max(bg[gi, G_NACT], t + tm[T_RRD_L])
        rk[ri, R_NACT] = max(rk[ri, R_NACT], t + tm[T_RRD_S])
        rk[ri, R_FAW0 + fi] = t
        rk[ri, R_FAWI] = (fi + 1) % 4
        ch[c, C_LACT] = t
        _row_issued(ch, c, t)
        st[S_ACTS] += 1
        if s < 0:
            s = t
    burst = tm[T_BURST]
    t = max(ch[c, C_LCAS] + 1, bk[b, B_NCAS])
    if is_write:
        t = max(t, bg[gi, G_NWR])
        t = max(t, rk[ri, R_NWR])
        t = max(t, ch[c, C_BUS] - tm[T_CWL])
        e = t + tm[T_CWL] + burst
        bg[gi, G_NWR] = max(bg[gi, G_NWR], t + tm[T_CCD_L])
        bg[gi, G_NRD] = max(bg[gi, G_NRD], e + tm[T_WTR_L])
        rk[ri, R_NWR] = max(rk[ri, R_NWR], t + tm[T_CCD_S])
        rk[ri, R_NRD] = max(rk[ri, R_NRD], e + tm[T_WTR_S])
        bk[b, B_NPRE] = max(bk[b, B_NPRE], e + tm[T_WR])
        st[S_WRITES] += 1
    else:
        t = max(t, bg[gi, G_NRD])
        t = max(t, rk[ri, R_NRD])
        t = max(t, ch[c, C_BUS] - tm[T_CL])
        e = t + tm[T_CL] + burst
        bg[gi, G_NRD] = max(bg[gi, G_NRD], t + tm[T_CCD_L])
        bg[gi, G_NWR] = max(bg[gi, G_NWR], t + tm[T_RTW])
        rk[ri, R_NRD] = max(rk[ri, R_NRD], t + tm[T_CCD_S])
        rk[ri, R_NWR] = max(rk[ri, R_NWR], t + tm[T_RTW])
        bk[b, B_NPRE] = max(bk[b, B_NPRE], t + tm[T_RTP])
        st[S_READS] += 1
    ch[c, C_BUS] = e
    ch[c, C_LCAS] = t
    ch[c, C_LMAX] = max(ch[c, C_LMAX], t)
    ri_next = ch[c, C_RINGI]
    ch[c, C_RING0 + ri_next] = t
    ch[c, C_RINGI] = (ri_next + 1) % RING
    if s < 0:
        s = t
    s = max(s, ch[c, C_SMAX])        # occupancy starts in request order (see BLP)
    ch[c, C_SMAX] = s
    if cfg[K_CLOSED] != 0:
        ch[c, C_PEND] = b
    busy = bk[b, B_BUSY]
    st[S_BANKBUSY] += max(np.int64(0), e - max(s, busy))
    bk[b, B_BUSY] = max(busy, e)
    cover = ch[c, C_COVER]
    st[S_CHANBUSY] += max(np.int64(0), e - max(s, cover))
    ch[c, C_COVER] = max(cover, e)
    st[S_CYCLES] = max(st[S_CYCLES], e)
    st[S_REQUESTS] += 1


@njit(**KJIT)
def run_ranges(starts, lengths, writes, order, radix, bk, bg, rk, ch, ev, tm, cfg, st, carry):
    """Serve every burst of the ranges ``(starts[i], lengths[i] bytes, writes[i])`` in order,
    updating the state arrays and counters in place. ``carry``: ``(coalesce, last burst,
    last is_write)`` then six scratch slots (the fields of the burst decoded last); with
    ``coalesce`` non-zero a range's first burst equal to the last burst of the range before
    it (same direction) is not served again (the transfer engine of
    :mod:`accelsim.dram.coalesce`), the last burst carried across calls.

    A burst's address fields (mixed radix, ``order`` least significant first) are decoded by
    division, or by a carry-propagating increment when it follows the burst decoded last."""
    bb = cfg[K_BURST_BYTES]
    dig = carry[3:9]
    held = np.int64(-2)          # the burst whose fields dig holds
    merge = carry[0] != 0
    for i in range(starts.shape[0]):
        n = lengths[i]
        if n <= 0:
            continue
        first = starts[i] // bb
        last = (starts[i] + n - 1) // bb
        w = writes[i] != 0
        if merge:
            if first == carry[1] and (carry[2] != 0) == w:
                first += 1
            carry[1] = last
            carry[2] = 1 if w else 0
            if first > last:
                continue
        for a in range(first, last + 1):
            if a == held + 1:           # the next burst: increment the digits
                for j in range(6):
                    f = order[j]
                    dig[f] += 1
                    if dig[f] < radix[f]:
                        break
                    dig[f] = 0
            elif a != held:
                x = a
                for j in range(6):
                    f = order[j]
                    dig[f] = x % radix[f]
                    x //= radix[f]
            held = a
            _request(dig[0], dig[1], dig[2], dig[3], dig[4], w, bk, bg, rk, ch, ev, tm, cfg, st)


@njit(**KJIT)
def finish(rk, bk, ev, banks, T):
    """Close the books at clock ``T`` (on copies of the state): every rank's active clocks up
    to ``T``; bank-open clocks clipped at ``T``."""
    for ri in range(rk.shape[0]):
        _flush(rk, ev, ri, T)
        for j in range(rk[ri, R_EVN]):   # intervals closing after T: only their part before T
            if ev[ri, j, E_D] < 0:
                rk[ri, R_BANKACT] -= ev[ri, j, E_W] * (ev[ri, j, E_T] - max(ev[ri, j, E_S], T))
        for b in range(ri * banks, (ri + 1) * banks):
            if bk[b, B_ROW] >= 0 and T > bk[b, B_ACTT]:    # still open at T
                rk[ri, R_BANKACT] += T - bk[b, B_ACTT]
