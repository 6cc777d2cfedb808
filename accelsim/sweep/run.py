"""Run a sweep: expand the spec, skip cached points, simulate the rest in parallel, tabulate.

Executors: ``workers == 1`` runs in this process; otherwise a local process pool
(``spawn`` start method: workers import accelsim fresh, and Numba's on-disk cache
means they do not recompile what another process already compiled); or a Dask
distributed cluster when a scheduler address is given (the client stores results,
since workers may not share this filesystem).

Outputs under ``DIR``: ``cache/`` (one JSON per point), ``results.csv`` (or
``.parquet``) and ``sweep.json`` (what ran, counts, fronts).
"""
from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
from tqdm import tqdm

import accelsim
from accelsim.errors import AccelsimError
from accelsim.plot.common import COMPONENT_ORDER
from accelsim.atomic import atomic_write
from accelsim.sweep.cache import ResultCache, point_identity, point_key, write_json_atomic
from accelsim.sweep.evaluate import (PointTask, evaluate_chunk, init_worker, set_kernel_threads,
                                     usable_cores)
from accelsim.sweep.expand import Expansion, describe, expand
from accelsim.sweep.pareto import mark_fronts, pareto_column
from accelsim.sweep.spec import HW_METRICS as HW_FIGURES, SweepSpec

RESULT_FORMATS = ("csv", "parquet")


@dataclass
class SweepOutcome:
    """What a sweep produced and how much of it came from the cache."""

    table: pd.DataFrame
    results_path: Path
    expansion: Expansion
    computed: int
    cached: int
    failed: int
    elapsed_s: float

    def summary(self) -> str:
        ok = int((self.table["status"] == "ok").sum()) if len(self.table) else 0
        return (f"{describe(self.expansion)}; {len(self.table)} results ({ok} ok, {self.failed} "
                f"failed): {self.computed} simulated, {self.cached} from cache, in "
                f"{self.elapsed_s:.1f} s")


@dataclass(frozen=True)
class _TraceInfo:
    path: str
    name: str
    content_hash: str


def _trace_infos(paths: tuple[str, ...]) -> list[_TraceInfo]:
    from accelsim.trace import open_trace

    infos, names = [], set()
    for path in paths:
        trace = open_trace(path)
        name = Path(path).stem
        if name in names:  # two traces with the same file name in different folders
            name = str(Path(path))
        names.add(name)
        infos.append(_TraceInfo(str(path), name, trace.content_hash))
    return infos


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _chunk_size(pending: int, workers: int) -> int:
    return max(1, min(32, math.ceil(pending / (workers * 8))))


def _run_serial(tasks: list[PointTask], cache_dir: str, done: Callable[[list[dict]], None]) -> None:
    previous = set_kernel_threads(usable_cores())
    try:
        for chunk in _chunks(tasks, 1):
            done(evaluate_chunk(chunk, cache_dir))
    finally:
        set_kernel_threads(previous)


def _run_pool(tasks: list[PointTask], cache_dir: str, workers: int,
              done: Callable[[list[dict]], None]) -> None:
    context = multiprocessing.get_context("spawn")
    size = _chunk_size(len(tasks), workers)
    threads = max(1, usable_cores() // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(evaluate_chunk, chunk, cache_dir) for chunk in _chunks(tasks, size)}
        try:
            while futures:
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    done(future.result())
        except BrokenProcessPool:
            pool.shutdown(wait=False, cancel_futures=True)
            raise AccelsimError("a sweep worker process died (out of memory, or killed); every "
                                "finished point is cached: re-run the same command to resume "
                                "(with fewer --workers if memory is short)") from None
        except BaseException:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_dask(tasks: list[PointTask], scheduler: str, done: Callable[[list[dict]], None],
              timeout_s: float) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise AccelsimError("--scheduler needs Dask distributed: pip install 'accelsim[distributed]'"
                            ) from None
    try:
        client = Client(scheduler, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise AccelsimError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); start one "
                            "with `dask scheduler` or check the address (tcp://host:port)") from None
    with client:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        size = _chunk_size(len(tasks), workers)
        futures = client.map(evaluate_chunk, list(_chunks(tasks, size)), pure=False)
        try:
            for future in as_completed(futures):
                done(future.result())
        except BaseException:
            client.cancel(futures)
            raise


