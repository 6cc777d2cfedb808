"""Dense compute cycles and wall time, accelsim against SCALE-Sim 3.0.0, on the same layer tables.

For every network (a SCALE-Sim topology CSV), array size and dataflow (os, ws, is), this runs
SCALE-Sim (``run_scalesim.py`` in its own venv, niced) and accelsim (statistical trace at density
1.0, every sparsity feature off, dense storage, ideal memory, unbounded buffer port) and prints
per layer and in total: SCALE-Sim's ``Total Cycles``, accelsim's ``compute_cycles``, their
difference, the relative difference after SCALE-Sim's stated off-by-one (it reports the 0-based
index of the last cycle, accelsim the schedule length: ``accelsim = SCALE-Sim + 1`` per layer),
and the wall time of both with their ratio.

    python benchmarks/vs_scalesim/compare.py --networks lenet5             # all live (~20 s)
    python benchmarks/vs_scalesim/compare.py --networks resnet18 --arrays 32 \\
        --scalesim-from-fixtures          # reuse recorded runs, run the missing layers live
    python benchmarks/vs_scalesim/compare.py --scalesim-from-fixtures --no-live \\
        --json out.json --markdown out.md  # only recorded SCALE-Sim figures + formulas.py

Every SCALE-Sim figure is tagged ``live`` (ran now), ``recorded`` (a JSON from an earlier run:
``tests/fixtures/scalesim/`` or ``benchmarks/vs_scalesim/results/``) or ``formula``
(``formulas.py``, not SCALE-Sim: only with ``--no-live``). Live runs are saved to
``--save-live`` (default ``benchmarks/vs_scalesim/results/``) so a later
``--scalesim-from-fixtures`` reuses them. Speed ratios use only layers SCALE-Sim really ran, with
accelsim timed on the same layers. Exit status: 0 if every layer is within ``--tolerance``, 1 if
not, 2 on a usage or SCALE-Sim error.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import vs_accelsim  # noqa: E402
import vs_report  # noqa: E402
import vs_scalesim_runs as ss_runs  # noqa: E402
from vs_scalesim_runs import Case, CompareError  # noqa: E402

NETWORKS = ("lenet5", "resnet18", "alexnet")
ARRAYS = ("8", "16", "32")
DATAFLOWS = ("os", "ws", "is")


@dataclasses.dataclass
class CaseResult:
    """One case compared: per-layer rows and the totals."""

    case: Case
    layers: list[dict]
    totals: dict


def compare_case(case: Case, topology: vs_accelsim.TopologyLayers, scalesim: ss_runs.ScaleSimRun,
                 repeats: int = 3, tolerance: float = 0.01) -> CaseResult:
    """Simulate ``case`` in accelsim and put it next to SCALE-Sim's figures."""
    hw = vs_accelsim.dense_hw(case.rows, case.cols, case.dataflow)
    acc = vs_accelsim.run_accelsim(topology.layers, hw, repeats)
    timed = scalesim.timed
    if timed and len(timed) != len(topology.layers):
        subset = [layer for layer in topology.layers if layer.name in timed]
        acc_timed = vs_accelsim.run_accelsim(subset, hw, repeats)
    else:
        acc_timed = acc if timed else None

    rows = []
    for ours in acc.layers:
        theirs = scalesim.layers[ours["name"]]
        schedule = theirs.total_cycles + vs_accelsim.SCALESIM_OFFSET
        rel = (ours["compute_cycles"] - schedule) / schedule
        rows.append({
            "name": ours["name"],
            "scalesim_total_cycles": theirs.total_cycles,
            "scalesim_stall_cycles": theirs.stall_cycles,
            "accelsim_cycles": ours["compute_cycles"],
            "diff_cycles": ours["compute_cycles"] - theirs.total_cycles,
            "rel_diff": rel,
            "rel_diff_raw": (ours["compute_cycles"] - theirs.total_cycles) / theirs.total_cycles,
            "within_tolerance": abs(rel) <= tolerance,
            "folds": ours["folds"],
            "macs": ours["macs_dense"],
            "source": theirs.source,
            "origin": theirs.origin,
            "scalesim_wall_s": theirs.wall_s,
            "note": topology.notes.get(ours["name"], ""),
        })
    ss_total = sum(r["scalesim_total_cycles"] for r in rows)
    acc_total = acc.total_cycles
    schedule_total = ss_total + vs_accelsim.SCALESIM_OFFSET * len(rows)
    totals = {
        "layers": len(rows),
        "scalesim_total_cycles": ss_total,
        "accelsim_cycles": acc_total,
        "diff_cycles": acc_total - ss_total,
        "rel_diff": (acc_total - schedule_total) / schedule_total,
        "rel_diff_raw": (acc_total - ss_total) / ss_total,
        "max_abs_rel_diff": max(abs(r["rel_diff"]) for r in rows),
        "within_tolerance": all(r["within_tolerance"] for r in rows),
        "sources": sorted({r["source"] for r in rows}),
        "timed_layers": len(timed),
        "scalesim_wall_s": scalesim.wall_s if timed else None,
        "scalesim_layer_wall_s": scalesim.layer_wall_s if timed else None,
        "accelsim_wall_s": acc.wall_s,
        "accelsim_wall_cold_s": acc.wall_cold_s,
        "accelsim_timed_wall_s": acc_timed.wall_s if acc_timed else None,
    }
    if acc_timed:
        totals["speed_ratio_wall"] = scalesim.wall_s / acc_timed.wall_s
        totals["speed_ratio_work"] = scalesim.layer_wall_s / acc_timed.wall_s
    else:
        totals["speed_ratio_wall"] = totals["speed_ratio_work"] = None
    return CaseResult(case, rows, totals)


