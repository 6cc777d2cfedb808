"""Opening input files safely: regular files only, sizes bounded before reading.

A FIFO would block ``open()`` until a writer appears and ``/dev/zero`` never ends, so
every reader of a user-supplied file checks it with :func:`check_regular_file` first;
:func:`read_limited` reads at most ``limit`` bytes and refuses a larger file without
reading it whole. Failures raise :class:`~accelsim.errors.AccelsimError` with one line
naming the file and what was expected (:class:`~accelsim.errors.ConfigError`, an
:class:`~accelsim.errors.AccelsimError`).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from accelsim.errors import ConfigError


def check_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a ``Path`` if it names a regular file; one clean error otherwise."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConfigError(str(path), None, f"{what} not found") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read the {what} ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(str(path), None, f"is a directory, expected a {what}")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or
                stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise ConfigError(str(path), None, f"is {kind}, expected a regular {what} (pipes and devices "
                            "are refused: they may never end)")
    return path


def read_limited(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (refused before reading otherwise)."""
    path = check_regular_file(path, what)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read the {what} ({exc.strerror})") from None
    if len(data) > limit:
        raise ConfigError(str(path), None, f"the {what} is larger than the {limit:,}-byte limit; "
                            "is it the right file?")
    return data
