"""Keep freed heap memory for reuse in the ``accelsim`` command-line process (glibc only).

A simulation allocates and frees arrays of a few MB per layer and sample (packed operands,
work matrices). With glibc's defaults each such block is returned to the OS when freed
(``mmap``/heap trimming) and the next one page-faults back in: a 64-sample ResNet-50
``simulate`` took ~350,000 minor faults and ~0.5 s of system time for them. The command line
raises glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` once at start-up so freed blocks
are reused; the peak resident memory stays that of the largest live set (measured 253 -> 270
MB on that run, the same at 1, 16 and 64 samples).
Library users keep their process's settings: only :func:`accelsim.cli.main` calls this.
``ACCELSIM_MALLOC_TUNING=0`` turns it off; elsewhere than glibc it does nothing.
"""
from __future__ import annotations

import os
import sys

#: blocks up to this size come from the heap (glibc's dynamic default tops out at 32 MiB)
MMAP_THRESHOLD = 64 << 20
#: free memory kept at the top of the heap before it is returned to the OS
TRIM_THRESHOLD = 512 << 20

_M_TRIM_THRESHOLD = -1   # glibc <malloc.h> parameter numbers
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; True when both were set."""
    if os.environ.get("ACCELSIM_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # glibc returns 1 on success; musl's mallopt is a stub that returns 0
    return (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
