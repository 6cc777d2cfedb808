"""The SCALE-Sim comparison pipeline (benchmarks/vs_scalesim/compare*.py) on recorded runs.

Recorded SCALE-Sim 3.0.0 runs live in tests/fixtures/scalesim/. These tests run the benchmark's
own accelsim setup (statistical trace of the topology CSV at density 1.0, dense hardware twin)
and check, with SCALE-Sim's stated off-by-one (it reports the 0-based index of the last cycle, so
accelsim = SCALE-Sim Total Cycles + 1 per layer):

- dense LeNet-5 on 8x8, 16x16 and 32x32 for os/ws/is, and the recorded ResNet-18 layers on
  32x32, equal SCALE-Sim exactly;
- formulas.py equals every recorded run (cycles, folds, SRAM counts, sparse storage);
- in N:M sparse mode, accelsim's compacted layer equals SCALE-Sim, zero-weight skipping equals it
  in os and gives no speedup in ws (the modelling difference docs/validation.md explains).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
VS = ROOT / "benchmarks" / "vs_scalesim"
FIXTURES = ROOT / "tests" / "fixtures" / "scalesim"
sys.path.insert(0, str(VS))

import compare  # noqa: E402
import compare_nm  # noqa: E402
import verify_formulas  # noqa: E402
import vs_accelsim  # noqa: E402
import vs_scalesim_runs as ss_runs  # noqa: E402

ARRAYS = (8, 16, 32)
DATAFLOWS = ("os", "ws", "is")


@pytest.fixture(scope="module")
def lenet5():
    return vs_accelsim.topology_layers(vs_accelsim.TOPOLOGIES / "lenet5.csv")


def _recorded(case, names):
    return ss_runs.obtain(case, names, use_recorded=True, live=False, recorded_dirs=[FIXTURES],
                          save_dir=None)


@pytest.mark.parametrize("size", ARRAYS)
@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_lenet5_dense_cycles_equal_recorded_scalesim(lenet5, size, dataflow):
    case = ss_runs.Case(vs_accelsim.TOPOLOGIES / "lenet5.csv", size, size, dataflow)
    scalesim = _recorded(case, lenet5.names)
    assert scalesim.sources == {"recorded"}
    result = compare.compare_case(case, lenet5, scalesim, repeats=1)
    for row in result.layers:
        assert row["diff_cycles"] == vs_accelsim.SCALESIM_OFFSET, row
        assert row["rel_diff"] == 0.0 and row["within_tolerance"]
    totals = result.totals
    assert totals["diff_cycles"] == len(lenet5.names)
    assert totals["rel_diff"] == 0.0 and totals["within_tolerance"]
    assert totals["scalesim_wall_s"] > 0 and totals["speed_ratio_wall"] > 1


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_resnet18_recorded_layers_equal_scalesim_on_32x32(dataflow):
    doc = json.loads((FIXTURES / f"resnet18_layers_{dataflow}_32x32.json").read_text())
    recorded = {rec["name"]: rec["total_cycles"] for rec in doc["layers"]}
    full = vs_accelsim.topology_layers(vs_accelsim.TOPOLOGIES / "resnet18.csv")
    subset = vs_accelsim.TopologyLayers([l for l in full.layers if l.name in recorded], {})
    hw = vs_accelsim.dense_hw(32, 32, dataflow)
    run = vs_accelsim.run_accelsim(subset.layers, hw, repeats=1)
    assert [row["name"] for row in run.layers] == list(recorded)
    for row in run.layers:
        assert row["compute_cycles"] == recorded[row["name"]] + vs_accelsim.SCALESIM_OFFSET


def test_obtain_mixes_recorded_and_formula_and_times_only_recorded_layers():
    full = vs_accelsim.topology_layers(vs_accelsim.TOPOLOGIES / "resnet18.csv")
    case = ss_runs.Case(vs_accelsim.TOPOLOGIES / "resnet18.csv", 32, 32, "os")
    run = _recorded(case, full.names)
    doc = json.loads((FIXTURES / "resnet18_layers_os_32x32.json").read_text())
    assert run.timed == [rec["name"] for rec in doc["layers"]
                         if rec["name"] in run.timed] and len(run.timed) == 7
    assert {run.layers[n].source for n in full.names if n not in run.timed} == {"formula"}
    assert run.wall_s == doc["wall_s"] and run.layer_wall_s == doc["layer_wall_s_sum"]
    # formula figures agree with what SCALE-Sim recorded where both exist
    for name in run.timed:
        assert ss_runs.formula_layer(case, name).total_cycles == run.layers[name].total_cycles


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_formulas_equal_every_recorded_run(path):
    doc = json.loads(path.read_text())
    for rec in doc["layers"]:
        assert verify_formulas.compare(doc, rec) == [], rec["name"]


@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_nm_compacted_layer_equals_scalesim_sparse_mode(lenet5, dataflow):
    path = vs_accelsim.TOPOLOGIES / "lenet5.csv"
    dense = _recorded(ss_runs.Case(path, 8, 8, dataflow), lenet5.names)
    sparse = _recorded(ss_runs.Case(path, 8, 8, dataflow, (2, 4)), lenet5.names)
    assert sparse.sources == {"recorded"}
    res = compare_nm.compare_nm_case(ss_runs.Case(path, 8, 8, dataflow, (2, 4)), lenet5, dense,
                                     sparse)
    assert res["totals"]["compacted_equals_scalesim"]
    for row in res["layers"]:
        assert row["dense"] == row["scalesim_dense"] + 1
        if dataflow == "os":  # the reduction is the stream: per-PE skipping == compaction
            assert row["skip_scalesim_pattern"] == row["scalesim_nm"] + 1
            assert row["skip_random_nm"] == row["scalesim_nm"] + 1
        elif dataflow == "ws":  # a zero weight idles its PE; the fold still runs all pixels
            assert row["skip_scalesim_pattern"] == row["dense"]
            assert row["skip_random_nm"] == row["dense"]
        else:  # is: SCALE-Sim's pattern zeroes whole window rows, so no PE's stream shrinks
            assert row["skip_scalesim_pattern"] == row["dense"]
            assert row["skip_random_nm"] <= row["dense"]
    assert res["totals"]["speedup_scalesim"] > 1.7


def test_nm_compaction_with_partial_blocks_equals_3of8_recording():
    topo = vs_accelsim.topology_layers(vs_accelsim.TOPOLOGIES / "lenet5.csv")
    doc = json.loads((FIXTURES / "lenet5_3of8_ellpack_block_ws_16x16.json").read_text())
    hw = vs_accelsim.dense_hw(16, 16, "ws")
    layers = [vs_accelsim.compacted_layer(l, 3, 8) for l in topo.layers]
    run = vs_accelsim.run_accelsim(layers, hw, repeats=1)
    assert [r["compute_cycles"] for r in run.layers] == \
        [rec["total_cycles"] + 1 for rec in doc["layers"]]


@pytest.mark.parametrize("pattern", ["scalesim", "random"])
@pytest.mark.parametrize("n,m", [(2, 4), (3, 8), (1, 3)])
def test_nm_weight_mask_keeps_n_of_every_m_window_positions(pattern, n, m):
    from accelsim.trace import LayerGeometry

    geo = LayerGeometry(kind="conv2d", N=1, C=5, H=6, W=6, K=7, R=3, S=3)
    mask = vs_accelsim.nm_weight_mask(geo, n, m, pattern, seed=3)
    assert mask.shape == (7, 5, 3, 3)
    win = vs_accelsim.window_index(geo)
    wn = 45
    for k in range(7):
        by_window = np.zeros(wn, dtype=bool)
        by_window[win.ravel()] = mask[k].ravel()
        for start in range(0, wn, m):
            block = by_window[start:start + m]
            assert block.sum() == min(n, len(block))
        assert by_window.sum() == vs_accelsim.effective_window(wn, n, m)
    same_everywhere = all((mask[k] == mask[0]).all() for k in range(7))
    assert same_everywhere == (pattern == "scalesim")


def test_topology_notes_flag_layers_scalesim_rounds_up():
    topo = vs_accelsim.topology_layers(vs_accelsim.TOPOLOGIES / "edge_cases.csv")
    assert set(topo.notes) == {"round_up", "rect", "big_stride"}
    for name in ("lenet5", "resnet18", "alexnet"):  # the compared tables have none
        assert vs_accelsim.topology_layers(vs_accelsim.TOPOLOGIES / f"{name}.csv").notes == {}


def test_dense_hw_is_the_calc_mode_twin():
    hw = vs_accelsim.dense_hw(8, 16, "is")
    assert (hw.pe_array.rows, hw.pe_array.cols, hw.pe_array.dataflow) == \
        (8, 16, "input_stationary")
    assert not hw.has_sparsity and hw.dram.ideal and hw.pe_array.systolic
    assert all(lv.read_words_per_cycle is None for lv in hw.memory_hierarchy)
    with pytest.raises(ValueError, match="dataflow"):
        vs_accelsim.dense_hw(8, 8, "rs")


def test_compare_cli_from_fixtures_without_scalesim(tmp_path, capsys):
    out = tmp_path / "cmp.json"
    rc = compare.main(["--networks", "lenet5", "--arrays", "8", "--dataflows", "os,is",
                       "--scalesim-from-fixtures", "--no-live", "--recorded-dir", str(FIXTURES),
                       "--repeats", "1", "--json", str(out), "--markdown",
                       str(tmp_path / "cmp.md")])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert [c["totals"]["sources"] for c in doc["cases"]] == [["recorded"], ["recorded"]]
    assert "| lenet5" in capsys.readouterr().out
    assert (tmp_path / "cmp.md").read_text().startswith("## Summary")


@pytest.mark.parametrize("bad", ["8,x", "0", "8x"])
def test_compare_rejects_bad_array_sizes(bad):
    with pytest.raises(ss_runs.CompareError, match="--arrays"):
        compare.parse_arrays(bad)


def test_compare_cli_reports_usage_errors(capsys):
    assert compare.main(["--dataflows", "rs", "--no-live"]) == 2
    assert "error: --dataflows" in capsys.readouterr().err
