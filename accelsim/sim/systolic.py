"""The systolic dataflow as a mapping and timing mode of the loop-nest model (issue 23 item 3).

A design with ``pe_array.systolic: true`` and a ``memory_hierarchy`` runs on the loop-nest
model like every mapped design, with SCALE-Sim's mapping and timing instead of the mapper's:

1. **Lowering.** A layer (one batch of ``b`` samples) becomes its im2col GEMM: the loop nest
   ``N=1, G, K, C' = C/G * R * S, P = M = b * P * Q, Q = R = S = 1`` (stride 1); the input
   mask becomes the operand matrix (every output pixel's receptive field, ``(c, r, s)`` flat,
   padding positions as zeros), the weight mask ``(K, C', 1, 1)``. Counts, energies and
   sparse work then come from these masks as for any layer; the input lives in DRAM
   un-lowered, so DRAM reads of the input are scaled from the operand matrix's elements to
   the real input's (:func:`dram_input_scale`).
2. **Mapping** (:func:`systolic_mapping`, SCALE-Sim's, :mod:`accelsim.sim.map`): the array's
   rows (Y) take ``Sr`` and its columns (X) take ``Sc`` of the dataflow (OS: ``M`` x ``K``,
   stream ``C'``; WS: ``C'`` x ``K``, stream ``M``; IS: ``C'`` x ``M``, stream ``K``), folded
   with remainders (groups outermost, column folds, then row folds); the stream runs at the
   innermost per-PE level keeping the stationary tensor. The fold loops sit at the fan-out
   level, or the column folds at DRAM and the row folds at the fan-out level, or all at DRAM:
   of the placements whose tiles fit, the one moving the fewest DRAM bits; when even one
   fold's tiles do not fit, the stream is cut into chunks at DRAM (each chunk its own folds, as
   the systolic engine splits its output stream).
3. **Timing.** Each step above the PEs is one fold; it pays SCALE-Sim's fill and drain
   (:func:`accelsim.sim.map.fill_drain`, the full array's even for partial folds) on top of
   its busiest sync group's issued slots, in the same fold recurrence as every mapped design.
   A dense layer therefore takes SCALE-Sim's ``folds * (T + fill + drain)`` cycles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from accelsim.errors import MappingError
from accelsim.map.mapping import Loop, LevelLoops, Mapping
from accelsim.map.nest import LoopNest
from accelsim.numba_config import JIT
from accelsim.sim.map import fill_drain
from accelsim.trace.geometry import LayerGeometry

#: Per dataflow: (dimension on the array's rows, on its columns, streamed, stationary tensor).
ROLES = {
    "output_stationary": ("P", "K", "C", "O"),
    "weight_stationary": ("C", "K", "P", "W"),
    "input_stationary": ("C", "P", "K", "I"),
}
TENSOR_NAMES = {"W": "weights", "I": "inputs", "O": "outputs"}


@dataclass(frozen=True)
class Lowered:
    """One batch of a layer as its im2col GEMM."""

    geometry: LayerGeometry     # 1x1 convolution: C = G * C', H = M, W = 1, K, groups G
    nest: LoopNest
    act: np.ndarray             # (1, G * C', M, 1) bool: the operand matrix, padding zero
    weights: np.ndarray         # (K, C', 1, 1) bool
    input_elements: int         # elements of the real (un-lowered) input of the batch
    pad: np.ndarray | None = None   # like ``act``: True at padding positions (when asked for)


#: Most elements of one batch's operand matrix (a boolean each, plus the window view it is
#: gathered from): beyond it the batch is refused rather than exhausting memory.
MAX_OPERAND_ELEMENTS = 1 << 28


def lower(geometry: LayerGeometry, act: np.ndarray, wmask: np.ndarray, name: str = "",
          with_padding: bool = False) -> Lowered:
    """The im2col GEMM of a batch ``act`` (b, C, H, W) of a layer with weights ``wmask``
    (K, C/G, R, S): operand rows ``(g, c, r, s)``, columns ``(n, p, q)``. A
    :class:`MappingError` names the layer (``name``) when the matrix would exceed
    :data:`MAX_OPERAND_ELEMENTS`. ``with_padding``: also mark the operand matrix's padding
    positions (:attr:`Lowered.pad`; ``None`` when the layer has no padding), for designs whose
    activation skipping issues them (``sparsity.skip_padding`` false)."""
    g = int(geometry.groups)
    b = int(act.shape[0])
    cg, r, s = geometry.c_per_group, geometry.R, geometry.S
    p, q = geometry.P, geometry.Q
    elements = g * cg * r * s * b * p * q
    if elements > MAX_OPERAND_ELEMENTS:
        raise MappingError(f"layer {name!r}: its im2col operand matrix for a batch of {b} has "
                           f"{elements:,} elements, more than the {MAX_OPERAND_ELEMENTS:,} a "
                           f"systolic design lowers at once; use a smaller batch "
                           f"(residency.batch / --batch)")
    operand = _operand_matrix(geometry, np.asarray(act, dtype=bool), False)
    pad = None
    if with_padding and (geometry.pad_h or geometry.pad_w):
        pad = _padding_matrix(geometry, b)
    low = lowered_geometry(geometry, b)
    return Lowered(low, LoopNest.of_geometry(low), operand, _lowered_weights(geometry, wmask),
                   int(b * geometry.C * geometry.H * geometry.W), pad)


def _lowered_weights(geometry: LayerGeometry, wmask: np.ndarray) -> np.ndarray:
    """``(K, C' * R * S, 1, 1)``: the weights as the GEMM's operand. The last few are kept by
    the mask (a layer's batches share it), so every batch hands the same array on and the
    per-mask caches downstream (weight codes, filter counts) hit."""
    key = (id(wmask), geometry.K, geometry.c_per_group * geometry.R * geometry.S)
    kept = _WEIGHTS.get(key)
    if kept is not None and kept[0] is wmask:
        return kept[1]
    weights = np.ascontiguousarray(
        np.asarray(wmask, dtype=bool).reshape(key[1], key[2]))[:, :, None, None]
    while len(_WEIGHTS) >= 4:
        _WEIGHTS.pop(next(iter(_WEIGHTS)))
    _WEIGHTS[key] = (wmask, weights)        # the mask kept: its id is not reused meanwhile
    return weights


#: The lowered weights of the last few masks (:func:`_lowered_weights`).
_WEIGHTS: dict[tuple, tuple] = {}


def _padding_matrix(geometry: LayerGeometry, b: int) -> np.ndarray | None:
    """Like the operand matrix: True where tap ``(r, s)`` of pixel ``(p, q)`` falls on padding
    (the same for every group, channel and sample); ``None`` when no tap does."""
    y = (np.arange(geometry.P)[:, None] * geometry.stride_h
         + np.arange(geometry.R)[None, :] * geometry.dil_h - geometry.pad_h)          # (P, R)
    x = (np.arange(geometry.Q)[:, None] * geometry.stride_w
         + np.arange(geometry.S)[None, :] * geometry.dil_w - geometry.pad_w)          # (Q, S)
    inside_y = (y >= 0) & (y < geometry.H)
    inside_x = (x >= 0) & (x < geometry.W)
    # outside[r, s, p, q]
    outside = ~(inside_y.T[:, None, :, None] & inside_x.T[None, :, None, :])
    if not outside.any():
        return None
    g, cg = int(geometry.groups), geometry.c_per_group
    full = np.broadcast_to(outside[None, None, :, :, None, :, :],
                           (g, cg, geometry.R, geometry.S, b, geometry.P, geometry.Q))
    return np.ascontiguousarray(full).reshape(1, -1, b * geometry.P * geometry.Q, 1)


def _operand_matrix(geometry: LayerGeometry, act: np.ndarray, fill: bool) -> np.ndarray:
    """``(1, G * C', b * P * Q, 1)``: every output pixel's receptive field of ``act`` (b, C, H,
    W), padding positions ``fill``."""
    g = int(geometry.groups)
    shape = np.array([g, geometry.c_per_group, geometry.R, geometry.S, geometry.P, geometry.Q,
                      geometry.stride_h, geometry.stride_w, geometry.dil_h, geometry.dil_w,
                      geometry.pad_h, geometry.pad_w], dtype=np.int64)
    out = _im2col(np.ascontiguousarray(act, dtype=np.bool_), shape, bool(fill))
    return out[None, :, :, None]


@njit(**JIT)
def _im2col(act, shape, fill):
    """``(G * C' * R * S, b * P * Q)`` booleans: row ``((g * C' + c) * R + r) * S + s``, column
    ``(n * P + p) * Q + q`` holds the input that tap (r, s) of pixel (p, q) reads, ``act[n, g *
    C' + c, p * stride - pad + r * dilation, ...]``, or ``fill`` on padding. ``shape``: G, C',
    R, S, P, Q, strides, dilations, pads."""
    g_, cg, rr, ss, pp, qq = shape[0], shape[1], shape[2], shape[3], shape[4], shape[5]
    sh, sw, dh, dw, ph, pw = shape[6], shape[7], shape[8], shape[9], shape[10], shape[11]
    b, h_, w_ = act.shape[0], act.shape[2], act.shape[3]
    out = np.empty((g_ * cg * rr * ss, b * pp * qq), dtype=np.bool_)
    for g in range(g_):
        for c in range(cg):
            for r in range(rr):
                for s in range(ss):
                    row = out[((g * cg + c) * rr + r) * ss + s]
                    x0 = s * dw - pw
                    # the pixels whose column stays inside: q in [q_lo, q_hi)
                    q_lo = min(qq, max(0, (-x0 + sw - 1) // sw))
                    q_hi = max(q_lo, min(qq, (w_ - x0 + sw - 1) // sw))
                    for n in range(b):
                        plane = act[n, g * cg + c]
                        for p in range(pp):
                            o = (n * pp + p) * qq
                            y = p * sh - ph + r * dh
                            if y < 0 or y >= h_:
                                row[o:o + qq] = fill
                                continue
                            line = plane[y]
                            row[o:o + q_lo] = fill
                            if sw == 1:         # a contiguous run of the input row
                                row[o + q_lo:o + q_hi] = line[q_lo + x0:q_hi + x0]
                            else:
                                for q in range(q_lo, q_hi):
                                    row[o + q] = line[q * sw + x0]
                            row[o + q_hi:o + qq] = fill
    return out


def lowered_geometry(geometry: LayerGeometry, batch: int = 1) -> LayerGeometry:
    """The 1x1 convolution of a layer's im2col GEMM for ``batch`` samples: ``C = G * C/G * R *
    S``, ``H = batch * P * Q`` pixels, ``W = 1``, the same ``K`` and groups."""
    g = int(geometry.groups)
    c_red = geometry.c_per_group * geometry.R * geometry.S
    kind = "conv2d" if g == 1 else "grouped_conv2d"
    return LayerGeometry(kind, N=1, C=g * c_red, H=int(batch) * geometry.P * geometry.Q, W=1,
                         K=geometry.K, R=1, S=1, groups=g)


def dram_input_scale(lowered: Lowered) -> float:
    """DRAM holds the input un-lowered: its reads scale from the operand matrix's elements to
    the real input's (each element once per pass over the input, however many windows use it)."""
    elements = int(lowered.act.size)
    return lowered.input_elements / elements if elements else 1.0


def overhead(dataflow: str, rows: int, cols: int) -> int:
    """Fill + drain cycles every fold pays (SCALE-Sim's, full array)."""
    fill, drain = fill_drain(dataflow, rows, cols)
    return int(fill + drain)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


#: Where the fold loops sit, SCALE-Sim's fold order kept (column folds outside row folds):
#: all at the last shared level; the column folds at DRAM and the row folds at that level; all
#: at DRAM.
PLACEMENTS = ("fanout", "columns_dram", "dram")


def systolic_mapping(nest: LoopNest, arch, dataflow: str, where: str = "fanout",
                     chunks: int = 1) -> Mapping:
    """SCALE-Sim's mapping of a lowered ``nest`` on ``arch`` (see the module), the fold loops
    placed as ``where`` (:data:`PLACEMENTS`), the stream cut into ``chunks`` at DRAM."""
    if dataflow not in ROLES:
        raise MappingError(f"pe_array.dataflow: a systolic array runs one of "
                           f"{', '.join(ROLES)}, got {dataflow!r}")
    if where not in PLACEMENTS:
        raise ValueError(f"where: expected one of {PLACEMENTS}, got {where!r}")
    y_dim, x_dim, stream, stationary = ROLES[dataflow]
    fan = arch.fanout_level
    last = len(arch.levels) - 1
    per_pe = [i for i in range(fan + 1, last + 1)]
    keepers = [i for i in per_pe if stationary in arch.levels[i].keeps]
    at = keepers[-1] if keepers else last
    ys = min(arch.rows, nest.bound(y_dim))
    xs = min(arch.cols, nest.bound(x_dim))
    t = nest.bound(stream)
    t_in = _ceil(t, chunks)
    groups = Loop("G", nest.bound("G"))
    x_folds = Loop(x_dim, _ceil(nest.bound(x_dim), xs))
    y_folds = Loop(y_dim, _ceil(nest.bound(y_dim), ys))
    temporal: dict[int, list[Loop]] = {i: [] for i in range(len(arch.levels))}
    temporal[0].append(Loop("N", nest.bound("N")))
    if chunks > 1:
        temporal[0].append(Loop(stream, _ceil(t, t_in)))
    if where == "fanout":
        temporal[fan].extend((groups, x_folds, y_folds))
    elif where == "columns_dram":
        temporal[0].extend((groups, x_folds))
        temporal[fan].append(y_folds)
    else:
        temporal[0].extend((groups, x_folds, y_folds))
    temporal[at].append(Loop(stream, t_in))
    levels = []
    for i, lv in enumerate(arch.levels):
        spatial = ((Loop(y_dim, ys, spatial=True, axis="Y"), Loop(x_dim, xs, spatial=True, axis="X"))
                   if i == fan else ())
        levels.append(LevelLoops(lv.name, tuple(temporal[i]), spatial))
    return Mapping(tuple(levels))


def stream_chunks(mapping: Mapping, dataflow: str) -> int:
    """Pieces the stream of a :func:`systolic_mapping` is cut into (its factor at DRAM)."""
    stream = ROLES[dataflow][2]
    top = mapping.levels[0]
    return int(np.prod([lp.factor for lp in top.temporal if lp.dim == stream] or [1]))


def _context_counts(result, arch, on_chip: frozenset) -> np.ndarray:
    """A mapping's dense counts less what tensors kept on chip (``on_chip``: of W, I, O) save:
    their DRAM reads (outputs: writes) and, for W and I, the fills of the level holding them."""
    from accelsim.map.access import FILLS, READS, UPDATES
    from accelsim.sim.loopnest import _holder

    counts = result.counts.counts.copy()
    for ti, tensor in enumerate("WIO"):
        if tensor not in on_chip:
            continue
        counts[0, ti, UPDATES if tensor == "O" else READS] = 0.0
        holder = _holder(arch, tensor)
        if tensor != "O" and holder is not None:
            counts[holder, ti, FILLS] = 0.0
    return counts


def _dram_bits(result, arch, on_chip: frozenset = frozenset()) -> float:
    """Bits a mapping moves to and from DRAM (its dense counts, less what ``on_chip`` saves)."""
    bits = np.asarray(arch.tensor_bits, dtype=np.float64)
    return float((_context_counts(result, arch, on_chip)[0].sum(axis=1) * bits).sum())


def input_tile_bound(geometry: LayerGeometry, batch: int, pixels: int, reduction: int) -> int:
    """At most how many distinct input elements an operand-matrix tile of ``pixels`` consecutive
    output pixels (over the batch's ``batch x P x Q``) and ``reduction`` consecutive reduction
    indices (over a group's ``C/G x R x S``) reads, wherever it starts: per sample and channel
    it can span, the input rectangle its output rows reach (every column once it may wrap a
    row) or its pixels' receptive fields, whichever is smaller; never above the tile's own
    elements."""
    g = geometry
    pq = g.P * g.Q
    samples = batch if pixels >= batch * pq else min(batch, -(-pixels // pq) + 1)
    in_sample = min(pixels, pq)
    rows_out = min(g.P, -(-pixels // g.Q) + 1)
    cols_out = 1 if pixels == 1 else g.Q
    taps = g.R * g.S
    channels = min(g.c_per_group, -(-reduction // taps) + 1)
    if reduction >= taps:
        r_span, s_span = g.R, g.S
    else:   # within one channel, or across the end of one and the start of the next
        r_span = min(g.R, -(-reduction // g.S) + 1)
        s_span = g.S if r_span > 1 else min(g.S, reduction)
    rows_in = min(g.H, (rows_out - 1) * g.stride_h + (r_span - 1) * g.dil_h + 1)
    cols_in = min(g.W, (cols_out - 1) * g.stride_w + (s_span - 1) * g.dil_w + 1)
    per_channel = min(rows_in * cols_in, in_sample * r_span * s_span)
    return int(min(pixels * reduction, samples * channels * per_channel))


def real_input_tiles(geometry: LayerGeometry, batch: int, nest: LoopNest):
    """``adjust`` for :func:`accelsim.map.fixed.fixed_result` on a lowered nest: each level's
    input tile is what the real input needs (:func:`input_tile_bound`), not the operand
    matrix's tile, which repeats an input up to ``R x S`` times (what a buffer holds, as
    SCALE-Sim sizes its input SRAM by addresses)."""
    from dataclasses import replace

    from accelsim.map.access import _Flat

    def adjust(counts, mapping):
        flat = _Flat(nest, mapping)
        footprint = counts.footprint.copy()
        for lvl in range(footprint.shape[0]):
            if footprint[lvl, 1] <= 0:
                continue
            ext = flat.ext[lvl]
            pixels = min(ext["P"], nest.bound("P"))
            reduction = min(ext["C"], nest.bound("C"))
            groups = min(ext["G"], nest.bound("G"))
            footprint[lvl, 1] = min(footprint[lvl, 1], groups * input_tile_bound(
                geometry, batch, pixels, reduction))
        return replace(counts, footprint=footprint)

    return adjust


def _dense_time(result, arch, dataflow: str, on_chip: frozenset) -> tuple[float, float]:
    """``(cycles, DRAM bits)`` of a systolic mapping run dense: the largest of its folds'
    compute (every step streams its chunk of ``T`` after the fold's fill and drain) and every
    level's port time for its traffic (DRAM at the design's link), less what ``on_chip``
    saves (:func:`_context_counts`)."""
    from dataclasses import replace

    from accelsim.map.cost import level_bits, level_time

    mapping = result.mapping
    stream = ROLES[dataflow][2]
    fan = arch.fanout_level
    steps, t = 1, 1
    for i, lv in enumerate(mapping.levels):
        for loop in lv.temporal:
            if i <= fan:
                steps *= loop.factor
            elif loop.dim == stream:
                t *= loop.factor
    compute = steps * (t + overhead(dataflow, arch.rows, arch.cols))
    counts = replace(result.counts, counts=_context_counts(result, arch, on_chip))
    reads, writes = level_bits(counts, arch)
    times = [level_time(reads[i], writes[i], lv, counts.instances[i], arch.dram_bytes_per_cycle,
                        i == 0) for i, lv in enumerate(arch.levels)]
    return max([float(compute)] + times), float(reads[0] + writes[0])


def systolic_result(layer_name: str, nest: LoopNest, arch, dataflow: str,
                    on_chip: frozenset = frozenset(), source: tuple | None = None):
    """The :class:`~accelsim.map.mapper.MapResult` of SCALE-Sim's mapping that fits ``arch``:
    per fold placement (:data:`PLACEMENTS`), the whole stream if its tiles fit, else the stream
    cut at DRAM into the fewest chunks whose tiles fit (each chunk runs the placement's folds,
    the stationary operand loaded again); of those, the fastest run dense (:func:`_dense_time`:
    compute with every fold's fill and drain against DRAM time), then the one moving the fewest
    DRAM bits, given the tensors the layer finds or leaves on chip (``on_chip``, of W, I, O; the
    first of equals in placement order, unchunked first). The last error, naming the level,
    when not even one step of the stream fits. ``source``: ``(layer geometry, batch)`` the
    nest lowers; its input tiles then hold the real input (:func:`real_input_tiles`)."""
    from functools import partial

    from accelsim.map.fixed import fixed_result as checked

    fixed_result = partial(checked, adjust=None if source is None
                           else real_input_tiles(source[0], int(source[1]), nest))

    _, _, stream, _ = ROLES.get(dataflow, (None, None, "P", None))
    t = nest.bound(stream)
    last_error = None
    whole, chunked = [], []
    for where in PLACEMENTS:
        try:
            whole.append(fixed_result(layer_name, systolic_mapping(nest, arch, dataflow, where),
                                      nest, arch))
            continue
        except MappingError as exc:
            last_error = exc
        lo, hi = 2, t      # the fewest chunks that fit: fitting is monotone in the chunk size
        found = None
        while lo <= hi:
            mid = (lo + hi) // 2
            try:
                found = fixed_result(layer_name,
                                     systolic_mapping(nest, arch, dataflow, where, mid), nest, arch)
                hi = mid - 1
            except MappingError as exc:
                last_error = exc
                lo = mid + 1
        if found is not None:
            chunked.append(found)
    candidates = whole + chunked
    if not candidates:
        raise last_error
    return min(candidates, key=lambda r: _dense_time(r, arch, dataflow, on_chip))  # first of equals


#: Per dataflow: (bits of the operands that pass to the next PE per issued slot, as
#: (activation, weight, partial-sum) multiples) -- OS: inputs along the row, weights down
#: the column; WS: inputs along the row, partial sums down the column; IS: weights along the
#: row, partial sums down the column.
_PASSED = {
    "output_stationary": (1, 1, 0),
    "weight_stationary": (1, 0, 1),
    "input_stationary": (0, 1, 1),
}


def passed_bits_per_slot(dataflow: str, a_bits: int, w_bits: int, acc_bits: int) -> float:
    """Bits that move one hop to a neighbouring PE (and through its pipeline register) for
    every issued MAC slot of a systolic array."""
    a, w, s = _PASSED[dataflow]
    return float(a * a_bits + w * w_bits + s * acc_bits)


def chain_bit_hops(dataflow: str, issued: float, stationary_moves: float, stationary_bits: int,
                   rows: int, a_bits: int, w_bits: int, acc_bits: int) -> float:
    """Bit-hops of a systolic array's network: the passed operands one hop per issued slot,
    and every stationary element loaded (OS: every finished output drained) over
    ``(rows + 1) / 2`` hops on average, down its column."""
    return (issued * passed_bits_per_slot(dataflow, a_bits, w_bits, acc_bits)
            + stationary_moves * stationary_bits * (rows + 1) / 2.0)
