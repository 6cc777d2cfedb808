"""``accelsim sweep``, ``accelsim report`` and ``accelsim demo``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accelsim.errors import AccelsimError


def register(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser(
        "sweep", help="run a design-space sweep (YAML spec) in parallel, cached and resumable",
        description="Expand SPEC into design points, simulate every (point, trace) in parallel, "
                    "cache each result under DIR/cache/ and write DIR/results.csv with the "
                    "Pareto fronts marked. Re-running resumes from the cache.")
    sweep.add_argument("spec", metavar="SPEC.yaml")
    sweep.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    sweep.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local worker processes (default: the usable CPU cores; 1 = in this "
                            "process)")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on a Dask distributed cluster: a scheduler address "
                            "(tcp://host:8786), or local:N for a Dask LocalCluster of N worker "
                            "processes on this machine")
    sweep.add_argument("--trace", action="append", default=None, metavar="FILE",
                       help="replace the spec's traces (repeat for several)")
    sweep.add_argument("--format", choices=("csv", "parquet"), default="csv",
                       help="results table format (parquet needs pyarrow)")
    sweep.add_argument("--quiet", action="store_true", help="no progress line")
    sweep.add_argument("--max-points", type=int, default=None, metavar="N",
                       help="allow a spec of more than 100,000 design points (the default limit)")
    sweep.set_defaults(handler=_sweep)

    report = subparsers.add_parser(
        "report", help="one self-contained HTML report of a trace on a design",
        description="Simulate TRACE on HW (and its dense twin) and write one HTML page with the "
                    "hardware summary, totals, plots and the per-layer table.")
    report.add_argument("--trace", required=True, metavar="FILE")
    report.add_argument("--hw", required=True, metavar="FILE")
    report.add_argument("--baseline", choices=("dense", "none"), default="dense",
                        help="compare against the dense twin (default) or not")
    report.add_argument("--fidelity", choices=("fast", "cycle"), default="fast")
    report.add_argument("--samples", type=int, default=None, metavar="N",
                        help="input samples per layer (default: all in the trace)")
    report.add_argument("-o", "--output", required=True, metavar="report.html")
    report.set_defaults(handler=_report)

    demo = subparsers.add_parser(
        "demo", help="simulate the shipped LeNet-5 traces on the shipped designs; write a report",
        description="Simulate the shipped LeNet-5 traces (baseline and dual-sparse; statistical "
                    "stand-ins if none are shipped) on every shipped design, then write the "
                    "report and the per-layer energy-savings plot.")
    demo.add_argument("-o", "--output", default="demo_out", metavar="DIR",
                      help="output folder (default: ./demo_out)")
    demo.add_argument("--samples", type=int, default=None, metavar="N",
                      help="input samples per layer (default: the demo's own)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(handler=_demo)


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise AccelsimError(f"{flag}: expected a positive integer, got {value}")


def _sweep(args: argparse.Namespace) -> int:
    from accelsim.sweep.run import run_sweep
    from accelsim.sweep.spec import load_sweep_spec

    _positive(args.workers, "--workers")
    _positive(args.max_points, "--max-points")
    spec = load_sweep_spec(args.spec, traces=args.trace,
                           **({"max_points": args.max_points} if args.max_points else {}))
    outcome = run_sweep(spec, args.output, workers=args.workers, scheduler=args.scheduler,
                        progress=not args.quiet, result_format=args.format)
    summary = outcome.summary_table
    print(outcome.summary())
    for pair in spec.objective_pairs:
        column = "pareto_" + "__".join(pair)
        print(f"Pareto front {pair[0]} vs {pair[1]}: {summary.front_sizes.get(column, 0)} points")
    print(f"results: {outcome.results_path}")
    if not summary.rows:
        print(f"warning: no design point satisfies the constraints of {args.spec}; loosen them "
              "or change the axes", file=sys.stderr)
    if outcome.failed:
        for message, count in summary.errors.most_common(5):
            print(f"  {count} point(s) failed: {message}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from accelsim.hw.load import load_hw
    from accelsim.sweep.report import report_for, write_text_atomic
    from accelsim.trace import open_trace

    _positive(args.samples, "--samples")
    if not args.output.lower().endswith((".html", ".htm")):
        raise AccelsimError(f"{args.output}: the report is HTML; give a file name ending in .html")
    hw = load_hw(args.hw)
    trace = open_trace(args.trace)
    page, _ = report_for(trace, hw, fidelity=args.fidelity, samples=args.samples,
                         baseline=args.baseline == "dense", label=Path(args.trace).stem,
                         progress=sys.stderr.isatty())
    path = write_text_atomic(args.output, page)
    print(f"report: {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from accelsim.sweep.demo import run_demo

    _positive(args.samples, "--samples")
    run_demo(args.output, samples=args.samples, progress=not args.quiet)
    return 0
