"""Numba kernels of the simulator against their plain-Python references (tests/naive.py)."""
from __future__ import annotations

import numpy as np
import pytest

import naive
from accelsim.sim.kernels import schedule as sch
from accelsim.sim.kernels.bitops import and_popcount, pack_equal_rows, popcount_rows
from accelsim.sim.kernels.im2col import code_counts
from accelsim.sim.kernels.cycle import (CY_BLOCKED, CY_CYCLES, CY_GLB_BITS, CY_PAIRS, CY_STARVED,
                                        CY_WRITE_STALL, cycle_simulate)
from accelsim.sim.lower import gemm_of, lower_acts, lower_weights
from accelsim.sim.map import map_gemm
from accelsim.sim.traffic import layer_traffic, operand_bits
from accelsim.sim.work import operand_counts, work_matrix
from accelsim.trace.geometry import LayerGeometry

DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary")
SKIPS = [(False, False), (True, False), (False, True), (True, True)]
SYNCS = [sch.SYNC_ARRAY, sch.SYNC_ROW, sch.SYNC_COLUMN, sch.SYNC_DECOUPLED]

GEOMETRIES = {
    "plain": dict(kind="conv2d", N=1, C=3, H=5, W=6, K=4, R=3, S=2),
    "padded": dict(kind="conv2d", N=1, C=2, H=5, W=5, K=3, R=3, S=3, pad_h=1, pad_w=2),
    "strided": dict(kind="conv2d", N=1, C=3, H=9, W=7, K=5, R=3, S=3, stride_h=2, stride_w=3,
                    pad_h=1, pad_w=1),
    "dilated": dict(kind="conv2d", N=1, C=2, H=9, W=9, K=2, R=3, S=2, dil_h=2, dil_w=3, pad_h=2),
    "grouped": dict(kind="grouped_conv2d", N=1, C=4, H=5, W=5, K=6, R=3, S=3, pad_h=1, pad_w=1,
                    groups=2),
    "depthwise": dict(kind="depthwise_conv2d", N=1, C=3, H=6, W=5, K=3, R=3, S=3, pad_h=1,
                      pad_w=1, groups=3),
    "linear": dict(kind="linear", N=1, C=7, H=3, W=1, K=5),
}



def _cycle(acodes, wcodes, work, *rest):
    """``cycle_simulate`` with the one array type per argument the simulator passes (one
    compiled specialisation of the kernel, not one per layout the tests build)."""
    rest = list(rest)
    if len(rest) == 17:
        rest.append(False)      # pad_issued
    return cycle_simulate(np.require(acodes, np.uint8, ("C", "W", "A")),
                          np.require(wcodes, np.uint8, ("C", "W", "A")), sch.as_work(work), *rest)

def random_layer(name, density_a=0.5, density_w=0.5, seed=0):
    geo = LayerGeometry(**GEOMETRIES[name])
    rng = np.random.default_rng(seed)
    act = rng.random(geo.act_shape[1:]) < density_a
    weight = rng.random(geo.weight_shape) < density_w
    return geo, act, weight


# ---- im2col ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("density", [0.0, 0.5, 1.0])
def test_im2col_matches_reference(name, density):
    geo, act, _ = random_layer(name, density_a=density)
    assert np.array_equal(lower_acts(act, geo), naive.im2col(act, geo))


@pytest.mark.parametrize("name", ["padded", "grouped", "depthwise"])
def test_code_counts_match_numpy(name):
    geo, act, _ = random_layer(name, density_a=0.4)
    codes = lower_acts(act, geo)
    col, row, col_zero, pads = code_counts(codes)
    assert np.array_equal(col, (codes == 1).sum(axis=1))
    assert np.array_equal(col_zero, (codes == 0).sum(axis=1))
    assert np.array_equal(row, (codes == 1).sum(axis=2))
    assert np.array_equal(pads, (codes == 2).sum(axis=(1, 2)))


