"""``accelsim simulate`` end to end on small trace files."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from accelsim.cli import main
from accelsim.trace import write_trace
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.records import StatisticalLayer, TraceData


def _trace(path, act_bits=8):
    layers = [
        StatisticalLayer("conv1", LayerGeometry("conv2d", N=2, C=1, H=12, W=12, K=4, R=3, S=3),
                         act_bits, 8, 0.9, 0.5),
        StatisticalLayer("conv2", LayerGeometry("conv2d", N=2, C=4, H=10, W=10, K=8, R=3, S=3,
                                                pad_h=1, pad_w=1), act_bits, 8, 0.4, 0.5),
        StatisticalLayer("fc", LayerGeometry("linear", N=2, C=32, H=1, W=1, K=10),
                         act_bits, 8, 0.5, 0.3),
    ]
    write_trace(path, TraceData(layers, {"model": "tiny"}, statistical=True, seed=1))
    return path


@pytest.fixture
def trace_file(tmp_path):
    return _trace(tmp_path / "tiny.trace")


@pytest.fixture
def hw_file(tmp_path):
    path = tmp_path / "hw.yaml"
    path.write_text("""
version: 1
name: cli-hw
technology: {clock_mhz: 400}
pe_array: {rows: 4, cols: 4, dataflow: output_stationary, sync: row, work_queue_depth: 2}
scratchpad: {input_bytes: 8, weight_bytes: 8, psum_bytes: 4}
global_buffer: {size_kib: 32, words_per_cycle: 8}
dram: {bandwidth_gb_per_s: 4}
sparsity: {skip_zero_activations: true, skip_zero_weights: true}
storage:
  activations: {format: bitmap}
""")
    return path


def test_table_totals_and_baseline(trace_file, hw_file, capsys):
    code = main(["simulate", "--trace", str(trace_file), "--hw", str(hw_file),
                 "--baseline", "dense", "--samples", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "cli-hw" in out and "conv2" in out and "speedup" in out
    assert "total:" in out and "vs dense twin" in out and "peak runtime memory" in out


def test_json_and_output_file(trace_file, hw_file, tmp_path, capsys):
    out_csv = tmp_path / "res.csv"
    code = main(["simulate", "--trace", str(trace_file), "--hw", str(hw_file), "--json",
                 "--fidelity", "cycle", "-o", str(out_csv)])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["meta"]["fidelity"] == "cycle" and data["meta"]["trace_hash"]
    assert [row["layer"] for row in data["layers"]] == ["conv1", "conv2", "fc"]
    table = pd.read_csv(out_csv)
    assert list(table["layer"]) == ["conv1", "conv2", "fc"]
    assert table["trace_hash"].iloc[0] == data["meta"]["trace_hash"]
    assert (tmp_path / "res.csv.json").exists()


def test_precision_mismatch_is_a_clean_error(tmp_path, hw_file, capsys):
    trace = _trace(tmp_path / "wide.trace", act_bits=16)
    code = main(["simulate", "--trace", str(trace), "--hw", str(hw_file)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "16-bit activations" in err
    assert "precision.activation_bits=8" in err and "Traceback" not in err


def test_missing_files_and_bad_output_name(trace_file, hw_file, tmp_path, capsys):
    assert main(["simulate", "--trace", str(tmp_path / "none.trace"), "--hw", str(hw_file)]) == 2
    assert "none.trace" in capsys.readouterr().err
    assert main(["simulate", "--trace", str(trace_file), "--hw", str(tmp_path / "x.yaml")]) == 2
    assert "x.yaml" in capsys.readouterr().err
    assert main(["simulate", "--trace", str(trace_file), "--hw", str(hw_file), "-o",
                 str(tmp_path / "r.txt")]) == 2
    assert ".csv or .parquet" in capsys.readouterr().err
