"""Dataflow mapping: dense cycles equal SCALE-Sim's formula; single-PE work is exact."""
from __future__ import annotations

import numpy as np
import pytest

import naive
from sim_helpers import make_hw, random_layer
from accelsim.sim import simulate
from accelsim.sim.lower import Gemm, gemm_of
from accelsim.sim.map import fill_drain, map_gemm, scalesim_compute_cycles

DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary")


def test_mapping_dimensions():
    gemm = Gemm(groups=1, M=10, Kred=9, N=6)
    os_ = map_gemm(gemm, "output_stationary", 4, 4)
    ws = map_gemm(gemm, "weight_stationary", 4, 4)
    is_ = map_gemm(gemm, "input_stationary", 4, 4)
    assert (os_.Sr, os_.Sc, os_.T, os_.row_folds, os_.col_folds) == (10, 6, 9, 3, 2)
    assert (ws.Sr, ws.Sc, ws.T, ws.row_folds, ws.col_folds) == (9, 6, 10, 3, 2)
    assert (is_.Sr, is_.Sc, is_.T, is_.row_folds, is_.col_folds) == (9, 10, 6, 3, 3)


def test_scalesim_formula_by_hand():
    gemm = Gemm(groups=1, M=10, Kred=9, N=6)
    # OS: 3 x 2 folds of (T=9) + (4 + 4 - 2)
    assert scalesim_compute_cycles(gemm, "output_stationary", 4, 4) == 6 * (9 + 6)
    # WS: 3 x 2 folds of (T=10) + (2*4 + 4 - 2)
    assert scalesim_compute_cycles(gemm, "weight_stationary", 4, 4) == 6 * (10 + 10)
    # IS: 3 x 3 folds of (T=6) + (2*4 + 4 - 2)
    assert scalesim_compute_cycles(gemm, "input_stationary", 4, 4) == 9 * (6 + 10)
    assert sum(fill_drain("output_stationary", 8, 16)) == 22
    assert sum(fill_drain("weight_stationary", 8, 16)) == 30


def test_split_stream_when_partial_sums_do_not_fit():
    gemm = Gemm(groups=1, M=100, Kred=20, N=8)
    whole = map_gemm(gemm, "weight_stationary", 4, 4, psum_capacity_bytes=None)
    assert whole.chunks == 1 and whole.folds == 5 * 2
    # 100 pixels x 4 columns x 4 bytes = 1600 bytes of partial sums; 640 bytes fit 40 steps
    split = map_gemm(gemm, "weight_stationary", 4, 4, psum_capacity_bytes=640, acc_bits=32)
    assert (split.chunk_steps, split.chunks, split.folds) == (40, 3, 3 * 10)
    # one row fold (the reduction fits the rows) needs no partial-sum tile: never split
    short = map_gemm(Gemm(1, 100, 4, 8), "weight_stationary", 4, 4, psum_capacity_bytes=1)
    assert short.chunks == 1
    # output stationary keeps partial sums in the PEs: never split
    assert map_gemm(gemm, "output_stationary", 4, 4, psum_capacity_bytes=1).chunks == 1


@pytest.mark.parametrize("dataflow", ["output_stationary", "weight_stationary",
                                      "input_stationary"])
def test_split_stream_dense_cycles(dataflow):
    """A buffer too small for one fold's tiles cuts the stream into chunks, each its own pass
    of folds: sum over chunks of folds x (chunk + fill/drain), as SCALE-Sim splits a stream."""
    hw = make_hw(pe_array={"rows": 4, "cols": 4, "dataflow": dataflow},
                 global_buffer={"size_kib": 0.25})
    layer = random_layer(C=8, H=10, W=10, K=24, R=3, S=3, pad_h=1, pad_w=1)
    row = simulate([layer], hw).layers.iloc[0]
    gemm = gemm_of(layer.geometry)
    m = map_gemm(gemm, dataflow, 4, 4, 1 << 30, 24)      # the folds of the unsplit stream
    chunks = int(row["stream_chunks"])
    assert chunks > 1
    step = -(-m.T // chunks)
    lengths = [min(step, m.T - c * step) for c in range(-(-m.T // step))]
    expected = sum(m.row_folds * m.col_folds * (t + m.overhead) for t in lengths)
    assert row["compute_cycles"] == expected
    assert row["folds"] == m.row_folds * m.col_folds * len(lengths)


LAYERS = [
    dict(C=3, H=12, W=12, K=8, R=3, S=3),
    dict(C=16, H=8, W=8, K=24, R=3, S=3),
    dict(C=6, H=10, W=10, K=16, R=5, S=5),
    dict(C=32, H=4, W=4, K=10, R=1, S=1),
    dict(C=64, H=1, W=1, K=10, R=1, S=1, kind="linear"),
]


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("rows,cols", [(4, 4), (8, 4), (3, 5), (1, 8), (16, 16)])
@pytest.mark.parametrize("sync", ["array", "row", "decoupled"])
def test_dense_ideal_cycles_equal_scalesim(dataflow, rows, cols, sync):
    hw = make_hw(pe_array={"rows": rows, "cols": cols, "dataflow": dataflow, "sync": sync,
                           "work_queue_depth": 3})
    layers = [random_layer(f"l{i}", index=i, seed=i, **geo) for i, geo in enumerate(LAYERS)]
    res = simulate(layers, hw)
    for layer, row in zip(layers, res.layers.to_dict(orient="records")):
        expected = scalesim_compute_cycles(gemm_of(layer.geometry), dataflow, rows, cols)
        assert row["compute_cycles"] == expected, layer.name
        assert row["macs_issued"] == row["macs_dense"]
        assert row["load_imbalance"] == 1.0 or row["load_imbalance"] == pytest.approx(1.0)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("geometry", [
    dict(C=3, H=7, W=6, K=4, R=3, S=3, pad_h=1, pad_w=1),
    dict(C=4, H=9, W=9, K=4, R=3, S=3, stride_h=2, stride_w=2, pad_h=1, pad_w=1, groups=2,
         kind="grouped_conv2d"),
    dict(C=4, H=6, W=6, K=4, R=3, S=3, pad_h=1, pad_w=1, groups=4, kind="depthwise_conv2d"),
    dict(C=3, H=8, W=8, K=2, R=2, S=3, dil_h=2, dil_w=2),
])
def test_single_pe_both_skips_counts_effectual_macs(dataflow, geometry):
    hw = make_hw(pe_array={"rows": 1, "cols": 1, "dataflow": dataflow},
                 sparsity={"skip_zero_activations": True, "skip_zero_weights": True,
                           "skip_padding": True})
    layer = random_layer(density_a=0.45, density_w=0.35, seed=9, N=2, **geometry)
    res = simulate([layer], hw)
    row = res.layers.iloc[0]
    acts, weights = layer.act_mask(), layer.weight_mask()
    effectual = np.mean([naive.effectual_pairs(acts[n], weights, layer.geometry)
                         for n in range(2)])
    assert row["compute_cycles"] - row["fill_drain_cycles"] == effectual
    if dataflow == "output_stationary":  # a 1x1 OS array has no fill or drain
        assert row["compute_cycles"] == effectual
    assert row["macs_issued"] == row["macs_effectual"] == effectual
