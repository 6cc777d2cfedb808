"""Mapping store (issue 23 item 7): cold vs warm whole ``accelsim simulate`` processes.

Three processes of ``accelsim simulate`` on the same trace and design (start-up included; CPU
seconds from ``wait4``, :func:`bench_scale.simulate_process`):

- ``off``: the store disabled (``ACCELSIM_MAPPING_CACHE=0``): every search runs;
- ``cold``: an empty store folder (every search runs and is written);
- ``warm``: the same folder again (every mapping read, validated and recounted).

The result rows of the three runs must be identical (checked: the CSVs compared byte for
byte). Default: the 64-sample ResNet-50 trace ``/tmp/i14/r50.trace`` on ``sparten_like``.

    python benchmarks/bench_map_store.py [--trace T] [--hw H] [--samples 64] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_scale import simulate_process  # noqa: E402


def run(trace: Path, hw: Path, samples: int) -> dict:
    """The three runs' figures, the entries the cold run stored and whether the rows match."""
    out: dict = {"trace": str(trace), "hw": hw.name, "samples": samples}
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / "cache"
        csvs = {}
        for label in ("off", "cold", "warm"):
            env = {"ACCELSIM_CACHE_DIR": store,
                   "ACCELSIM_MAPPING_CACHE": "0" if label == "off" else "1"}
            csv = Path(scratch) / f"{label}.csv"
            figures = simulate_process(["--trace", str(trace), "--hw", str(hw),
                                        "--samples", str(samples), "-o", str(csv)], env=env)
            out[label] = {k: round(v, 2) for k, v in figures.items()}
            csvs[label] = csv.read_bytes()
            if label == "cold":
                out["entries"] = len(list((store / "mappings").glob("*/*.json")))
        out["rows_identical"] = csvs["off"] == csvs["cold"] == csvs["warm"]
    out["cold_minus_warm_cpu_s"] = round(out["cold"]["cpu_s"] - out["warm"]["cpu_s"], 2)
    out["store_overhead_cold_cpu_s"] = round(out["cold"]["cpu_s"] - out["off"]["cpu_s"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=Path("/tmp/i14/r50.trace"))
    parser.add_argument("--hw", type=Path, default=REPO / "hw_configs" / "sparten_like.yaml")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.trace.is_file():
        raise SystemExit(f"{args.trace}: no such trace (capture a ResNet-50 trace, or --trace)")
    result = run(args.trace, args.hw, args.samples)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.hw.name}, {args.trace.name}, {args.samples} samples "
          f"({result['entries']} mappings stored)")
    for label in ("off", "cold", "warm"):
        f = result[label]
        print(f"  {label:5s} CPU {f['cpu_s']:7.2f} s  wall {f['wall_s']:7.2f} s  "
              f"RSS {f['maxrss_mb']:.0f} MB")
    print(f"  warm saves {result['cold_minus_warm_cpu_s']:.2f} CPU s; rows identical: "
          f"{result['rows_identical']}")


if __name__ == "__main__":
    main()
