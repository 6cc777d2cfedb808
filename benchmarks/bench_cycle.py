"""``cycle`` fidelity speed of the one model (issue 24 item 1): PE-cycles per CPU second.

A ResNet-18 trace (captured from the zoo's ``resnet18``, random init, ``random:3,224,224``,
one sample; or ``--trace``): ``simulate(..., fidelity="cycle")`` on ``--design`` (default
``hw_configs/eyeriss_v1.yaml``) after a warm-up run (kernel compilation and the mapper's
searches outside the timed region), and ``fidelity="fast"`` in the same run: PE-cycles (rows x
cols x simulated cycles) per CPU second of the whole cycle-fidelity ``simulate`` (target >=
5e8) and of the mapped cycle engine alone, and the ratios cycle / fast of CPU time and of
cycles. (The flat engine's kernel comparison that also lived here went with that engine,
issue 23.)

    python benchmarks/bench_cycle.py                       # captures the trace, then measures
    python benchmarks/bench_cycle.py --trace r18.trace [--design sparten_like] [--json]
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

# CPU time is the process's: keep OpenBLAS's idle threads (numpy/scipy import them; nothing
# here uses BLAS) from spinning into it
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))



def capture_resnet18(path: Path) -> float:
    """Capture a one-sample ResNet-18 trace (zoo model, random init and input); seconds."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "accelsim.cli", "trace", "capture",
                           "--model", "resnet18", "--data", "random:3,224,224", "--samples", "1",
                           "-o", str(path)], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"capture failed: {done.stderr.strip()}")
    return time.perf_counter() - start


MAPPED_DESIGN = "eyeriss_v1"
MAPPED_TARGET = 5e8


def measure_mapped(trace_path: Path, design: str = MAPPED_DESIGN) -> dict:
    """Cycle-level run of a mapped design: PE-cycles per CPU second, and against ``fast``."""
    from accelsim.hw import load_hw
    from accelsim.sim import cycle_mapped, simulate
    from accelsim.trace import open_trace

    hw = load_hw(REPO / "hw_configs" / f"{design}.yaml")
    engine_cpu = [0.0]
    apply = cycle_mapped.apply

    def timed_apply(*args, **kwargs):
        cpu0 = time.process_time()
        apply(*args, **kwargs)
        engine_cpu[0] += time.process_time() - cpu0

    with open_trace(trace_path) as trace:
        cpu0 = time.process_time()
        simulate(trace, hw, fidelity="cycle", samples=1)       # warm-up: compile, map
        warm_cpu = time.process_time() - cpu0
        cpu0 = time.process_time()
        fast = simulate(trace, hw, fidelity="fast", samples=1)
        fast_cpu = time.process_time() - cpu0
        cycle_mapped.apply = timed_apply
        try:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            cyc = simulate(trace, hw, fidelity="cycle", samples=1)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        finally:
            cycle_mapped.apply = apply
    cycles = float(cyc.layers["cycles"].sum())
    fast_cycles = float(fast.layers["cycles"].sum())
    pe_cycles = hw.pe_array.rows * hw.pe_array.cols * cycles
    return {"design": design, "layers": len(cyc.layers), "cycles": cycles,
            "fast_cycles": fast_cycles, "pe_cycles": pe_cycles, "simulate_cpu_s": cpu,
            "simulate_wall_s": wall, "engine_cpu_s": engine_cpu[0], "fast_cpu_s": fast_cpu,
            "simulate_pe_cycles_per_s": pe_cycles / max(cpu, 1e-9),
            "engine_pe_cycles_per_s": pe_cycles / max(engine_cpu[0], 1e-9),
            "cpu_ratio_cycle_over_fast": cpu / max(fast_cpu, 1e-9),
            "cycles_ratio_cycle_over_fast": cycles / max(fast_cycles, 1e-9),
            "warmup_cpu_s": warm_cpu, "target": MAPPED_TARGET, "meets_target": pe_cycles / max(cpu, 1e-9) >= MAPPED_TARGET,
            "load": os.getloadavg()[0]}


def report_mapped(m: dict) -> None:
    print(f"mapped design {m['design']} ({m['layers']} layers, load {m['load']:.2f}): "
          f"{m['pe_cycles']:.3g} PE-cycles ({m['cycles']:.4g} cycles; fast {m['fast_cycles']:.4g},"
          f" x{m['cycles_ratio_cycle_over_fast']:.3f})")
    print(f"  simulate(cycle): {m['simulate_cpu_s']:.2f} CPU s = "
          f"{m['simulate_pe_cycles_per_s']:.3g} PE-cycles/CPU s (target {m['target']:.0e}: "
          f"{'met' if m['meets_target'] else 'NOT met'}); mapped engine alone "
          f"{m['engine_cpu_s']:.3f} CPU s = {m['engine_pe_cycles_per_s']:.3g} PE-cycles/CPU s")
    print(f"  simulate(fast): {m['fast_cpu_s']:.2f} CPU s; cycle / fast CPU time "
          f"{m['cpu_ratio_cycle_over_fast']:.2f}; warm-up run (compile, mapper searches, not "
          f"timed above) {m['warmup_cpu_s']:.1f} CPU s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, help="a ResNet-18 trace (default: capture one)")
    parser.add_argument("--design", default=MAPPED_DESIGN, help="a file name in hw_configs/")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace_path = args.trace
        if trace_path is None:
            trace_path = Path(tmp) / "resnet18.trace"
            capture_resnet18(trace_path)
        figures = measure_mapped(trace_path, args.design)
    if args.json:
        print(json.dumps(figures, indent=2, default=float))
    else:
        report_mapped(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
