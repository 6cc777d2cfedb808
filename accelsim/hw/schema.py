"""Typed, immutable hardware description (schema version 1).

Each section is a frozen dataclass whose fields carry their validation rule in
``metadata`` (``rule``: a :mod:`accelsim.hw.rules` checker, ``doc``: one line).
``accelsim.hw.load`` turns YAML into these objects; ``to_dict`` turns them back.
Units are part of every field name (``_mhz``, ``_kib``, ``_bytes``, ``_pj``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import cached_property
from typing import Any, Mapping

from accelsim.hw import rules

SCHEMA_VERSION = 1

DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary", "row_stationary")
LOOP_NEST_ONLY_DATAFLOWS = ("row_stationary",)   # need a memory_hierarchy (no systolic form)
MEMORY_TENSORS = ("weights", "inputs", "outputs")
LEVEL_INSTANCES = ("one", "per_pe")
NETWORKS = ("multicast", "unicast")
MAPPING_OBJECTIVES = ("energy", "latency", "edp")
WEIGHT_RESIDENCY = ("streamed", "resident", "auto")
ACTIVATION_RESIDENCY = ("streamed", "auto")
SYNC_GROUPS = ("array", "row", "column", "decoupled")
WEIGHT_LAYOUTS = ("input_major", "output_major")   # accelsim.sim.fetch.LAYOUTS
STORAGE_FORMATS = ("dense", "bitmap", "run_length", "csr", "coo", "ranked")
RANK_FORMATS = ("U", "UOP", "CP", "B", "RLE")     # accelsim.sim.fibertree
GATE_OPERANDS = ("inputs", "weights")
ACTION_KINDS = ("gate", "skip")
ENERGY_ACTIONS = (
    "mac_pj", "gated_mac_pj", "spad_pj_per_bit", "glb_pj_per_bit", "noc_pj_per_bit_hop",
    "dram_pj_per_bit", "pe_leakage_pj_per_cycle", "glb_leakage_pj_per_cycle",
    "pe_clock_pj_per_cycle",
)


def spec(rule, doc: str, default: Any = rules.REQUIRED):
    """A dataclass field with a validation rule and a one-line description."""
    meta = {"rule": rule, "doc": doc}
    if default is rules.REQUIRED:
        return field(metadata=meta)
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Technology:
    clock_mhz: float = spec(rules.bounded(rules.positive_float, 1e5), "clock frequency")
    energy_table: str = spec(rules.energy_table_name, "packaged energy table (see `accelsim hw tables`)",
                             "horowitz_45nm")
    voltage_v: float | None = spec(rules.optional(rules.bounded(rules.positive_float, 10.0)),
                                   "supply voltage; dynamic energy scales with (V/V_nominal)^2; "
                                   "default: the table's nominal voltage", None)
    energy_overrides: Mapping[str, float] = spec(
        rules.mapping_of(rules.one_of(ENERGY_ACTIONS), rules.non_negative_float),
        "per-action energies that replace the table's derived values, given at the table's "
        "nominal voltage and scaled to voltage_v like table values (dynamic x (V/V_nominal)^2, "
        "leakage x V/V_nominal, dram_pj_per_bit unscaled) (keys: "
        + ", ".join(ENERGY_ACTIONS) + ")", {})
    node_nm: int | None = spec(rules.optional(rules.technology_node),
                               "technology node: selects the node's energy table (unless energy_table "
                               "names another table of that node) and its area data (accelsim.hw.area); "
                               "null: the energy table's node", None)

    def __post_init__(self) -> None:
        from accelsim.hw.energy import resolve_energy_table

        object.__setattr__(self, "energy_table", resolve_energy_table(self.energy_table, self.node_nm))


@dataclass(frozen=True)
class Precision:
    activation_bits: int = spec(rules.int_range(1, 32), "bits per activation", 8)
    weight_bits: int = spec(rules.int_range(1, 32), "bits per weight", 8)
    accumulator_bits: int = spec(rules.int_range(1, 64), "bits per partial sum", 32)


@dataclass(frozen=True)
class PEArray:
    rows: int = spec(rules.bounded(rules.positive_int, 4096), "PE rows")
    cols: int = spec(rules.bounded(rules.positive_int, 4096), "PE columns")
    dataflow: str = spec(rules.one_of(DATAFLOWS), "what stays in the PE")
    macs_per_pe: int = spec(rules.bounded(rules.positive_int, 1024), "MAC lanes per PE", 1)
    sync: str = spec(rules.one_of(SYNC_GROUPS),
                     "synchronisation group: PEs that finish a fold together", "array")
    work_queue_depth: int = spec(rules.bounded(rules.positive_int, 65536),
                                 "row/column/decoupled sync: folds a group may run ahead of the slowest", 2)
    operand_queue_depth: int | None = spec(rules.optional(rules.bounded(rules.positive_int, 1 << 20)),
                                           "operand pairs buffered per PE (area of the "
                                           "operand queues; the loop-nest model's cycle "
                                           "fidelity does not model their back-pressure; "
                                           "null = unbounded)", None)
    systolic: bool = spec(rules.boolean,
                          "with a memory_hierarchy: operands pass between neighbouring PEs in "
                          "skewed streams; each layer runs as its im2col GEMM with SCALE-Sim's "
                          "mapping and every fold pays the array's fill and drain "
                          "(accelsim.sim.systolic)", False)


@dataclass(frozen=True)
class Sparsity:
    skip_zero_activations: bool = spec(rules.boolean, "remove pairs whose activation is zero", False)
    skip_zero_weights: bool = spec(rules.boolean, "remove pairs whose weight is zero", False)
    gate_zero_operands: bool = spec(rules.boolean,
                                    "keep the cycle of a zero pair but not its MAC/read energy", False)
    skip_weight_fetch: bool = spec(rules.boolean,
                                   "a linear layer's zero inputs skip fetching their weights from DRAM "
                                   "(and holding them in the buffer), at the granularity of "
                                   "dram.weight_layout and dram.burst_bytes (accelsim.sim.fetch)", False)
    skip_padding: bool = spec(rules.boolean,
                              "with skip_zero_activations, also skip the MAC slots whose "
                              "activation is a padding position (false: they are issued, as the "
                              "hardware studied and Timeloop do; a padding MAC is never effectual, "
                              "and gate_zero_operands gates it)", False)
    gate_on: tuple = spec(rules.subset_of(GATE_OPERANDS),
                          "with gate_zero_operands, the operands whose zero gates a MAC slot (its MAC, "
                          "weight read and psum update): Eyeriss gates on zero inputs only; "
                          "memory_hierarchy designs only", ("inputs", "weights"))


@dataclass(frozen=True)
class Scratchpad:
    input_bytes: int = spec(rules.bounded(rules.non_negative_int, 1 << 30), "per-PE input-activation scratchpad")
    weight_bytes: int = spec(rules.bounded(rules.non_negative_int, 1 << 30), "per-PE weight scratchpad")
    psum_bytes: int = spec(rules.bounded(rules.non_negative_int, 1 << 30), "per-PE partial-sum scratchpad")


@dataclass(frozen=True)
class GlobalBuffer:
    size_kib: float = spec(rules.bounded(rules.positive_float, 2.0 ** 30), "shared on-chip buffer capacity")
    words_per_cycle: int | None = spec(rules.optional(rules.bounded(rules.positive_int, 1 << 20)),
                                       "words read or written per cycle, all banks (null = unbounded)")
    banks: int = spec(rules.bounded(rules.positive_int, 65536), "SRAM banks (energy per access uses the bank size)", 1)
    word_bits: int = spec(rules.bounded(rules.positive_int, 4096), "bits per global-buffer word", 16)


#: Coordinates of each tensor in DRAM (``accelsim.map.nest.LoopNest.tensor_dims`` order; the
#: inputs' ``H``/``W`` are the padded rows and columns): the names ``dram.layout.*.order`` lists.
LAYOUT_DIMS = {"weights": ("G", "K", "C", "R", "S"), "inputs": ("N", "G", "C", "H", "W"),
               "outputs": ("N", "G", "K", "P", "Q")}


def _layout_order(value: Any, path: str) -> tuple:
    """A list of dimension names (checked against the tensor in :class:`DRAMLayout`)."""
    return rules.list_of(rules.string, 5)(value, path)


def _layout_base(value: Any, path: str) -> int:
    """A byte address (an integer; YAML's ``0x4000000`` form works)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise rules.RuleError(path, f"expected a byte address (a non-negative integer, e.g. "
                                    f"0x4000000), got {value!r}")
    if value > rules.MAX_INT:
        raise rules.RuleError(path, f"expected at most {rules.MAX_INT:,}, got {value}")
    return value


