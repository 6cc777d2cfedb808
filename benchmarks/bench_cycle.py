"""``cycle`` fidelity speed (issue 14): PE-cycles per CPU second, old kernel against new.

A ResNet-18 trace (captured from the zoo's ``resnet18``, random init, ``random:3,224,224``,
one sample; or ``--trace``) is simulated at ``cycle`` fidelity on the shipped systolic designs
without a ``memory_hierarchy``, once with the current kernel
(:func:`accelsim.sim.kernels.cycle.cycle_simulate`) and once with the kernel of an older
revision (``--old-rev``, loaded from ``git show REV:accelsim/sim/kernels/cycle.py`` into a
temporary module: the package keeps one kernel), in the same run. Reported per design and in
total:

- PE-cycles/s of the kernel = rows x cols x simulated cycles / CPU seconds inside the kernel;
- PE-cycles/s of the whole simulate = the same PE-cycles / CPU seconds of ``simulate`` (samples
  lowering, mapping, the fast-path figures, energy: everything the cycle fidelity runs);
- whether every column of the two result tables is equal (it must be).

``--part mapped`` (or ``all``) measures the cycle-level run of a mapped design instead (issue 24
item 1): ``simulate(..., fidelity="cycle")`` of the trace on ``hw_configs/eyeriss_v1.yaml``
after a warm-up run (kernel compilation and the mapper's searches outside the timed region),
and ``fidelity="fast"`` in the same run: PE-cycles (rows x cols x simulated cycles) per CPU
second of the whole cycle-fidelity ``simulate`` (target >= 5e8) and of the mapped engine
alone, and the ratios cycle / fast of CPU time and of cycles.

    python benchmarks/bench_cycle.py                       # captures the trace, then measures
    python benchmarks/bench_cycle.py --trace r18.trace --designs sparten_like eyeriss_like
    python benchmarks/bench_cycle.py --trace r18.trace --part mapped
    python benchmarks/bench_cycle.py --json
"""
from __future__ import annotations

import argparse
import importlib.util
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

DESIGNS = ("sparten_like", "edge_lowpower", "dense_ws_tpu_like", "eyeriss_like")
#: the flat (systolic) designs the flat part steps: the forms these files had before the
#: shipped designs moved to the mapped model (the TPU-like one is shipped as it is)
SYSTOLIC = REPO / "tests" / "fixtures" / "systolic_designs"
OLD_REV = "9f08f94"   # the per-cycle stepping kernel (before the event-driven rewrite)
BUSY_LOAD = 0.5


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


