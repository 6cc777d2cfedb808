"""``accelsim codesign SPEC [-o DIR]``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "codesign", help="train x hardware co-design sweep with accuracy as an objective",
        description="Train every training point of SPEC once (cached by recipe hash, resumable), "
                    "trace it on its validation split, simulate it on every hardware point, and "
                    "write DIR/results.csv (validation accuracy, sparsity, simulator totals, "
                    "savings, Pareto fronts; test accuracy of the selected models), "
                    "DIR/codesign_pareto.png and DIR/report.html. Models below the spec's "
                    "validation-accuracy floor (min_val_accuracy, max_accuracy_drop) are never "
                    "selected. Re-running resumes from the cache; progress lines with the time "
                    "left go to stderr.")
    parser.add_argument("spec", metavar="SPEC.yaml")
    parser.add_argument("-o", "--output", default=None, metavar="DIR",
                        help="output folder (default: runs/codesign/<spec name>)")
    parser.add_argument("--train-jobs", type=int, default=None, metavar="N",
                        help="models trained at once (default: the usable CPU cores)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch threads per training job (default 1; recorded in provenance)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="simulation worker processes (default: the usable CPU cores)")
    parser.add_argument("--device", default="cpu", help="torch device for training (default: cpu)")
    parser.add_argument("--max-points", type=int, default=100_000, metavar="N",
                        help="largest models x hardware points allowed (default 100,000)")
    parser.add_argument("--plot", default=None, metavar="FILE",
                        help="also save the accuracy-vs-energy-saving plot to FILE (png, svg, pdf), "
                             "e.g. a shipped figure under docs/; without it figures stay in DIR")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=_codesign)


def _codesign(args: argparse.Namespace) -> int:
    from accelsim.codesign.run import run_codesign
    from accelsim.codesign.spec import load_codesign_spec
    from accelsim.errors import AccelsimError

    if args.max_points < 1:
        raise AccelsimError(f"--max-points: expected a positive integer, got {args.max_points}")
    spec = load_codesign_spec(args.spec, max_points=args.max_points)
    if args.device != "cpu":
        import torch

        try:
            device = torch.device(args.device)
        except RuntimeError:
            raise AccelsimError(f"--device: {args.device!r} is not a torch device") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise AccelsimError(f"--device {args.device}: this PyTorch build sees no CUDA GPU")
    out = Path(args.output) if args.output else Path("runs") / "codesign" / spec.name
    outcome = run_codesign(spec, out, workers=args.workers, train_jobs=args.train_jobs,
                           threads=args.threads, device=args.device, progress=not args.quiet)
    if args.plot:
        from accelsim.codesign.report import write_plot

        outcome.files["plot copy"] = str(write_plot(outcome.table, spec, args.plot))
    print(outcome.summary())
    for name, path in outcome.files.items():
        print(f"{name}: {path}", file=sys.stderr)
    return 0
