"""Method hygiene: a seeded validation split for every per-epoch figure, the test set once,
deterministic training with the thread count in the provenance."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

import accelsim.train.run as run_module
from accelsim.datasets import load_dataset, split_validation, validation_indices
from accelsim.errors import AccelsimError, DataError
from accelsim.train import load_checkpoint, parse_recipe, run_recipe

TINY = {
    "version": 1, "name": "tinyval", "seed": 1, "model": "lenet5",
    "data": {"dataset": "synthetic:1,32,32,10,80", "batch_size": 16, "validation_fraction": 0.25,
             "validation_seed": 4},
    "stages": [
        {"name": "dense", "epochs": 1, "optimizer": {"type": "sgd", "lr": 0.05}},
        {"name": "sparse", "epochs": 1, "optimizer": {"type": "sgd", "lr": 0.02},
         "activation_penalty": {"type": "tl1", "b": 0.5, "lambda": 0.05},
         "prune": {"sparsity": 0.5}},
    ],
}


@pytest.mark.parametrize("fraction,seed", [(0.1, 0), (0.25, 3), (0.5, 7), (0.0, 1)])
def test_validation_indices_are_a_stratified_seeded_partition(fraction, seed):
    rng = np.random.default_rng(100 + seed)
    labels = rng.integers(0, 7, size=203)
    val = validation_indices(labels, fraction, seed)
    assert np.array_equal(val, np.sort(val)) and len(set(val.tolist())) == len(val)
    counts, chosen = Counter(labels.tolist()), Counter(labels[val].tolist())
    for label, n in counts.items():  # every class gives round(fraction * its count)
        assert chosen[label] == int(round(fraction * n))
    assert np.array_equal(val, validation_indices(labels.copy(), fraction, seed))  # deterministic
    if fraction:
        assert not np.array_equal(val, validation_indices(labels, fraction, seed + 1))


def test_split_validation_is_disjoint_and_keeps_normalisation():
    full = load_dataset("digits", train=True)
    train, val = split_validation(full, 0.1, 0)
    assert len(train) + len(val) == len(full) and abs(len(val) - 0.1 * len(full)) <= 10
    seen = {tuple(t.flatten().tolist()) for t in train.images}
    assert sum(tuple(t.flatten().tolist()) in seen for t in val.images) <= 2  # digits has a few duplicates
    assert torch.equal(train.mean, full.mean) and torch.equal(val.std, full.std)
    x_full, _ = full.batch(slice(0, 1))
    idx = int(np.setdiff1d(np.arange(len(full)), validation_indices(full.labels.numpy(), 0.1, 0))[0])
    assert torch.equal(train.batch(slice(0, 1))[0], full.batch(slice(idx, idx + 1))[0])
    assert split_validation(full, 0.0, 0) == (full, None)
    with pytest.raises(DataError, match="empty validation"):
        split_validation(load_dataset("synthetic:1,8,8,4,4", train=True), 0.1, 0)


def test_recipe_validates_the_split_fields():
    with pytest.raises(AccelsimError, match=r"data.validation_fraction: expected a number below 1"):
        parse_recipe(dict(TINY, data=dict(TINY["data"], validation_fraction=1.0)), "r.yaml")
    with pytest.raises(AccelsimError, match=r"data.validation_seed: expected an integer"):
        parse_recipe(dict(TINY, data=dict(TINY["data"], validation_seed=-1)), "r.yaml")
    default = parse_recipe(dict(TINY, data={"dataset": "digits"}))
    assert default.data.validation_fraction == 0.1 and default.data.validation_seed == 0


def _lines(path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in path.read_text().splitlines()]


def test_validation_per_epoch_test_once_and_identical_reruns(tmp_path, monkeypatch):
    splits = []
    real_load = run_module.load_dataset

    def counting_load(spec, train=False):
        splits.append(train)
        return real_load(spec, train=train)

    monkeypatch.setattr(run_module, "load_dataset", counting_load)
    a = run_recipe(parse_recipe(TINY), tmp_path / "a", progress=False)
    assert splits == [True, False]  # the test split is read once, after training
    b = run_recipe(parse_recipe(TINY), tmp_path / "b", progress=False)
    lines = _lines(tmp_path / "a" / "metrics.jsonl")
    assert lines == _lines(tmp_path / "b" / "metrics.jsonl")  # same seed: same figures
    assert all("val_accuracy" in line and not any(k.startswith("test") for k in line) for line in lines)
    assert a.metrics == b.metrics and "test_accuracy" in a.metrics
    sa, _, meta = load_checkpoint(tmp_path / "a" / "model.pt")
    sb, _, _ = load_checkpoint(tmp_path / "b" / "model.pt")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    split = meta["data_split"]
    assert split["validation_fraction"] == 0.25 and split["validation_seed"] == 4
    assert split["validation_samples"] == 20 and split["train_samples"] == 60  # 8 per class x 10
    assert meta["torch_threads"] == torch.get_num_threads() and meta["deterministic_algorithms"]
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run
    # another validation seed holds out other samples: other figures, other hash in the provenance
    other = dict(TINY, data=dict(TINY["data"], validation_seed=5))
    run_recipe(parse_recipe(other), tmp_path / "c", progress=False)
    _, _, meta_c = load_checkpoint(tmp_path / "c" / "model.pt")
    assert meta_c["data_split"]["validation_indices_sha256"] != split["validation_indices_sha256"]


def test_no_validation_split_means_no_val_figures(tmp_path):
    raw = dict(TINY, data=dict(TINY["data"], validation_fraction=0.0), stages=TINY["stages"][:1])
    result = run_recipe(parse_recipe(raw), tmp_path, progress=False)
    line = _lines(tmp_path / "metrics.jsonl")[0]
    assert not any(k.startswith("val_") for k in line) and "weight_sparsity" in line
    assert "test_accuracy" in result.metrics
    _, _, meta = load_checkpoint(tmp_path / "model.pt")
    assert meta["data_split"]["train_samples"] == 80 and meta["data_split"]["validation_samples"] == 0
