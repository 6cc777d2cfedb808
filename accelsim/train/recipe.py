"""Training recipes: a strict YAML schema turned into frozen dataclasses.

A recipe names a model, a data set and a list of stages; each stage trains for
some epochs with its own optimizer and may prune weights and/or penalise
activations. Unknown keys, wrong types and out-of-range values raise
:class:`~accelsim.errors.ConfigError` naming the file, the field path
(``stages[2].prune.sparsity``) and what was expected. Example::

    version: 1
    name: lenet5_digits_dual
    seed: 0
    model: lenet5
    data: {dataset: digits, batch_size: 64, validation_fraction: 0.1, validation_seed: 0}
    stages:
      - name: dense
        epochs: 20
        optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
        lr_schedule: cosine
      - name: prune
        epochs: 10
        optimizer: {type: sgd, lr: 0.01, momentum: 0.9}
        prune: {sparsity: 0.8, scope: layerwise, schedule: cubic, end_epoch: 6}
        weight_l1: 1.0e-4
      - name: sparse
        epochs: 10
        optimizer: {type: sgd, lr: 0.01, momentum: 0.9}
        activation_penalty: {type: tl1, b: 1.0, lambda: 1.0e-3}
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from accelsim.errors import AccelsimError, ConfigError, brief
from accelsim.train.penalties import PENALTY_KINDS
from accelsim.yamlio import read_yaml

RECIPE_VERSION = 1
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "cosine", "step")
PRUNE_SCOPES = ("layerwise", "global")
PRUNE_SCHEDULES = ("oneshot", "cubic")
LAYER_SELECTORS = ("all", "all_but_first")

# Ceilings of recipe numbers: far above any real training, low enough that nothing
# downstream overflows (torch's float32 optimizer arithmetic, numpy's legacy seeding).
MAX_SEED = 2 ** 32 - 1          # every generator (torch, numpy, numpy's legacy) accepts it
MAX_LR = 1e3                    # learning rates (and min_lr); float32 holds lr * gradient
MAX_COEFFICIENT = 1e6           # penalty lambdas, tl1 b, weight_l1, weight_decay
MAX_EPOCHS = 100_000
MAX_BATCH = 1 << 20
MAX_CROP_PADDING = 1024


@dataclass(frozen=True)
class OptimizerSpec:
    type: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class LRScheduleSpec:
    type: str = "constant"
    step_epochs: int = 10      # step: multiply by gamma every step_epochs epochs
    gamma: float = 0.1
    min_lr: float = 0.0        # cosine: final learning rate


@dataclass(frozen=True)
class PenaltySpec:
    """Activation penalty; ``coefficients`` is a scalar or per-layer lambdas."""
    type: str
    coefficients: float | Mapping[str, float]
    b: float = 1.0
    layers: str | tuple[str, ...] = "all_but_first"

    def per_layer(self, execution_order: list[str]) -> dict[str, float]:
        """Lambda per penalised layer, given the conv/linear layers in execution order."""
        if isinstance(self.coefficients, Mapping):
            return dict(self.coefficients)
        return {name: float(self.coefficients) for name in select_layers(self.layers, execution_order)}


@dataclass(frozen=True)
class PruneSpec:
    """Magnitude pruning; ``sparsity`` is a fraction, or per layer (layerwise scope only)."""
    sparsity: float | Mapping[str, float]
    scope: str = "layerwise"
    schedule: str = "oneshot"
    initial_sparsity: float = 0.0
    start_epoch: int = 0
    end_epoch: int | None = None    # cubic: last epoch that prunes (default: the stage's last)
    layers: str | tuple[str, ...] = "all"

    def targets(self, execution_order: list[str]) -> dict[str, float]:
        if isinstance(self.sparsity, Mapping):
            return dict(self.sparsity)
        return {name: float(self.sparsity) for name in select_layers(self.layers, execution_order)}


@dataclass(frozen=True)
class StageSpec:
    name: str
    epochs: int
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    lr_schedule: LRScheduleSpec = field(default_factory=LRScheduleSpec)
    activation_penalty: PenaltySpec | None = None
    weight_l1: float = 0.0
    prune: PruneSpec | None = None


@dataclass(frozen=True)
class AugmentSpec:
    crop_padding: int = 0     # random crop after zero padding by this many pixels
    hflip: bool = False       # random horizontal flip


@dataclass(frozen=True)
class DataSpec:
    dataset: str
    batch_size: int = 64
    eval_batch_size: int = 512
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    validation_fraction: float = 0.1   # of the training split, held out for every choice
    validation_seed: int = 0           # seed of the (stratified) validation split


@dataclass(frozen=True)
class Recipe:
    name: str
    seed: int
    model: str
    data: DataSpec
    stages: tuple[StageSpec, ...]
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    init: str | None = None    # checkpoint to start from (relative paths: to the recipe file)
    source: str = "<recipe>"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def init_path(self) -> Path | None:
        """The ``init`` checkpoint, relative paths taken from the recipe file's folder."""
        if self.init is None:
            return None
        path = Path(self.init).expanduser()
        if not path.is_absolute() and self.source != "<recipe>":
            path = Path(self.source).parent / path
        return path

    @property
    def sha256(self) -> str:
        """Hash of the parsed recipe content (ignores comments and formatting)."""
        text = json.dumps(self.raw, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def with_model(self, model: str) -> "Recipe":
        """The same recipe on another model (the user's ``--model``; kwargs are kept).

        ``model`` is a zoo name, ``torchvision:NAME`` or the user's own code marked as
        :class:`accelsim.zoo.UserCode` (the command line's ``--model`` is).
        """
        return parse_recipe(dict(self.raw, model=model), self.source)

    def with_seed(self, seed: int) -> "Recipe":
        raw = dict(self.raw, seed=int(seed))
        return parse_recipe(raw, self.source)

    def check_layers(self, execution_order: list[str]) -> None:
        """Raise ConfigError if a stage names a layer the model does not have."""
        known = set(execution_order)
        for i, stage in enumerate(self.stages):
            parts = []
            if stage.activation_penalty is not None:
                pen = stage.activation_penalty
                if isinstance(pen.coefficients, Mapping):
                    parts.append(("activation_penalty.lambda", list(pen.coefficients)))
                elif not isinstance(pen.layers, str):
                    parts.append(("activation_penalty.layers", list(pen.layers)))
            if stage.prune is not None:
                if isinstance(stage.prune.sparsity, Mapping):
                    parts.append(("prune.sparsity", list(stage.prune.sparsity)))
                elif not isinstance(stage.prune.layers, str):
                    parts.append(("prune.layers", list(stage.prune.layers)))
            for where, names in parts:
                for name in names:
                    if name not in known:
                        raise ConfigError(self.source, f"stages[{i}].{where}",
                                          f"model {self.model!r} has no conv/linear layer {name!r}; "
                                          f"its layers are {', '.join(execution_order)}")


def select_layers(selector: str | tuple[str, ...], execution_order: list[str]) -> list[str]:
    """Resolve ``all`` / ``all_but_first`` / an explicit list against the model's layers."""
    if selector == "all":
        return list(execution_order)
    if selector == "all_but_first":
        return list(execution_order[1:])
    return list(selector)


def load_recipe(path: str | os.PathLike, model: str | None = None) -> Recipe:
    """Read and validate a recipe YAML file (strict loader of :mod:`accelsim.yamlio`).

    The file may only name a zoo model with plain, typed ``model_kwargs`` (a file is data,
    never code); ``model`` (the user's ``--model``) replaces it and may name
    ``package.module:attribute``.
    """
    path = Path(path)
    source = str(path)
    raw = read_yaml(path, "recipe file")
    recipe = parse_recipe(raw, source)
    if "name" not in raw:
        recipe = parse_recipe(dict(raw, name=path.stem), source)
    if model is not None:
        return recipe.with_model(model)
    return recipe


def parse_recipe(raw: Any, source: str = "<recipe>") -> Recipe:
    """Validate a recipe given as a plain mapping (e.g. from YAML).

    The mapping is data: its ``model`` must be a zoo model with plain, typed
    ``model_kwargs`` (:func:`accelsim.zoo.from_data.check_model_from_data`), unless it is
    the user's own code marked as :class:`accelsim.zoo.UserCode` (set by
    :meth:`Recipe.with_model` from ``--model``; text from a file never carries the mark).
    """
    r = _Reader(source)
    top = r.mapping(raw, "", required=("version", "model", "data", "stages"),
                    optional=("name", "description", "seed", "model_kwargs", "init"))
    version = r.integer(top["version"], "version", minimum=1)
    if version != RECIPE_VERSION:
        raise ConfigError(source, "version", f"expected {RECIPE_VERSION}, got {version}")
    model = r.string(top["model"], "model")
    model_kwargs = top.get("model_kwargs", {})
    if not isinstance(model_kwargs, dict) or not all(isinstance(k, str) for k in model_kwargs):
        raise ConfigError(source, "model_kwargs", "expected a mapping of keyword arguments")
    from accelsim.zoo.gate import UserCode

    if not isinstance(model, UserCode):
        from accelsim.zoo.from_data import check_model_from_data

        try:
            check_model_from_data(model, dict(model_kwargs), source)
        except AccelsimError as exc:
            raise ConfigError(None, None, str(exc)) from None
    stages_raw = top["stages"]
    if not isinstance(stages_raw, list) or not stages_raw:
        raise ConfigError(source, "stages", "expected a non-empty list of stages")
    stages = tuple(_stage(r, s, f"stages[{i}]") for i, s in enumerate(stages_raw))
    names = [s.name for s in stages]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise ConfigError(source, f"stages[{i}].name", f"stage name {name!r} is used twice")
    return Recipe(
        name=r.string(top.get("name", Path(source).stem), "name"),
        seed=r.integer(top.get("seed", 0), "seed", minimum=0, maximum=MAX_SEED),
        model=model,
        data=_data(r, top["data"], "data"),
        stages=stages,
        model_kwargs=dict(model_kwargs),
        description=r.string(top.get("description", ""), "description", allow_empty=True),
        init=r.string(top["init"], "init") if top.get("init") is not None else None,
        source=source,
        raw=dict(top),
    )


def _data(r: "_Reader", raw: Any, path: str) -> DataSpec:
    d = r.mapping(raw, path, required=("dataset",),
                  optional=("batch_size", "eval_batch_size", "augment", "validation_fraction",
                            "validation_seed"))
    augment = AugmentSpec()
    if "augment" in d:
        a = r.mapping(d["augment"], f"{path}.augment", optional=("crop_padding", "hflip"))
        augment = AugmentSpec(crop_padding=r.integer(a.get("crop_padding", 0), f"{path}.augment.crop_padding",
                                                     minimum=0, maximum=MAX_CROP_PADDING),
                              hflip=r.boolean(a.get("hflip", False), f"{path}.augment.hflip"))
    return DataSpec(dataset=r.string(d["dataset"], f"{path}.dataset"),
                    batch_size=r.integer(d.get("batch_size", 64), f"{path}.batch_size", minimum=1,
                                         maximum=MAX_BATCH),
                    eval_batch_size=r.integer(d.get("eval_batch_size", 512), f"{path}.eval_batch_size",
                                              minimum=1, maximum=MAX_BATCH),
                    augment=augment,
                    validation_fraction=r.number(d.get("validation_fraction", 0.1),
                                                 f"{path}.validation_fraction", minimum=0.0, below=1.0),
                    validation_seed=r.integer(d.get("validation_seed", 0), f"{path}.validation_seed",
                                              minimum=0, maximum=MAX_SEED))


def _stage(r: "_Reader", raw: Any, path: str) -> StageSpec:
    s = r.mapping(raw, path, required=("name", "epochs"),
                  optional=("optimizer", "lr_schedule", "activation_penalty", "weight_l1", "prune"))
    epochs = r.integer(s["epochs"], f"{path}.epochs", minimum=1, maximum=MAX_EPOCHS)
    name = r.string(s["name"], f"{path}.name")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(r.source, f"{path}.name", f"expected letters, digits, '_' or '-', got {name!r}")
    return StageSpec(
        name=name,
        epochs=epochs,
        optimizer=_optimizer(r, s.get("optimizer", {}), f"{path}.optimizer"),
        lr_schedule=_lr_schedule(r, s.get("lr_schedule", "constant"), f"{path}.lr_schedule"),
        activation_penalty=(_penalty(r, s["activation_penalty"], f"{path}.activation_penalty")
                            if s.get("activation_penalty") is not None else None),
        weight_l1=r.number(s.get("weight_l1", 0.0), f"{path}.weight_l1", minimum=0.0,
                           maximum=MAX_COEFFICIENT),
        prune=_prune(r, s["prune"], f"{path}.prune", epochs) if s.get("prune") is not None else None,
    )


def _optimizer(r: "_Reader", raw: Any, path: str) -> OptimizerSpec:
    o = r.mapping(raw, path, optional=("type", "lr", "momentum", "weight_decay", "nesterov", "betas"))
    kind = r.choice(o.get("type", "sgd"), f"{path}.type", OPTIMIZERS)
    betas = (0.9, 0.999)
    if "betas" in o:
        if not isinstance(o["betas"], list) or len(o["betas"]) != 2:
            raise ConfigError(r.source, f"{path}.betas", "expected a list of two numbers in [0, 1)")
        betas = tuple(r.number(v, f"{path}.betas[{i}]", minimum=0.0, below=1.0)
                      for i, v in enumerate(o["betas"]))
    spec = OptimizerSpec(type=kind,
                         lr=r.number(o.get("lr", 0.01), f"{path}.lr", minimum=0.0, positive=True,
                                     maximum=MAX_LR),
                         momentum=r.number(o.get("momentum", 0.9 if kind == "sgd" else 0.0),
                                           f"{path}.momentum", minimum=0.0, below=1.0),
                         weight_decay=r.number(o.get("weight_decay", 0.0), f"{path}.weight_decay",
                                               minimum=0.0, maximum=MAX_COEFFICIENT),
                         nesterov=r.boolean(o.get("nesterov", False), f"{path}.nesterov"),
                         betas=betas)
    if kind != "sgd" and ("momentum" in o or "nesterov" in o):
        raise ConfigError(r.source, f"{path}.momentum", f"only the sgd optimizer takes momentum/nesterov, "
                                                       f"not {kind!r}")
    if spec.nesterov and spec.momentum == 0:
        raise ConfigError(r.source, f"{path}.nesterov", "nesterov needs a positive momentum")
    return spec


def _lr_schedule(r: "_Reader", raw: Any, path: str) -> LRScheduleSpec:
    if isinstance(raw, str):
        raw = {"type": raw}
    s = r.mapping(raw, path, required=("type",), optional=("step_epochs", "gamma", "min_lr"))
    return LRScheduleSpec(type=r.choice(s["type"], f"{path}.type", LR_SCHEDULES),
                          step_epochs=r.integer(s.get("step_epochs", 10), f"{path}.step_epochs", minimum=1,
                                                maximum=MAX_EPOCHS),
                          gamma=r.number(s.get("gamma", 0.1), f"{path}.gamma", minimum=0.0, positive=True,
                                         maximum=1.0),
                          min_lr=r.number(s.get("min_lr", 0.0), f"{path}.min_lr", minimum=0.0,
                                          maximum=MAX_LR))


def _layer_list(r: "_Reader", raw: Any, path: str) -> str | tuple[str, ...]:
    if isinstance(raw, str):
        return r.choice(raw, path, LAYER_SELECTORS)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(r.source, path, f"expected one of {', '.join(LAYER_SELECTORS)} or a "
                                          "non-empty list of layer names")
    return tuple(r.string(v, f"{path}[{i}]") for i, v in enumerate(raw))


def _per_layer(r: "_Reader", raw: Any, path: str, **bounds) -> float | dict[str, float]:
    if isinstance(raw, dict):
        if not raw:
            raise ConfigError(r.source, path, "expected a number or a non-empty mapping layer -> number")
        return {r.string(k, f"{path}"): r.number(v, f"{path}.{k}", **bounds) for k, v in raw.items()}
    return r.number(raw, path, **bounds)


def _penalty(r: "_Reader", raw: Any, path: str) -> PenaltySpec:
    p = r.mapping(raw, path, required=("type", "lambda"), optional=("b", "layers"))
    kind = r.choice(p["type"], f"{path}.type", PENALTY_KINDS)
    coefficients = _per_layer(r, p["lambda"], f"{path}.lambda", minimum=0.0, maximum=MAX_COEFFICIENT)
    if isinstance(coefficients, dict) and "layers" in p:
        raise ConfigError(r.source, f"{path}.layers", "give either per-layer lambdas or 'layers', not both")
    if "b" in p and kind != "tl1":
        raise ConfigError(r.source, f"{path}.b", f"only the tl1 penalty takes b, not {kind!r}")
    return PenaltySpec(type=kind, coefficients=coefficients,
                       b=r.number(p.get("b", 1.0), f"{path}.b", minimum=0.0, positive=True,
                                  maximum=MAX_COEFFICIENT),
                       layers=_layer_list(r, p.get("layers", "all_but_first"), f"{path}.layers"))


def _prune(r: "_Reader", raw: Any, path: str, epochs: int) -> PruneSpec:
    p = r.mapping(raw, path, required=("sparsity",),
                  optional=("scope", "schedule", "initial_sparsity", "start_epoch", "end_epoch", "layers"))
    scope = r.choice(p.get("scope", "layerwise"), f"{path}.scope", PRUNE_SCOPES)
    sparsity = _per_layer(r, p["sparsity"], f"{path}.sparsity", minimum=0.0, below=1.0)
    if isinstance(sparsity, dict):
        if scope == "global":
            raise ConfigError(r.source, f"{path}.sparsity", "global pruning takes one sparsity, "
                                                           "not one per layer")
        if "layers" in p:
            raise ConfigError(r.source, f"{path}.layers", "give either per-layer sparsities or 'layers', not both")
    schedule = r.choice(p.get("schedule", "oneshot"), f"{path}.schedule", PRUNE_SCHEDULES)
    start = r.integer(p.get("start_epoch", 0), f"{path}.start_epoch", minimum=0)
    end = r.integer(p.get("end_epoch", epochs - 1), f"{path}.end_epoch", minimum=0)
    if start >= epochs:
        raise ConfigError(r.source, f"{path}.start_epoch", f"expected an epoch below the stage's {epochs} epochs")
    if not start <= end < epochs:
        raise ConfigError(r.source, f"{path}.end_epoch",
                          f"expected an epoch in [start_epoch={start}, {epochs - 1}], got {end}")
    if schedule == "oneshot" and ("end_epoch" in p or "initial_sparsity" in p):
        raise ConfigError(r.source, f"{path}.schedule", "end_epoch and initial_sparsity need schedule: cubic")
    initial = r.number(p.get("initial_sparsity", 0.0), f"{path}.initial_sparsity", minimum=0.0, below=1.0)
    return PruneSpec(sparsity=sparsity, scope=scope, schedule=schedule, initial_sparsity=initial,
                     start_epoch=start, end_epoch=end,
                     layers=_layer_list(r, p.get("layers", "all"), f"{path}.layers"))


class _Reader:
    """Typed field access that raises ConfigError with the file and field path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(self.source, path or None, message)

    def mapping(self, raw: Any, path: str, required: tuple = (), optional: tuple = ()) -> dict:
        if raw is None and not required:
            raw = {}
        if not isinstance(raw, dict):
            raise self.fail(path, f"expected a mapping, got {_describe(raw)}")
        allowed = set(required) | set(optional)
        for key in raw:
            if key not in allowed:
                import difflib

                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                where = f"{path}.{key}" if path else str(key)
                raise self.fail(where, f"unknown key{hint}; expected one of {', '.join(sorted(allowed))}")
        for key in required:
            if key not in raw:
                raise self.fail(f"{path}.{key}" if path else key, "required field is missing")
        return raw

    def string(self, raw: Any, path: str, allow_empty: bool = False) -> str:
        if not isinstance(raw, str) or (not allow_empty and not raw.strip()):
            raise self.fail(path, f"expected a non-empty string, got {_describe(raw)}")
        return raw

    def choice(self, raw: Any, path: str, options: tuple[str, ...]) -> str:
        if raw not in options:
            raise self.fail(path, f"expected one of {', '.join(options)}, got {_describe(raw)}")
        return raw

    def boolean(self, raw: Any, path: str) -> bool:
        if not isinstance(raw, bool):
            raise self.fail(path, f"expected true or false, got {_describe(raw)}")
        return raw

    def integer(self, raw: Any, path: str, minimum: int | None = None,
                maximum: int | None = None) -> int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise self.fail(path, f"expected an integer, got {_describe(raw)}")
        if maximum is not None and not (minimum or 0) <= raw <= maximum:
            raise self.fail(path, f"expected an integer from {minimum or 0} to {maximum:,}, "
                                  f"got {brief(raw)}")
        if minimum is not None and raw < minimum:
            raise self.fail(path, f"expected an integer >= {minimum}, got {brief(raw)}")
        return raw

    def number(self, raw: Any, path: str, minimum: float | None = None, below: float | None = None,
               positive: bool = False, maximum: float | None = None) -> float:
        value = raw
        if isinstance(raw, str):  # YAML 1.1 reads '1e-3' (no dot) as a string
            try:
                value = float(raw)
            except ValueError:
                value = raw
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or abs(value) > 1.7e308 or not math.isfinite(value)):  # huge ints overflow float()
            raise self.fail(path, f"expected a number, got {_describe(raw)}")
        value = float(value)
        if positive and value <= 0:
            raise self.fail(path, f"expected a number > 0, got {value:g}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"expected a number >= {minimum:g}, got {value:g}")
        if below is not None and value >= below:
            raise self.fail(path, f"expected a number below {below:g}, got {value:g}")
        if maximum is not None and value > maximum:
            raise self.fail(path, f"expected a number <= {maximum:g} (a sane upper bound), "
                                  f"got {value:g}")
        return value


def _describe(raw: Any) -> str:
    if raw is None:
        return "nothing"
    return f"{brief(raw, 60)} ({type(raw).__name__})"
