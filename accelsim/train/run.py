"""Run a recipe: stages of training, pruning and activation penalties, resumable.

Output folder layout::

    OUT/metrics.jsonl        one JSON line per epoch (training loss terms; val_* figures:
                             accuracy, loss, sparsity, MACs on the validation split)
    OUT/last.pt              latest state: weights, masks, optimizer state, position
    OUT/stages/<stage>.pt    the model at the end of each stage
    OUT/model.pt             the final model (weights with pruned entries exactly 0, masks,
                             provenance: recipe, seed, metrics, accelsim version)

Each epoch reseeds PyTorch from (seed, stage, epoch) and the learning rate is a
function of the step, so resuming from ``last.pt`` reproduces the uninterrupted run.
Training runs with ``torch.use_deterministic_algorithms`` on (warn-only where an op has
no deterministic kernel); the thread count is recorded in the provenance, since CPU
reductions may round differently with another count.

Method: the recipe's ``data.validation_fraction`` of the training split (stratified,
seeded by ``data.validation_seed``) is held out and every per-epoch figure is measured
on it; the test split is evaluated once, on the final model (``test_*`` metrics).
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from accelsim import __version__
from accelsim.datasets import load_dataset, split_validation, validation_indices
from accelsim.atomic import atomic_write_text, check_output_path, open_output_fd
from accelsim.errors import AccelsimError, ConfigError
from accelsim.train.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from accelsim.train.loop import build_optimizer, train_epoch
from accelsim.train.metrics import evaluate, execution_order
from accelsim.train.penalties import ActivationPenalty
from accelsim.train.pruning import (apply_masks, cubic_sparsity, get_masks, plain_state_dict,
                                    prunable_layers, prune_global, prune_layerwise, weight_sparsity)
from accelsim.train.recipe import PruneSpec, Recipe, StageSpec, load_recipe
from accelsim.zoo import build_model

STATE_FILE = "last.pt"
METRICS_FILE = "metrics.jsonl"
FINAL_FILE = "model.pt"

EpochCallback = Callable[[str, int, dict], None]


@dataclass
class RunResult:
    """What :func:`run_recipe` produced."""
    model: nn.Module
    metrics: dict
    checkpoint: Path
    out_dir: Path
    history: list[dict] = field(default_factory=list)


def epoch_seed(seed: int, stage_index: int, epoch: int) -> int:
    """Seed of one epoch, independent of everything that ran before it."""
    return int(np.random.SeedSequence([seed, stage_index, epoch]).generate_state(1)[0])


def run_recipe(recipe: Recipe | str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
               resume: bool = False, seed: int | None = None, device: str = "cpu",
               save_to: str | os.PathLike | None = None, progress: bool = True,
               on_epoch_end: EpochCallback | None = None, model: str | None = None,
               evaluate_test: bool = True) -> RunResult:
    """Train a recipe (a :class:`Recipe` or a YAML path) and write its outputs to ``out_dir``.

    ``out_dir`` defaults to ``runs/<recipe name>``. An existing run there is an error
    unless ``resume`` is set, in which case training continues from ``last.pt``.
    ``seed`` overrides the recipe's seed; ``save_to`` also writes the final checkpoint
    there. ``model`` replaces the recipe's model (a file may name only zoo models; this
    argument may name ``package.module:attribute``). ``on_epoch_end(stage_name, epoch, metrics)`` runs after each epoch's
    state is saved (raising from it interrupts the run like a crash would).
    ``evaluate_test=False`` leaves the test split unread (a caller that selects among
    many models evaluates only the selected ones on it, once).
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, model=model)
    elif model is not None:
        recipe = recipe.with_model(model)
    if seed is not None and seed != recipe.seed:
        recipe = recipe.with_seed(seed)
    out = Path(out_dir) if out_dir is not None else Path("runs") / recipe.name
    run = _Run(recipe, out, device, progress, on_epoch_end)
    run.evaluate_test = evaluate_test
    return run.execute(resume, save_to)


