"""Silicon area of a design, per component, from its hierarchy (a pure function of the config).

Primitives and their sources are in ``accelsim/hw/data/technology_nodes.yaml``:

* **SRAM** levels (more than ``register_file_max_bytes`` per instance): CACTI's area per bit at
  45 nm by bank size (1-port), times the node's published 6T cell over the 45 nm cell, times
  ``sram_two_port_factor`` when the level has a separate write port; one macro per bank.
* **Register files** (small per-PE levels): bits x Aladdin's 40 nm register bit.
* **MACs**: an ``a x w`` array multiplier (Aladdin's 32x32 block x a*w/1024) plus an accumulator
  adder of ``accumulator_bits`` (Aladdin's 32-bit adder, linear in width), per MAC lane.
* **Network**: per PE, a port register per tensor (its operand width) and, on a multicast
  network, a tag comparator per tensor (Eyeriss' row/column ID check); a systolic design's links
  are the pipeline registers of the operands it passes between neighbours (flat form: its PE
  registers, nothing added).
* **PE control**: an address counter per per-PE level of more than one word.
* **Sparse logic** the design declares: zero detectors and a gating latch per MAC lane
  (``gate_zero_operands``); an index adder, zero detector and index counter per lane (one-sided
  skipping); a bitmask AND, prefix sum and priority encoder over ``sparse_chunk_bits`` per lane
  (two-sided skipping, SparTen's inner join); operand queues (``operand_queue_depth``);
  a compressor or decompressor per compressed tensor format and place, as wide as the place
  (DRAM boundary: ``dram_interface_bits`` of values; on-chip: the innermost shared level's read
  port; a level's own formats: its port, x its instances).
* **Vector unit** (when described): a multiplier, adder and two registers per lane.

Logic scales from Aladdin's 40 nm to the node by Stillmaker-Baas' area factors. The sum of
cells and macros is multiplied by ``layout_overhead`` (placement utilisation, routing, power
grid, clock tree; calibrated on the TPU v1 floor plan) to estimate the *core* area; pads and the
I/O ring (die minus core) are not modelled. Area does not depend on voltage or clock.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from accelsim.errors import AccelsimError, brief
from accelsim.hw.energy import load_table, technology_data
from accelsim.hw.schema import HardwareConfig, StorageLevel

COMPRESSED = ("bitmap", "run_length", "csr", "coo")
#: Where the primitives come from: the packaged tables (always available) or the Accelergy
#: group's hwcomponents models (optional extra ``accelsim[hwcomponents]``, Python >= 3.12).
BACKENDS = ("builtin", "hwcomponents")
BACKEND_ENV = "ACCELSIM_AREA_BACKEND"


@dataclass(frozen=True)
class AreaComponent:
    """One component's area: all its instances, layout overhead included."""

    name: str
    kind: str        # "sram", "registers" or "logic"
    instances: int
    mm2: float
    detail: str
    sram_bytes: float = 0.0   # SRAM capacity the component holds (0 for logic and registers)

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "instances": self.instances,
                "mm2": self.mm2, "detail": self.detail, "sram_bytes": self.sram_bytes}


@dataclass(frozen=True)
class AreaBreakdown:
    """Area of one design at one node: per component and in total (core estimate, mm^2)."""

    node_nm: int
    layout_overhead: float
    gate_equivalent_um2: float   # one NAND2 at the node
    components: tuple[AreaComponent, ...]

    @property
    def total_mm2(self) -> float:
        return sum(c.mm2 for c in self.components)

    @property
    def cells_mm2(self) -> float:
        """Cells and macros only (before the layout overhead)."""
        return self.total_mm2 / self.layout_overhead

    @property
    def logic_gates(self) -> float:
        """Logic and registers in NAND2 gate equivalents (cell area / one NAND2 at the node)."""
        logic = sum(c.mm2 for c in self.components if c.kind != "sram") / self.layout_overhead
        return logic * 1e6 / self.gate_equivalent_um2

    @property
    def sram_bytes(self) -> float:
        return sum(c.sram_bytes for c in self.components)

    def by_name(self) -> dict[str, float]:
        return {c.name: c.mm2 for c in self.components}

    def as_dict(self) -> dict:
        return {"node_nm": self.node_nm, "total_mm2": self.total_mm2, "cells_mm2": self.cells_mm2,
                "layout_overhead": self.layout_overhead, "logic_gates": self.logic_gates,
                "sram_bytes": self.sram_bytes,
                "components": [c.as_dict() for c in self.components]}