@dataclass(frozen=True)
class TensorLayout:
    """How one tensor lies in DRAM for the access stream (accelsim.sim.dram_stream)."""

    order: tuple | None = spec(rules.optional(_layout_order),
                               "dimension order, outermost first: a permutation of the tensor's "
                               "dims (weights G K C R S, inputs N G C H W, outputs N G K P Q); G may "
                               "be left out (then it is outermost); with tile_major, the order "
                               "inside a tile (null: the order above)", None)
    tile_major: bool = spec(rules.boolean,
                            "store the tensor tile by tile: the tiles of the first level below DRAM "
                            "that keeps it, in the order the loops above that level visit them, each "
                            "tile contiguous (inputs: the grid of the tile's step; a halo lies in the "
                            "neighbouring tiles)", False)
    base: int | None = spec(rules.optional(_layout_base),
                            "byte address of the tensor's region, aligned to dram.burst_bytes "
                            "(null: after the regions before it, on a 1 MiB boundary)", None)


@dataclass(frozen=True)
class DRAMLayout:
    """Declared DRAM layouts of the access stream's tensors (default: row-major, packed)."""

    weights: TensorLayout = spec(rules.section(TensorLayout), "layout of the weights", TensorLayout())
    inputs: TensorLayout = spec(rules.section(TensorLayout), "layout of the input activations",
                                TensorLayout())
    outputs: TensorLayout = spec(rules.section(TensorLayout), "layout of the outputs", TensorLayout())

    def __post_init__(self) -> None:
        bases = {}
        for name in MEMORY_TENSORS:
            lay = getattr(self, name)
            path = f"dram.layout.{name}"
            if lay.order is not None:
                object.__setattr__(self, name, replace(lay, order=_check_order(lay.order, name, path)))
            if lay.base is not None:
                if lay.base in bases:
                    raise rules.RuleError(f"{path}.base", f"{lay.base:#x} is also the base of "
                                                          f"dram.layout.{bases[lay.base]}; regions "
                                                          "may not overlap")
                bases[lay.base] = name

    def full_order(self, name: str) -> tuple[str, ...]:
        """The dimension order of tensor ``name`` (``weights``, ...), G included."""
        order = getattr(self, name).order
        return LAYOUT_DIMS[name] if order is None else order


