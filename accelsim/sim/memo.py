"""Reuse of hardware-independent work across simulations of the same layer object.

A sweep simulates the same :class:`~accelsim.trace.LayerTrace` objects on many designs.
What only depends on the masks (the weight codes, each sample's im2col codes, their
operand counts, and the output-stationary AND + popcount work matrix) is computed once
per layer object and sample and kept here, keyed weakly by the layer object, so the
memo lives exactly as long as the caller keeps the layer. Entries are immutable
(read-only arrays); a global byte budget bounds the memory, beyond which results are
simply recomputed.

Only reuse fills the memo: :func:`seen` is called once per simulation of a layer, and
entries are kept for a layer object only from its second simulation on. A one-shot run
(``accelsim simulate``: every layer simulated once) therefore stores nothing it would not
read back, and its memory does not grow with the samples; a sweep pays one extra lowering
per layer and worker, then reads the memo for every later point.
"""
from __future__ import annotations

import os
import threading
import weakref
from typing import Callable

import numpy as np

#: Upper bound on the bytes of arrays memoised across all layers (env: ACCELSIM_SIM_MEMO_MB).
BUDGET_BYTES = int(float(os.environ.get("ACCELSIM_SIM_MEMO_MB", "512")) * (1 << 20))

_lock = threading.Lock()
_memo: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()
_seen: "weakref.WeakSet[object]" = weakref.WeakSet()
_used = [0]


def seen(owner: object) -> None:
    """Note one more simulation of ``owner``; from the second on, its entries are kept."""
    try:
        if owner not in _seen:
            _seen.add(owner)
            return
    except TypeError:  # not weak-referenceable: no memo
        return
    with _lock:
        if owner not in _memo:
            _memo[owner] = {}


def _nbytes(value) -> int:
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, tuple):
        return sum(_nbytes(v) for v in value)
    arrays = getattr(value, "__dict__", None)
    if arrays:
        return sum(_nbytes(v) for v in arrays.values())
    return 0


def _freeze(value):
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple):
        for v in value:
            _freeze(v)
    elif hasattr(value, "__dict__"):
        for v in vars(value).values():
            _freeze(v)
    return value


def _release(size: int) -> None:
    with _lock:
        _used[0] -= size


def memoised(owner: object, key: tuple, compute: Callable[[], object]):
    """``compute()`` once per (``owner``, ``key``) while ``owner`` lives and the budget allows
    (kept only for an owner simulated more than once, see :func:`seen`)."""
    try:
        table = _memo.get(owner)
    except TypeError:  # not weak-referenceable: no memo
        return compute()
    if table is None:
        return compute()
    if key in table:
        return table[key]
    value = compute()
    size = _nbytes(value)
    with _lock:
        if _used[0] + size > BUDGET_BYTES:
            return value
        _used[0] += size
    table[key] = _freeze(value)
    weakref.finalize(owner, _release, size)
    return value


def memo_bytes() -> int:
    """Bytes currently held by the memo (for tests and benchmarks)."""
    return _used[0]