def _loglog_clamped(points: dict, x: float) -> float:
    xs = sorted(float(k) for k in points)
    ys = {float(k): float(v) for k, v in points.items()}
    if x <= xs[0]:
        return ys[xs[0]]
    if x >= xs[-1]:
        return ys[xs[-1]]
    lo = max(k for k in xs if k <= x)
    hi = min(k for k in xs if k > x)
    t = math.log(x / lo) / math.log(hi / lo)
    return math.exp(math.log(ys[lo]) + t * (math.log(ys[hi]) - math.log(ys[lo])))


def logic_area_scale(node_nm: float, from_nm: float = 45.0) -> float:
    """Logic area at ``node_nm`` over that at ``from_nm`` (Stillmaker-Baas, log-log interpolated)."""
    table = technology_data()["stillmaker_baas_area_vs_45nm"]
    return _loglog_clamped(table, node_nm) / _loglog_clamped(table, from_nm)


def sram_area_scale(node_nm: float) -> float:
    """SRAM area at ``node_nm`` over 45 nm: the published 6T cells' ratio."""
    cells = technology_data()["sram_bitcell_um2"]
    return _loglog_clamped(cells, node_nm) / float(cells[45])


def node_of(hw: HardwareConfig) -> int:
    """The node whose area data a design uses: ``technology.node_nm`` or its table's node."""
    if hw.technology.node_nm is not None:
        return int(hw.technology.node_nm)
    return int(load_table(hw.technology.energy_table)["node_nm"])


class _Primitives:
    """Areas of the building blocks at one node, um^2 (before layout overhead)."""

    def __init__(self, node_nm: int):
        a = technology_data()["area"]
        self.a = a
        self.logic_scale = logic_area_scale(node_nm, float(a["logic_node_nm"]))
        self.sram_scale = sram_area_scale(node_nm)
        self.ge = float(a["gate_equivalent_um2_45nm"]) * logic_area_scale(node_nm)

    def adder(self, bits: int) -> float:
        return float(self.a["adder_32b_um2"]) * bits / 32.0 * self.logic_scale

    def register(self, bits: float) -> float:
        return float(self.a["register_bit_um2"]) * bits * self.logic_scale

    def comparator(self, bits: int) -> float:
        return float(self.a["comparator_32b_um2"]) * bits / 32.0 * self.logic_scale

    def multiplier(self, a_bits: int, w_bits: int) -> float:
        return float(self.a["multiplier_32x32_um2"]) * a_bits * w_bits / 1024.0 * self.logic_scale

    def counter(self, bits: int) -> float:
        return float(self.a["counter_32b_um2"]) * bits / 32.0 * self.logic_scale

    def gates(self, count: float) -> float:
        return count * self.ge

    def sram(self, bits: float, banks: int, two_port: bool, word_bits: int) -> float:
        per_bit = _loglog_clamped(self.a["sram_um2_per_bit_45nm"], bits / banks)
        factor = float(self.a["sram_two_port_factor"]) if two_port else 1.0
        return bits * per_bit * self.sram_scale * factor


def _log2(n: float) -> int:
    return max(1, math.ceil(math.log2(max(n, 2))))


