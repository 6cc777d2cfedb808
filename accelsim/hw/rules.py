"""Field validation rules for the hardware schema.

A rule is a callable ``rule(value, path) -> normalised value`` that raises
:class:`RuleError` with a message saying what was expected. ``accelsim.hw.load``
adds the file name. Rules are plain functions, so the schema reads as data.
"""
from __future__ import annotations

import difflib
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Callable, Iterable

from accelsim.errors import brief

REQUIRED = object()

Rule = Callable[[Any, str], Any]


class RuleError(ValueError):
    """A value broke a rule; ``path`` is the dotted field path."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


def _got(value: Any) -> str:
    return f"got {brief(value)} ({type(value).__name__})"


# Ceilings of the plain numeric rules: far above any real design, low enough that products
# of a few of them stay exact in int64/float64 (the simulator's kernels).
MAX_INT = 2 ** 53
MAX_FLOAT = 1e15


def _too_large(value: Any, high: float, path: str) -> None:
    if value > high:
        limit = f"{high:,}" if isinstance(high, int) else f"{high:g}"
        raise RuleError(path, f"expected at most {limit} (a sane upper bound for this field), "
                              f"{_got(value)}")


def positive_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RuleError(path, f"expected a positive integer, {_got(value)}")
    _too_large(value, MAX_INT, path)
    return value


def non_negative_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RuleError(path, f"expected a non-negative integer, {_got(value)}")
    _too_large(value, MAX_INT, path)
    return value


def int_range(low: int, high: int) -> Rule:
    def check(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RuleError(path, f"expected an integer from {low} to {high}, {_got(value)}")
        return value
    return check


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def positive_float(value: Any, path: str) -> float:
    if not _number(value) or value <= 0 or value == float("inf"):
        raise RuleError(path, f"expected a positive number, {_got(value)}")
    _too_large(value, MAX_FLOAT, path)
    return float(value)


def non_negative_float(value: Any, path: str) -> float:
    if not _number(value) or value < 0 or value == float("inf"):
        raise RuleError(path, f"expected a non-negative number, {_got(value)}")
    _too_large(value, MAX_FLOAT, path)
    return float(value)


def bounded(rule: Rule, high: float) -> Rule:
    """``rule``, then at most ``high`` (the field's sane upper bound)."""
    def check(value: Any, path: str) -> Any:
        value = rule(value, path)
        _too_large(value, high, path)
        return value
    return check


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise RuleError(path, f"expected true or false, {_got(value)}")
    return value


def string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise RuleError(path, f"expected a string, {_got(value)}")
    return value


def non_empty_str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RuleError(path, f"expected a non-empty string, {_got(value)}")
    return value


def one_of(choices: Iterable[Any]) -> Rule:
    choices = tuple(choices)

    def check(value: Any, path: str) -> Any:
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            hint = ""
            if isinstance(value, str):
                close = difflib.get_close_matches(value, [str(c) for c in choices], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RuleError(path, f"expected one of {', '.join(map(repr, choices))}, "
                                  f"got {brief(value)}{hint}")
        return value
    return check


def optional(rule: Rule) -> Rule:
    def check(value: Any, path: str) -> Any:
        return None if value is None else rule(value, path)
    return check


def energy_table_name(value: Any, path: str) -> str:
    from accelsim.hw.energy import available_tables

    return one_of(available_tables())(value, path)


def technology_node(value: Any, path: str) -> int:
    """A technology node with packaged tables (``accelsim.hw.energy.technology_nodes``), in nm."""
    from accelsim.hw.energy import technology_nodes

    nodes = technology_nodes()
    if isinstance(value, bool) or not isinstance(value, int) or value not in nodes:
        raise RuleError(path, f"expected one of {', '.join(map(str, nodes))} (nm), {_got(value)}")
    return value


def mapping_of(key_rule: Rule, value_rule: Rule) -> Rule:
    def check(value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            raise RuleError(path, f"expected a mapping, {_got(value)}")
        return {key_rule(k, f"{path}.{k}"): value_rule(v, f"{path}.{k}") for k, v in value.items()}
    return check


def section(cls: type) -> Rule:
    """Validate a nested mapping into the dataclass ``cls`` (strict: unknown keys are errors)."""

    def check(value: Any, path: str) -> Any:
        if is_dataclass(value) and isinstance(value, cls):
            return value
        return build(cls, value, path)
    return check


def check_keys(data: dict, allowed: list[str], path: str = "") -> None:
    """Raise :class:`RuleError` at the first key of ``data`` not in ``allowed`` (with a
    "did you mean" for a near miss)."""
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise RuleError(_join(path, str(key)),
                            f"unknown key{hint}; allowed keys: {', '.join(allowed)}")


def build(cls: type, data: Any, path: str = "") -> Any:
    """Construct dataclass ``cls`` from a mapping, applying each field's rule."""
    where = path or "(top level)"
    if not isinstance(data, dict):
        raise RuleError(where, f"expected a mapping of fields, {_got(data)}")
    known = {f.name: f for f in fields(cls)}
    check_keys(data, list(known), path)
    values = {}
    for name, f in known.items():
        sub = _join(path, name)
        if name in data:
            values[name] = f.metadata["rule"](data[name], sub)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise RuleError(sub, f"required field is missing ({f.metadata['doc']})")
    return cls(**values)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def list_of(rule: Rule, max_items: int = 64, allow_empty: bool = False) -> Rule:
    """A non-empty list (or any list, ``allow_empty``) whose items each pass ``rule`` (at most
    ``max_items``)."""
    def check(value: Any, path: str) -> tuple:
        if not isinstance(value, list) or not (value or allow_empty):
            raise RuleError(path, f"expected a {'' if allow_empty else 'non-empty '}list, {_got(value)}")
        if len(value) > max_items:
            raise RuleError(path, f"expected at most {max_items} items, got {len(value)}")
        return tuple(rule(v, f"{path}[{i}]") for i, v in enumerate(value))
    return check


def subset_of(choices: Iterable[Any]) -> Rule:
    """A list of distinct values from ``choices`` (may be empty)."""
    allowed = tuple(choices)

    def check(value: Any, path: str) -> tuple:
        if not isinstance(value, list):
            raise RuleError(path, f"expected a list of {', '.join(map(str, allowed))}, {_got(value)}")
        for i, item in enumerate(value):
            if item not in allowed:
                raise RuleError(f"{path}[{i}]", f"expected one of {', '.join(map(str, allowed))}, {_got(item)}")
        if len(set(value)) != len(value):
            raise RuleError(path, "a value is listed twice")
        return tuple(value)
    return check


def dram_device(value: Any, path: str) -> str:
    """A packaged DRAM preset name (``accelsim.dram.presets``)."""
    from accelsim.dram.presets import available_presets

    return one_of(available_presets())(value, path)


def dram_address_mapping(value: Any, path: str) -> str:
    """A named address-mapping scheme or six fields joined by '-' (``accelsim.dram.mapping``)."""
    from accelsim.dram.mapping import SCHEMES, parse_scheme

    if not isinstance(value, str):
        raise RuleError(path, f"expected one of {', '.join(map(repr, SCHEMES))} or six fields "
                              f"joined by '-', {_got(value)}")
    try:
        parse_scheme(value)
    except ValueError as exc:
        raise RuleError(path, str(exc)) from None
    return value