def test_lower_weights_layout():
    geo, _, weight = random_layer("grouped")
    codes = lower_weights(weight, geo)
    gemm = gemm_of(geo)
    assert codes.shape == (gemm.groups, gemm.N, gemm.Kred)
    for g in range(geo.groups):
        for n in range(gemm.N):
            for c in range(geo.c_per_group):
                for u in range(geo.R):
                    for v in range(geo.S):
                        r = (c * geo.R + u) * geo.S + v
                        assert codes[g, n, r] == weight[g * gemm.N + n, c, u, v]


# ---- AND + popcount ----------------------------------------------------------------------

@pytest.mark.parametrize("length", [1, 5, 63, 64, 65, 130, 200])
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_and_popcount_matches_reference(length, density):
    rng = np.random.default_rng(length)
    a = rng.random((7, length)) < density
    b = rng.random((6, length)) < 0.6
    pa = pack_equal_rows(a.view(np.uint8), 1)
    pb = pack_equal_rows(b.view(np.uint8), 1)
    assert pa.shape == (7, (length + 63) // 64)
    assert np.array_equal(and_popcount(pa, pb), naive.and_count(a, b))
    assert np.array_equal(popcount_rows(pa), a.sum(axis=1))


def test_pack_equal_rows_bit_layout():
    codes = np.zeros((1, 70), dtype=np.uint8)
    codes[0, [0, 3, 64, 69]] = 1
    codes[0, 5] = 2  # padding is not "equal to 1"
    packed = pack_equal_rows(codes, 1)
    assert packed[0, 0] == (1 << 0) | (1 << 3)
    assert packed[0, 1] == (1 << 0) | (1 << 5)


# ---- work matrix -------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("skip", SKIPS)
def test_work_matrix_matches_brute_force(name, dataflow, skip):
    geo, act, weight = random_layer(name, seed=hash(name) % 1000)
    acodes, wcodes = lower_acts(act, geo), lower_weights(weight, geo)
    counts = operand_counts(acodes, wcodes)
    mapping = map_gemm(gemm_of(geo), dataflow, 2, 3)
    got = work_matrix(acodes, wcodes, counts, mapping, *skip)
    assert got.dtype == np.int32
    assert np.array_equal(got, naive.work_matrix(acodes, wcodes, dataflow, *skip))


@pytest.mark.parametrize("dataflow", ["weight_stationary", "input_stationary"])
@pytest.mark.parametrize("skip", SKIPS)
def test_work_matrix_of_a_split_stream(dataflow, skip):
    geo, act, weight = random_layer("grouped", seed=5)
    acodes, wcodes = lower_acts(act, geo), lower_weights(weight, geo)
    counts = operand_counts(acodes, wcodes)
    whole = map_gemm(gemm_of(geo), dataflow, 2, 2)
    split = map_gemm(gemm_of(geo), dataflow, 2, 2, psum_capacity_bytes=16, acc_bits=32)
    assert split.chunk_steps == 2 and split.chunks == -(-whole.T // 2) > 1
    got = work_matrix(acodes, wcodes, counts, split, *skip)
    assert got.shape == (geo.groups * split.chunks,) + (split.Sr, split.Sc)
    ref = naive.work_matrix(acodes, wcodes, dataflow, *skip)
    for g in range(geo.groups):
        chunks = got[g * split.chunks:(g + 1) * split.chunks]
        assert np.array_equal(chunks.sum(axis=0), ref[g])
        for c in range(split.chunks):
            t0, t1 = 2 * c, min(whole.T, 2 * c + 2)
            if dataflow == "weight_stationary":
                part = naive.work_matrix(acodes[g:g + 1, t0:t1], wcodes[g:g + 1], dataflow, *skip)
            else:
                part = naive.work_matrix(acodes[g:g + 1], wcodes[g:g + 1, t0:t1], dataflow, *skip)
            assert np.array_equal(chunks[c], part[0])


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_effectual_count_matches_convolution(name):
    geo, act, weight = random_layer(name, 0.6, 0.4, seed=3)
    counts = operand_counts(lower_acts(act, geo), lower_weights(weight, geo))
    assert counts.effectual == naive.effectual_pairs(act, weight, geo)
    assert counts.act_nonzero + counts.act_zero + counts.act_pad == \
        geo.groups * geo.P * geo.Q * geo.c_per_group * geo.R * geo.S


# ---- fold schedule -----------------------------------------------------------------------

def _schedule_case(seed, shape, lanes, rows, cols):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 9, size=shape).astype(np.int32)


@pytest.mark.parametrize("sync", SYNCS)
@pytest.mark.parametrize("depth", [1, 2, 5])
@pytest.mark.parametrize("rows,cols,lanes,overhead", [(1, 1, 1, 0), (2, 3, 1, 3), (1, 4, 2, 1),
                                                      (3, 2, 3, 0)])
def test_fold_schedule_matches_reference(sync, depth, rows, cols, lanes, overhead):
    work = _schedule_case(rows * 10 + cols, (2, 5, 7), lanes, rows, cols)
    work[0, 0, :] = 0  # some PEs with no work at all
    for gate, threshold in ((False, 1), (True, 1), (True, 4)):
        got = sch.fold_schedule(sch.as_work(work), rows, cols, lanes, overhead, sync, depth, gate, threshold)
        ref = naive.schedule(work, rows, cols, lanes, overhead, sync, depth, gate, threshold)
        assert got[sch.ST_CYCLES] == ref["cycles"]
        assert got[sch.ST_FOLDS] == ref["folds"]
        assert got[sch.ST_SUM_MAX_BUSY] == ref["sum_max_busy"]
        assert got[sch.ST_SUM_MEAN_BUSY] == pytest.approx(ref["sum_mean_busy"])
        assert got[sch.ST_BUSY_PE_CYCLES] == ref["busy_pe_cycles"]
        assert got[sch.ST_ACTIVE_PE_CYCLES] == ref["active_pe_cycles"]
        assert got[sch.ST_GATED_PE_CYCLES] == ref["gated_pe_cycles"]
        assert got[sch.ST_WAKEUPS] == ref["wakeups"]
        assert got[sch.ST_MAPPED_PE_FOLDS] == ref["mapped_pe_folds"]
        assert got[sch.ST_FILL_DRAIN] == ref["fill_drain"]
        assert got[sch.ST_ISSUED] == int(work.astype(np.int64).sum())


def test_fold_schedule_sync_depth_limits():
    """depth 1 == lock-step array sync; a huge depth == fully independent groups."""
    work = _schedule_case(7, (1, 6, 4), 1, 2, 2)
    lock = sch.fold_schedule(sch.as_work(work), 2, 2, 1, 2, sch.SYNC_ARRAY, 1, False, 1)[sch.ST_CYCLES]
    for sync in (sch.SYNC_ROW, sch.SYNC_COLUMN, sch.SYNC_DECOUPLED):
        assert sch.fold_schedule(sch.as_work(work), 2, 2, 1, 2, sync, 1, False, 1)[sch.ST_CYCLES] == lock
        free = sch.fold_schedule(sch.as_work(work), 2, 2, 1, 2, sync, 10 ** 6, False, 1)[sch.ST_CYCLES]
        ref = naive.folds_of(work, 2, 2, 1)
        per_group: dict = {}
        for busy in ref:
            gb: dict = {}
            for (i, j), b in busy.items():
                s = naive.group_of(sync, i, j, 2)
                gb[s] = max(gb.get(s, 0), b)
            for s in range({1: 2, 2: 2, 3: 4}[sync]):
                per_group[s] = per_group.get(s, 0) + 2 + gb.get(s, 0)
        assert free == max(per_group.values())
        assert free <= lock


def test_fold_schedule_all_zero_work():
    work = np.zeros((1, 4, 4), dtype=np.int32)
    stats = sch.fold_schedule(sch.as_work(work), 2, 2, 1, 3, sch.SYNC_ARRAY, 2, True, 1)
    assert stats[sch.ST_CYCLES] == 4 * 3  # fill/drain only
    assert stats[sch.ST_BUSY_PE_CYCLES] == 0
    assert stats[sch.ST_GATED_PE_CYCLES] == 4 * 12  # every PE idle the whole layer, gated once
    assert stats[sch.ST_WAKEUPS] == 4


# ---- cycle kernel ------------------------------------------------------------------------

def _cycle_inputs(name, dataflow, skip, rows, cols, seed=0, density=0.5, psum_capacity=None):
    geo, act, weight = random_layer(name, density, 0.5, seed=seed)
    acodes, wcodes = lower_acts(act, geo), lower_weights(weight, geo)
    mapping = map_gemm(gemm_of(geo), dataflow, rows, cols, psum_capacity, acc_bits=32)
    work = work_matrix(acodes, wcodes, operand_counts(acodes, wcodes), mapping, *skip)
    return acodes, wcodes, work, mapping


@pytest.mark.parametrize("name,psum_capacity", [("padded", None), ("grouped", 40),
                                                ("linear", None)])
@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("sync,depth", [(sch.SYNC_ARRAY, 1), (sch.SYNC_ROW, 2),
                                        (sch.SYNC_COLUMN, 3), (sch.SYNC_DECOUPLED, 2)])
@pytest.mark.parametrize("skip", SKIPS)
def test_cycle_kernel_matches_reference(name, psum_capacity, dataflow, sync, depth, skip):
    rows, cols, lanes = 2, 3, 2
    acodes, wcodes, work, m = _cycle_inputs(name, dataflow, skip, rows, cols,
                                            psum_capacity=psum_capacity)
    a_cost = np.array([0.0, 9.0, 0.0])
    w_cost = np.array([8.0, 8.0])
    for bw, qdepth in ((0.0, 0), (24.0, 2), (40.0, 1), (7.0, 3)):
        args = (acodes, wcodes, work, m.code, m.chunk_steps, skip[0], skip[1], rows, cols,
                lanes, m.fill, m.drain, sync, depth, qdepth, bw, a_cost, w_cost, 16.0, 8.0)
        got = _cycle(*args)
        ref = naive.cycle(acodes, wcodes, work, dataflow, m.chunk_steps, skip[0], skip[1], rows,
                          cols, lanes, m.fill, m.drain, sync, depth, qdepth, bw, a_cost, w_cost,
                          16.0, 8.0)
        assert got[CY_CYCLES] == ref["cycles"], (bw, qdepth)
        assert got[CY_STARVED] == ref["starved"]
        assert got[CY_WRITE_STALL] == ref["write_stall"]
        assert got[CY_BLOCKED] == ref["blocked"]
        assert got[CY_GLB_BITS] == pytest.approx(ref["glb_bits"])
        assert got[CY_PAIRS] == ref["pairs"] == work.sum()


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("density", [0.0, 1.0])
@pytest.mark.parametrize("rows,cols,lanes,sync", [(1, 1, 1, sch.SYNC_ARRAY),
                                                  (1, 4, 3, sch.SYNC_COLUMN),
                                                  (4, 1, 1, sch.SYNC_DECOUPLED)])
def test_cycle_kernel_edge_cases_match_reference(dataflow, density, rows, cols, lanes, sync):
    acodes, wcodes, work, m = _cycle_inputs("strided", dataflow, (True, True), rows, cols,
                                            density=density)
    for bw, qdepth in ((0.0, 0), (12.0, 1)):
        got = _cycle(acodes, wcodes, work, m.code, m.chunk_steps, True, True, rows, cols,
                             lanes, m.fill, m.drain, sync, 2, qdepth, bw,
                             np.array([0.0, 8.0, 0.0]), np.array([0.0, 8.0]), 16.0, 8.0)
        ref = naive.cycle(acodes, wcodes, work, dataflow, m.chunk_steps, True, True, rows, cols,
                          lanes, m.fill, m.drain, sync, 2, qdepth, bw,
                          np.array([0.0, 8.0, 0.0]), np.array([0.0, 8.0]), 16.0, 8.0)
        assert got[CY_CYCLES] == ref["cycles"]
        assert got[CY_GLB_BITS] == pytest.approx(ref["glb_bits"])
        assert got[CY_PAIRS] == ref["pairs"] == work.sum()


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("sync", SYNCS)
@pytest.mark.parametrize("rows,cols,lanes", [(1, 1, 1), (1, 4, 1), (3, 2, 2), (4, 4, 1)])
def test_cycle_unbounded_equals_schedule(dataflow, sync, rows, cols, lanes):
    for name, skip, capacity in (("strided", (True, True), None),
                                 ("depthwise", (True, False), None),
                                 ("padded", (False, True), 20), ("linear", (False, False), 12),
                                 ("grouped", (True, True), 30)):
        acodes, wcodes, work, m = _cycle_inputs(name, dataflow, skip, rows, cols, seed=rows,
                                                psum_capacity=capacity)
        for depth in (1, 3):
            fast = sch.fold_schedule(sch.as_work(work), rows, cols, lanes, m.overhead, sync, depth, False, 1)
            cyc = _cycle(acodes, wcodes, work, m.code, m.chunk_steps, skip[0], skip[1],
                                 rows, cols, lanes, m.fill, m.drain, sync, depth, 0, 0.0,
                                 np.array([8.0, 8.0, 0.0]), np.array([8.0, 8.0]), 32.0, 8.0)
            assert cyc[CY_CYCLES] == fast[sch.ST_CYCLES]
            assert cyc[CY_STARVED] == 0 and cyc[CY_BLOCKED] == 0


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("psum_capacity", [None, 30])
def test_port_bits_of_kernel_equal_analytic_traffic(dataflow, skip, psum_capacity):
    """traffic.operand_bits (fast) == bits the cycle kernel moves, in every leader/follower case."""
    acodes, wcodes, work, m = _cycle_inputs("grouped", dataflow, skip, 2, 3, seed=8,
                                            density=0.3, psum_capacity=psum_capacity)
    a_cost, w_cost = np.array([0.0, 11.0, 0.0]), np.array([8.0, 8.0])
    act, weight = operand_bits(acodes, wcodes, operand_counts(acodes, wcodes), m, *skip, a_cost,
                               w_cost)
    geo = LayerGeometry(**GEOMETRIES["grouped"])
    tr = layer_traffic(gemm_of(geo), m, act, weight, 8, 8, 24, 0.0)
    cyc = _cycle(acodes, wcodes, work, m.code, m.chunk_steps, skip[0], skip[1], 2, 3, 1,
                         m.fill, m.drain, sch.SYNC_ARRAY, 1, 0, 0.0, a_cost, w_cost, 24.0, 8.0)
    assert cyc[CY_GLB_BITS] == pytest.approx(tr.array_bits)


def test_cycle_bounded_never_faster_than_bounds():
    acodes, wcodes, work, m = _cycle_inputs("strided", "output_stationary", (True, True), 2, 2)
    fast = sch.fold_schedule(sch.as_work(work), 2, 2, 1, m.overhead, sch.SYNC_DECOUPLED, 2, False, 1)
    for bw in (4.0, 16.0, 64.0):
        cyc = _cycle(acodes, wcodes, work, m.code, m.chunk_steps, True, True, 2, 2, 1,
                             m.fill, m.drain, sch.SYNC_DECOUPLED, 2, 1, bw,
                             np.array([0.0, 8.0, 0.0]), np.array([0.0, 8.0]), 32.0, 8.0)
        assert cyc[CY_CYCLES] >= fast[sch.ST_CYCLES]
        assert cyc[CY_CYCLES] >= np.ceil(cyc[CY_GLB_BITS] / bw)


# ---- packed lowering (issue 14: no byte-per-element im2col on the hot path) --------------

PACKED_GEOMETRIES = dict(GEOMETRIES, **{
    "wide": dict(kind="conv2d", N=1, C=33, H=4, W=5, K=3, R=2, S=2, stride_h=2, pad_w=1),
    "single": dict(kind="conv2d", N=1, C=1, H=1, W=1, K=1, R=1, S=1),
    "odd": dict(kind="conv2d", N=1, C=5, H=7, W=3, K=2, R=3, S=1, stride_w=2, pad_h=2,
                dil_h=2),
    "long_linear": dict(kind="linear", N=1, C=130, H=2, W=1, K=3),
})


def _packed_case(name, density, seed=0):
    geo = LayerGeometry(**PACKED_GEOMETRIES[name])
    rng = np.random.default_rng(seed)
    return geo, rng.random(geo.act_shape[1:]) < density


@pytest.mark.parametrize("name", sorted(PACKED_GEOMETRIES))
@pytest.mark.parametrize("density", [0.0, 0.4, 1.0])
def test_pack_im2col_matches_reference(name, density):
    from accelsim.sim.kernels.packed import pack_im2col, pad_columns

    geo, act = _packed_case(name, density, seed=len(name))
    bits, row, col = pack_im2col(act, geo.groups, geo.R, geo.S, geo.P, geo.Q, geo.stride_h,
                                 geo.stride_w, geo.pad_h, geo.pad_w, geo.dil_h, geo.dil_w)
    ref_rows, ref_row, ref_col = naive.packed_im2col(act, geo)
    kred = geo.c_per_group * geo.R * geo.S
    assert bits.shape == (geo.groups, geo.P * geo.Q, (kred + 63) // 64)
    assert bits.dtype == np.uint64 and row.dtype == np.int64 and col.dtype == np.int64
    for g in range(geo.groups):
        assert [naive.words_to_int(w) for w in bits[g]] == ref_rows[g]
    assert row.tolist() == ref_row and col.tolist() == ref_col
    assert pad_columns(geo).tolist() == naive.pad_positions(geo)


@pytest.mark.parametrize("name", sorted(PACKED_GEOMETRIES))
def test_packed_acts_equal_packed_codes(name):
    """The packed path gives the AND + popcount kernel the very words and counts of the codes."""
    from accelsim.sim.kernels.im2col import code_counts
    from accelsim.sim.lower import pack_acts

    geo, act = _packed_case(name, 0.5, seed=3)
    packed = pack_acts(act, geo)
    codes = naive.im2col(act, geo)
    for g in range(geo.groups):
        assert np.array_equal(packed.bits[g], pack_equal_rows(codes[g], 1))
    col, row, col_zero, pads = code_counts(codes)
    assert np.array_equal(packed.col_a, col) and np.array_equal(packed.row_a, row)
    assert np.array_equal(geo.P * geo.Q - packed.col_a - packed.pad_col[None, :], col_zero)
    assert int(packed.pad_col.sum()) * geo.groups == int(pads.sum())
    assert np.array_equal(packed.nonzero(), codes == 1)
    assert np.array_equal(packed.codes(), codes)
    for size in (1, 2, 3, 7):
        blocks = -(-codes.shape[1] // size)
        want = np.zeros((geo.groups, blocks, codes.shape[2]), dtype=bool)
        for m in range(codes.shape[1]):
            want[:, m // size] |= codes[:, m] == 1
        assert np.array_equal(packed.fold_any(size), want)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("skip", SKIPS)
def test_packed_operands_give_the_reference_work_counts_and_bits(name, dataflow, skip):
    from accelsim.sim.lower import PackedWeights, pack_acts
    from accelsim.sim.work import packed_counts

    geo, act, weight = random_layer(name, seed=hash(name) % 1000)
    acodes, wcodes = naive.im2col(act, geo), lower_weights(weight, geo)
    ref = operand_counts(acodes, wcodes)
    pa, pw = pack_acts(act, geo), PackedWeights(wcodes)
    got = packed_counts(pa, wcodes)
    for field in ("act_nonzero", "act_zero", "act_pad", "weight_nonzero", "weight_zero",
                  "effectual"):
        assert getattr(got, field) == getattr(ref, field), field
    for field in ("col_a", "row_a", "row_w", "col_w", "col_a_zero"):
        assert np.array_equal(getattr(got, field), getattr(ref, field)), field
    for rows, cols, glb in ((2, 3, None), (1, 1, None), (3, 2, 40.0)):
        mapping = map_gemm(gemm_of(geo), dataflow, rows, cols, glb)
        work = work_matrix(pa, pw, got, mapping, *skip)
        assert work.dtype == np.int32
        assert np.array_equal(work, work_matrix(acodes, wcodes, ref, mapping, *skip))
        if mapping.chunks == 1:
            assert np.array_equal(work, naive.work_matrix(acodes, wcodes, dataflow, *skip))
        costs = (np.array([3.0, 8.0, 0.0]), np.array([1.5, 9.0]))
        assert operand_bits(pa, pw, got, mapping, *skip, *costs) == operand_bits(
            acodes, wcodes, ref, mapping, *skip, *costs)


def _random_geometry(rng):
    """A random conv geometry: odd sizes, padding up to beyond the kernel, stride, dilation,
    groups, channels crossing 64-bit words."""
    while True:
        groups = int(rng.integers(1, 4))
        cg = int(rng.choice([1, 2, 5, 13, 64, 71]))
        r, s = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        fields = dict(kind="conv2d" if groups == 1 else "grouped_conv2d", N=1, C=cg * groups,
                      H=int(rng.integers(1, 12)), W=int(rng.integers(1, 12)),
                      K=groups * int(rng.integers(1, 3)), R=r, S=s, groups=groups,
                      stride_h=int(rng.integers(1, 4)), stride_w=int(rng.integers(1, 4)),
                      pad_h=int(rng.integers(0, 5)), pad_w=int(rng.integers(0, 5)),
                      dil_h=int(rng.integers(1, 4)), dil_w=int(rng.integers(1, 4)))
        try:
            geo = LayerGeometry(**fields)
        except Exception:   # no output pixel for these sizes: draw again
            continue
        if geo.P >= 1 and geo.Q >= 1:
            return geo


@pytest.mark.parametrize("seed", range(40))
def test_pack_im2col_random_geometries_match_reference(seed):
    """Phase-plane lowering (issue 15) equals the definition on random geometries, for random,
    all-zero and all-one masks."""
    from accelsim.sim.kernels.packed import pack_im2col

    rng = np.random.default_rng(1000 + seed)
    geo = _random_geometry(rng)
    shape = geo.act_shape[1:]
    for act in (rng.random(shape) < rng.random(), np.zeros(shape, bool), np.ones(shape, bool)):
        bits, row, col = pack_im2col(act, geo.groups, geo.R, geo.S, geo.P, geo.Q, geo.stride_h,
                                     geo.stride_w, geo.pad_h, geo.pad_w, geo.dil_h, geo.dil_w)
        ref_rows, ref_row, ref_col = naive.packed_im2col(act, geo)
        for g in range(geo.groups):
            assert [naive.words_to_int(w) for w in bits[g]] == ref_rows[g], geo
        assert row.tolist() == ref_row and col.tolist() == ref_col, geo


@pytest.mark.parametrize("seed", range(24))
def test_fold_schedule_without_gating_random_cases(seed):
    """The one-pass no-gating path (array and per-PE sync, issue 15) equals the reference on
    random shapes: edge folds, a single PE, lanes > 1, all-zero and constant work."""
    rng = np.random.default_rng(2000 + seed)
    rows, cols = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    if seed % 6 == 0:
        rows = cols = 1
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 13)), int(rng.integers(1, 13)))
    lanes, overhead, depth = int(rng.integers(1, 4)), int(rng.integers(0, 4)), int(rng.integers(1, 6))
    cases = (rng.integers(0, 20, size=shape), np.zeros(shape), np.full(shape, 7))
    for work in cases:
        work = work.astype(np.int32)
        for sync in (sch.SYNC_ARRAY, sch.SYNC_DECOUPLED):
            got = sch.fold_schedule(sch.as_work(work), rows, cols, lanes, overhead, sync, depth, False, 1)
            ref = naive.schedule(work, rows, cols, lanes, overhead, sync, depth, False, 1)
            assert got[sch.ST_CYCLES] == ref["cycles"]
            assert got[sch.ST_FOLDS] == ref["folds"]
            assert got[sch.ST_SUM_MAX_BUSY] == ref["sum_max_busy"]
            assert got[sch.ST_SUM_MEAN_BUSY] == pytest.approx(ref["sum_mean_busy"], rel=1e-12)
            assert got[sch.ST_BUSY_PE_CYCLES] == ref["busy_pe_cycles"]
            assert got[sch.ST_ACTIVE_PE_CYCLES] == ref["active_pe_cycles"]
            assert got[sch.ST_GATED_PE_CYCLES] == 0 and got[sch.ST_WAKEUPS] == 0
            assert got[sch.ST_MAPPED_PE_FOLDS] == ref["mapped_pe_folds"]
            assert got[sch.ST_FILL_DRAIN] == ref["fill_drain"]


@pytest.mark.parametrize("width", [0, 1, 7, 8, 9, 63, 64, 65, 1000])
def test_count_packed_rows_ignores_pad_bits(width):
    """Non-zeros per packed row == the unpacked row's sum, with every pad bit set."""
    from accelsim.sim.kernels.bitops import count_packed_rows

    rng = np.random.default_rng(width)
    masks = rng.random((5, width)) < 0.4
    masks[0] = True
    masks[1] = False
    packed = np.packbits(masks, axis=1) if width else np.zeros((5, 0), dtype=np.uint8)
    if width % 8:
        packed[:, -1] |= np.uint8((1 << (8 - width % 8)) - 1)   # garbage in the pad bits
    want = [int(row.sum()) for row in masks]
    assert count_packed_rows(packed, width).tolist() == want


def test_and_popcount_into_writes_one_group_of_a_work_matrix():
    """Written in place into a view (one conv group of a 3-D work matrix), neighbours untouched."""
    from accelsim.sim.kernels.bitops import and_popcount_into

    rng = np.random.default_rng(5)
    a = rng.random((2, 7, 130)) < 0.5
    b = rng.random((2, 5, 130)) < 0.5
    work = np.full((2, 7, 5), -1, dtype=np.int32)
    and_popcount_into(pack_equal_rows(a[1].view(np.uint8), 1),
                      pack_equal_rows(b[1].view(np.uint8), 1), work[1])
    assert np.array_equal(work[1], naive.and_count(a[1], b[1]))
    assert (work[0] == -1).all()


@pytest.mark.parametrize("sync", SYNCS)
@pytest.mark.parametrize("gate", [False, True])
def test_uniform_fold_stats_equal_the_recurrence_on_the_full_array(sync, gate):
    """The closed form (and the gated cache) == fold_schedule of the np.full work array."""
    rng = np.random.default_rng(sync * 2 + gate)
    for _ in range(25):
        rows, cols = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        ys, xs = int(rng.integers(1, rows + 1)), int(rng.integers(1, cols + 1))
        steps, work = int(rng.integers(0, 7)), int(rng.integers(0, 9))
        lanes, overhead, depth = int(rng.integers(1, 4)), int(rng.integers(0, 3)), int(rng.integers(1, 4))
        threshold = int(rng.integers(1, 6))
        full = np.full((steps, ys, xs), work, dtype=np.int64)
        want = sch.fold_schedule(full, rows, cols, lanes, overhead, sync, depth, gate, threshold)
        got = sch.uniform_fold_stats(steps, ys, xs, work, rows, cols, lanes, overhead, sync,
                                     depth, gate, threshold)
        np.testing.assert_array_equal(got, want)


def test_uniform_fold_stats_refuse_a_block_wider_than_the_array():
    with pytest.raises(ValueError):
        sch.uniform_fold_stats(3, 5, 2, 4, 4, 4, 1, 0, sch.SYNC_ARRAY, 1, False, 1)
