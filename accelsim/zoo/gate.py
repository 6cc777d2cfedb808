"""The one gate between a model name and code.

A name read from a file (a recipe, a co-design spec, a checkpoint's metadata, a trace's
provenance) is data: it may name a zoo model or a ``torchvision:NAME`` builder, never
``package.module:attribute``. Only the user's own choice may import code: a ``--model``
option on the command line, or a Python caller, marks it by wrapping the text in
:class:`UserCode`. :func:`accelsim.zoo.registry.resolve_model` (the only function that
imports a module named by a model spec) refuses any spec that is not a ``UserCode``.

``UserCode`` is a ``str`` subclass, so it prints, hashes and serialises as the text; any
transformation that produces a plain ``str`` (``str(x)``, slicing, a JSON round trip)
drops the mark, so a spec that passed through a file is refused: the gate fails closed.
"""
from __future__ import annotations

from accelsim.errors import AccelsimError

TORCHVISION_PREFIX = "torchvision:"


class UserCode(str):
    """A ``package.module:attribute`` model spec given by the user (command line or code)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"UserCode({str.__repr__(self)})"


def names_code(spec: object) -> bool:
    """True when ``spec`` is a ``package.module:attribute`` text (importing it runs code)."""
    return isinstance(spec, str) and ":" in spec and not spec.startswith(TORCHVISION_PREFIX)


def user_model_arg(value: str) -> str:
    """argparse ``type`` of ``--model``: the command line is the user's own choice."""
    return UserCode(value) if names_code(value) else value


def require_user_code(spec: object, what: str = "model spec") -> UserCode:
    """``spec`` itself if the user gave it as code; one-line refusal otherwise."""
    if isinstance(spec, UserCode) and names_code(spec):
        return spec
    raise AccelsimError(
        f"{what} {str(spec)!r:.80} names code to import, which only the user may choose: pass it "
        "with --model on the command line (or accelsim.zoo.UserCode('package.module:attr') in "
        "Python); files may name zoo models only")
