"""Exception types shared by every stage.

Every error a user can cause derives from :class:`AccelsimError`; the CLI prints
its message on one line and exits non-zero instead of showing a traceback.
"""
from __future__ import annotations


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
