"""Per-step mask work of the loop-nest model and its fold schedule (``accelsim.map.sparse.step_work``
then ``accelsim.sim.kernels.schedule.fold_schedule``): HEAD vs now.

Collects, for every layer of a trace on each design, the calls ``simulate`` makes (one per
layer and sample: the design's mapping from :func:`accelsim.sim.loopnest.map_layer`, its mode,
padding and fan-out level, and the design's schedule arguments), then times the committed
implementations (``git show HEAD:accelsim/map/sparse.py`` and ``HEAD:.../schedule.py`` loaded as
temporary modules) and the working tree's in the same process, kernels compiled before timing,
and checks every work array and every statistics vector is equal (bit for bit). Prints the CPU
seconds and the ratio per design: step_work, fold_schedule and the two together.

Usage: python benchmarks/bench_step_work.py --trace /tmp/i14/r50.trace --samples 8
       [--designs sparten_like cnvlutin_like eyeriss_v1] [--repeats 3]
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelsim.hw import load_hw  # noqa: E402
from accelsim.map import sparse  # noqa: E402
from accelsim.map.nest import DIMS, LoopNest  # noqa: E402
from accelsim.sim import loopnest  # noqa: E402
from accelsim.sim.kernels import schedule  # noqa: E402


def baseline_module(path: str = "accelsim/map/sparse.py", name: str = "sparse_head"):
    """``path`` as committed at HEAD, as a module of its own (a fresh folder: Numba's cache
    never hands it another module's kernels)."""
    text = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="bench_step_work_"))
    path = folder / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def collect(trace, hw, samples: int) -> list[tuple]:
    """``(name, args)`` of every ``step_work`` call ``simulate`` makes on ``hw`` (batch 1)."""
    from accelsim.map.arch import arch_of

    fan = arch_of(hw).fanout_level
    mode = loopnest._mode(hw)
    calls = []
    for layer in trace:
        geo = layer.geometry
        wmasks = np.asarray(layer.weight_mask(samples), dtype=bool)
        acts = np.asarray(layer.act_mask(samples), dtype=bool)
        mapped = loopnest.map_layer(layer, hw, 1)
        nest = LoopNest.of_geometry(geo, batch=1)
        remainder = any(mapped.mapping.factor_product(d) != nest.bound(d) for d in DIMS)
        if mode == sparse.MODE_DENSE and not remainder:
            continue                               # closed form: no step_work call
        pads = (geo.pad_h, geo.pad_w)
        pad_issued = (mode in (sparse.MODE_ACT, sparse.MODE_BOTH)
                      and not hw.sparsity.skip_padding and (geo.pad_h > 0 or geo.pad_w > 0))
        for i in range(acts.shape[0]):
            wmask = wmasks[i] if geo.per_sample_weights else wmasks
            calls.append((layer.name, (nest, mapped.mapping, fan, acts[i:i + 1], wmask, pads,
                                       mode), {"pad_issued": pad_issued}))
    return calls


def schedule_args(hw) -> tuple:
    """``(rows, cols, lanes, overhead, sync, depth, gate, threshold)`` of ``fold_schedule`` as
    :func:`accelsim.sim.loopnest._sample` passes them (no systolic fill / drain)."""
    from accelsim.map.arch import arch_of

    arch, lp = arch_of(hw), hw.low_power
    return (arch.rows, arch.cols, arch.lanes, 0, schedule.SYNC_CODES[hw.pe_array.sync],
            max(1, int(hw.pe_array.work_queue_depth)), lp.power_gating,
            max(1, lp.min_idle_cycles, lp.wakeup_cycles))


def timed(module, calls, repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` total CPU and wall seconds of ``step_work`` over ``calls`` (CPU time:
    the machine may be shared; each output is dropped at once, as ``simulate`` consumes it)."""
    cpu = wall = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for _, args, kwargs in calls:
            module.step_work(*args, **kwargs)
        cpu = min(cpu, time.process_time() - c)
        wall = min(wall, time.perf_counter() - t)
    return cpu, wall


def timed_schedule(head_schedule, calls, sched: tuple, repeats: int) -> tuple[float, float, list]:
    """CPU seconds of HEAD's and the tree's ``fold_schedule`` over the work of ``calls`` (each
    call's work made once, as ``simulate`` hands it over, and scheduled ``repeats`` times by
    each module, alternating; the best of each kept) and the layers whose statistics vector
    differs (bit for bit)."""
    old = new = 0.0
    bad = []
    for name, args, kwargs in calls:
        work = schedule.as_work(sparse.step_work(*args, **kwargs))
        best_old = best_new = float("inf")
        for _ in range(repeats):
            c = time.process_time()
            x = head_schedule.fold_schedule(work, *sched)
            best_old = min(best_old, time.process_time() - c)
            c = time.process_time()
            y = schedule.fold_schedule(work, *sched)
            best_new = min(best_new, time.process_time() - c)
        old += best_old
        new += best_new
        if x.tobytes() != y.tobytes():
            bad.append(name)
    return old, new, bad


def differing(head, calls) -> list[str]:
    """Layers whose output (shape, dtype, values) differs between ``head`` and the tree."""
    bad = []
    for name, args, kwargs in calls:
        x, y = head.step_work(*args, **kwargs), sparse.step_work(*args, **kwargs)
        if x.shape != y.shape or x.dtype != y.dtype or not np.array_equal(x, y):
            bad.append(name)
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", required=True)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--designs", nargs="+",
                        default=["sparten_like", "cnvlutin_like", "eyeriss_v1"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from accelsim.trace import open_trace

    head = baseline_module()
    head_schedule = baseline_module("accelsim/sim/kernels/schedule.py", "schedule_head")
    trace = open_trace(args.trace)
    total_old = total_new = 0.0
    for name in args.designs:
        hw = load_hw(ROOT / "hw_configs" / f"{name}.yaml")
        calls = collect(trace, hw, args.samples)
        sched = schedule_args(hw)
        for module in (head, sparse):              # compile every kernel before timing
            for _, a, kw in calls[:: max(1, args.samples)]:
                module.step_work(*a, **kw)
        old, old_wall = timed(head, calls, args.repeats)
        new, new_wall = timed(sparse, calls, args.repeats)
        bad = differing(head, calls)
        sold, snew, bad_schedule = timed_schedule(head_schedule, calls, sched, args.repeats)
        bad += bad_schedule
        total_old += old + sold
        total_new += new + snew
        print(f"{name:<14} {len(calls):>4} calls  CPU s  step_work: HEAD {old:7.3f} now {new:7.3f} "
              f"({old / new:4.2f}x, wall {old_wall:.3f} / {new_wall:.3f})  fold_schedule: HEAD "
              f"{sold:6.3f} now {snew:6.3f} ({sold / snew:4.2f}x)  both: {(old + sold) / (new + snew):4.2f}x  "
              f"{'EQUAL' if not bad else 'DIFFER: ' + ', '.join(bad[:5])}")
        if bad:
            raise SystemExit(1)
    print(f"{'all':<14}             CPU s, step_work + fold_schedule: HEAD {total_old:7.3f}  "
          f"now {total_new:7.3f}  ratio {total_old / total_new:5.2f}x")


if __name__ == "__main__":
    main()
