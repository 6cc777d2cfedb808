"""Recipe YAML: strict validation with file and field path in every error."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from accelsim.errors import ConfigError
from accelsim.train.recipe import load_recipe, parse_recipe

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "models").glob("*.yaml"))

MINIMAL = {
    "version": 1,
    "model": "lenet5",
    "data": {"dataset": "synthetic:1,32,32"},
    "stages": [{"name": "dense", "epochs": 2}],
}


def _with(path: str, value) -> dict:
    raw = copy.deepcopy(MINIMAL)
    node = raw
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    node[keys[-1]] = value
    return raw


def test_shipped_recipes_load():
    names = {p.stem for p in SHIPPED}
    assert {"lenet5_digits_baseline", "lenet5_digits_l1", "lenet5_digits_hoyer", "lenet5_digits_tl1",
            "lenet5_digits_dual", "resnet18_cifar10_dual"} <= names
    for path in SHIPPED:
        recipe = load_recipe(path)
        assert recipe.name == path.stem
        assert recipe.stages


def test_dual_recipe_has_the_three_stages():
    recipe = load_recipe(REPO / "models" / "lenet5_digits_dual.yaml")
    dense, prune, sparse = recipe.stages
    assert dense.prune is None and dense.activation_penalty is None
    assert prune.prune is not None and prune.prune.schedule == "cubic" and prune.weight_l1 > 0
    assert sparse.activation_penalty.type == "tl1" and sparse.prune is None


def test_defaults_and_name_from_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    recipe = load_recipe(path)
    assert recipe.name == "tiny" and recipe.seed == 0 and recipe.data.batch_size == 64
    stage = recipe.stages[0]
    assert stage.optimizer.type == "sgd" and stage.lr_schedule.type == "constant"
    assert stage.activation_penalty is None and stage.prune is None


@pytest.mark.parametrize("raw,field,words", [
    (_with("optimiser", 1), "optimiser", "unknown key"),
    (_with("stages.0.optimizer.lr", -1), "stages[0].optimizer.lr", "> 0"),
    (_with("stages.0.optimizer.typo", 1), "stages[0].optimizer.typo", "unknown key"),
    (_with("stages.0.epochs", "ten"), "stages[0].epochs", "integer"),
    (_with("stages.0.activation_penalty", {"type": "tl2", "lambda": 1}), "stages[0].activation_penalty.type",
     "tl1, l1, hoyer_square"),
    (_with("stages.0.activation_penalty", {"type": "tl1", "lambda": 1, "b": 0}),
     "stages[0].activation_penalty.b", "> 0"),
    (_with("stages.0.activation_penalty", {"type": "l1", "lambda": 1, "b": 2}),
     "stages[0].activation_penalty.b", "only the tl1"),
    (_with("stages.0.activation_penalty", {"type": "tl1"}), "stages[0].activation_penalty.lambda", "missing"),
    (_with("stages.0.prune", {"sparsity": 1.0}), "stages[0].prune.sparsity", "below 1"),
    (_with("stages.0.prune", {"sparsity": {"fc1": 0.5}, "scope": "global"}), "stages[0].prune.sparsity",
     "global"),
    (_with("stages.0.prune", {"sparsity": 0.5, "schedule": "cubic", "end_epoch": 5}),
     "stages[0].prune.end_epoch", "epoch in"),
    (_with("stages.0.prune", {"sparsity": 0.5, "end_epoch": 1}), "stages[0].prune.schedule", "cubic"),
    (_with("stages.0.lr_schedule", "linear"), "stages[0].lr_schedule.type", "constant, cosine, step"),
    (_with("data.augment", {"hflip": "yes"}), "data.augment.hflip", "true or false"),
    (_with("version", 2), "version", "expected 1"),
    (_with("stages", []), "stages", "non-empty"),
    ({k: v for k, v in MINIMAL.items() if k != "model"}, "model", "missing"),
])
def test_errors_name_file_and_field(raw, field, words):
    with pytest.raises(ConfigError) as info:
        parse_recipe(raw, "r.yaml")
    assert info.value.file == "r.yaml"
    assert info.value.field == field
    assert words in str(info.value)


def test_duplicate_stage_names_and_bad_yaml(tmp_path):
    raw = copy.deepcopy(MINIMAL)
    raw["stages"].append({"name": "dense", "epochs": 1})
    with pytest.raises(ConfigError, match=r"stages\[1\]\.name: stage name 'dense' is used twice"):
        parse_recipe(raw, "r.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_recipe(bad)
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_yaml_11_exponent_strings_are_numbers():
    raw = _with("stages.0.activation_penalty", {"type": "tl1", "lambda": "1e-3"})
    assert parse_recipe(raw).stages[0].activation_penalty.coefficients == 1e-3


def test_layer_names_checked_against_the_model():
    raw = _with("stages.0.prune", {"sparsity": {"fc1": 0.5, "fc7": 0.5}})
    recipe = parse_recipe(raw, "r.yaml")
    with pytest.raises(ConfigError) as info:
        recipe.check_layers(["conv1", "conv2", "fc1", "fc2", "fc3"])
    assert info.value.field == "stages[0].prune.sparsity" and "'fc7'" in str(info.value)


def test_per_layer_resolution():
    raw = _with("stages.0.activation_penalty", {"type": "tl1", "lambda": 0.1})
    pen = parse_recipe(raw).stages[0].activation_penalty
    assert pen.per_layer(["conv1", "conv2", "fc1"]) == {"conv2": 0.1, "fc1": 0.1}
    raw = _with("stages.0.activation_penalty", {"type": "l1", "lambda": {"fc1": 0.2}})
    assert parse_recipe(raw).stages[0].activation_penalty.per_layer(["conv1", "fc1"]) == {"fc1": 0.2}
    raw = _with("stages.0.prune", {"sparsity": 0.3, "layers": "all_but_first"})
    assert parse_recipe(raw).stages[0].prune.targets(["a", "b"]) == {"b": 0.3}


def test_hash_and_seed_override():
    recipe = parse_recipe(MINIMAL)
    assert recipe.sha256 == parse_recipe(copy.deepcopy(MINIMAL)).sha256
    reseeded = recipe.with_seed(5)
    assert reseeded.seed == 5 and reseeded.sha256 != recipe.sha256
