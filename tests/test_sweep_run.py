"""End-to-end sweeps on the real simulator: results, caching, resume, failures, executors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from accelsim.hw.load import load_hw
from accelsim.sim import simulate
from accelsim.sweep.cache import ResultCache
from accelsim.sweep.pareto import pareto_brute_force
from accelsim.sweep.run import run_sweep
from accelsim.sweep.spec import load_sweep_spec
from accelsim.trace import open_trace
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.records import StatisticalLayer, TraceData
from accelsim.trace.writer import write_trace

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "hw_configs" / "sparten_like.yaml"
#: the flat (systolic) form of the same design, whose scratchpad shorthand can be swept to 0
SYSTOLIC_BASE = REPO / "tests" / "fixtures" / "systolic_designs" / "sparten_like.yaml"
TRACE_LAYERS = [
    ("conv1", LayerGeometry("conv2d", N=2, C=3, H=12, W=12, K=8, R=3, S=3, pad_h=1, pad_w=1), 0.9, 0.6),
    ("conv2", LayerGeometry("conv2d", N=2, C=8, H=12, W=12, K=8, R=3, S=3, stride_h=2, stride_w=2), 0.4, 0.5),
    ("fc", LayerGeometry("linear", N=2, C=72, H=1, W=1, K=10), 0.3, 0.7),
]


def tiny_trace(path: Path, layers=TRACE_LAYERS, seed: int = 0) -> Path:
    records = [StatisticalLayer(name, g, 8, 8, act, weight) for name, g, act, weight in layers]
    write_trace(path, TraceData(records, {"model": "tiny"}, statistical=True, seed=seed))
    return path


def write_spec(folder: Path, axes: dict, traces=("tiny.trace",), **extra) -> Path:
    data = {"version": 1, "base": str(BASE), "axes": axes, "traces": list(traces), **extra}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    tiny_trace(tmp_path / "tiny.trace")
    return tmp_path


AXES = {"pe_array.rows": [2, 4], "pe_array.cols": [2, 8], "pe_array.sync": ["array", "decoupled"]}


def test_results_match_direct_simulation(folder):
    spec = load_sweep_spec(write_spec(folder, AXES, objectives=[["energy_pj", "pes"]]))
    outcome = run_sweep(spec, folder / "out", workers=1, progress=False)
    table = outcome.table
    assert len(table) == 8 and (table["status"] == "ok").all()
    assert outcome.computed == 8 and outcome.cached == 0
    trace = open_trace(folder / "tiny.trace")
    row = table[(table["pe_array.rows"] == 4) & (table["pe_array.cols"] == 8)
                & (table["pe_array.sync"] == "decoupled")].iloc[0]
    hw = load_hw(BASE, {"pe_array.rows": 4, "pe_array.cols": 8, "pe_array.sync": "decoupled"})
    direct = simulate(trace, hw)
    for key in ("cycles", "energy_pj", "energy_dram_pj", "dram_bytes", "utilization",
                "peak_onchip_bytes", "macs_issued"):
        assert row[key] == pytest.approx(direct.totals[key], rel=1e-12), key
    assert row["hw_hash"] == hw.hash and row["trace_hash"] == trace.content_hash
    assert row["pes"] == 32 and row["latency_s"] == pytest.approx(row["cycles"] / 800e6)
    # the saved table is the returned one, Pareto columns included
    saved = pd.read_csv(folder / "out" / "results.csv")
    assert list(saved.columns) == list(table.columns)
    for pair, column in ((("energy_pj", "cycles"), "pareto_energy_pj__cycles"),
                         (("energy_pj", "pes"), "pareto_energy_pj__pes")):
        expected = pareto_brute_force(table[list(pair)].to_numpy(dtype=float))
        assert table[column].tolist() == expected.tolist()
    summary = json.loads((folder / "out" / "sweep.json").read_text())
    assert summary["computed"] == 8 and summary["results"] == 8


def test_resume_computes_only_missing_points(folder):
    subset = load_sweep_spec(write_spec(folder, {**AXES, "pe_array.rows": [2]}))
    first = run_sweep(subset, folder / "out", workers=1, progress=False)
    assert first.computed == 4
    cache = ResultCache(folder / "out" / "cache")
    assert len(cache) == 4
    # a temporary file left by a killed writer is not an entry
    stray = next((folder / "out" / "cache").glob("*/*.json"))
    (stray.parent / (stray.name + ".abc.tmp")).write_text("{partial")
    full = load_sweep_spec(write_spec(folder, AXES))
    second = run_sweep(full, folder / "out", workers=1, progress=False)
    assert (second.computed, second.cached) == (4, 4)
    assert len(cache) == 8
    third = run_sweep(full, folder / "out", workers=1, progress=False)
    assert (third.computed, third.cached) == (0, 8)
    pd.testing.assert_frame_equal(second.table, third.table)
    # same values as a sweep computed from scratch
    fresh = run_sweep(full, folder / "fresh", workers=1, progress=False)
    pd.testing.assert_frame_equal(fresh.table, third.table)


def test_failing_point_is_recorded_and_the_sweep_goes_on(folder):
    spec = load_sweep_spec(write_spec(folder, {
        "precision.activation_bits": [4, 8], "pe_array.rows": [4],
        "pe_array.dataflow": ["output_stationary", "weight_stationary"],
        "scratchpad.weight_bytes": [0, 128]}, base=str(SYSTOLIC_BASE)))
    outcome = run_sweep(spec, folder / "out", workers=1, progress=False)
    table = outcome.table
    assert len(table) == 8
    mapping = table[(table["precision.activation_bits"] == 4) & (table["error"].notna())
                    & table["error"].str.contains("8-bit activations", na=False)]
    assert len(mapping) >= 2  # the 4-bit designs cannot run the 8-bit trace
    invalid = table[table["error"].str.contains("invalid hardware", na=False)]
    assert len(invalid) == 2 and invalid["hw_hash"].isna().all()  # WS with no weight scratchpad
    # 8-bit OS with either weight scratchpad (a pipeline register once ported: the same
    # design) and 8-bit WS with 128 B run
    ok = table[table["status"] == "ok"]
    assert len(ok) == 3 and ok["energy_pj"].notna().all()
    assert not table.loc[table["status"] != "ok", "pareto_energy_pj__cycles"].any()
    assert outcome.failed == 5
    # deterministic simulator errors are cached: a re-run computes nothing
    again = run_sweep(spec, folder / "out", workers=1, progress=False)
    assert again.computed == 0 and again.failed == 5


def test_process_pool_and_serial_give_the_same_table(folder):
    spec = load_sweep_spec(write_spec(folder, AXES))
    serial = run_sweep(spec, folder / "serial", workers=1, progress=False)
    pooled = run_sweep(spec, folder / "pool", workers=2, progress=False)
    assert pooled.computed == 8
    pd.testing.assert_frame_equal(serial.table, pooled.table)


def test_two_traces_get_their_own_rows_and_fronts(folder):
    tiny_trace(folder / "other.trace", seed=3)
    spec = load_sweep_spec(write_spec(folder, {"pe_array.rows": [2, 4, 8]},
                                      traces=("tiny.trace", "other.trace")))
    table = run_sweep(spec, folder / "out", workers=1, progress=False).table
    assert table["trace"].tolist() == ["tiny", "other"] * 3
    assert table["point"].tolist() == [0, 0, 1, 1, 2, 2]
    for name in ("tiny", "other"):
        part = table[table["trace"] == name]
        expected = pareto_brute_force(part[["energy_pj", "cycles"]].to_numpy(dtype=float))
        assert part["pareto_energy_pj__cycles"].tolist() == expected.tolist()


def test_dask_cluster_gives_the_same_table_as_local(folder):
    distributed = pytest.importorskip("distributed")
    spec = load_sweep_spec(write_spec(folder, AXES))
    local = run_sweep(spec, folder / "local", workers=1, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        remote = run_sweep(spec, folder / "dask", scheduler=cluster.scheduler_address,
                           progress=False)
    assert remote.computed == 8
    assert len(ResultCache(folder / "dask" / "cache")) == 8  # the client stored every point
    pd.testing.assert_frame_equal(local.table, remote.table)


def test_unreachable_scheduler_is_a_clear_error(folder):
    pytest.importorskip("distributed")
    from accelsim.errors import AccelsimError

    spec = load_sweep_spec(write_spec(folder, {"pe_array.rows": [2]}))
    with pytest.raises(AccelsimError, match="cannot reach the Dask scheduler"):
        run_sweep(spec, folder / "out", scheduler="tcp://127.0.0.1:9", progress=False,
                  connect_timeout_s=1)


def test_killed_sweep_resumes_without_losing_or_repeating_points(tmp_path):
    """Kill a real `accelsim sweep` process mid-run, then finish it."""
    big = [("conv", LayerGeometry("conv2d", N=2, C=32, H=28, W=28, K=32, R=3, S=3,
                                  pad_h=1, pad_w=1), 0.5, 0.5)]
    tiny_trace(tmp_path / "tiny.trace", layers=big)
    axes = {"pe_array.rows": [2, 3, 4, 5, 6, 7, 8, 9], "pe_array.cols": [2, 3, 4, 5, 6]}
    spec_path = write_spec(tmp_path, axes)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "accelsim.cli", "sweep", str(spec_path), "-o",
                             str(out), "--workers", "1", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    cache_dir = out / "cache"
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(cache_dir.glob("*/*.json"))) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in cache_dir.glob("*/*.json")}
    assert 3 <= len(done_before) < 40, "the sweep finished before it could be killed"
    outcome = run_sweep(load_sweep_spec(spec_path), out, workers=1, progress=False)
    assert outcome.cached == len(done_before)
    assert outcome.computed == 40 - len(done_before)
    assert (outcome.table["status"] == "ok").all() and len(outcome.table) == 40


def test_workers_reuse_read_only_masks(folder, monkeypatch):
    from accelsim.sweep import evaluate

    trace = open_trace(folder / "tiny.trace")
    layers = evaluate.memoized_layers(trace)
    for lazy, memo in zip(trace, layers):
        assert np.array_equal(lazy.weight_mask(), memo.weight_mask())
        assert np.array_equal(lazy.act_mask(1), memo.act_mask(1))
        assert memo.act_mask(1) is memo.act_mask(1)  # drawn once
        with pytest.raises(ValueError):
            memo.weight_mask()[...] = False
    assert evaluate.mask_bytes(trace, 1) == sum(
        g.K * g.C // g.groups * g.R * g.S + g.C * g.H * g.W for _, g, _, _ in TRACE_LAYERS)
    spec = load_sweep_spec(write_spec(folder, {"pe_array.rows": [2]}))
    from accelsim.sweep.expand import expand
    from accelsim.sweep.run import _trace_infos, build_tasks

    task = build_tasks(spec, expand(spec), _trace_infos(spec.trace_paths))[0][2]
    monkeypatch.setattr(evaluate, "_LAYERS", {})
    assert isinstance(evaluate._layers(task), list)
    monkeypatch.setattr(evaluate, "_LAYERS", {})
    monkeypatch.setattr(evaluate, "MASK_MEMO_BUDGET_BYTES", 10)
    assert evaluate._layers(task).__class__.__name__ == "Trace"  # too big: stays lazy


def test_kernel_threads_are_shared_between_workers(monkeypatch):
    import numba

    from accelsim import numba_config
    from accelsim.sweep.evaluate import set_kernel_threads, usable_cores

    assert usable_cores() >= 1
    monkeypatch.setattr(numba_config, "PARALLEL", True)
    before = numba.get_num_threads()
    previous = set_kernel_threads(1)
    try:
        assert previous == before and numba.get_num_threads() == 1
    finally:
        set_kernel_threads(previous)
    assert numba.get_num_threads() == before


def test_serial_kernels_leave_numba_thread_pool_unlaunched():
    """With serial kernels a sweep must not start Numba's thread pool (forking stays safe)."""
    code = ("import sys; from accelsim.sweep.evaluate import set_kernel_threads;"
            "set_kernel_threads(1); from accelsim.sweep.pool import fork_is_safe;"
            "from numba.np.ufunc import parallel; print(parallel._is_initialized, fork_is_safe())")
    env = {**os.environ, "PYTHONPATH": str(REPO), "ACCELSIM_NUMBA_PARALLEL": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["False", "True"], out.stderr


def test_objective_names_match_the_simulator(folder):
    from accelsim.sim.energy import COMPONENTS
    from accelsim.sweep.spec import ENERGY_COMPONENTS, SIM_METRICS

    assert tuple(ENERGY_COMPONENTS) == tuple(COMPONENTS)
    spec = load_sweep_spec(write_spec(folder, {"pe_array.rows": [2]}))
    table = run_sweep(spec, folder / "out", workers=1, progress=False).table
    missing = [m for m in SIM_METRICS if m not in table.columns]
    assert not missing, f"objectives the results table lacks: {missing}"
