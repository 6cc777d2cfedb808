"""Strict YAML reading shared by hardware files, sweep specs and training recipes.

What it refuses, each with one :class:`~accelsim.errors.ConfigError` line naming the
file (and the line where there is one):

- files that are not regular files, larger than :data:`MAX_BYTES`, or not UTF-8;
- duplicate keys in a mapping (YAML says keys are unique; PyYAML keeps the last);
- nesting deeper than :data:`MAX_DEPTH`; documents whose aliases expand to more than
  :data:`MAX_NODES` nodes (an "alias bomb") or refer to themselves;
- non-finite numbers: ``.nan``, ``.inf``, ``-.inf`` and literals beyond the float range
  such as ``1e999`` (no field takes one);
- plain scalars that YAML 1.1 and YAML 1.2 read differently: ``yes/no/on/off``
  (1.1 booleans), ``020`` and ``0b101`` (1.1 octal / binary), ``1:30`` (1.1 base 60),
  ``1_000`` (1.1 ignores the underscore) and ``<<`` merge keys. Either reading would
  surprise someone, so the file must say what it means (quote it, or write ``true``,
  ``20``, ``0o20``).

Every other scalar is resolved by the YAML 1.2 core schema: ``true/false``, ``null``/``~``,
decimal, ``0o`` octal and ``0x`` hex integers, finite floats such as ``1e3``;
dates and everything else stay strings.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from accelsim.errors import ConfigError, brief
from accelsim.inputs import read_limited

MAX_BYTES = 1 << 20        # 1 MiB: shipped files are a few KiB
MAX_DEPTH = 64             # nesting of mappings/sequences
MAX_NODES = 1_000_000      # nodes after expanding every alias

_AMBIGUOUS_TAG = "tag:accelsim,2024:yaml11-ambiguous"
_DIGITS = list("-+0123456789")


class _CoreResolver(BaseResolver):
    """YAML 1.2 core schema, plus a tag for scalars YAML 1.1 reads differently."""


for _tag, _regex, _first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    # checked before int/float: PyYAML tries resolvers in the order they were added
    (_AMBIGUOUS_TAG,
     r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF"
     r"|[-+]?0[0-9_]+"                                       # 020 (1.1 octal)
     r"|[-+]?0b[01_]+"                                      # 0b101 (1.1 binary)
     r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"   # 1:30 (1.1 base 60)
     r"|[-+]?[0-9][0-9_]*_[0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?"  # 1_000
     r"|<<)$",
     list("yYnNoO<") + _DIGITS),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", _DIGITS),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", _DIGITS + ["."]),
):
    _CoreResolver.add_implicit_resolver(_tag, re.compile(_regex), _first)


class _StrictConstructor(SafeConstructor):
    """Safe constructor with duplicate-key detection and YAML 1.2 numbers."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    raise ConstructorError(None, None, f"a mapping key must be a plain value, "
                                           f"got {type(key).__name__}", key_node.start_mark) from None
                if first is not key_node:
                    raise ConstructorError(
                        None, None, f"duplicate key {brief(key)} (first given at line "
                        f"{first.start_mark.line + 1}); each key may appear once",
                        key_node.start_mark)
        return super().construct_mapping(node, deep)

    def construct_core_int(self, node) -> int:
        text = self.construct_scalar(node)
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        try:
            if digits.startswith("0o"):
                return sign * int(digits[2:], 8)
            if digits.startswith("0x"):
                return sign * int(digits[2:], 16)
            return sign * int(digits)
        except ValueError as exc:  # more digits than Python converts
            raise ConstructorError(None, None, f"integer {text[:20]}... is out of range ({exc})",
                                   node.start_mark) from None

    def construct_core_float(self, node) -> float:
        text = self.construct_scalar(node)
        value = float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))
        if not math.isfinite(value):  # no field takes one: refuse it here, once for every file
            raise ConstructorError(None, None, f"{brief(text, 40)} is not a finite number; every "
                                   "number in accelsim files must be finite (quote it for a "
                                   "string)", node.start_mark)
        return value

    def construct_ambiguous(self, node):
        text = self.construct_scalar(node)
        if text.lower() in ("yes", "no", "on", "off"):
            fix = "write true or false, or quote it for a string"
        elif text == "<<":
            fix = "merge keys are not supported; write the fields out"
        elif ":" in text:
            fix = f"YAML 1.1 reads it as a base-60 number; quote it ({brief(text)}) for a string"
        elif "_" in text:
            fix = f"write {brief(text.replace('_', ''))} without underscores, or quote it"
        else:
            fix = "YAML 1.1 reads a leading 0 as octal: write a plain decimal, 0o.. for octal, " \
                  "or quote it for a string"
        raise ConstructorError(None, None, f"{brief(text)} means different things in YAML 1.1 and "
                               f"1.2; {fix}", node.start_mark)


_StrictConstructor.add_constructor("tag:yaml.org,2002:int", _StrictConstructor.construct_core_int)
_StrictConstructor.add_constructor("tag:yaml.org,2002:float",
                                   _StrictConstructor.construct_core_float)
_StrictConstructor.add_constructor(_AMBIGUOUS_TAG, _StrictConstructor.construct_ambiguous)


class _DepthComposer(Composer):
    """Composer that refuses nesting deeper than :data:`MAX_DEPTH` before recursing."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels",
                                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class StrictLoader(Reader, Scanner, Parser, _DepthComposer, _StrictConstructor, _CoreResolver):
    """The loader behind :func:`load_yaml_text` (usable with ``yaml.load`` in tests)."""

    def __init__(self, stream):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _DepthComposer.__init__(self)
        _StrictConstructor.__init__(self)
        _CoreResolver.__init__(self)


def _expanded_nodes(root) -> int:
    """Nodes of the document with every alias expanded; refuses cycles and bombs early."""
    size: dict[int, int] = {}
    stack = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_NODES:
                raise ComposerError(None, None, f"aliases expand to more than {MAX_NODES:,} "
                                    "nodes (an alias bomb?)", node.start_mark)
            continue
        if key in size:
            continue
        if key in on_path:
            raise ComposerError(None, None, "an alias refers to the node that contains it",
                                node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)]


def load_yaml_text(text: str, source: str = "<yaml>") -> Any:
    """Parse one YAML document strictly (see the module docstring); ``None`` if empty."""
    if len(text) > MAX_BYTES:
        raise ConfigError(source, None, f"larger than the {MAX_BYTES:,}-byte limit for YAML files")
    loader = None
    try:
        loader = StrictLoader(text)  # the reader refuses control characters here
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_nodes(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "malformed YAML" if isinstance(exc, (yaml.scanner.ScannerError,
                                                    yaml.parser.ParserError)) else "YAML"
        raise ConfigError(source, None, f"{kind}{where}: {problem}") from None
    except RecursionError:  # pragma: no cover - the depth limit stops this first
        raise ConfigError(source, None, f"nesting deeper than {MAX_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: str | os.PathLike, what: str = "YAML file") -> Any:
    """Read and strictly parse a YAML file (regular, at most :data:`MAX_BYTES`, UTF-8)."""
    path = Path(path)
    data = read_limited(path, MAX_BYTES, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                                           f"offset {exc.start}); save the file as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return load_yaml_text(text, str(path))
