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
    "breakdown": "per-layer energy, stacked by component",
    "latency": "per-layer cycles: useful compute, load-imbalance loss, fill/drain, memory stalls",
    "density": "per-layer activation and weight density of a trace",
    "pareto": "sweep scatter with the Pareto front",
    "memory": "runtime memory per layer against the global-buffer size",
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
                           help="per-layer results of the dense twin")
    if kind == "memory":
        saved.add_argument("--glb-kib", type=float, default=None,
                           help="global-buffer size in KiB (instead of --hw)")


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


def _simulated(args: argparse.Namespace, dense: bool = False) -> pd.DataFrame:
    from accelsim.hw.load import load_hw
    from accelsim.sim import simulate
    from accelsim.trace import open_trace

    hw = load_hw(args.hw)
    if dense:
        hw = hw.dense_twin()
    return simulate(open_trace(args.trace), hw, fidelity=args.fidelity, samples=args.samples).layers


def _tables(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    kind = args.plot_kind
    if args.samples is not None and args.samples < 1:
        raise AccelsimError(f"--samples: expected a positive integer, got {args.samples}")
    if args.results:
        if args.trace:
            raise AccelsimError("give either --results (saved tables) or --trace and --hw "
                                "(simulate now), not both")
        main = read_table(args.results)
        base = None
        if kind == "savings":
            if not args.baseline_results:
                raise AccelsimError("plot savings --results needs --baseline-results (the dense "
                                    "twin's per-layer results)")
            base = read_table(args.baseline_results)
        return main, base
    if not (args.trace and args.hw):
        raise AccelsimError(f"plot {kind}: give --trace and --hw to simulate, or --results with a "
                            "saved per-layer table")
    return _simulated(args), (_simulated(args, dense=True) if kind == "savings" else None)


def _glb_bytes(args: argparse.Namespace) -> float:
    if args.glb_kib is not None:
        if args.glb_kib <= 0:
            raise AccelsimError(f"--glb-kib: expected a positive size, got {args.glb_kib}")
        return args.glb_kib * 1024
    if not args.hw:
        raise AccelsimError("plot memory --results needs --hw or --glb-kib for the global-buffer "
                            "size")
    from accelsim.hw.load import load_hw

    return load_hw(args.hw).global_buffer.size_kib * 1024


def _plot(args: argparse.Namespace) -> int:
    from accelsim.plot import common, density, layers, pareto

    common.check_format(args.output)
    kind = args.plot_kind
    if kind == "pareto":
        result = pareto.plot_pareto(read_table(args.results), x=args.x, y=args.y,
                                    trace=args.trace, log=args.log, title=args.title)
    elif kind == "density":
        from accelsim.trace import open_trace

        if args.samples is not None and args.samples < 1:
            raise AccelsimError(f"--samples: expected a positive integer, got {args.samples}")
        trace = open_trace(args.trace)
        result = density.plot_density(density.density_table(trace, args.samples),
                                      title=args.title or f"{Path(args.trace).stem}: operand density")
    else:
        main, base = _tables(args)
        if kind == "savings":
            result = layers.plot_savings(main, base, title=args.title)
        elif kind == "breakdown":
            result = layers.plot_breakdown(main, title=args.title)
        elif kind == "latency":
            result = layers.plot_latency(main, title=args.title)
        else:
            result = layers.plot_memory(main, _glb_bytes(args), title=args.title)
    path = result.save(args.output)
    print(f"{kind} plot: {path}")
    return 0