def build_tasks(spec: SweepSpec, expansion: Expansion,
                traces: list[_TraceInfo]) -> list[tuple[int, int, PointTask | None]]:
    """(point index, trace index, task) for every valid point x trace; None for invalid hardware."""
    jobs = []
    for point in expansion.points:
        for t, info in enumerate(traces):
            if point.hw is None:
                jobs.append((point.index, t, None))
                continue
            identity = point_identity(point.hw.hash, info.content_hash, spec.fidelity, spec.samples)
            jobs.append((point.index, t, PointTask(point_key(identity), identity, point.hw,
                                                   info.path, spec.fidelity, spec.samples)))
    return jobs


def _row(point, info: _TraceInfo, record: dict | None, error: str | None) -> dict:
    row = {"point": point.index, "trace": info.name}
    row.update(point.params)
    row["hw_name"] = point.hw.name if point.hw is not None else None
    row["status"] = "ok" if record is not None and record["status"] == "ok" else "error"
    row["error"] = error if record is None else record["error"]
    row.update(point.figures)
    if record is not None:
        row.update(record["totals"])
    row["hw_hash"] = point.hw.hash if point.hw is not None else None
    row["trace_hash"] = info.content_hash
    return row


def tabulate(spec: SweepSpec, expansion: Expansion, traces: list[_TraceInfo],
             records: dict[str, dict]) -> pd.DataFrame:
    """The results table: one row per (point, trace), Pareto columns added."""
    rows = []
    for point_index, t, task in build_tasks(spec, expansion, traces):
        point = expansion.points[point_index]
        if task is None:
            rows.append(_row(point, traces[t], None, point.error))
        else:
            rows.append(_row(point, traces[t], records.get(task.key),
                             None if task.key in records else "not run"))
    table = pd.DataFrame(rows, columns=None if rows else
                         ["point", "trace", *spec.axes, "hw_name", "status", "error"])
    if len(table) and "cycles" in table:  # derived objectives (the simulator may give latency)
        clock_hz = pd.to_numeric(table["clock_mhz"], errors="coerce") * 1e6
        latency = pd.to_numeric(table["cycles"], errors="coerce") / clock_hz
        table["latency_s"] = table["latency_s"].fillna(latency) if "latency_s" in table else latency
        if "energy_pj" in table:
            table["edp_pj_s"] = pd.to_numeric(table["energy_pj"], errors="coerce") * table["latency_s"]
    table = table[_column_order(list(table.columns), point_columns=len(spec.axes) + 2)] \
        if len(table) else table
    return mark_fronts(table, spec.objective_pairs, group_by="trace")


# Leading metric columns of the results table, in this order; other metrics follow by name.
LEAD_METRICS = ("cycles", "latency_s", "energy_pj", "energy_uj", "edp_pj_s", "utilization",
                "load_imbalance", *(f"energy_{c}_pj" for c in COMPONENT_ORDER), "dram_bytes",
                "dram_read_bytes", "dram_write_bytes", "peak_live_bytes", "peak_onchip_bytes",
                "peak_offchip_bytes", "compute_cycles", "stall_cycles", "glb_stall_cycles",
                "dram_stall_cycles", "fill_drain_cycles", "macs_dense", "macs_issued",
                "macs_skipped", "macs_gated", "macs_effectual")
_FIXED = ("hw_name", "status", "error", *HW_FIGURES)


