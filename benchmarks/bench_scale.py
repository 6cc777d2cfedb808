"""Scale benchmarks (issue 14), each part measured in one run, ratios from the same run.

Sweep part (this file's sweep section):
  - points/s and CPU time per point against local workers (1, 2), each a whole
    ``accelsim sweep`` process (start-up included) on a grid over a ResNet-18 statistical
    trace; CPU time is the process's and its workers' (``getrusage`` of children);
  - a 10^4-point ResNet-18 sweep on the shipped ``hw_configs/sweeps/resnet18_scale.yaml``
    (``--trace`` replaced by the statistical trace): killed by SIGKILL part way, resumed to the
    end, then re-run from the cache; times and row counts reported.
Simulation part (``--part simulate``): a captured ResNet-50 trace (zoo model, random init,
``random:3,224,224``, 64 samples; or ``--sim-trace``) simulated on ``sparten_like`` (output
stationary, both skips) with 1, 16 and 64 samples, each as a whole
``accelsim simulate`` process (its default ``--threads``; start-up included; CPU time from
``wait4``, peak RSS the process's own VmHWM), 64 samples again with ``--threads`` 1 and 2 (wall time), and in
process (CPU time; tracemalloc peak), against the kernel's own rate (the loop-nest model's
per-step mask counts and fold schedule alone, ``sparse.step_stats`` on the same layers) measured
in the same run: mask-pair evaluations (dense MACs) per CPU second, and their ratio (the
headline figure).

    python benchmarks/bench_scale.py                        # sweep part, 1,000 points + 10^4
    python benchmarks/bench_scale.py --points 300 --no-10k  # quicker
    python benchmarks/bench_scale.py --json
    python benchmarks/bench_scale.py --part simulate [--sim-trace resnet50_64.trace]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_sweep import make_spec, make_trace, remove_folder  # noqa: E402

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
# SIMULATION PART: simulate-vs-kernel rate, time and peak memory against samples (1, 16, 64).
# ---------------------------------------------------------------------------------------------
SIM_DESIGN = REPO / "hw_configs" / "sparten_like.yaml"   # output stationary, both skips
#: the same design in the flat (systolic) form it had before it moved to the mapped model
#: (issue 23 item 7: the mapped model's whole-process time against it, same run)
SIM_FLAT = REPO / "tests" / "fixtures" / "systolic_designs" / "sparten_like.yaml"
SIM_SAMPLES = (1, 16, 64)
SIM_THREADS = (1, 2)     # ``--threads`` of the 64-sample runs compared for wall time


def capture_resnet50(path: Path, samples: int) -> float:
    """Capture a ResNet-50 trace (zoo model, random init, random:3,224,224 input); seconds."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "accelsim.cli", "trace", "capture",
                           "--model", "resnet50", "--data", "random:3,224,224",
                           "--samples", str(samples), "--batch-size", "16", "-o", str(path)],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"capture failed: {done.stderr.strip()}")
    return time.perf_counter() - start


def kernel_rate(trace_path: Path) -> dict:
    """The one model's per-step mask counts and fold schedule alone (``sparse.step_stats``, the
    calls ``simulate`` makes for sample 0 of every layer on the benchmark's design, made once
    untimed first): dense MAC pairs per CPU second."""
    from bench_step_work import collect, schedule_args

    from accelsim.hw import load_hw
    from accelsim.map import sparse
    from accelsim.trace import open_trace

    hw = load_hw(SIM_DESIGN)
    with open_trace(trace_path) as trace:
        calls = collect(trace, hw, 1)
    sched = schedule_args(hw)
    pairs = sum(args[0].macs for _name, args, _kw in calls)

    def one_pass() -> float:
        cpu0 = time.process_time()
        for _name, args, kwargs in calls:
            sparse.step_stats(*args, sched, **kwargs)
        return time.process_time() - cpu0

    one_pass()          # kernels loaded, caches filled: not timed
    best = max(pairs / one_pass() for _ in range(3))
    return {"pairs_per_cpu_s": best, "pairs_per_pass": pairs}


