"""``torchvision:NAME`` model specs, resolved only when torchvision is installed.

``build_model(spec)`` is the one entry point the CLIs use: it accepts a zoo name
(``resnet18_cifar``), a user model (``package.module:attribute`` marked as the user's
own choice with :class:`accelsim.zoo.UserCode`) or
``torchvision:NAME`` (any builder in ``torchvision.models``, built without weights).
"""
from __future__ import annotations

from accelsim.errors import AccelsimError
from accelsim.zoo.gate import TORCHVISION_PREFIX
from accelsim.zoo.registry import get_model, import_library


def torchvision_model(name: str, **kwargs):
    """Build ``torchvision.models.<name>`` with random weights (no download)."""
    tv_models = import_library("torchvision.models", f"model spec {TORCHVISION_PREFIX}{name}")
    try:
        builder = tv_models.get_model_builder(name)
    except ValueError:
        known = ", ".join(sorted(tv_models.list_models())[:20])
        raise AccelsimError(
            f"model spec {TORCHVISION_PREFIX}{name}: torchvision has no model {name!r} "
            f"(some it has: {known}, ...)") from None
    return builder(weights=None, **kwargs)


def build_model(spec: str, **kwargs):
    """Build a model from a zoo name, ``package.module:attribute`` or ``torchvision:NAME``."""
    if spec.startswith(TORCHVISION_PREFIX):
        return torchvision_model(spec[len(TORCHVISION_PREFIX):], **kwargs)
    return get_model(spec, **kwargs)
