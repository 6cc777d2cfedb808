"""A progress line that costs O(1) per update and renders at most a few times a second.

``update(n)`` only adds to a counter and reads a monotonic clock; the line is drawn
when ``interval`` seconds have passed since the last draw (on a terminal it is
redrawn in place; otherwise one line is written every ``log_interval`` seconds), so
10^5 points cost 10^5 additions, not 10^5 renderings.
"""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Counter of finished points with a rate-limited status line."""

    def __init__(self, total: int, initial: int = 0, desc: str = "sweep",
                 stream: TextIO | None = None, enabled: bool = True,
                 interval: float = 0.5, log_interval: float = 10.0, unit: str = "pt",
                 final_line: bool = True):
        self.unit = unit
        self.final_line = final_line
        self.total = total
        self.count = initial
        self.initial = initial
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else log_interval
        self.start = time.monotonic()
        self.last_draw = self.start
        self.draws = 0

    def line(self, now: float) -> str:
        """The status text: done/total, percent, rate of this run, time left."""
        done_here = self.count - self.initial
        elapsed = now - self.start
        rate = done_here / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.count) / rate if rate > 0 else float("nan")
        percent = 100.0 * self.count / self.total if self.total else 100.0
        eta = _duration(left) if left == left else "?"
        return (f"{self.desc}: {self.count}/{self.total} ({percent:.0f}%) {rate:.1f} {self.unit}/s, "
                f"{_duration(elapsed)} elapsed, {eta} left")

    def update(self, n: int = 1) -> None:
        self.count += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last_draw >= self.interval:
            self._draw(now)

    def _draw(self, now: float, final: bool = False) -> None:
        self.last_draw = now
        self.draws += 1
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + self.line(now) + end)
        self.stream.flush()

    def close(self) -> None:
        """Draw the final line (once; with ``final_line`` false, only after earlier lines)."""
        if self.enabled and (self.final_line or self.draws):
            self._draw(time.monotonic(), final=True)
        self.enabled = False


def progress_iter(iterable: Iterable, total: int, desc: str, unit: str = "it",
                  enabled: bool = True, stream: TextIO | None = None) -> Iterator:
    """``iterable`` with progress on ``stream`` (stderr): a tqdm bar on a terminal, else plain
    lines with the time left every 10 s (bars fill redirected logs with carriage returns)."""
    stream = stream if stream is not None else sys.stderr
    if not enabled:
        yield from iterable
        return
    if getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        yield from tqdm(iterable, total=total, desc=desc, unit=unit, file=stream,
                        dynamic_ncols=True, leave=False)
        return
    progress = Progress(total, desc=desc, stream=stream, unit=unit, final_line=False)
    try:
        for item in iterable:
            yield item
            progress.update()
    finally:
        progress.close()


def progress_counter(total: int, desc: str, unit: str = "it", enabled: bool = True,
                     stream: TextIO | None = None):
    """An ``update(n)``/``close()`` counter: a tqdm bar on a terminal, else :class:`Progress`
    (plain lines with the time left every 10 s); nothing when not ``enabled``."""
    stream = stream if stream is not None else sys.stderr
    if enabled and getattr(stream, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True,
                    leave=False)
    return Progress(total, desc=desc, stream=stream, enabled=enabled, unit=unit, final_line=False)
