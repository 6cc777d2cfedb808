"""Build a model named by *data* (checkpoint metadata, a recipe file) without running code from it.

A file written by someone else may only name a model of the zoo (or a ``torchvision:NAME``
builder), and its keyword arguments must be plain values of the types the factory declares.
It can never name an importable ``package.module:attribute``: that is the user's own choice,
given on the command line (``--model``).
"""
from __future__ import annotations

import inspect
import typing

from accelsim.errors import AccelsimError
from accelsim.zoo.registry import list_models
from accelsim.zoo.torchvision_models import TORCHVISION_PREFIX, build_model

_PLAIN_TYPES = (bool, int, float, str)
_MAX_STRING = 256


def _declared_types(factory) -> dict[str, type]:
    """Parameter name -> declared plain type (int, float, bool, str) of a zoo factory."""
    hints = typing.get_type_hints(factory)
    declared: dict[str, type] = {}
    for name, param in inspect.signature(factory).parameters.items():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            continue
        hint = hints.get(name)
        if hint in _PLAIN_TYPES:
            declared[name] = hint
    return declared


#: Integer arguments of zoo factories read from a file: (lowest, highest). A size of -5 fails
#: deep inside torch and one of 10**9 fills memory; unnamed integers are sizes up to 2**20.
INT_LIMITS = {"num_classes": (1, 100_000), "in_channels": (1, 4096), "dim": (1, 1 << 16),
              "depth": (1, 1024), "heads": (1, 1024), "hidden": (1, 1 << 20),
              "seed": (0, 2 ** 32 - 1)}
_DEFAULT_INT = (1, 1 << 20)


def _check_value(value, expected: type, name: str = "") -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        low, high = INT_LIMITS.get(name, _DEFAULT_INT)
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str) and len(value) <= _MAX_STRING


def check_model_from_data(spec, kwargs, source: str) -> tuple[str, dict]:
    """Validate a model name and keyword arguments read from ``source`` (a file).

    Returns ``(spec, kwargs)`` when the name is a zoo model (or ``torchvision:NAME``) and
    every argument is a plain value of the declared type; raises :class:`AccelsimError`
    with one line (naming ``source`` and saying to pass ``--model``) otherwise.
    """
    hint = "pass the model explicitly with --model (a zoo name or your own package.module:attribute)"
    if not isinstance(spec, str) or not spec:
        raise AccelsimError(f"{source}: model: expected a zoo model name, got {spec!r}; {hint}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise AccelsimError(f"{source}: model_kwargs: expected a mapping of names to plain values; {hint}")
    if spec.startswith(TORCHVISION_PREFIX):
        name = spec[len(TORCHVISION_PREFIX):]
        if not name.isidentifier():
            raise AccelsimError(f"{source}: model: {spec!r} is not a torchvision model name; {hint}")
        for key, value in kwargs.items():
            if not isinstance(value, _PLAIN_TYPES) or (isinstance(value, str) and len(value) > _MAX_STRING):
                raise AccelsimError(f"{source}: model_kwargs.{key}: expected a plain number, "
                                    f"boolean or short string, got {type(value).__name__}; {hint}")
        return spec, dict(kwargs)
    zoo = list_models()
    if spec not in zoo:
        what = "names code to import" if ":" in spec else "is not a zoo model"
        raise AccelsimError(f"{source}: model: {spec!r} {what}; a file may only name a zoo model "
                            f"({', '.join(zoo)}); {hint}")
    declared = _declared_types(zoo[spec].factory)
    for key, value in kwargs.items():
        if key not in declared:
            raise AccelsimError(f"{source}: model_kwargs.{key}: model {spec!r} takes no such "
                                f"argument (it takes: {', '.join(declared) or 'none'}); {hint}")
        if not _check_value(value, declared[key], key):
            expected = declared[key].__name__
            if declared[key] is int:
                expected = "an integer from {} to {:,}".format(*INT_LIMITS.get(key, _DEFAULT_INT))
            raise AccelsimError(f"{source}: model_kwargs.{key}: expected {expected}, "
                                f"got {value!r:.60}; {hint}")
    return spec, dict(kwargs)


def build_model_from_data(spec, kwargs, source: str):
    """Build the model a file names, after :func:`check_model_from_data` accepts it."""
    spec, kwargs = check_model_from_data(spec, kwargs, source)
    return build_model(spec, **kwargs)
