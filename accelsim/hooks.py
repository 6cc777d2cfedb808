"""Objects that own PyTorch forward hooks and always remove them.

Training penalties, sparsity meters and the trace recorder all attach hooks to a
model for the duration of a ``with`` block. :class:`HookOwner` holds the handles:
entering registers every hook the subclass lists, and leaving the block, or a
failure half-way through registering, removes every one of them.
"""
from __future__ import annotations

from typing import Iterable

import torch.nn as nn

#: (module, hook, pre) or (module, hook, pre, always_call): ``pre`` registers a forward
#: pre-hook, otherwise a forward hook (``always_call``: it runs even when the forward raises).
HookSpec = tuple


class HookOwner:
    """Base class: subclasses implement :meth:`hook_specs`; use instances as context managers."""

    _handles: list

    def hook_specs(self) -> Iterable[HookSpec]:
        """The hooks to register on entry."""
        raise NotImplementedError

    def __enter__(self):
        self._handles = getattr(self, "_handles", [])
        try:
            for module, hook, pre, *always in self.hook_specs():
                if pre:
                    self._handles.append(module.register_forward_pre_hook(hook))
                else:
                    self._handles.append(module.register_forward_hook(
                        hook, always_call=bool(always and always[0])))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this object registered."""
        handles = getattr(self, "_handles", [])
        while handles:
            handles.pop().remove()


class _Probe(HookOwner):
    def __init__(self, specs: Iterable[HookSpec]):
        self._specs = list(specs)

    def hook_specs(self) -> Iterable[HookSpec]:
        return self._specs


def probe_forward(model: nn.Module, example, specs: Iterable[HookSpec]) -> None:
    """Run ``model(example)`` once, in eval mode and without gradients, with the given hooks.

    The hooks are removed and the model's training mode restored afterwards, even on error.
    """
    import torch

    was_training = model.training
    try:
        with _Probe(specs):
            model.eval()
            with torch.no_grad():
                model(example)
    finally:
        model.train(was_training)