def _check_order(order: tuple, name: str, path: str) -> tuple[str, ...]:
    """``order`` with G in front when left out: a permutation of the tensor's dims."""
    dims = LAYOUT_DIMS[name]
    for i, d in enumerate(order):
        if d not in dims:
            raise rules.RuleError(f"{path}.order[{i}]", f"{d!r} is not a dimension of the {name}; "
                                                        f"expected one of {', '.join(dims)}")
        if d in order[:i]:
            raise rules.RuleError(f"{path}.order[{i}]", f"dimension {d!r} is listed twice")
    full = order if "G" in order else ("G",) + tuple(order)
    missing = [d for d in dims if d not in full]
    if missing:
        raise rules.RuleError(f"{path}.order", f"missing dimension(s) {', '.join(missing)}; "
                                               f"expected a permutation of {', '.join(dims)} "
                                               "(G may be left out: outermost)")
    return tuple(full)


@dataclass(frozen=True)
class DRAM:
    ideal: bool = spec(rules.boolean, "unlimited bandwidth (no memory stalls); energy still counted", False)
    bandwidth_gb_per_s: float | None = spec(rules.optional(rules.bounded(rules.positive_float, 1e6)),
                                            "off-chip bandwidth in GB/s (required unless ideal)", None)
    burst_bytes: int = spec(rules.bounded(rules.positive_int, 1 << 20),
                            "bytes of one DRAM burst, the smallest fetch (sparsity.skip_weight_fetch)", 64)
    weight_layout: str = spec(rules.one_of(WEIGHT_LAYOUTS),
                              "order of a linear layer's weights in DRAM: input_major (each input's "
                              "weights contiguous) or output_major (PyTorch's row-major (out, in))",
                              "input_major")
    device: str | None = spec(rules.optional(rules.dram_device),
                              "DRAM device preset (accelsim.dram, docs/dram.md); when given, "
                              "bandwidth_gb_per_s defaults to its peak x channels (a smaller value is a "
                              "sustained limit; a larger one is an error) and dram_pj_per_bit comes "
                              "from the device model (DRAM.device_pj_per_bit); null: bandwidth and the "
                              "energy table's pJ/bit as given", None)
    channels: int | None = spec(rules.optional(rules.bounded(rules.positive_int, 1024)),
                                "channels of dram.device (null: the preset's, e.g. one HBM stack); "
                                "only with device", None)
    address_mapping: str | None = spec(rules.optional(rules.dram_address_mapping),
                                       "dram.device address mapping: row_bank_column, bank_interleaved, "
                                       "row_contiguous or six fields joined by '-' (null: "
                                       "row_bank_column); only with device", None)
    page_policy: str | None = spec(rules.optional(rules.one_of(("open", "closed"))),
                                   "dram.device row-buffer policy (null: open); only with device", None)
    access_stream: bool = spec(rules.boolean,
                               "designs with a memory_hierarchy: time and price DRAM by each layer's "
                               "access stream (its fills, drains and spills as address ranges under "
                               "dram.layout) through dram.device; false: the "
                               "device's sequential-read price per bit and bandwidth_gb_per_s; only "
                               "with device", False)
    layout: DRAMLayout = spec(rules.section(DRAMLayout),
                              "access stream: each tensor's layout in DRAM (order, tile_major, "
                              "base; docs/dram.md); only with device", DRAMLayout())

    def __post_init__(self) -> None:
        for name in MEMORY_TENSORS:
            base = getattr(self.layout, name).base
            if base is not None and base % self.burst_bytes:
                raise rules.RuleError(f"dram.layout.{name}.base",
                                      f"{base:#x} is not a multiple of dram.burst_bytes "
                                      f"({self.burst_bytes}); align the region to a burst")
        if self.device is None:
            if self.layout != DRAMLayout():
                raise rules.RuleError("dram.layout", "is only meaningful with dram.device (the "
                                                     "access stream); name a device or drop it")
            for name in ("channels", "address_mapping", "page_policy"):
                if getattr(self, name) is not None:
                    raise rules.RuleError(f"dram.{name}", "is only meaningful with dram.device; "
                                                          "name a device or drop it")
            if self.access_stream:
                raise rules.RuleError("dram.access_stream", "is only meaningful with dram.device; "
                                                            "name a device or drop it")
            return
        peak = self.device_peak_gb_per_s
        if self.bandwidth_gb_per_s is None:
            if not self.ideal:
                object.__setattr__(self, "bandwidth_gb_per_s", round(peak, 9))
        elif self.bandwidth_gb_per_s > peak * (1 + 1e-9):
            raise rules.RuleError("dram.bandwidth_gb_per_s",
                                  f"{self.bandwidth_gb_per_s:g} GB/s exceeds the peak of dram.device "
                                  f"{self.device} x {self.device_channels} channel(s), {peak:g} GB/s; "
                                  "drop it (the peak is used) or give at most the peak")

    @property
    def device_channels(self) -> int:
        """Channels of ``device`` (the preset's default when not given)."""
        from accelsim.dram.presets import get_device

        return self.channels if self.channels is not None else get_device(self.device).default_channels

    @property
    def device_peak_gb_per_s(self) -> float:
        from accelsim.dram.presets import get_device

        return get_device(self.device).peak_gb_per_s * self.device_channels

    def device_pj_per_bit(self, pattern: str = "sequential") -> float | None:
        """DRAM energy per bit of ``device`` for a read stream of ``burst_bytes`` accesses
        (``sequential`` or ``random``; accelsim.dram.model.pattern_result), or None without a
        device. The stated pattern of the flat accounting is ``sequential``."""
        if self.device is None:
            return None
        from accelsim.dram.patterns import pattern_figures

        return pattern_figures(self.device, self.device_channels, self.address_mapping,
                               self.page_policy or "open", pattern, self.burst_bytes)["pj_per_bit"]


