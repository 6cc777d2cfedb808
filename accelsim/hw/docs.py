"""The hardware-file reference, read off the schema's dataclasses (``accelsim hw schema``).

Every field of :class:`accelsim.hw.schema.HardwareConfig` and of the sections below it is
walked generically: the dotted path, the type (from the annotation), the unit (metadata
``unit`` when given, else the unit suffix of the field name), the default, the allowed
values (asked of the field's validation rule by feeding it values it must refuse) and the
meaning (metadata ``doc``). ``docs/hardware.md`` is :func:`markdown` verbatim, and a
test keeps the checked-in page current.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any

from accelsim.hw import rules

# Unit suffixes of field names, longest first (``_pj_per_bit`` before ``_bit``...).
UNIT_SUFFIXES = (
    ("_pj_per_bit_hop", "pJ/bit/hop"), ("_pj_per_bit", "pJ/bit"), ("_pj_per_cycle", "pJ/cycle"),
    ("_gb_per_s", "GB/s"), ("_words_per_cycle", "words/cycle"), ("words_per_cycle", "words/cycle"),
    ("_per_cycle", "per cycle"), ("_mhz", "MHz"), ("_ghz", "GHz"), ("_kib", "KiB"),
    ("_mib", "MiB"), ("_bytes", "bytes"), ("_bits", "bits"), ("_pj", "pJ"), ("_nj", "nJ"),
    ("_v", "V"), ("_nm", "nm"), ("_cycles", "cycles"), ("_s", "s"), ("_ns", "ns"),
)
REGENERATE = "accelsim hw schema --markdown -o docs/hardware.md"


@dataclass(frozen=True)
class FieldDoc:
    """One row of the reference."""

    path: str
    type: str
    unit: str
    default: str
    allowed: str
    meaning: str
    section: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _Probe:
    """A value no rule accepts (not a number, string, bool, mapping or None)."""

    def __repr__(self) -> str:
        return "<probe>"


def _refusal(rule, value) -> str | None:
    """What ``rule`` expected when it refused ``value`` (None when it accepted it)."""
    try:
        rule(value, "")
    except rules.RuleError as exc:
        text = exc.message
        if text.startswith("expected "):
            text = text[len("expected "):]
        for cut in (", got ", " (a sane upper bound"):
            text = text.split(cut)[0]
        return text
    except Exception:  # noqa: BLE001 - a rule that cannot even look at the probe
        return ""
    return None


def _accepts(rule, value) -> bool:
    try:
        rule(value, "")
    except Exception:  # noqa: BLE001
        return False
    return True


def allowed_values(rule) -> str:
    """Plain words for what ``rule`` accepts, learnt from what it refuses."""
    kind = _refusal(rule, _Probe())
    if kind is None or kind == "":
        return ""
    if kind in ("a mapping of fields",):
        return "section"
    if kind == "a mapping":
        keys = _refusal(rule, {_Probe(): 0})
        return f"mapping; keys: {keys}" if keys else "mapping"
    text = kind
    if kind.startswith(("a positive", "a non-negative")):
        # Just inside the rules' generic ceilings: only a field's own bound refuses these.
        limits = [v for v in (getattr(rules, "MAX_FLOAT", None), getattr(rules, "MAX_INT", None))
                  if v is not None]
        for probe in limits:
            top = _refusal(rule, probe)
            if top and top.startswith("at most "):
                bound = top[len("at most "):]
                try:
                    generic = float(bound.replace(",", "")) in limits
                except ValueError:
                    generic = False
                if not generic:
                    text = f"{kind} up to {bound}"
                break
    if _accepts(rule, None):
        text += ", or null"
    return text


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return " | ".join("null" if a is type(None) else _type_name(a) for a in args)
    if hint in (tuple, list):
        return "list"
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(hint) if a is not Ellipsis)
        name = getattr(origin, "__name__", str(origin)).lower()
        name = {"mapping": "mapping", "tuple": "list", "list": "list", "dict": "mapping"}.get(name, name)
        return f"{name}[{args}]" if args else name
    if is_dataclass(hint):
        return "section"
    return {"float": "number", "int": "integer", "bool": "boolean", "str": "string"}.get(
        getattr(hint, "__name__", str(hint)), getattr(hint, "__name__", str(hint)))


def _sections_in(hint: Any) -> list[tuple[type, bool]]:
    """Dataclasses inside a type hint, each with whether it is a list element."""
    if is_dataclass(hint):
        return [(hint, False)]
    origin = typing.get_origin(hint)
    found = []
    for arg in typing.get_args(hint):
        for cls, in_list in _sections_in(arg):
            found.append((cls, in_list or origin in (tuple, list)))
    return found


def _rule_sections(rule, seen: set | None = None) -> list[type]:
    """Dataclasses a rule builds (``rules.section(cls)``, possibly inside ``list_of``...),
    found in the closures of the rule and the rules it wraps."""
    seen = set() if seen is None else seen
    if id(rule) in seen:
        return []
    seen.add(id(rule))
    found: list[type] = []
    for cell in getattr(rule, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, type) and is_dataclass(value):
            found.append(value)
        elif callable(value) and not isinstance(value, type):
            found.extend(_rule_sections(value, seen))
    return found


def unit_of(name: str, metadata: typing.Mapping) -> str:
    if metadata.get("unit"):
        return str(metadata["unit"])
    for suffix, unit in UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return ""


def _field_sections(hint: Any, rule) -> list[tuple[type, bool]]:
    """Sections of a field (from its annotation, else its rule), with list-element flags."""
    found = _sections_in(hint)
    if found or rule is None:
        return found
    in_list = "list" in (_refusal(rule, _Probe()) or "")
    return [(cls, in_list) for cls in dict.fromkeys(_rule_sections(rule))]


def _section_allowed(rule) -> str:
    if rule is None:
        return "section"
    kind = _refusal(rule, _Probe()) or ""
    text = f"{kind} of sections" if "list" in kind else "section"
    return text + (", or null" if _accepts(rule, None) else "")


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not MISSING:
        value = f.default
    elif f.default_factory is not MISSING:
        value = f.default_factory()
    else:
        return "required"
    if is_dataclass(value):
        return "defaults"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)) and not value:
        return "{}" if isinstance(value, dict) else "[]"
    if isinstance(value, str):
        return value if value else '""'
    return f"{value:g}" if isinstance(value, float) else str(value)


def field_docs(cls: type | None = None, prefix: str = "") -> list[FieldDoc]:
    """Every field of ``cls`` (default: the whole hardware description), sections first-class."""
    if cls is None:
        from accelsim.hw.schema import HardwareConfig

        cls = HardwareConfig
    hints = typing.get_type_hints(cls)
    rows: list[FieldDoc] = []
    plain, nested = [], []
    for f in fields(cls):
        (nested if _field_sections(hints[f.name], f.metadata.get("rule")) else plain).append(f)
    for f in plain + nested:  # a section's own scalars first, then its sub-sections
        hint = hints[f.name]
        path = f"{prefix}{f.name}"
        meta = f.metadata
        rule = meta.get("rule")
        sections = _field_sections(hint, rule)
        type_name = _type_name(hint)
        if sections and sections[0][1] and not _sections_in(hint):  # a list only the rule knows
            type_name = "list[section]" + (" | null" if _accepts(rule, None) else "")
        rows.append(FieldDoc(
            path=path, type=type_name, unit=unit_of(f.name, meta),
            default=_default_text(f),
            allowed=(_section_allowed(rule) if sections
                     else (allowed_values(rule) if rule is not None else "")),
            meaning=str(meta.get("doc", "")), section=bool(sections)))
        for sub, in_list in sections:
            rows.extend(field_docs(sub, f"{path}[]." if in_list else f"{path}."))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


#: Widest a column of ``text_table`` gets before its cells wrap onto continuation lines.
TEXT_COLUMN_WIDTH = 44


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken after commas and spaces (a
    word longer than the column is split); nothing is dropped."""
    import textwrap

    return textwrap.wrap(str(text), width, break_on_hyphens=False) or [""]


