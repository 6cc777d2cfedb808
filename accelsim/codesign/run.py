"""Run a co-design: train every training point once, trace it on its validation split,
simulate it on every hardware point (and each point's dense twin), tabulate, mark the
joint Pareto fronts, evaluate the selected models on the test split once, plot and report.

Outputs under ``DIR``: ``train/`` and ``traces/`` (see :mod:`accelsim.codesign.models`),
``cache/`` (one JSON per simulation, the sweep cache), ``results.csv``,
``codesign_pareto.png``, ``report.html`` and ``codesign.json``. The folder is locked
while a co-design runs. Every step is cached as it finishes (an epoch, a trace, a
simulation, a test evaluation), so a killed run loses nothing and a re-run repeats
nothing; a finished one re-runs from the cache in seconds.

Selection: a model is *selected* when one of its rows lies on the front of an
objective set that includes ``val_accuracy`` (and the model with the best validation
accuracy always is). Only selected models are evaluated on the test split. A model
below the spec's accuracy floor (:func:`accelsim.codesign.spec.accuracy_floor`: e.g. one
whose training collapsed) is on no front and never selected (``above_floor`` column).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import accelsim
from accelsim.atomic import atomic_write, remove_stale_temps
from accelsim.codesign import models
from accelsim.codesign.spec import (MAXIMIZED, TRAINING_AXES, TRAINING_METRICS, CodesignSpec,
                                    accuracy_floor, objective_tuples)
from accelsim.errors import AccelsimError
from accelsim.sim.headline import headline_figures
from accelsim.sweep.cache import ResultCache, point_identity, point_key, write_json_atomic
from accelsim.sweep.evaluate import PointTask, check_local_workers, evaluate_chunk, usable_cores
from accelsim.sweep.lock import FolderLock
from accelsim.sweep.pareto import pareto_mask
from accelsim.sweep.progress import Progress

RESULTS = "results.csv"


@dataclass
class CodesignOutcome:
    """What a co-design produced, and how much of it came from the cache."""
    results_path: Path
    table: pd.DataFrame
    trained: int
    trained_cached: int
    traced: int
    simulated: int
    simulated_cached: int
    selected: list[str]
    elapsed_s: float
    files: dict = field(default_factory=dict)
    floor: float = math.nan

    def floor_text(self) -> str:
        """``accuracy floor 0.871: 1 model below it, never selected``."""
        below = self.table.loc[~self.table["above_floor"], "train_id"].nunique() \
            if "above_floor" in self.table else 0
        return (f"accuracy floor {self.floor:.3f}: {below} model{'s' if below != 1 else ''} "
                "below it, never selected")

    def summary(self) -> str:
        return (f"{self.table['train_id'].nunique()} models x {self.table['design_label'].nunique()} "
                f"hardware points = {len(self.table)} rows ({int((self.table['status'] == 'ok').sum())} "
                f"ok); trained {self.trained} ({self.trained_cached} cached), traced {self.traced}, "
                f"simulated {self.simulated} ({self.simulated_cached} cached); "
                f"{len(self.selected)} selected models ({self.floor_text()}); "
                f"{self.elapsed_s:.1f} s")


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def front_column(names) -> str:
    return "pareto_" + "__".join(names)


def oriented(table: pd.DataFrame, names) -> np.ndarray:
    """The objective columns as floats, negated where larger is better (for minimisation)."""
    cols = []
    for name in names:
        col = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=np.float64)
        cols.append(-col if name in MAXIMIZED else col)
    return np.column_stack(cols)


def apply_floor(table: pd.DataFrame, spec: CodesignSpec) -> float:
    """Add the ``above_floor`` column (validation accuracy at or above the spec's floor, set
    from the best model that simulated) and return the floor (NaN when no row is ok)."""
    acc = pd.to_numeric(table["val_accuracy"], errors="coerce")
    ok = table["status"] == "ok"
    best = float(acc[ok].max()) if ok.any() else math.nan
    floor = accuracy_floor(spec, best) if not math.isnan(best) else math.nan
    table["above_floor"] = (acc >= floor - 1e-12).to_numpy(bool)   # NaN floor: none
    return floor


def mark_fronts(table: pd.DataFrame, objectives) -> pd.DataFrame:
    """One boolean column per objective set: the joint front over every model and design
    (rows below the accuracy floor, ``above_floor`` False, are on none)."""
    ok = (table["status"] == "ok").to_numpy().copy()
    if "above_floor" in table:
        ok &= table["above_floor"].to_numpy(bool)
    for names in objectives:
        values = oriented(table, names)
        values[~ok] = np.nan
        table[front_column(names)] = pareto_mask(values) if len(table) else np.zeros(0, bool)
    return table


def select_models(table: pd.DataFrame, objectives) -> list[str]:
    """Training ids on a front whose objectives include val_accuracy, plus the most accurate;
    never one below the accuracy floor (``above_floor``)."""
    chosen: set[str] = set()
    for names in objectives:
        if "val_accuracy" in names:
            chosen |= set(table.loc[table[front_column(names)], "train_id"])
    ok = table[table["status"] == "ok"]
    if "above_floor" in table:
        ok = ok[ok["above_floor"]]
        chosen &= set(ok["train_id"])
    if len(ok):
        best = ok.sort_values(["val_accuracy", "train_id"], ascending=[False, True]).iloc[0]
        chosen.add(best["train_id"])
    return sorted(chosen)


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def build_rows(spec: CodesignSpec, val: dict[str, dict], seconds: dict[str, float],
               keys: dict[tuple[str, int, str], str], records: dict[str, dict]) -> pd.DataFrame:
    """One row per (training point, hardware point): axes, validation figures, simulator
    totals, savings against the design's dense twin."""
    axes = [a for a in TRAINING_AXES if a in spec.training.given()]
    hw_axes = list(spec.hardware.axes)
    rows = []
    for tp in spec.points:
        m = val[tp.id]
        for dp in spec.designs:
            row = {"train_id": tp.id, **{a: tp.params.get(a) for a in axes},
                   "design": dp.design, **{a: dp.params.get(a) for a in hw_axes},
                   "design_label": dp.label, "hw_name": dp.point.hw.name}
            row.update({k: m.get(k) for k in TRAINING_METRICS})
            row["train_seconds"] = seconds.get(tp.id)
            record = records.get(keys[(tp.id, dp.index, "design")])
            dense = records.get(keys[(tp.id, dp.index, "dense")])
            good = record is not None and record["status"] == "ok" and dense is not None \
                and dense["status"] == "ok"
            row["status"] = "ok" if good else "error"
            row["error"] = None if good else next(
                (r["error"] for r in (record, dense) if r is not None and r["error"]), "not run")
            row.update(dp.point.figures)
            if record is not None:
                row.update(record["totals"])
            if good:
                cycles, clock = _number(row.get("cycles")), _number(row.get("clock_mhz"))
                if math.isnan(_number(row.get("latency_s"))):
                    row["latency_s"] = cycles / (clock * 1e6)
                row["edp_pj_s"] = _number(row.get("energy_pj")) * _number(row["latency_s"])
                row["edap_pj_s_mm2"] = row["edp_pj_s"] * _number(row.get("area_mm2"))
                d_energy, d_cycles = _number(dense["totals"].get("energy_pj")), \
                    _number(dense["totals"].get("cycles"))
                row["dense_energy_pj"], row["dense_cycles"] = d_energy, d_cycles
                head = headline_figures(row, dense["totals"])   # as simulate prints them
                row["energy_saving"], row["speedup"] = head["energy_saving"], head["speedup"]
            row["hw_hash"] = dp.point.hw.hash
            rows.append(row)
    return pd.DataFrame(rows)


