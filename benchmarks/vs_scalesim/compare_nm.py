"""N:M structured weight sparsity: SCALE-Sim 3's sparse mode vs accelsim's zero-weight skipping.

SCALE-Sim (``SparsitySupport: true``, ``OptimizedMapping: false``) keeps the first N of every M
window rows in every filter and simulates the layer **as a dense layer with the window
compressed** to ``Wn' = N*floor(Wn/M) + min(Wn mod M, N)`` (``docs/scalesim_conventions.md``
section 5): the array holds only the kept rows, so cycles fall in every dataflow. accelsim keeps
the layer's shape and **skips pairs per PE**: a PE's stream loses the pairs whose weight is zero,
which shortens the fold only where the stream runs along the reduction (os) or along the
filters (is), never where it runs along output pixels with the weight fixed (ws).

For each layer this prints SCALE-Sim's dense and N:M ``Total Cycles`` and four accelsim figures:
dense; zero-weight skipping on SCALE-Sim's exact pattern; zero-weight skipping on random N:M
masks (what magnitude N:M pruning gives: N kept per block, positions differing between filters);
and the dense *compacted* layer (``E*F x Wn'`` @ ``Wn' x K``), which is what SCALE-Sim simulates
and must equal it (+1, the stated off-by-one).

    python benchmarks/vs_scalesim/compare_nm.py                       # LeNet-5, 2:4 and 3:8, live
    python benchmarks/vs_scalesim/compare_nm.py --scalesim-from-fixtures --no-live
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import vs_accelsim  # noqa: E402
import vs_report  # noqa: E402
import vs_scalesim_runs as ss_runs  # noqa: E402
from compare import parse_arrays  # noqa: E402
from vs_scalesim_runs import Case, CompareError  # noqa: E402

COLUMNS = ("dense", "skip_scalesim_pattern", "skip_random_nm", "compacted")


def parse_ratios(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        try:
            n, m = (int(x) for x in item.strip().split(":"))
        except ValueError:
            raise CompareError(f"--nm: expected ratios like 2:4,3:8, got {item!r}") from None
        if not 1 <= n <= m:
            raise CompareError(f"--nm: expected 1 <= N <= M, got {item!r}")
        out.append((n, m))
    return out


def accelsim_nm(topology: vs_accelsim.TopologyLayers, rows: int, cols: int, dataflow: str,
                n: int, m: int, seed: int = 0) -> dict[str, list[dict]]:
    """accelsim's per-layer cycles for the four configurations of :data:`COLUMNS`."""
    dense_hw = vs_accelsim.dense_hw(rows, cols, dataflow)
    skip_hw = vs_accelsim.dense_hw(rows, cols, dataflow, skip_zero_weights=True)
    layers = topology.layers
    runs = {
        "dense": (layers, dense_hw),
        "skip_scalesim_pattern": ([vs_accelsim.nm_layer(l, n, m, "scalesim") for l in layers],
                                  skip_hw),
        "skip_random_nm": ([vs_accelsim.nm_layer(l, n, m, "random", seed) for l in layers],
                           skip_hw),
        "compacted": ([vs_accelsim.compacted_layer(l, n, m) for l in layers], dense_hw),
    }
    return {key: vs_accelsim.run_accelsim(ls, hw, repeats=1).layers
            for key, (ls, hw) in runs.items()}


def compare_nm_case(case: Case, topology: vs_accelsim.TopologyLayers,
                    dense: ss_runs.ScaleSimRun, sparse: ss_runs.ScaleSimRun, seed: int = 0) -> dict:
    """Per-layer rows and totals of one N:M case."""
    n, m = case.nm
    ours = accelsim_nm(topology, case.rows, case.cols, case.dataflow, n, m, seed)
    rows = []
    for i, name in enumerate(topology.names):
        row = {"name": name, "scalesim_dense": dense.layers[name].total_cycles,
               "scalesim_nm": sparse.layers[name].total_cycles,
               "source": sparse.layers[name].source}
        for key in COLUMNS:
            row[key] = ours[key][i]["compute_cycles"]
        rows.append(row)
    off = vs_accelsim.SCALESIM_OFFSET
    totals = {"name": "total", "source": "+".join(sorted({r["source"] for r in rows}))}
    for key in ("scalesim_dense", "scalesim_nm", *COLUMNS):
        totals[key] = sum(r[key] for r in rows)
    layers_n = len(rows)
    totals["speedup_scalesim"] = (totals["scalesim_dense"] + off * layers_n) / \
        (totals["scalesim_nm"] + off * layers_n)
    for key in ("skip_scalesim_pattern", "skip_random_nm", "compacted"):
        totals[f"speedup_{key}"] = totals["dense"] / totals[key]
    totals["compacted_equals_scalesim"] = all(r["compacted"] == r["scalesim_nm"] + off
                                              for r in rows)
    return {"case": {"network": case.network, "rows": case.rows, "cols": case.cols,
                     "dataflow": case.dataflow, "nm": f"{n}:{m}",
                     "representation": case.representation},
            "layers": rows, "totals": totals}


