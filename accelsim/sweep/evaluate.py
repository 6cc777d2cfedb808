"""What a sweep worker runs: simulate one (hardware, trace) point and return a small record.

Runs in worker processes (local pool or Dask), so it takes and returns plain,
picklable data. Each worker keeps its opened traces in a module-level cache and
reuses them across points; when a cache directory is given (local pool: the
filesystem is shared) the worker stores every finished point itself, so a sweep
killed at any moment loses no finished point.
"""
from __future__ import annotations

import functools
import math
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.hw.schema import HardwareConfig
from accelsim.sweep.cache import ResultCache
from accelsim.trace.layer import LayerTrace

# Per-process caches: (path, content hash) -> opened Trace, and -> its layers with memoised masks.
_TRACES: dict[tuple[str, str], object] = {}
_LAYERS: dict[tuple[str, str, int | None], tuple[int, list]] = {}
# Masks kept in memory per worker (bool arrays, one byte per element); beyond it, re-read.
MASK_MEMO_BUDGET_BYTES = 1 << 30


@dataclass(frozen=True)
class PointTask:
    """One simulation to run: hardware, trace file, fidelity and where to cache it."""

    key: str
    identity: dict
    hw: HardwareConfig
    trace_path: str
    fidelity: str
    samples: int | None


def _trace(path: str, content_hash: str):
    from accelsim.trace import open_trace

    trace = _TRACES.get((path, content_hash))
    if trace is None:
        trace = open_trace(path)
        if trace.content_hash != content_hash:
            raise AccelsimError(f"{path}: the trace changed while the sweep ran (its content hash "
                                "differs from the one the sweep started with); re-run the sweep")
        _TRACES[(path, content_hash)] = trace
    return trace


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view (the loader's own array keeps its flags)."""
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


def mask_bytes(trace, samples: int | None) -> int:
    """Bytes the boolean masks of every layer take (``samples`` activation samples)."""
    used = trace.num_samples if samples is None else min(samples, trace.num_samples)
    geometries = [trace.geometry(i) for i in range(len(trace))]
    return sum(int(np.prod(g.weight_shape)) + used * g.C * g.H * g.W for g in geometries)


class TraceLayers(list):
    """A trace's layers (a list) that keeps the trace's graph, provenance and content hash, so
    simulating them equals simulating the trace (between-layer ops and liveness included)."""

    def __init__(self, layers, trace):
        super().__init__(layers)
        self.graph = getattr(trace, "graph", None)
        self.provenance = getattr(trace, "provenance", None)
        self.content_hash = getattr(trace, "content_hash", None)


def memoized_layers(trace) -> list[LayerTrace]:
    """The trace's layers with masks read (or drawn) once and reused by every later point.

    Points of a sweep differ only in hardware, so a worker would otherwise unpack (or,
    for statistical traces, draw) the same masks again for every point. The memoised
    arrays are read-only.
    """
    layers = []
    for layer in trace:
        weights = functools.lru_cache(maxsize=1)(lambda layer=layer: _read_only(layer.weight_mask()))
        acts = functools.lru_cache(maxsize=2)(lambda n, layer=layer: _read_only(layer.act_mask(n)))
        layers.append(LayerTrace(layer.index, layer.name, layer.geometry, layer.act_bits,
                                 layer.weight_bits, weights, acts,
                                 output_density=layer.output_density, stats=layer.stats))
    return TraceLayers(layers, trace)


def _layers(task: PointTask):
    """The layers to simulate: memoised when the masks fit the worker's budget."""
    key = (task.trace_path, task.identity["trace_hash"], task.samples)
    if key in _LAYERS:
        _LAYERS[key] = _LAYERS.pop(key)  # most recently used last
        return _LAYERS[key][1]
    trace = _trace(task.trace_path, task.identity["trace_hash"])
    need = mask_bytes(trace, task.samples)
    if need > MASK_MEMO_BUDGET_BYTES:
        return trace
    while _LAYERS and sum(size for size, _ in _LAYERS.values()) + need > MASK_MEMO_BUDGET_BYTES:
        _LAYERS.pop(next(iter(_LAYERS)))
    _LAYERS[key] = (need, memoized_layers(trace))
    return _LAYERS[key][1]


def scalar_totals(totals: dict) -> dict:
    """The numeric network totals of a simulation (JSON-able floats/ints)."""
    out = {}
    for name, value in totals.items():
        if isinstance(value, bool):
            out[name] = bool(value)
        elif isinstance(value, (int, float)) or (hasattr(value, "item")
                                                 and getattr(value, "ndim", 1) == 0):
            number = value.item() if hasattr(value, "item") else value
            if isinstance(number, float) and not math.isfinite(number):
                number = None
            out[name] = number
    return out


def evaluate(task: PointTask, cache_dir: str | None = None) -> dict:
    """Simulate ``task``; returns ``{key, identity, status, error, totals, elapsed_s, cacheable}``.

    User errors (``AccelsimError``: a layer that cannot be mapped, a precision mismatch)
    are deterministic and cached like results; any other exception is recorded but not
    cached, so a re-run tries the point again.
    """
    from accelsim.sim.simulate import simulate

    start = time.perf_counter()
    record = {"key": task.key, "identity": task.identity, "status": "ok", "error": None,
              "totals": {}}
    cacheable = True
    try:
        # one thread per point: a sweep is parallel over its worker processes
        result = simulate(_layers(task), task.hw, fidelity=task.fidelity, samples=task.samples,
                          progress=False, trace_hash=task.identity["trace_hash"], threads=1)
        record["totals"] = scalar_totals(result.totals)
    except AccelsimError as exc:
        record.update(status="error", error=str(exc))
    except Exception as exc:  # recorded so the sweep goes on; not cached (may be transient)
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
        record.update(status="error", error=f"{type(exc).__name__}: {exc}{where}")
        cacheable = False
    record["elapsed_s"] = time.perf_counter() - start
    if cache_dir is not None and cacheable:
        ResultCache(cache_dir).put(task.key, record)
    record["cacheable"] = cacheable
    record["stored"] = cache_dir is not None and cacheable
    return record


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under ``taskset``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: Local worker processes (or threads) allowed per usable core: more only thrash the
#: machine, and a typo such as ``local:100000`` would otherwise start that many processes.
WORKERS_PER_CORE = 4


def check_local_workers(count: int, flag: str, what: str = "local workers") -> int:
    """``count`` if it is a positive number of local workers of at most
    :data:`WORKERS_PER_CORE` per usable core; one clean error naming ``flag`` otherwise."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise AccelsimError(f"{flag}: expected a positive integer, got {count!r}")
    cores = usable_cores()
    limit = WORKERS_PER_CORE * cores
    if count > limit:
        shown = f"{count:,}" if count < 10 ** 30 else "more"
        hint = ("use fewer, or a Dask scheduler address (tcp://host:8786) for other machines"
                if what == "local workers" else "use fewer")
        raise AccelsimError(f"{flag}: {shown} {what} is more than the limit of {limit} "
                            f"({WORKERS_PER_CORE} per usable CPU core, {cores} here); {hint}")
    return count


def set_kernel_threads(threads: int) -> int:
    """Limit the simulator's parallel Numba kernels to ``threads``; returns the previous limit.

    Without it every worker process would start one Numba thread per CPU of the
    machine, so ``n`` workers oversubscribe the cores ``n`` times over. With serial
    kernels (``ACCELSIM_NUMBA_PARALLEL`` off, the default) it does nothing: asking Numba
    for its thread count would launch its thread pool, which makes forking unsafe.
    """
    from accelsim import numba_config

    if not numba_config.PARALLEL:
        return int(threads)
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    return previous


def init_worker(threads: int) -> None:
    """Process-pool initializer: share the cores between the workers."""
    set_kernel_threads(threads)


def evaluate_chunk(tasks: list[PointTask], cache_dir: str | None = None) -> list[dict]:
    """Evaluate several tasks in one worker call (amortises scheduling overhead)."""
    return [evaluate(task, cache_dir) for task in tasks]
