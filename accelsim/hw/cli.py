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

    port = verbs.add_parser(
        "port", help="write a flat design (no memory_hierarchy) in the one model's systolic form",
        description="Write a design given by the flat global_buffer/scratchpad sections as a "
                    "memory_hierarchy with pe_array.systolic (accelsim.hw.port): the shared "
                    "buffer becomes one level, the stationary operand's scratchpad the per-PE "
                    "level, the other scratchpads the array's pipeline registers.")
    port.add_argument("file", metavar="FILE")
    port.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    port.set_defaults(handler=_port)

    tables = verbs.add_parser("tables", help="the packaged energy tables and their energies")
    tables.add_argument("--json", action="store_true", help="print JSON instead of text")
    tables.set_defaults(handler=_tables)

    schema = verbs.add_parser(
        "schema", help="every hardware field: path, type, unit, default, allowed values, meaning",
        description="The hardware-file reference, read off the schema (docs/hardware.md is "
                    "`accelsim hw schema --markdown`).")
    form = schema.add_mutually_exclusive_group()
    form.add_argument("--markdown", action="store_true", help="Markdown (docs/hardware.md)")
    form.add_argument("--json", action="store_true", help="JSON list of fields")
    schema.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    schema.set_defaults(handler=_schema)


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
    from accelsim.hw.load import dump_hw, load_hw, resolve_extends
    from accelsim.hw.summary import defaulted_fields, derived_figures, format_defaults, format_figures

    config = load_hw(args.file)
    figures = derived_figures(config)
    resolved = config.to_dict()
    raw = resolve_extends(args.file)
    ported = not raw.get("memory_hierarchy")
    if ported:     # the levels and pe_array.systolic come from the port, not from defaults
        from accelsim.hw.port import ported_dict

        raw = ported_dict(load_hw(args.file, port=False), str(args.file), base=raw)
    sections, leaves = defaulted_fields(raw, resolved)
    if args.json:
        print(json.dumps({"config": resolved, "derived": figures,
                          "defaulted": {"sections": sections, "fields": leaves}}, indent=2))
        return 0
    print(f"# {args.file}: resolved configuration")
    if ported:
        print("# (a flat file: global_buffer/scratchpad ported to a memory_hierarchy on the "
              "systolic mode, as `accelsim hw port` writes it)")
    print(dump_hw(config), end="")
    print("# defaults taken (not in the file or the files it extends)")
    print(format_defaults(resolved, sections, leaves))
    print("# derived figures")
    print(format_figures(figures))
    return 0


def _port(args: argparse.Namespace) -> int:
    import yaml

    from accelsim.hw.load import load_hw, resolve_extends
    from accelsim.hw.port import port, ported_dict

    config = load_hw(args.file, port=False)
    raw = ported_dict(config, str(args.file), base=resolve_extends(args.file))
    port(config, str(args.file))            # the result validates, or one error line
    text = (f"# {config.name}: ported by `accelsim hw port` from {args.file}\n"
            "# (the flat global_buffer/scratchpad sections as a memory_hierarchy on the loop-nest\n"
            "# model's systolic mode; the other scratchpads are the array's pipeline registers)\n"
            + yaml.safe_dump(raw, sort_keys=False))
    if args.output:
        from accelsim.atomic import atomic_write_text

        atomic_write_text(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _tables(args: argparse.Namespace) -> int:
    from accelsim.hw.energy import available_tables, load_table
    from accelsim.hw.summary import table_lines

    if args.json:
        print(json.dumps({name: load_table(name) for name in available_tables()}, indent=2,
                         default=str))
        return 0
    for i, name in enumerate(available_tables()):
        if i:
            print()
        print("\n".join(table_lines(name, load_table(name))))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from accelsim.hw import docs

    if args.json:
        text = json.dumps([row.to_dict() for row in docs.field_docs()], indent=2) + "\n"
    elif args.markdown:
        text = docs.markdown()
    else:
        text = docs.text_table() + "\n"
    if args.output:
        from accelsim.atomic import atomic_write_text

        atomic_write_text(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