@dataclass(frozen=True)
class LevelFormat:
    """How a tensor is stored at one memory level."""

    format: str = spec(rules.one_of(STORAGE_FORMATS), "storage format", "dense")
    run_bits: int = spec(rules.int_range(1, 32), "run_length: bits of the zero-run field", 4)
    index_bits: int = spec(rules.int_range(1, 32), "csr/coo: bits per coordinate index", 16)
    ranks: tuple = spec(rules.list_of(rules.one_of(RANK_FORMATS), 3, allow_empty=True),
                        "ranked: per-rank formats outer to inner (U, UOP, CP, B, RLE); rank j "
                        "indexes the per-sample tensor's dimension j, the last rank the rest "
                        "(accelsim.sim.fibertree)", ())
    coord_bits: int | None = spec(rules.optional(rules.int_range(1, 32)),
                                  "ranked CP: bits per coordinate (null: enough for the rank)", None)
    offset_bits: int | None = spec(rules.optional(rules.int_range(1, 64)),
                                   "ranked UOP: bits per offset (null: enough for the next rank)", None)


@dataclass(frozen=True)
class TensorFormat:
    """A tensor's storage on chip (global buffer, buffer port) and, if different, in DRAM."""

    format: str = spec(rules.one_of(STORAGE_FORMATS), "storage format on chip", "dense")
    run_bits: int = spec(rules.int_range(1, 32), "run_length: bits of the zero-run field", 4)
    index_bits: int = spec(rules.int_range(1, 32), "csr/coo: bits per coordinate index", 16)
    ranks: tuple = spec(rules.list_of(rules.one_of(RANK_FORMATS), 3, allow_empty=True),
                        "ranked: per-rank formats outer to inner (U, UOP, CP, B, RLE); rank j "
                        "indexes the per-sample tensor's dimension j, the last rank the rest "
                        "(accelsim.sim.fibertree)", ())
    coord_bits: int | None = spec(rules.optional(rules.int_range(1, 32)),
                                  "ranked CP: bits per coordinate (null: enough for the rank)", None)
    offset_bits: int | None = spec(rules.optional(rules.int_range(1, 64)),
                                   "ranked UOP: bits per offset (null: enough for the next rank)", None)
    dram: LevelFormat | None = spec(rules.optional(rules.section(LevelFormat)),
                                    "format in DRAM (e.g. Eyeriss' off-chip run-length coding); "
                                    "null = the on-chip format", None)

    @property
    def on_chip(self) -> LevelFormat:
        return LevelFormat(self.format, self.run_bits, self.index_bits, self.ranks,
                           self.coord_bits, self.offset_bits)

    @property
    def off_chip(self) -> LevelFormat:
        return self.dram if self.dram is not None else self.on_chip


