"""``accelsim trace ...`` end to end through ``accelsim.cli.main``."""
from __future__ import annotations

import json

import pytest
import torch

from accelsim.cli import main
from accelsim.trace import open_trace


def test_capture_then_info(tmp_path, capsys):
    out = tmp_path / "lenet.trace"
    assert main(["trace", "capture", "--model", "lenet5", "--data", "random:1,32,32",
                 "--samples", "5", "--batch-size", "2", "--threshold", "0.01",
                 "--kinds", "conv2d,linear", "-o", str(out)]) == 0
    trace = open_trace(out)
    assert trace.num_samples == 5 and trace.layer_names == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert trace.provenance["model"] == "lenet5"
    assert trace.provenance["dataset"].startswith("random:1,32,32")
    assert trace.provenance["capture_options"]["threshold"] == 0.01
    capsys.readouterr()

    assert main(["trace", "info", str(out)]) == 0
    table = capsys.readouterr().out
    assert "conv2" in table and "total (5 layers)" in table and "6x14x14->16x10x10 5x5/1" in table

    assert main(["trace", "info", str(out), "--json", "--samples", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["samples_analysed"] == 3 and len(data["layers"]) == 5
    conv2 = data["layers"][1]
    assert conv2["dense_macs_per_sample"] == 16 * 10 * 10 * 6 * 25
    assert 0 < conv2["frac_macs_both_nonzero"] <= conv2["frac_macs_act_nonzero"] <= 1
    assert data["totals"]["dense_macs_per_sample"] == sum(
        l["dense_macs_per_sample"] for l in data["layers"])
    assert data["content_hash"] == trace.content_hash


def test_capture_with_checkpoint(tmp_path):
    from accelsim.train.checkpoint import file_sha256, save_checkpoint
    from accelsim.zoo import get_model

    model = get_model("lenet5")
    with torch.no_grad():
        model.conv2.weight[:8] = 0
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model.state_dict(), {"model": "lenet5", "metrics": {"accuracy": 0.9},
                                               "dataset": "random:1,32,32"})
    out = tmp_path / "c.trace"
    assert main(["trace", "capture", "--checkpoint", str(ckpt), "--samples", "2",
                 "-o", str(out)]) == 0
    trace = open_trace(out)
    assert trace.provenance["checkpoint_sha256"] == file_sha256(ckpt)
    assert trace.provenance["accuracy"] == 0.9
    assert trace.provenance["dataset"].startswith("random:1,32,32")  # the checkpoint's data
    assert trace.layer("conv2").stats["weight_density"] == pytest.approx(0.5)

    wrong = tmp_path / "w.trace"
    assert main(["trace", "capture", "--model", "resnet18_cifar", "--checkpoint", str(ckpt),
                 "--samples", "1", "-o", str(wrong)]) == 2
    assert not wrong.exists()


def test_from_topology_from_model_from_trace(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    csv.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                   "Channels, Num Filter, Strides,\nc1, 10, 10, 3, 3, 4, 8, 1,\n"
                   "c2, 8, 8, 3, 3, 8, 8, 2,\n")
    topo = tmp_path / "topo.trace"
    assert main(["trace", "from-topology", str(csv), "--act-density", "0.5",
                 "--weight-density", "0.25", "--seed", "3", "-o", str(topo)]) == 0
    assert "SCALE-Sim rounds the output up" in capsys.readouterr().err
    trace = open_trace(topo)
    assert trace.is_statistical and trace.seed == 3 and trace.layer_names == ["c1", "c2"]

    model_trace = tmp_path / "model.trace"
    assert main(["trace", "from-model", "mobilenet_v2_cifar", "--act-density", "0.4",
                 "--weight-density", "0.6", "--input-density", "1", "--samples", "2",
                 "-o", str(model_trace)]) == 0
    trace = open_trace(model_trace)
    kinds = {trace.geometry(i).kind for i in range(len(trace))}
    assert kinds == {"conv2d", "depthwise_conv2d", "linear"}
    assert trace.layer(0).act_mask().all()

    captured = tmp_path / "cap.trace"
    assert main(["trace", "capture", "--model", "tiny_transformer", "--samples", "2",
                 "-o", str(captured)]) == 0
    resampled = tmp_path / "res.trace"
    assert main(["trace", "from-trace", str(captured), "--samples", "4", "-o", str(resampled)]) == 0
    assert open_trace(resampled).num_samples == 4
    assert main(["trace", "info", str(resampled)]) == 0


@pytest.mark.parametrize("argv,message", [
    (["trace", "info", "missing.trace"], "missing.trace: trace file not found"),
    (["trace", "capture", "--model", "lenet6", "--samples", "1", "-o", "x.trace"],
     "unknown model 'lenet6' (did you mean 'lenet5'?)"),
    (["trace", "capture", "--model", "lenet5", "--data", "random:1,x", "--samples", "1",
      "-o", "x.trace"], "--data random:1,x"),
    (["trace", "capture", "--model", "lenet5", "--kinds", "conv3d", "--samples", "1",
      "-o", "x.trace"], "kinds: expected"),
    (["trace", "capture", "--model", "torchvision:resnet18", "--samples", "1",
      "-o", "x.trace", "--data", "random:3,32,32"], "torchvision"),
    (["trace", "from-topology", "missing.csv", "--act-density", "0.5",
      "--weight-density", "0.5", "-o", "x.trace"], "missing.csv: topology file not found"),
])
def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_bad_argument_values_rejected_by_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["trace", "from-model", "lenet5", "--act-density", "1.5", "--weight-density",
              "0.5", "-o", "x.trace"])
    assert exc.value.code == 2
    assert "expected a density in [0, 1]" in capsys.readouterr().err


def test_capture_with_data_of_the_wrong_shape_is_a_clear_error(tmp_path, capsys) -> None:
    from accelsim.cli import main

    code = main(["trace", "capture", "--model", "lenet5", "--data", "random:3,32,32",
                 "--samples", "1", "-o", str(tmp_path / "x.trace")])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: model 'lenet5' failed on the data" in err and "Traceback" not in err
    assert not (tmp_path / "x.trace").exists()


def test_capture_refuses_a_non_checkpoint(tmp_path, capsys) -> None:
    from accelsim.cli import main

    fake = tmp_path / "fake.pt"
    fake.write_text("name: not a checkpoint\n")
    code = main(["trace", "capture", "--model", "lenet5", "--checkpoint", str(fake), "--data",
                 "random:1,32,32", "--samples", "1", "-o", str(tmp_path / "x.trace")])
    err = capsys.readouterr().err
    assert code == 2 and f"{fake}: not a readable checkpoint" in err
