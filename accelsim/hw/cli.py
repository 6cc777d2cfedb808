"""``accelsim hw``: validate and show hardware descriptions."""
from __future__ import annotations

import argparse
import json
import sys

from accelsim.errors import AccelsimError


def register(subparsers: argparse._SubParsersAction) -> None:
    hw = subparsers.add_parser("hw", help="validate and show hardware descriptions (YAML)")
    verbs = hw.add_subparsers(dest="hw_command", metavar="VERB", required=True)

    validate = verbs.add_parser("validate", help="check hardware files; exit 0 only if all are valid")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(handler=_validate)

    show = verbs.add_parser("show", help="print the resolved config and derived figures")
    show.add_argument("file", metavar="FILE")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=_show)

    tables = verbs.add_parser("tables", help="list the packaged energy tables")
    tables.set_defaults(handler=_tables)


def _validate(args: argparse.Namespace) -> int:
    from accelsim.hw.load import load_hw

    failures = 0
    for path in args.files:
        try:
            config = load_hw(path)
        except AccelsimError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
        else:
            print(f"ok: {path} ({config.name})")
    return 1 if failures else 0


def _show(args: argparse.Namespace) -> int:
    from accelsim.hw.load import dump_hw, load_hw
    from accelsim.hw.summary import derived_figures, format_figures

    config = load_hw(args.file)
    figures = derived_figures(config)
    if args.json:
        print(json.dumps({"config": config.to_dict(), "derived": figures}, indent=2))
        return 0
    print(f"# {args.file}: resolved configuration")
    print(dump_hw(config), end="")
    print("# derived figures")
    print(format_figures(figures))
    return 0


def _tables(args: argparse.Namespace) -> int:
    from accelsim.hw.energy import available_tables, load_table

    for name in available_tables():
        table = load_table(name)
        origin = f", derived from {table['derived_from']}" if "derived_from" in table else ""
        print(f"{name}: {table['node_nm']} nm, nominal {table['nominal_voltage_v']} V{origin}")
    return 0