def _codec(prim: _Primitives, fmt: str, value_bits: int, run_bits: int, index_bits: int,
           lanes: int) -> float:
    """A compressor or decompressor of a tensor format handling ``lanes`` values per cycle (um^2)."""
    if fmt == "bitmap":   # prefix sum over the lanes' mask bits + value and mask registers
        return prim.adder(lanes * _log2(lanes) // 2) + prim.register(lanes * (value_bits + 1))
    if fmt == "run_length":   # per lane: zero detector, run counter, value + run register
        per = prim.comparator(value_bits) + prim.counter(run_bits) + prim.register(value_bits + run_bits)
    else:                     # csr/coo, per lane: zero detector, index counter, value + index register
        per = prim.comparator(value_bits) + prim.counter(index_bits) + prim.register(value_bits + index_bits)
    return lanes * per


def _size(nbytes: int) -> str:
    return f"{nbytes:,} B" if nbytes < 1024 else f"{nbytes / 1024:,.1f} KiB"


def _level_component(prim: _Primitives, lv: StorageLevel, pes: int) -> tuple[str, float, str, float]:
    """(kind, um^2 for all instances, detail, SRAM bytes) of one storage level."""
    count = pes if lv.instances == "per_pe" else 1
    where = f" x {count} PEs" if lv.instances == "per_pe" else ""
    if lv.size_bytes is None:
        return "sram", 0.0, "unbounded: no area counted", 0.0
    bits = lv.size_bytes * 8
    if lv.size_bytes <= int(prim.a["register_file_max_bytes"]):
        return "registers", prim.register(bits) * count, f"{lv.size_bytes:,} B registers{where}", 0.0
    two_port = lv.write_words_per_cycle is not None
    banks = f", {lv.banks} banks" if lv.banks > 1 else ""
    ports = ", 2 ports" if two_port else ""
    return ("sram", prim.sram(bits, lv.banks, two_port, lv.word_bits) * count,
            f"{_size(lv.size_bytes)} SRAM{banks}{ports}{where}", float(lv.size_bytes * count))


class _HwComponentsPrimitives(_Primitives):
    """Primitives from hwcomponents models (``get_area``, m^2) at the node; the gate-equivalent
    area, sparse-logic gate counts and layout overhead stay the packaged ones."""

    def __init__(self, node_nm: int, module):
        super().__init__(node_nm)
        self.hwc = module
        self.tech_node_m = node_nm * 1e-9

    def _area(self, component: str, **attributes) -> float:
        try:
            value = float(self.hwc.get_area(component, {"tech_node": self.tech_node_m, **attributes}))
        except Exception as exc:  # a model error is one clear line, never a silent fallback
            raise AccelsimError(f"area backend hwcomponents: no {component} area for {attributes} "
                                f"({type(exc).__name__}: {brief(str(exc))})") from None
        return value * 1e12

    def adder(self, bits: int) -> float:
        return self._area("Adder", width=bits)

    def register(self, bits: float) -> float:
        return self._area("Register", width=max(1, int(round(bits))))

    def comparator(self, bits: int) -> float:
        return self._area("Comparator", width=bits)

    def multiplier(self, a_bits: int, w_bits: int) -> float:
        return self._area("Multiplier", width_a=a_bits, width_b=w_bits)

    def counter(self, bits: int) -> float:
        return self._area("Counter", width=bits)

    def sram(self, bits: float, banks: int, two_port: bool, word_bits: int) -> float:
        depth = max(1, int(round(bits / word_bits)))
        return self._area("SRAM", width=word_bits, depth=depth, n_rw_ports=2 if two_port else 1,
                          n_banks=banks)


def backend_name(backend: str | None = None) -> str:
    """The area backend: ``backend``, else ``$ACCELSIM_AREA_BACKEND``, else ``builtin``."""
    name = backend or os.environ.get(BACKEND_ENV, "").strip() or "builtin"
    if name not in BACKENDS:
        raise AccelsimError(f"area backend {name!r}: expected one of {', '.join(BACKENDS)}")
    return name


def _primitives(node_nm: int, backend: str | None) -> _Primitives:
    if backend_name(backend) == "builtin":
        return _Primitives(node_nm)
    try:
        import hwcomponents
    except ImportError:
        raise AccelsimError("area backend 'hwcomponents' needs the hwcomponents package (Python "
                            ">= 3.12): pip install 'accelsim[hwcomponents]'; the built-in tables "
                            "(backend 'builtin', the default) need nothing") from None
    return _HwComponentsPrimitives(node_nm, hwcomponents)


def area_of(hw: HardwareConfig, backend: str | None = None) -> AreaBreakdown:
    """Per-component and total area of ``hw`` (mm^2, core estimate) at its node.

    ``backend``: ``builtin`` (the packaged tables, default) or ``hwcomponents``; None reads
    ``$ACCELSIM_AREA_BACKEND``.
    """
    from accelsim.hw.hierarchy import levels_of

    node = node_of(hw)
    prim = _primitives(node, backend)
    overhead = float(prim.a["layout_overhead"])
    chunk = int(prim.a["sparse_chunk_bits"])
    pes, lanes = hw.num_pes, hw.pe_array.macs_per_pe
    p = hw.precision
    levels = levels_of(hw)
    rows: list[tuple[str, str, int, float, str, float]] = []   # name, kind, n, um2, detail, sram B

    for lv in levels:
        kind, um2, detail, sram_b = _level_component(prim, lv, pes)
        rows.append((lv.name, kind, pes if lv.instances == "per_pe" else 1, um2, detail, sram_b))

    mac = prim.multiplier(p.activation_bits, p.weight_bits) + prim.adder(p.accumulator_bits)
    rows.append(("mac", "logic", pes * lanes, mac * pes * lanes,
                 f"{p.activation_bits}x{p.weight_bits}-bit multiply, {p.accumulator_bits}-bit "
                 f"accumulate x {pes * lanes:,} lanes", 0.0))

    if hw.memory_hierarchy is not None and hw.pe_array.systolic:
        from accelsim.sim.systolic import passed_bits_per_slot

        bits = passed_bits_per_slot(hw.pe_array.dataflow, p.activation_bits, p.weight_bits,
                                    p.accumulator_bits)
        rows.append(("noc", "logic", pes, prim.register(bits) * pes,
                     f"systolic links: {bits:g}-bit pipeline registers x {pes:,} PEs", 0.0))
    elif hw.memory_hierarchy is not None:
        shared = [lv for lv in levels if lv.instances == "one"]
        multicast = bool(shared) and shared[-1].network == "multicast"
        widths = (p.activation_bits, p.weight_bits, p.accumulator_bits)
        noc = sum(prim.register(b) + (prim.comparator(8) if multicast else 0.0) for b in widths)
        rows.append(("noc", "logic", pes, noc * pes,
                     f"{'multicast' if multicast else 'unicast'} ports (3 tensors) x {pes:,} PEs", 0.0))
    counters = 0.0
    for lv in levels:
        if lv.instances == "per_pe" and lv.size_bytes:
            words = lv.size_bytes * 8 / lv.word_bits
            if words > 1:
                counters += prim.counter(_log2(words))
    if counters:
        rows.append(("pe_control", "logic", pes, counters * pes, f"address counters x {pes:,} PEs", 0.0))

    sparse = _sparse_components(hw, prim, levels, chunk)
    rows.extend(sparse)

    vu = hw.vector_unit
    if vu is not None:
        per_lane = (prim.multiplier(p.activation_bits, p.activation_bits) + prim.adder(p.accumulator_bits)
                    + prim.register(2 * p.activation_bits))
        rows.append(("vector_unit", "logic", vu.lanes, per_lane * vu.lanes, f"{vu.lanes} lanes", 0.0))

    comps = tuple(AreaComponent(name, kind, n, um2 * 1e-6 * overhead, detail, sram_b)
                  for name, kind, n, um2, detail, sram_b in rows)
    return AreaBreakdown(node, overhead, prim.ge, comps)


def _sparse_components(hw: HardwareConfig, prim: _Primitives, levels, chunk: int) -> list:
    """The sparse logic ``hw`` declares (um^2 rows, see the module docstring)."""
    p, s = hw.precision, hw.sparsity
    pes, lanes = hw.num_pes, hw.pe_array.macs_per_pe * hw.num_pes
    rows = []
    if s.gate_zero_operands:
        per = prim.comparator(p.activation_bits) + prim.comparator(p.weight_bits) + prim.register(1)
        rows.append(("zero_gating", "logic", lanes, per * lanes,
                     "zero detectors + gating latch per lane", 0.0))
    if s.skip_zero_activations and s.skip_zero_weights:
        per = (prim.gates(1.25 * chunk) + prim.adder(chunk * _log2(chunk) // 2)
               + prim.gates(0.5 * chunk * _log2(chunk)))
        rows.append(("sparse_join", "logic", lanes, per * lanes,
                     f"bitmask AND + prefix sum + priority encoder over {chunk} bits per lane", 0.0))
    elif s.skip_zero_activations or s.skip_zero_weights:
        fmt = hw.storage.activations if s.skip_zero_activations else hw.storage.weights
        bits = p.activation_bits if s.skip_zero_activations else p.weight_bits
        per = prim.adder(fmt.index_bits) + prim.comparator(bits) + prim.counter(fmt.index_bits)
        rows.append(("sparse_skip", "logic", lanes, per * lanes,
                     "index adder + zero detector + index counter per lane", 0.0))
    depth = hw.pe_array.operand_queue_depth
    if depth:
        bits = depth * (p.activation_bits + p.weight_bits)
        rows.append(("operand_queues", "registers", pes, prim.register(bits) * pes,
                     f"{depth} operand pairs x {pes:,} PEs", 0.0))
    widths = {"activations": p.activation_bits, "weights": p.weight_bits, "outputs": p.activation_bits}
    codecs, count = 0.0, 0
    shared = [lv for lv in levels if lv.instances == "one"]
    port = shared[-1].read_words_per_cycle if shared else None
    port_lanes = max(1, int(port)) if port else 1
    for tensor, width in widths.items():
        fmt = getattr(hw.storage, tensor)
        dram_lanes = max(1, int(prim.a["dram_interface_bits"]) // width)
        for lf, lanes in ((fmt.off_chip, dram_lanes), (fmt.on_chip, port_lanes)):
            if lf.format in COMPRESSED:
                codecs += _codec(prim, lf.format, width, lf.run_bits, lf.index_bits, lanes)
                count += 1
    level_tensor = {"inputs": "activations", "weights": "weights", "outputs": "outputs"}
    for lv in levels:
        n = pes if lv.instances == "per_pe" else 1
        lanes = max(1, int(lv.read_words_per_cycle)) if lv.read_words_per_cycle else 1
        for tensor, lf in lv.formats.items():
            if lf.format in COMPRESSED:
                codecs += n * _codec(prim, lf.format, widths[level_tensor[tensor]], lf.run_bits,
                                     lf.index_bits, lanes)
                count += n
    if codecs:
        rows.append(("codecs", "logic", count, codecs,
                     "compressors/decompressors of compressed formats", 0.0))
    return rows