@dataclass(frozen=True)
class Storage:
    activations: TensorFormat = spec(rules.section(TensorFormat), "input activations", TensorFormat())
    weights: TensorFormat = spec(rules.section(TensorFormat), "weights", TensorFormat())
    outputs: TensorFormat = spec(rules.section(TensorFormat), "output activations", TensorFormat())
    raw_network_input: bool = spec(rules.boolean,
                                   "the network's input sits in DRAM raw (dense), as a host or "
                                   "sensor writes it; false: in the activations' DRAM format", True)


@dataclass(frozen=True)
class Residency:
    """What stays on chip between layers and across inferences (network-level memory)."""

    weights: str = spec(rules.one_of(WEIGHT_RESIDENCY),
                        "streamed: every inference (batch) reads its weights from DRAM; resident: "
                        "the network's weights are loaded once and stay in the on-chip buffer "
                        "(an error if they do not fit); auto: resident when they fit", "streamed")
    activations: str = spec(rules.one_of(ACTIVATION_RESIDENCY),
                            "streamed: every layer reads its input from and writes its output to "
                            "DRAM; auto: a layer's output stays on chip as the next layer's input "
                            "when it fits beside the resident weights", "streamed")
    batch: int = spec(rules.int_range(1, 65536),
                      "samples run together (weights fetched once per batch when the mapping "
                      "allows; results stay per inference); `simulate --batch` overrides it", 1)


