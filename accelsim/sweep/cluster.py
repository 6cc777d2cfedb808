"""Sweeps on Dask: a scheduler address, or ``local:N`` for a ``LocalCluster`` of N processes.

Dask workers are persistent processes, so the per-process trace and mask caches of
:mod:`accelsim.sweep.evaluate` and the compiled kernels live for the whole sweep.
Chunks are cut from per-trace queues and sent to the worker already on that trace
(``allow_other_workers`` lets Dask move them when that worker is busy), with a few
chunks in flight per worker thread. The client stores the results (workers may not
share this filesystem). ``local:N`` workers exit within a second or two when this
process dies, even by SIGKILL.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Callable

from accelsim.errors import AccelsimError
from accelsim.sweep.evaluate import (PointTask, check_local_workers, evaluate_chunk,
                                     set_kernel_threads, usable_cores)
from accelsim.sweep.pool import TraceQueues, die_with_parent

_LOCAL = re.compile(r"local(?::(\d+))?")


def parse_scheduler(value: str) -> int | None:
    """N for ``local:N`` (``local``: the usable cores), None for an address; bad N is an error,
    and so is an N above :data:`~accelsim.sweep.evaluate.WORKERS_PER_CORE` per usable core."""
    text = value.strip()
    if not text.startswith("local"):
        return None
    match = _LOCAL.fullmatch(text)
    if match is None or (match.group(1) is not None and int(match.group(1)) < 1):
        raise AccelsimError(f"--scheduler: expected local:N with N a positive integer, or a "
                            f"scheduler address (tcp://host:8786), got {value!r}")
    if match.group(1) is None:
        return usable_cores()
    return check_local_workers(int(match.group(1)), "--scheduler local:N")


def _worker_setup(parent_pid: int, threads: int) -> None:
    """Run on each ``local:N`` worker: share the cores, exit with the sweep's process."""
    set_kernel_threads(threads)
    if os.getppid() == parent_pid:
        die_with_parent(parent_pid, kernel_signal=False)


def _client(scheduler: str, timeout_s: float):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise AccelsimError("--scheduler needs Dask distributed: pip install 'accelsim[distributed]'"
                            ) from None
    local = parse_scheduler(scheduler)
    if local is not None:
        cluster = LocalCluster(n_workers=local, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        client.run(_worker_setup, os.getpid(), max(1, usable_cores() // local))
        return client, cluster
    try:
        return Client(scheduler, timeout=f"{timeout_s}s"), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise AccelsimError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); start one "
                            "with `dask scheduler`, check the address (tcp://host:port), or use "
                            "--scheduler local:N") from None


def run_dask(tasks: list[PointTask], scheduler: str, done: Callable[[list[dict]], None],
             timeout_s: float = 20.0) -> None:
    """Evaluate ``tasks`` on the Dask cluster ``scheduler``; ``done`` gets each chunk's records."""
    from distributed import as_completed

    client, cluster = _client(scheduler, timeout_s)
    try:
        workers = client.scheduler_info().get("workers", {})
        slots = {address: int(info.get("nthreads", 1)) + 1 for address, info in workers.items()}
        queues = TraceQueues(tasks, max(1, sum(slots.values()) - len(slots)))
        current: dict[str, str | None] = {address: None for address in slots}
        owner: dict = {}
        live: set = set()
        futures = as_completed([])

        def feed(address: str) -> bool:
            nxt = queues.next_chunk(current[address])
            if nxt is None:
                return False
            current[address], chunk = nxt
            future = client.submit(evaluate_chunk, chunk, None, pure=False, workers=[address],
                                   allow_other_workers=True)
            owner[future.key] = address
            live.add(future)
            futures.add(future)
            return True

        if not slots:  # no worker yet: let the scheduler place everything
            while (nxt := queues.next_chunk(None)) is not None:
                future = client.submit(evaluate_chunk, nxt[1], None, pure=False)
                live.add(future)
                futures.add(future)
        for address, count in slots.items():
            for _ in range(count):
                if not feed(address):
                    break
        try:
            for future in futures:
                records = future.result()
                live.discard(future)
                address = owner.pop(future.key, None)
                if address is not None:
                    feed(address)
                done(records)
        except BaseException:
            client.cancel(list(live))
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
