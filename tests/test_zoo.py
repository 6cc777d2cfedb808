"""Model zoo: every model builds, runs on its input shape, and has the published size."""
from __future__ import annotations

import pytest
import torch

from accelsim.errors import AccelsimError
from accelsim.zoo import UserCode, build_model, get_model, list_models, model_input_shape

# Parameter counts of the reference definitions (torchvision's for the ImageNet models).
PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "vgg11": 132_863_336,
          "vgg16": 138_357_544, "mobilenet_v2": 3_504_872}
EXPECTED = {"lenet5", "vgg11_cifar", "vgg16_cifar", "resnet18_cifar", "resnet50_cifar", "vgg11",
            "vgg16", "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v2_cifar",
            "tiny_transformer"}


def test_registry_lists_the_zoo():
    assert EXPECTED <= set(list_models())
    assert model_input_shape("resnet50") == (3, 224, 224)
    assert model_input_shape("tiny_transformer") == (16, 64)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_forward_shape_on_meta_device(name):
    with torch.device("meta"):
        model = get_model(name)
        out = model(torch.zeros(2, *model_input_shape(name)))
    classes = 1000 if model_input_shape(name)[-1] == 224 else 10
    assert tuple(out.shape) == (2, classes)
    if name in PARAMS:
        assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


@pytest.mark.parametrize("name", ["lenet5", "resnet18_cifar", "mobilenet_v2_cifar",
                                  "tiny_transformer", "vgg11_cifar"])
def test_small_models_run_on_cpu(name):
    torch.manual_seed(0)
    model = get_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *model_input_shape(name)))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_layer_structure():
    mobilenet = get_model("mobilenet_v2_cifar")
    depthwise = [m for m in mobilenet.modules()
                 if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1]
    assert len(depthwise) == 17
    resnet = get_model("resnet50_cifar")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in resnet.modules()) == 53
    transformer = get_model("tiny_transformer")
    assert any(isinstance(m, torch.nn.ReLU) for m in transformer.modules())
    assert sum(isinstance(m, torch.nn.Linear) for m in transformer.modules()) == 13


def test_user_model_spec_and_torchvision_spec():
    model = build_model(UserCode("torch.nn:Identity"))
    assert isinstance(model, torch.nn.Identity)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(AccelsimError, match="needs torchvision, which is not installed"):
            build_model("torchvision:resnet18")
    else:
        assert isinstance(build_model("torchvision:resnet18"), torch.nn.Module)
        with pytest.raises(AccelsimError, match="torchvision has no model"):
            build_model("torchvision:not_a_model")


def test_zoo_cli_lists_models(capsys) -> None:
    import json

    from accelsim.cli import main

    assert main(["zoo"]) == 0
    assert "lenet5" in capsys.readouterr().out
    assert main(["zoo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["lenet5"]["input_shape"] == [1, 32, 32]
    assert {"resnet18", "resnet50", "mobilenet_v2", "tiny_transformer"} <= set(data)
