"""DRAM model: presets, hand-computed timing, energy, chunked streaming and the reference."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from accelsim.dram.mapping import SCHEMES, parse_scheme
from accelsim.dram.model import (DramState, pattern_ranges, pattern_result, simulate_ranges,
                                 stream_ranges)
from accelsim.dram.presets import (CURRENT_FIELDS, ORG_FIELDS, TIMING_FIELDS, bankwise_currents,
                                   get_device, load_presets, parse_presets)
from accelsim.errors import ConfigError
from tests.dram_reference import Reference, union_length

PRESETS = ("DDR4-3200", "DDR5-4800", "LPDDR4X-4266", "LPDDR5-6400", "HBM2E", "HBM3")


# ---- helpers ------------------------------------------------------------------------------
def tiny_body(**timing) -> dict:
    """A small synthetic device (few rows and columns: conflicts and refreshes are common)."""
    t = dict(CL=3, CWL=2, RCD=3, RP=3, RAS=6, RC=9, CCD_S=2, CCD_L=3, RRD_S=2, RRD_L=3, FAW=10,
             WR=3, WTR_S=2, WTR_L=3, RTW=4, RTP=2, REFI=200, RFC=20)
    t.update(timing)
    return {
        "standard": "TEST", "data_rate_mtps": 1000, "tck_ns": 2.0, "default_channels": 1,
        "organisation": dict(ranks=1, bank_groups=2, banks_per_group=2, rows=8, columns=32,
                             device_width=8, devices_per_rank=2, burst_length=4),
        "timing": t,
        "power": [{"name": "VDD", "voltage_v": 1.2, "IDD0": 60, "IDD2N": 35, "IDD3N": 45,
                   "IDD4R": 150, "IDD4W": 140, "IDD5B": 200}],
        "io_pj_per_bit": 1.0, "rho": 0.5, "sources": {"*": "synthetic test device"},
    }


def tiny(**timing):
    return parse_presets({"tiny": tiny_body(**timing)}, "<test>")["tiny"]


def random_device(rng: np.random.Generator):
    body = tiny_body()
    org = body["organisation"]
    org["ranks"] = int(rng.integers(1, 3))
    org["bank_groups"] = int(rng.integers(1, 4))
    org["banks_per_group"] = int(rng.integers(1, 4))
    org["rows"] = int(rng.choice([2, 4, 8]))
    org["burst_length"] = int(rng.choice([2, 4, 8]))
    org["columns"] = org["burst_length"] * int(rng.choice([1, 2, 4, 8]))
    body["data_rate_mtps"] = 1000 * org["burst_length"] / 4
    t = body["timing"]
    burst = max(1, round(org["burst_length"] * 1e3 / (body["data_rate_mtps"] * 2.0)))
    t["CL"] = int(rng.integers(1, 8))
    t["CWL"] = int(rng.integers(1, 8))
    t["RCD"] = int(rng.integers(1, 8))
    t["RP"] = int(rng.integers(1, 8))
    t["RAS"] = t["RCD"] + int(rng.integers(0, 8))
    t["RC"] = t["RAS"] + t["RP"] + int(rng.integers(0, 4))
    t["CCD_S"] = burst + int(rng.integers(0, 3))
    t["CCD_L"] = t["CCD_S"] + int(rng.integers(0, 4))
    t["RRD_S"] = int(rng.integers(1, 5))
    t["RRD_L"] = t["RRD_S"] + int(rng.integers(0, 4))
    t["FAW"] = t["RRD_S"] + int(rng.integers(0, 30))
    t["WR"] = int(rng.integers(1, 8))
    t["WTR_S"] = int(rng.integers(1, 5))
    t["WTR_L"] = t["WTR_S"] + int(rng.integers(0, 4))
    t["RTW"] = int(rng.integers(1, 12))
    t["RTP"] = int(rng.integers(1, 6))
    t["RFC"] = int(rng.integers(5, 40))
    t["REFI"] = 4 * t["RFC"] + int(rng.integers(10, 120))   # real devices: tREFI >= 10 tRFC
    return parse_presets({"rnd": body}, "<random>")["rnd"]


def random_ranges(rng: np.random.Generator, device, channels: int, n: int) -> list[tuple[int, int, int]]:
    bb = device.burst_bytes
    span = device.capacity_bytes * channels * 2  # beyond capacity: the mapping wraps
    out = []
    for _ in range(n):
        kind = rng.integers(0, 4)
        if kind == 0 and out:  # continue the previous range
            s, ln, w = out[-1]
            start = s + ln
        else:
            start = int(rng.integers(0, span))
        length = int(rng.integers(0, 4 * bb)) if kind != 3 else int(rng.integers(1, 3))
        out.append((int(start), length, int(rng.random() < 0.35)))
    return out


def kernel_result(device, ranges, channels, scheme, policy, blocks: int = 1, lookahead: int = 8):
    arr = np.array(ranges, dtype=np.int64).reshape(-1, 3)
    cuts = np.array_split(np.arange(arr.shape[0]), blocks)
    return stream_ranges(device, (arr[c] for c in cuts), channels, scheme, policy, lookahead=lookahead)


def check_against_reference(device, ranges, channels, scheme, policy, lookahead: int = 8) -> None:
    k = kernel_result(device, ranges, channels, scheme, policy, blocks=3, lookahead=lookahead)
    ref = Reference(device, channels, list(parse_scheme(scheme)), closed=policy == "closed",
                    lookahead=lookahead).run(ranges)
    pairs = dict(reads=ref.reads, writes=ref.writes, activates=ref.activates,
                 precharges=ref.precharges, refreshes=ref.refreshes, row_hits=ref.row_hits,
                 row_misses=ref.row_misses, row_conflicts=ref.row_conflicts, cycles=ref.cycles,
                 requests=ref.requests, active_cycles=sum(ref.rank_active))
    got = {name: getattr(k, name) for name in pairs}
    assert got == pairs, (scheme, policy, channels)
    assert k.bank_level_parallelism == pytest.approx(ref.blp, rel=1e-12, abs=1e-12)
    for action, value in ref.energy_pj.items():
        assert k.energy_pj[action] == pytest.approx(value, rel=1e-9, abs=1e-6), action


# ---- presets ---------------------------------------------------------------------------------
def test_presets_load_with_sources_and_peaks():
    presets = load_presets()
    assert set(PRESETS) <= set(presets)
    expected_peak = {"DDR4-3200": 25.6, "DDR5-4800": 19.2, "LPDDR4X-4266": 8.532,
                     "LPDDR5-6400": 12.8, "HBM2E": 25.6, "HBM3": 25.6}
    for name in PRESETS:
        d = presets[name]
        assert d.peak_gb_per_s == pytest.approx(expected_peak[name], rel=1e-9)
        # one burst per burst_clocks clocks is the peak too (timing agrees with the data rate)
        assert d.burst_bytes / (d.burst_clocks * d.tck_ns) == pytest.approx(d.peak_gb_per_s, rel=2e-3)
        for f in TIMING_FIELDS:
            assert d.source(f"timing.{f}").strip(), (name, f)
        for f in ORG_FIELDS:
            assert d.source(f"organisation.{f}").strip(), (name, f)
        for dom in d.power:
            for f in CURRENT_FIELDS:
                assert d.source(f"power.{dom.name}.{f}").strip()
        assert d.source("io_pj_per_bit")
    # HBM stacks: 16 x 25.6 and 32 x 25.6 GB/s
    assert presets["HBM2E"].default_channels * presets["HBM2E"].peak_gb_per_s == pytest.approx(409.6)
    assert presets["HBM3"].default_channels * presets["HBM3"].peak_gb_per_s == pytest.approx(819.2)


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b["timing"].update(RC=5), "tiny.timing.RC"),
    (lambda b: b["timing"].pop("FAW"), "tiny.timing.FAW"),
    (lambda b: b["timing"].update(CL=2.5), "tiny.timing.CL"),
    (lambda b: b["organisation"].update(rows=6), "tiny.organisation.rows"),
    (lambda b: b.update(colour="red"), "tiny.colour"),
    (lambda b: b["power"][0].update(IDD4R=10), "tiny.power[0].IDD4R"),
    (lambda b: b.update(tck_ns=1.7), "tiny.tck_ns"),
    (lambda b: b.update(rho=2), "tiny.rho"),
    (lambda b: b.update(sources={}), "tiny.sources"),
    (lambda b: b["timing"].update(REFI=70), "tiny.timing.REFI"),
])
def test_preset_errors_are_one_line_with_file_and_field(mutate, field):
    body = tiny_body()
    mutate(body)
    with pytest.raises(ConfigError) as info:
        parse_presets({"tiny": body}, "presets_x.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"presets_x.yaml: {field}:"), message


def test_preset_file_from_disk_and_unknown_name(tmp_path):
    import yaml

    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"tiny": tiny_body()}))
    assert load_presets(path)["tiny"].banks == 4
    with pytest.raises(ConfigError, match="did you mean 'DDR4-3200'"):
        get_device("DDR4-3201")


def test_scheme_names_and_errors():
    for name, text in SCHEMES.items():
        assert parse_scheme(name) == tuple(text.split("-"))
    assert parse_scheme("column-row-rank-bank-bankgroup-channel")[0] == "column"
    with pytest.raises(ValueError, match="six fields"):
        parse_scheme("row-bank-column")


# ---- hand-computed timing --------------------------------------------------------------
def ddr4():
    return get_device("DDR4-3200")


def test_single_read_from_idle_is_rcd_cl_burst():
    d = ddr4()
    r = simulate_ranges(d, [0], [64])
    t = dict(d.timing)
    assert r.cycles == t["RCD"] + t["CL"] + d.burst_clocks == 48
    assert (r.activates, r.reads, r.row_misses, r.precharges, r.refreshes) == (1, 1, 1, 0, 0)
    w = simulate_ranges(d, [0], [64], [1])
    assert w.cycles == t["RCD"] + t["CWL"] + d.burst_clocks


def test_row_hit_stream_runs_at_peak_bandwidth():
    d = ddr4()
    bb = d.burst_bytes
    # one row in each bank group (default mapping: bank groups interleave, then columns)
    short = simulate_ranges(d, [0], [128 * bb])
    long = simulate_ranges(d, [0], [256 * bb])
    assert long.row_hits - short.row_hits == 128
    assert long.cycles - short.cycles == 128 * d.burst_clocks      # one burst per 4 clocks: peak
    marginal = 128 * bb / ((long.cycles - short.cycles) * d.tck_ns)
    assert marginal == pytest.approx(d.peak_gb_per_s)


def test_same_bank_group_stream_is_limited_by_tccd_l():
    d = ddr4()
    bb = d.burst_bytes
    scheme = "row-rank-bankgroup-bank-column-channel"   # consecutive bursts: one bank, one row
    a = simulate_ranges(d, [0], [32 * bb], address_mapping=scheme)
    b = simulate_ranges(d, [0], [64 * bb], address_mapping=scheme)
    assert b.cycles - a.cycles == 32 * d.t("CCD_L")


def test_row_conflict_waits_for_tras_then_trp():
    d = ddr4()
    t = dict(d.timing)
    row = d.row_bytes * d.banks          # same bank, next row (default mapping)
    r = simulate_ranges(d, [0, row], [64, 64])
    assert r.row_conflicts == 1 and r.precharges == 1 and r.activates == 2
    pre = max(t["RAS"], t["RCD"] + t["RTP"])
    act2 = max(pre + t["RP"], t["RC"])
    assert r.cycles == act2 + t["RCD"] + t["CL"] + d.burst_clocks == 122
    closed = simulate_ranges(d, [0, row], [64, 64], page_policy="closed")
    assert closed.cycles == r.cycles and closed.row_conflicts == 0 and closed.row_misses == 2


def test_write_to_read_waits_twtr_and_read_to_write_trtw():
    d = ddr4()
    t = dict(d.timing)
    bl = d.burst_clocks
    wr = simulate_ranges(d, [0, 0], [64, 64], [1, 0])
    assert wr.cycles == t["RCD"] + t["CWL"] + bl + t["WTR_L"] + t["CL"] + bl
    rw = simulate_ranges(d, [0, 0], [64, 64], [0, 1])
    assert rw.cycles == t["RCD"] + t["RTW"] + t["CWL"] + bl
    # different bank groups: the short turnaround
    other_group = d.burst_bytes          # next burst: next bank group
    wr_s = simulate_ranges(d, [0, other_group], [64, 64], [1, 0])
    assert wr_s.cycles < wr.cycles + t["RCD"] + 2


def test_tfaw_limits_the_fifth_activate():
    # 8 banks (4 groups x 2); five bursts to five different banks: five ACTs, the fifth held
    # back by tFAW (40 clocks after the first), not by tRRD (2)
    body = tiny_body(RCD=2, CL=2, RRD_S=2, RRD_L=2, FAW=40, CCD_S=2, CCD_L=2, RAS=2, RC=5, RP=2,
                     REFI=10_000, RFC=20)
    body["organisation"].update(bank_groups=4, banks_per_group=2)
    d = parse_presets({"faw": body}, "<t>")["faw"]
    bb = d.burst_bytes
    scheme = "row-rank-column-bank-bankgroup-channel"   # consecutive bursts: next bank group, then bank
    ranges = [(i * bb, bb, 0) for i in range(5)]
    r = simulate_ranges(d, [s for s, _, _ in ranges], [b for _, b, _ in ranges], address_mapping=scheme)
    t = dict(d.timing)
    assert r.activates == 5
    assert r.cycles == t["FAW"] + t["RCD"] + t["CL"] + d.burst_clocks
    ref = Reference(d, 1, list(parse_scheme(scheme))).run(ranges)
    acts = [c.time for c in ref.commands if c.kind == "ACT"]
    assert acts[4] == acts[0] + t["FAW"]
    body["timing"]["FAW"] = 2
    d2 = parse_presets({"faw": body}, "<t>")["faw"]
    r2 = simulate_ranges(d2, [s for s, _, _ in ranges], [b for _, b, _ in ranges], address_mapping=scheme)
    assert r2.cycles < r.cycles


def test_refresh_happens_every_trefi_and_closes_rows():
    d = ddr4()
    r = pattern_result(d, "sequential", bursts=1 << 15)
    expected = r.cycles / d.t("REFI")
    assert abs(r.refreshes - expected) <= 1.5
    # every refresh re-opens the rows it closed: activates >= refreshes
    assert r.activates >= r.refreshes


def test_bursts_crossing_rows_and_bank_parallelism():
    d = ddr4()
    # one range over two full row sets: every row of the 4 bank groups opened twice
    r = simulate_ranges(d, [d.row_bytes * 4 - 64], [128])
    assert r.requests == 2 and r.activates == 2
    rnd = pattern_result(d, "random", bursts=2000)
    seq = pattern_result(d, "sequential", bursts=2000)
    assert rnd.row_hit_rate < 0.05 < 0.9 < seq.row_hit_rate
    assert rnd.bank_level_parallelism >= 1.0 and seq.bank_level_parallelism > 1.0
    assert seq.bandwidth_gb_per_s > 3 * rnd.bandwidth_gb_per_s


def test_lookahead_overlaps_row_commands_with_column_commands():
    d = ddr4()
    in_order = pattern_result(d, "random", bursts=2000)   # default lookahead 8
    strict = simulate_ranges(d, *pattern_ranges(d, 1, "random", None, 2000), lookahead=1)
    assert strict.requests == in_order.requests == 2000
    assert strict.cycles > 1.3 * in_order.cycles
    assert strict.bank_level_parallelism < in_order.bank_level_parallelism
    with pytest.raises(ValueError, match="lookahead"):
        DramState(d, lookahead=17)


def test_empty_and_zero_length_ranges():
    d = ddr4()
    r = simulate_ranges(d, [], [])
    assert r.cycles == 0 and r.requests == 0 and r.total_energy_pj == 0
    r = simulate_ranges(d, [100], [0])
    assert r.requests == 0
    with pytest.raises(ValueError):
        simulate_ranges(d, [-1], [64])


# ---- energy -----------------------------------------------------------------------------
def test_energy_of_one_read_by_hand():
    d = ddr4()
    r = simulate_ranges(d, [0], [64])
    t = dict(d.timing)
    tck, n = d.tck_ns, d.devices_per_rank
    act = rd = bg = 0.0
    for dom in d.power:
        i_rho = d.rho * (dom.IDD3N - dom.IDD2N) + dom.IDD2N
        i_1 = (dom.IDD3N + (d.banks - 1) * i_rho) / d.banks
        act += n * dom.voltage_v * (dom.IDD0 - i_1) * t["RAS"] * tck
        rd += n * dom.voltage_v * (dom.IDD4R - dom.IDD3N) * d.burst_clocks * tck
        bg += n * dom.voltage_v * i_1 * r.cycles * tck   # one bank open from 0 to the end
    assert r.energy_pj["activate"] == pytest.approx(act)
    assert r.energy_pj["read"] == pytest.approx(rd)
    assert r.energy_pj["background"] == pytest.approx(bg)
    assert r.energy_pj["io"] == pytest.approx(d.io_pj_per_bit * 512)
    assert r.energy_pj["precharge"] == 0 and r.energy_pj["refresh"] == 0


# Published system-level energy per bit of a streaming read, interface included. Windows set
# before running the model: DDR4 15-25 pJ/bit is the usual system figure (e.g. Li, Reddy and
# Jacob, MEMSYS 2018; Malladi et al., ISCA 2012 for DDR3 ~ 20-70 at low load), widened down to
# 10 for a fully streaming x8 rank; DDR5 similar; LPDDR4X 4-8 pJ/bit (mobile DRAM at full
# streaming) widened to 3-10; LPDDR5 below LPDDR4X; HBM2 3.9 pJ/bit (O'Connor et al., MICRO
# 2017) -> 2.5-6 for HBM2E, HBM3 below it.
WINDOWS = {"DDR4-3200": (10, 25), "DDR5-4800": (8, 25), "LPDDR4X-4266": (3, 10),
           "LPDDR5-6400": (2, 8), "HBM2E": (2.5, 6), "HBM3": (2, 6)}


@pytest.mark.parametrize("name", PRESETS)
def test_sequential_pj_per_bit_in_published_window(name):
    seq = pattern_result(name, "sequential", bursts=1 << 14)
    low, high = WINDOWS[name]
    assert low <= seq.pj_per_bit <= high, seq.pj_per_bit
    rnd = pattern_result(name, "random", bursts=1 << 12)
    assert rnd.pj_per_bit > 1.5 * seq.pj_per_bit
    assert rnd.energy_pj["activate"] + rnd.energy_pj["precharge"] > 5 * (
        seq.energy_pj["activate"] + seq.energy_pj["precharge"]) * rnd.bytes / seq.bytes
    assert all(v >= 0 for v in seq.energy_pj.values())


def test_bankwise_currents_reduce_to_classic_model_at_rho_one():
    d = ddr4()
    dom = d.power[0]
    i_rho, i_1, i_theta = bankwise_currents(dom, dict(d.timing), 1.0, d.banks)
    assert i_rho == pytest.approx(dom.IDD3N) and i_1 == pytest.approx(dom.IDD3N)
    assert i_theta == pytest.approx(dom.IDD0)


# ---- streaming ----------------------------------------------------------------------------
def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(7)
    d = ddr4()
    ranges = np.array([(int(s) * 64, int(n), int(w)) for s, n, w in
                       zip(rng.integers(0, 1 << 22, 3000), rng.integers(1, 700, 3000),
                           rng.random(3000) < 0.3)], dtype=np.int64)
    whole = stream_ranges(d, [ranges], channels=2, page_policy="closed")
    for blocks in (2, 7, 3000):
        parts = np.array_split(ranges, blocks)
        assert stream_ranges(d, iter(parts), channels=2, page_policy="closed") == whole
    # a tuple block and a state carried by hand
    state = DramState(d, 2, None, "closed")
    stream_ranges(d, [(ranges[:100, 0], ranges[:100, 1], ranges[:100, 2])], state=state)
    assert stream_ranges(d, [ranges[100:]], state=state) == whole


def test_stream_memory_is_flat_in_stream_length():
    d = ddr4()
    block = np.column_stack([np.arange(2000, dtype=np.int64) * 4096, np.full(2000, 256),
                             np.zeros(2000, dtype=np.int64)])

    def blocks(n):
        for i in range(n):
            out = block.copy()
            out[:, 0] += i * 2000 * 4096
            yield out

    stream_ranges(d, blocks(2))  # compile outside the measurement
    peaks = []
    for n in (5, 50):
        tracemalloc.start()
        r = stream_ranges(d, blocks(n))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert r.requests == n * 2000 * 4
    assert peaks[1] < peaks[0] * 1.5 + 100_000


# ---- against the reference ----------------------------------------------------------------
EDGE_CASES = {
    "one request": [(0, 1, 0)],
    "all same row": [(i * 4, 4, i % 2) for i in range(30)],
    "all different banks": [(i * 64, 8, 0) for i in range(12)],
    "writes after reads": [(0, 64, 0), (0, 64, 1), (8, 8, 0), (256, 16, 1), (0, 8, 0)] * 4,
    "bursts crossing rows": [(60, 200, 0), (250, 300, 1), (1000, 2000, 0)],
    "refresh boundaries": [(i * 96 % 4096, 40, i % 3 == 0) for i in range(120)],
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("policy", ["open", "closed"])
def test_edge_cases_match_reference(case, policy):
    d = tiny(REFI=60, RFC=15)
    for scheme, lookahead in (("row_bank_column", 8), ("bank_interleaved", 1), ("row_bank_column", 3)):
        check_against_reference(d, EDGE_CASES[case], 1, scheme, policy, lookahead)


def _random_case(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    d = random_device(rng)
    channels = int(rng.integers(1, 4))
    names = list(SCHEMES) + ["-".join(rng.permutation(
        ["channel", "rank", "bankgroup", "bank", "row", "column"]))]
    scheme = names[int(rng.integers(0, len(names)))]
    policy = "closed" if rng.random() < 0.4 else "open"
    lookahead = int(rng.choice([1, 2, 3, 8, 16]))
    ranges = random_ranges(rng, d, channels, n)
    check_against_reference(d, ranges, channels, scheme, policy, lookahead)


@pytest.mark.parametrize("seed", range(30))
def test_random_streams_match_reference(seed):
    _random_case(seed, 25)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1000, 1300))
def test_random_streams_match_reference_slow(seed):
    _random_case(seed, 80)


def test_presets_match_reference_on_short_streams():
    rng = np.random.default_rng(3)
    for name in PRESETS:
        d = get_device(name)
        ranges = [(int(rng.integers(0, 1 << 16)) * 32, int(rng.integers(1, 300)), int(rng.random() < 0.3))
                  for _ in range(25)]
        check_against_reference(d, ranges, 2, None, "open")


def test_union_length_helper():
    assert union_length([(0, 5), (3, 8), (10, 12)]) == 10
    assert union_length([(0, 5), (3, 8)], end=4) == 4
    assert union_length([]) == 0


def test_intervals_closing_after_the_last_data_are_clipped():
    # closed page: the first write's auto-precharge waits tWR past the second write's data
    d = tiny(WR=25, REFI=400, RFC=20)
    bb = d.burst_bytes
    check_against_reference(d, [(0, bb, 1), (bb, bb, 1)], 1, "bank_interleaved", "closed")
    # two ranks: a refresh of one rank still running when the other rank's last data ends
    body = tiny_body(REFI=80, RFC=20)
    body["organisation"]["ranks"] = 2
    d2 = parse_presets({"two": body}, "<t>")["two"]
    ranges = [(i * bb, bb, 0) for i in range(150)]
    check_against_reference(d2, ranges, 1, "row-column-bankgroup-bank-rank-channel", "open")
    r = simulate_ranges(d2, [0], [150 * bb], address_mapping="row-column-bankgroup-bank-rank-channel")
    assert r.refreshes >= 2


# ---- the transfer engine's burst coalescing inside the kernel (stream_ranges(coalesce=True))
def _walked(ranges, bb: int) -> list[tuple[int, int, int]]:
    """One burst-sized range per burst served: every burst a range touches, in order, one equal
    to the burst just before it (same direction) dropped."""
    out, last = [], None
    for s, n, w in ranges:
        for b in range(s // bb, (s + n - 1) // bb + 1) if n > 0 else ():
            if last == (b, bool(w)):
                continue
            last = (b, bool(w))
            out.append((b * bb, bb, int(w)))
    return out


def _coalesced_case(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    d = random_device(rng)
    channels = int(rng.integers(1, 4))
    scheme = list(SCHEMES)[int(rng.integers(0, len(SCHEMES)))]
    policy = "closed" if rng.random() < 0.4 else "open"
    bb = d.burst_bytes
    ranges = []
    for _ in range(n):          # small ranges sharing bursts: the coalescer's work
        start = ranges[-1][0] + int(rng.integers(-bb, 2 * bb)) if ranges and rng.random() < 0.7 \
            else int(rng.integers(0, d.capacity_bytes * channels))
        ranges.append((max(start, 0), int(rng.integers(0, 2 * bb)), int(rng.random() < 0.3)))
    arr = np.array(ranges, dtype=np.int64).reshape(-1, 3)
    cuts = np.array_split(np.arange(arr.shape[0]), 3)     # the last burst carried across blocks
    got = stream_ranges(d, (arr[c] for c in cuts), channels, scheme, policy, coalesce=True)
    ref = Reference(d, channels, list(parse_scheme(scheme)), closed=policy == "closed").run(
        _walked(ranges, bb))
    assert (got.requests, got.reads, got.writes, got.row_hits, got.activates, got.cycles) == \
        (ref.requests, ref.reads, ref.writes, ref.row_hits, ref.activates, ref.cycles), seed
    assert got.energy_pj["background"] == pytest.approx(ref.energy_pj["background"], rel=1e-9)


@pytest.mark.parametrize("seed", range(12))
def test_kernel_coalescing_serves_the_walked_bursts(seed):
    _coalesced_case(seed, 40)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2000, 2200))
def test_kernel_coalescing_serves_the_walked_bursts_slow(seed):
    _coalesced_case(seed, 80)


def test_kernel_coalescing_by_hand():
    # the tiny device's 8-byte bursts: [0,3) and [3,6) share burst 0 (one request); [6,10)
    # touches bursts 0 and 1 (burst 1 only); a write to burst 1 is not a repeat of the read:
    # three requests; a fresh state does not coalesce unless asked (1 + 1 + 2 + 1 = 5)
    d = tiny()
    assert d.burst_bytes == 8
    ranges = [(0, 3, 0), (3, 3, 0), (6, 4, 0), (8, 4, 1)]
    assert stream_ranges(d, [np.array(ranges)], coalesce=True).requests == 3
    assert stream_ranges(d, [np.array(ranges)]).requests == 5
    # across blocks: the second block's first burst repeats the first block's last
    assert stream_ranges(d, [np.array(ranges[:1]), np.array(ranges[1:2])],
                         coalesce=True).requests == 1
