"""``--device`` for ``accelsim train`` and ``accelsim trace capture``.

Everywhere: a device this build or machine cannot use is one ``error:`` line. With a CUDA
GPU (``torch.cuda.is_available()``), training and capture run there and agree with the
CPU; without one those tests are skipped, saying why.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from accelsim.cli import main
from accelsim.device import resolve_device
from accelsim.errors import AccelsimError
from accelsim.train import load_checkpoint, parse_recipe, run_recipe
from accelsim.trace.reader import open_trace

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible to this PyTorch build "
                                                     f"({torch.__version__}); GPU path not exercised")
cpu_only = pytest.mark.skipif(HAS_CUDA, reason="a CUDA GPU is present, so the CPU-only message "
                                               "cannot be shown")

TINY = {
    "version": 1, "name": "tiny_dev", "seed": 5, "model": "lenet5",
    "data": {"dataset": "synthetic:1,32,32,10,96", "batch_size": 32},
    "stages": [
        {"name": "dense", "epochs": 2, "optimizer": {"type": "sgd", "lr": 0.05}},
        {"name": "prune", "epochs": 1, "optimizer": {"type": "sgd", "lr": 0.01},
         "prune": {"sparsity": 0.5, "scope": "global", "layers": "all_but_first"}},
        {"name": "sparse", "epochs": 2, "optimizer": {"type": "sgd", "lr": 0.01},
         "activation_penalty": {"type": "tl1", "b": 1.0, "lambda": 0.05}},
    ],
}


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("device,words", [
    ("gpu0", "is not a torch device"), ("meta", "meta device holds no data"),
])
def test_bad_device_names_are_one_line(recipe_file, tmp_path, capsys, device, words):
    assert main(["train", str(recipe_file), "-o", str(tmp_path / "r"), "--device", device]) == 2
    assert words in _one_error_line(capsys)
    assert main(["trace", "capture", "--model", "lenet5", "--data", "random:1,32,32",
                 "--samples", "2", "--device", device, "-o", str(tmp_path / "t.trace")]) == 2
    assert words in _one_error_line(capsys)
    assert not (tmp_path / "t.trace").exists() and not (tmp_path / "r").exists()


@cpu_only
def test_cuda_on_a_cpu_only_build_is_one_line(recipe_file, tmp_path, capsys):
    assert main(["train", str(recipe_file), "-o", str(tmp_path / "r"), "--device", "cuda"]) == 2
    assert "sees no CUDA GPU; use --device cpu" in _one_error_line(capsys)
    assert main(["trace", "capture", "--model", "lenet5", "--data", "random:1,32,32",
                 "--samples", "2", "--device", "cuda:0", "-o", str(tmp_path / "t.trace")]) == 2
    assert "--device cuda:0: this PyTorch build" in _one_error_line(capsys)
    with pytest.raises(AccelsimError, match="sees no CUDA GPU"):
        run_recipe(parse_recipe(TINY), tmp_path / "api", device="cuda", progress=False)
    assert not (tmp_path / "t.trace").exists() and not (tmp_path / "r").exists()


def test_decoder_capture_refuses_a_device(tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("1 2 3\n")
    assert main(["trace", "capture", "--model", "llama_tiny", "--prompt-ids", str(ids),
                 "--samples", "1", "--device", "cuda", "-o", str(tmp_path / "t.trace")]) == 2
    assert "decoder LLM capture runs on the CPU only" in _one_error_line(capsys)


def test_cpu_resolves_everywhere():
    assert resolve_device("cpu").type == "cpu" and resolve_device("cpu:0").type == "cpu"


@needs_cuda
def test_resolve_refuses_a_missing_gpu_index():
    with pytest.raises(AccelsimError, match="no such GPU"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    assert resolve_device("cuda").type == "cuda"


class _Stop(Exception):
    pass


@pytest.fixture
def fp32():
    """Full-precision float32 on the GPU (no TF32), so GPU and CPU differ by rounding only."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@needs_cuda
def test_train_on_cuda_matches_cpu_and_resumes(recipe_file, tmp_path, fp32):
    assert main(["train", str(recipe_file), "-o", str(tmp_path / "gpu"), "--device", "cuda",
                 "-q"]) == 0
    assert main(["train", str(recipe_file), "-o", str(tmp_path / "cpu"), "-q"]) == 0
    state, masks, meta = load_checkpoint(tmp_path / "gpu" / "model.pt")
    assert meta["device"].startswith("cuda") and all(t.device.type == "cpu" for t in state.values())
    cpu_state, cpu_masks, cpu_meta = load_checkpoint(tmp_path / "cpu" / "model.pt")
    first = [json.loads((tmp_path / d / "metrics.jsonl").read_text().splitlines()[0])
             for d in ("gpu", "cpu")]
    # same data order and initial weights: the first epoch's loss agrees to rounding
    assert first[0]["train"]["ce"] == pytest.approx(first[1]["train"]["ce"], rel=1e-3)
    assert meta["metrics"]["weight_sparsity"] == pytest.approx(cpu_meta["metrics"]["weight_sparsity"])
    assert abs(meta["metrics"]["test_accuracy"] - cpu_meta["metrics"]["test_accuracy"]) <= 0.1

    def stop(stage, epoch, line):
        if stage == "prune":
            raise _Stop

    with pytest.raises(_Stop):
        run_recipe(parse_recipe(TINY), tmp_path / "resumed", device="cuda", progress=False,
                   on_epoch_end=stop)
    resumed = run_recipe(parse_recipe(TINY), tmp_path / "resumed", device="cuda", resume=True,
                         progress=False)
    whole, _, _ = load_checkpoint(tmp_path / "gpu" / "model.pt")
    again, _, _ = load_checkpoint(resumed.checkpoint)
    for name, tensor in whole.items():  # deterministic algorithms: a resumed run is the same run
        assert torch.equal(tensor, again[name]), name


@needs_cuda
def test_capture_on_cuda_matches_cpu(tmp_path, fp32):
    from accelsim.zoo import build_model

    torch.manual_seed(0)
    torch.save(build_model("resnet18_cifar").state_dict(), tmp_path / "r18.pt")
    common = ["trace", "capture", "--model", "resnet18_cifar", "--checkpoint", str(tmp_path / "r18.pt"),
              "--data", "synthetic:3,32,32,10,16", "--samples", "12", "--batch-size", "5"]
    assert main(common + ["--device", "cuda", "-o", str(tmp_path / "gpu.trace")]) == 0
    assert main(common + ["-o", str(tmp_path / "cpu.trace")]) == 0
    gpu, cpu = open_trace(tmp_path / "gpu.trace"), open_trace(tmp_path / "cpu.trace")
    assert gpu.provenance["device"].startswith("cuda") and cpu.provenance["device"] == "cpu"
    assert len(gpu) == len(cpu) == 21 and gpu.num_samples == cpu.num_samples == 12
    for a, b in zip(gpu, cpu):
        assert a.name == b.name and a.geometry == b.geometry
        assert np.array_equal(a.weight_mask(), b.weight_mask())  # the same weights
        # activations differ only by float rounding: a value at exactly zero may flip
        assert np.mean(a.act_mask() != b.act_mask()) < 1e-3, a.name
