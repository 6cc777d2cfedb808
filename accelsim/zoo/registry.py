"""Name -> factory registry for the model zoo."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from accelsim.errors import AccelsimError


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: Callable
    input_shape: tuple[int, int, int]  # (C, H, W) of one sample, or (T, F, 0) style documented per model
    description: str


_REGISTRY: dict[str, ZooEntry] = {}
#: Modules whose import registers the zoo models; imported on first look-up (they need PyTorch).
ZOO_MODULES = ("lenet", "mobilenet", "resnet", "transformer", "vgg")
_loaded = False


def _load_zoo() -> None:
    global _loaded
    if not _loaded:
        for name in ZOO_MODULES:
            importlib.import_module(f"accelsim.zoo.{name}")
        _loaded = True


def register(name: str, input_shape: tuple[int, ...], description: str) -> Callable:
    """Decorator registering a model factory under ``name``."""

    def wrap(factory: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ZooEntry(name, factory, tuple(input_shape), description)
        return factory

    return wrap


def list_models() -> dict[str, ZooEntry]:
    """All registered models by name."""
    _load_zoo()
    return dict(sorted(_REGISTRY.items()))


def model_input_shape(name: str) -> tuple[int, ...]:
    """Shape of one input sample (without the batch dimension) of a zoo model."""
    return _entry(name).input_shape


def _entry(name: str) -> ZooEntry:
    _load_zoo()
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AccelsimError(
            f"unknown model {name!r}{hint}; known models: {', '.join(sorted(_REGISTRY))}; "
            "or give a user model as 'package.module:attribute'") from None


def get_model(name: str, **kwargs):
    """Build a zoo model by name, ``torchvision:NAME``, or a user model ``package.module:attribute``."""
    if name.startswith("torchvision:"):
        from accelsim.zoo.torchvision_models import torchvision_model

        return torchvision_model(name[len("torchvision:"):], **kwargs)
    if ":" in name:
        return resolve_model(name, **kwargs)
    return _entry(name).factory(**kwargs)


def resolve_model(spec: str, **kwargs):
    """Import ``package.module:attribute`` and call it (a class or factory) with ``kwargs``.

    If the attribute is already an ``nn.Module`` instance it is returned as is.
    """
    import torch.nn as nn

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise AccelsimError(f"model spec {spec!r}: expected 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AccelsimError(f"model spec {spec!r}: cannot import {module_name!r}: {exc}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise AccelsimError(f"model spec {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise AccelsimError(f"model spec {spec!r}: {attr!r} is neither an nn.Module nor callable")
    model = obj(**kwargs)
    if not isinstance(model, nn.Module):
        raise AccelsimError(f"model spec {spec!r}: calling {attr!r} returned {type(model).__name__}, not an nn.Module")
    return model