def text_table(rows: list[FieldDoc] | None = None) -> str:
    """The reference as aligned plain text (``accelsim hw schema``).

    Columns but the path are at most :data:`TEXT_COLUMN_WIDTH` wide; a longer cell (the allowed values of a
    field with many choices) continues on the next lines of its column, so every value is shown.
    """
    rows = field_docs() if rows is None else rows
    head = ("path", "type", "unit", "default", "allowed", "meaning")
    cells = [(r.path, r.type, r.unit, r.default, r.allowed, r.meaning) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head[:-1])]
    # a path is never wrapped (it is what a user copies); other columns are capped
    widths = [widths[0]] + [min(w, TEXT_COLUMN_WIDTH) for w in widths[1:]]
    lines = []
    for row in [head, *cells]:
        wrapped = [_wrap(v, w) for v, w in zip(row[:-1], widths)] + [[str(row[-1])]]
        for k in range(max(len(col) for col in wrapped)):
            parts = [(col[k] if k < len(col) else "").ljust(w)
                     for col, w in zip(wrapped[:-1], widths)]
            last = wrapped[-1][k] if k < len(wrapped[-1]) else ""
            lines.append("  ".join(parts + [last]).rstrip())
    lines.insert(1, "-" * min(160, len(lines[0]) + 20))
    return "\n".join(lines)


