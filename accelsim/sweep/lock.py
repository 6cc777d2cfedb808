"""One sweep per output folder: an advisory lock file holding the owner's pid.

``DIR/.sweep.lock`` is locked with ``flock`` while a sweep runs, so the kernel releases
it when the owner dies however it dies (SIGKILL included): a lock file left by a
dead pid is simply taken over. A second sweep on a folder in use is refused with
one line naming the pid that holds it. Processes forked from the owner (sweep
workers) close their copy at once, so they never keep the folder locked.

The lock file is opened with ``O_CREAT | O_NOFOLLOW`` and never ``O_TRUNC``
(:func:`accelsim.atomic.open_output_fd`): a ``.sweep.lock`` that is a symbolic link,
a FIFO, a device, a socket, a directory or a file with other hard links is refused in
one line before anything is written, and it is emptied only once this process holds it.
"""
from __future__ import annotations

import os
from pathlib import Path

from accelsim.atomic import open_output_fd
from accelsim.errors import AccelsimError

try:
    import fcntl
except ImportError:  # not POSIX: the lock is a no-op
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".sweep.lock"
_HELD: set[int] = set()  # file descriptors of the locks this process holds


def _close_inherited() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


class FolderLock:
    """``with FolderLock(out_dir):`` holds the folder's sweep lock or raises ``AccelsimError``."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        fd = open_output_fd(self.path, os.O_RDWR | os.O_CREAT, "sweep lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise AccelsimError(f"{self.path.parent}: another sweep (pid {owner}) is running in "
                                "this folder; wait for it to finish or use another -o folder"
                                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        _HELD.add(fd)

    def release(self) -> None:
        if self.fd is None:
            return
        _HELD.discard(self.fd)
        try:
            os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None

    def __enter__(self) -> "FolderLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