@dataclass(frozen=True)
class LowPower:
    clock_gating: bool = spec(rules.boolean, "idle PEs draw no clock energy", False)
    power_gating: bool = spec(rules.boolean, "idle PEs draw no leakage, at a wake-up cost", False)
    wakeup_cycles: int = spec(rules.non_negative_int, "cycles to wake a power-gated PE", 0)
    wakeup_energy_pj: float = spec(rules.non_negative_float, "energy to wake a power-gated PE", 0.0)
    min_idle_cycles: int = spec(rules.non_negative_int,
                                "power-gate a PE only when it idles at least this long in a fold", 0)


@dataclass(frozen=True)
class MetadataStorage:
    """A level's metadata kept apart from its data (Sparseloop's metadata storage): the
    metadata bits of its compressed tensors are charged here, at their own energy and port,
    and held in its own capacity (``size_bytes``)."""

    word_bits: int = spec(rules.int_range(1, 4096), "bits per metadata word", 16)
    read_pj: float | None = spec(rules.optional(rules.bounded(rules.non_negative_float, 1e6)),
                                 "energy per metadata word read (null: the level's read energy "
                                 "per bit x word_bits)", None)
    write_pj: float | None = spec(rules.optional(rules.bounded(rules.non_negative_float, 1e6)),
                                  "energy per metadata word written (null: as read_pj)", None)
    read_words_per_cycle: float | None = spec(
        rules.optional(rules.bounded(rules.positive_float, 1e9)),
        "metadata port words per cycle per instance, reads and writes (null = unbounded)", None)
    size_bytes: int | None = spec(
        rules.optional(rules.bounded(rules.positive_int, 2 ** 40)),
        "metadata capacity per instance in bytes (null = unbounded): a tile fits the level only "
        "when its compressed tensors' worst-case metadata (density 1) fits here too", None)


@dataclass(frozen=True)
class LevelAction:
    """A Sparseloop-style action optimisation at one level: the MAC-driven accesses of
    ``target`` there are gated (the access keeps its slot at the gated energy) or skipped
    (nothing moves, no energy, no port time) on the slots where any ``condition_on`` operand is
    zero; at an outer level (not the innermost keeping ``target``), its transfers into the next
    level keeping it, when the co-iterated tile of a ``condition_on`` operand is empty
    (:mod:`accelsim.sim.tile_conditions`)."""

    kind: str = spec(rules.one_of(ACTION_KINDS), "gate or skip")
    target: str = spec(rules.one_of(MEMORY_TENSORS), "the tensor whose accesses are gated/skipped")
    condition_on: tuple = spec(rules.subset_of(GATE_OPERANDS),
                               "operands whose zero triggers it (inputs, weights)")