def markdown(rows: list[FieldDoc] | None = None) -> str:
    """``docs/hardware.md``: one table per section, generated from the schema."""
    rows = field_docs() if rows is None else rows
    from accelsim.hw.schema import SCHEMA_VERSION

    out = [
        "# Hardware description reference",
        "",
        f"<!-- Generated from accelsim/hw/schema.py by `{REGENERATE}`; do not edit by hand. -->",
        "",
        f"Every field of a hardware file (schema version {SCHEMA_VERSION}), as `accelsim hw schema` "
        "prints it. A file is strict YAML: unknown keys are errors, `extends: other.yaml` merges "
        "another file under this one, and a section left out takes the defaults below "
        "(`accelsim hw show` says which sections did). **Path** is the dotted key (`[]` marks "
        "the entries of a list); **unit** comes from the field name's suffix; **allowed** is "
        "what the loader accepts; `required` fields have no default.",
        "",
    ]
    groups: dict[str, list[FieldDoc]] = {"top level": []}
    order = ["top level"]
    for row in rows:
        if row.section and "." not in row.path.replace("[].", "."):
            groups.setdefault(row.path, [])
            order.append(row.path)
            groups["top level"].append(row)
            continue
        head = row.path.split(".")[0].replace("[]", "")
        groups.setdefault(head if head in groups else "top level", []).append(row)
    for name in order:
        out.append(f"## `{name}`" if name != "top level" else "## Top level")
        section_row = next((r for r in rows if r.path == name), None)
        if section_row is not None:
            out.append("")
            out.append(f"{section_row.meaning[:1].upper()}{section_row.meaning[1:]}; "
                       f"default: {section_row.default}.")
        out += ["", "| path | type | unit | default | allowed | meaning |",
                "|---|---|---|---|---|---|"]
        for r in groups[name]:
            out.append("| " + " | ".join(_cell(v) for v in (
                f"`{r.path}`", r.type, r.unit, f"`{r.default}`" if r.default else "",
                r.allowed, r.meaning)) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:  # pragma: no cover - ``python -m accelsim.hw.docs`` convenience
    print(markdown(), end="")


if __name__ == "__main__":  # pragma: no cover
    main()
