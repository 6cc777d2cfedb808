"""HookOwner: hooks are removed on exit, on errors in the block and on failed registration."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from accelsim.hooks import HookOwner


class Counter(HookOwner):
    def __init__(self, modules, fail_after=None):
        self.modules = modules
        self.calls = 0
        self.fail_after = fail_after

    def hook_specs(self):
        for i, module in enumerate(self.modules):
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError("registration failed")
            yield module, self._hook, i % 2 == 0

    def _hook(self, *args):
        self.calls += 1


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_fire_inside_and_vanish_after() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    counter = Counter([model[0], model[2]])
    with counter:
        model(torch.zeros(1, 3))
        assert _hook_count(model) == 2
    assert counter.calls == 2 and _hook_count(model) == 0


def test_error_in_block_removes_hooks() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    with pytest.raises(ValueError):
        with Counter([model[0], model[1]]):
            raise ValueError("forward failed")
    assert _hook_count(model) == 0


def test_failed_registration_rolls_back() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 2))
    with pytest.raises(RuntimeError, match="registration failed"):
        with Counter(list(model), fail_after=2):
            pass
    assert _hook_count(model) == 0
