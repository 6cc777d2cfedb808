"""The ported SparTen-like design on the mapped model against its flat form (issue 23 item 7).

Whole ``accelsim simulate`` processes (start-up included; CPU from ``wait4``, peak RSS of the
process alone), each design after an untimed one-sample warm-up (kernels compiled or loaded):

- ``flat``: ``tests/fixtures/systolic_designs/sparten_like.yaml`` on the flat systolic engine,
  run from the last commit that had it (``--flat-rev``, default ``cdbb28f``; extracted with
  ``git archive`` into a temporary tree), since flat files now load ported to the one model;
- ``flat file ported``: the same file on this tree (the one model's systolic mode);
- ``mapped cold``: ``hw_configs/sparten_like.yaml`` with an empty mapping store (every shape
  searched);
- ``mapped warm``: the same, the store filled by the cold run (a repeated run, or a sweep's
  later design points);
- ``mapped per-bit``: warm, with ``dram.access_stream`` off (DRAM priced per bit like the flat
  form, no access stream through the DRAM model);
- memory: the warm run at a quarter of the samples against the full count.

    python benchmarks/bench_one_model.py --trace r50.trace [--samples 64] [--flat-rev REV]
        [--also-rev REV ...] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_scale import simulate_process  # noqa: E402

FLAT = REPO / "tests" / "fixtures" / "systolic_designs" / "sparten_like.yaml"
MAPPED = REPO / "hw_configs" / "sparten_like.yaml"


def run(design: Path, trace: str, samples: int, out: Path, cache: Path | None,
        tree: Path = REPO) -> dict:
    """One whole simulate process of ``tree``'s accelsim; ``cache``: the mapping store's folder
    (None: store off)."""
    env = ({"ACCELSIM_MAPPING_CACHE": "0"} if cache is None
           else {"ACCELSIM_MAPPING_CACHE": None, "ACCELSIM_CACHE_DIR": cache})
    return simulate_process(["--trace", trace, "--hw", str(design), "--samples", str(samples),
                             "-o", str(out)], tree=tree, env=env)


def extract(rev: str, folder: Path) -> Path:
    """The repository at ``rev`` (``git archive``) in ``folder``."""
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def flat_design(tree: Path) -> Path:
    """The flat SparTen-like file of an extracted tree: the fixture, or (before the shipped
    designs moved to the loop nest) ``hw_configs/sparten_like.yaml`` without a hierarchy."""
    fixture = tree / FLAT.relative_to(REPO)
    if fixture.exists():
        return fixture
    shipped = tree / MAPPED.relative_to(REPO)
    if "memory_hierarchy" in yaml.safe_load(shipped.read_text()):
        raise SystemExit(f"{tree}: no flat SparTen-like design")
    return shipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", required=True)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--flat-rev", default="cdbb28f",
                        help="a commit with the flat engine (the baseline)")
    parser.add_argument("--also-rev", action="append", default=[],
                        help="another flat-engine commit to time as well (e.g. fea7985, when "
                             "issue 23 was filed); ratios stay against --flat-rev")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: dict = {"trace": args.trace, "samples": args.samples,
                     "load_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        per_bit = folder / "sparten_per_bit.yaml"
        raw = yaml.safe_load(MAPPED.read_text())
        raw["dram"]["access_stream"] = False
        raw["dram"].pop("layout", None)
        per_bit.write_text(yaml.safe_dump(raw))
        store = folder / "store"
        old = extract(args.flat_rev, folder / "flat_tree")
        figures["flat_rev"] = args.flat_rev
        run(flat_design(old), args.trace, 1, folder / "warm.csv", None, old)       # not timed
        run(MAPPED, args.trace, 1, folder / "warm.csv", None)          # not timed
        also = {}
        for rev in args.also_rev:
            tree = extract(rev, folder / f"flat_{rev}")
            design = flat_design(tree)
            run(design, args.trace, 1, folder / "warm.csv", None, tree)      # not timed
            also[f"flat@{rev}"] = run(design, args.trace, args.samples, folder / f"{rev}.csv",
                                      None, tree)
        runs = {
            "flat": run(flat_design(old), args.trace, args.samples, folder / "flat.csv", None,
                        old),
            **also,
            "flat_file_ported": run(FLAT, args.trace, args.samples, folder / "fp.csv", store),
            "mapped_cold": run(MAPPED, args.trace, args.samples, folder / "cold.csv", store),
            "mapped_warm": run(MAPPED, args.trace, args.samples, folder / "warm64.csv", store),
            "mapped_per_bit_warm": run(per_bit, args.trace, args.samples, folder / "pb.csv", store),
            "mapped_warm_quarter": run(MAPPED, args.trace, max(1, args.samples // 4),
                                       folder / "q.csv", store),
        }
    base = runs["flat"]["cpu_s"]
    for name, r in runs.items():
        r["cpu_ratio_to_flat"] = r["cpu_s"] / base
    figures["runs"] = {k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in runs.items()}
    figures["rss_ratio_full_to_quarter"] = round(runs["mapped_warm"]["maxrss_mb"]
                                                 / runs["mapped_warm_quarter"]["maxrss_mb"], 3)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{args.trace}, {args.samples} samples (load {figures['load_at_start']:.2f} at start)")
    for name, r in runs.items():
        print(f"  {name:22s} {r['cpu_s']:7.2f} CPU s  {r['maxrss_mb']:7.1f} MB  "
              f"x{r['cpu_ratio_to_flat']:.2f} of flat")
    print(f"  peak RSS, full / quarter samples (mapped warm): x{figures['rss_ratio_full_to_quarter']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
