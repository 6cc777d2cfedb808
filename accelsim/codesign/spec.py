"""Co-design specification (YAML, version 1): training axes x hardware axes, strictly loaded.

A spec names a base training recipe and the training knobs to vary over it, the
hardware designs (and hardware-field axes, exactly as sweep specs have them) to
simulate every trained model on, and the objectives whose joint Pareto fronts the
results table marks::

    version: 1
    name: codesign_lenet5
    recipe: ../../models/lenet5_digits_codesign.yaml   # relative to this file
    training:                  # every axis is a list of values (or {values: [...]})
      penalty: [l1, hoyer_square, tl1]  # activation_penalty.type of the recipe's penalised stages
      lambda: [0.1, 0.3, 1.0]          # their activation_penalty.lambda
      tl1_b: [0.5]                     # TL1's b (applies to tl1 points only)
      prune_sparsity: [0.5, 0.8]       # prune.sparsity of the recipe's pruning stages
      prune_schedule: [cubic]          # oneshot | cubic
      model: [lenet5]                  # zoo models only (a file never names code)
      seed: [0]
    hardware:
      designs: [../sparten_like.yaml, ../edge_lowpower.yaml]
      axes: {pe_array.rows: [8, 16]}   # optional; any hardware field, as in sweep specs
      constraints: {max_onchip_sram_kib: 600}
    fidelity: fast
    samples: 64                        # validation samples traced per model and simulated
    objectives: [[val_accuracy, energy_pj], [val_accuracy, energy_saving, cycles]]
    min_val_accuracy: 0.9              # floor: a model below it is never selected (default: none)
    max_accuracy_drop: 0.1             # nor one more than this below the best (default 0.1)

The accuracy floor is ``max(min_val_accuracy, best validation accuracy - max_accuracy_drop)``:
a model below it (e.g. one whose training collapsed to chance) is on no Pareto front, is
never selected and never evaluated on the test split, however much energy it saves.

Errors name the file, the field path and what was expected. Every training point's
recipe and every hardware point are built when the spec loads, so a typo fails before
anything trains; the number of models x hardware points is counted (the product of the
axes' lengths) and refused above ``--max-points`` before any of them is built.
"""
from __future__ import annotations

import difflib
import itertools
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from accelsim.errors import ConfigError, brief
from accelsim.hw import rules
from accelsim.hw.load import read_yaml_mapping
from accelsim.sweep.expand import SweepPoint, expand
from accelsim.sweep.spec import (ENERGY_COMPONENTS, FIDELITIES, HW_METRICS, MAXIMIZED as SIM_MAXIMIZED,
                                 SIM_METRICS, SweepSpec, _axis, _check_axes, check_point_count,
                                 point_count)

SPEC_VERSION = 1
# Training axes and the order their columns take in the results table.
TRAINING_AXES = ("penalty", "lambda", "tl1_b", "prune_sparsity", "prune_schedule", "model", "seed")
# Per-model figures (measured on the validation split) an objective may name.
TRAINING_METRICS = ("val_accuracy", "val_mean_act_sparsity", "val_mult_reduction", "weight_sparsity")
# Against each design's dense twin on the same trace.
SAVING_METRICS = ("energy_saving", "speedup")
MAXIMIZED = frozenset(SIM_MAXIMIZED | set(TRAINING_METRICS) | set(SAVING_METRICS)
                      | {"test_accuracy"})
# The default accuracy floor: models more than this below the best are never selected.
DEFAULT_ACCURACY_DROP = 0.1
DEFAULT_OBJECTIVES = (("val_accuracy", "energy_pj"), ("val_accuracy", "energy_saving"),
                      ("val_accuracy", "cycles"))


def _values(value: Any, path: str) -> tuple:
    if isinstance(value, dict) and set(value) == {"values"}:
        value = value["values"]
    if not isinstance(value, list) or not value:
        raise rules.RuleError(path, f"expected a non-empty list of values (or {{values: [...]}}), "
                                    f"got {brief(value)}")
    if len(value) > 1000:
        raise rules.RuleError(path, f"expected at most 1000 values, got {len(value)}")
    return tuple(value)


def _checked(rule):
    def check(value: Any, path: str) -> tuple:
        return tuple(rule(v, f"{path}[{i}]") for i, v in enumerate(_values(value, path)))
    return check