@dataclass(frozen=True)
class StorageLevel:
    """One on-chip storage level of a ``memory_hierarchy`` (DRAM is always the outermost)."""

    name: str = spec(rules.non_empty_str, "level name (shown in mappings and results)")
    keeps: tuple = spec(rules.subset_of(MEMORY_TENSORS),
                        "tensors held at this level (the others bypass it)")
    instances: str = spec(rules.one_of(LEVEL_INSTANCES),
                          "one shared instance, or one per PE (spatial fan-out = the PE array)", "one")
    size_bytes: int | None = spec(rules.optional(rules.bounded(rules.positive_int, 2 ** 40)),
                                  "capacity per instance in bytes (null = unbounded)", None)
    word_bits: int = spec(rules.int_range(1, 4096), "bits per word (capacity and port width)", 16)
    banks: int = spec(rules.bounded(rules.positive_int, 65536),
                      "SRAM banks (the energy per access of a table-priced level uses the bank size)", 1)
    read_words_per_cycle: float | None = spec(rules.optional(rules.bounded(rules.positive_float, 1e9)),
                                              "read port words per cycle per instance (null = unbounded)",
                                              None)
    write_words_per_cycle: float | None = spec(rules.optional(rules.bounded(rules.positive_float, 1e9)),
                                               "write port words per cycle per instance (fills and "
                                               "updates; null = the read port, shared)", None)
    read_pj: float | None = spec(rules.optional(rules.bounded(rules.non_negative_float, 1e6)),
                                 "energy per word read (null: from the energy table by size)", None)
    write_pj: float | None = spec(rules.optional(rules.bounded(rules.non_negative_float, 1e6)),
                                  "energy per word filled or updated (null: as read_pj)", None)
    network: str = spec(rules.one_of(NETWORKS),
                        "how one read reaches the next level's instances: multicast (counted once) "
                        "or unicast (once per receiver)", "multicast")
    formats: Mapping[str, LevelFormat] = spec(
        rules.mapping_of(rules.one_of(MEMORY_TENSORS), rules.section(LevelFormat)),
        "storage format of a tensor at this level (default: storage.<tensor>'s on-chip format); "
        "a compressed tensor moves its exact compressed size, metadata included", {})
    actions: tuple = spec(rules.list_of(rules.section(LevelAction), 6, allow_empty=True),
                          "gate/skip actions on this level's MAC-driven accesses (the innermost level "
                          "keeping the target), replacing sparsity.gate_zero_operands' default for "
                          "that tensor; at an outer level, on the target's transfers into the next "
                          "level keeping it whose co-iterated condition tile is empty (weights, "
                          "inputs)", ())
    gated_read_pj: float | None = spec(rules.optional(rules.bounded(rules.non_negative_float, 1e6)),
                                       "energy per gated word access (null: the read energy x the "
                                       "table's gated fraction)", None)
    metadata: MetadataStorage | None = spec(
        rules.optional(rules.section(MetadataStorage)),
        "metadata storage of this level's compressed tensors, with its own energy and port "
        "(null: metadata moves with the data, at the level's energy and port)", None)
    double_buffered: bool = spec(rules.boolean,
                                 "two tile buffers: at the cycle fidelity the next step's tiles "
                                 "fill (and the last step's outputs drain) while a step computes",
                                 False)


# Largest mapping.search_size: 16 x 256 = 4,096 candidates, measured at 0.75-3.9 s CPU per
# layer on Timeloop's exercises (tests/test_map_mapper.py CASES); 100,000 took minutes.
MAX_SEARCH_SIZE = 256


@dataclass(frozen=True)
class MappingOptions:
    """How the loop-nest model maps layers (used with a ``memory_hierarchy``)."""

    objective: str = spec(rules.one_of(MAPPING_OBJECTIVES),
                          "what the mapper minimises per layer", "energy")
    search_size: int = spec(rules.int_range(1, MAX_SEARCH_SIZE),
                            "mapper budget: about 16 x this many candidate mappings are costed per "
                            "layer (0.5-1 ms each: at most about 4 s per layer)", 16)


VECTOR_OP_KINDS = ("add", "mul", "activation", "norm", "pool", "softmax", "concat", "slice",
                   "reduce", "pad", "resize", "elementwise", "embedding", "attention", "other")


@dataclass(frozen=True)
class VectorUnit:
    """The unit that runs the ops between layers (pooling, adds, normalisation, activations)."""

    lanes: int = spec(rules.bounded(rules.positive_int, 1 << 20), "element operations per cycle", 16)
    energy_pj_per_op: float | None = spec(
        rules.optional(rules.bounded(rules.non_negative_float, 1e6)),
        "energy of one element operation at the table's nominal voltage (scaled like table "
        "values); null: the table's integer add at the activation precision", None)
    ops_per_element: Mapping[str, float] = spec(
        rules.mapping_of(rules.one_of(VECTOR_OP_KINDS), rules.bounded(rules.non_negative_float, 1e6)),
        "element operations per output element, per op kind, replacing the defaults "
        "(docs/simulator.md, vector unit) (keys: " + ", ".join(VECTOR_OP_KINDS) + ")", {})
    op_overhead_cycles: int = spec(rules.bounded(rules.non_negative_int, 1 << 20),
                                   "fixed cycles per op (start-up, pipeline fill)", 0)


