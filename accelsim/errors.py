"""Exception types shared by every stage.

Every error a user can cause derives from :class:`AccelsimError`; the CLI prints
its message on one line and exits non-zero instead of showing a traceback.
"""
from __future__ import annotations

import reprlib

#: Most characters of user data an error message quotes (see :func:`brief`).
MAX_QUOTE = 200


class AccelsimError(Exception):
    """Base class of all user-facing accelsim errors."""


class ConfigError(AccelsimError):
    """A hardware, sweep or recipe file is invalid.

    The message always names the file, the field path and what was expected,
    e.g. ``hw_configs/x.yaml: pe_array.rows: expected a positive integer, got -4``.
    """

    def __init__(self, file: str | None, field: str | None, message: str):
        self.file = file
        self.field = field
        self.detail = message
        where = ": ".join(part for part in (file, field) if part)
        super().__init__(f"{where}: {message}" if where else message)

    def __reduce__(self):  # crosses process boundaries (sweep and training workers) intact
        return type(self), (self.file, self.field, self.detail)


class TraceError(AccelsimError):
    """A trace file is missing, corrupt, of the wrong version, or lacks a layer."""


class MappingError(AccelsimError):
    """A layer cannot be mapped onto the given hardware."""


class DataError(AccelsimError):
    """A dataset path or specification is missing or malformed."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 3, 6, 8, 8
_REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = _REPR.maxarray = 8
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 120, 60, 120


def brief(value, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` for an error message: bounded work, at most ``limit`` characters.

    A value read from a file can be huge (YAML aliases expand a 2 KB file into a million
    nodes), so it is never repr'd whole: nested containers are elided by :mod:`reprlib`
    and the text is cut with an ellipsis.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1:,} digits>"
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."