#: Runs ``accelsim.cli.main`` and, at exit, writes the process's own peak resident size (Linux
#: VmHWM, which ``exec`` resets) to the file named by $BENCH_PEAK_FILE. ``wait4``'s ru_maxrss
#: keeps the size the process had before ``exec`` (the parent's, here the benchmark's own).
_PEAK_WRAPPER = """
import atexit, os, sys
def _peak():
    with open('/proc/self/status') as fh:
        kib = next(int(l.split()[1]) for l in fh if l.startswith('VmHWM:'))
    with open(os.environ['BENCH_PEAK_FILE'], 'w') as out:
        out.write(str(kib))
atexit.register(_peak)
from accelsim.cli import main
sys.exit(main(sys.argv[1:]))
"""


def simulate_process(args: list[str], tree: Path = REPO, env: dict | None = None) -> dict:
    """One whole ``accelsim simulate ARGS`` process of ``tree``'s accelsim (start-up included):
    wall seconds, CPU seconds (user + sys, from ``wait4``) and the process's own peak RSS.
    ``env``: variables set (a value of None: unset) in the child's environment only."""
    child = {**os.environ}
    for key, value in (env or {}).items():
        if value is None:
            child.pop(key, None)
        else:
            child[key] = str(value)
    command = [sys.executable, "-c", _PEAK_WRAPPER, "simulate", *args]
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak"
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env={**child, "PYTHONPATH": str(tree),
                                                "BENCH_PEAK_FILE": str(peak_file)})
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        stderr = proc.stderr.read()
        proc.stderr.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise SystemExit(f"{tree}: accelsim simulate failed ({code}): {stderr.strip()}")
        peak_kib = int(peak_file.read_text())
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_mb": peak_kib / 1024.0}


def cli_simulate(trace_path: Path, samples: int, out: Path, threads: int | None = None,
                 design: Path = SIM_DESIGN) -> dict:
    """One whole ``accelsim simulate`` process of ``design`` (the benchmark's by default): wall,
    CPU, max RSS and the pairs it evaluated. ``threads``: ``--threads`` (default: the command's
    own default)."""
    args = ["--trace", str(trace_path), "--hw", str(design), "--samples", str(samples),
            "-o", str(out)]
    if threads is not None:
        args += ["--threads", str(threads)]
    figures = simulate_process(args)
    import pandas as pd

    figures["pairs"] = float(pd.read_csv(out)["macs_dense"].sum()) * samples
    return figures


def inprocess_simulate(trace_path: Path, samples: int) -> dict:
    """``simulate`` in this process (kernels warm): CPU seconds and tracemalloc peak."""
    import gc
    import tracemalloc

    from accelsim.hw import load_hw
    from accelsim.sim import simulate
    from accelsim.trace import open_trace

    hw = load_hw(SIM_DESIGN)
    gc.collect()
    with open_trace(trace_path) as trace:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = simulate(trace, hw, samples=samples)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    with open_trace(trace_path) as trace:
        tracemalloc.start()
        simulate(trace, hw, samples=samples)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    pairs = float(result.layers["macs_dense"].sum()) * samples
    return {"wall_s": wall, "cpu_s": cpu, "peak_mb": peak / 1e6, "pairs": pairs}


