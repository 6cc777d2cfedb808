"""Long work shows progress without filling redirected logs (researcher's path): on a terminal a
bar, otherwise plain lines with the time left, at most one per log interval."""
from __future__ import annotations

import io

from accelsim.sweep import progress as prog


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_redirected_output_gets_plain_lines_with_time_left(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(prog.time, "monotonic", clock)
    out = io.StringIO()
    counter = prog.progress_counter(100, "train", unit="batch", stream=out)
    for i in range(100):
        clock.now = i * 0.5                      # 50 s in all: a line every 10 s
        counter.update(1)
    counter.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 4 <= len(lines) <= 6
    assert all(line.startswith("train: ") and " left" in line and "batch/s" in line for line in lines)


def test_short_work_writes_nothing_when_redirected():
    out = io.StringIO()
    for _ in prog.progress_iter(range(5), 5, "simulate", unit="layer", stream=out):
        pass
    counter = prog.progress_counter(3, "capture", stream=out)
    counter.update(3)
    counter.close()
    assert out.getvalue() == ""


def test_disabled_writes_nothing():
    out = io.StringIO()
    assert list(prog.progress_iter(range(3), 3, "x", enabled=False, stream=out)) == [0, 1, 2]
    counter = prog.progress_counter(3, "x", enabled=False, stream=out)
    counter.update(3)
    counter.close()
    assert out.getvalue() == ""
