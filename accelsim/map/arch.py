"""The storage hierarchy a mapping runs on, resolved from a hardware description.

Level 0 is DRAM (keeps every tensor, unbounded); then the ``memory_hierarchy`` levels of the
design, outermost first. Shared levels have one instance; ``per_pe`` levels one per PE. The
spatial fan-out sits at the last shared level: its spatial loops spread over the PE array
(``cols`` along X, ``rows`` along Y), and the last level's spatial loops over the MAC lanes.
"""
from __future__ import annotations

from dataclasses import dataclass

from accelsim.errors import ConfigError
from accelsim.map.nest import TENSORS

TENSOR_OF = {"weights": "W", "inputs": "I", "outputs": "O"}


@dataclass(frozen=True)
class Level:
    name: str
    keeps: frozenset            # of "W", "I", "O"
    per_pe: bool
    capacity_bits: float | None  # per instance; None = unbounded
    word_bits: int
    read_bits_per_cycle: float | None    # per instance; None = unbounded
    write_bits_per_cycle: float | None   # None with a read port: shared with reads
    shared_port: bool
    read_pj_per_bit: float
    write_pj_per_bit: float
    multicast: bool
    gated_pj_per_bit: float | None = None   # a gated access (None: read x the gated fraction)
    #: metadata storage: (read pJ/bit, write pJ/bit, port bits per cycle or None), or None
    metadata: tuple | None = None
    #: two tile buffers (``double_buffered``): the cycle fidelity overlaps refills with compute
    double_buffered: bool = False
    #: metadata storage capacity per instance in bits (None: unbounded, or no metadata storage)
    metadata_capacity_bits: float | None = None
    #: per tensor (W, I, O): the format whose metadata that storage holds, as
    #: ``(format, run_bits, index_bits, ranks, coord_bits, offset_bits)`` (None: none)
    metadata_formats: tuple = (None, None, None)


@dataclass(frozen=True)
class Arch:
    levels: tuple[Level, ...]
    rows: int
    cols: int
    lanes: int
    tensor_bits: tuple[int, int, int]   # W, I, O (psums at accumulator width)
    mac_pj: float
    gated_mac_pj: float
    noc_pj_per_bit_hop: float
    gated_fraction: float
    dram_bytes_per_cycle: float | None

    @property
    def fanout_level(self) -> int:
        """Index of the level whose spatial loops spread over the PE array."""
        shared = [i for i, lv in enumerate(self.levels) if not lv.per_pe]
        return shared[-1]

    @property
    def keeps(self) -> tuple[frozenset, ...]:
        return tuple(lv.keeps for lv in self.levels)

    @property
    def unicast(self) -> frozenset:
        """Levels whose reads reach each child separately (no multicast)."""
        return frozenset(i for i, lv in enumerate(self.levels) if not lv.multicast)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(lv.name for lv in self.levels)