def _fraction(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise rules.RuleError(path, f"expected a number in [0, 1), got {brief(value)}")
    return float(value)


def _lambda(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6:
        raise rules.RuleError(path, f"expected a number in [0, 1e6), got {brief(value)}")
    return float(value)


def _positive(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
        raise rules.RuleError(path, f"expected a number in (0, 1e6), got {brief(value)}")
    return float(value)


def _accuracy(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise rules.RuleError(path, f"expected a validation accuracy as a fraction in [0, 1], got "
                                    f"{brief(value)}")
    return float(value)


def _seed(value: Any, path: str) -> int:
    from accelsim.train.recipe import MAX_SEED
    return rules.int_range(0, MAX_SEED)(value, path)


def _penalty_kind(value: Any, path: str) -> str:
    from accelsim.train.penalties import PENALTY_KINDS
    return rules.one_of(PENALTY_KINDS)(value, path)


def _schedule(value: Any, path: str) -> str:
    from accelsim.train.recipe import PRUNE_SCHEDULES
    return rules.one_of(PRUNE_SCHEDULES)(value, path)


def _zoo_model(value: Any, path: str) -> str:
    from accelsim.zoo import list_models

    names = list_models()
    if not isinstance(value, str) or value not in names:
        close = difflib.get_close_matches(str(value), list(names), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise rules.RuleError(path, f"expected a zoo model{hint}: {', '.join(names)}; got {brief(value)}")
    return value


@dataclass(frozen=True)
class TrainingAxes:
    """Training knobs; an axis left out keeps the base recipe's value."""
    penalty: tuple | None = field(default=None, metadata={
        "rule": rules.optional(_checked(_penalty_kind)), "doc": "activation penalty kinds"})
    # YAML key `lambda` (a Python keyword): mapped in _TRAINING_KEYS
    lambda_: tuple | None = field(default=None, metadata={
        "rule": rules.optional(_checked(_lambda)), "doc": "activation penalty strengths"})
    tl1_b: tuple | None = field(default=None, metadata={
        "rule": rules.optional(_checked(_positive)), "doc": "TL1's b (tl1 points only)"})
    prune_sparsity: tuple | None = field(default=None, metadata={
        "rule": rules.optional(_checked(_fraction)), "doc": "pruning targets (fraction of weights)"})
    prune_schedule: tuple | None = field(default=None, metadata={
        "rule": rules.optional(_checked(_schedule)), "doc": "oneshot or cubic"})
    model: tuple | None = field(default=None, metadata={
        "rule": rules.optional(_checked(_zoo_model)), "doc": "zoo model names"})
    seed: tuple | None = field(default=None, metadata={
        "rule": rules.optional(_checked(_seed)), "doc": "training seeds"})

    def given(self) -> dict[str, tuple]:
        """Axis name (as in the YAML) -> its values, for the axes the spec lists."""
        out = {}
        for name in TRAINING_AXES:
            values = getattr(self, "lambda_" if name == "lambda" else name)
            if values is not None:
                out[name] = values
        return out


def _training(value: Any, path: str) -> TrainingAxes:
    if isinstance(value, dict):
        value = {("lambda_" if k == "lambda" else k): v for k, v in value.items()}
    try:
        return rules.build(TrainingAxes, value, path)
    except rules.RuleError as exc:
        raise rules.RuleError(exc.path.replace("lambda_", "lambda"),
                              exc.message.replace("lambda_", "lambda")) from None


@dataclass(frozen=True)
class HardwareAxes:
    designs: tuple = field(metadata={"rule": rules.list_of(rules.non_empty_str, 64),
                                     "doc": "hardware files, relative to the spec"})
    axes: dict = field(default_factory=dict, metadata={
        "rule": rules.mapping_of(rules.non_empty_str, _axis),
        "doc": "hardware field path -> {values | range | random(count)}, applied to every design"})
    constraints: dict = field(default_factory=dict, metadata={
        "rule": lambda v, p: SweepSpec.__dataclass_fields__["constraints"].metadata["rule"](v, p),
        "doc": "budgets on derived figures, as in sweep specs"})
    seed: int = field(default=0, metadata={"rule": rules.non_negative_int, "doc": "seed of random axes"})


@dataclass(frozen=True)
class CodesignSpec:
    """A validated co-design spec; build it with :func:`load_codesign_spec`."""
    recipe: str = field(metadata={"rule": rules.non_empty_str, "doc": "base training recipe"})
    training: TrainingAxes = field(metadata={"rule": _training, "doc": "training axes"})
    hardware: HardwareAxes = field(metadata={"rule": rules.section(HardwareAxes),
                                             "doc": "designs, hardware axes and constraints"})
    version: int = field(default=SPEC_VERSION, metadata={"rule": rules.one_of((SPEC_VERSION,)),
                                                         "doc": "schema version"})
    name: str = field(default="", metadata={"rule": rules.string, "doc": "co-design name"})
    description: str = field(default="", metadata={"rule": rules.string, "doc": "what it explores"})
    fidelity: str = field(default="fast", metadata={"rule": rules.one_of(FIDELITIES),
                                                    "doc": "simulator fidelity"})
    samples: int = field(default=64, metadata={"rule": rules.positive_int,
                                               "doc": "validation samples traced and simulated"})
    objectives: tuple = field(default=tuple(list(p) for p in DEFAULT_OBJECTIVES), metadata={
        "rule": rules.list_of(rules.list_of(rules.non_empty_str, 8), 32),
        "doc": "lists of 2+ metrics whose joint Pareto front is marked"})
    min_val_accuracy: float | None = field(default=None, metadata={
        "rule": rules.optional(_accuracy),
        "doc": "accuracy floor: models with a lower validation accuracy (fraction) are never "
               "selected (default: none)"})
    max_accuracy_drop: float = field(default=DEFAULT_ACCURACY_DROP, metadata={
        "rule": _accuracy,
        "doc": "nor models more than this below the best validation accuracy (fraction; "
               f"default {DEFAULT_ACCURACY_DROP:g})"})
    # Filled by the loader.
    source: str = field(default="<dict>", metadata={"rule": rules.string, "doc": "spec file"})
    points: tuple = field(default=(), metadata={"rule": lambda v, p: v, "doc": "training points"})
    designs: tuple = field(default=(), metadata={"rule": lambda v, p: v, "doc": "hardware points"})


@dataclass(frozen=True)
class TrainingPoint:
    """One model to train: its axis values (None where an axis does not apply) and recipe."""
    params: dict
    recipe: Any  # accelsim.train.recipe.Recipe

    @property
    def id(self) -> str:
        return self.recipe.sha256[:16]


@dataclass(frozen=True)
class DesignPoint:
    """One hardware point: the design file, its swept values and the built hardware."""
    index: int
    design: str
    params: dict
    point: SweepPoint

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in self.params.items())
        return f"{self.design} ({extra})" if extra else self.design


def _objective_names(spec: CodesignSpec) -> None:
    allowed = (set(SIM_METRICS) | set(HW_METRICS) | set(TRAINING_METRICS) | set(SAVING_METRICS)
               | {f"energy_{c}_pj" for c in ENERGY_COMPONENTS} | set(spec.hardware.axes))
    for i, names in enumerate(spec.objectives):
        if len(names) < 2 or len(set(names)) != len(names):
            raise rules.RuleError(f"objectives[{i}]", f"expected 2 or more different metrics, "
                                                      f"got {list(names)}")
        for j, name in enumerate(names):
            if name in allowed:
                continue
            if name.startswith("test"):
                raise rules.RuleError(f"objectives[{i}][{j}]", f"{name!r}: choices are made on the "
                                      "validation split; use val_accuracy (the test accuracy is "
                                      "reported once, for the selected models)")
            close = difflib.get_close_matches(name, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise rules.RuleError(f"objectives[{i}][{j}]", f"unknown metric {name!r}{hint}; expected "
                                  f"a training figure ({', '.join(TRAINING_METRICS)}), a saving "
                                  f"({', '.join(SAVING_METRICS)}), a simulation metric (cycles, "
                                  "energy_pj, latency_s, ...), a hardware figure or a swept field")


def _stages_with(raw: dict, key: str) -> list[int]:
    return [i for i, s in enumerate(raw.get("stages") or []) if isinstance(s, dict) and s.get(key)]


def apply_training(base_raw: dict, params: dict) -> dict:
    """The base recipe (raw mapping) with one training point's axis values written in.

    ``penalty``/``lambda``/``tl1_b`` go to every stage with an ``activation_penalty``
    (``b`` is dropped for penalties other than tl1); ``prune_sparsity``/``prune_schedule``
    to every stage with ``prune`` (a oneshot schedule drops ``end_epoch`` and
    ``initial_sparsity``); ``model`` and ``seed`` to the top level. The name gets the
    values appended.
    """
    import copy

    raw = copy.deepcopy(base_raw)
    stages = raw.get("stages") or []
    for i in _stages_with(raw, "activation_penalty"):
        pen = stages[i]["activation_penalty"]
        if params.get("penalty") is not None:
            pen["type"] = params["penalty"]
        if params.get("lambda") is not None:
            pen["lambda"] = params["lambda"]
            if isinstance(pen.get("lambda"), dict):
                pen.pop("layers", None)
        if pen.get("type") == "tl1":
            if params.get("tl1_b") is not None:
                pen["b"] = params["tl1_b"]
        else:
            pen.pop("b", None)
    for i in _stages_with(raw, "prune"):
        prune = stages[i]["prune"]
        if params.get("prune_sparsity") is not None:
            prune["sparsity"] = params["prune_sparsity"]
        if params.get("prune_schedule") is not None:
            prune["schedule"] = params["prune_schedule"]
        if prune.get("schedule", "oneshot") == "oneshot":
            prune.pop("end_epoch", None)
            prune.pop("initial_sparsity", None)
    if params.get("model") is not None:
        raw["model"] = params["model"]
    if params.get("seed") is not None:
        raw["seed"] = params["seed"]
    label = "_".join(f"{k}{v}" for k, v in params.items() if v is not None)
    raw["name"] = f"{raw.get('name', 'recipe')}__{label}" if label else raw.get("name", "recipe")
    return raw


def _training_points(spec: CodesignSpec, recipe_path: Path) -> tuple[TrainingPoint, ...]:
    from accelsim.train.recipe import parse_recipe
    from accelsim.yamlio import read_yaml

    base_raw = read_yaml(recipe_path, "recipe file")
    base = parse_recipe(base_raw, str(recipe_path))  # the base itself must be valid
    base_raw = dict(base.raw, name=base.name)
    axes = spec.training.given()
    needs = {"penalty": "activation_penalty", "lambda": "activation_penalty",
             "tl1_b": "activation_penalty", "prune_sparsity": "prune", "prune_schedule": "prune"}
    for name in axes:
        if name in needs and not _stages_with(base_raw, needs[name]):
            raise ConfigError(spec.source, f"training.{name}",
                              f"the recipe {recipe_path} has no stage with {needs[name]!r} to vary")
    points, seen = [], set()
    for combo in itertools.product(*axes.values()):
        params = dict(zip(axes, combo))
        raw = apply_training(base_raw, params)
        pens = [raw["stages"][i]["activation_penalty"] for i in _stages_with(raw, "activation_penalty")]
        if "tl1_b" in params and not any(p.get("type") == "tl1" for p in pens):
            params["tl1_b"] = None  # does not apply: the point equals the other b values' ones
            raw = apply_training(base_raw, params)
        try:
            recipe = parse_recipe(raw, str(recipe_path))
        except ConfigError as exc:
            where = ", ".join(f"{k}={brief(v)}" for k, v in params.items())
            raise ConfigError(spec.source, "training", f"the recipe for ({where}) is invalid: "
                                                       f"{exc}") from None
        if recipe.sha256 in seen:
            continue
        seen.add(recipe.sha256)
        points.append(TrainingPoint({k: params.get(k) for k in axes}, recipe))
    return tuple(points)


def check_codesign_count(spec: CodesignSpec, max_points: int) -> int:
    """Refuse a spec whose models x hardware points exceed ``max_points``, before listing any.

    Counts the product of the training axes' lengths and, per design, the product of the
    hardware axes' lengths (both before de-duplication and constraints, so an upper bound);
    returns the count.
    """
    sweep = SweepSpec(base="-", axes=dict(spec.hardware.axes), traces=(spec.source,),
                      source=spec.source, max_points=max_points)
    try:
        check_point_count(sweep, max_points)  # one axis alone (or a range without end)
    except rules.RuleError as exc:
        raise ConfigError(spec.source, f"hardware.{exc.path}", exc.message) from None
    models = math.prod(len(values) for values in spec.training.given().values())
    hardware = len(spec.hardware.designs) * point_count(sweep)
    total = models * hardware
    if total > max_points:
        raise ConfigError(spec.source, "training", f"{models:,} training points x {hardware:,} "
                          f"hardware points is {total:,}, more than the limit of {max_points:,}; "
                          f"pass --max-points {total} to run it anyway, or narrow the axes")
    return total


def _design_points(spec: CodesignSpec, root: Path, max_points: int) -> tuple[DesignPoint, ...]:
    hw = spec.hardware
    out: list[DesignPoint] = []
    names: set[str] = set()
    for d, design in enumerate(hw.designs):
        path = root / design
        if not path.is_file():
            raise ConfigError(spec.source, f"hardware.designs[{d}]",
                              f"hardware file {str(path)!r} not found (paths are relative to the spec)")
        # The sweep machinery expands axes x constraints on each design (traces come later).
        sweep = SweepSpec(base=design, axes=dict(hw.axes), traces=(spec.source,), seed=hw.seed,
                          constraints=dict(hw.constraints), fidelity=spec.fidelity,
                          samples=spec.samples, source=spec.source, base_path=str(path),
                          max_points=max_points)
        try:
            check_point_count(sweep, max_points)
            _check_axes(sweep)
        except rules.RuleError as exc:
            raise ConfigError(spec.source, f"hardware.{exc.path}", exc.message) from None
        name = path.stem if path.stem not in names else str(Path(design).with_suffix(""))
        names.add(name)
        for point in expand(sweep).points:
            if point.hw is None:
                raise ConfigError(spec.source, f"hardware.designs[{d}]", point.error or "invalid")
            out.append(DesignPoint(len(out), name, dict(point.params), point))
    if not out:
        raise ConfigError(spec.source, "hardware.constraints", "every hardware point breaks a "
                                                               "constraint; nothing to simulate")
    return tuple(out)


def load_codesign_dict(data: dict, source: str = "<dict>", root: str | os.PathLike = ".",
                       max_points: int = 100_000) -> CodesignSpec:
    """Validate a raw mapping; relative paths resolve against ``root`` (the spec's folder)."""
    data = dict(data)
    if "version" not in data:
        raise ConfigError(source, "version", f"required field is missing (write `version: {SPEC_VERSION}`)")
    allowed = [f for f in CodesignSpec.__dataclass_fields__ if f not in ("source", "points", "designs")]
    try:
        rules.check_keys(data, allowed)
    except rules.RuleError as exc:
        raise ConfigError(source, exc.path, exc.message) from None
    try:
        spec = replace(rules.build(CodesignSpec, data), source=source)
        _objective_names(spec)
    except rules.RuleError as exc:
        raise ConfigError(source, exc.path, exc.message) from None
    check_codesign_count(spec, max_points)  # before any recipe or design is built
    root = Path(root)
    recipe_path = root / spec.recipe
    if not recipe_path.is_file():
        raise ConfigError(source, "recipe", f"recipe file {str(recipe_path)!r} not found (paths are "
                                            "relative to the spec file)")
    try:
        points = _training_points(spec, recipe_path)
    except ConfigError as exc:
        if exc.file == source:
            raise
        raise ConfigError(source, "recipe", str(exc)) from None
    designs = _design_points(spec, root, max_points)
    if len(points) * len(designs) > max_points:
        raise ConfigError(source, "training", f"{len(points)} models x {len(designs)} hardware points "
                                              f"is more than the limit of {max_points:,}")
    return replace(spec, points=points, designs=designs,
                   name=spec.name or Path(source).stem)


def load_codesign_spec(path: str | os.PathLike, max_points: int = 100_000) -> CodesignSpec:
    """Read and validate a co-design spec file (strict: unknown keys, version, every value)."""
    path = Path(path)
    try:
        data = read_yaml_mapping(path)
    except ConfigError as exc:
        raise ConfigError(exc.file, exc.field, exc.detail.replace(
            "hardware fields", "co-design fields (version, recipe, training, hardware, ...)")) from None
    return load_codesign_dict(data, source=str(path), root=path.parent, max_points=max_points)


def accuracy_floor(spec: CodesignSpec, best: float) -> float:
    """The validation accuracy below which a model is never selected, given the best one."""
    floor = best - spec.max_accuracy_drop
    if spec.min_val_accuracy is not None:
        floor = max(floor, spec.min_val_accuracy)
    return float(floor)


def objective_tuples(spec: CodesignSpec) -> tuple[tuple[str, ...], ...]:
    out: list[tuple[str, ...]] = []
    for names in spec.objectives:
        if tuple(names) not in out:
            out.append(tuple(names))
    return tuple(out)


__all__ = ["CodesignSpec", "DesignPoint", "TrainingPoint", "accuracy_floor", "apply_training",
           "load_codesign_dict", "load_codesign_spec", "objective_tuples"]
