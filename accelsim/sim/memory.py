"""Global-buffer tiling, DRAM traffic and time, and the runtime-memory figure of a layer.

All sizes are bytes of one sample, compressed in the configured storage formats:
``I`` input activations, ``W`` weights, ``O`` outputs.

Tiling. The array consumes operands in *pieces* (:func:`fold_pieces`: a chunk of
stream steps of one fold). The buffer holds a chunk of one operand resident and
double-buffers pieces of the other operand and of the outputs:

- weights resident: ``chunk = B - 2 (I_piece + O_piece)``; the weights are read once and
  the inputs ``ceil(W / chunk)`` times: ``DRAM reads = W + ceil(W / chunk) * I``;
- inputs resident: ``chunk = B - 2 (W_piece + O_piece)``; ``DRAM reads = I + ceil(I / chunk) * W``.

The cheaper feasible schedule is used (weights resident on a tie); when one operand
fits whole, this is the compulsory ``I + W``. Outputs are written once (``O``).
Tiling and footprint use the on-chip formats; DRAM traffic uses each tensor's DRAM
format (``storage.<tensor>.dram``, by default the on-chip one), so a design that
compresses only off chip (Eyeriss' run-length coding) pays dense buffer traffic but
compressed DRAM traffic. ``fill_bytes`` counts the buffer side of those transfers. When
neither schedule can hold its minimal chunk the layer cannot be mapped.

Partial sums. Weight- and input-stationary folds over the reduction (``row_folds > 1``)
keep a tile of ``chunk * cols`` partial sums across row folds. The mapping splits the
stream so that the tile fits in half the buffer (:func:`accelsim.sim.map.map_gemm`);
only if a single stream step's tile does not fit do they spill: every row fold after
the first then reads and writes the partial sums of the layer from DRAM
(``2 (row_folds - 1) Sc T acc_bytes`` per conv group).

DRAM time (double buffering at piece granularity): the first pieces of both operands
are loaded before compute starts and the last output piece written after it ends; the
rest overlaps with on-chip time::

    cycles = prologue + max(onchip, dram - prologue - epilogue) + epilogue

with ``dram = DRAM bytes / (bandwidth / clock)``; ideal DRAM adds nothing.

Runtime memory. The live data of a layer are ``I + W + O`` plus the partial-sum tile;
up to the buffer size they are on chip, the rest is off chip (the layer *spills*).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from accelsim.errors import MappingError
from accelsim.sim.lower import Gemm
from accelsim.sim.map import Mapping


@dataclass(frozen=True)
class MemoryPlan:
    """DRAM traffic and footprint of one sample of a layer (bytes)."""

    dram_read_bytes: float
    dram_write_bytes: float
    psum_spill_bytes: float
    schedule: str            # "weights_resident" or "inputs_resident"
    passes: int              # times the streamed operand is read from DRAM
    prologue_bytes: float
    epilogue_bytes: float
    live_bytes: float
    onchip_bytes: float
    offchip_bytes: float
    fill_bytes: float = -1.0  # bytes moved between DRAM and the buffer, in the on-chip format

    def __post_init__(self) -> None:
        if self.fill_bytes < 0:
            object.__setattr__(self, "fill_bytes", self.dram_read_bytes + self.dram_write_bytes)

    @property
    def dram_bytes(self) -> float:
        return self.dram_read_bytes + self.dram_write_bytes

    @property
    def spill(self) -> bool:
        return self.offchip_bytes > 0


def fold_pieces(gemm: Gemm, mapping: Mapping, act_bytes: float, weight_bytes: float,
                out_bytes: float, act_elements: int, weight_elements: int,
                out_elements: int) -> tuple[float, float, float]:
    """Bytes of (inputs, weights, outputs) of one pipeline piece.

    A piece is a chunk of ``L = min(T, max(rows, cols))`` stream steps of one fold: the
    streamed operand's elements of those steps, the stationary operand of the fold
    (WS/IS) and the outputs it produces (OS: the fold's outputs). Bytes per element
    are the tensor's compressed average.
    """
    ru = min(mapping.rows, mapping.Sr)
    cu = min(mapping.cols, mapping.Sc)
    steps = min(mapping.T, max(mapping.rows, mapping.cols))
    a = act_bytes / act_elements if act_elements else 0.0
    w = weight_bytes / weight_elements if weight_elements else 0.0
    o = out_bytes / out_elements if out_elements else 0.0
    if mapping.dataflow == "output_stationary":
        return ru * steps * a, steps * cu * w, ru * cu * o
    if mapping.dataflow == "weight_stationary":
        return steps * ru * a, ru * cu * w, steps * cu * o
    return ru * cu * a, steps * ru * w, steps * cu * o


def plan_memory(gemm: Gemm, mapping: Mapping, act_bytes: float, weight_bytes: float,
                out_bytes: float, elements: tuple[int, int, int], glb_bytes: float,
                acc_bits: int, layer_name: str,
                dram_sizes: tuple[float, float, float] | None = None) -> MemoryPlan:
    """Choose the tiling and count DRAM traffic and footprint (see the module docstring).

    ``act_bytes``, ``weight_bytes``, ``out_bytes``: sizes in the on-chip formats (they set
    the tiling and the footprint); ``dram_sizes``: the same tensors in their DRAM formats
    (they set DRAM traffic and time), by default equal to the on-chip sizes.
    ``elements``: element counts of the (input, weight, output) tensors of one sample.
    """
    act_d, weight_d, out_d = dram_sizes if dram_sizes is not None else (act_bytes, weight_bytes,
                                                                        out_bytes)

    def from_dram(onchip: float, dram: float) -> float:
        """Buffer-side bytes of a transfer: none for a tensor already on chip (DRAM size 0)."""
        return onchip if dram > 0 or onchip == 0 else 0.0
    i_piece, w_piece, o_piece = fold_pieces(gemm, mapping, act_bytes, weight_bytes, out_bytes,
                                            *elements)
    options = []
    chunk_w = glb_bytes - 2.0 * (i_piece + o_piece)
    if chunk_w >= w_piece and chunk_w > 0:
        passes = max(1, math.ceil(weight_bytes / chunk_w)) if weight_bytes > 0 else 1
        options.append((weight_d + passes * act_d, 0, "weights_resident", passes,
                        from_dram(weight_bytes, weight_d) + passes * from_dram(act_bytes, act_d)))
    chunk_i = glb_bytes - 2.0 * (w_piece + o_piece)
    if chunk_i >= i_piece and chunk_i > 0:
        passes = max(1, math.ceil(act_bytes / chunk_i)) if act_bytes > 0 else 1
        options.append((act_d + passes * weight_d, 1, "inputs_resident", passes,
                        from_dram(act_bytes, act_d) + passes * from_dram(weight_bytes, weight_d)))
    if not options:
        need = min(w_piece + 2 * (i_piece + o_piece), i_piece + 2 * (w_piece + o_piece))
        raise MappingError(
            f"layer {layer_name!r} cannot be mapped: a {mapping.dataflow} fold on a "
            f"{mapping.rows}x{mapping.cols} array needs about {need:,.0f} bytes of the global "
            f"buffer (one resident piece plus double-buffered streamed pieces) but "
            f"global_buffer.size_kib gives {glb_bytes:,.0f} bytes; "
            "enlarge the buffer or use a smaller array")
    reads, _, schedule, passes, fill_reads = min(options)
    if dram_sizes is not None:  # the DRAM-side pieces of the prologue and epilogue
        i_piece, w_piece, o_piece = fold_pieces(gemm, mapping, act_d, weight_d, out_d, *elements)
    psum_tile = 0.0
    psum_spill = 0.0
    if mapping.dataflow != "output_stationary" and mapping.row_folds > 1:
        psum_tile = mapping.chunk_steps * min(mapping.cols, mapping.Sc) * acc_bits / 8.0
        if psum_tile > glb_bytes / 2.0:
            psum_spill = (2.0 * (mapping.row_folds - 1) * mapping.Sc * mapping.T
                          * acc_bits / 8.0 * gemm.groups)
    live = act_bytes + weight_bytes + out_bytes + psum_tile
    onchip = min(live, glb_bytes)
    return MemoryPlan(
        dram_read_bytes=reads + psum_spill / 2.0,
        dram_write_bytes=out_d + psum_spill / 2.0,
        psum_spill_bytes=psum_spill,
        schedule=schedule,
        passes=passes,
        prologue_bytes=min(i_piece + w_piece, reads),
        epilogue_bytes=min(o_piece, out_d),
        live_bytes=live,
        onchip_bytes=onchip,
        offchip_bytes=live - onchip,
        fill_bytes=fill_reads + from_dram(out_bytes, out_d) + psum_spill,
    )


def per_inference(plan: MemoryPlan, batch: int) -> MemoryPlan:
    """A batch's plan as figures per inference (traffic divided by the batch; footprints kept)."""
    if batch == 1:
        return plan
    return MemoryPlan(
        dram_read_bytes=plan.dram_read_bytes / batch, dram_write_bytes=plan.dram_write_bytes / batch,
        psum_spill_bytes=plan.psum_spill_bytes / batch, schedule=plan.schedule, passes=plan.passes,
        prologue_bytes=plan.prologue_bytes / batch, epilogue_bytes=plan.epilogue_bytes / batch,
        live_bytes=plan.live_bytes, onchip_bytes=plan.onchip_bytes, offchip_bytes=plan.offchip_bytes,
        fill_bytes=plan.fill_bytes / batch)


def dram_bytes_per_cycle(hw) -> float | None:
    """DRAM bandwidth in bytes per accelerator cycle (``None`` when ideal)."""
    if hw.dram.ideal:
        return None
    return hw.dram.bandwidth_gb_per_s * 1e9 / (hw.technology.clock_mhz * 1e6)


def total_cycles(onchip_cycles: float, plan: MemoryPlan, bytes_per_cycle: float | None) -> float:
    """Layer cycles once DRAM transfers overlap ``onchip_cycles`` by double buffering."""
    if bytes_per_cycle is None:
        return float(onchip_cycles)
    dram = plan.dram_bytes / bytes_per_cycle
    prologue = math.ceil(plan.prologue_bytes / bytes_per_cycle)
    epilogue = math.ceil(plan.epilogue_bytes / bytes_per_cycle)
    return float(prologue + max(float(onchip_cycles), math.ceil(dram) - prologue - epilogue)
                 + epilogue)
