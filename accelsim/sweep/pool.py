"""Persistent local sweep workers, points grouped by trace, workers that die with their parent.

Each worker is one process that lives for the whole sweep: it opens each trace once,
keeps the trace's masks (and the simulator's per-layer memo) and its compiled
kernels, and is fed chunks of points through its own pipe. Chunks are cut from
per-trace queues, and a worker keeps to the trace it is on while that trace has
points left, so with as many traces as workers no trace is loaded twice; a worker
whose traces are done helps with the trace the fewest workers are on.

Start method: ``fork`` when it is safe (POSIX, this process has no other thread and
no non-fork-safe Numba thread pool); the parent then simulates the first point of
every trace itself before forking, so every worker starts with the traces loaded
and the kernels compiled (shared copy-on-write) and the pool spends no CPU on
start-up. Otherwise ``spawn``: each worker imports accelsim and loads its traces.

Workers exit when the parent dies, even by SIGKILL: on Linux the kernel kills them
(``PR_SET_PDEATHSIG``), elsewhere a watchdog thread notices the new parent pid within
a second. They ignore SIGINT (Ctrl-C stops the parent, which stops them).
"""
from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from multiprocessing.connection import Connection, wait
from typing import Callable

from accelsim.errors import AccelsimError
from accelsim.sweep.evaluate import PointTask, evaluate_chunk, set_kernel_threads, usable_cores

START_METHODS = ("auto", "fork", "spawn")
MAX_CHUNK = 32


class TraceQueues:
    """Pending points in per-trace queues; hands out chunks with trace affinity."""

    def __init__(self, tasks: list[PointTask], workers: int):
        self.queues: dict[str, deque[PointTask]] = {}
        for task in tasks:
            self.queues.setdefault(task.trace_path, deque()).append(task)
        self.workers = max(1, workers)
        self.on_trace: Counter[str] = Counter()  # workers currently bound to each trace

    def remaining(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def chunk_size(self) -> int:
        """Shrinks towards the end of the sweep so the last chunks balance the workers."""
        return max(1, min(MAX_CHUNK, math.ceil(self.remaining() / (self.workers * 4))))

    def next_chunk(self, current: str | None) -> tuple[str, list[PointTask]] | None:
        """The next chunk for a worker on trace ``current`` (None: it has none yet)."""
        if current is None or not self.queues.get(current):
            if current is not None:
                self.on_trace[current] -= 1
            left = [path for path, queue in self.queues.items() if queue]
            if not left:
                return None
            # the trace the fewest workers are on, then the one with most points left
            current = min(left, key=lambda p: (self.on_trace[p], -len(self.queues[p])))
            self.on_trace[current] += 1
        queue = self.queues[current]
        size = min(self.chunk_size(), len(queue))
        return current, [queue.popleft() for _ in range(size)]

    def take_first_of_each(self) -> list[PointTask]:
        """One point of every trace (the parent's warm-up before forking)."""
        return [queue.popleft() for queue in self.queues.values() if queue]


def fork_is_safe() -> bool:
    """Whether forking this process now cannot deadlock a child (no threads, safe Numba pool)."""
    if "fork" not in multiprocessing.get_all_start_methods() or sys.platform == "darwin":
        return False
    if threading.active_count() > 1:
        return False
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is not None and getattr(parallel, "_is_initialized", False):
        try:
            return parallel.threading_layer() in ("workqueue", "tbb")
        except (ValueError, AttributeError):
            return False
    return True


def die_with_parent(parent_pid: int, kernel_signal: bool = True) -> None:
    """Make this process exit when ``parent_pid`` (its parent) dies, however it dies.

    ``kernel_signal``: also ask Linux to SIGKILL it at once (``PR_SET_PDEATHSIG``; only
    where the thread that started this process lives as long as the parent does).
    """
    if kernel_signal and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="accelsim-parent-watch", daemon=True).start()


def worker_main(conn: Connection, parent_pid: int, threads: int, cache_dir: str | None,
                shared: list[PointTask] | None) -> None:
    """A worker's loop: receive a chunk (tasks, or indices into ``shared``), send its records."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_kernel_threads(threads)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        if message is None:
            conn.close()
            return
        tasks = [shared[i] for i in message] if shared is not None else message
        conn.send(evaluate_chunk(tasks, cache_dir))


class _Worker:
    def __init__(self, context, parent_conn: Connection, process) -> None:
        self.context = context
        self.conn = parent_conn
        self.process = process
        self.trace: str | None = None
        self.busy = False


def _stop(workers: list[_Worker], grace_s: float = 5.0) -> None:
    for worker in workers:
        try:
            worker.conn.send(None)
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + grace_s
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(1.0)
        worker.conn.close()


def run_pool(tasks: list[PointTask], cache_dir: str | None, workers: int,
             done: Callable[[list[dict]], None], start_method: str = "auto",
             on_start: Callable[[str], None] | None = None) -> str:
    """Evaluate ``tasks`` on ``workers`` persistent processes; ``done`` gets each chunk's records.

    Returns the start method used (``fork`` or ``spawn``); ``on_start`` is told it
    before the workers start.
    """
    if start_method not in START_METHODS:
        raise AccelsimError(f"start method: expected one of {', '.join(START_METHODS)}, "
                            f"got {start_method!r}")
    queues = TraceQueues(tasks, workers)
    workers = max(1, min(workers, len(tasks)))
    threads = max(1, usable_cores() // workers)
    method = start_method
    if method == "auto":
        method = "fork" if fork_is_safe() else "spawn"
    if method == "fork":
        # Warm up here: load every trace and the kernels once, for every worker to inherit.
        previous = set_kernel_threads(threads)
        try:
            first = queues.take_first_of_each()
            if first:
                done(evaluate_chunk(first, cache_dir))
        finally:
            set_kernel_threads(previous)
        if start_method == "auto" and not fork_is_safe():  # the warm-up started threads
            method = "spawn"
    if on_start is not None:
        on_start(method)
    if queues.remaining() == 0:
        return method
    context = multiprocessing.get_context(method)
    # Forked workers see this list as it is now: chunks are sent as indices into it.
    shared = [task for queue in queues.queues.values() for task in queue] \
        if method == "fork" else None
    index = {id(task): i for i, task in enumerate(shared)} if shared is not None else None
    pool: list[_Worker] = []
    try:
        for _ in range(min(workers, queues.remaining())):
            parent_conn, child_conn = context.Pipe(duplex=True)
            process = context.Process(target=worker_main, daemon=True, name="accelsim-sweep-worker",
                                      args=(child_conn, os.getpid(), threads, cache_dir, shared))
            process.start()
            child_conn.close()
            pool.append(_Worker(context, parent_conn, process))

        def feed(worker: _Worker) -> None:
            nxt = queues.next_chunk(worker.trace)
            if nxt is None:
                worker.busy = False
                return
            worker.trace, chunk = nxt
            worker.conn.send([index[id(t)] for t in chunk] if index is not None else chunk)
            worker.busy = True

        for worker in pool:
            feed(worker)
        by_conn = {worker.conn: worker for worker in pool}
        while any(worker.busy for worker in pool):
            for conn in wait([w.conn for w in pool if w.busy]):
                worker = by_conn[conn]
                try:
                    records = conn.recv()
                except (EOFError, OSError):
                    raise AccelsimError(
                        "a sweep worker process died (out of memory, or killed); every finished "
                        "point is cached: re-run the same command to resume (with fewer "
                        "--workers if memory is short)") from None
                worker.busy = False
                feed(worker)  # keep it busy before spending time on the results
                done(records)
    finally:
        _stop(pool)
    return method
