"""The ``accelsim`` command line.

Each stage owns its verbs in ``accelsim/<stage>/cli.py`` with a
``register(subparsers)`` function; this module only assembles them, and turns
every :class:`~accelsim.errors.AccelsimError` into one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from accelsim import __version__
from accelsim.errors import AccelsimError

# Stage modules that contribute verbs, in the order `accelsim --help` lists them.
_STAGE_CLIS = (
    "accelsim.hw.cli",
    "accelsim.zoo.cli",
    "accelsim.trace.cli",
    "accelsim.train.cli",
    "accelsim.sim.cli",
    "accelsim.sweep.cli",
    "accelsim.plot.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accelsim",
        description="Train sparse networks, capture sparsity traces and simulate "
                    "zero-skipping accelerators.")
    parser.add_argument("--version", action="version", version=f"accelsim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _STAGE_CLIS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # stage not built yet: expose only verbs that work
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except AccelsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