class _Run:
    def __init__(self, recipe: Recipe, out: Path, device: str, progress: bool,
                 on_epoch_end: EpochCallback | None):
        self.recipe = recipe
        self.out = out
        from accelsim.device import resolve_device

        self.device = resolve_device(str(device), "device")  # one line if unusable here
        self.progress = progress
        self.on_epoch_end = on_epoch_end
        self.history: list[dict] = []
        self.evaluate_test = True

    # ------------------------------------------------------------------ setup
    def _build(self) -> None:
        recipe = self.recipe
        full = load_dataset(recipe.data.dataset, train=True)
        self.train_set, self.val_set = split_validation(full, recipe.data.validation_fraction,
                                                        recipe.data.validation_seed)
        self.split = _split_record(full, self.val_set, recipe)
        torch.manual_seed(recipe.seed)
        try:
            self.model = build_model(recipe.model, **recipe.model_kwargs).to(self.device)
        except TypeError as exc:
            raise ConfigError(recipe.source, "model_kwargs", f"model {recipe.model!r} rejects them: {exc}") from None
        self.param_order = [name for name, _ in self.model.named_parameters()]
        sample = self.train_set.batch(slice(0, 2))[0].to(self.device)
        try:
            self.layer_order = execution_order(self.model, sample)
            with torch.no_grad():
                outputs = self.model.eval()(sample).shape[-1]
        except RuntimeError as exc:
            raise ConfigError(recipe.source, "data.dataset",
                              f"samples of shape {tuple(sample.shape[1:])} from {recipe.data.dataset!r} "
                              f"do not fit model {recipe.model!r}: {exc}") from None
        if outputs != self.train_set.num_classes:
            raise ConfigError(recipe.source, "model_kwargs.num_classes",
                              f"model {recipe.model!r} has {outputs} outputs but {recipe.data.dataset!r} "
                              f"has {self.train_set.num_classes} classes")
        recipe.check_layers(self.layer_order)
        self.layers = prunable_layers(self.model)
        self.init_sha256 = None

    def _load_init(self) -> None:
        """Start from the recipe's ``init`` checkpoint (weights and pruning masks)."""
        path = self.recipe.init_path()
        if path is None:
            return
        if not path.is_file():
            raise ConfigError(self.recipe.source, "init", f"checkpoint {path} not found")
        state, masks, _ = load_checkpoint(path)
        try:
            self.model.load_state_dict(state)
            apply_masks(self.model, {k: v.to(self.device) for k, v in masks.items()})
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(self.recipe.source, "init",
                              f"checkpoint {path} does not fit model {self.recipe.model!r}: {exc}") from None
        self.init_sha256 = file_sha256(path)

    def _canonical_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters in the order of the unpruned model (``x_orig`` as ``x``)."""
        params = {name[:-len("_orig")] if name.endswith("_orig") else name: p
                  for name, p in self.model.named_parameters()}
        return [params[name] for name in self.param_order if name in params]

    def _metadata(self, stage: str, metrics: dict) -> dict:
        recipe = self.recipe
        meta = {
            "recipe": recipe.raw, "recipe_name": recipe.name, "recipe_file": recipe.source,
            "recipe_sha256": recipe.sha256, "seed": recipe.seed, "model": recipe.model,
            "model_kwargs": dict(recipe.model_kwargs), "input_shape": list(self.train_set.sample_shape),
            "num_classes": self.train_set.num_classes, "dataset": recipe.data.dataset,
            "init": str(recipe.init_path()) if recipe.init else None, "init_sha256": self.init_sha256,
            "data_split": self.split, "torch_threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "device": str(self.device), "stage": stage, "layers": list(self.layer_order), "metrics": metrics,
            "accelsim_version": __version__, "torch_version": str(torch.__version__),
            "python_version": platform.python_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        # plain JSON types only, so the file loads with torch.load(weights_only=True)
        return json.loads(json.dumps(meta, default=str))

    def _save(self, path: Path, stage: str, metrics: dict, resume_state: dict | None = None) -> None:
        meta = self._metadata(stage, metrics)
        if resume_state is not None:
            meta["resume"] = resume_state
        save_checkpoint(path, plain_state_dict(self.model, self.param_order), meta, get_masks(self.model))

    # ------------------------------------------------------------------ resume
    def _restore(self) -> tuple[int, int, dict | None, dict]:
        state_path = self.out / STATE_FILE
        state, masks, meta = load_checkpoint(state_path)
        info = meta.get("resume")
        if not isinstance(info, dict):
            raise AccelsimError(f"{state_path}: no resume information in this checkpoint")
        if meta.get("recipe_sha256") != self.recipe.sha256:
            raise AccelsimError(f"{state_path}: was written by a different recipe (or seed) than "
                                f"{self.recipe.source}; use another output folder")
        self._check_resume_state(state_path, info)
        try:
            self.model.load_state_dict(state)
            apply_masks(self.model, {k: v.to(self.device) for k, v in masks.items()})
        except (RuntimeError, ValueError) as exc:
            raise AccelsimError(f"{state_path}: does not match model {self.recipe.model!r}: {exc}") from None
        self.init_sha256 = meta.get("init_sha256")
        self._truncate_metrics(int(info["metrics_lines"]))
        return int(info["stage"]), int(info["epoch"]), info.get("optimizer"), meta.get("metrics", {})

    def _check_resume_state(self, state_path: Path, info: dict) -> None:
        """Refuse a resume state that does not fit the recipe, before anything is changed.

        ``stage`` and ``epoch`` must name a position of the recipe and ``metrics_lines``
        must equal the epochs run before it (one metrics line per epoch).
        """
        stages = self.recipe.stages

        def bad(field: str, expected: str) -> AccelsimError:
            return AccelsimError(f"{state_path}: resume.{field}: expected {expected}, got "
                                 f"{info.get(field)!r}; the file is damaged, start a new run")

        def integer(field: str) -> int:
            value = info.get(field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad(field, "an integer")
            return value

        stage = integer("stage")
        if not 0 <= stage < len(stages):
            raise bad("stage", f"a stage index from 0 to {len(stages) - 1}")
        epoch = integer("epoch")
        if not 0 <= epoch <= stages[stage].epochs:
            raise bad("epoch", f"an epoch from 0 to {stages[stage].epochs} of stage "
                               f"{stages[stage].name!r}")
        expected = sum(s.epochs for s in stages[:stage]) + epoch
        if integer("metrics_lines") != expected:
            raise bad("metrics_lines", f"{expected} (the epochs run before stage {stage}, epoch "
                                       f"{epoch})")
        if info.get("optimizer") is not None and not isinstance(info.get("optimizer"), dict):
            raise bad("optimizer", "an optimizer state (a mapping) or null")

    def _truncate_metrics(self, lines: int) -> None:
        path = check_output_path(self.out / METRICS_FILE, "metrics log")  # never read a FIFO
        kept = path.read_text().splitlines()[:lines] if path.exists() else []
        if len(kept) < lines:
            raise AccelsimError(f"{path}: has {len(kept)} lines, the checkpoint expects {lines}")
        history = []
        for number, line in enumerate(kept, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                raise AccelsimError(f"{path}: line {number} is not a JSON object; the metrics "
                                    "file is damaged, start a new run")
            history.append(record)
        self.history = history
        _atomic_write_text(path, "".join(line + "\n" for line in kept))

    # ------------------------------------------------------------------ run
    def execute(self, resume: bool, save_to: str | os.PathLike | None) -> RunResult:
        state_path = self.out / STATE_FILE
        if state_path.exists() and not resume:
            raise AccelsimError(f"{self.out}: already holds a run ({STATE_FILE}); pass --resume to "
                                "continue it or choose another output folder with -o")
        with deterministic(self.device):
            return self._execute(resume, save_to, state_path)

    def _epoch_metrics(self) -> dict:
        """Weight sparsity, and every data-dependent figure on the validation split (``val_*``)."""
        total, layers = weight_sparsity(self.model)
        metrics = {"weight_sparsity": total, "layer_weight_sparsity": layers}
        if self.val_set is not None:
            metrics.update(prefixed("val_", evaluate(self.model, self.val_set,
                                                     self.recipe.data.eval_batch_size, self.device,
                                                     skip_layers=1)))
        return metrics

    def _final_metrics(self, last: dict) -> dict:
        """The final model's validation figures plus its one test-set evaluation (``test_*``)."""
        metrics = dict(last) if last else self._epoch_metrics()
        if not self.evaluate_test:
            return metrics
        test_set = load_dataset(self.recipe.data.dataset, train=False)
        metrics.update(prefixed("test_", evaluate(self.model, test_set, self.recipe.data.eval_batch_size,
                                                  self.device, skip_layers=1)))
        return metrics

    def _execute(self, resume: bool, save_to: str | os.PathLike | None, state_path: Path) -> RunResult:
        self._build()
        self.out.mkdir(parents=True, exist_ok=True)
        start_stage, start_epoch, opt_state, metrics = 0, 0, None, {}
        if resume and state_path.exists():
            start_stage, start_epoch, opt_state, metrics = self._restore()
        else:
            self._load_init()
            _atomic_write_text(self.out / METRICS_FILE, "")
        for index in range(start_stage, len(self.recipe.stages)):
            stage = self.recipe.stages[index]
            first = start_epoch if index == start_stage else 0
            if first < stage.epochs:
                metrics = self._run_stage(index, stage, first, opt_state if index == start_stage else None)
        metrics = self._final_metrics(metrics)
        final = self.out / FINAL_FILE
        last_stage = self.recipe.stages[-1].name
        self._save(final, last_stage, metrics)
        if save_to is not None:
            self._save(Path(save_to), last_stage, metrics)
        return RunResult(self.model, metrics, Path(save_to) if save_to else final, self.out, self.history)

    def _run_stage(self, index: int, stage: StageSpec, first_epoch: int, opt_state: dict | None) -> dict:
        recipe = self.recipe
        optimizer = build_optimizer(stage.optimizer, self._canonical_parameters())
        if opt_state is not None:
            try:
                optimizer.load_state_dict(opt_state)
            except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
                raise AccelsimError(f"{self.out / STATE_FILE}: resume.optimizer does not fit "
                                    f"stage {stage.name!r}'s optimizer ({type(exc).__name__}: "
                                    f"{exc}); the file is damaged, start a new run") from None
        coefficients = (stage.activation_penalty.per_layer(self.layer_order)
                        if stage.activation_penalty else {})
        weights = [self.layers[name] for name in self.layer_order]
        metrics: dict = {}
        penalty = (ActivationPenalty(self.model, coefficients, stage.activation_penalty.type,
                                     stage.activation_penalty.b) if stage.activation_penalty else None)
        for epoch in range(first_epoch, stage.epochs):
            started = time.perf_counter()
            seed = epoch_seed(recipe.seed, index, epoch)
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            if stage.prune is not None:
                self._prune(stage.prune, epoch)
            desc = f"{recipe.name}:{stage.name} {epoch + 1}/{stage.epochs}"
            if penalty is not None:
                with penalty:
                    result = self._train(stage, optimizer, generator, epoch, penalty, weights, desc)
            else:
                result = self._train(stage, optimizer, generator, epoch, None, weights, desc)
            metrics = self._epoch_metrics()
            line = {"stage": stage.name, "stage_index": index, "epoch": epoch + 1,
                    "global_epoch": len(self.history) + 1, "lr": result.lr,
                    "train": {"ce": result.ce, "act_penalty": result.act_penalty,
                              "weight_l1": result.weight_l1, "total": result.total,
                              "accuracy": result.accuracy},
                    "penalty_terms": result.penalty_terms, **metrics,
                    "seconds": round(time.perf_counter() - started, 3)}
            self.history.append(line)
            fd = open_output_fd(self.out / METRICS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                "metrics log")
            with os.fdopen(fd, "a") as fh:
                fh.write(json.dumps(line) + "\n")
            if epoch + 1 == stage.epochs:
                self._save(self.out / "stages" / f"{stage.name}.pt", stage.name, metrics)
            resume_state = {"stage": index, "epoch": epoch + 1, "metrics_lines": len(self.history),
                            "optimizer": optimizer.state_dict() if epoch + 1 < stage.epochs else None}
            self._save(self.out / STATE_FILE, stage.name, metrics, resume_state)
            if self.progress:
                tqdm.write(_summary(line), file=sys.stderr)
            if self.on_epoch_end is not None:
                self.on_epoch_end(stage.name, epoch + 1, line)
        return metrics

    def _train(self, stage, optimizer, generator, epoch, penalty, weights, desc):
        return train_epoch(self.model, self.train_set, optimizer,
                           batch_size=self.recipe.data.batch_size, generator=generator,
                           base_lr=stage.optimizer.lr, lr_spec=stage.lr_schedule, epoch=epoch,
                           epochs=stage.epochs, penalty=penalty, weight_l1=stage.weight_l1,
                           weights=weights, augment=self.recipe.data.augment, device=self.device,
                           desc=desc, progress=self.progress)

    def _prune(self, spec: PruneSpec, epoch: int) -> None:
        """Raise sparsity to this epoch's target (idempotent, so resuming repeats it harmlessly)."""
        if epoch < spec.start_epoch:
            return
        targets = spec.targets(self.layer_order)

        def at(final: float) -> float:
            if spec.schedule == "oneshot":
                return final
            return cubic_sparsity(epoch, spec.start_epoch, spec.end_epoch,
                                  min(spec.initial_sparsity, final), final)

        if spec.scope == "global":
            prune_global({name: self.layers[name] for name in targets}, at(next(iter(targets.values()))))
        else:
            prune_layerwise(self.layers, {name: at(s) for name, s in targets.items()})


