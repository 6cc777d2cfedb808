"""Simulator benchmarks: fast and cycle fidelities, Numba start-up.

Run from the repository root::

    .venv/bin/python benchmarks/bench_sim.py            # everything (a few minutes)
    .venv/bin/python benchmarks/bench_sim.py --only fast

Figures (each against a baseline measured in the same run where one exists):

1. ``fast``: ``simulate`` of one ResNet-50 ImageNet image (statistical trace, 50%
   activation density, dense input) on the SparTen-like design (both skips, the
   block-count path): wall time and peak RSS, measured in a fresh process;
2. ``cycle``: ResNet-18 CIFAR at the cycle fidelity: PE-cycles simulated per second,
   with the fast fidelity's time on the same trace as the baseline;
3. ``startup``: ``accelsim simulate`` on a LeNet-5 trace with an empty Numba cache
   (cold: compiles every kernel) and again with the cache filled (warm).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
HW = REPO / "hw_configs"


def _resnet_trace(tmp: Path, name: str, act_density: float) -> Path:
    from accelsim.trace import statistical_from_model

    path = tmp / f"{name}.trace"
    statistical_from_model(name, None, act_density=act_density, weight_density=1.0, seed=0,
                           samples=1, input_density=1.0, output=path)
    return path


_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()

def peak_mb():  # VmHWM: peak RSS of this process image (ru_maxrss survives exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

from accelsim.hw import load_hw
from accelsim.sim import simulate
from accelsim.trace import open_trace
trace, hw, fidelity = open_trace(sys.argv[1]), load_hw(sys.argv[2]), sys.argv[3]
simulate(trace, hw, fidelity=fidelity)            # first run: loads cached kernels
t1 = time.perf_counter()
res = simulate(trace, hw, fidelity=fidelity)
t2 = time.perf_counter()
print(json.dumps({"first_s": t1 - t0, "seconds": t2 - t1,
                  "cycles": res.totals["cycles"], "pes": res.meta["pes"],
                  "layers": res.totals["layers"],
                  "max_rss_mb": peak_mb()}))
"""


def _child(trace: Path, hw: Path, fidelity: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(trace), str(hw), fidelity],
                         check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_fast(tmp: Path) -> dict:
    trace = _resnet_trace(tmp, "resnet50", 0.5)
    sparten = _child(trace, HW / "sparten_like.yaml", "fast")
    dense = _child(trace, HW / "dense_ws_tpu_like.yaml", "fast")
    return {"resnet50_sparten_like_s": sparten["seconds"],
            "resnet50_sparten_like_max_rss_mb": sparten["max_rss_mb"],
            "resnet50_dense_ws_tpu_like_s": dense["seconds"],
            "resnet50_dense_ws_tpu_like_max_rss_mb": dense["max_rss_mb"],
            "layers": sparten["layers"], "target_s": 1.0, "target_rss_mb": 2048}


def bench_cycle(tmp: Path) -> dict:
    trace = _resnet_trace(tmp, "resnet18_cifar", 0.5)
    cyc = _child(trace, HW / "sparten_like.yaml", "cycle")
    fast = _child(trace, HW / "sparten_like.yaml", "fast")
    pe_cycles = cyc["cycles"] * cyc["pes"]
    return {"resnet18_cifar_cycle_s": cyc["seconds"], "resnet18_cifar_fast_s": fast["seconds"],
            "cycle_over_fast_time": cyc["seconds"] / fast["seconds"],
            "cycles": cyc["cycles"], "pe_cycles_per_s": pe_cycles / cyc["seconds"],
            "target_pe_cycles_per_s": 1e8}


def bench_startup(tmp: Path) -> dict:
    from accelsim.trace import statistical_from_model

    trace = tmp / "lenet5.trace"
    statistical_from_model("lenet5", None, act_density=0.5, weight_density=0.5, samples=4,
                           output=trace)
    cache = tmp / "numba_cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    cmd = [sys.executable, "-m", "accelsim.cli", "simulate", "--trace", str(trace), "--hw",
           str(HW / "sparten_like.yaml"), "--fidelity", "cycle", "--baseline", "dense"]
    times = []
    for _ in range(2):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=REPO)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import accelsim.sim, accelsim.hw, accelsim.trace"],
                   check=True, env=env, cwd=REPO)
    imports = time.perf_counter() - start
    return {"cold_s": times[0], "warm_s": times[1], "cold_over_warm": times[0] / times[1],
            "python_and_imports_s": imports}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="fast,cycle,startup",
                        help="comma-separated subset of fast, cycle, startup (the block "
                             "kernels: benchmarks/bench_step_work.py)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    results = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in chosen:
            fn = {"fast": lambda: bench_fast(tmp),
                  "cycle": lambda: bench_cycle(tmp), "startup": lambda: bench_startup(tmp)}[name]
            results[name] = fn()
            print(f"== {name}")
            for key, value in results[name].items():
                text = f"{value:.4g}" if isinstance(value, float) else str(value)
                print(f"  {key:40s} {text}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
