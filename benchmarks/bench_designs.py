"""Whole ``accelsim simulate`` CPU time of every shipped design on one trace (issue 14).

Each design runs as its own process (start-up included; CPU from ``wait4``) after an untimed
warm-up run (kernels compiled or loaded). With ``--before TREE`` (e.g. a ``git archive`` of an
older commit) the same runs use that tree too, in the same invocation, and the per-layer CSVs
of the two trees are compared (rtol 1e-12).

    python benchmarks/bench_designs.py --trace resnet50_64.trace [--samples 64] [--before /tmp/before]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_scale import simulate_process  # noqa: E402
DESIGNS = ("sparten_like", "cnvlutin_like", "edge_lowpower", "dense_ws_tpu_like",
           "edge_npu_lpddr", "eyeriss_v1")


def run(tree: Path, design: str, trace: str, samples: int, out: Path) -> float:
    """CPU seconds of one whole simulate process of ``tree``'s accelsim."""
    return simulate_process(["--trace", trace, "--hw", str(REPO / "hw_configs" / f"{design}.yaml"),
                             "--samples", str(samples), "-o", str(out)], tree)["cpu_s"]


def same_tables(a: Path, b: Path) -> list[str]:
    """Numeric columns of two saved tables that differ beyond rtol 1e-12."""
    import numpy as np
    import pandas as pd

    x, y = pd.read_csv(a), pd.read_csv(b)
    return [c for c in x.columns if x[c].dtype.kind == "f"
            and (c not in y or not np.allclose(x[c], y[c], rtol=1e-12, atol=0.0))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", required=True)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--before", type=Path, default=None, help="an older tree to compare")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    trees = [("after", REPO)] + ([("before", args.before.resolve())] if args.before else [])
    figures: dict = {"trace": args.trace, "samples": args.samples,
                     "load_at_start": os.getloadavg()[0], "designs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for design in DESIGNS:
            row = {}
            for name, tree in trees:
                run(tree, design, args.trace, 1, folder / "warm.csv")   # not timed
                row[f"{name}_cpu_s"] = round(run(tree, design, args.trace, args.samples,
                                                 folder / f"{name}_{design}.csv"), 2)
            if args.before:
                row["differing_columns"] = same_tables(folder / f"after_{design}.csv",
                                                       folder / f"before_{design}.csv")
            figures["designs"][design] = row
            if not args.json:
                print(design, row, flush=True)
    if args.json:
        print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