def summary_table(results: list[dict]) -> str:
    rows = []
    for res in results:
        c, t = res["case"], res["totals"]
        rows.append([c["network"], c["nm"], f"{c['rows']}x{c['cols']}", c["dataflow"],
                     vs_report.count(t["scalesim_dense"]), vs_report.count(t["scalesim_nm"]),
                     vs_report.ratio(t["speedup_scalesim"]), vs_report.count(t["dense"]),
                     vs_report.ratio(t["speedup_skip_scalesim_pattern"]),
                     vs_report.ratio(t["speedup_skip_random_nm"]),
                     vs_report.ratio(t["speedup_compacted"]),
                     "yes" if t["compacted_equals_scalesim"] else "NO", t["source"]])
    headers = ["network", "N:M", "array", "df", "SCALE-Sim dense", "SCALE-Sim N:M",
               "SCALE-Sim speedup", "accelsim dense", "skip (SCALE-Sim pattern)",
               "skip (random N:M)", "compacted", "compacted = SCALE-Sim+1", "source"]
    right = [False] * 4 + [True] * 7 + [False, False]
    return vs_report.table(headers, rows, right)


def layer_table(res: dict) -> str:
    rows = [[r["name"], vs_report.count(r["scalesim_dense"]), vs_report.count(r["scalesim_nm"]),
             vs_report.count(r["dense"]), vs_report.count(r["skip_scalesim_pattern"]),
             vs_report.count(r["skip_random_nm"]), vs_report.count(r["compacted"]), r["source"]]
            for r in res["layers"] + [res["totals"]]]
    headers = ["layer", "SCALE-Sim dense", "SCALE-Sim N:M", "accelsim dense",
               "skip (SCALE-Sim pattern)", "skip (random N:M)", "compacted", "source"]
    return vs_report.table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="lenet5", help="topology names (default lenet5)")
    parser.add_argument("--nm", default="2:4,3:8", help="N:M ratios (default %(default)s)")
    parser.add_argument("--arrays", default="8,16", help="array sizes (default %(default)s)")
    parser.add_argument("--dataflows", default="os,ws,is", help="default: %(default)s")
    parser.add_argument("--representation", default="ellpack_block",
                        choices=("ellpack_block", "csr", "csc"),
                        help="SCALE-Sim SparseRep (changes storage figures only, not cycles)")
    parser.add_argument("--scalesim-from-fixtures", action="store_true")
    parser.add_argument("--no-live", action="store_true")
    parser.add_argument("--save-live", default=str(ss_runs.RESULTS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the random N:M masks")
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    recorded = [ss_runs.FIXTURES, ss_runs.RESULTS]
    save = None if args.save_live == "" else Path(args.save_live)
    results = []
    try:
        ratios = parse_ratios(args.nm)
        arrays = parse_arrays(args.arrays)
        for net in [x.strip() for x in args.networks.split(",") if x.strip()]:
            topo_path = vs_accelsim.TOPOLOGIES / f"{net}.csv"
            if not topo_path.is_file():
                raise CompareError(f"--networks: no topology {topo_path}")
            topology = vs_accelsim.topology_layers(topo_path)
            for n, m in ratios:
                for rows, cols in arrays:
                    for df in [d.strip() for d in args.dataflows.split(",")]:
                        if df not in vs_accelsim.DATAFLOWS:
                            raise CompareError(f"--dataflows: expected os, ws or is, got {df!r}")
                        dense_case = Case(topo_path, rows, cols, df)
                        case = Case(topo_path, rows, cols, df, (n, m), args.representation)
                        print(f"[compare_nm] {case.label}", file=sys.stderr, flush=True)
                        dense = ss_runs.obtain(dense_case, topology.names, True, not args.no_live,
                                               recorded, save)
                        sparse = ss_runs.obtain(case, topology.names, args.scalesim_from_fixtures,
                                                not args.no_live, recorded, save)
                        results.append(compare_nm_case(case, topology, dense, sparse, args.seed))
    except CompareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    parts = ["## N:M summary (network totals; speedups over each tool's own dense run)", "",
             summary_table(results), ""]
    if not args.summary_only:
        for res in results:
            c = res["case"]
            parts += [f"### {c['network']} {c['nm']} {c['rows']}x{c['cols']} {c['dataflow']}", "",
                      layer_table(res), ""]
    text = "\n".join(parts) + "\n"
    print(text)
    if args.markdown:
        vs_report.write_atomic(args.markdown, text)
    if args.json:
        vs_report.write_json(args.json, {"command": " ".join(sys.argv), "cases": results})
    return 0 if all(r["totals"]["compacted_equals_scalesim"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
