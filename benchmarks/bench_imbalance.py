"""Load imbalance in the mapper's ranking (issue 22): is a larger array slower on sparse traces?

The issue found a 16x16 array slower than 12x14 on ResNet-18 layers with ideal memory (energy
objective): the mapper ranked by the mean work per step, so it could pick mappings with many PEs
per sync group and small per-PE blocks, which wait for the busiest PE every step. This runs the
first ``--layers`` conv layers of a statistical ResNet-18 (ImageNet; activations ``--act``,
weights ``--weight`` dense) on a design at 12x14 and 16x16 (ideal DRAM), mapped with the
imbalance-aware ranking (now) and with the mean-work ranking (before, by replacing the compute
term), and prints the simulated cycles (real masks, ``--samples`` per layer).

Usage: python benchmarks/bench_imbalance.py [--design hw_configs/sparten_like.yaml] [--layers 8]
       [--objective energy|latency|edp] [--set FIELD=VALUE ...]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from accelsim.hw import load_hw
from accelsim.map import cost
from accelsim.sim import loopnest
from accelsim.sim.engine import simulate_layer
from accelsim.trace.statistical import statistical_from_model

ROOT = Path(__file__).resolve().parents[1]


def run(design: str, shape: tuple, layers, samples: int, objective: str,
        overrides: dict) -> tuple[float, float]:
    """(cycles, energy) summed over ``layers`` on ``design`` at ``shape`` (rows, cols)."""
    hw = load_hw(ROOT / design, dict({"pe_array.rows": shape[0], "pe_array.cols": shape[1],
                                      "dram.ideal": True, "mapping.objective": objective},
                                     **overrides))
    loopnest._MAPPINGS.clear()
    loopnest._SEARCHES.clear()
    rows = [simulate_layer(layer, hw, samples=samples) for layer in layers]
    return sum(r["cycles"] for r in rows), sum(r["energy_pj"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", default="hw_configs/sparten_like.yaml")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--act", type=float, default=0.5)
    parser.add_argument("--weight", type=float, default=0.5)
    parser.add_argument("--objective", default="energy")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a design field (YAML value), e.g. "
                             "sparsity.skip_zero_activations=true")
    args = parser.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    trace = statistical_from_model("resnet18", (3, 224, 224), args.act, args.weight, seed=0)
    layers = [l for l in trace.layer_traces() if l.geometry.kind == "conv2d"][:args.layers]
    imbalance = cost.imbalanced_compute

    def mean_work(counts, arch, model, mapping) -> float:
        return float(counts.steps) * model.issue
    print(f"{args.design} {overrides or ''}, {len(layers)} ResNet-18 conv layers, act "
          f"{args.act}, weight {args.weight}, {args.objective} objective, ideal DRAM, "
          f"{args.samples} samples")
    for label in ("mean-work ranking (before)", "imbalance-aware ranking (now)"):
        cost.imbalanced_compute = mean_work if label.startswith("mean") else imbalance
        t = time.perf_counter()
        small = run(args.design, (12, 14), layers, args.samples, args.objective, overrides)
        large = run(args.design, (16, 16), layers, args.samples, args.objective, overrides)
        print(f"  {label}: cycles 12x14 {small[0]:,.0f}, 16x16 {large[0]:,.0f} "
              f"({large[0] / small[0] - 1:+.1%}); energy 16x16/12x14 {large[1] / small[1]:.3f} "
              f"[{time.perf_counter() - t:.0f} s]", flush=True)
    cost.imbalanced_compute = imbalance


if __name__ == "__main__":
    main()