def load_old_kernel(rev: str, folder: Path):
    """The cycle kernel module of revision ``rev``, imported from a temporary file."""
    source = subprocess.run(["git", "show", f"{rev}:accelsim/sim/kernels/cycle.py"], cwd=REPO,
                            capture_output=True, text=True)
    if source.returncode != 0:
        raise SystemExit(f"git show {rev}: {source.stderr.strip()}")
    path = folder / f"cycle_{rev}.py"
    path.write_text(source.stdout)
    spec = importlib.util.spec_from_file_location(f"accelsim_cycle_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TimedKernel:
    """Stands in for the kernel module inside the engine: times every call."""

    def __init__(self, module, rows: int, cols: int):
        self._module = module
        self.rows, self.cols = rows, cols
        self.cpu_s = 0.0
        self.cycles = 0.0
        self.calls = 0
        for name in dir(module):
            if name.startswith("CY_"):
                setattr(self, name, getattr(module, name))

    def cycle_simulate(self, *args):
        cpu0 = time.process_time()
        out = self._module.cycle_simulate(*args)
        self.cpu_s += time.process_time() - cpu0
        self.cycles += float(out[self._module.CY_CYCLES])
        self.calls += 1
        return out


def warm(module) -> None:
    """Compile or load ``module``'s kernel before timing."""
    import numpy as np

    a = np.ones((1, 2, 2), dtype=np.uint8)
    w = np.ones((1, 2, 2), dtype=np.uint8)
    work = np.full((1, 2, 2), 2, dtype=np.int64)
    for q, bw in ((0, 0.0), (2, 8.0)):
        module.cycle_simulate(a, w, work, 0, 2, True, True, 2, 2, 1, 1, 1, 0, 1, q, bw,
                              np.array([1.0, 8.0, 0.0]), np.array([1.0, 8.0]), 16.0, 8.0)


def warm_simulate(designs) -> None:
    """Compile (or load) every other kernel a cycle-fidelity ``simulate`` of ``designs`` uses
    (packing, lowering, schedules) on the small shipped trace, outside any timed region."""
    from accelsim.hw import load_hw
    from accelsim.sim import simulate
    from accelsim.trace import open_trace

    with open_trace(REPO / "traces" / "lenet5_digits_dual.trace") as trace:
        for design in designs:
            simulate(trace, load_hw(SYSTOLIC / f"{design}.yaml"), fidelity="cycle",
                     samples=1)


def run_design(trace_path: Path, design: str, module) -> dict:
    """``simulate`` at cycle fidelity with ``module``'s kernel: CPU seconds and the table."""
    from accelsim.hw import load_hw
    from accelsim.sim import engine, simulate
    from accelsim.trace import open_trace

    hw = load_hw(SYSTOLIC / f"{design}.yaml")
    timed = TimedKernel(module, hw.pe_array.rows, hw.pe_array.cols)
    saved = engine.cyk
    engine.cyk = timed
    try:
        with open_trace(trace_path) as trace:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = simulate(trace, hw, fidelity="cycle", samples=1)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        engine.cyk = saved
    pe_cycles = timed.rows * timed.cols * timed.cycles
    return {"pe_cycles": pe_cycles, "kernel_cpu_s": timed.cpu_s, "simulate_cpu_s": cpu,
            "simulate_wall_s": wall, "calls": timed.calls, "table": result.layers}


def tables_equal(a, b) -> bool:
    import numpy as np

    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind in "fc":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif not all(u == v for u, v in zip(x, y)):
            return False
    return True


def measure(trace_path: Path, designs, old) -> dict:
    from accelsim.sim.kernels import cycle as new

    warm(old)
    warm(new)
    warm_simulate(designs)
    figures: dict = {"trace": str(trace_path), "load_before": os.getloadavg()[0], "designs": {}}
    totals = {"old": [0.0, 0.0, 0.0], "new": [0.0, 0.0, 0.0]}
    for design in designs:
        row = {}
        tables = {}
        for label, module in (("old", old), ("new", new)):
            r = run_design(trace_path, design, module)
            tables[label] = r.pop("table")
            r["kernel_pe_cycles_per_s"] = r["pe_cycles"] / max(r["kernel_cpu_s"], 1e-9)
            r["simulate_pe_cycles_per_s"] = r["pe_cycles"] / max(r["simulate_cpu_s"], 1e-9)
            row[label] = r
            t = totals[label]
            t[0] += r["pe_cycles"]
            t[1] += r["kernel_cpu_s"]
            t[2] += r["simulate_cpu_s"]
        row["equal"] = tables_equal(tables["old"], tables["new"])
        row["kernel_speedup"] = row["old"]["kernel_cpu_s"] / max(row["new"]["kernel_cpu_s"], 1e-9)
        figures["designs"][design] = row
    figures["total"] = {
        label: {"pe_cycles": t[0], "kernel_cpu_s": t[1], "simulate_cpu_s": t[2],
                "kernel_pe_cycles_per_s": t[0] / max(t[1], 1e-9),
                "simulate_pe_cycles_per_s": t[0] / max(t[2], 1e-9)}
        for label, t in totals.items()}
    figures["total"]["kernel_speedup"] = totals["old"][1] / max(totals["new"][1], 1e-9)
    figures["load_after"] = os.getloadavg()[0]
    figures["busy"] = max(figures["load_before"], figures["load_after"]) > BUSY_LOAD
    return figures


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


def report(f: dict) -> None:
    print(f"trace {f['trace']}  (load {f['load_before']:.2f} -> {f['load_after']:.2f}"
          f"{'; machine busy: CPU-time figures' if f['busy'] else ''})")
    print(f"{'design':<20}{'PE-cycles':>12}{'kernel old':>13}{'kernel new':>13}{'x':>7}"
          f"{'simulate old':>14}{'simulate new':>14}  equal")
    for design, r in f["designs"].items():
        o, n = r["old"], r["new"]
        print(f"{design:<20}{n['pe_cycles']:>12.3g}{o['kernel_pe_cycles_per_s']:>13.3g}"
              f"{n['kernel_pe_cycles_per_s']:>13.3g}{r['kernel_speedup']:>7.1f}"
              f"{o['simulate_pe_cycles_per_s']:>14.3g}{n['simulate_pe_cycles_per_s']:>14.3g}"
              f"  {r['equal']}")
    o, n = f["total"]["old"], f["total"]["new"]
    print(f"{'total':<20}{n['pe_cycles']:>12.3g}{o['kernel_pe_cycles_per_s']:>13.3g}"
          f"{n['kernel_pe_cycles_per_s']:>13.3g}{f['total']['kernel_speedup']:>7.1f}"
          f"{o['simulate_pe_cycles_per_s']:>14.3g}{n['simulate_pe_cycles_per_s']:>14.3g}")
    print(f"kernel CPU s: old {o['kernel_cpu_s']:.2f}, new {n['kernel_cpu_s']:.2f}; "
          f"simulate CPU s: old {o['simulate_cpu_s']:.2f}, new {n['simulate_cpu_s']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, help="a ResNet-18 trace (default: capture one)")
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS))
    parser.add_argument("--old-rev", default=OLD_REV)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--part", choices=("flat", "mapped", "all"), default="flat",
                        help="flat: the systolic designs, old kernel against new (default); "
                             "mapped: eyeriss_v1's cycle-level mapped run; all: both")
    args = parser.parse_args()
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trace_path = args.trace
        if trace_path is None:
            trace_path = folder / "resnet18.trace"
            capture_resnet18(trace_path)
        if args.part in ("flat", "all"):
            old = load_old_kernel(args.old_rev, folder)
            figures = measure(trace_path, args.designs, old)
        if args.part in ("mapped", "all"):
            figures["mapped"] = measure_mapped(trace_path)
    if args.json:
        print(json.dumps({k: v for k, v in figures.items()}, indent=2, default=float))
    else:
        if "designs" in figures:
            report(figures)
        if "mapped" in figures:
            report_mapped(figures["mapped"])
    return 0 if all(r["equal"] for r in figures.get("designs", {}).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
