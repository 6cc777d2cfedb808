"""Check ``formulas.py`` against recorded SCALE-Sim runs: every cycle count and SRAM count must match.

Usage: python benchmarks/vs_scalesim/verify_formulas.py [FIXTURE.json ...]
(default: every ``tests/fixtures/scalesim/*.json``). Prints one line per layer and exits 1 on any
mismatch. Standard library only.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from formulas import ScaleSimLayer, scalesim_cycles, sparse_storage  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "scalesim"


def layer_from_record(rec: dict) -> ScaleSimLayer:
    """The topology row a fixture layer record was run with."""
    n, m = (int(x) for x in rec["sparsity_ratio"].split(":"))
    return ScaleSimLayer(rec["name"], rec["ifmap_h"], rec["ifmap_w"], rec["filt_h"],
                         rec["filt_w"], rec["channels"], rec["num_filt"], rec["stride"], (n, m))


def compare(doc: dict, rec: dict) -> list[str]:
    """Mismatches (field: recorded vs formula) between one recorded layer and the formulas."""
    layer = layer_from_record(rec)
    got = scalesim_cycles(layer, doc["rows"], doc["cols"], doc["dataflow"],
                          sparsity_support=doc["sparsity_support"])
    exact = {
        "total_cycles": (rec["total_cycles"], got.total_cycles),
        "compute_cycles": (rec["compute_cycles"], got.total_cycles - got.stall_cycles),
        "stall_cycles": (rec["stall_cycles"], got.stall_cycles),
        "macs": (rec["macs"], layer.macs),
        "ofmap_h": (rec["ofmap_h"], layer.ofmap_h),
        "ofmap_w": (rec["ofmap_w"], layer.ofmap_w),
        "mapping.sr": (rec["mapping"]["sr"], got.sr),
        "mapping.sc": (rec["mapping"]["sc"], got.sc),
        "mapping.t": (rec["mapping"]["t"], got.t),
        "mapping.row_folds": (rec["mapping"]["row_folds"], got.row_folds),
        "mapping.col_folds": (rec["mapping"]["col_folds"], got.col_folds),
        "mapping.demand_lines": (rec["mapping"]["demand_lines"], got.schedule_cycles),
        "sram.filter_reads": (rec["sram"]["filter_reads"], got.filter_sram_reads),
        "sram.ofmap_writes": (rec["sram"]["ofmap_writes"], got.ofmap_sram_writes),
    }
    close = {
        "sram.ifmap_reads": (rec["sram"]["ifmap_reads"], got.ifmap_sram_reads),
        "overall_util_pct": (rec["overall_util_pct"], got.overall_util),
        "compute_util_pct": (rec["compute_util_pct"], got.compute_util),
    }
    # SCALE-Sim's ws mapping efficiency counts padding (-1) slots of the filter fold; with sparse
    # N:M filters it is the same number, so it is checked in every mode.
    close["mapping_efficiency_pct"] = (rec["mapping_efficiency_pct"], got.mapping_efficiency)
    if rec["sparse"] is not None:
        storage = sparse_storage(layer, rec["sparse"]["representation"])
        for key, value in storage.items():
            close[f"sparse.{key}"] = (rec["sparse"][key], value)
    bad = [f"{k}: scalesim {a} vs formula {b}" for k, (a, b) in exact.items() if a != b]
    bad += [f"{k}: scalesim {a} vs formula {b}" for k, (a, b) in close.items()
            if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)]
    return bad


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(FIXTURES.glob("*.json"))
    if not paths:
        print(f"error: no fixtures in {FIXTURES}", file=sys.stderr)
        return 2
    n_layers = n_bad = 0
    for path in paths:
        doc = json.loads(path.read_text())
        for rec in doc["layers"]:
            n_layers += 1
            bad = compare(doc, rec)
            status = "ok " if not bad else "BAD"
            print(f"{status} {path.name:42s} {rec['name']:24s} total_cycles={rec['total_cycles']}")
            for line in bad:
                print(f"      {line}")
            n_bad += bool(bad)
    print(f"{n_layers - n_bad}/{n_layers} layers match SCALE-Sim exactly")
    return 1 if n_bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