def _source_label(totals: dict) -> str:
    sources = totals["sources"]
    label = "+".join(sources)
    if "formula" in sources and len(sources) > 1:
        label += f" ({totals['timed_layers']}/{totals['layers']} run)"
    return label


def summary_table(results: list[CaseResult]) -> str:
    """One row per case: totals, worst layer, wall times and speed ratios."""
    rows = []
    for res in results:
        t = res.totals
        rows.append([
            res.case.network, f"{res.case.rows}x{res.case.cols}", res.case.dataflow,
            vs_report.count(t["scalesim_total_cycles"]), vs_report.count(t["accelsim_cycles"]),
            f"{t['diff_cycles']:+d}", vs_report.pct(t["rel_diff"], 4),
            vs_report.pct(t["max_abs_rel_diff"], 4).lstrip("+"),
            _source_label(t), vs_report.secs(t["scalesim_wall_s"]),
            vs_report.secs(t["scalesim_layer_wall_s"]), vs_report.secs(t["accelsim_timed_wall_s"]),
            vs_report.ratio(t["speed_ratio_wall"]), vs_report.ratio(t["speed_ratio_work"]),
        ])
    headers = ["network", "array", "df", "SCALE-Sim cycles", "accelsim cycles", "diff",
               "rel. diff (+1/layer)", "worst layer", "SCALE-Sim source", "SCALE-Sim wall s",
               "SCALE-Sim work s", "accelsim s", "speed (wall)", "speed (work)"]
    right = [False, False, False] + [True] * 5 + [False] + [True] * 5
    return vs_report.table(headers, rows, right)


def layer_table(res: CaseResult) -> str:
    """Per-layer rows of one case."""
    rows = [[r["name"], vs_report.count(r["scalesim_total_cycles"]),
             vs_report.count(r["accelsim_cycles"]), f"{r['diff_cycles']:+d}",
             vs_report.pct(r["rel_diff"], 4), vs_report.pct(r["rel_diff_raw"], 4), r["source"],
             r["note"]] for r in res.layers]
    t = res.totals
    rows.append(["**total**", vs_report.count(t["scalesim_total_cycles"]),
                 vs_report.count(t["accelsim_cycles"]), f"{t['diff_cycles']:+d}",
                 vs_report.pct(t["rel_diff"], 4), vs_report.pct(t["rel_diff_raw"], 4),
                 _source_label(t), ""])
    headers = ["layer", "SCALE-Sim Total Cycles", "accelsim cycles", "diff",
               "rel. diff (+1/layer)", "rel. diff (raw)", "source", "note"]
    right = [False, True, True, True, True, True, False, False]
    return vs_report.table(headers, rows, right)


def parse_arrays(text: str) -> list[tuple[int, int]]:
    """``8,16,32x16`` -> [(8, 8), (16, 16), (32, 16)]."""
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        try:
            rows, cols = (int(x) for x in item.split("x")) if "x" in item else (int(item),) * 2
        except ValueError:
            raise CompareError(f"--arrays: expected sizes like 8,16,32 or 8x16, got {item!r}") \
                from None
        if rows < 1 or cols < 1:
            raise CompareError(f"--arrays: sizes must be positive, got {item!r}")
        out.append((rows, cols))
    return out


