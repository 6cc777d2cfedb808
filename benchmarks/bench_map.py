"""Mapper speed: time per layer, all ResNet-50 layers, and sweep points/s before/after the mapper.

Usage: python benchmarks/bench_map.py [--search-size N]

Reports (same run, so ratios hold on a noisy machine):
- mapper time per layer shape and for every ResNet-50 (ImageNet) layer on eyeriss_v1.yaml,
  cold cache and warm cache (a sweep maps each shape once per design);
- points per second of the shipped sweep spec's designs on the LeNet-5 dual trace with the
  systolic model (no mapper) and with the loop-nest model (mapper + masks), one worker.
"""
from __future__ import annotations

import argparse
import statistics
import time

from accelsim.hw import load_hw
from accelsim.map.nest import LoopNest
from accelsim.sim import loopnest
from accelsim.trace import open_trace
from accelsim.trace.statistical import statistical_from_model


def resnet50_nests() -> list[LoopNest]:
    trace = statistical_from_model("resnet50", (3, 224, 224), 0.5, 1.0, seed=0)
    return [LoopNest.of_geometry(layer.geometry) for layer in trace.layers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-size", type=int, default=None)
    args = parser.parse_args()
    hw = load_hw("hw_configs/eyeriss_v1.yaml")
    if args.search_size:
        import dataclasses
        hw = dataclasses.replace(hw, mapping=dataclasses.replace(hw.mapping, search_size=args.search_size))
    nests = resnet50_nests()
    shapes = {LoopNest(n.bounds, n.stride_h, n.stride_w, n.dil_h, n.dil_w) for n in nests}
    loopnest._MAPPINGS.clear()
    per_shape = []
    t0 = time.perf_counter()
    for nest in shapes:
        t = time.perf_counter()
        loopnest._mapped(nest, hw, hw.mapping.objective)
        per_shape.append(time.perf_counter() - t)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    for n in nests:
        loopnest._mapped(LoopNest(n.bounds, n.stride_h, n.stride_w, n.dil_h, n.dil_w), hw,
                         hw.mapping.objective)
    warm = time.perf_counter() - t0
    print(f"ResNet-50 on {hw.name}: {len(nests)} layers, {len(shapes)} distinct shapes")
    print(f"  mapper per shape: median {statistics.median(per_shape) * 1e3:.0f} ms, "
          f"max {max(per_shape) * 1e3:.0f} ms")
    print(f"  all layers, cold cache: {cold:.2f} s; warm cache: {warm * 1e3:.1f} ms")

    trace = open_trace("traces/lenet5_digits_dual.trace")
    designs = [("systolic (no mapper)", load_hw("hw_configs/eyeriss_like.yaml")), ("loop-nest", hw)]
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
