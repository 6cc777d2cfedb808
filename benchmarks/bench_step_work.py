"""Per-step mask work of the loop-nest model (``accelsim.map.sparse.step_work``): HEAD vs now.

Collects, for every layer of a trace on each design, the calls ``simulate`` makes (one per
layer and sample: the design's mapping from :func:`accelsim.sim.loopnest.map_layer`, its mode,
padding and fan-out level), then times the committed implementation (``git show
HEAD:accelsim/map/sparse.py`` loaded as a temporary module) and the working tree's in the same
process, kernels compiled before timing, and checks every array is equal. Prints the seconds
and the ratio per design.

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


def baseline_module():
    """``accelsim/map/sparse.py`` as committed at HEAD, as a module of its own."""
    text = subprocess.run(["git", "show", "HEAD:accelsim/map/sparse.py"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="bench_step_work_"))
    path = folder / "sparse_head.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("sparse_head", path)
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


def timed(module, calls, repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` total CPU and wall seconds over ``calls`` (CPU time: the machine may
    be shared; each output is dropped at once, as ``simulate`` consumes it)."""
    cpu = wall = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for _, args, kwargs in calls:
            module.step_work(*args, **kwargs)
        cpu = min(cpu, time.process_time() - c)
        wall = min(wall, time.perf_counter() - t)
    return cpu, wall


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
    trace = open_trace(args.trace)
    total_old = total_new = 0.0
    for name in args.designs:
        hw = load_hw(ROOT / "hw_configs" / f"{name}.yaml")
        calls = collect(trace, hw, args.samples)
        for module in (head, sparse):              # compile every kernel before timing
            for _, a, kw in calls[:: max(1, args.samples)]:
                module.step_work(*a, **kw)
        old, old_wall = timed(head, calls, args.repeats)
        new, new_wall = timed(sparse, calls, args.repeats)
        bad = differing(head, calls)
        total_old += old
        total_new += new
        print(f"{name:<14} {len(calls):>4} calls  CPU s: HEAD {old:7.3f}  now {new:7.3f}  "
              f"ratio {old / new:5.2f}x  (wall {old_wall:.3f} / {new_wall:.3f})  "
              f"{'EQUAL' if not bad else 'DIFFER: ' + ', '.join(bad[:5])}")
        if bad:
            raise SystemExit(1)
    print(f"{'all':<14}             CPU s: HEAD {total_old:7.3f}  now {total_new:7.3f}  "
          f"ratio {total_old / total_new:5.2f}x")


if __name__ == "__main__":
    main()
