"""Checkpoints carry a content hash; `train --resume` validates its state before changing anything."""
from __future__ import annotations

import copy
import shutil

import pytest
import torch

from accelsim.errors import AccelsimError
from accelsim.train import load_checkpoint, parse_recipe, run_recipe
from accelsim.train.checkpoint import save_checkpoint

RECIPE = {
    "version": 1, "name": "tiny", "seed": 1, "model": "lenet5",
    "data": {"dataset": "synthetic:1,32,32,10,64", "batch_size": 32},
    "stages": [{"name": "a", "epochs": 2, "optimizer": {"type": "sgd", "lr": 0.05}},
               {"name": "b", "epochs": 1, "optimizer": {"type": "adam", "lr": 0.001}}],
}


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run stopped after epoch 1 of stage a (last.pt + one metrics line)."""
    out = tmp_path_factory.mktemp("run")

    def stop(stage, epoch, line):
        raise Stop

    with pytest.raises(Stop):
        run_recipe(parse_recipe(RECIPE), out, progress=False, on_epoch_end=stop)
    return out


def _copy(interrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    return out


def _flip_weight_bit(path, tmp_path):
    """The checkpoint with one bit of one weight flipped, as a disk error would."""
    data = bytearray(path.read_bytes())
    state, _, _ = load_checkpoint(path)
    raw = state["conv1.weight"].reshape(-1)[:4].numpy().tobytes()
    at = bytes(data).find(raw)
    assert at > 0
    data[at + 1] ^= 0x10
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(data))
    return flipped


def test_bit_flipped_checkpoint_is_refused(interrupted, tmp_path):
    flipped = _flip_weight_bit(interrupted / "last.pt", tmp_path)
    payload = torch.load(flipped, weights_only=True)  # torch itself loads it, changed
    assert not torch.equal(payload["state_dict"]["conv1.weight"],
                           load_checkpoint(interrupted / "last.pt")[0]["conv1.weight"])
    with pytest.raises(AccelsimError, match="flipped.pt: the checkpoint is corrupt"):
        load_checkpoint(flipped)


def test_plain_state_dict_and_hashless_checkpoints_still_load(tmp_path):
    plain = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}
    torch.save(plain, tmp_path / "plain.pt")
    state, masks, meta = load_checkpoint(tmp_path / "plain.pt")
    assert torch.equal(state["w"], plain["w"]) and masks == {} and meta == {}
    old = {"format": "accelsim-checkpoint", "version": 1, "state_dict": plain,
           "masks": {}, "metadata": {"x": 1}}
    torch.save(old, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")[2] == {"x": 1}


def test_edited_metadata_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(3)}, {"stage": "a"})
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    payload["metadata"]["stage"] = "b"
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(AccelsimError, match="content hash"):
        load_checkpoint(tmp_path / "c.pt")


def _tamper(out, **resume):
    """Rewrite last.pt with edited resume state and a *valid* hash (a deliberate edit)."""
    state, masks, meta = load_checkpoint(out / "last.pt")
    meta = copy.deepcopy(meta)
    meta["resume"].update(resume)
    save_checkpoint(out / "last.pt", state, meta, masks)


@pytest.mark.parametrize("resume,words", [
    ({"metrics_lines": -2}, r"resume.metrics_lines: expected 1 .*got -2"),
    ({"metrics_lines": 0}, r"resume.metrics_lines: expected 1"),
    ({"stage": 7}, r"resume.stage: expected a stage index from 0 to 1, got 7"),
    ({"epoch": -1}, r"resume.epoch: expected an epoch from 0 to 2"),
    ({"epoch": "1"}, r"resume.epoch: expected an integer"),
    ({"optimizer": [1, 2]}, r"resume.optimizer: expected an optimizer state"),
    ({"optimizer": {"state": {}, "param_groups": []}}, r"resume.optimizer does not fit"),
])
def test_tampered_resume_state_is_refused_before_anything_changes(interrupted, tmp_path,
                                                                   resume, words):
    out = _copy(interrupted, tmp_path)
    _tamper(out, **resume)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(AccelsimError, match=words):
        run_recipe(parse_recipe(RECIPE), out, progress=False, resume=True)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # metrics.jsonl not truncated, nothing skipped or written


def test_damaged_metrics_file_is_one_line(interrupted, tmp_path):
    out = _copy(interrupted, tmp_path)
    (out / "metrics.jsonl").write_text("{not json\n")
    with pytest.raises(AccelsimError, match=r"metrics.jsonl: line 1 is not a JSON object"):
        run_recipe(parse_recipe(RECIPE), out, progress=False, resume=True)


def test_genuine_resume_still_works(interrupted, tmp_path):
    out = _copy(interrupted, tmp_path)
    result = run_recipe(parse_recipe(RECIPE), out, progress=False, resume=True)
    assert len(result.history) == 3
