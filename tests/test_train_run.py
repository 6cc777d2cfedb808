"""End-to-end recipes on synthetic data: metrics, checkpoints, resume, CLI."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from accelsim.cli import main
from accelsim.errors import AccelsimError
from accelsim.train import load_checkpoint, parse_recipe, run_recipe
from accelsim.zoo import get_model

TINY = {
    "version": 1,
    "name": "tiny",
    "seed": 3,
    "model": "lenet5",
    "data": {"dataset": "synthetic:1,32,32,10,96", "batch_size": 32, "augment": {"crop_padding": 1}},
    "stages": [
        {"name": "dense", "epochs": 2, "optimizer": {"type": "sgd", "lr": 0.05}, "lr_schedule": "cosine"},
        {"name": "prune", "epochs": 2, "optimizer": {"type": "adam", "lr": 0.002}, "weight_l1": 1.0,
         "prune": {"sparsity": {"conv2": 0.5, "fc1": 0.8}, "schedule": "cubic", "end_epoch": 1}},
        {"name": "sparse", "epochs": 2, "optimizer": {"type": "sgd", "lr": 0.02, "momentum": 0.9},
         "activation_penalty": {"type": "tl1", "b": 1.0, "lambda": 0.05}},
    ],
}


class Interrupt(Exception):
    pass


def _strip_time(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def _metrics(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    result = run_recipe(parse_recipe(TINY), out, progress=False)
    return out, result


def test_tiny_recipe_end_to_end(uninterrupted):
    out, result = uninterrupted
    lines = _metrics(out / "metrics.jsonl")
    assert [(l["stage"], l["epoch"]) for l in lines] == [
        ("dense", 1), ("dense", 2), ("prune", 1), ("prune", 2), ("sparse", 1), ("sparse", 2)]
    last = lines[-1]
    for key in ("val_accuracy", "val_loss", "val_mean_act_sparsity", "weight_sparsity",
                "val_mult_reduction", "val_act_sparsity", "val_effective_macs", "val_dense_macs"):
        assert key in last
    assert not any(key.startswith("test") or key == "accuracy" for key in last)  # no test set per epoch
    assert set(last["train"]) == {"ce", "act_penalty", "weight_l1", "total", "accuracy"}
    assert lines[0]["train"]["act_penalty"] == 0 and last["train"]["act_penalty"] > 0
    assert lines[2]["train"]["weight_l1"] > 0
    assert set(last["penalty_terms"]) == {"conv2", "fc1", "fc2", "fc3"}
    assert last["val_accuracy"] > 0.3  # learnable data, 10 classes
    assert last["layer_weight_sparsity"]["conv2"] == pytest.approx(0.5)
    assert last["layer_weight_sparsity"]["fc1"] == pytest.approx(0.8, abs=1e-4)
    assert lines[2]["layer_weight_sparsity"]["fc1"] < 0.8  # cubic: not all at once
    assert 0 < last["val_mult_reduction"] < 1
    assert result.metrics == {**{k: v for k, v in last.items() if k in result.metrics},
                              **{k: v for k, v in result.metrics.items() if k.startswith("test_")}}
    assert 0 <= result.metrics["test_accuracy"] <= 1 and "test_mean_act_sparsity" in result.metrics
    for stage in ("dense", "prune", "sparse"):
        assert (out / "stages" / f"{stage}.pt").is_file()


def test_checkpoint_has_plain_names_zeros_masks_and_provenance(uninterrupted):
    out, _ = uninterrupted
    state, masks, meta = load_checkpoint(out / "model.pt")
    assert set(masks) == {"conv2.weight", "fc1.weight"}
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    for name, mask in masks.items():
        assert torch.all(state[name][~mask] == 0)
        assert int((~mask).sum()) == round({"conv2.weight": 0.5, "fc1.weight": 0.8}[name] * mask.numel())
    model = get_model("lenet5")
    model.load_state_dict(state)  # loads into the plain zoo model
    assert meta["model"] == "lenet5" and meta["seed"] == 3 and meta["recipe"]["name"] == "tiny"
    assert meta["accelsim_version"] and meta["recipe_sha256"] and "test_accuracy" in meta["metrics"]
    assert meta["data_split"]["validation_fraction"] == 0.1 and meta["torch_threads"] >= 1
    assert meta["data_split"]["validation_samples"] + meta["data_split"]["train_samples"] == 96
    assert "resume" not in meta
    # masks stay fixed after pruning ends: the sparse stage kept the prune stage's masks
    _, prune_masks, _ = load_checkpoint(out / "stages" / "prune.pt")
    assert all(torch.equal(prune_masks[k], masks[k]) for k in masks)


@pytest.mark.parametrize("stop_after", [3, 4])  # mid-stage (optimizer state, masks) and a stage boundary
def test_resume_equals_uninterrupted(uninterrupted, tmp_path, stop_after):
    full_out, _ = uninterrupted
    seen = []

    def crash(stage, epoch, line):
        seen.append((stage, epoch))
        if len(seen) == stop_after:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_recipe(parse_recipe(TINY), tmp_path, progress=False, on_epoch_end=crash)
    assert len(_metrics(tmp_path / "metrics.jsonl")) == stop_after
    with pytest.raises(AccelsimError, match="--resume"):
        run_recipe(parse_recipe(TINY), tmp_path, progress=False)
    run_recipe(parse_recipe(TINY), tmp_path, progress=False, resume=True)
    a_state, a_masks, _ = load_checkpoint(full_out / "model.pt")
    b_state, b_masks, _ = load_checkpoint(tmp_path / "model.pt")
    assert list(a_state) == list(b_state)
    assert all(torch.equal(a_state[k], b_state[k]) for k in a_state)
    assert all(torch.equal(a_masks[k], b_masks[k]) for k in a_masks)
    assert _strip_time(_metrics(tmp_path / "metrics.jsonl")) == _strip_time(_metrics(full_out / "metrics.jsonl"))


def test_resume_refuses_a_different_recipe(uninterrupted, tmp_path):
    full_out, _ = uninterrupted
    with pytest.raises(AccelsimError, match="different recipe"):
        run_recipe(parse_recipe(TINY).with_seed(9), full_out, progress=False, resume=True)


def test_init_from_checkpoint_and_model_mismatch(uninterrupted, tmp_path):
    full_out, _ = uninterrupted
    raw = dict(TINY, init=str(full_out / "model.pt"),
               stages=[{"name": "more", "epochs": 1, "optimizer": {"lr": 0.001}}])
    result = run_recipe(parse_recipe(raw), tmp_path / "a", progress=False)
    _, masks, meta = load_checkpoint(result.checkpoint)
    assert set(masks) == {"conv2.weight", "fc1.weight"} and meta["init_sha256"]
    bad = dict(TINY, data={"dataset": "synthetic:1,32,32,4,32"})
    with pytest.raises(AccelsimError, match="num_classes"):
        run_recipe(parse_recipe(bad, "bad.yaml"), tmp_path / "b", progress=False)


def test_cli_train_and_errors(tmp_path, capsys):
    raw = dict(TINY, stages=TINY["stages"][:1])
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    save = tmp_path / "export" / "tiny.pt"
    code = main(["train", str(recipe), "-o", str(tmp_path / "run"), "-q", "--threads", "1",
                 "--save", str(save)])
    assert code == 0
    assert "multiplication reduction" in capsys.readouterr().out
    assert save.is_file() and (tmp_path / "run" / "model.pt").is_file()
    assert main(["train", str(recipe), "-o", str(tmp_path / "run"), "-q"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", str(recipe), "-o", str(tmp_path / "run"), "-q", "--resume"]) == 0
    capsys.readouterr()
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(dict(raw, stages=[{"name": "x", "epochs": 1, "optimizer": {"lr": "fast"}}])))
    assert main(["train", str(broken), "-o", str(tmp_path / "x"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "broken.yaml: stages[0].optimizer.lr: expected a number" in err
    missing = tmp_path / "nodata.yaml"
    missing.write_text(yaml.safe_dump(dict(raw, data={"dataset": f"mnist:{tmp_path / 'none'}"})))
    assert main(["train", str(missing), "-o", str(tmp_path / "y"), "-q"]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
