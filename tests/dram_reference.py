"""Independent per-request reference of the DRAM model (plain Python, slow, for tests).

Written from the rules, not from the kernel: it keeps the list of every command issued
(``(time, kind, channel, rank, group, bank)``) and finds the earliest legal time of a
new command by checking it against *every* earlier command with a pairwise table of
JEDEC constraints, the command bus (one command per clock, in order per channel), the
data bus and the four-activate window. Intervals (banks open, refreshes, busy
requests) are kept as explicit lists and measured at the end with a generic union.

Same policy as :mod:`accelsim.dram.kernel`: requests in order per channel; column
commands in request order; ACTs in request order; a request's PRE and ACT may run ahead
of the column commands of the ``lookahead`` - 1 requests before it (a PRE also ahead of
their ACTs); one command per clock (a slot taken is skipped); refresh checked before
each request (rank due when the channel's last command time has reached its due
time: PREA of the open banks, then REF, both after every command issued so far;
later column commands follow the REF); open page closes rows on a conflict; closed
page auto-precharges unless the next request of the channel hits the same row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ACT, PRE, RD, WR, REF, AP = "ACT", "PRE", "RD", "WR", "REF", "AP"   # AP: auto-precharge


@dataclass
class Cmd:
    time: int
    kind: str
    ch: int
    rank: int
    group: int
    bank: int


@dataclass
class RefResult:
    reads: int = 0
    writes: int = 0
    activates: int = 0
    precharges: int = 0
    refreshes: int = 0
    row_hits: int = 0
    row_misses: int = 0
    row_conflicts: int = 0
    cycles: int = 0
    requests: int = 0
    blp: float = 0.0
    rank_active: list = field(default_factory=list)
    rank_bank_active: list = field(default_factory=list)
    energy_pj: dict = field(default_factory=dict)
    commands: list = field(default_factory=list)


def decode(addr: int, names_msb_first: list[str], sizes: dict[str, int]) -> dict[str, int]:
    """Split a burst index into named digits (least significant field last in the list)."""
    out = {}
    for name in reversed(names_msb_first):
        out[name] = addr % sizes[name]
        addr //= sizes[name]
    return out


def union_length(intervals: list[tuple[int, int]], end: int | None = None) -> int:
    """Measure of the union of half-open intervals (clipped at ``end`` if given)."""
    total = 0
    cur_s = cur_e = None
    for s, e in sorted(intervals):
        if end is not None:
            e = min(e, end)
        if e <= s:
            continue
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


class Reference:
    """Per-request DRAM reference for one device and channel count."""

    def __init__(self, device, channels: int, scheme_names: list[str], closed: bool = False,
                 lookahead: int = 8):
        self.d = device
        self.T = dict(device.timing)
        self.T["BL"] = device.burst_clocks
        self.channels = channels
        self.names = scheme_names
        self.sizes = {"channel": channels, "rank": device.ranks, "bankgroup": device.bank_groups,
                      "bank": device.banks_per_group, "row": device.rows,
                      "column": device.columns // device.burst_length}
        self.closed = closed
        self.lookahead = lookahead
        self.cas_times: dict[int, list] = {c: [] for c in range(channels)}
        self.row_times: dict[int, list] = {c: [] for c in range(channels)}
        self.ref_times: dict[int, list] = {c: [] for c in range(channels)}
        self.used: dict[int, set] = {c: set() for c in range(channels)}
        self.start_max = {c: 0 for c in range(channels)}
        self.hist: list[Cmd] = []
        self.open_row: dict[tuple, int] = {}          # (ch, rank, group, bank) -> row
        self.open_since: dict[tuple, int] = {}
        self.bank_intervals: dict[tuple, list] = {}   # (ch, rank) -> [(start, end)] bank open
        self.ref_intervals: dict[tuple, list] = {}    # (ch, rank) -> [(start, end)]
        self.ref_due = {(c, r): self.T["REFI"] for c in range(channels) for r in range(device.ranks)}
        self.pending: dict[int, tuple | None] = {c: None for c in range(channels)}
        self.busy: list[tuple] = []                   # (ch, bank key, start, end)
        self.res = RefResult()

    # ---- constraint table -------------------------------------------------------------
    def _gap(self, prev: Cmd, kind: str, ch: int, rank: int, group: int, bank: int) -> int:
        """Least clocks from ``prev`` to a new command ``kind`` at (ch, rank, group, bank)."""
        T = self.T
        if prev.ch != ch:
            return -10 ** 18
        same_rank = prev.rank == rank
        same_group = same_rank and prev.group == group
        same_bank = same_group and prev.bank == bank
        wr_end = T["CWL"] + T["BL"]
        need = -10 ** 18
        pk = prev.kind
        if kind == ACT:
            if same_bank and pk == ACT:
                need = max(need, T["RC"])
            if same_bank and pk in (PRE, AP):
                need = max(need, T["RP"])
            if same_group and pk == ACT:
                need = max(need, T["RRD_L"])
            if same_rank and pk == ACT:
                need = max(need, T["RRD_S"])
            if same_rank and pk == REF:
                need = max(need, T["RFC"])
        elif kind == PRE:  # also PREA's per-bank part and an auto-precharge
            if same_bank and pk == ACT:
                need = max(need, T["RAS"])
            if same_bank and pk == RD:
                need = max(need, T["RTP"])
            if same_bank and pk == WR:
                need = max(need, wr_end + T["WR"])
        elif kind in (RD, WR):
            if same_bank and pk == ACT:
                need = max(need, T["RCD"])
            if same_rank and pk == kind:
                need = max(need, T["CCD_L"] if same_group else T["CCD_S"])
            if same_rank and pk == WR and kind == RD:
                need = max(need, wr_end + (T["WTR_L"] if same_group else T["WTR_S"]))
            if same_rank and pk == RD and kind == WR:
                need = max(need, T["RTW"])
        elif kind == REF:
            if same_rank and pk == ACT:
                need = max(need, T["RC"])
            if same_rank and pk in (PRE, AP):
                need = max(need, T["RP"])
            if same_rank and pk == REF:
                need = max(need, T["RFC"])
        return prev.time + need

    def _earliest(self, kind: str, ch: int, rank: int, group: int, bank: int, floor: int = 0) -> int:
        """Earliest clock >= ``floor`` meeting every pairwise constraint (no slot check)."""
        t = floor
        for prev in self.hist:
            t = max(t, self._gap(prev, kind, ch, rank, group, bank))
        if kind == ACT:
            acts = [p.time for p in self.hist if p.kind == ACT and p.ch == ch and p.rank == rank]
            if len(acts) >= 4:
                t = max(t, acts[-4] + self.T["FAW"])
        if kind in (RD, WR):
            lat = self.T["CL"] if kind == RD else self.T["CWL"]
            for p in self.hist:
                if p.ch == ch and p.kind in (RD, WR):
                    p_lat = self.T["CL"] if p.kind == RD else self.T["CWL"]
                    t = max(t, p.time + p_lat + self.T["BL"] - lat)
        return t

    def _free_slot(self, ch: int, t: int) -> int:
        while t in self.used[ch]:
            t += 1
        return t

    def _row_floor(self, ch: int) -> int:
        """PRE/ACT of this request: after the column command ``lookahead`` requests back and
        after the last refresh."""
        floor = (self.ref_times[ch][-1] + 1) if self.ref_times[ch] else 0
        cas = self.cas_times[ch]
        if len(cas) >= self.lookahead:
            floor = max(floor, cas[-self.lookahead] + 1)
        return floor

    def _act_floor(self, ch: int) -> int:
        """ACTs in request order (and after the last refresh)."""
        acts = [p.time for p in self.hist if p.ch == ch and p.kind in (ACT, REF)]
        return max([self._row_floor(ch)] + [a + 1 for a in acts[-1:]])

    def _issue(self, t: int, kind: str, ch: int, rank: int, group: int, bank: int,
               slot: bool = True) -> None:
        """Record a command; ``slot``: it takes a command-bus slot (not an AP, not the 2nd..
        banks of one PREA)."""
        slot = slot and kind != AP
        assert not slot or t not in self.used[ch], "two commands in one slot"
        self.hist.append(Cmd(t, kind, ch, rank, group, bank))
        if slot:
            self.used[ch].add(t)
        if kind in (RD, WR):
            self.cas_times[ch].append(t)
        elif kind in (PRE, ACT, REF):
            self.row_times[ch].append(t)
        if kind == REF:
            self.ref_times[ch].append(t)

    def _last_cmd(self, ch: int) -> int:
        times = [p.time for p in self.hist if p.ch == ch and p.kind != AP]
        return max(times) if times else -1

    # ---- bank open/close bookkeeping ------------------------------------------------
    def _open(self, key, t, row):
        self.open_row[key] = row
        self.open_since[key] = t

    def _close(self, key, t):
        self.bank_intervals.setdefault(key[:2], []).append((self.open_since.pop(key), t))
        del self.open_row[key]
        self.res.precharges += 1

    def _auto_precharge(self, key):
        ch, rank, group, bank = key
        t = self._earliest(PRE, ch, rank, group, bank)
        self._issue(t, AP, ch, rank, group, bank)
        self._close(key, t)

    def _refresh(self, ch: int, rank: int) -> None:
        pend = self.pending[ch]
        if self.closed and pend is not None and pend[1] == rank:
            self._auto_precharge(pend)
            self.pending[ch] = None
        open_keys = [k for k in self.open_row if k[0] == ch and k[1] == rank]
        if open_keys:
            t = self._last_cmd(ch) + 1
            for k in open_keys:
                t = max(t, self._earliest(PRE, *k, floor=t))
            for i, k in enumerate(open_keys):   # one PREA command
                self._issue(t, PRE, *k, slot=i == 0)
                self._close(k, t)
        t = self._earliest(REF, ch, rank, 0, 0, floor=self._last_cmd(ch) + 1)
        self._issue(t, REF, ch, rank, -1, -1)
        self.ref_intervals.setdefault((ch, rank), []).append((t, t + self.T["RFC"]))
        self.ref_due[(ch, rank)] += self.T["REFI"]
        self.res.refreshes += 1

    # ---- one request --------------------------------------------------------------------
    def request(self, burst_index: int, is_write: bool) -> None:
        f = decode(burst_index, self.names, self.sizes)
        ch, rank, group, bank, row = f["channel"], f["rank"], f["bankgroup"], f["bank"], f["row"]
        key = (ch, rank, group, bank)
        for r in range(self.d.ranks):
            while self._last_cmd(ch) >= self.ref_due[(ch, r)]:
                self._refresh(ch, r)
        if self.closed and self.pending[ch] is not None:
            p = self.pending[ch]
            if not (p == key and self.open_row.get(key) == row):
                self._auto_precharge(p)
            self.pending[ch] = None
        first = None
        cur = self.open_row.get(key)
        if cur == row:
            self.res.row_hits += 1
        else:
            if cur is not None:
                self.res.row_conflicts += 1
                t = self._free_slot(ch, self._earliest(PRE, *key, floor=self._row_floor(ch)))
                self._issue(t, PRE, *key)
                self._close(key, t)
                first = t
            else:
                self.res.row_misses += 1
            t = self._free_slot(ch, self._earliest(ACT, *key, floor=self._act_floor(ch)))
            self._issue(t, ACT, *key)
            self._open(key, t, row)
            self.res.activates += 1
            first = t if first is None else first
        kind = WR if is_write else RD
        floor = max([-1] + self.cas_times[ch][-1:] + self.ref_times[ch][-1:]) + 1
        t = self._free_slot(ch, self._earliest(kind, *key, floor=floor))
        self._issue(t, kind, *key)
        end = t + (self.T["CWL"] if is_write else self.T["CL"]) + self.T["BL"]
        first = t if first is None else first
        first = max(first, self.start_max[ch])   # occupancy starts in request order
        self.start_max[ch] = first
        self.busy.append((ch, key, first, end))
        if is_write:
            self.res.writes += 1
        else:
            self.res.reads += 1
        self.res.requests += 1
        self.res.cycles = max(self.res.cycles, end)
        if self.closed:
            self.pending[ch] = key

    def run(self, ranges) -> RefResult:
        bb = self.d.burst_bytes
        for start, nbytes, is_write in ranges:
            if nbytes <= 0:
                continue
            for a in range(start // bb, (start + nbytes - 1) // bb + 1):
                self.request(a, bool(is_write))
        return self.finish()

    def finish(self) -> RefResult:
        res = self.res
        end = res.cycles
        banks = self.d.banks
        res.rank_active, res.rank_bank_active = [], []
        for ch in range(self.channels):
            for r in range(self.d.ranks):
                ivs = list(self.bank_intervals.get((ch, r), []))
                ivs += [(s, end) for k, s in self.open_since.items() if k[:2] == (ch, r)]
                refs = self.ref_intervals.get((ch, r), [])
                res.rank_active.append(union_length(ivs + refs, end))
                bank_sum = sum(max(0, min(e, end) - s) for s, e in ivs)
                bank_sum += banks * sum(max(0, min(e, end) - s) for s, e in refs)
                res.rank_bank_active.append(bank_sum)
        bank_busy = 0
        chan_busy = 0
        for ch in range(self.channels):
            per_chan = [(s, e) for c, k, s, e in self.busy if c == ch]
            chan_busy += union_length(per_chan)
            keys = {k for c, k, s, e in self.busy if c == ch}
            for key in keys:
                bank_busy += union_length([(s, e) for c, k, s, e in self.busy if k == key])
        res.blp = bank_busy / chan_busy if chan_busy else 0.0
        res.energy_pj = reference_energy(self.d, res)
        res.commands = self.hist
        return res


def reference_energy(d, res: RefResult) -> dict:
    """DRAMPower bank-wise energy (pJ), written out again from the formulas."""
    T = dict(d.timing)
    tck = d.tck_ns
    bl = d.burst_clocks
    B = d.banks
    e = {"activate": 0.0, "precharge": 0.0, "read": 0.0, "write": 0.0, "refresh": 0.0,
         "background": 0.0, "io": 0.0}
    for dom in d.power:
        V = dom.voltage_v
        i_rho = d.rho * dom.IDD3N + (1 - d.rho) * dom.IDD2N
        i_one = dom.IDD3N / B + i_rho * (B - 1) / B
        i_theta = dom.IDD0 * (T["RAS"] + T["RP"]) / T["RAS"] - dom.IDD0 * T["RP"] / T["RAS"]
        k = d.devices_per_rank * V * tck
        e["activate"] += k * res.activates * (i_theta - i_one) * T["RAS"]
        e["precharge"] += k * res.precharges * (dom.IDD0 - dom.IDD2N) * T["RP"]
        e["read"] += k * res.reads * (dom.IDD4R - dom.IDD3N) * bl
        e["write"] += k * res.writes * (dom.IDD4W - dom.IDD3N) * bl
        e["refresh"] += k * res.refreshes * (dom.IDD5B - dom.IDD3N) * T["RFC"]
        for act, bank_act in zip(res.rank_active, res.rank_bank_active):
            e["background"] += k * (dom.IDD2N * (res.cycles - act) + i_rho * act
                                    + (i_one - i_rho) * bank_act)
    e["io"] = d.io_pj_per_bit * 8 * d.burst_bytes * (res.reads + res.writes)
    return e
