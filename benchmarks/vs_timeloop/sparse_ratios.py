"""Sparse/dense ratios: accelsim on real (uniform random) masks against Sparseloop's statistics.

Usage: python benchmarks/vs_timeloop/sparse_ratios.py [--seeds N]

For each Sparseloop exercise of tests/fixtures/timeloop/ whose sparse action accelsim can express
at the MACs (skip zero activations / weights / both, or gate), the same problem and mapping are
given masks drawn with exactly the exercise's density (``fixed_structured``: round(d * size)
non-zeros at uniformly random positions). accelsim counts every PE's work per step from those masks
(accelsim.map.sparse) and steps the array in lock-step (a step lasts as long as its busiest PE).
Reported: actual/algorithmic computes and sparse/dense cycles, Sparseloop's figure beside accelsim's
mean (and spread) over the seeds.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from accelsim.map.mapping import LevelLoops, Loop, Mapping  # noqa: E402
from accelsim.map.nest import DIMS, LoopNest  # noqa: E402
from accelsim.map.sparse import MODE_ACT, MODE_BOTH, MODE_WEIGHT, step_work  # noqa: E402
from timeloop_fixture import load  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    dims: dict            # Timeloop dim -> accelsim dim
    act: str              # the data space that plays the activations
    weight: str           # the data space that plays the weights
    mode: int             # what the MACs skip (cycles) or gate (energy only)
    skips: bool           # True: skipped slots cost no cycle; False: gated (cycle kept)


CASES = [
    Case("sparseloop-01.2.2-SUDU-dot-product", {"K": "C", "M": "K"}, "A", "B", MODE_ACT, False),
    Case("sparseloop-01.2.3-SCDU-dot-product", {"K": "C", "M": "K"}, "A", "B", MODE_ACT, True),
    Case("sparseloop-02.2.1-spMspM", {"M": "P", "K": "C", "N": "K"}, "A", "B", MODE_BOTH, True),
    Case("sparseloop-02.2.2-spMspM-tiled", {"M": "P", "K": "C", "N": "K"}, "A", "B", MODE_BOTH, True),
    Case("sparseloop-03.2.1-conv1d", {"S": "S", "Q": "Q", "M": "K"}, "Inputs", "Weights", MODE_WEIGHT, True),
    Case("sparseloop-03.2.2-conv1d_oc", {"S": "S", "Q": "Q", "M": "K"}, "Inputs", "Weights", MODE_WEIGHT, True),
    Case("sparseloop-03.2.3-conv1d_oc-spatial", {"S": "S", "Q": "Q", "M": "K"}, "Inputs", "Weights",
         MODE_WEIGHT, True),
    Case("sparseloop-04.2.1-eyeriss-like-gating", {"M": "K", "C": "C", "R": "R", "S": "S", "N": "N",
                                                   "P": "P", "Q": "Q"}, "Inputs", "Weights", MODE_ACT, False),
]


def _exact_mask(rng, shape, density):
    size = int(np.prod(shape))
    mask = np.zeros(size, dtype=bool)
    mask[rng.choice(size, int(round(density * size)), replace=False)] = True
    return mask.reshape(shape)


def run_case(case: Case, seeds: int) -> dict:
    fx = load(case.name)
    bounds = {case.dims[d]: b for d, b in fx["problem"]["bounds"].items()}
    nest = LoopNest(tuple(bounds.get(d, 1) for d in DIMS))
    levels, fan = [], 0
    for i, lv in enumerate(fx["mapping"]["levels_outer_to_inner"]):
        temporal = tuple(Loop(case.dims[d], f) for d, f in lv["temporal_loops_outer_to_inner"])
        spatial = tuple(Loop(case.dims[d], f, True, a) for d, f, a in lv["spatial_loops"])
        if spatial:
            fan = i
        levels.append(LevelLoops(lv["level"], temporal, spatial))
    mapping = Mapping(tuple(levels))
    mapping.check(nest)
    densities = fx["problem"].get("densities") or {}
    d_act = densities.get(case.act, {}).get("density", 1.0)
    d_w = densities.get(case.weight, {}).get("density", 1.0)
    n, g, k, c, p, q, r, s = nest.bounds
    act_shape = (n, g * c, p + r - 1, q + s - 1)
    w_shape = (g * k, c, r, s)
    computes, cycles = [], []
    dense = None
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        act = _exact_mask(rng, act_shape, d_act)
        w = _exact_mask(rng, w_shape, d_w)
        work = step_work(nest, mapping, fan, act, w, (0, 0), case.mode)
        dense = nest.macs / work[0].size          # every PE busy with its whole block each step
        computes.append(work.sum() / nest.macs)
        cycles.append(float(work.max(axis=(1, 2)).sum()) / dense if case.skips else 1.0)
    comp = [lv for lv in fx["reference"]["levels_outer_to_inner"] if lv["kind"] == "compute"][0]
    xml = comp["reference"]["xml"]
    sl_computes = xml["random_computes"] / xml["algorithmic_computes"]
    sl_dense_cycles = xml["algorithmic_computes"] / max(xml.get("utilized_instances", 1), 1)
    sl_cycles = fx["reference"]["cycles"] / sl_dense_cycles
    return {"name": case.name, "skips": case.skips, "macs": nest.macs, "pes": int(work[0].size),
            "sl_computes": sl_computes, "as_computes": float(np.mean(computes)),
            "as_computes_sd": float(np.std(computes)), "sl_cycles": sl_cycles,
            "as_cycles": float(np.mean(cycles)), "as_cycles_sd": float(np.std(cycles))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    rows = [run_case(c, args.seeds if "04.2" not in c.name else 1) for c in CASES]
    print("| exercise | MACs | PEs | actual/algorithmic computes: Sparseloop | accelsim (sd) "
          "| sparse/dense cycles: Sparseloop | accelsim (sd) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cyc = "gated: 1 (cycle kept)" if not r["skips"] else f"{r['as_cycles']:.3f} ({r['as_cycles_sd']:.3f})"
        print(f"| {r['name']} | {r['macs']:,} | {r['pes']} | {r['sl_computes']:.3f} | "
              f"{r['as_computes']:.3f} ({r['as_computes_sd']:.3f}) | {r['sl_cycles']:.3f} | {cyc} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
