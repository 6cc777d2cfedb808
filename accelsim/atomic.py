"""Atomic file writes shared by every stage: a temporary file in the destination
folder, then ``os.replace``, so no reader ever sees a half-written output.

The result gets the usual permissions (``0o666`` less the umask), not ``mkstemp``'s
private ``0o600``; on any failure the temporary file is removed and the
destination is left as it was.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


TEMP_SUFFIX = ".tmp"


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file :func:`atomic_write` creates (``.<name>.XXXX.tmp``)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and name.count(".") >= 3


def remove_stale_temps(folder: str | os.PathLike, depth: int = 0) -> int:
    """Delete temporary files that killed atomic writers left in ``folder``.

    Only safe while no writer is active there (e.g. under the folder's lock);
    ``depth`` levels of sub-folders are searched too. Returns how many were removed.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if depth > 0:
                removed += remove_stale_temps(entry.path, depth - 1)
        elif is_temp_name(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], fsync: bool = False) -> Path:
    """Call ``write(tmp_path)`` then move the file onto ``path``; nothing is left on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
