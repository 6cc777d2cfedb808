"""Numba compilation flags, in one place.

Every kernel is decorated with ``@njit(**JIT)`` (serial) or ``@njit(**JIT_PARALLEL)``
(kernels that use ``prange``). The flags can be overridden with environment
variables, read once at import:

- ``ACCELSIM_NUMBA_CACHE`` (default ``1``): cache compiled kernels on disk
  (``__pycache__`` next to the module), so a second process does not recompile;
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


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


CACHE: bool = _flag("ACCELSIM_NUMBA_CACHE", True)
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
