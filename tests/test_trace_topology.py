"""SCALE-Sim topology layouts: convolution rows, DP (depthwise) rows and GEMM files."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from accelsim.errors import ConfigError
from accelsim.hw import load_hw_dict
from accelsim.sim import simulate
from accelsim.trace import open_trace, statistical_from_topology
from accelsim.trace.topology import read_topology

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "vs_scalesim"))
from formulas import ScaleSimLayer, scalesim_cycles  # noqa: E402

HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topo.csv"
    path.write_text(text)
    return path


def test_gemm_topology_is_a_linear_layer(tmp_path: Path) -> None:
    layers, notes = read_topology(_csv(tmp_path, "Layer, M, N, K,\ngemm1, 64, 128, 256,\n"))
    g = layers[0].geometry
    assert (g.kind, g.H, g.W, g.C, g.K) == ("linear", 64, 1, 256, 128)
    assert g.macs_per_sample == 64 * 128 * 256 and notes == []


def test_four_columns_without_a_gemm_header_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GEMM topology needs the header"):
        read_topology(_csv(tmp_path, HEADER + "a, 1, 2, 3,\n"))


def test_nm_column_gives_structured_weight_masks(tmp_path: Path) -> None:
    header = HEADER.rstrip(",\n") + ", Sparsity,\n"
    csv = _csv(tmp_path, header + "conv1, 8, 8, 3, 3, 5, 8, 1, 2:4,\nconv2, 6, 6, 3, 3, 8, 4, 1, 1:1,\n")
    layers, _ = read_topology(csv)
    assert [l.nm for l in layers] == [(2, 4), None]
    statistical_from_topology(csv, 0.5, 0.7, seed=3, output=tmp_path / "nm.trace")
    trace = open_trace(tmp_path / "nm.trace")
    w = trace.layer("conv1").weight_mask().reshape(8, -1)  # 45 weights per filter
    blocks = w[:, :44].reshape(8, 11, 4)
    assert (blocks.sum(axis=2) == 2).all() and (w[:, 44] == 1).all()  # last block of 1 keeps 1
    assert trace.layer("conv1").stats["weight_density"] == pytest.approx(23 / 45)
    dense_w = trace.layer("conv2").weight_mask()
    assert 0.5 < dense_w.mean() < 0.9  # the 1:1 layer follows --weight-density


@pytest.mark.parametrize("text", ["3:2", "2-4", "0:4", "a:b"])
def test_bad_nm_column(tmp_path: Path, text: str) -> None:
    header = HEADER.rstrip(",\n") + ", Sparsity,\n"
    with pytest.raises(ConfigError, match="column 'sparsity'"):
        read_topology(_csv(tmp_path, header + f"conv1, 8, 8, 3, 3, 5, 8, 1, {text},\n"))


def test_nm_weight_skipping_equals_scalesim_sparse_mode_in_os(tmp_path: Path) -> None:
    header = HEADER.rstrip(",\n") + ", Sparsity,\n"
    csv = _csv(tmp_path, header + "conv1, 14, 12, 3, 3, 7, 10, 1, 2:4,\n")
    statistical_from_topology(csv, 1.0, 1.0, seed=0, output=tmp_path / "nm.trace")
    hw = load_hw_dict({"name": "t", "technology": {"clock_mhz": 500},
                       "pe_array": {"rows": 8, "cols": 8, "dataflow": "output_stationary"},
                       "sparsity": {"skip_zero_weights": True},
                       "scratchpad": {"input_bytes": 16, "weight_bytes": 16, "psum_bytes": 4},
                       "global_buffer": {"size_kib": 1 << 20, "words_per_cycle": None},
                       "dram": {"ideal": True}})
    result = simulate(open_trace(tmp_path / "nm.trace"), hw)
    layer = ScaleSimLayer("conv1", 14, 12, 3, 3, 7, 10, 1, sparsity=(2, 4))
    expected = scalesim_cycles(layer, 8, 8, "os", sparsity_support=True).total_cycles + 1
    assert result.layers["compute_cycles"].iloc[0] == expected


def test_dp_layer_is_depthwise_like_scalesim(tmp_path: Path) -> None:
    layers, _ = read_topology(_csv(tmp_path, HEADER + "conv_DP1, 12, 12, 3, 3, 6, 1, 1,\n"))
    g = layers[0].geometry
    assert (g.kind, g.groups, g.C, g.K) == ("depthwise_conv2d", 6, 6, 6)


@pytest.mark.parametrize("dataflow, code", [("output_stationary", "os"),
                                            ("weight_stationary", "ws"),
                                            ("input_stationary", "is")])
def test_dp_layer_cycles_equal_scalesims_per_channel_split(tmp_path, dataflow, code) -> None:
    # SCALE-Sim runs a DP layer as C one-channel layers, each reported 0-based (+1 per layer).
    csv = _csv(tmp_path, HEADER + "conv_DP1, 13, 11, 3, 3, 5, 2, 1,\n")
    trace_path = tmp_path / "dp.trace"
    statistical_from_topology(csv, 1.0, 1.0, seed=0, output=trace_path)
    hw = load_hw_dict({"name": "t", "technology": {"clock_mhz": 500},
                       "pe_array": {"rows": 4, "cols": 8, "dataflow": dataflow},
                       "scratchpad": {"input_bytes": 16, "weight_bytes": 16, "psum_bytes": 4},
                       "global_buffer": {"size_kib": 1 << 20, "words_per_cycle": None},
                       "dram": {"ideal": True}})
    result = simulate(open_trace(trace_path), hw)
    sub = ScaleSimLayer("c", 13, 11, 3, 3, 1, 2, 1)
    expected = 5 * (scalesim_cycles(sub, 4, 8, code).total_cycles + 1)
    assert result.layers["compute_cycles"].iloc[0] == expected