def _first_call_seconds() -> float:
    """Time of accelsim's first simulation in this process (imports, Numba cache loading).

    Paid once per process; the per-case accelsim times in the tables are warm.
    """
    layers = vs_accelsim.topology_layers(vs_accelsim.TOPOLOGIES / "lenet5.csv").layers[-1:]
    t0 = time.perf_counter()
    vs_accelsim.run_accelsim(layers, vs_accelsim.dense_hw(8, 8, "os"), repeats=1)
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> tuple[list[CaseResult], dict]:
    """All cases of the command line, in order."""
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    dataflows = [d.strip() for d in args.dataflows.split(",") if d.strip()]
    for df in dataflows:
        if df not in DATAFLOWS:
            raise CompareError(f"--dataflows: expected os, ws or is, got {df!r}")
    arrays = parse_arrays(args.arrays)
    recorded_dirs = [Path(d) for d in (args.recorded_dir or [ss_runs.FIXTURES, ss_runs.RESULTS])]
    results = []
    t0 = time.perf_counter()
    first_call_s = _first_call_seconds()
    for net in networks:
        topology = Path(net) if net.endswith(".csv") else vs_accelsim.TOPOLOGIES / f"{net}.csv"
        if not topology.is_file():
            raise CompareError(f"--networks: no topology {topology}")
        layers = vs_accelsim.topology_layers(topology)
        for rows, cols in arrays:
            for df in dataflows:
                case = Case(topology, rows, cols, df)
                print(f"[compare] {case.label}", file=sys.stderr, flush=True)
                scalesim = ss_runs.obtain(case, layers.names, args.scalesim_from_fixtures,
                                          not args.no_live, recorded_dirs,
                                          None if args.save_live == "" else Path(args.save_live),
                                          args.jobs)
                results.append(compare_case(case, layers, scalesim, args.repeats,
                                            args.tolerance))
    meta = {"command": " ".join(sys.argv), "python": platform.python_version(),
            "machine": platform.machine(), "cpus": __import__("os").cpu_count(),
            "tolerance": args.tolerance, "repeats": args.repeats,
            "wall_s": round(time.perf_counter() - t0, 2),
            "accelsim_first_call_s": round(first_call_s, 3),
            "convention": "accelsim cycles = SCALE-Sim Total Cycles + 1 per layer"}
    return results, meta


def report(results: list[CaseResult], meta: dict, per_layer: bool) -> str:
    parts = ["## Summary", "", summary_table(results), ""]
    if per_layer:
        for res in results:
            parts += [f"### {res.case.network} {res.case.rows}x{res.case.cols} {res.case.dataflow}",
                      "", layer_table(res), ""]
    parts.append(f"_{meta['command']} ({meta['wall_s']} s, {meta['cpus']} CPUs; accelsim's "
                 f"first call in the process took {meta['accelsim_first_call_s']} s, "
                 "the accelsim times above are warm)_")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help="topology names under topologies/ or CSV paths (default: %(default)s)")
    parser.add_argument("--arrays", default=",".join(ARRAYS),
                        help="array sizes, N or RxC (default: %(default)s)")
    parser.add_argument("--dataflows", default=",".join(DATAFLOWS), help="default: %(default)s")
    parser.add_argument("--scalesim-from-fixtures", action="store_true",
                        help="reuse recorded SCALE-Sim runs where they exist")
    parser.add_argument("--recorded-dir", action="append",
                        help="directory of recorded runs (repeatable; default: "
                             "tests/fixtures/scalesim and benchmarks/vs_scalesim/results)")
    parser.add_argument("--no-live", action="store_true",
                        help="never run SCALE-Sim; layers without a recorded run use formulas.py "
                             "(tagged 'formula')")
    parser.add_argument("--save-live", default=str(ss_runs.RESULTS),
                        help="directory for live runs' JSON ('' = a temporary directory)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="SCALE-Sim layers run at once (default 1: wall times comparable)")
    parser.add_argument("--repeats", type=int, default=3, help="accelsim timing repeats")
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="largest accepted relative difference per layer (default 0.01)")
    parser.add_argument("--summary-only", action="store_true", help="omit per-layer tables")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the tables as markdown here")
    args = parser.parse_args(argv)
    try:
        if args.jobs < 1 or args.repeats < 1:
            raise CompareError("--jobs and --repeats must be positive integers")
        results, meta = run(args)
    except CompareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = report(results, meta, not args.summary_only)
    print(text)
    if args.markdown:
        vs_report.write_atomic(args.markdown, text)
    if args.json:
        vs_report.write_json(args.json, {
            "meta": meta,
            "cases": [{"case": {"network": r.case.network, "rows": r.case.rows,
                                "cols": r.case.cols, "dataflow": r.case.dataflow},
                       "totals": r.totals, "layers": r.layers} for r in results]})
    return 0 if all(r.totals["within_tolerance"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
