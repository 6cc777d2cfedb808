"""Scale benchmarks (issue 14), each part measured in one run, ratios from the same run.

Sweep part (this file's sweep section):
  - points/s and CPU time per point against local workers (1, 2), each a whole
    ``accelsim sweep`` process (start-up included) on a grid over a ResNet-18 statistical
    trace; CPU time is the process's and its workers' (``getrusage`` of children);
  - a 10^4-point ResNet-18 sweep on the shipped ``hw_configs/sweeps/resnet18_scale.yaml``
    (``--trace`` replaced by the statistical trace): killed by SIGKILL part way, resumed to the
    end, then re-run from the cache; times and row counts reported.
Simulation part (``--part simulate``): reserved for the simulate-vs-kernel-rate figures, to be
filled after the engine rewrite (see the marked section below); it measures nothing yet.

    python benchmarks/bench_scale.py                        # sweep part, 1,000 points + 10^4
    python benchmarks/bench_scale.py --points 300 --no-10k  # quicker
    python benchmarks/bench_scale.py --json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_sweep import make_spec, make_trace  # noqa: E402

SCALE_SPEC = REPO / "hw_configs" / "sweeps" / "resnet18_scale.yaml"
BUSY_LOAD = 0.5  # 1-minute load average above which the machine is reported busy


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli_sweep(spec: Path, out: Path, workers: int, trace: Path | None = None,
              kill_at: int | None = None) -> dict:
    """Run ``accelsim sweep`` as a process; wall and CPU seconds (workers included).

    ``kill_at``: SIGKILL the main process (only) once that many points are cached.
    """
    command = [sys.executable, "-m", "accelsim.cli", "sweep", str(spec), "-o", str(out),
               "--workers", str(workers), "--quiet"]
    if trace is not None:
        command += ["--trace", str(trace)]
    load = os.getloadavg()[0]
    cpu0, start = _cpu_children(), time.perf_counter()
    proc = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = False
    if kill_at is not None:
        while proc.poll() is None:
            if sum(1 for _ in (out / "cache").glob("*/*.json")) >= kill_at:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.5)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0 and not killed:
        raise SystemExit(f"accelsim sweep failed ({proc.returncode}): {stderr.strip()}")
    return {"wall_s": wall, "cpu_s": _cpu_children() - cpu0, "load_before": load,
            "killed": killed, "stdout": stdout.strip()}


def _rows(out: Path) -> int:
    summary = json.loads((out / "sweep.json").read_text())
    return int(summary["results"])


def workers_scaling(folder: Path, trace: Path, points: int) -> dict:
    """Points/s and CPU s/point of whole sweeps with 1 and 2 local workers."""
    (folder / "warm").mkdir()
    warm = make_spec(folder / "warm", trace, 2)
    cli_sweep(warm, folder / "warm_out", 1)  # compile or load the kernels once, not timed
    (folder / "grid").mkdir()
    spec = make_spec(folder / "grid", trace, points)
    figures: dict = {}
    for workers in (1, 2):
        run = cli_sweep(spec, folder / f"out_{workers}", workers)
        n = _rows(folder / f"out_{workers}")
        figures[f"workers_{workers}"] = {
            "points": n, "wall_s": round(run["wall_s"], 2), "cpu_s": round(run["cpu_s"], 2),
            "points_per_s": round(n / run["wall_s"], 2),
            "cpu_ms_per_point": round(1e3 * run["cpu_s"] / n, 2),
            "load_before": round(run["load_before"], 2)}
    one, two = figures["workers_1"], figures["workers_2"]
    figures["speedup_2_vs_1"] = round(two["points_per_s"] / one["points_per_s"], 2)
    figures["cpu_per_point_2_vs_1"] = round(two["cpu_ms_per_point"] / one["cpu_ms_per_point"], 3)
    figures["busy"] = max(one["load_before"], two["load_before"]) > BUSY_LOAD
    return figures


def sweep_10k(folder: Path, trace: Path, workers: int, kill_fraction: float) -> dict:
    """The shipped 10^4-point spec: killed part way, resumed, re-run from the cache."""
    from accelsim.sweep.expand import expand
    from accelsim.sweep.spec import load_sweep_spec

    total = len(expand(load_sweep_spec(SCALE_SPEC)).valid)
    out = folder / "scale_out"
    first = cli_sweep(SCALE_SPEC, out, workers, trace, kill_at=int(total * kill_fraction))
    cached_at_kill = sum(1 for _ in (out / "cache").glob("*/*.json"))
    resumed = cli_sweep(SCALE_SPEC, out, workers, trace)
    summary = json.loads((out / "sweep.json").read_text())
    again = cli_sweep(SCALE_SPEC, out, workers, trace)
    again_computed = json.loads((out / "sweep.json").read_text())["computed"]
    results = out / summary["results_file"]
    return {
        "points": total, "workers": workers, "killed": first["killed"],
        "first_run_s": round(first["wall_s"], 1), "cached_at_kill": cached_at_kill,
        "resume_s": round(resumed["wall_s"], 1), "resume_computed": summary["computed"],
        "resume_cached": summary["cached"], "rows": summary["results"],
        "failed": summary["failed"], "total_s": round(first["wall_s"] + resumed["wall_s"], 1),
        "cpu_ms_per_point": round(1e3 * (first["cpu_s"] + resumed["cpu_s"]) / total, 2),
        "cache_rerun_s": round(again["wall_s"], 1), "cache_rerun_computed": again_computed,
        "results_mb": round(results.stat().st_size / 1e6, 2),
        "load_before": round(first["load_before"], 2),
        "parts": sum(1 for _ in (out / "parts").iterdir()),
    }


# ---------------------------------------------------------------------------------------------
# SIMULATION PART (reserved): simulate-vs-kernel rate, time and peak memory against samples
# (1, 16, 64). To be filled by the engine owner after the engine rewrite; no figure is
# measured or reported here until then.
# ---------------------------------------------------------------------------------------------
def simulate_figures(folder: Path) -> dict:
    return {"status": "not measured: reserved for the engine rewrite (see docs/scale.md)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("sweep", "simulate", "all"), default="sweep")
    parser.add_argument("--points", type=int, default=1000,
                        help="points of the workers-scaling grid (default 1000)")
    parser.add_argument("--no-10k", action="store_true", help="skip the 10^4-point sweep")
    parser.add_argument("--kill-fraction", type=float, default=0.3,
                        help="share of the 10^4 sweep done when it is killed (default 0.3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    figures: dict = {"cpu_count": os.cpu_count(), "load_at_start": os.getloadavg()}
    try:
        if args.part in ("sweep", "all"):
            trace = make_trace(folder, 0.5, 0.5)
            figures["workers"] = workers_scaling(folder, trace, args.points)
            if not args.no_10k:
                figures["sweep_10k"] = sweep_10k(folder, trace, 2, args.kill_fraction)
        if args.part in ("simulate", "all"):
            figures["simulate"] = simulate_figures(folder)
    finally:
        if args.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)

    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{figures['cpu_count']} CPUs, load average at start {figures['load_at_start'][0]:.2f}")
    if "workers" in figures:
        w = figures["workers"]
        print(f"ResNet-18 statistical trace, fast fidelity, whole `accelsim sweep` processes "
              f"(start-up included){' - MACHINE BUSY, ratios unreliable' if w['busy'] else ''}")
        for k in (1, 2):
            f = w[f"workers_{k}"]
            print(f"  {k} worker(s): {f['points']} points in {f['wall_s']:.1f} s = "
                  f"{f['points_per_s']:.1f} points/s, CPU {f['cpu_ms_per_point']:.1f} ms/point "
                  f"(load before {f['load_before']:.2f})")
        print(f"  2 vs 1 workers: {w['speedup_2_vs_1']:.2f}x points/s (target >= 1.7x); CPU per "
              f"point {w['cpu_per_point_2_vs_1']:.3f}x of one worker's (target <= 1.10x)")
    if "sweep_10k" in figures:
        s = figures["sweep_10k"]
        print(f"10^4 sweep ({SCALE_SPEC.name}, {s['points']} points, {s['workers']} workers): "
              f"killed after {s['first_run_s']:.1f} s with {s['cached_at_kill']} cached, resumed "
              f"in {s['resume_s']:.1f} s ({s['resume_computed']} computed, {s['resume_cached']} "
              f"from cache); {s['rows']} rows ({s['failed']} failed), total {s['total_s']:.1f} s, "
              f"CPU {s['cpu_ms_per_point']:.1f} ms/point; cache-hit re-run {s['cache_rerun_s']:.1f} s "
              f"({s['cache_rerun_computed']} recomputed); results {s['results_mb']:.1f} MB")
    if "simulate" in figures:
        print(f"simulate: {figures['simulate']['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
