"""Sweep hardening (issue 11): checksummed cache entries, workers that die with the sweep,
one sweep per folder, no temp files left by killed writers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accelsim.errors import AccelsimError
from accelsim.sweep.run import run_sweep
from accelsim.sweep.spec import load_sweep_spec
from accelsim.trace.geometry import LayerGeometry

from test_sweep_run import REPO, tiny_trace, write_spec

SLOW_LAYER = [("conv", LayerGeometry("conv2d", N=2, C=32, H=28, W=28, K=32, R=3, S=3,
                                     pad_h=1, pad_w=1), 0.5, 0.5)]
# 30 points of a slow layer: the first sweep is still running when the second one starts
# (each point maps and streams the layer on sparten_like), and the takeover recomputes them all
SLOW_AXES = {"pe_array.rows": list(range(2, 8)), "pe_array.cols": list(range(2, 7))}
SLOW_POINTS = 30


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def _start_sweep(tmp_path: Path, workers: int) -> tuple[subprocess.Popen, Path, Path]:
    tiny_trace(tmp_path / "tiny.trace", layers=SLOW_LAYER)
    spec_path = write_spec(tmp_path, SLOW_AXES)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "accelsim.cli", "sweep", str(spec_path), "-o",
                             str(out), "--workers", str(workers), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "cache").glob("*/*.json"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()
    return proc, spec_path, out


def test_edited_cache_entry_is_recomputed(tmp_path):
    tiny_trace(tmp_path / "tiny.trace")
    spec = load_sweep_spec(write_spec(tmp_path, {"pe_array.rows": [2, 4]}))
    first = run_sweep(spec, tmp_path / "out", workers=1, progress=False)
    truth = first.table["energy_pj"].tolist()
    entry = sorted((tmp_path / "out" / "cache").glob("*/*.json"))[0]
    record = json.loads(entry.read_text())
    original = record["totals"]["energy_pj"]
    record["totals"]["energy_pj"] = original - 5e6
    entry.write_text(json.dumps(record))
    second = run_sweep(spec, tmp_path / "out", workers=1, progress=False)
    assert (second.computed, second.cached) == (1, 1)
    assert second.table["energy_pj"].tolist() == truth
    assert json.loads(entry.read_text())["totals"]["energy_pj"] == original  # rewritten


def test_workers_die_with_the_sweep_process(tmp_path):
    proc, _, _ = _start_sweep(tmp_path, workers=2)
    try:
        workers = _children(proc.pid)
        assert len([p for p in workers if _alive(p)]) >= 2
    finally:
        proc.send_signal(signal.SIGKILL)  # the main process only
        proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.05)
    left = [p for p in workers if _alive(p)]
    for pid in left:  # do not leave them running if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"worker processes {left} outlived the sweep by 5 s"


def test_second_sweep_on_a_folder_in_use_is_refused_then_the_lock_is_taken_over(tmp_path):
    proc, spec_path, out = _start_sweep(tmp_path, workers=1)
    try:
        with pytest.raises(AccelsimError) as info:
            run_sweep(load_sweep_spec(spec_path), out, workers=1, progress=False)
        message = str(info.value)
        assert "\n" not in message and f"pid {proc.pid}" in message and str(out) in message
        assert proc.poll() is None  # the refused sweep did not disturb the running one
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (out / ".sweep.lock").read_text().strip() == str(proc.pid)  # stale: its pid is dead
    outcome = run_sweep(load_sweep_spec(spec_path), out, workers=1, progress=False)
    assert outcome.cached >= 2 and outcome.summary_table.rows == SLOW_POINTS
    assert (outcome.table["status"] == "ok").all()


def test_cli_refuses_a_folder_in_use_with_one_line(tmp_path):
    from accelsim.sweep.lock import FolderLock

    tiny_trace(tmp_path / "tiny.trace")
    spec_path = write_spec(tmp_path, {"pe_array.rows": [2]})
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from accelsim.sweep.lock import FolderLock; FolderLock(sys.argv[2]).acquire();"
        "print('held', flush=True); time.sleep(60)"), str(REPO), str(out)],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        result = subprocess.run([sys.executable, "-m", "accelsim.cli", "sweep", str(spec_path),
                                 "-o", str(out), "--quiet"], env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 2  # the CLI's code for a user error
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {holder.pid}" in lines[0], result.stderr
        assert not (out / "cache").exists()
    finally:
        holder.kill()
        holder.wait()
    with FolderLock(out):  # released with its dead holder
        pass


def test_killed_writers_leave_no_temp_files(tmp_path):
    tiny_trace(tmp_path / "tiny.trace")
    spec = load_sweep_spec(write_spec(tmp_path, {"pe_array.rows": [2, 4]}))
    out = tmp_path / "out"
    run_sweep(spec, out, workers=1, progress=False)
    entry = next((out / "cache").glob("*/*.json"))
    stale = [out / ".results.csv.k2j4h1x9.tmp", out / ".sweep.json.a8d7f6e5.tmp",
             entry.parent / f".{entry.name}.zq81ma0c.tmp"]
    for path in stale:
        path.write_text("{partial")
    keep = [out / "notes.txt", out / ".hidden", entry.parent / "x.tmp"]
    for path in keep:
        path.write_text("mine")
    again = run_sweep(spec, out, workers=1, progress=False)
    assert again.cached == 2
    assert not [p for p in stale if p.exists()]
    assert all(p.read_text() == "mine" for p in keep)
