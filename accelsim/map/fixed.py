"""Mappings fixed by the user in YAML, per layer (``simulate --mappings FILE``).

Format (what ``accelsim map --save-mappings FILE`` writes for the mapper's choices)::

    version: 1
    layers:
      conv1:                          # a layer name of the trace
        - {level: DRAM, temporal: [[K, 2], [C, 3]]}
        - {level: glb, temporal: [[P, 4]], spatial: [[Q, 14, X], [R, 3, Y]]}
        - {level: spad, temporal: [[S, 3]]}

Levels are listed outermost first and must be the design's (DRAM, then its
``memory_hierarchy``); temporal loops outer to inner; each dimension's factors must multiply to
its bound, or leave a remainder: its outermost loop running ``ceil(bound / product of the
others)`` times (e.g. 55 output rows as ``[P, 8]`` over a spatial ``[P, 7, X]``: the last pass
has 6 rows; :mod:`accelsim.map.mapping`); spatial loops go at the level that spreads over the PE array (at most ``cols`` along
X, ``rows`` along Y) and, over the MAC lanes, at the last per-PE level (at most the design's
``macs_per_pe``); every tile must fit its level. A layer the file does not name is mapped by the
mapper.
"""
from __future__ import annotations

import os

from accelsim.atomic import atomic_write_text
from accelsim.errors import ConfigError
from accelsim.hw import rules
from accelsim.map.mapping import AXES, LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS

VERSION = 1
MAX_LAYERS = 100_000


