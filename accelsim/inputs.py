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
    """The bytes of a regular file of at most ``limit`` bytes (refused before reading otherwise).

    Memory is what the file holds, not ``limit``: the size is taken from the open file
    (opened without blocking, and checked to be regular again, so a file swapped for a
    FIFO after the first check cannot block), and a file that grows while it is read is
    still cut at ``limit + 1`` bytes.
    """
    path = check_regular_file(path, what)

    def too_large() -> ConfigError:
        return ConfigError(str(path), None, f"the {what} is larger than the {limit:,}-byte limit; "
                                              "is it the right file?")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as fh:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(str(path), None, f"is no longer a regular {what} (it was "
                                                   "replaced while being opened)")
            if info.st_size > limit:
                raise too_large()
            data = fh.read(info.st_size + 1)
            if len(data) > info.st_size:  # it grew since: read on, never past the limit
                data += fh.read(limit + 1 - len(data))
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read the {what} ({exc.strerror})") from None
    if len(data) > limit:
        raise too_large()
    return data
