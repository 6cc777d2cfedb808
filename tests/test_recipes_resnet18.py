"""The shipped ResNet-18 recipes (CIFAR-10, ImageNet) run end to end on tiny fake data sets.

The data are written by the tests in the real formats: CIFAR-10 python batches (pickled
dicts of NumPy arrays with bytes keys, as the official files are; read by accelsim's safe
unpickler) and an ImageFolder tree of PNG files. The recipes are the shipped files with
only the epochs, the data path and (ImageNet) the class count shrunk to fit.
"""
from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from accelsim.cli import main
from accelsim.train import load_checkpoint, load_recipe
from accelsim.trace.reader import open_trace

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO / "models" / "resnet18_cifar10_dual.yaml"
IMAGENET = REPO / "models" / "resnet18_imagenet_dual.yaml"


@pytest.mark.parametrize("path,model,dataset", [
    (CIFAR, "resnet18_cifar", "cifar10:"), (IMAGENET, "resnet18", "imagenet:")])
def test_recipes_are_the_three_dstf_stages(path, model, dataset):
    recipe = load_recipe(path)
    assert recipe.model == model and recipe.data.dataset.startswith(dataset)
    dense, prune, sparse = recipe.stages
    assert dense.prune is None and dense.activation_penalty is None and dense.weight_l1 == 0
    assert prune.prune is not None and prune.prune.schedule == "cubic" and prune.weight_l1 > 0
    assert prune.activation_penalty is None
    assert sparse.activation_penalty.type == "tl1" and sparse.prune is None
    assert sparse.activation_penalty.layers == "all_but_first" == prune.prune.layers
    assert "arXiv:2405.19652" in recipe.description
    assert "not available offline" in recipe.description  # says plainly what was not found


def test_imagenet_recipe_quotes_the_abstract_figures():
    text = load_recipe(IMAGENET).description
    assert "27.52%" in text and "81.7%" in text and "arxiv.org/abs/2405.19652" in text


def _shrunk(path: Path, dataset: str, **data) -> dict:
    """The shipped recipe with one epoch per stage (pruning to its target at once)."""
    raw = copy.deepcopy(yaml.safe_load(path.read_text()))
    raw["data"].update(dataset=dataset, **data)
    for stage in raw["stages"]:
        stage["epochs"] = 1
        if stage.get("prune"):
            stage["prune"]["end_epoch"] = 0
    return raw


def _check_run(out: Path, recipe: dict, target: float) -> dict:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["stage"] for line in lines] == ["dense", "prune", "sparse"]
    state, masks, meta = load_checkpoint(out / "model.pt")
    assert meta["recipe"]["stages"][0]["optimizer"] == recipe["stages"][0]["optimizer"]
    assert meta["data_split"]["validation_samples"] > 0
    pruned = meta["layers"][1:]
    zeros = sum(int((state[f"{n}.weight"] == 0).sum()) for n in pruned)
    total = sum(state[f"{n}.weight"].numel() for n in pruned)
    assert zeros / total == pytest.approx(target, abs=1e-3)  # global pruning to the target
    assert set(masks) == {f"{n}.weight" for n in pruned}       # the first layer is not pruned
    for key in ("test_accuracy", "test_mean_act_sparsity", "test_mult_reduction"):
        assert key in meta["metrics"]
    return meta


def _cifar_batch(rng, n: int) -> bytes:
    labels = [int(v) for v in np.arange(n) % 10]
    return pickle.dumps({b"batch_label": b"fake", b"labels": labels,
                         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"filenames": [b"x.png"] * n}, protocol=2)


@pytest.mark.slow
def test_cifar10_recipe_trains_and_captures(tmp_path, capsys):
    """About 11 s on 2 cores: ResNet-18 for three one-step epochs, evaluation, capture."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(_cifar_batch(rng, 20))  # 100 images, 10 per class
    (folder / "test_batch").write_bytes(_cifar_batch(rng, 10))
    raw = _shrunk(CIFAR, f"cifar10:{tmp_path / 'data'}", eval_batch_size=100)
    recipe = tmp_path / "r18.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["train", str(recipe), "-o", str(out), "-q", "--threads", "1"]) == 0
    meta = _check_run(out, raw, 0.8)
    assert meta["data_split"]["validation_samples"] == 10 and meta["input_shape"] == [3, 32, 32]
    trace = tmp_path / "r18.trace"  # the checkpoint's own data set is the default --data
    assert main(["trace", "capture", "--checkpoint", str(out / "model.pt"), "--samples", "4",
                 "-o", str(trace)]) == 0
    opened = open_trace(trace)
    assert opened.num_samples == 4 and len(opened) == 21  # 20 convolutions and the classifier


def _imagenet_tree(root: Path, classes: int, train: int, val: int) -> None:
    rng = np.random.default_rng(1)
    for c in range(classes):
        for split, count in (("train", train), ("val", val)):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(count):
                size = (8, 8 + 2 * (i % 2), 3)
                Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(folder / f"{i}.png")


def test_imagenet_recipe_trains_and_captures(tmp_path):
    """About 2 s on 2 cores: ImageNet-layout ResNet-18 on 8x8 PNGs resized to 32x32."""
    _imagenet_tree(tmp_path / "imagenet", classes=3, train=6, val=2)
    spec = f"imagenet:{tmp_path / 'imagenet'},crop=32"
    raw = _shrunk(IMAGENET, spec, validation_fraction=0.34, batch_size=16, eval_batch_size=16)
    raw["model_kwargs"] = {"num_classes": 3}
    recipe = tmp_path / "r18in.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["train", str(recipe), "-o", str(out), "-q", "--threads", "1"]) == 0
    meta = _check_run(out, raw, 0.5)
    assert meta["input_shape"] == [3, 32, 32] and meta["num_classes"] == 3
    assert meta["data_split"]["validation_samples"] == 6  # 2 of 6 per class
    trace = tmp_path / "r18in.trace"
    assert main(["trace", "capture", "--checkpoint", str(out / "model.pt"), "--samples", "5",
                 "--data", spec, "-o", str(trace)]) == 0
    opened = open_trace(trace)
    assert opened.num_samples == 5 and len(opened) == 21


def test_imagenet_recipe_fits_the_model():
    """The recipe's model takes the loader's default 3x224x224 crops and has 1000 outputs."""
    from accelsim.zoo import build_model, model_input_shape

    recipe = load_recipe(IMAGENET)
    assert model_input_shape(recipe.model) == (3, 224, 224)
    model = build_model(recipe.model).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_results_doc_quotes_the_recipes_figures_and_survives_regeneration():
    """docs/results.md's ResNet-18 section sits below the marker results_table.py keeps."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("results_table", REPO / "benchmarks" / "results_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    tail = table.kept_tail(str(REPO / "docs" / "results.md"))
    assert tail.startswith(table.KEEP_MARKER)
    described = load_recipe(IMAGENET).description
    for text in ("27.52%", "81.7%", "arxiv.org/abs/2405.19652", "resnet18_cifar10_dual.yaml",
                 "resnet18_imagenet_dual.yaml", "not available offline"):
        assert text in tail
    assert "27.52%" in described and "81.7%" in described
