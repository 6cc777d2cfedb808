"""Name -> factory registry for the model zoo."""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable

from accelsim.errors import AccelsimError
from accelsim.zoo.gate import require_user_code


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: Callable
    input_shape: tuple[int, int, int]  # (C, H, W) of one sample, or (T, F, 0) style documented per model
    description: str


_REGISTRY: dict[str, ZooEntry] = {}
#: Modules whose import registers the zoo models; imported on first look-up (they need PyTorch).
ZOO_MODULES = ("lenet", "llama", "mobilenet", "resnet", "transformer", "vgg")
_loaded = False


def _load_zoo() -> None:
    global _loaded
    if not _loaded:
        import_library("torch", "the model zoo")
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
    """Build a zoo model by name, ``torchvision:NAME``, or a user model.

    A user model ``package.module:attribute`` must be marked as the user's own choice
    (:class:`accelsim.zoo.UserCode`); a plain string naming code is refused.
    """
    if name.startswith("torchvision:"):
        from accelsim.zoo.torchvision_models import torchvision_model

        return torchvision_model(name[len("torchvision:"):], **kwargs)
    if ":" in name:
        return resolve_model(name, **kwargs)
    return _entry(name).factory(**kwargs)


def resolve_model(spec, **kwargs):
    """Import ``package.module:attribute`` and call it (a class or factory) with ``kwargs``.

    If the attribute is already an ``nn.Module`` instance it is returned as is. Modules
    are looked up on ``sys.path`` and then in the current folder (so ``mynet:Net`` finds
    ``./mynet.py`` from the ``accelsim`` command too). ``spec`` must be a
    :class:`accelsim.zoo.UserCode` (the user's command line or code): this is the only place
    a model spec imports code, and a name read from a file never gets here.
    """
    spec = require_user_code(spec)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise AccelsimError(f"model spec {spec!r}: expected 'package.module:attribute'")
    nn = import_library("torch.nn", "building a model")
    module = import_user_module(module_name, f"model spec {spec!r}")
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise AccelsimError(f"model spec {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise AccelsimError(f"model spec {spec!r}: {attr!r} is neither an nn.Module nor callable")
    try:
        model = obj(**kwargs)
    except Exception as exc:  # the user's factory failed (wrong arguments, its own error)
        raise AccelsimError(f"model spec {spec!r}: calling {attr!r} failed: {_one_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise AccelsimError(f"model spec {spec!r}: calling {attr!r} returned {type(model).__name__}, not an nn.Module")
    return model


def import_user_module(module_name: str, what: str):
    """Import the user's module ``module_name``, also from the current folder; one-line errors."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # after installed packages: a local file never shadows a library
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise AccelsimError(
                f"{what}: no module {missing!r} in the current folder ({cwd}) or on the Python "
                f"path; run from the folder holding {missing.replace('.', '/')}.py, or add its "
                "folder to PYTHONPATH") from None
        raise AccelsimError(f"{what}: importing {module_name!r} needs the module {missing!r}, "
                            f"which is not installed (pip install {missing.split('.')[0]})") from None
    except Exception as exc:  # the user's code failed while importing: say where, in one line
        raise AccelsimError(f"{what}: importing {module_name!r} failed: {_one_line(exc)}") from None


def import_library(name: str, purpose: str):
    """Import a third-party library; a missing or broken installation is one line with the fix."""
    top = name.split(".")[0]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == top:
            raise AccelsimError(f"{purpose} needs {top}, which is not installed "
                                f"(pip install {_PIP_NAMES.get(top, top)})") from None
        raise AccelsimError(f"{purpose}: {top} is installed but cannot be imported: "
                            f"{_one_line(exc)}; reinstall it (pip install --force-reinstall "
                            f"{_PIP_NAMES.get(top, top)})") from None
    except Exception as exc:  # e.g. an extension built against another version (OSError, RuntimeError)
        hint = (f"install the torchvision build made for torch {_torch_version()} "
                "(pip install 'torchvision==<the release paired with your torch>', see "
                "https://pytorch.org/get-started/previous-versions/) or use a zoo model "
                "(`accelsim zoo`)") if top == "torchvision" else \
            f"reinstall it (pip install --force-reinstall {_PIP_NAMES.get(top, top)})"
        raise AccelsimError(f"{purpose}: {top} is installed but fails to load "
                            f"({_one_line(exc)}); {hint}") from None


_PIP_NAMES = {"torch": "torch", "torchvision": "torchvision", "sklearn": "scikit-learn"}


def _torch_version() -> str:
    try:
        import torch

        return str(torch.__version__)
    except Exception:  # noqa: BLE001 - only for a message
        return "(unknown)"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({exc.filename}, line {exc.lineno})"
    return f"{type(exc).__name__}: {first}{where}" if first else type(exc).__name__ + where
