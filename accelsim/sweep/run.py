"""Run a sweep: expand the spec, skip cached points, simulate the rest in parallel, tabulate.

Executors: ``workers == 1`` runs in this process; otherwise persistent local worker
processes (:mod:`accelsim.sweep.pool`: points grouped by trace, workers that die with
this process); or a Dask cluster (:mod:`accelsim.sweep.cluster`) when a scheduler
address or ``local:N`` is given (the client stores results, since workers may not
share this filesystem).

Outputs under ``DIR``: ``cache/`` (one JSON per point: what a re-run resumes from),
``parts/`` (the rows finished so far, written incrementally), ``results.csv`` (or
``.parquet``, assembled from the parts by streaming) and ``sweep.json``; the mapper's results
are shared by the workers in ``cache/mappings/`` (:mod:`accelsim.map.store`). The folder
is locked while a sweep runs (``.sweep.lock``); temporary files left by killed
writers are removed when the next sweep starts.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

import accelsim
from accelsim.atomic import remove_stale_temps
from accelsim.errors import AccelsimError
from accelsim.map import store as mapping_store
from accelsim.sweep.cache import ResultCache, point_identity, point_key, write_json_atomic
from accelsim.sweep.evaluate import (PointTask, check_local_workers, evaluate_chunk, set_kernel_threads,
                                     usable_cores)
from accelsim.sweep.expand import Expansion, describe, expand
from accelsim.sweep.lock import FolderLock
from accelsim.sweep.pareto import mark_fronts
from accelsim.sweep.progress import Progress
from accelsim.sweep.spec import HW_METRICS as HW_FIGURES, SweepSpec
from accelsim.sweep.table import ORDER, PARTS_DIR, PartWriter, TableSummary, assemble

RESULT_FORMATS = ("csv", "parquet")


@dataclass
class SweepOutcome:
    """What a sweep produced and how much of it came from the cache.

    ``table`` reads the results file on first use (a large sweep's table is never
    built in memory by the sweep itself); ``summary_table`` has its counts.
    """

    results_path: Path
    expansion: Expansion
    computed: int
    cached: int
    failed: int
    elapsed_s: float
    summary_table: TableSummary = field(default_factory=TableSummary)
    start_method: str | None = None
    _table: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def table(self) -> pd.DataFrame:
        if self._table is None:
            self._table = (pd.read_parquet(self.results_path)
                           if self.results_path.suffix == ".parquet"
                           else pd.read_csv(self.results_path))
        return self._table

    def summary(self) -> str:
        rows = self.summary_table.rows
        return (f"{describe(self.expansion)}; {rows} results ({self.summary_table.ok} ok, "
                f"{self.failed} failed): {self.computed} simulated, {self.cached} from cache, "
                f"in {self.elapsed_s:.1f} s")


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


def _run_serial(tasks: list[PointTask], cache_dir: str, done) -> None:
    previous = set_kernel_threads(usable_cores())
    try:
        for task in tasks:
            done(evaluate_chunk([task], cache_dir))
    finally:
        set_kernel_threads(previous)


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


def _row(point, info: _TraceInfo, record: dict | None, error: str | None,
         order: int | None = None) -> dict:
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
    if order is not None:
        row[ORDER] = order
        _derive(row)
    return row


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def _derive(row: dict) -> None:
    """Derived objectives of one row: latency from cycles and clock (unless the simulator
    gave it) and energy-delay product; the same arithmetic as :func:`tabulate`."""
    if "cycles" not in row:
        return
    cycles, clock = _number(row.get("cycles")), _number(row.get("clock_mhz"))
    latency = cycles / (clock * 1e6) if cycles is not None and clock is not None else None
    if _number(row.get("latency_s")) is None:
        row["latency_s"] = latency
    energy, latency = _number(row.get("energy_pj")), _number(row.get("latency_s"))
    if "energy_pj" in row:
        row["edp_pj_s"] = energy * latency if energy is not None and latency is not None else None
        area = _number(row.get("area_mm2"))   # energy-delay-area product
        row["edap_pj_s_mm2"] = row["edp_pj_s"] * area if row["edp_pj_s"] is not None and area else None


def tabulate(spec: SweepSpec, expansion: Expansion, traces: list[_TraceInfo],
             records: dict[str, dict]) -> pd.DataFrame:
    """The results table in memory from ``records`` (key -> record): one row per (point,
    trace), Pareto columns added. The reference for the streamed table of :func:`run_sweep`."""
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
            if "area_mm2" in table:   # energy-delay-area product
                table["edap_pj_s_mm2"] = table["edp_pj_s"] * pd.to_numeric(table["area_mm2"], errors="coerce")
    table = table[_column_order(list(table.columns), point_columns=len(spec.axes) + 2)] \
        if len(table) else table
    return mark_fronts(table, spec.objective_pairs, group_by="trace")


# The plots' stacking order of energy components (``accelsim.plot.common.COMPONENT_ORDER``,
# tested equal), repeated here so a sweep does not import matplotlib.
COMPONENT_ORDER = ("mac", "spad", "noc", "glb", "dram", "leakage", "clock", "wakeup")
# Leading metric columns of the results table, in this order; other metrics follow by name.
LEAD_METRICS = ("cycles", "latency_s", "energy_pj", "energy_uj", "edp_pj_s", "edap_pj_s_mm2",
                "utilization", "load_imbalance", *(f"energy_{c}_pj" for c in COMPONENT_ORDER), "dram_bytes",
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
    """Write an in-memory results table atomically; the format follows the extension."""
    from accelsim.atomic import atomic_write

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
              result_format: str = "csv", connect_timeout_s: float = 20.0,
              start_method: str = "auto", part_rows: int = 2000) -> SweepOutcome:
    """Run ``spec`` into ``out_dir``; cached points are not recomputed.

    ``workers``: local processes (default: the usable cores; 1 runs in this process),
    each running the simulator's kernels on its share of the cores; ``scheduler``: a
    Dask scheduler address, or ``local:N`` for a Dask ``LocalCluster`` of N processes,
    used instead of local processes; ``start_method``: ``auto`` (fork when safe),
    ``fork`` or ``spawn`` for local workers; ``part_rows``: rows per part file.
    Refused (``AccelsimError``) while another sweep runs in ``out_dir``.
    """
    if result_format not in RESULT_FORMATS:
        raise AccelsimError(f"results format: expected one of {', '.join(RESULT_FORMATS)}, "
                            f"got {result_format!r}")
    if workers is not None:
        check_local_workers(workers, "--workers")
    if scheduler:
        from accelsim.sweep.cluster import parse_scheduler

        parse_scheduler(scheduler)  # a malformed local:N fails before anything runs
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out):
        # Under the lock no other writer is active here: what killed writers left is stale.
        remove_stale_temps(out)
        remove_stale_temps(out / "cache", depth=1)
        return _run_locked(spec, out, workers, scheduler, progress, result_format,
                           connect_timeout_s, start_method, part_rows, start)


def _run_locked(spec: SweepSpec, out: Path, workers: int | None, scheduler: str | None,
                progress: bool, result_format: str, connect_timeout_s: float,
                start_method: str, part_rows: int, start: float) -> SweepOutcome:
    cache = ResultCache(out / "cache")
    expansion = expand(spec)
    traces = _trace_infos(spec.trace_paths)
    writer = PartWriter(out / PARTS_DIR, rows=part_rows)
    # Rows of invalid and cached points go straight to the parts; pending points wait.
    waiting: dict[str, PointTask] = {}
    rows_of: dict[str, list[int]] = {}  # key -> positions in the table (a key may repeat)
    cached = 0
    for order, (point_index, t, task) in enumerate(build_tasks(spec, expansion, traces)):
        point = expansion.points[point_index]
        if task is None:
            writer.add(_row(point, traces[t], None, point.error, order))
        elif task.key in waiting:
            rows_of[task.key].append(order)
        else:
            record = cache.get(task.key)
            if record is None:
                waiting[task.key] = task
                rows_of[task.key] = [order]
            else:
                cached += 1
                writer.add(_row(point, traces[t], record, None, order))
    # Trace-major order: a worker then reuses one trace's masks for consecutive points.
    order_of = {info.path: i for i, info in enumerate(traces)}
    pending = sorted(waiting.values(), key=lambda task: order_of[task.trace_path])
    del waiting
    bar = Progress(total=cached + len(pending), initial=cached, enabled=progress)
    n_traces = max(1, len(traces))

    def done(results: list[dict]) -> None:
        for record in results:
            cacheable, stored = record.pop("cacheable"), record.pop("stored")
            if cacheable and not stored:
                cache.put(record["key"], record)
            for order in rows_of.pop(record["key"]):
                point_index, t = divmod(order, n_traces)
                writer.add(_row(expansion.points[point_index], traces[t], record, None, order))
        bar.update(len(results))

    method = None
    try:
        # the workers (and this process) share mapper results in the sweep's own cache folder
        with mapping_store.folder_for_processes(cache.directory):
            if pending:
                if scheduler:
                    from accelsim.sweep.cluster import run_dask

                    run_dask(pending, scheduler, done, connect_timeout_s)
                elif (workers or usable_cores()) == 1 or len(pending) == 1:
                    _run_serial(pending, str(cache.directory), done)
                else:
                    from accelsim.sweep.pool import run_pool

                    method = run_pool(pending, str(cache.directory),
                                      min(workers or usable_cores(), len(pending)), done,
                                      start_method=start_method)
    finally:
        bar.close()
        writer.flush()
    results_path = out / f"results.{result_format}"
    summary = assemble(writer.parts, results_path, ["point", "trace", *spec.axes],
                       spec.objective_pairs,
                       lambda cols: _column_order(cols, point_columns=len(spec.axes) + 2))
    outcome = SweepOutcome(results_path, expansion, computed=len(pending), cached=cached,
                           failed=summary.failed, elapsed_s=time.perf_counter() - start,
                           summary_table=summary, start_method=method)
    _write_summary(out / "sweep.json", spec, outcome, traces)
    return outcome


def _write_summary(path: Path, spec: SweepSpec, outcome: SweepOutcome,
                   traces: list[_TraceInfo]) -> None:
    fronts = dict(outcome.summary_table.front_sizes)
    write_json_atomic(path, {
        "spec": spec.source, "name": spec.name, "accelsim_version": accelsim.__version__,
        "base": spec.base_path, "mode": spec.mode, "fidelity": spec.fidelity,
        "samples": spec.samples, "axes": list(spec.axes),
        "traces": [{"name": t.name, "path": t.path, "content_hash": t.content_hash} for t in traces],
        "points": len(outcome.expansion.points), "dropped_by_constraints": outcome.expansion.dropped,
        "drop_reasons": dict(outcome.expansion.drop_reasons),
        "duplicates": outcome.expansion.duplicates,
        "results": outcome.summary_table.rows, "failed": outcome.failed, "computed": outcome.computed,
        "cached": outcome.cached, "elapsed_s": round(outcome.elapsed_s, 3),
        "objectives": [list(p) for p in spec.objective_pairs], "front_sizes": fronts,
        "results_file": outcome.results_path.name,
    })