def simulate_figures(folder: Path, trace_path: Path | None = None) -> dict:
    """Whole-process and in-process simulate of a 64-sample ResNet-50 trace at 1/16/64
    samples against the kernel's own rate, measured in the same run."""
    figures: dict = {"design": SIM_DESIGN.name}
    if trace_path is None:
        trace_path = folder / "resnet50_64.trace"
        figures["capture_s"] = round(capture_resnet50(trace_path, max(SIM_SAMPLES)), 1)
    figures["trace"] = str(trace_path)
    kernel = kernel_rate(trace_path)
    rate = kernel["pairs_per_cpu_s"]
    figures["kernel_pairs_per_cpu_s"] = rate
    cli_simulate(trace_path, 1, folder / "warm.csv")   # kernels compiled or loaded, not timed
    runs = {}
    for samples in SIM_SAMPLES:
        whole = cli_simulate(trace_path, samples, folder / f"sim_{samples}.csv")
        inproc = inprocess_simulate(trace_path, samples)
        runs[samples] = {
            "pairs": whole["pairs"],
            "process_wall_s": round(whole["wall_s"], 2),
            "process_cpu_s": round(whole["cpu_s"], 2),
            "process_maxrss_mb": round(whole["maxrss_mb"], 1),
            "process_pairs_per_cpu_s": whole["pairs"] / whole["cpu_s"],
            "process_vs_kernel": whole["pairs"] / whole["cpu_s"] / rate,
            "inprocess_cpu_s": round(inproc["cpu_s"], 2),
            "inprocess_peak_mb": round(inproc["peak_mb"], 1),
            "inprocess_vs_kernel": inproc["pairs"] / inproc["cpu_s"] / rate,
        }
    figures["runs"] = runs
    samples = max(SIM_SAMPLES)
    threads = {}
    for count in SIM_THREADS:   # sample threads: the same CPU work, less wall time
        whole = cli_simulate(trace_path, samples, folder / f"threads_{count}.csv", count)
        threads[count] = {"process_wall_s": round(whole["wall_s"], 2),
                          "process_cpu_s": round(whole["cpu_s"], 2),
                          "process_vs_kernel": whole["pairs"] / whole["cpu_s"] / rate}
    threads["wall_speedup"] = round(threads[SIM_THREADS[0]]["process_wall_s"]
                                    / threads[SIM_THREADS[-1]]["process_wall_s"], 2)
    figures["threads"] = threads
    cli_simulate(trace_path, 1, folder / "warm_flat.csv", design=SIM_FLAT)
    flat = cli_simulate(trace_path, samples, folder / "flat.csv", design=SIM_FLAT)
    mapped = cli_simulate(trace_path, samples, folder / "mapped.csv")
    figures["mapped_vs_flat"] = {"samples": samples, "flat_cpu_s": round(flat["cpu_s"], 2),
                                 "mapped_cpu_s": round(mapped["cpu_s"], 2),
                                 "ratio": round(mapped["cpu_s"] / flat["cpu_s"], 2),
                                 "flat_maxrss_mb": round(flat["maxrss_mb"], 1),
                                 "mapped_maxrss_mb": round(mapped["maxrss_mb"], 1)}
    figures["load_after"] = os.getloadavg()[0]
    return figures


def print_simulate(s: dict) -> None:
    print(f"simulate ({s['design']}, fast, captured ResNet-50 trace {s['trace']}); kernel "
          f"(per-step counts + schedule alone): {s['kernel_pairs_per_cpu_s']:.3g} mask-pair evaluations "
          "per CPU second")
    for samples, r in s["runs"].items():
        print(f"  {samples:>3} samples, {r['pairs']:.3g} pairs: whole process "
              f"{r['process_cpu_s']:.2f} CPU s ({r['process_wall_s']:.2f} s wall), max RSS "
              f"{r['process_maxrss_mb']:.0f} MB, {100 * r['process_vs_kernel']:.1f}% of the "
              f"kernel's rate; in process {r['inprocess_cpu_s']:.2f} CPU s, "
              f"{100 * r['inprocess_vs_kernel']:.1f}% of the kernel's rate, tracemalloc peak "
              f"{r['inprocess_peak_mb']:.0f} MB")
    t = s.get("threads")
    if t:
        parts = ", ".join(f"{n} thread(s) {r['process_wall_s']:.2f} s wall, "
                          f"{r['process_cpu_s']:.2f} CPU s ({100 * r['process_vs_kernel']:.1f}%)"
                          for n, r in t.items() if n != "wall_speedup")
        print(f"  {max(s['runs'])} samples: {parts}; wall speed-up {t['wall_speedup']:.2f}x")
    m = s.get("mapped_vs_flat")
    if m:
        print(f"  {m['samples']} samples, whole process: mapped model {m['mapped_cpu_s']:.2f} CPU s "
              f"({m['mapped_maxrss_mb']:.0f} MB) against the flat form {m['flat_cpu_s']:.2f} CPU s "
              f"({m['flat_maxrss_mb']:.0f} MB): {m['ratio']:.2f}x (issue 23 target: <= 1.5x)")


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
    parser.add_argument("--sim-trace", type=Path, default=None,
                        help="simulate part: a ResNet-50 trace with >= 64 samples to reuse "
                             "(default: capture one, about a minute)")
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
            figures["simulate"] = simulate_figures(folder, args.sim_trace)
    finally:
        remove_folder(folder, args.keep)

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
        print_simulate(figures["simulate"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