@dataclass(frozen=True)
class HardwareConfig:
    """A validated accelerator description. Build it with :func:`accelsim.hw.load_hw`."""

    name: str = spec(rules.non_empty_str, "design name")
    technology: Technology = spec(rules.section(Technology), "technology, clock and voltage")
    pe_array: PEArray = spec(rules.section(PEArray), "processing-element array")
    dram: DRAM = spec(rules.section(DRAM), "off-chip memory")
    scratchpad: Scratchpad | None = spec(
        rules.optional(rules.section(Scratchpad)),
        "per-PE scratchpads: shorthand for per-PE levels (required without memory_hierarchy; with "
        "one, each size must equal its level's)", None)
    global_buffer: GlobalBuffer | None = spec(
        rules.optional(rules.section(GlobalBuffer)),
        "shared global buffer: shorthand for one shared level (required without memory_hierarchy; "
        "with one, it must equal the hierarchy's single shared level)", None)
    version: int = spec(rules.one_of((SCHEMA_VERSION,)), "schema version", SCHEMA_VERSION)
    description: str = spec(rules.string, "what this design approximates", "")
    precision: Precision = spec(rules.section(Precision), "operand precisions", Precision())
    sparsity: Sparsity = spec(rules.section(Sparsity), "zero skipping / gating", Sparsity())
    storage: Storage = spec(rules.section(Storage), "storage format per tensor", Storage())
    low_power: LowPower = spec(rules.section(LowPower), "clock and power gating", LowPower())
    memory_hierarchy: tuple | None = spec(
        rules.optional(rules.list_of(rules.section(StorageLevel), 16)),
        "on-chip storage levels, outermost first (DRAM above them is implied); when given, layers "
        "are mapped by the loop-nest model and pe_array.dataflow constrains the mapper; when "
        "absent, global_buffer and scratchpad describe a systolic array, ported into levels "
        "(accelsim hw port) and mapped as SCALE-Sim does", None)
    mapping: MappingOptions = spec(rules.section(MappingOptions), "loop-nest mapper options",
                                   MappingOptions())
    residency: Residency = spec(rules.section(Residency),
                                "weights and activations kept on chip across layers and inferences",
                                Residency())
    vector_unit: VectorUnit | None = spec(
        rules.optional(rules.section(VectorUnit)),
        "vector unit for the ops between layers (null: not described; accelsim.sim.vector_ops "
        "then uses the section's defaults)", None)

    # ---- derived identities -------------------------------------------------
    def to_dict(self) -> dict:
        """Plain nested dict (YAML/JSON-ready); ``load_hw_dict(to_dict())`` gives an equal object."""
        return _to_plain(self)

    @cached_property
    def hash(self) -> str:
        """Stable SHA-256 of the resolved description (sweep cache key; computed once per
        object: the configuration is frozen, and ``dataclasses.replace`` makes a new one)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def num_pes(self) -> int:
        return self.pe_array.rows * self.pe_array.cols

    @property
    def has_sparsity(self) -> bool:
        s = self.sparsity
        return (s.skip_zero_activations or s.skip_zero_weights or s.gate_zero_operands
                or s.skip_weight_fetch)

    def dense_twin(self) -> "HardwareConfig":
        """The same hardware, mapping policy included, with every sparsity feature off and
        dense storage at every level (no per-level formats, no gating or skipping)."""
        levels = self.memory_hierarchy
        if levels is not None:
            levels = tuple(replace(lv, formats={}) for lv in levels)
        return replace(self, name=f"{self.name}-dense", sparsity=Sparsity(), storage=Storage(),
                       memory_hierarchy=levels)


def _to_plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value

