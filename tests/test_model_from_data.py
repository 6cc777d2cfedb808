"""A file (checkpoint metadata, recipe) may name only zoo models with plain typed arguments.

Regression tests for the hole where ``trace capture --checkpoint F`` imported and called
any ``module:attr`` named in F's metadata with F's ``model_kwargs``.
"""
from __future__ import annotations

import pytest
import torch

from accelsim.cli import main
from accelsim.errors import AccelsimError
from accelsim.zoo import get_model
from accelsim.zoo.from_data import check_model_from_data


def _write_ckpt(path, metadata, state=None):
    torch.save({"format": "accelsim-checkpoint", "version": 1,
                "state_dict": state if state is not None else {}, "masks": {},
                "metadata": metadata}, path)


@pytest.mark.parametrize("spec,kwargs", [
    ("os:system", {"command": "touch pwned"}),
    ("subprocess:getoutput", {"cmd": "touch pwned"}),
    ("builtins:exec", {}),
    ("accelsim.zoo.lenet:LeNet5", {}),   # importable and harmless, still code named by a file
])
def test_checkpoint_metadata_naming_code_is_refused(tmp_path, monkeypatch, capsys, spec, kwargs):
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "evil.pt"
    _write_ckpt(ckpt, {"model": spec, "model_kwargs": kwargs})
    code = main(["trace", "capture", "--checkpoint", str(ckpt), "--data", "random:1,32,32",
                 "--samples", "1", "-o", str(tmp_path / "x.trace")])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert not (tmp_path / "pwned").exists()
    assert len(err.splitlines()) == 1 and "--model" in err and str(ckpt) in err
    assert not (tmp_path / "x.trace").exists()


@pytest.mark.parametrize("kwargs,field", [
    ({"num_classes": "10"}, "num_classes"),                 # wrong type
    ({"num_classes": True}, "num_classes"),                 # bool is not an int here
    ({"num_classes": 10 ** 12}, "num_classes"),             # absurd size
    ({"num_classes": [1, 2]}, "num_classes"),               # not a plain value
    ({"evil": 1}, "evil"),                                   # not a declared argument
    ({"num_classes": {"__class__": "os.system"}}, "num_classes"),
])
def test_checkpoint_model_kwargs_must_be_declared_plain_values(tmp_path, capsys, kwargs, field):
    ckpt = tmp_path / "bad.pt"
    _write_ckpt(ckpt, {"model": "lenet5", "model_kwargs": kwargs})
    code = main(["trace", "capture", "--checkpoint", str(ckpt), "--data", "random:1,32,32",
                 "--samples", "1", "-o", str(tmp_path / "x.trace")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and f"model_kwargs.{field}" in err


def test_checkpoint_naming_a_zoo_model_with_typed_kwargs_still_works(tmp_path):
    model = get_model("lenet5", num_classes=7)
    ckpt = tmp_path / "ok.pt"
    _write_ckpt(ckpt, {"model": "lenet5", "model_kwargs": {"num_classes": 7}},
                state=model.state_dict())
    out = tmp_path / "ok.trace"
    assert main(["trace", "capture", "--checkpoint", str(ckpt), "--data", "random:1,32,32",
                 "--samples", "1", "-o", str(out)]) == 0
    assert out.is_file()


def test_user_model_given_explicitly_is_allowed(tmp_path):
    ckpt = tmp_path / "plain.pt"
    model = get_model("lenet5")
    _write_ckpt(ckpt, {"model": "os:system"}, state=model.state_dict())
    out = tmp_path / "u.trace"
    assert main(["trace", "capture", "--model", "accelsim.zoo.lenet:lenet5", "--checkpoint",
                 str(ckpt), "--data", "random:1,32,32", "--samples", "1", "-o", str(out)]) == 0


def test_malformed_checkpoint_metadata_is_one_line(tmp_path, capsys):
    ckpt = tmp_path / "m.pt"
    torch.save({"format": "accelsim-checkpoint", "version": 1, "state_dict": {},
                "masks": {}, "metadata": ["not", "a", "dict"]}, ckpt)
    code = main(["trace", "capture", "--checkpoint", str(ckpt), "--samples", "1",
                 "-o", str(tmp_path / "x.trace")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "metadata" in err


def test_recipe_file_naming_code_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nmodel: os:system\nmodel_kwargs: {command: touch pwned}\n"
                      "data: {dataset: digits}\nstages:\n  - {name: dense, epochs: 1}\n")
    code = main(["train", str(recipe), "-o", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and not (tmp_path / "pwned").exists()
    assert len(err.splitlines()) == 1 and "--model" in err and "r.yaml" in err


def test_check_model_from_data_accepts_torchvision_names_only_as_names():
    assert check_model_from_data("torchvision:resnet18", {"num_classes": 3}, "f")[0] == "torchvision:resnet18"
    with pytest.raises(AccelsimError, match="not a torchvision model name"):
        check_model_from_data("torchvision:os.system", {}, "f")
