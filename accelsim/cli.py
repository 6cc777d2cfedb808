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
from accelsim.alloc import keep_freed_memory
from accelsim.errors import AccelsimError

# Stage modules that contribute verbs, in the order `accelsim --help` lists them.
_STAGE_CLIS = (
    "accelsim.hw.cli",
    "accelsim.zoo.cli",
    "accelsim.trace.cli",
    "accelsim.train.cli",
    "accelsim.map.cli",
    "accelsim.sim.cli",
    "accelsim.sweep.cli",
    "accelsim.codesign.cli",
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
    keep_freed_memory()   # a short-lived process: reuse freed blocks instead of re-faulting them
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except AccelsimError as exc:
        print(f"error: {_capped(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # permissions, disk full, a directory or device where a file goes
        print(f"error: {_capped(_os_error_line(exc, args))}", file=sys.stderr)
        return 1
    except (MemoryError, RecursionError) as exc:
        what = "out of memory" if isinstance(exc, MemoryError) else "input nested too deeply"
        print(f"error: accelsim {args.command}: {what}; the inputs are larger than this "
              "machine can process (try fewer samples or a smaller input)", file=sys.stderr)
        return 1


#: Longest error line printed; a message quoting user data is cut here as a last guard.
MAX_ERROR_LINE = 2000


def _capped(text: str) -> str:
    """``text`` on one line of at most :data:`MAX_ERROR_LINE` characters."""
    text = " ".join(text.splitlines())
    if len(text) > MAX_ERROR_LINE:
        cut = len(text) - (MAX_ERROR_LINE - 40)
        text = f"{text[:MAX_ERROR_LINE - 40]}... ({cut:,} more characters)"
    return text


def _os_error_line(exc: OSError, args: argparse.Namespace) -> str:
    """One line naming the path, what accelsim was doing with it, and why it failed."""
    import os

    reason = exc.strerror or type(exc).__name__
    path = exc.filename
    if path is None:
        return f"accelsim {args.command}: {reason}"
    outputs = [str(v) for k, v in vars(args).items()
               if k in ("output", "out", "out_dir", "save_to") and v]
    absolute = os.path.abspath(str(path))
    outputs = [os.path.abspath(o) for o in outputs]
    if any(absolute == o or absolute.startswith(o + os.sep) for o in outputs):
        action = "writing the output"
    elif any(o.startswith(absolute + os.sep) for o in outputs):
        action = "creating the output's folder"
    else:
        action = "accessing"
    second = f" -> {exc.filename2}" if exc.filename2 else ""
    return f"accelsim {args.command}: {action} {path}{second}: {reason}"


if __name__ == "__main__":
    sys.exit(main())