def _loops(raw, path: str, source: str, spatial: bool) -> tuple[Loop, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(source, path, f"expected a list of [dim, factor{', axis' if spatial else ''}]")
    out = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        want = 3 if spatial else 2
        if not isinstance(item, list) or len(item) != want:
            raise ConfigError(source, where, f"expected [dim, factor{', axis' if spatial else ''}], "
                                             f"got {item!r:.60}")
        dim, factor = item[0], item[1]
        if dim not in DIMS:
            raise ConfigError(source, where, f"dimension: expected one of {', '.join(DIMS)}, got {dim!r:.30}")
        if isinstance(factor, bool) or not isinstance(factor, int) or not 1 <= factor <= 1 << 30:
            raise ConfigError(source, where, f"factor: expected a positive integer, got {factor!r:.30}")
        axis = item[2] if spatial else "X"
        if axis not in AXES:
            raise ConfigError(source, where, f"axis: expected X or Y, got {axis!r:.30}")
        out.append(Loop(dim, factor, spatial, axis))
    return tuple(out)


def _keys(data: dict, allowed: list[str], path: str, source: str) -> None:
    try:
        rules.check_keys(data, allowed, path)
    except rules.RuleError as exc:
        raise ConfigError(source, exc.path, exc.message) from None


def parse_mappings(raw, source: str = "<mappings>") -> dict[str, Mapping]:
    """Validate the plain data of a mappings file into ``{layer name: Mapping}``."""
    if not isinstance(raw, dict):
        raise ConfigError(source, None, "expected a mapping with version and layers")
    _keys(raw, ["version", "layers"], "", source)
    version = raw.get("version")
    if type(version) is not int or version != VERSION:   # true and 1.0 equal 1 in Python
        raise ConfigError(source, "version", f"expected {VERSION}, got {raw.get('version')!r:.30}")
    layers = raw.get("layers")
    if not isinstance(layers, dict) or not layers:
        raise ConfigError(source, "layers", "expected a mapping of layer name -> list of levels")
    if len(layers) > MAX_LAYERS:
        raise ConfigError(source, "layers", f"expected at most {MAX_LAYERS:,} layers")
    out = {}
    for name, levels in layers.items():
        base = f"layers.{name}"
        if not isinstance(name, str) or not isinstance(levels, list) or not levels:
            raise ConfigError(source, base, "expected a non-empty list of levels")
        parsed = []
        for i, level in enumerate(levels):
            where = f"{base}[{i}]"
            if not isinstance(level, dict) or not isinstance(level.get("level"), str):
                raise ConfigError(source, where, "expected {level: NAME, temporal: [...], spatial: [...]}")
            _keys(level, ["level", "temporal", "spatial"], where, source)
            parsed.append(LevelLoops(level["level"],
                                     _loops(level.get("temporal"), f"{where}.temporal", source, False),
                                     _loops(level.get("spatial"), f"{where}.spatial", source, True)))
        out[name] = Mapping(tuple(parsed), origin=(source, base))
    return out


def load_mappings(path: str | os.PathLike) -> dict[str, Mapping]:
    """Read a mappings file (strict YAML, never code)."""
    from accelsim.yamlio import read_yaml

    return parse_mappings(read_yaml(path, "mappings file"), str(path))


def save_mappings(path: str | os.PathLike, mappings: dict[str, Mapping]) -> None:
    """Write ``{layer name: Mapping}`` in the format :func:`load_mappings` reads (atomically)."""
    import yaml

    data = {"version": VERSION, "layers": {name: m.to_dict() for name, m in mappings.items()}}
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def fixed_result(layer_name: str, mapping: Mapping, nest, arch, adjust=None):
    """Check a fixed mapping against ``nest`` and every resource of ``arch``, and cost it (a
    MapResult).

    A mapping without batch loops runs a batch of ``B`` as ``B`` passes (an outer ``N`` loop at
    DRAM). Checked: the levels are the design's; each dimension's factors (positive integers)
    multiply to its bound (or leave a remainder); spatial loops only at the fan-out level (at most the PE array's
    ``cols`` along X and ``rows`` along Y) and at the last per-PE level (at most the design's
    ``macs_per_pe`` MAC lanes); every level's tiles fit its capacity, by the mapper's own test
    (:func:`accelsim.map.mapper._exact_fit`), and their worst-case metadata its metadata
    storage (:func:`accelsim.map.mapper.metadata_overflow`). One-line errors name the mapping
    file and field (for a mapping read from a file), the layer, and for capacity the level and
    the bytes its tiles (or their metadata) need. Remainder tiles are accepted
    (:meth:`Mapping.check`). ``adjust(counts, mapping)``: the counts as the caller knows them
    better before they are checked and costed (the systolic mode's real input tiles).
    """
    from accelsim.errors import MappingError
    from accelsim.map.access import analyse
    from accelsim.map.cost import mapping_cost
    from accelsim.map.mapper import MapResult, _exact_fit, metadata_overflow

    def error(message: str, level: int | None = None, part: str | None = None) -> MappingError:
        where = mapping.field_path(level, part)
        return MappingError(f"{where + ': ' if where else ''}layer {layer_name!r}: fixed mapping: "
                            f"{message}")

    batch, given = nest.bound("N"), mapping.factor_product("N")
    if given != batch:
        if not isinstance(given, int) or given < 1 or batch % given:
            raise error(f"the N factors multiply to {given}, which does not divide the batch of "
                        f"{batch}")
        first = mapping.levels[0]
        mapping = Mapping((LevelLoops(first.level, (Loop("N", batch // given),) + first.temporal,
                                      first.spatial),) + mapping.levels[1:], origin=mapping.origin)
    try:
        mapping.check(nest, arch.names)
    except MappingError as exc:
        raise error(str(exc).replace(f"layer {nest.name!r}: ", "")) from None
    fan, last = arch.fanout_level, len(mapping.levels) - 1
    for i, lv in enumerate(mapping.levels):
        if lv.spatial and i not in (fan, last):
            raise error(f"spatial loops at level {lv.level!r}; the design spreads over its PEs at "
                        f"{arch.names[fan]!r} (and over MAC lanes at its last level)", i, "spatial")
        if i == fan and (lv.spatial_size("X") > arch.cols or lv.spatial_size("Y") > arch.rows):
            raise error(f"spatial loops at {lv.level!r} need {lv.spatial_size('Y')}x"
                        f"{lv.spatial_size('X')} PEs, the array is {arch.rows}x{arch.cols}",
                        i, "spatial")
        if i == last and i != fan and lv.spatial_size() > arch.lanes:
            raise error(f"spatial loops at {lv.level!r} spread over {lv.spatial_size()} MAC lanes; "
                        f"each PE has {arch.lanes} (pe_array.macs_per_pe)", i, "spatial")
    counts = analyse(nest, mapping, arch.keeps, arch.unicast)
    if adjust is not None:
        counts = adjust(counts, mapping)
    if not _exact_fit(counts, arch):
        level = _overflowing_level(counts, arch)
        if level is None:
            raise error("its tiles do not fit the design's buffers")
        lv = arch.levels[level]
        need = float(sum(counts.footprint[level, t] * arch.tensor_bits[t] for t in range(3)))
        raise error(f"level {lv.name!r} holds {lv.capacity_bits / 8:,.0f} bytes per instance but "
                    f"its tiles need {need / 8:,.0f} bytes", level)
    over = metadata_overflow(mapping, nest, arch)
    if over is not None:
        level, need = over
        lv = arch.levels[level]
        raise error(f"level {lv.name!r} holds {lv.metadata_capacity_bits / 8:,.0f} bytes of "
                    f"metadata per instance (metadata.size_bytes) but its tiles' worst-case "
                    f"metadata needs {need / 8:,.2f} bytes", level)
    return MapResult(mapping, counts, mapping_cost(counts, arch), 0)


def _overflowing_level(counts, arch) -> int | None:
    """The first level whose tiles overflow it, by the mapper's ``_exact_fit`` with only that
    level's capacity kept (for the message; the decision is ``_exact_fit``'s on all levels)."""
    import dataclasses

    from accelsim.map.mapper import _exact_fit

    for i, level in enumerate(arch.levels):
        if level.capacity_bits is None:
            continue
        only = tuple(lv if j == i else dataclasses.replace(lv, capacity_bits=None)
                     for j, lv in enumerate(arch.levels))
        if not _exact_fit(counts, dataclasses.replace(arch, levels=only)):
            return i
    return None
