"""Mapper speed and quality: time per ResNet-50 shape and the cost of its picks, against the
mapper before the rework (issue 22), in the same run; sweep points/s.

Usage: python benchmarks/bench_map.py [--search-size N] [--no-sweep] [--no-before]

Reports (same run, so ratios hold on a noisy machine):
- mapper time per distinct ResNet-50 (ImageNet) layer shape on eyeriss_v1.yaml, cold cache
  (median and max; the target is a median under 0.5 s), and all layers with a warm cache;
- the same shapes mapped by the mapper before the rework (``git show BEFORE:accelsim/map/
  mapper.py``, dense ranking, divisor factors only): its time, and per shape the ratio of the
  expected sparse energy of the new pick to the old one's under the same model (the trace's
  densities: inputs 0.5, weights 1.0);
- points per second of the LeNet-5 dual trace with the systolic model (no mapper) and with the
  loop-nest model (mapper + masks), one worker.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import types
from pathlib import Path

from accelsim.hw import load_hw
from accelsim.map.nest import LoopNest
from accelsim.sim import loopnest
from accelsim.sim.design import resolve
from accelsim.trace.statistical import statistical_from_model

ROOT = Path(__file__).resolve().parents[1]
#: the last commit with the mapper before issue 22's rework
BEFORE = "62dfa96"


def resnet50_layers():
    return statistical_from_model("resnet50", (3, 224, 224), 0.5, 1.0, seed=0).layer_traces()


def before_mapper():
    """The mapper module as it was at ``BEFORE`` (None when git cannot show it)."""
    try:
        source = subprocess.run(["git", "show", f"{BEFORE}:accelsim/map/mapper.py"], cwd=ROOT,
                                check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    import sys

    module = types.ModuleType("mapper_before")
    sys.modules["mapper_before"] = module      # dataclasses look their module up
    exec(compile(source, "mapper_before.py", "exec"), module.__dict__)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-size", type=int, default=None)
    parser.add_argument("--no-sweep", action="store_true", help="skip the points/s figures")
    parser.add_argument("--no-before", action="store_true", help="skip the old mapper")
    args = parser.parse_args()
    import dataclasses

    from accelsim.map.cost import sparse_cost, sparse_model

    hw = load_hw(ROOT / "hw_configs/eyeriss_v1.yaml")
    if args.search_size:
        hw = dataclasses.replace(hw, mapping=dataclasses.replace(hw.mapping, search_size=args.search_size))
    layers = resnet50_layers()
    nests = [LoopNest.of_geometry(layer.geometry) for layer in layers]
    shapes: dict = {}
    for layer, n in zip(layers, nests):
        shapes.setdefault(LoopNest(n.bounds, n.stride_h, n.stride_w, n.dil_h, n.dil_w), layer)
    loopnest._MAPPINGS.clear()
    per_shape, picks = [], {}
    t0 = time.perf_counter()
    for nest, layer in shapes.items():
        t = time.perf_counter()
        picks[nest] = loopnest._mapped(nest, hw, hw.mapping.objective, 0.0,
                                       loopnest.layer_densities(layer))
        per_shape.append(time.perf_counter() - t)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    for layer, n in zip(layers, nests):
        loopnest._mapped(LoopNest(n.bounds, n.stride_h, n.stride_w, n.dil_h, n.dil_w), hw,
                         hw.mapping.objective, 0.0, loopnest.layer_densities(layer))
    warm = time.perf_counter() - t0
    print(f"ResNet-50 on {hw.name} (search_size {hw.mapping.search_size}): {len(nests)} layers, "
          f"{len(shapes)} distinct shapes")
    print(f"  mapper per shape: median {statistics.median(per_shape) * 1e3:.0f} ms, "
          f"max {max(per_shape) * 1e3:.0f} ms (target: median < 500 ms)")
    print(f"  all layers, cold cache: {cold:.2f} s; warm cache: {warm * 1e3:.1f} ms")

    old = None if args.no_before else before_mapper()
    if old is not None:
        arch = resolve(hw).arch
        times, ratios = [], []
        for nest, layer in shapes.items():
            t = time.perf_counter()
            found = old.search(nest, arch, hw.pe_array.dataflow, hw.mapping.objective,
                               hw.mapping.search_size)
            times.append(time.perf_counter() - t)
            model = sparse_model(hw, arch, nest, loopnest.layer_densities(layer).rounded())
            before = sparse_cost(found.counts, arch, model, found.mapping).energy_pj
            after = sparse_cost(picks[nest].counts, arch, model, picks[nest].mapping).energy_pj
            ratios.append(after / before)
        print(f"  mapper before the rework ({BEFORE}): median {statistics.median(times) * 1e3:.0f} ms, "
              f"max {max(times) * 1e3:.0f} ms per shape")
        print(f"  expected sparse energy, new pick / old pick per shape: median "
              f"{statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}; "
              f"total {sum(r for r in ratios) / len(ratios):.3f} (mean of ratios)")
    if args.no_sweep:
        return
    trace_path = ROOT / "traces/lenet5_digits_dual.trace"
    from accelsim.trace import open_trace

    trace = open_trace(trace_path)
    designs = [("systolic (no mapper)", load_hw(ROOT / "tests/fixtures/systolic_designs/eyeriss_like.yaml")), ("loop-nest", hw)]
    from accelsim.sim.simulate import simulate
    for label, design in designs:
        simulate(trace, design, samples=4)         # compile kernels, fill the mapping cache once
        reps = 3
        t = time.perf_counter()
        for _ in range(reps):
            simulate(trace, design, samples=4)
        rate = reps / (time.perf_counter() - t)
        print(f"  LeNet-5 dual, 4 samples, {label:<22}: {rate:.2f} points/s")


if __name__ == "__main__":
    main()