def arch_of(hw, em=None) -> Arch:
    """The :class:`Arch` of a design with a ``memory_hierarchy`` (``em``: its energy model, when
    already derived)."""
    from accelsim.hw.energy import energy_model, load_table, sram_pj_per_bit
    from accelsim.sim.memory import dram_bytes_per_cycle

    if hw.memory_hierarchy is None:
        raise ConfigError(hw.name, "memory_hierarchy", "the loop-nest model needs a memory_hierarchy")
    em = em if em is not None else energy_model(hw)
    table = load_table(hw.technology.energy_table)
    v_nom = float(table["nominal_voltage_v"])
    dyn = ((hw.technology.voltage_v or v_nom) / v_nom) ** 2
    p = hw.precision
    dram = Level("DRAM", frozenset(TENSORS), False, None, 64, None, None, True,
                 em.dram_pj_per_bit, em.dram_pj_per_bit, True)
    levels = [dram]
    for spec in hw.memory_hierarchy:
        per_pe = spec.instances == "per_pe"
        if spec.read_pj is not None:
            read = spec.read_pj * dyn / spec.word_bits
        elif per_pe:
            read = em.spad_pj_per_bit
        else:
            size_kib = (spec.size_bytes / 1024.0 / spec.banks) if spec.size_bytes else 1024.0
            read = sram_pj_per_bit(table, size_kib) * dyn
        write = spec.write_pj * dyn / spec.word_bits if spec.write_pj is not None else read
        rbw = spec.read_words_per_cycle * spec.word_bits if spec.read_words_per_cycle else None
        wbw = spec.write_words_per_cycle * spec.word_bits if spec.write_words_per_cycle else None
        levels.append(Level(
            spec.name, frozenset(TENSOR_OF[t] for t in spec.keeps), per_pe,
            float(spec.size_bytes) * 8 if spec.size_bytes else None, spec.word_bits, rbw, wbw,
            spec.write_words_per_cycle is None, read, write, spec.network == "multicast",
            None if spec.gated_read_pj is None else spec.gated_read_pj * dyn / spec.word_bits,
            _metadata(spec.metadata, read, dyn), bool(spec.double_buffered),
            *_metadata_capacity(hw, spec)))
    return Arch(tuple(levels), hw.pe_array.rows, hw.pe_array.cols, hw.pe_array.macs_per_pe,
                (p.weight_bits, p.activation_bits, p.accumulator_bits), em.mac_pj, em.gated_mac_pj,
                em.noc_pj_per_bit_hop, em.gated_fraction, dram_bytes_per_cycle(hw))


def _metadata(meta, level_read_pj_per_bit: float, dyn: float) -> tuple | None:
    """(read pJ/bit, write pJ/bit, port bits per cycle or None) of a level's metadata storage."""
    if meta is None:
        return None
    read = meta.read_pj * dyn / meta.word_bits if meta.read_pj is not None else level_read_pj_per_bit
    write = meta.write_pj * dyn / meta.word_bits if meta.write_pj is not None else read
    port = meta.read_words_per_cycle * meta.word_bits if meta.read_words_per_cycle else None
    return (read, write, port)


def _metadata_capacity(hw, spec) -> tuple:
    """(capacity bits or None, per-tensor formats) of a level's metadata storage: the formats
    of the compressed weights and inputs it keeps (its own, else the on-chip default), as
    ``sim/loopnest.py`` charges their metadata there."""
    meta = spec.metadata
    if meta is None or meta.size_bytes is None:
        return None, (None, None, None)
    formats = []
    for name, default in (("weights", hw.storage.weights.on_chip),
                          ("inputs", hw.storage.activations.on_chip)):
        fmt = spec.formats.get(name, default)
        keep = name in spec.keeps and fmt.format != "dense"
        formats.append((fmt.format, fmt.run_bits, fmt.index_bits, tuple(fmt.ranks), fmt.coord_bits,
                        fmt.offset_bits) if keep else None)
    return float(meta.size_bytes) * 8, tuple(formats) + (None,)


def tile_metadata_bits(fmt: tuple, shape: tuple, samples: int | None = None) -> float:
    """Worst-case metadata bits (every element non-zero: each format's metadata grows with the
    non-zeros) of a tile of ``shape`` (``samples``: of that many samples of per-sample
    ``shape``) in ``fmt`` (a :attr:`Level.metadata_formats` entry), as ``sim/storage.py`` /
    ``sim/fibertree.py`` size them: bitmap one bit per element, run-length one run field per
    element, csr/coo their indices, ranked formats per rank (per sample). Weights: ``(G*K, C,
    R, S)``, no samples; inputs: ``samples`` images of ``(G*C, H, W)`` (non-ranked formats
    over ``(N, G*C, H, W)``, as the simulator's batched masks)."""
    from accelsim.sim import fibertree, storage

    name, run_bits, index_bits, ranks, coord_bits, offset_bits = fmt
    if name == "ranked":
        return (samples or 1) * fibertree.expected_ranked_bits(tuple(shape), 1.0, ranks, 0, run_bits,
                                                        coord_bits, offset_bits)
    whole = tuple(shape) if samples is None else (samples,) + tuple(shape)
    return float(storage.expected_bits(whole, 1.0, name, 0, run_bits, index_bits))