LEAD = ("val_accuracy", "test_accuracy", "selected", "above_floor", "val_mean_act_sparsity", "weight_sparsity",
        "val_mult_reduction", "energy_saving", "speedup", "energy_pj", "cycles", "latency_s",
        "edp_pj_s", "dense_energy_pj", "dense_cycles", "utilization", "dram_bytes",
        "peak_live_bytes")


def _ordered(table: pd.DataFrame, spec: CodesignSpec) -> pd.DataFrame:
    axes = [a for a in TRAINING_AXES if a in spec.training.given()]
    head = ["train_id", *axes, "design", *spec.hardware.axes, "design_label", "hw_name", "status",
            "error"]
    lead = [c for c in LEAD if c in table]
    fronts = sorted(c for c in table if c.startswith("pareto_"))
    tail = ["train_seconds", "hw_hash"]
    rest = sorted(c for c in table if c not in head + lead + fronts + tail)
    return table[[c for c in head + lead + fronts + rest + tail if c in table]]


def run_codesign(spec: CodesignSpec, out_dir: str | os.PathLike, *, workers: int | None = None,
                 train_jobs: int | None = None, threads: int = 1, device: str = "cpu",
                 progress: bool = True, report: bool = True) -> CodesignOutcome:
    """Run ``spec`` into ``out_dir`` (see the module doc); cached steps are not repeated.

    ``train_jobs``: models trained at once (default: the usable cores), each on
    ``threads`` torch threads; ``workers``: simulation processes (default: the usable
    cores; 1 runs in this process). Refused while another run holds ``out_dir``.
    """
    for name, value in (("--workers", workers), ("--train-jobs", train_jobs), ("--threads", threads)):
        if value is not None:
            check_local_workers(value, name, "threads" if name == "--threads" else "local workers")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out):
        for folder, depth in ((out, 0), (out / "cache", 1), (out / "traces", 0), (out / "train", 2)):
            remove_stale_temps(folder, depth=depth)
        return _run(spec, out, workers, train_jobs, threads, device, progress, report, start)