def _summary(line: dict) -> str:
    text = (f"{line['stage']} epoch {line['epoch']}: train loss {line['train']['total']:.4f} "
            f"weight-sparsity {line['weight_sparsity']:.3f}")
    if "val_accuracy" in line:
        text += (f" | validation: acc {line['val_accuracy']:.4f} act-sparsity "
                 f"{line['val_mean_act_sparsity']:.3f} mult-reduction {line['val_mult_reduction']:.3f}")
    return text


# Figures of :func:`evaluate` that do not depend on the data (kept without a prefix).
_DATA_FREE = ("weight_sparsity", "layer_weight_sparsity")


def prefixed(prefix: str, figures: dict) -> dict:
    """``evaluate``'s data-dependent figures under ``prefix`` (``test_loss`` -> ``<prefix>loss``)."""
    return {prefix + ("loss" if key == "test_loss" else key): value
            for key, value in figures.items() if key not in _DATA_FREE}


def _split_record(full, val_set, recipe: Recipe) -> dict:
    """Provenance of the validation split: fraction, seed, sizes and a hash of its indices."""
    import hashlib

    fraction, seed = recipe.data.validation_fraction, recipe.data.validation_seed
    indices = (validation_indices(full.labels.numpy(), fraction, seed) if val_set is not None
               else np.zeros(0, dtype=np.int64))
    return {"validation_fraction": fraction, "validation_seed": seed,
            "train_samples": len(full) - len(indices), "validation_samples": len(indices),
            "validation_indices_sha256": hashlib.sha256(indices.astype("<i8").tobytes()).hexdigest(),
            "stratified": True}


@contextmanager
def deterministic(device: torch.device):
    """``torch.use_deterministic_algorithms(True)`` meanwhile (warn-only: an op without a
    deterministic kernel warns rather than stops training); restores the previous setting."""
    was = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    if device.type == "cuda":  # cuBLAS needs a fixed workspace to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)