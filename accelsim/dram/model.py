"""Streaming DRAM model: state, chunked feeding, results and DRAMPower-style energy.

:class:`DramState` holds the per-channel/rank/bank-group/bank state of
:mod:`accelsim.dram.kernel` in int64 arrays; :meth:`DramState.feed` serves one block of
address ranges, so a stream of any length is fed chunk by chunk in memory flat in its
length (:func:`stream_ranges`). :meth:`DramState.result` reads the counters without
disturbing the state.

Energy (:func:`energy_pj`) follows DRAMPower's bank-wise core model (Jung et al.,
DRAMPower 5; Chandrasekar et al., DATE 2012 for the IDD method), per device and voltage
domain, times the devices of each rank:

- ``I_rho = rho (IDD3N - IDD2N) + IDD2N``, ``I_1 = (IDD3N + (B - 1) I_rho) / B``,
  ``I_theta = (IDD0 (tRP + tRAS) - IDD0 tRP) / tRAS`` (I_beta = IDD0), B banks per rank;
- activate ``V (I_theta - I_1) tRAS``; precharge ``V (IDD0 - IDD2N) tRP``; read
  ``V (IDD4R - IDD3N) tBURST``; write ``V (IDD4W - IDD3N) tBURST``; refresh
  ``V (IDD5B - IDD3N) tRFC``;
- background ``V (IDD2N T_pre + I_rho T_act + (I_1 - I_rho) sum_b T_bank_act)`` over
  the whole run, with T_act the clocks with any bank open or a refresh running;
- plus interface energy ``io_pj_per_bit`` per data bit moved (DRAMPower's core model
  has no I/O term).

With ``rho = 1`` this is the classic DRAMPower model (IDD3N while any bank is open).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from accelsim.dram.mapping import mapping_arrays, parse_scheme
from accelsim.dram.presets import TIMING_FIELDS, DramDevice, bankwise_currents, get_device

PAGE_POLICIES = ("open", "closed")
DEFAULT_LOOKAHEAD = 8   # requests a row command may run ahead of the column commands
ENERGY_ACTIONS = ("activate", "precharge", "read", "write", "refresh", "background", "io")


@dataclass(frozen=True)
class DramResult:
    """What a stream cost: counters, time, bandwidth and energy by action (pJ)."""

    device: str
    channels: int
    page_policy: str
    address_mapping: str
    requests: int
    reads: int
    writes: int
    activates: int
    precharges: int
    refreshes: int
    row_hits: int
    row_misses: int
    row_conflicts: int
    cycles: int
    tck_ns: float
    burst_bytes: int
    bank_level_parallelism: float
    active_cycles: int          # summed over ranks: clocks with a bank open or a refresh
    energy_pj: dict = field(default_factory=dict)

    @property
    def time_ns(self) -> float:
        return self.cycles * self.tck_ns

    @property
    def bytes(self) -> int:
        """Bytes moved on the data bus (whole bursts)."""
        return self.requests * self.burst_bytes

    @property
    def bandwidth_gb_per_s(self) -> float:
        """Achieved bandwidth: bytes moved / elapsed time (GB/s = bytes/ns)."""
        return self.bytes / self.time_ns if self.cycles else 0.0

    @property
    def row_hit_rate(self) -> float:
        return self.row_hits / self.requests if self.requests else 0.0

    @property
    def total_energy_pj(self) -> float:
        return float(sum(self.energy_pj.values()))

    @property
    def pj_per_bit(self) -> float:
        bits = 8 * self.bytes
        return self.total_energy_pj / bits if bits else 0.0

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out.update(time_ns=self.time_ns, bytes=self.bytes, bandwidth_gb_per_s=self.bandwidth_gb_per_s,
                   row_hit_rate=self.row_hit_rate, total_energy_pj=self.total_energy_pj,
                   pj_per_bit=self.pj_per_bit)
        return out


class DramState:
    """The state of ``channels`` channels of ``device`` between blocks of a stream."""

    def __init__(self, device: DramDevice | str, channels: int | None = None,
                 address_mapping: str | None = None, page_policy: str = "open",
                 lookahead: int = DEFAULT_LOOKAHEAD, coalesce: bool = False) -> None:
        from accelsim.dram import kernel as K

        self.device = get_device(device) if isinstance(device, str) else device
        d = self.device
        self.channels = int(channels if channels is not None else d.default_channels)
        if self.channels < 1:
            raise ValueError(f"channels: expected a positive integer, got {channels!r}")
        if page_policy not in PAGE_POLICIES:
            raise ValueError(f"page_policy: expected one of {', '.join(PAGE_POLICIES)}, got {page_policy!r}")
        self.page_policy = page_policy
        if isinstance(lookahead, bool) or not isinstance(lookahead, (int, np.integer)) \
                or not 1 <= lookahead <= K.RING:
            raise ValueError(f"lookahead: expected an integer from 1 to {K.RING}, got {lookahead!r}")
        self.lookahead = int(lookahead)
        key = (id(d), self.channels, address_mapping, page_policy, self.lookahead)
        kept = _FRESH.get(key)
        if kept is None or kept[0] is not d:        # the device kept: its id is not reused
            kept = (d, _fresh_state(d, self.channels, address_mapping, page_policy,
                                    self.lookahead))
            while len(_FRESH) >= 16:
                _FRESH.pop(next(iter(_FRESH)), None)
            _FRESH[key] = kept
        fresh = kept[1]
        self.address_mapping = fresh["address_mapping"]
        for name in ("order", "radix", "tm", "cfg", "bk", "bg", "rk", "ev", "ch", "st"):
            setattr(self, name, fresh[name].copy())
        # (coalesce, last burst, last is_write): the transfer engine's burst coalescing
        # (accelsim.dram.coalesce) applied in the kernel, carried across blocks; then the
        # kernel's scratch (a burst's six address fields)
        self.carry = np.array([1 if coalesce else 0, -1, 0] + [0] * 6, dtype=np.int64)
        self._kernel = K

    def feed(self, starts, lengths, writes=None) -> None:
        """Serve one block of ranges: byte ``starts``, byte ``lengths``, ``writes`` flags."""
        starts = np.ascontiguousarray(starts, dtype=np.int64)
        lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        writes = (np.zeros(starts.shape[0], dtype=np.int64) if writes is None
                  else np.ascontiguousarray(writes, dtype=np.int64))
        if not (starts.ndim == lengths.ndim == writes.ndim == 1
                and starts.shape == lengths.shape == writes.shape):
            raise ValueError("starts, lengths and writes must be 1-D arrays of one length")
        if starts.size and (starts.min() < 0 or lengths.min() < 0):
            raise ValueError("range starts and lengths must be non-negative")
        K = self._kernel
        K.run_ranges(starts, lengths, writes, self.order, self.radix, self.bk, self.bg, self.rk,
                     self.ch, self.ev, self.tm, self.cfg, self.st, self.carry)

    def result(self) -> DramResult:
        """Counters, time and energy of everything fed so far (the state is not changed)."""
        K = self._kernel
        d = self.device
        st = self.st
        cycles = int(st[K.S_CYCLES])
        rk = self.rk.copy()
        K.finish(rk, self.bk.copy(), self.ev.copy(), d.banks, np.int64(cycles))
        active = rk[:, K.R_ACTIVE].astype(np.int64)
        bank_active = rk[:, K.R_BANKACT].astype(np.int64)
        chan_busy = int(st[K.S_CHANBUSY])
        counts = dict(reads=int(st[K.S_READS]), writes=int(st[K.S_WRITES]), activates=int(st[K.S_ACTS]),
                      precharges=int(st[K.S_PRES]), refreshes=int(st[K.S_REFS]))
        energy = energy_pj(d, cycles=cycles, rank_active=active.tolist(),
                           rank_bank_active=bank_active.tolist(), **counts)
        return DramResult(
            device=d.name, channels=self.channels, page_policy=self.page_policy,
            address_mapping=self.address_mapping, requests=int(st[K.S_REQUESTS]),
            row_hits=int(st[K.S_HITS]), row_misses=int(st[K.S_MISSES]),
            row_conflicts=int(st[K.S_CONFLICTS]), cycles=cycles, tck_ns=d.tck_ns,
            burst_bytes=d.burst_bytes,
            bank_level_parallelism=(int(st[K.S_BANKBUSY]) / chan_busy) if chan_busy else 0.0,
            active_cycles=int(active.sum()), energy_pj=energy, **counts)


#: A fresh state's arrays per (device, channels, mapping, policy, lookahead), the last few:
#: a layer's stream starts from one, so each DramState copies them.
_FRESH: dict[tuple, tuple] = {}


def _fresh_state(d: DramDevice, channels: int, address_mapping: str | None, page_policy: str,
                 lookahead: int) -> dict:
    """The arrays of :class:`DramState` before its first request."""
    from accelsim.dram import kernel as K

    out = {"address_mapping": "-".join(parse_scheme(address_mapping))}
    out["order"], out["radix"] = mapping_arrays(address_mapping, d, channels)
    out["tm"] = np.array([d.t(n) for n in TIMING_FIELDS] + [d.burst_clocks], dtype=np.int64)
    out["cfg"] = np.array([d.ranks, d.bank_groups, d.banks_per_group, d.banks,
                           1 if page_policy == "closed" else 0, d.burst_bytes, lookahead],
                          dtype=np.int64)
    ranks = channels * d.ranks
    bk = np.zeros((ranks * d.banks, K.NB_COLS), dtype=np.int64)
    bk[:, K.B_ROW] = -1
    rk = np.zeros((ranks, K.NR_COLS), dtype=np.int64)
    rk[:, K.R_FAW0:K.R_FAW3 + 1] = K.NEG
    rk[:, K.R_REFDUE] = d.t("REFI")
    ch = np.zeros((channels, K.NC_COLS), dtype=np.int64)
    for col in (K.C_LACT, K.C_LREF, K.C_LCAS, K.C_LMAX, K.C_PEND):
        ch[:, col] = -1
    ch[:, K.C_RING0:] = K.NEG
    out.update(bk=bk, rk=rk, ch=ch,
               bg=np.zeros((ranks * d.bank_groups, K.NG_COLS), dtype=np.int64),
               # rank-activity events not yet accounted: bounded by the lookahead window and
               # the banks
               ev=np.zeros((ranks, 4 * K.ROW_RING + 3 * d.banks + 8, K.NE_COLS), dtype=np.int64),
               st=np.zeros(K.N_STATS, dtype=np.int64))
    return out


def energy_pj(device: DramDevice, *, reads: int, writes: int, activates: int, precharges: int,
              refreshes: int, cycles: int, rank_active: list[int], rank_bank_active: list[int]
              ) -> dict[str, float]:
    """DRAMPower-style energy by action in pJ (see the module docstring).

    ``rank_active[i]``: clocks rank i had a bank open (or a refresh running);
    ``rank_bank_active[i]``: its banks' open clocks summed over banks.
    """
    d = device
    tck = d.tck_ns
    t = dict(d.timing)
    n_dev = d.devices_per_rank
    out = dict.fromkeys(ENERGY_ACTIONS, 0.0)
    for dom in d.power:
        v = dom.voltage_v
        i_rho, i_1, i_theta = bankwise_currents(dom, t, d.rho, d.banks)
        # mA x V x ns = pJ
        out["activate"] += n_dev * activates * v * (i_theta - i_1) * t["RAS"] * tck
        out["precharge"] += n_dev * precharges * v * (dom.IDD0 - dom.IDD2N) * t["RP"] * tck
        out["read"] += n_dev * reads * v * (dom.IDD4R - dom.IDD3N) * d.burst_clocks * tck
        out["write"] += n_dev * writes * v * (dom.IDD4W - dom.IDD3N) * d.burst_clocks * tck
        out["refresh"] += n_dev * refreshes * v * (dom.IDD5B - dom.IDD3N) * t["RFC"] * tck
        for act, bank_act in zip(rank_active, rank_bank_active):
            pre = max(0, cycles - act)
            out["background"] += n_dev * v * tck * (dom.IDD2N * pre + i_rho * act
                                                    + (i_1 - i_rho) * bank_act)
    out["io"] = d.io_pj_per_bit * 8 * d.burst_bytes * (reads + writes)
    return out


def _blocks(ranges_iter: Iterable) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    for block in ranges_iter:
        if isinstance(block, tuple) and len(block) == 3:
            yield block
            continue
        arr = np.asarray(block)
        if arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise ValueError("each block must be an (n, 3) array of (start, bytes, is_write) "
                             f"or a (starts, lengths, writes) tuple, got shape {arr.shape}")
        writes = arr[:, 2] if arr.shape[1] == 3 else None
        yield arr[:, 0], arr[:, 1], writes


def stream_ranges(device: DramDevice | str, ranges_iter: Iterable, channels: int | None = None,
                  address_mapping: str | None = None, page_policy: str = "open",
                  state: DramState | None = None, lookahead: int = DEFAULT_LOOKAHEAD,
                  coalesce: bool = False) -> DramResult:
    """Serve an iterator of range blocks chunk by chunk and return the result.

    Each block is an ``(n, 3)`` integer array of ``(start byte, bytes, is_write)`` rows (or
    ``(n, 2)``: reads) or a ``(starts, lengths, writes)`` tuple. DRAM state carries across
    blocks, so the result does not depend on how the stream is cut; memory stays that of
    one block. Pass ``state`` to continue a stream (it is updated in place). ``coalesce``
    (a fresh state only): the bursts pass the transfer engine's burst coalescing first, as
    :func:`accelsim.dram.coalesce.coalesced_blocks` would hand them (same bursts, same order).
    """
    st = state if state is not None else DramState(device, channels, address_mapping, page_policy,
                                                   lookahead, coalesce)
    for starts, lengths, writes in _blocks(ranges_iter):
        st.feed(starts, lengths, writes)
    return st.result()


def simulate_ranges(device: DramDevice | str, starts, lengths, writes=None, channels: int | None = None,
                    address_mapping: str | None = None, page_policy: str = "open",
                    lookahead: int = DEFAULT_LOOKAHEAD) -> DramResult:
    """One block of ranges through a fresh device (see :func:`stream_ranges`)."""
    return stream_ranges(device, [(starts, lengths, writes)], channels, address_mapping, page_policy,
                         lookahead=lookahead)


# ---- stated access patterns -----------------------------------------------------------------
PATTERN_BURSTS = 1 << 16   # requests of a pattern stream (several tREFI on every preset)


def pattern_ranges(device: DramDevice, channels: int, pattern: str, access_bytes: int | None = None,
                   bursts: int = PATTERN_BURSTS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of a read stream: ``sequential`` (one linear range of ``bursts``
    bursts) or ``random`` (``bursts`` accesses of ``access_bytes``, default one burst, at
    uniformly random aligned addresses of the whole capacity, fixed seed)."""
    bb = device.burst_bytes
    if pattern == "sequential":
        return np.array([0], dtype=np.int64), np.array([bursts * bb], dtype=np.int64)
    if pattern != "random":
        raise ValueError(f"pattern: expected 'sequential' or 'random', got {pattern!r}")
    size = max(bb, int(access_bytes or bb))
    size = -(-size // bb) * bb
    n = max(1, bursts * bb // size)
    slots = device.capacity_bytes * channels // size
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, slots, size=n, dtype=np.int64) * size
    return starts, np.full(n, size, dtype=np.int64)


def pattern_result(device: DramDevice | str, pattern: str, channels: int | None = None,
                   address_mapping: str | None = None, page_policy: str = "open",
                   access_bytes: int | None = None, bursts: int = PATTERN_BURSTS) -> DramResult:
    """The result of :func:`pattern_ranges`' stream (reads only)."""
    d = get_device(device) if isinstance(device, str) else device
    ch = int(channels if channels is not None else d.default_channels)
    starts, lengths = pattern_ranges(d, ch, pattern, access_bytes, bursts)
    return simulate_ranges(d, starts, lengths, None, ch, address_mapping, page_policy)


@functools.lru_cache(maxsize=256)
def cached_pattern_result(device: str, channels: int, address_mapping: str | None, page_policy: str,
                          pattern: str, access_bytes: int) -> DramResult:
    """:func:`pattern_result`, memoised per design (hw show, the flat pJ/bit accounting)."""
    return pattern_result(device, pattern, channels, address_mapping, page_policy, access_bytes)


def cached_pattern_pj_per_bit(device: str, channels: int, address_mapping: str | None, page_policy: str,
                              pattern: str, access_bytes: int) -> float:
    """Energy per bit of :func:`cached_pattern_result`."""
    return cached_pattern_result(device, channels, address_mapping, page_policy, pattern,
                                 access_bytes).pj_per_bit