def _run(spec, out, workers, train_jobs, threads, device, progress, report, start) -> CodesignOutcome:
    from accelsim.trace import open_trace

    # 1. training (each point once; a killed run resumes from its last epoch)
    val: dict[str, dict] = {}
    pending = []
    for tp in spec.points:
        metrics = models.trained_metrics(out, tp)
        if metrics is None:
            pending.append(tp)
        else:
            val[tp.id] = metrics
    cached_train = len(val)
    _say(progress, f"co-design {spec.name}: {len(spec.points)} models x {len(spec.designs)} hardware "
                   f"points; {cached_train} models trained before, {len(pending)} to train")
    # one line per finished model, with the time elapsed and an estimate of the time left
    bar = Progress(total=len(spec.points), initial=cached_train, desc="train", enabled=False)
    jobs = train_jobs or usable_cores()
    if pending:
        _say(progress, f"training {len(pending)} models, {min(jobs, len(pending))} at a time "
                       f"({threads} torch thread{'s' if threads != 1 else ''} each); a line as "
                       "each one finishes")

    def trained(tp, metrics: dict, took: float) -> None:
        val[tp.id] = metrics
        bar.update(1)
        _say(progress, f"  trained {tp.recipe.name}: validation accuracy "
                       f"{metrics.get('val_accuracy', float('nan')):.4f} ({took:.1f} s); "
                       f"{bar.line(time.monotonic())}")

    models.train_points(pending, out, jobs, threads, device, trained)

    seconds = {tp.id: models.train_seconds(out, tp) for tp in spec.points}

    # 2. traces on the validation split
    traced = 0
    hashes: dict[str, tuple[str, str]] = {}
    trace_bar = Progress(total=len(spec.points), desc="trace", enabled=progress)
    try:
        for tp in spec.points:
            path, captured = models.ensure_trace(out, tp, spec.samples, val[tp.id])
            traced += captured
            hashes[tp.id] = (str(path), open_trace(path).content_hash)
            trace_bar.update(1)
    finally:
        trace_bar.close()

    # 3. simulations: every hardware point and its dense twin, on every trace (sweep cache)
    cache = ResultCache(out / "cache")
    keys: dict[tuple[str, int, str], str] = {}
    records: dict[str, dict] = {}
    waiting: dict[str, PointTask] = {}
    for tp in spec.points:
        trace, content = hashes[tp.id]
        for dp in spec.designs:
            for kind, hw in (("design", dp.point.hw), ("dense", dp.point.hw.dense_twin())):
                identity = point_identity(hw.hash, content, spec.fidelity, spec.samples)
                key = point_key(identity)
                keys[(tp.id, dp.index, kind)] = key
                if key in records or key in waiting:
                    continue
                record = cache.get(key)
                if record is None:
                    waiting[key] = PointTask(key, identity, hw, trace, spec.fidelity, spec.samples)
                else:
                    records[key] = record
    cached_sim = len(records)
    tasks = list(waiting.values())
    sim_bar = Progress(total=cached_sim + len(tasks), initial=cached_sim, desc="simulate",
                       enabled=progress)

    def simulated(results: list[dict]) -> None:
        for record in results:
            cacheable, stored = record.pop("cacheable"), record.pop("stored")
            if cacheable and not stored:
                cache.put(record["key"], record)
            records[record["key"]] = record
        sim_bar.update(len(results))

    try:
        n_workers = min(workers or usable_cores(), max(1, len(tasks)))
        if tasks and n_workers == 1:
            for task in tasks:
                simulated(evaluate_chunk([task], str(cache.directory)))
        elif tasks:
            from accelsim.sweep.pool import run_pool

            run_pool(tasks, str(cache.directory), n_workers, simulated)
    finally:
        sim_bar.close()

    # 4. table, fronts, selection, test figures of the selected models (once each)
    objectives = objective_tuples(spec)
    table = build_rows(spec, val, seconds, keys, records)
    floor = apply_floor(table, spec)
    table = mark_fronts(table, objectives)
    selected = select_models(table, objectives)
    by_id = {tp.id: tp for tp in spec.points}
    test = {i: models.test_metrics(out, by_id[i]) for i in selected}
    table["selected"] = table["train_id"].isin(selected)
    table["test_accuracy"] = [test[i]["test_accuracy"] if i in test else np.nan
                              for i in table["train_id"]]
    table = _ordered(table, spec)
    results_path = out / RESULTS
    atomic_write(results_path, lambda tmp: table.to_csv(tmp, index=False))
    files = {"results": str(results_path)}
    if report:
        from accelsim.codesign.report import write_plot, write_report

        files["plot"] = str(write_plot(table, spec, out / "codesign_pareto.png"))
        files["report"] = str(write_report(table, spec, out / "report.html", out / "codesign_pareto.png"))
    outcome = CodesignOutcome(results_path, table, trained=len(pending), trained_cached=cached_train,
                              traced=traced, simulated=len(tasks), simulated_cached=cached_sim,
                              selected=selected, elapsed_s=time.perf_counter() - start, files=files,
                              floor=floor)
    _say(progress, outcome.floor_text())
    write_json_atomic(out / "codesign.json", {
        "spec": spec.source, "name": spec.name, "accelsim_version": accelsim.__version__,
        "models": [{"id": tp.id, "recipe": tp.recipe.name, "params": tp.params} for tp in spec.points],
        "designs": [{"index": dp.index, "label": dp.label, "hw_hash": dp.point.hw.hash}
                    for dp in spec.designs],
        "objectives": [list(o) for o in objectives], "selected": selected,
        "accuracy_floor": None if floor != floor else round(floor, 6),
        "min_val_accuracy": spec.min_val_accuracy, "max_accuracy_drop": spec.max_accuracy_drop,
        "test": {i: {k: v for k, v in test[i].items() if not isinstance(v, dict)} for i in selected},
        "trained": outcome.trained, "simulated": outcome.simulated, "elapsed_s": round(outcome.elapsed_s, 3),
        "files": files})
    return outcome
