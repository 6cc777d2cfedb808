"""The storage levels of a design: the one source of every on-chip size.

A design's on-chip storage is its ``memory_hierarchy`` (levels outermost first, DRAM above them
implied). The older flat sections are shorthand: ``global_buffer`` is one shared level keeping
every tensor and ``scratchpad`` one per-PE level per tensor. :func:`reconcile_shorthand` runs on
the raw mapping before validation: with a hierarchy, every shorthand field given must equal the
field of the level it describes (otherwise one error naming both) and the shorthand is then
dropped, so the resolved design states each size once; without one, the shorthand is required and
:func:`levels_of` expands it (what ``hw show`` prints and what sizes, constraints and leakage
read); such a file loads ported to the loop-nest model's systolic mode (:mod:`accelsim.hw.port`).
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping

from accelsim.hw import rules
from accelsim.hw.schema import GlobalBuffer, HardwareConfig, Scratchpad, StorageLevel

#: shorthand field -> (level field, factor from the shorthand's unit to the level's)
_GLB_FIELDS = {"size_kib": ("size_bytes", 1024), "words_per_cycle": ("read_words_per_cycle", 1),
               "word_bits": ("word_bits", 1), "banks": ("banks", 1)}
#: scratchpad field -> the tensor its per-PE level keeps
_SPAD_FIELDS = {"input_bytes": "inputs", "weight_bytes": "weights", "psum_bytes": "outputs"}
_LEVEL_DEFAULTS = {f.name: f.default for f in fields(StorageLevel)}


def _rule_of(cls: type, name: str):
    return next(f.metadata["rule"] for f in fields(cls) if f.name == name)


def _shared(levels: list) -> list[tuple[int, dict]]:
    return [(i, lv) for i, lv in enumerate(levels)
            if isinstance(lv, Mapping) and lv.get("instances", "one") == "one"]


def _level_value(level: Mapping, key: str) -> Any:
    return level.get(key, _LEVEL_DEFAULTS.get(key))


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))


def reconcile_shorthand(raw: dict, source: str) -> dict:
    """Check the flat shorthand of a raw design against its ``memory_hierarchy`` and drop it.

    Raises :class:`~accelsim.hw.rules.RuleError` at the first field stated twice with different
    values (naming both), or at shorthand that cannot be told apart (several shared levels, a
    per-PE level keeping several tensors). Without a hierarchy ``raw`` is returned unchanged.
    """
    levels = raw.get("memory_hierarchy")
    if not isinstance(levels, list) or not levels:
        return raw
    out = dict(raw)
    glb = raw.get("global_buffer")
    if isinstance(glb, Mapping):
        rules.check_keys(dict(glb), [f.name for f in fields(GlobalBuffer)], "global_buffer")
        shared = _shared(levels)
        if len(shared) != 1:
            names = ", ".join(repr(lv.get("name")) for _, lv in shared) or "none"
            raise rules.RuleError("global_buffer", "is shorthand for the memory_hierarchy's one "
                                  f"shared level, but it has {len(shared)} ({names}); state the "
                                  "sizes on the levels and drop global_buffer")
        i, level = shared[0]
        for key, value in glb.items():
            value = _rule_of(GlobalBuffer, key)(value, f"global_buffer.{key}")
            target, factor = _GLB_FIELDS[key]
            have = _level_value(level, target)
            if not _same(None if value is None else value * factor, have):
                _twice(f"global_buffer.{key}", value, f"memory_hierarchy[{i}].{target}", have,
                       level.get("name"), factor)
        del out["global_buffer"]
    spad = raw.get("scratchpad")
    if isinstance(spad, Mapping):
        rules.check_keys(dict(spad), [f.name for f in fields(Scratchpad)], "scratchpad")
        per_pe = [(i, lv) for i, lv in enumerate(levels)
                  if isinstance(lv, Mapping) and lv.get("instances") == "per_pe"]
        for i, lv in per_pe:
            keeps = lv.get("keeps") or ()
            if isinstance(keeps, (list, tuple)) and len(keeps) > 1:
                raise rules.RuleError("scratchpad", "is shorthand for per-PE levels that each keep "
                                      f"one tensor, but memory_hierarchy[{i}] keeps {list(keeps)}; "
                                      "state the sizes on the levels and drop scratchpad")
        for key, value in spad.items():
            value = _rule_of(Scratchpad, key)(value, f"scratchpad.{key}")
            tensor = _SPAD_FIELDS[key]
            mine = [(i, lv) for i, lv in per_pe if list(lv.get("keeps") or ()) == [tensor]]
            sizes = [_level_value(lv, "size_bytes") for _, lv in mine]
            have = None if any(s is None for s in sizes) else sum(sizes)
            if not mine and value == 0:
                continue
            if not mine or not _same(value, have):
                where = (f"memory_hierarchy[{mine[0][0]}].size_bytes" if len(mine) == 1 else
                         "the per-PE levels keeping " + tensor)
                _twice(f"scratchpad.{key}", value, where, have if mine else 0,
                       mine[0][1].get("name") if len(mine) == 1 else None, 1)
        del out["scratchpad"]
    return out


def _twice(short: str, value: Any, level_field: str, have: Any, name: Any, factor: int) -> None:
    said = f"{value:g}" if isinstance(value, float) else f"{value}"
    if factor != 1 and value is not None:
        said += f" (= {value * factor:,.0f})"
    named = f" (level {name!r})" if name else ""
    tip = f"; sweeps set memory_hierarchy.{name}.<field>" if name else ""
    raise rules.RuleError(short, f"states {said} but {level_field}{named} is {have}; a size is "
                                 f"stated once: drop the shorthand or make them equal{tip}")


def levels_of(hw: HardwareConfig) -> tuple[StorageLevel, ...]:
    """Every on-chip storage level of ``hw``, outermost first: its ``memory_hierarchy``, or the
    flat shorthand expanded (a shared ``global_buffer`` keeping every tensor, then one per-PE
    level per non-empty scratchpad)."""
    if hw.memory_hierarchy is not None:
        return tuple(hw.memory_hierarchy)
    gb, sp, p = hw.global_buffer, hw.scratchpad, hw.precision
    out = [StorageLevel(name="global_buffer", keeps=("weights", "inputs", "outputs"),
                        instances="one", size_bytes=int(round(gb.size_kib * 1024)),
                        word_bits=gb.word_bits, read_words_per_cycle=gb.words_per_cycle,
                        banks=gb.banks)]
    for name, size, tensor, bits in (("input_spad", sp.input_bytes, "inputs", p.activation_bits),
                                     ("weight_spad", sp.weight_bytes, "weights", p.weight_bits),
                                     ("psum_spad", sp.psum_bytes, "outputs", p.accumulator_bits)):
        if size > 0:
            out.append(StorageLevel(name=name, keeps=(tensor,), instances="per_pe",
                                    size_bytes=size, word_bits=bits))
    return tuple(out)


def shared_levels(hw: HardwareConfig) -> tuple[StorageLevel, ...]:
    """The shared (one-instance) on-chip levels, outermost first."""
    return tuple(lv for lv in levels_of(hw) if lv.instances == "one")


def shared_bytes(hw: HardwareConfig) -> float:
    """Bytes of shared on-chip storage (unbounded levels count 0: no SRAM is declared)."""
    return float(sum(lv.size_bytes or 0 for lv in shared_levels(hw)))


def per_pe_bytes(hw: HardwareConfig) -> int:
    """Bytes of storage in one PE."""
    return int(sum(lv.size_bytes or 0 for lv in levels_of(hw) if lv.instances == "per_pe"))


def onchip_sram_bytes(hw: HardwareConfig) -> float:
    """All on-chip storage: shared levels plus per-PE levels times the PEs."""
    return shared_bytes(hw) + per_pe_bytes(hw) * hw.num_pes


def shared_port(hw: HardwareConfig) -> tuple[float | None, int]:
    """(words per cycle or None for unbounded, bits per word) of the innermost shared level,
    the port the ops between layers use (no shared level: unbounded)."""
    shared = shared_levels(hw)
    if not shared:
        return None, 16
    lv = shared[-1]
    return lv.read_words_per_cycle, lv.word_bits


def sram_bank_kib(hw: HardwareConfig) -> float:
    """KiB of one bank of the largest shared level (the energy table's array size; 1 MiB for a
    design whose shared storage is unbounded or absent)."""
    sized = [lv for lv in shared_levels(hw) if lv.size_bytes]
    if not sized:
        return 1024.0
    lv = max(sized, key=lambda x: x.size_bytes)
    return lv.size_bytes / 1024.0 / lv.banks
