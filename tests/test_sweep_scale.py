"""Sweeps at scale: streamed results table, persistent worker pool, trace affinity, progress."""
from __future__ import annotations

import io
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accelsim.sweep import table as table_mod
from accelsim.sweep.cache import ResultCache
from accelsim.sweep.expand import expand
from accelsim.sweep.progress import Progress
from accelsim.sweep.run import _trace_infos, build_tasks, run_sweep, tabulate
from accelsim.sweep.spec import load_sweep_spec

from test_sweep_run import AXES, tiny_trace, write_spec

# Valid, mapping-error and invalid-hardware points, on two traces: mixed column types.
MIXED_AXES = {"precision.activation_bits": [4, 8], "pe_array.rows": [2, 4],
              "pe_array.dataflow": ["output_stationary", "weight_stationary"],
              "scratchpad.weight_bytes": [0, 128]}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    tiny_trace(tmp_path / "tiny.trace")
    tiny_trace(tmp_path / "other.trace", seed=5)
    return tmp_path


def reference_table(spec, out: Path) -> pd.DataFrame:
    """The whole table built in memory from the cache (the pre-streaming code path)."""
    expansion = expand(spec)
    traces = _trace_infos(spec.trace_paths)
    cache = ResultCache(out / "cache")
    records = {}
    for _, _, task in build_tasks(spec, expansion, traces):
        if task is not None and task.key not in records:
            records[task.key] = cache.get(task.key)
    return tabulate(spec, expansion, traces, records)


def saved_like(table: pd.DataFrame, path: Path, fmt: str) -> pd.DataFrame:
    """``table`` after a round trip through the results file format."""
    if fmt == "csv":
        buffer = io.StringIO()
        table.to_csv(buffer, index=False)
        buffer.seek(0)
        return pd.read_csv(buffer)
    table.to_parquet(path, index=False)
    return pd.read_parquet(path)


@pytest.mark.parametrize("fmt,parts", [("csv", "csv"), ("csv", "parquet"),
                                       ("parquet", "parquet")])
def test_streamed_table_equals_the_in_memory_table(folder, monkeypatch, fmt, parts):
    if "parquet" in (fmt, parts):
        pytest.importorskip("pyarrow")
    monkeypatch.setattr(table_mod, "part_format", lambda: parts)
    monkeypatch.setattr(table_mod, "WINDOW_ROWS", 5)  # several windows, parts out of order
    spec = load_sweep_spec(write_spec(folder, MIXED_AXES, traces=("tiny.trace", "other.trace"),
                                      objectives=[["energy_pj", "cycles"], ["cycles", "pes"]]))
    # first a partial run, so the final table mixes cached and computed rows
    partial = load_sweep_spec(write_spec(folder, {**MIXED_AXES, "pe_array.rows": [4]},
                                         traces=("tiny.trace", "other.trace")))
    run_sweep(partial, folder / "out", workers=1, progress=False, part_rows=3)
    spec = load_sweep_spec(write_spec(folder, MIXED_AXES, traces=("tiny.trace", "other.trace"),
                                      objectives=[["energy_pj", "cycles"], ["cycles", "pes"]]))
    outcome = run_sweep(spec, folder / "out", workers=1, progress=False, part_rows=3,
                        result_format=fmt)
    assert outcome.cached > 0 and outcome.computed > 0
    assert len(list((folder / "out" / "parts").glob(f"part-*.{parts}"))) >= 5
    expected = saved_like(reference_table(spec, folder / "out"), folder / "ref.parquet", fmt)
    pd.testing.assert_frame_equal(outcome.table, expected)
    summary = outcome.summary_table
    assert summary.rows == len(expected) == 32
    assert summary.ok == int((expected["status"] == "ok").sum())
    assert summary.front_sizes == {c: int(expected[c].sum()) for c in expected
                                   if c.startswith("pareto_")}
    assert summary.errors == Counter(expected.loc[expected["status"] != "ok", "error"])


def test_empty_sweep_writes_an_empty_table(folder):
    spec = load_sweep_spec(write_spec(folder, {"pe_array.rows": [2, 4]},
                                      constraints={"max_pes": 1}))
    outcome = run_sweep(spec, folder / "out", workers=1, progress=False)
    assert outcome.summary_table.rows == 0 and len(outcome.table) == 0


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_gives_the_serial_table(folder, method):
    spec = load_sweep_spec(write_spec(folder, AXES, traces=("tiny.trace", "other.trace")))
    serial = run_sweep(spec, folder / "serial", workers=1, progress=False)
    pooled = run_sweep(spec, folder / method, workers=2, progress=False, start_method=method)
    assert pooled.start_method == method and pooled.computed == 16
    pd.testing.assert_frame_equal(serial.table, pooled.table)
    assert len(ResultCache(folder / method / "cache")) == 16


