"""Numba compilation flags, in one place.

Every kernel is decorated with ``@njit(**JIT)`` (serial) or ``@njit(**JIT_PARALLEL)``
(kernels that use ``prange``). The flags can be overridden with environment
variables, read once at import:

- ``ACCELSIM_NUMBA_CACHE`` (default ``1``): cache compiled kernels on disk
  (``__pycache__`` next to the module), so a second process does not recompile. Where
  the package folder is read-only (a system-wide install), the cache goes to a per-user
  folder instead (:func:`choose_cache_dir`: ``$XDG_CACHE_HOME/accelsim/numba``,
  ``~/.cache/accelsim/numba``, else a private ``accelsim-numba-<uid>`` folder in the
  temporary directory) by setting ``NUMBA_CACHE_DIR``; where none is writable the
  kernels compile in every process without a cache. A ``NUMBA_CACHE_DIR`` the user set
  is left alone;
- ``ACCELSIM_NUMBA_FASTMATH`` (default ``1``): allow LLVM fast-math (the kernels are
  integer-only, so this changes no result);
- ``ACCELSIM_NUMBA_PARALLEL`` (default ``0``): compile ``prange`` loops as parallel
  loops. Off by default: one core already runs the AND + popcount kernel at over
  10^11 MAC evaluations per second, sweeps parallelise over processes, and Numba's
  thread pool slows down many-fold when other processes compete for the cores.
  Numba's cache does not key on compile flags, so point ``NUMBA_CACHE_DIR`` at a
  separate directory (or clear ``__pycache__``) when switching this flag;
- ``ACCELSIM_NUMBA_THREADS`` (default: Numba's choice): threads of parallel kernels.

``NUMBA_DISABLE_JIT=1`` (Numba's own switch) runs every kernel as plain Python, which
is how coverage measures kernel bodies.
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Callable, Mapping


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


# Folders (under the package) of the modules whose kernels are cached: Numba's default
# cache is their ``__pycache__``.
_KERNEL_FOLDERS = ("sim/kernels", "sim", "map", "dram")
_PACKAGE = Path(__file__).resolve().parent


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (made if missing), tested as Numba does."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def _private_temp_folder(folder: Path) -> bool:
    """``folder`` in the shared temporary directory, usable only if this user alone owns
    and writes it (cache files are code: a folder another user planted is refused)."""
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError:
        return False
    uid = os.getuid() if hasattr(os, "getuid") else info.st_uid  # no owners to compare on Windows
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == uid
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and _writable(folder))


def choose_cache_dir(environ: Mapping[str, str] = os.environ, package: Path = _PACKAGE,
                     writable: Callable[[Path], bool] = _writable,
                     private_temp: Callable[[Path], bool] = _private_temp_folder
                     ) -> tuple[str | None, bool]:
    """(``NUMBA_CACHE_DIR`` to set, or None to keep Numba's choice; whether to cache at all).

    The package's own ``__pycache__`` folders when writable; else the first writable of
    ``$XDG_CACHE_HOME/accelsim/numba`` (an absolute path only), ``~/.cache/accelsim/numba``
    and a private ``accelsim-numba-<uid>`` folder in the temporary directory; else no
    cache (Numba would otherwise refuse every cached kernel: "no locator available").
    """
    if environ.get("NUMBA_CACHE_DIR"):
        return None, True   # the user's choice
    if all(writable(package / folder / "__pycache__") for folder in _KERNEL_FOLDERS):
        return None, True
    candidates = []
    xdg = environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        candidates.append(Path(xdg) / "accelsim" / "numba")
    home = environ.get("HOME") or os.path.expanduser("~")
    if home and os.path.isabs(home):
        candidates.append(Path(home) / ".cache" / "accelsim" / "numba")
    for folder in candidates:
        if writable(folder):
            return str(folder), True
    getuid = getattr(os, "getuid", None)
    private = Path(tempfile.gettempdir()) / f"accelsim-numba-{getuid() if getuid else 'user'}"
    if private_temp(private):
        return str(private), True
    return None, False


def _apply_cache_dir() -> bool:
    """Point Numba at :func:`choose_cache_dir`'s folder; returns whether caching stays on."""
    folder, cache = choose_cache_dir()
    if folder is not None:
        os.environ["NUMBA_CACHE_DIR"] = folder  # Numba re-reads its environment when compiling
        config = sys.modules.get("numba.core.config")
        if config is not None:  # already imported: its locators read config.CACHE_DIR
            config.CACHE_DIR = folder
    return cache


CACHE: bool = _flag("ACCELSIM_NUMBA_CACHE", True) and _apply_cache_dir()
FASTMATH: bool = _flag("ACCELSIM_NUMBA_FASTMATH", True)
PARALLEL: bool = _flag("ACCELSIM_NUMBA_PARALLEL", False)

#: Flags of serial kernels.
JIT: dict = {"cache": CACHE, "fastmath": FASTMATH, "nogil": True}
#: Flags of kernels with ``prange`` loops.
JIT_PARALLEL: dict = {**JIT, "parallel": PARALLEL}


def _apply_threads() -> None:
    value = os.environ.get("ACCELSIM_NUMBA_THREADS")
    if not value:
        return
    try:
        threads = int(value)
    except ValueError:
        return
    if threads >= 1:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


_apply_threads()
