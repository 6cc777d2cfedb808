"""A flat (systolic) design written as the loop-nest model's systolic mode (issue 23).

A design without a ``memory_hierarchy`` describes a systolic array over two flat sections: one
shared ``global_buffer`` keeping every tensor and a ``scratchpad`` per PE. :func:`ported_dict`
writes the same design in the one model's form:

- the ``global_buffer`` becomes one shared level keeping weights, inputs and outputs, with its
  size, banks, word width and port;
- the scratchpad of the dataflow's stationary tensor (OS: partial sums, WS: weights, IS:
  inputs) becomes the one per-PE level, at that tensor's precision;
- the other two scratchpads are dropped: in a systolic array those operands pass between
  neighbouring PEs every cycle through pipeline registers, which the systolic mode charges as
  the chain's hops and register bits (their sizes bought nothing in the flat engine either,
  beyond the check that one cycle's operands fit);
- ``pe_array.systolic`` is set; everything else (precision, sparsity, formats, DRAM, energy,
  low power, residency) is kept as written.

Every flat file loads through this port (:func:`accelsim.hw.load.load_hw_dict`), so every
design runs on the one model; ``accelsim hw port FILE`` prints (or writes, ``-o``) the ported
file, to edit or sweep by level name.
"""
from __future__ import annotations

import copy
import math
from typing import Mapping

from accelsim.errors import ConfigError
from accelsim.hw.schema import HardwareConfig

#: dataflow -> (stationary tensor, its scratchpad field, its precision field, level name)
STATIONARY = {
    "output_stationary": ("outputs", "psum_bytes", "accumulator_bits", "psum_reg"),
    "weight_stationary": ("weights", "weight_bytes", "weight_bits", "weight_reg"),
    "input_stationary": ("inputs", "input_bytes", "activation_bits", "input_reg"),
}


def ported_dict(config: HardwareConfig, source: str = "<config>",
                base: Mapping | None = None) -> dict:
    """The raw description of ``config`` (a design without ``memory_hierarchy``) as a
    systolic design on the loop-nest model. ``base``: the raw mapping to rewrite (the file as
    written, ``extends`` resolved, so defaults stay implicit); default ``config.to_dict()``.
    Raises :class:`ConfigError` naming the field when the design cannot be written so (a
    hierarchy already, a dataflow that is not systolic, no room for the stationary operand)."""
    if config.memory_hierarchy is not None:
        raise ConfigError(source, "memory_hierarchy", "the design is in the one model's form "
                                                      "already (nothing to port)")
    pe = config.pe_array
    if pe.dataflow not in STATIONARY:
        raise ConfigError(source, "pe_array.dataflow",
                          f"a flat design is a systolic array (output_stationary, "
                          f"weight_stationary or input_stationary), got {pe.dataflow!r}")
    tensor, spad_field, bits_field, name = STATIONARY[pe.dataflow]
    size = int(getattr(config.scratchpad, spad_field))
    bits = int(getattr(config.precision, bits_field))
    need = bits if tensor == "outputs" else bits * int(pe.macs_per_pe)
    if size * 8 < need:
        raise ConfigError(source, f"scratchpad.{spad_field}",
                          f"a {pe.dataflow} PE keeps its stationary {tensor}: expected at least "
                          f"{math.ceil(need / 8)} bytes, got {size}")
    gb = config.global_buffer
    raw = copy.deepcopy(dict(base)) if base is not None else config.to_dict()
    for section in ("extends", "global_buffer", "scratchpad", "memory_hierarchy"):
        raw.pop(section, None)
    raw["pe_array"] = dict(raw.get("pe_array") or {}, systolic=True)
    raw["memory_hierarchy"] = [
        {"name": "global_buffer", "keeps": ["weights", "inputs", "outputs"], "instances": "one",
         "size_bytes": int(round(gb.size_kib * 1024)), "banks": int(gb.banks),
         "word_bits": int(gb.word_bits), "read_words_per_cycle": gb.words_per_cycle},
        {"name": name, "keeps": [tensor], "instances": "per_pe", "size_bytes": size,
         "word_bits": bits},
    ]
    return raw


def port(config: HardwareConfig, source: str = "<config>") -> HardwareConfig:
    """:func:`ported_dict`, validated into a :class:`HardwareConfig`."""
    from accelsim.hw.load import load_hw_dict

    return load_hw_dict(ported_dict(config, source), source)