def test_trace_queues_keep_a_trace_on_one_worker():
    from accelsim.sweep.pool import TraceQueues

    class Task:
        def __init__(self, trace, i):
            self.trace_path, self.i = trace, i

    rng = np.random.default_rng(0)
    for _ in range(50):
        n_traces, workers = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        tasks = [Task(f"t{t}", i) for t in range(n_traces) for i in range(int(rng.integers(1, 60)))]
        queues = TraceQueues(tasks, workers)
        current = [None] * workers
        visits = defaultdict(list)  # worker -> traces in the order it ran them
        handed = []
        active = list(range(workers))
        while active:  # workers ask in random order, as their chunks finish
            w = active[int(rng.integers(len(active)))]
            before = current[w]
            nxt = queues.next_chunk(before)
            if nxt is None:
                active.remove(w)
                continue
            current[w], chunk = nxt
            assert chunk and all(t.trace_path == current[w] for t in chunk)
            if current[w] != before:
                # a worker leaves a trace only when no point of it is left
                assert before is None or not queues.queues[before]
                visits[w].append(current[w])
            handed.extend(chunk)
        assert sorted(id(t) for t in handed) == sorted(id(t) for t in tasks)  # each once
        for traces in visits.values():
            assert len(traces) == len(set(traces))  # never loads a trace twice
        firsts = [traces[0] for traces in visits.values()]
        if workers <= n_traces:  # the workers start on different traces
            assert len(firsts) == len(set(firsts))


def test_progress_costs_no_rendering_per_point():
    stream = io.StringIO()
    bar = Progress(total=100_000, stream=stream, interval=0.5, log_interval=0.5)
    start = time.perf_counter()
    for _ in range(100_000):
        bar.update(1)
    elapsed = time.perf_counter() - start
    bar.close()
    assert bar.count == 100_000
    assert bar.draws <= elapsed / 0.5 + 2  # rate-limited, plus the final line: no per-point rendering
    assert stream.getvalue().rstrip().endswith("left")
    assert "100000/100000 (100%)" in stream.getvalue().splitlines()[-1]
    quiet = Progress(total=10, stream=io.StringIO(), enabled=False)
    quiet.update(10)
    quiet.close()
    assert quiet.draws == 0


def test_dask_local_cluster_gives_the_serial_table(folder):
    pytest.importorskip("distributed")
    spec = load_sweep_spec(write_spec(folder, AXES, traces=("tiny.trace", "other.trace")))
    serial = run_sweep(spec, folder / "serial", workers=1, progress=False)
    local = run_sweep(spec, folder / "dask", scheduler="local:2", progress=False)
    assert local.computed == 16
    assert len(ResultCache(folder / "dask" / "cache")) == 16  # the client stored every point
    pd.testing.assert_frame_equal(serial.table, local.table)


@pytest.mark.parametrize("value", ["local:0", "local:x", "local:-1", "locally"])
def test_bad_local_scheduler_is_one_line(folder, value):
    from accelsim.errors import AccelsimError
    from accelsim.sweep.cluster import parse_scheduler

    spec = load_sweep_spec(write_spec(folder, {"pe_array.rows": [2]}))
    with pytest.raises(AccelsimError, match="local:N with N a positive integer") as info:
        run_sweep(spec, folder / "out", scheduler=value, progress=False)
    assert "\n" not in str(info.value)
    assert not (folder / "out").exists()  # refused before anything ran
    assert parse_scheduler("local:3") == 3 and parse_scheduler("tcp://h:8786") is None


def test_sweep_column_order_matches_the_plots_without_importing_matplotlib():
    import subprocess
    import sys

    from accelsim.plot.common import COMPONENT_ORDER
    from accelsim.sweep import run

    assert run.COMPONENT_ORDER == COMPONENT_ORDER
    code = "import sys, accelsim.sweep.run; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=str(Path(run.__file__).resolve().parents[2]))
    assert out.stdout.strip() == "False", out.stderr
