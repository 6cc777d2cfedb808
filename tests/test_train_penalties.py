"""TL1 / L1 / Hoyer-square penalties and the hooks that apply them."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from accelsim.train.penalties import (ActivationPenalty, hoyer_square_penalty, l1_penalty,
                                      penalty_function, tl1_penalty, transformed_l1)
from accelsim.zoo import get_model

X = torch.tensor([-3.0, -0.5, -1e-3, 0.0, 1e-3, 0.25, 1.0, 4.0], dtype=torch.float64)


@pytest.mark.parametrize("b", [0.1, 1.0, 7.5])
def test_tl1_value_matches_closed_form(b):
    expected = [(b + 1) * abs(v) / (b + abs(v)) for v in X.tolist()]
    assert transformed_l1(X, b).tolist() == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("b", [0.1, 1.0, 7.5])
def test_tl1_gradient_matches_closed_form(b):
    x = X.clone().requires_grad_(True)
    transformed_l1(x, b).sum().backward()
    nonzero = X != 0
    expected = (b + 1) * b * torch.sign(X) / (b + X.abs()) ** 2
    assert torch.allclose(x.grad[nonzero], expected[nonzero], rtol=1e-12, atol=0)
    assert torch.autograd.gradcheck(lambda t: transformed_l1(t, b), (X[nonzero].clone().requires_grad_(True),))


def test_tl1_limits_l0_and_l1():
    x = torch.tensor([0.0, 0.05, -0.3, 2.0, -10.0], dtype=torch.float64)
    to_l0 = transformed_l1(x, 1e-9)
    assert to_l0.tolist() == pytest.approx([0.0, 1.0, 1.0, 1.0, 1.0], abs=1e-6)
    to_l1 = transformed_l1(x, 1e9)
    assert to_l1.tolist() == pytest.approx(x.abs().tolist(), rel=1e-6)
    # rho_b(x) <= (b+1) and increases monotonically in |x|
    assert torch.all(transformed_l1(x, 2.0) <= 3.0)


def test_tl1_rejects_nonpositive_b():
    with pytest.raises(ValueError, match="b: expected a positive number"):
        transformed_l1(X, 0.0)
    with pytest.raises(ValueError, match="b: expected a positive number"):
        penalty_function("tl1", -1.0)


def test_penalties_are_normalised_per_element_and_batch():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5)
    doubled = torch.cat([x, x])
    for fn in (lambda t: tl1_penalty(t, 1.0), l1_penalty, hoyer_square_penalty):
        assert float(fn(doubled)) == pytest.approx(float(fn(x)), rel=1e-6)
    assert float(tl1_penalty(x, 1.0)) == pytest.approx(float(transformed_l1(x, 1.0).sum() / x.numel()))
    assert float(l1_penalty(x)) == pytest.approx(float(x.abs().sum() / x.numel()))


def test_hoyer_square_known_values():
    one_hot = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    flat = torch.ones(1, 4)
    assert float(hoyer_square_penalty(one_hot)) == pytest.approx(1 / 4)
    assert float(hoyer_square_penalty(flat)) == pytest.approx(1.0)
    assert float(hoyer_square_penalty(torch.zeros(2, 4))) == 0.0
    both = torch.cat([one_hot, flat])
    assert float(hoyer_square_penalty(both)) == pytest.approx((1 / 4 + 1) / 2)
    assert float(hoyer_square_penalty(3.0 * both)) == pytest.approx((1 / 4 + 1) / 2)  # scale-invariant


def _lenet_layers() -> list[str]:
    return ["conv1", "conv2", "fc1", "fc2", "fc3"]


def test_hooks_on_the_right_layers_and_value():
    torch.manual_seed(0)
    model = get_model("lenet5").train()
    coefficients = {"conv2": 0.5, "fc1": 0.25, "fc2": 1.0, "fc3": 2.0}
    seen: dict[str, torch.Tensor] = {}
    spies = [getattr(model, name).register_forward_pre_hook(
        lambda m, inp, n=name: seen.__setitem__(n, inp[0].detach().clone())) for name in _lenet_layers()]
    x = torch.randn(3, 1, 32, 32)
    with ActivationPenalty(model, coefficients, "tl1", b=0.7) as pen:
        model(x)
        total = pen.pop_total()
        assert set(pen.last_terms) == set(coefficients)  # conv1 (the image) is not penalised
    for spy in spies:
        spy.remove()
    expected = sum(c * float(tl1_penalty(seen[name], 0.7)) for name, c in coefficients.items())
    assert float(total.detach()) == pytest.approx(expected, rel=1e-6)
    for name, value in pen.last_terms.items():
        assert value == pytest.approx(float(tl1_penalty(seen[name], 0.7)), rel=1e-6)


def test_penalty_gradient_reaches_earlier_layers():
    torch.manual_seed(0)
    model = get_model("lenet5").train()
    with ActivationPenalty(model, {"fc1": 1.0}, "l1") as pen:
        model(torch.randn(2, 1, 32, 32))
        pen.pop_total().backward()
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0
    assert model.fc1.weight.grad is None  # fc1's input does not depend on fc1


def test_hooks_are_removed_even_on_error_and_idle_in_eval():
    model = get_model("lenet5")
    with pytest.raises(RuntimeError):
        with ActivationPenalty(model, {"fc1": 1.0}, "tl1"):
            assert len(model.fc1._forward_pre_hooks) == 1
            raise RuntimeError("boom")
    assert all(len(m._forward_pre_hooks) == 0 for m in model.modules())
    with ActivationPenalty(model, {"fc1": 1.0}, "tl1") as pen:
        model.eval()
        model(torch.randn(1, 1, 32, 32))
        assert float(pen.pop_total()) == 0.0 and pen.last_terms == {}


def test_unknown_layer_and_kind_rejected():
    model = get_model("lenet5")
    with pytest.raises(ValueError, match="fc9"):
        ActivationPenalty(model, {"fc9": 1.0}, "tl1")
    with pytest.raises(ValueError, match="kind"):
        ActivationPenalty(model, {"fc1": 1.0}, "l2")


def test_penalty_works_on_any_module_input():
    layer = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with ActivationPenalty(layer, {"2": 1.0}, "hoyer_square") as pen:
        layer(torch.randn(5, 4))
        assert float(pen.pop_total().detach()) > 0 and list(pen.last_terms) == ["2"]
