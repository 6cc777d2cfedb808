"""``accelsim plot KIND ... -o FILE.png|svg|pdf``."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from accelsim.errors import AccelsimError

if TYPE_CHECKING:  # pandas and matplotlib load only when a plot is made
    import pandas as pd

KINDS = {
    "savings": "per-layer energy savings of a sparse design vs its dense twin (percent and absolute)",
    "compare": "several designs side by side: per-layer energy savings (each vs its dense twin), "
               "network energy by component and latency per inference (absolute)",
    "breakdown": "per-layer energy, stacked by component",
    "latency": "per-layer cycles: useful compute, load-imbalance loss, fill/drain, memory stalls",
    "density": "per-layer activation and weight density of a trace",
    "pareto": "sweep scatter with the Pareto front",
    "memory": "runtime memory per layer against the global-buffer size",
    "area": "core area per component (accelsim.hw.area), one stacked bar per design",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    plot = subparsers.add_parser("plot", help="plot simulation or sweep results (PNG, SVG, PDF)")
    kinds = plot.add_subparsers(dest="plot_kind", metavar="KIND", required=True)
    for kind, help_text in KINDS.items():
        sub = kinds.add_parser(kind, help=help_text, description=help_text)
        sub.add_argument("-o", "--output", required=True, metavar="FILE",
                         help="image file; .png, .svg or .pdf")
        sub.add_argument("--title", default=None, help="figure title")
        if kind == "pareto":
            sub.add_argument("--results", required=True, metavar="DIR|FILE",
                             help="a sweep output folder or its results.csv/.parquet")
            sub.add_argument("--x", default="energy_pj", help="x objective (default energy_pj)")
            sub.add_argument("--y", default="cycles", help="y objective (default cycles)")
            sub.add_argument("--trace", default=None, help="only this trace's points")
            sub.add_argument("--log", action="store_true", help="log-log axes")
        elif kind == "compare":
            sim = sub.add_argument_group("simulate now")
            sim.add_argument("--trace", metavar="FILE", help="trace file to simulate")
            sim.add_argument("--hw", metavar="FILE", action="append",
                             help="a hardware file (repeat for each design)")
            sim.add_argument("--fidelity", choices=("fast", "cycle"), default="fast")
            sim.add_argument("--samples", type=int, default=None, metavar="N")
            saved = sub.add_argument_group("or plot saved per-layer results")
            saved.add_argument("--results", metavar="FILE", action="append",
                               help="per-layer results of one design, as `accelsim simulate "
                                    "--baseline dense -o FILE` writes (its dense twin's table "
                                    "next to it); repeat for each design")
            sub.add_argument("--log", action="store_true",
                             help="absolute energy and latency panels on a log scale")
        elif kind == "area":
            sub.add_argument("--hw", required=True, metavar="FILE", action="append",
                             help="a hardware file (repeat for each design)")
            sub.add_argument("--node", type=int, metavar="NM", action="append",
                             help="draw each design at this technology.node_nm (repeat to "
                                  "compare nodes; default: the design's own)")
        elif kind == "density":
            sub.add_argument("--trace", required=True, metavar="FILE")
            sub.add_argument("--samples", type=int, default=None, metavar="N",
                             help="samples to measure when a layer records no density")
        else:
            _simulation_inputs(sub, kind)
        sub.set_defaults(handler=_plot, plot_kind=kind)


def _simulation_inputs(sub: argparse.ArgumentParser, kind: str) -> None:
    sim = sub.add_argument_group("simulate now")
    sim.add_argument("--trace", metavar="FILE", help="trace file to simulate")
    sim.add_argument("--hw", metavar="FILE", help="hardware file"
                     + (" (also gives the global-buffer size with --results)" if kind == "memory" else ""))
    sim.add_argument("--fidelity", choices=("fast", "cycle"), default="fast")
    sim.add_argument("--samples", type=int, default=None, metavar="N")
    saved = sub.add_argument_group("or plot saved per-layer results")
    saved.add_argument("--results", metavar="FILE", help="per-layer results (CSV or Parquet, "
                                                         "as `accelsim simulate -o` writes)")
    if kind == "savings":
        saved.add_argument("--baseline-results", metavar="FILE",
                           help="per-layer results of the dense twin (default: the "
                                "FILE.dense_twin table `simulate --baseline dense -o` writes "
                                "next to --results)")
    if kind == "memory":
        saved.add_argument("--glb-kib", type=float, default=None,
                           help="global-buffer size in KiB (instead of --hw)")
        timeline = sub.add_argument_group("or a per-op timeline of live tensors "
                                          "(needs --trace with its between-layer ops and --hw)")
        timeline.add_argument("--timeline", action="store_true",
                              help="what is live while each op runs (accelsim.sim.liveness)")
        timeline.add_argument("--by", choices=("role", "tensor"), default="role",
                              help="stack by role (inputs, weights, outputs, kept-alive) or "
                                   "by tensor")
        timeline.add_argument("--weights", choices=("current", "resident", "none"),
                              default="current", help="weights counted: the running layer's, "
                                                      "every layer's, or none")


def read_table(path: str | Path) -> pd.DataFrame:
    """A results table from CSV or Parquet (by extension)."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        candidates = [path / "results.csv", path / "results.parquet"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise AccelsimError(f"{path}: no results.csv or results.parquet in this folder")
        path = found[0]
    if not path.is_file():
        raise AccelsimError(f"{path}: results file not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, comment="#")
    except ImportError:
        raise AccelsimError(f"{path}: reading Parquet needs pyarrow "
                            "(pip install 'accelsim[parquet]')") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise AccelsimError(f"{path}: not a readable results table ({exc})") from None


def _simulated(args: argparse.Namespace, hw_path: str, dense: bool = False):
    from accelsim.hw.load import load_hw
    from accelsim.sim import simulate
    from accelsim.trace import open_trace

    hw = load_hw(hw_path)
    if dense:
        hw = hw.dense_twin()
    with open_trace(args.trace) as trace:
        return simulate(trace, hw, fidelity=args.fidelity, samples=args.samples)


def _context_of(result, trace_path: str | None):
    """Title context of a simulation result (design, trace, samples, clock)."""
    from accelsim.plot.common import PlotContext

    return PlotContext.of_table(result.layers, design=result.meta.get("hw_name"),
                                trace=Path(trace_path).stem if trace_path else None,
                                clock_mhz=result.meta.get("clock_mhz"))


def _sidecar(path: str | Path, key: str) -> dict:
    """``meta`` or ``totals`` of a saved table's ``FILE.json`` sidecar ({} when unreadable)."""
    import json

    side = Path(path).with_name(Path(path).name + ".json")
    if not side.is_file():
        return {}
    try:
        loaded = json.loads(side.read_text())
    except (OSError, ValueError):
        return {}
    value = loaded.get(key, {}) if isinstance(loaded, dict) else {}
    return value if isinstance(value, dict) else {}


def _saved_totals(path: str | Path, twin: str | Path) -> tuple[dict, dict] | None:
    """Network totals of a saved table and of its dense twin's (both sidecars), or None."""
    mine, theirs = _sidecar(path, "totals"), _sidecar(twin, "totals")
    return (mine, theirs) if mine and theirs else None


def _saved_context(path: str, table):
    """Title context of a saved table: its columns, and the ``FILE.json`` sidecar's meta."""
    from accelsim.plot.common import PlotContext

    meta = _sidecar(path, "meta")
    trace = meta.get("trace_path")
    clock = meta.get("clock_mhz")
    return PlotContext.of_table(table, design=meta.get("hw_name") if isinstance(
        meta.get("hw_name"), str) else None, trace=Path(trace).stem if isinstance(trace, str) else None,
        clock_mhz=float(clock) if isinstance(clock, (int, float)) and clock > 0 else None)


def _twin_of(results_path: str, given: str | None) -> Path:
    from accelsim.sim.result import twin_path

    return Path(given) if given else twin_path(results_path)


def _twin_table(results_path: str, given: str | None):
    if given:
        return read_table(given)
    twin = _twin_of(results_path, None)
    if not twin.is_file():
        raise AccelsimError(f"{results_path}: no dense-twin table {twin.name} next to it; save "
                            "results with `accelsim simulate --baseline dense -o FILE`, or give "
                            "--baseline-results")
    return read_table(twin)


def _tables(args: argparse.Namespace):
    """The main table, the dense twin's (savings only), the title context and the network totals
    of both (savings only; None when unknown)."""
    kind = args.plot_kind
    if args.samples is not None and args.samples < 1:
        raise AccelsimError(f"--samples: expected a positive integer, got {args.samples}")
    if args.results:
        if args.trace:
            raise AccelsimError("give either --results (saved tables) or --trace and --hw "
                                "(simulate now), not both")
        main = read_table(args.results)
        if kind != "savings":
            return main, None, _saved_context(args.results, main), None
        base = _twin_table(args.results, args.baseline_results)
        totals = _saved_totals(args.results, _twin_of(args.results, args.baseline_results))
        return main, base, _saved_context(args.results, main), totals
    if not (args.trace and args.hw):
        raise AccelsimError(f"plot {kind}: give --trace and --hw to simulate, or --results with a "
                            "saved per-layer table")
    result = _simulated(args, args.hw)
    if kind != "savings":
        return result.layers, None, _context_of(result, args.trace), None
    base = _simulated(args, args.hw, dense=True)
    return result.layers, base.layers, _context_of(result, args.trace), (result.totals, base.totals)


def _compare_runs(args: argparse.Namespace):
    if args.samples is not None and args.samples < 1:
        raise AccelsimError(f"--samples: expected a positive integer, got {args.samples}")
    runs, totals = [], []
    if args.results:
        if args.trace or args.hw:
            raise AccelsimError("give either --results (saved tables) or --trace and --hw "
                                "(simulate now), not both")
        context = None
        for path in args.results:
            table = read_table(path)
            ctx = _saved_context(path, table)
            context = context or ctx
            runs.append((ctx.design or Path(path).stem, table, _twin_table(path, None)))
            totals.append(_saved_totals(path, _twin_of(path, None)))
        return runs, context, totals
    if not (args.trace and args.hw):
        raise AccelsimError("plot compare: give --trace and one --hw per design, or one --results "
                            "per design")
    context = None
    for hw_path in args.hw:
        result = _simulated(args, hw_path)
        dense = _simulated(args, hw_path, dense=True)
        context = context or _context_of(result, args.trace)
        runs.append((result.meta["hw_name"], result.layers, dense.layers))
        totals.append((result.totals, dense.totals))
    return runs, context, totals


def _glb_bytes(args: argparse.Namespace) -> float:
    if args.glb_kib is not None:
        if args.glb_kib <= 0:
            raise AccelsimError(f"--glb-kib: expected a positive size, got {args.glb_kib}")
        return args.glb_kib * 1024
    if not args.hw:
        raise AccelsimError("plot memory --results needs --hw or --glb-kib for the global-buffer "
                            "size")
    from accelsim.hw.hierarchy import shared_bytes
    from accelsim.hw.load import load_hw

    return shared_bytes(load_hw(args.hw))


def _plot(args: argparse.Namespace) -> int:
    from accelsim.plot import common, density, layers, pareto

    common.check_format(args.output)
    kind = args.plot_kind
    if kind == "memory" and getattr(args, "timeline", False):
        return _plot_timeline(args)
    if kind == "area":
        from accelsim.plot import area

        result = area.plot_area(area.area_table(area.designs_area(args.hw, args.node)),
                                title=args.title)
    elif kind == "pareto":
        result = pareto.plot_pareto(read_table(args.results), x=args.x, y=args.y,
                                    trace=args.trace, log=args.log, title=args.title)
    elif kind == "density":
        from accelsim.trace import open_trace

        if args.samples is not None and args.samples < 1:
            raise AccelsimError(f"--samples: expected a positive integer, got {args.samples}")
        trace = open_trace(args.trace)
        label = Path(args.trace).stem + (" (statistical: expected densities)"
                                         if trace.is_statistical else "")
        result = density.plot_density(  # recorded densities cover every traced sample
            density.density_table(trace, args.samples), title=args.title,
            context=common.PlotContext(trace=label, samples=None if trace.is_statistical
                                       else trace.num_samples))
    elif kind == "compare":
        runs, context, totals = _compare_runs(args)
        result = layers.plot_compare(runs, title=args.title, context=context, totals=totals,
                                     log=args.log)
    else:
        main, base, context, totals = _tables(args)
        if kind == "savings":
            result = layers.plot_savings(main, base, title=args.title, context=context,
                                         totals=totals)
        elif kind == "breakdown":
            result = layers.plot_breakdown(main, title=args.title, context=context)
        elif kind == "latency":
            result = layers.plot_latency(main, title=args.title, context=context)
        else:
            result = layers.plot_memory(main, _glb_bytes(args), title=args.title, context=context)
    path = result.save(args.output)
    print(f"{kind} plot: {path}")
    return 0


def _plot_timeline(args: argparse.Namespace) -> int:
    """``plot memory --timeline``: live tensors per op, from the trace's graph."""
    from accelsim.hw.hierarchy import shared_bytes
    from accelsim.hw.load import load_hw
    from accelsim.plot import common, timeline
    from accelsim.sim.liveness import liveness
    from accelsim.trace import open_trace

    if args.results or not (args.trace and args.hw):
        raise AccelsimError("plot memory --timeline: give --trace and --hw (the timeline comes "
                            "from the trace's between-layer ops, not from saved results)")
    if args.samples is not None and args.samples < 1:
        raise AccelsimError(f"--samples: expected a positive integer, got {args.samples}")
    hw = load_hw(args.hw)
    with open_trace(args.trace) as trace:
        if trace.graph is None:
            raise AccelsimError(f"{args.trace}: the trace does not record the ops between "
                                "layers (captured before accelsim recorded them, or "
                                "statistical); re-capture it for a memory timeline")
        lv = liveness(trace.graph, hw, layers=list(trace), samples=args.samples,
                      weights=args.weights)
        samples = lv.per_sample.shape[1]
    context = common.PlotContext(design=hw.name, trace=Path(args.trace).stem, samples=samples)
    result = timeline.plot_timeline(lv, by=args.by, glb_bytes=shared_bytes(hw),
                                    title=args.title, context=context)
    path = result.save(args.output)
    print(f"memory timeline plot: {path} (peak {lv.peak_bytes:,.0f} bytes at op {lv.peak_step})")
    return 0

