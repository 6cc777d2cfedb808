"""`accelsim train` picks a sensible torch thread count by default and says which."""
from __future__ import annotations

from pathlib import Path

import pytest

from accelsim.cli import main
from accelsim.errors import AccelsimError
from accelsim.train.cli import pick_threads, usable_cores


def test_default_is_half_the_usable_cores_between_1_and_4(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for cores, expected in ((1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 4)):
        monkeypatch.setattr("accelsim.train.cli.usable_cores", lambda c=cores: c)
        threads, why = pick_threads(None)
        assert threads == expected
        assert why == f"default for {cores} usable core{'s' if cores != 1 else ''}"


def test_explicit_and_environment_choices(monkeypatch):
    assert pick_threads(3) == (3, "--threads")
    with pytest.raises(AccelsimError, match="--threads: expected a positive integer, got 0"):
        pick_threads(0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert pick_threads(None) == (None, "from OMP_NUM_THREADS")
    assert usable_cores() >= 1


def test_train_says_which_thread_count(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    import torch

    recipe = Path(__file__).resolve().parents[1] / "models" / "lenet5_digits_dual.yaml"
    before = torch.get_num_threads()
    try:
        # a folder already holding a run fails after the recipe is read and threads are set
        from accelsim.train.run import STATE_FILE

        (tmp_path / "run").mkdir()
        (tmp_path / "run" / STATE_FILE).write_text("{}")
        assert main(["train", str(recipe), "-o", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        expected, _ = pick_threads(None)
        assert f"torch CPU threads: {expected} (default for {usable_cores()} usable core" in err
        assert main(["train", str(tmp_path / "none.yaml")]) == 2   # a bad recipe: one line only
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    finally:
        torch.set_num_threads(before)