def _column_order(columns: list[str], point_columns: int) -> list[str]:
    """point, trace, the axes, identity/status, hardware figures, metrics, hashes."""
    head = columns[:point_columns]
    fixed = [c for c in _FIXED if c in columns]
    lead = [c for c in LEAD_METRICS if c in columns]
    tail = ["hw_hash", "trace_hash"]
    rest = sorted(c for c in columns[point_columns:]
                  if c not in fixed and c not in lead and c not in tail)
    return head + fixed + lead + rest + [c for c in tail if c in columns]


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write the results table atomically; the format follows the extension."""
    if path.suffix == ".parquet":
        try:
            atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))
        except ImportError:
            raise AccelsimError("Parquet output needs pyarrow: pip install 'accelsim[parquet]' "
                                "(or use --format csv)") from None
    else:
        atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, workers: int | None = None,
              scheduler: str | None = None, progress: bool = True,
              result_format: str = "csv", connect_timeout_s: float = 20.0) -> SweepOutcome:
    """Run ``spec`` into ``out_dir``; cached points are not recomputed.

    ``workers``: local processes (default: the usable cores; 1 runs in this process),
    each running the simulator's parallel kernels on its share of the cores;
    ``scheduler``: a Dask scheduler address, used instead of local processes.
    """
    if result_format not in RESULT_FORMATS:
        raise AccelsimError(f"results format: expected one of {', '.join(RESULT_FORMATS)}, "
                            f"got {result_format!r}")
    if workers is not None and workers < 1:
        raise AccelsimError(f"--workers: expected a positive integer, got {workers}")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = ResultCache(out / "cache")
    expansion = expand(spec)
    traces = _trace_infos(spec.trace_paths)
    jobs = build_tasks(spec, expansion, traces)
    records: dict[str, dict] = {}
    waiting: dict[str, PointTask] = {}
    for _, _, task in jobs:
        if task is None or task.key in records or task.key in waiting:
            continue
        record = cache.get(task.key)
        if record is None:
            waiting[task.key] = task
        else:
            records[task.key] = record
    # Trace-major order: a worker then reuses one trace's masks for consecutive points.
    order = {info.path: i for i, info in enumerate(traces)}
    pending = sorted(waiting.values(), key=lambda task: order[task.trace_path])
    cached = len(records)
    bar = tqdm(total=cached + len(pending), initial=cached, desc="sweep", unit="pt",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)

    def done(results: list[dict]) -> None:
        for record in results:
            cacheable, stored = record.pop("cacheable"), record.pop("stored")
            if cacheable and not stored:
                cache.put(record["key"], record)
            records[record["key"]] = record
        bar.update(len(results))

    try:
        if pending:
            if scheduler:
                _run_dask(pending, scheduler, done, connect_timeout_s)
            elif (workers or usable_cores()) == 1 or len(pending) == 1:
                _run_serial(pending, str(cache.directory), done)
            else:
                _run_pool(pending, str(cache.directory), min(workers or usable_cores(),
                                                             len(pending)), done)
    finally:
        bar.close()
    table = tabulate(spec, expansion, traces, records)
    results_path = out / f"results.{result_format}"
    write_table(table, results_path)
    failed = int((table["status"] != "ok").sum()) if len(table) else 0
    outcome = SweepOutcome(table, results_path, expansion, computed=len(pending), cached=cached,
                           failed=failed, elapsed_s=time.perf_counter() - start)
    _write_summary(out / "sweep.json", spec, outcome, traces)
    return outcome


def _write_summary(path: Path, spec: SweepSpec, outcome: SweepOutcome,
                   traces: list[_TraceInfo]) -> None:
    table = outcome.table
    fronts = {pareto_column(p): int(table[pareto_column(p)].sum()) if len(table) else 0
              for p in spec.objective_pairs}
    write_json_atomic(path, {
        "spec": spec.source, "name": spec.name, "accelsim_version": accelsim.__version__,
        "base": spec.base_path, "mode": spec.mode, "fidelity": spec.fidelity,
        "samples": spec.samples, "axes": list(spec.axes),
        "traces": [{"name": t.name, "path": t.path, "content_hash": t.content_hash} for t in traces],
        "points": len(outcome.expansion.points), "dropped_by_constraints": outcome.expansion.dropped,
        "drop_reasons": dict(outcome.expansion.drop_reasons),
        "duplicates": outcome.expansion.duplicates,
        "results": len(table), "failed": outcome.failed, "computed": outcome.computed,
        "cached": outcome.cached, "elapsed_s": round(outcome.elapsed_s, 3),
        "objectives": [list(p) for p in spec.objective_pairs], "front_sizes": fronts,
        "results_file": outcome.results_path.name,
    })
