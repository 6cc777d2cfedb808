"""The training side of a co-design: train each point once, trace it on the validation
split, evaluate the selected models on the test split once.

Everything here is cached in the co-design folder and resumable:

    OUT/train/<id>/          a recipe run (``accelsim.train.run``): resumes from last.pt
    OUT/traces/<id>.trace    its trace on the validation split (written atomically)
    OUT/train/<id>/test_metrics.json   the test figures of a selected model (atomic)

``<id>`` is the first 16 hex digits of the recipe's SHA-256, so a point is trained once
whatever spec lists it.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

from accelsim.atomic import atomic_write_text
from accelsim.errors import AccelsimError

FINAL = "model.pt"
TEST_FILE = "test_metrics.json"


def train_dir(out: Path, point) -> Path:
    return out / "train" / point.id


def trace_path(out: Path, point) -> Path:
    return out / "traces" / f"{point.id}.trace"


def trained_metrics(out: Path, point) -> dict | None:
    """The final (validation) metrics of a finished training point, or None if not finished."""
    from accelsim.train.checkpoint import load_checkpoint

    path = train_dir(out, point) / FINAL
    if not path.is_file():
        return None
    try:
        _, _, meta = load_checkpoint(path)
    except AccelsimError:
        return None  # damaged: trained again (resuming from last.pt)
    if meta.get("recipe_sha256") != point.recipe.sha256 or not isinstance(meta.get("metrics"), dict):
        return None
    return meta["metrics"]


def train_seconds(out: Path, point) -> float | None:
    """Training time of a point: the sum of its epochs' seconds (as recorded when it ran)."""
    path = train_dir(out, point) / "metrics.jsonl"
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return round(sum(float(line.get("seconds", 0.0)) for line in lines), 3)
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def _train_one(raw: dict, source: str, out: str, threads: int, device: str) -> tuple[str, dict, float]:
    """Worker: train one recipe (resuming a killed run) without reading the test split."""
    import torch

    from accelsim.train.recipe import parse_recipe
    from accelsim.train.run import STATE_FILE, run_recipe

    torch.set_num_threads(threads)
    recipe = parse_recipe(raw, source)
    started = time.perf_counter()
    result = run_recipe(recipe, out, resume=(Path(out) / STATE_FILE).exists(), progress=False,
                        device=device, evaluate_test=False)
    return out, result.metrics, time.perf_counter() - started


def _init_worker(parent_pid: int) -> None:
    import signal

    from accelsim.sweep.pool import die_with_parent

    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def train_points(points: list, out: Path, jobs: int, threads: int, device: str,
                 done: Callable[[object, dict, float], None]) -> None:
    """Train ``points`` (``jobs`` at a time, ``threads`` torch threads each); ``done(point,
    metrics, seconds)`` after each. Worker processes die with this one."""
    if not points:
        return
    args = {str(train_dir(out, p)): p for p in points}
    if jobs <= 1 or len(points) == 1:
        for path, point in args.items():
            _, metrics, seconds = _train_one(dict(point.recipe.raw), point.recipe.source, path,
                                             threads, device)
            done(point, metrics, seconds)
        return
    context = multiprocessing.get_context("spawn")  # torch's thread pools are not fork-safe
    with ProcessPoolExecutor(max_workers=min(jobs, len(points)), mp_context=context,
                             initializer=_init_worker, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_train_one, dict(p.recipe.raw), p.recipe.source, path, threads, device)
                   for path, p in args.items()}
        try:
            while futures:
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    path, metrics, seconds = future.result()
                    done(args[path], metrics, seconds)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _model_from(out: Path, point):
    from accelsim.train.checkpoint import file_sha256, load_checkpoint
    from accelsim.train.pruning import apply_masks
    from accelsim.zoo import build_model

    path = train_dir(out, point) / FINAL
    state, masks, _ = load_checkpoint(path)
    model = build_model(point.recipe.model, **point.recipe.model_kwargs)
    model.load_state_dict(state)
    apply_masks(model, masks)
    return model.eval(), path, file_sha256(path)


def validation_split(recipe):
    """The recipe's validation split (the samples its training never saw)."""
    from accelsim.datasets import load_dataset, split_validation

    _, val = split_validation(load_dataset(recipe.data.dataset, train=True),
                              recipe.data.validation_fraction, recipe.data.validation_seed)
    if val is None:
        raise AccelsimError(f"{recipe.source}: data.validation_fraction is 0; a co-design traces "
                            "and selects on the validation split, so the recipe must hold one out")
    return val


def ensure_trace(out: Path, point, samples: int, val_metrics: dict) -> tuple[Path, bool]:
    """The point's validation trace (captured unless a trace of this checkpoint exists).

    Returns ``(path, captured)``.
    """
    from accelsim.trace import open_trace
    from accelsim.trace.capture import CaptureOptions, capture_trace
    from accelsim.trace.writer import write_trace

    path = trace_path(out, point)
    model, ckpt, sha = _model_from(out, point)
    val = validation_split(point.recipe)
    n = min(samples, len(val))
    if path.is_file():
        try:
            prov = open_trace(path).provenance
            if prov.get("checkpoint_sha256") == sha and prov.get("num_samples") == n:
                return path, False
        except AccelsimError:
            pass  # damaged: captured again
    batches = (val.batch(slice(i, min(i + 64, n))) for i in range(0, n, 64))
    rec = point.recipe
    data = capture_trace(model, batches, CaptureOptions(samples=n), provenance={
        "model": rec.model, "checkpoint": str(ckpt), "checkpoint_sha256": sha,
        "dataset": (f"{rec.data.dataset} validation split (fraction {rec.data.validation_fraction:g}, "
                    f"seed {rec.data.validation_seed})"),
        "accuracy": val_metrics.get("val_accuracy"), "recipe_sha256": rec.sha256})
    write_trace(path, data)
    return path, True


def test_metrics(out: Path, point) -> dict:
    """The test-split figures of a selected model: evaluated once, then read from its file."""
    from accelsim.datasets import load_dataset
    from accelsim.train.metrics import evaluate
    from accelsim.train.run import prefixed

    path = train_dir(out, point) / TEST_FILE
    model, _, sha = _model_from(out, point)
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            if isinstance(stored, dict) and stored.get("checkpoint_sha256") == sha:
                return stored["metrics"]
        except (OSError, ValueError, KeyError):
            pass
    figures = prefixed("test_", evaluate(model, load_dataset(point.recipe.data.dataset, train=False),
                                         point.recipe.data.eval_batch_size, "cpu", skip_layers=1))
    atomic_write_text(path, json.dumps({"checkpoint_sha256": sha, "metrics": figures}, sort_keys=True))
    return figures
