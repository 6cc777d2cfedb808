"""Atomic file writes shared by every stage: a temporary file in the destination
folder, then ``os.replace``, so no reader ever sees a half-written output.

The result gets the usual permissions (``0o666`` less the umask), not ``mkstemp``'s
private ``0o600``; on any failure the temporary file is removed and the
destination is left as it was.

An output never replaces anything but a regular file: :func:`check_output_path`
refuses, in one line, a destination that exists and is a directory, FIFO, socket,
device or symbolic link (whatever it points at; a link is never followed nor replaced),
so ``-o /dev/null`` or ``-o some.fifo`` cannot turn a device or pipe into a regular file
and a planted link cannot redirect a write. Every writer checks with it: the atomic
writer (before writing and again right before ``os.replace``) and the files written in
place, :func:`open_output_fd` (the sweep lock, append-only logs), which also opens with
``O_NOFOLLOW`` and refuses a file with other hard links.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Callable

from accelsim.errors import AccelsimError


TEMP_SUFFIX = ".tmp"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)


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


def _shown(path: str | os.PathLike) -> str:
    """The path for a one-line message (control characters escaped)."""
    text = os.fspath(path)
    text = text if isinstance(text, str) else os.fsdecode(text)
    return text if text.isprintable() else repr(text)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(path: str | os.PathLike, mode: int, what: str) -> AccelsimError:
    return AccelsimError(f"{_shown(path)}: the {what} path is {_kind(mode)}; an output never "
                         "replaces anything but a regular file (choose another path or remove it)")


def check_output_path(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` as a ``Path`` if writing there can only create or replace a regular file.

    Missing is fine; an existing directory, FIFO, socket, device or symbolic link (to
    anything: links are refused, not followed and not replaced) raises one-line
    :class:`~accelsim.errors.AccelsimError` naming the path. Only the last component is
    examined (a linked folder above it is the user's choice).
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return path  # nothing there (or a parent is not a folder: creating it reports that)
    if not stat.S_ISREG(mode):
        raise _refuse(path, mode, what)
    return path


def open_output_fd(path: str | os.PathLike, flags: int, what: str = "output",
                   mode: int = 0o666) -> int:
    """``os.open`` a file written in place (a lock, an append-only log), refusing what
    :func:`check_output_path` refuses.

    The file is opened with ``O_NOFOLLOW`` (a link planted after the check fails instead of
    being followed), ``O_NONBLOCK`` (a FIFO planted after it cannot hang the open) and
    ``O_NOCTTY``, then checked again through the descriptor; a file with more than one hard
    link is refused too (writing it in place would change the other names' content). Pass
    ``O_CREAT`` without ``O_TRUNC`` and truncate once the descriptor is checked.
    """
    path = check_output_path(path, what)
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | _NOCTTY | _CLOEXEC, mode)
    except OSError as exc:
        try:
            now = os.lstat(path).st_mode
        except OSError:
            raise exc from None
        if not stat.S_ISREG(now):  # swapped in after the check (ELOOP for a link, EISDIR, ...)
            raise _refuse(path, now, what) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, info.st_mode, what)
        if info.st_nlink > 1:
            raise AccelsimError(f"{_shown(path)}: the {what} file has {info.st_nlink} hard links; "
                                "it is written in place, so it must be the only name of its file "
                                "(remove it)")
        if _NONBLOCK and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, empty temporary file next to ``path`` (never through an existing name or link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no unused temporary file name for {path.name}")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], fsync: bool = False,
                 what: str = "output") -> Path:
    """Call ``write(tmp_path)`` then move the file onto ``path``; nothing is left on failure.

    ``path`` must be missing or a regular file (:func:`check_output_path`, checked before
    writing and again right before the move). The temporary file is created with
    ``O_CREAT | O_EXCL | O_NOFOLLOW``; ``write`` must write into that file (not replace it).
    """
    path = check_output_path(path, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        try:
            write(tmp)
            info, now = os.fstat(fd), os.lstat(tmp)
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                raise AccelsimError(f"{_shown(tmp)}: the temporary file was replaced while the "
                                    f"{what} was written; not moving it onto {_shown(path)}")
            if fsync:
                os.fsync(fd)
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o666 & ~_umask())
            else:  # pragma: no cover - not POSIX
                os.chmod(tmp, 0o666 & ~_umask())
        finally:
            os.close(fd)
        check_output_path(path, what)  # again: narrow the window for a swap since the start
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, what: str = "output") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), what=what)
