"""Gate/skip actions at OUTER storage levels, conditioned on whole tiles (Sparseloop's
storage-level ``action_optimization``).

An action ``{kind: skip|gate, target: T, condition_on: [S, ...]}`` at a level ``L`` that keeps
``T`` but is not the innermost level keeping it acts on the *transfers* of ``T`` from ``L`` into
``T``'s child (the next level inward keeping ``T``), not on MAC-driven accesses (those keep the
rules of :mod:`accelsim.sim.conditions`, unchanged):

- **transfer events.** Every iteration point of the loops above the child (temporal and spatial
  loops of the levels outside it) is one event per child instance: the child's tile of ``T``
  moves by the step of the temporal loop that advanced and is filled with the elements it does
  not hold (the delta rule of :mod:`accelsim.map.access`: nothing for a zero move, the new
  elements for a sliding step, the whole tile otherwise; only real elements, below the bounds,
  count). Those elements are the child's ``FILLS`` and, one read per multicast group of
  siblings with the same tile (per level of spatial loops, :mod:`accelsim.map.access`), ``L``'s
  ``READS`` of ``T``.
- **the co-iterated tile of S** at an event is every element of ``S`` touched by the loops
  nested inside the child boundary (all loops of the child level and below) at that iteration
  point of the loops above it, i.e. the operand space the child's tile of ``T`` is used with,
  per child instance (spatial sibling) where the fill fans out. ``condition_on`` may name ``T``
  itself (an empty tile of its own).
- **the action.** A fill is skipped (gated) when the co-iterated tile of *any* operand of
  ``condition_on`` is empty (all zero), as the MAC-level actions act when any condition operand
  is zero. A multicast read at ``L`` is skipped (gated) only when every receiver of the group
  skips (gates) its fill; a unicast read follows its one fill. Skipped volume costs nothing
  (no energy, no port time); gated volume keeps no port time either (as the MAC-level gated
  accesses) and costs the level's ``gated_read_pj`` (else the read energy x the gated fraction),
  reads at ``L``, fills at the child.
- **padding.** Padding positions of the inputs are zeros for a condition, as the MAC-level
  actions treat them (:mod:`accelsim.sim.conditions`: a padding value is never non-zero data),
  whatever ``sparsity.skip_padding`` says (that decides whether padding's MAC slots are
  issued, not whether padding is data). :func:`transfer_live` can also count padding as
  data (``padding_zero=False``), which the tests use to exercise the distinction. Real
  elements only: an index past a bound (a remainder tile) holds nothing.
- **compression.** The live fraction is counted in dense elements and scales the (compressed)
  counts of both data and metadata of the transfer; a skipped tile's own compressed size is
  not singled out.
- **outputs** as a target (psum spills and drains) are not modelled (refused at load time).

:func:`transfer_live` counts, from the real masks, the moved and skipped elements of those
transfers: every event at once (numpy, vectorised over the iteration points of the loops above
the child), the emptiness of each co-iterated tile from windowed sums of the mask along each
coordinate. :func:`expected_live` is the mapper's expectation at given densities.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.map.mapping import Mapping
from accelsim.map.nest import DIMS, LoopNest, TensorDim

_OPERAND = {"weights": "W", "inputs": "I", "outputs": "O"}
#: events vectorised at once (the loops outside the first are walked in Python)
_CHUNK = 1 << 21


@dataclass(frozen=True)
class OuterAction:
    """An action on the transfers of tensor ``tensor`` (W, I) from ``level`` into ``child``
    (arch level indices)."""

    level: int
    child: int
    tensor: str
    kind: str                     # gate | skip
    condition: tuple              # of "W", "I"


@dataclass(frozen=True)
class TransferLive:
    """Elements of one tensor's transfers from a level into its child over a batch (dense,
    real elements): fills of the child's instances and reads of the level, and those of them
    whose condition tile is empty."""

    fills: float
    fills_empty: float
    reads: float
    reads_empty: float

    @property
    def fill_live(self) -> float:
        """Fraction of the fill volume that moves."""
        return 1.0 - self.fills_empty / self.fills if self.fills else 1.0

    @property
    def read_live(self) -> float:
        """Fraction of the read volume that moves."""
        return 1.0 - self.reads_empty / self.reads if self.reads else 1.0


def outer_actions(hw, arch) -> tuple[OuterAction, ...]:
    """The design's actions at levels that are not the innermost keeping their target."""
    out = []
    for i, lv in enumerate(arch.levels):
        if i == 0:
            continue
        for action in hw.memory_hierarchy[i - 1].actions:
            t = _OPERAND[action.target]
            chain = [j for j, other in enumerate(arch.levels) if t in other.keeps]
            if chain[-1] == i:
                continue                        # innermost: a MAC-driven action
            child = next(j for j in chain if j > i)
            out.append(OuterAction(i, child, t, action.kind,
                                   tuple(_OPERAND[c] for c in action.condition_on)))
    return tuple(out)


# ---- geometry ---------------------------------------------------------------------------

def _radix(loops) -> tuple[list[int], dict]:
    """Radix stride of each loop (outer to inner) and each dim's padded range."""
    stride = [0] * len(loops)
    acc: dict = {}
    for idx in range(len(loops) - 1, -1, -1):
        dim = loops[idx][1].dim
        stride[idx] = acc.get(dim, 1)
        acc[dim] = stride[idx] * loops[idx][1].factor
    return stride, {d: acc.get(d, 1) for d in DIMS}


def _coefficient(td: TensorDim, dim: str) -> int:
    if td.inner is None:
        return 1 if dim == td.outer else 0
    return td.stride if dim == td.outer else td.dilation if dim == td.inner else 0


def _offsets(td: TensorDim, ext: dict) -> np.ndarray:
    """Sorted distinct offsets of a tile (loops inside the boundary) along one coordinate."""
    if td.inner is None:
        return np.arange(ext[td.outer], dtype=np.int64)
    o = np.arange(ext[td.outer], dtype=np.int64)[:, None] * td.stride
    i = np.arange(ext[td.inner], dtype=np.int64)[None, :] * td.dilation
    return np.unique(o + i)


def _span(td: TensorDim, size: dict) -> int:
    """Index range of a coordinate whose dims range over ``size``."""
    if td.inner is None:
        return size[td.outer]
    return (size[td.outer] - 1) * td.stride + (size[td.inner] - 1) * td.dilation + 1


def _real(td: TensorDim, nest: LoopNest, length: int) -> np.ndarray:
    """0/1 over ``length`` index values: the value is an element (touched by real indices)."""
    out = np.zeros(length, dtype=np.int64)
    if td.inner is None:
        out[:min(length, nest.bound(td.outer))] = 1
        return out
    v = (np.arange(nest.bound(td.outer))[:, None] * td.stride
         + np.arange(nest.bound(td.inner))[None, :] * td.dilation).ravel()
    out[v[v < length]] = 1
    return out


def _window_sum(arr: np.ndarray, axis: int, offsets: np.ndarray) -> np.ndarray:
    """``out[x] = sum_{o in offsets} arr[x + o]`` along ``axis`` (zeros past the end)."""
    n = arr.shape[axis]
    top = int(offsets[-1]) if len(offsets) else 0
    pad = [(0, 0)] * arr.ndim
    pad[axis] = (0, top + 1)
    a = np.pad(arr, pad)
    if len(offsets) and np.array_equal(offsets, np.arange(len(offsets))):   # contiguous: cumsum
        cs = np.cumsum(a, axis=axis, dtype=np.int64)
        zero = np.zeros_like(np.take(cs, [0], axis=axis))
        cs = np.concatenate([zero, cs], axis=axis)
        return (np.take(cs, np.arange(len(offsets), len(offsets) + n), axis=axis)
                - np.take(cs, np.arange(n), axis=axis))
    out = np.zeros(arr.shape, dtype=np.int64)
    for o in offsets:
        out += np.take(a, np.arange(o, o + n), axis=axis)
    return out


def _values(operand: str, nest: LoopNest, act: np.ndarray, wmask: np.ndarray,
            pads: tuple[int, int], pad_value: bool, size: dict) -> np.ndarray:
    """0/1 non-zero elements of an operand over its index space (dims ranging over ``size``):
    past a bound nothing, padding positions ``pad_value``."""
    n, g, k, cg, p, q, r, s = nest.bounds
    tds = nest.tensor_dims(operand)
    shape = tuple(_span(td, size) for td in tds)
    out = np.zeros(shape, dtype=np.int64)
    if operand == "W":
        out[:g, :k, :cg, :r, :s] = np.asarray(wmask, dtype=bool).reshape(g, k, cg, r, s)
        return out
    a = np.asarray(act, dtype=bool).reshape(n, g, cg, act.shape[2], act.shape[3])
    hn, wn = shape[3], shape[4]
    full = np.full((n, g, cg, hn, wn), bool(pad_value))
    h0, w0 = pads
    hs, ws = min(a.shape[3], max(hn - h0, 0)), min(a.shape[4], max(wn - w0, 0))
    full[:, :, :, h0:h0 + hs, w0:w0 + ws] = a[:, :, :, :hs, :ws]
    real = _real(tds[3], nest, hn)[:, None] * _real(tds[4], nest, wn)[None, :]
    out[:n, :g, :cg] = full * real
    return out


# ---- the count --------------------------------------------------------------------------

def transfer_live(nest: LoopNest, mapping: Mapping, level: int, child: int, tensor: str,
                  condition: tuple, act: np.ndarray, wmask: np.ndarray, pads: tuple[int, int],
                  padding_zero: bool = True, multicast: bool = True) -> TransferLive:
    """Moved and empty-conditioned elements of ``tensor``'s transfers from ``level`` into
    ``child`` over one batch (``act``: (N, C, H, W) with N the nest's; ``wmask``: (K, C/g, R,
    S)); ``condition``: operands (W, I) whose co-iterated tile being empty triggers the action;
    ``multicast``: ``level`` serves siblings with the same tile by one read."""
    loops = mapping.flat()
    stride, padded = _radix(loops)
    above = [j for j, (lv, _) in enumerate(loops) if lv < child]
    temporal = [j for j in above if not loops[j][1].spatial]
    ext = dict.fromkeys(DIMS, 1)
    for lv, loop in loops:
        if lv >= child:
            ext[loop.dim] *= loop.factor
    tds = nest.tensor_dims(tensor)

    # per coordinate of T: real elements over the tile at each base, and over the part a
    # sliding step keeps (offsets o with o + shift in the tile)
    def shift_of(j: int) -> tuple[int, ...]:
        dim = loops[j][1].dim
        return tuple(stride[j] * _coefficient(td, dim) for td in tds)

    zero = (0,) * len(tds)
    inner = shift_of(temporal[-1]) if temporal else zero
    classes = {}                          # temporal loop -> 0 nothing, 1 slide, 2 whole tile
    wrapped = zero
    for j in reversed(temporal):
        sh = shift_of(j)
        jump = tuple(a - b for a, b in zip(sh, wrapped))
        classes[j] = 0 if jump == zero else 1 if jump == inner else 2
        wrapped = tuple(w + (loops[j][1].factor - 1) * x for w, x in zip(wrapped, sh))
    full_w, kept_w = [], []
    for td, sh in zip(tds, inner):
        offs = _offsets(td, ext)
        length = _span(td, padded)
        real = _real(td, nest, length)
        full_w.append(_window_sum(real, 0, offs))
        kept = offs[np.isin(offs + sh, offs)]
        kept_w.append(_window_sum(real, 0, kept) if len(kept) else np.zeros(length, np.int64))
    # per condition operand: non-zero elements of its co-iterated tile at each base
    pad_value = not padding_zero
    counts = {}
    for operand in dict.fromkeys(condition):
        vals = _values(operand, nest, act, wmask, pads, pad_value, padded)
        for axis, td in enumerate(nest.tensor_dims(operand)):
            vals = _window_sum(vals, axis, _offsets(td, ext))
        counts[operand] = vals

    # groups of siblings served by one read: per level of spatial loops in [level, child),
    # the offset their digits give each coordinate of T (all siblings apart without multicast)
    sib = [j for j in above if loops[j][1].spatial and level <= loops[j][0]]
    first_sib = sib[0] if sib else len(loops)
    # chunking: walk in Python the loops outside the first sibling loop while too many events
    factors = [loops[j][1].factor for j in above]
    n_outer = 0
    rest = int(np.prod(factors)) if factors else 1
    while rest > _CHUNK and n_outer < len(above) and above[n_outer] < first_sib:
        rest //= factors[n_outer]
        n_outer += 1
    fills = fills_empty = reads = reads_empty = 0.0
    for prefix in np.ndindex(*factors[:n_outer]):
        digits = [np.full(rest, d, dtype=np.int64) for d in prefix]
        digits += list(np.unravel_index(np.arange(rest, dtype=np.int64), factors[n_outer:]) if
                       len(factors) > n_outer else [])
        dig = dict(zip(above, digits))
        base = {d: np.zeros(rest, dtype=np.int64) for d in DIMS}
        for j in above:
            base[loops[j][1].dim] += dig[j] * stride[j]
        coord = [base[td.outer] if td.inner is None else
                 base[td.outer] * td.stride + base[td.inner] * td.dilation for td in tds]
        whole = np.ones(rest, dtype=np.int64)
        held = np.ones(rest, dtype=np.int64)
        for c, fw, kw in zip(coord, full_w, kept_w):
            whole *= fw[c]
            held *= kw[c]
        cls = np.full(rest, 2, dtype=np.int64)       # the first point: the whole tile
        for j in temporal:                           # the innermost non-zero digit advanced
            cls = np.where(dig[j] > 0, classes[j], cls)
        moved = np.where(cls == 2, whole, np.where(cls == 1, whole - held, 0))
        empty = np.zeros(rest, dtype=bool)
        for operand, vals in counts.items():
            idx = tuple(base[td.outer] if td.inner is None else
                        base[td.outer] * td.stride + base[td.inner] * td.dilation
                        for td in nest.tensor_dims(operand))
            empty |= vals[idx] == 0
        fills += float(moved.sum())
        fills_empty += float(moved[empty].sum())
        if not multicast or not sib:
            reads += float(moved.sum())
            reads_empty += float(moved[empty].sum())
            continue
        # key: every digit outside the sibling loops, then per sibling level the offsets
        keys = [(dig[j], loops[j][1].factor) for j in above if j not in sib]
        for lv in sorted({loops[j][0] for j in sib}):
            for td in tds:
                off = np.zeros(rest, np.int64)
                top = 0
                for j in sib:
                    if loops[j][0] == lv:
                        step = stride[j] * _coefficient(td, loops[j][1].dim)
                        off += dig[j] * step
                        top += (loops[j][1].factor - 1) * step
                keys.append((off, top + 1))
        g_moved, g_live = _groups(keys, moved, ~empty, rest)
        reads += float(g_moved.sum())
        reads_empty += float(g_moved[g_live == 0].sum())
    return TransferLive(fills, fills_empty, reads, reads_empty)


def _groups(keys: list, moved: np.ndarray, live: np.ndarray, rest: int):
    """Per group of equal keys (``(values, range)`` pairs): the moved volume of one member
    (all members move the same) and how many members are live."""
    code = np.zeros(rest, dtype=np.int64)
    size = 1
    for values, span in keys:
        if size * span >= 1 << 62:          # too wide for one integer: sort the rows
            rows = np.stack([v for v, _ in keys], axis=1)
            _, first, group = np.unique(rows, axis=0, return_index=True, return_inverse=True)
            group = group.ravel()
            return (moved[first].astype(np.float64),
                    np.bincount(group, weights=live.astype(np.float64), minlength=len(first)))
        code = code * span + values
        size *= span
    if size > 8 * rest:                     # sparse codes: renumber them
        _, first, code = np.unique(code, return_index=True, return_inverse=True)
        code = code.ravel()
        size = len(first)
    members = np.bincount(code, minlength=size)
    present = members > 0
    g_moved = np.bincount(code, weights=moved.astype(np.float64), minlength=size)[present]
    g_moved /= members[present]
    g_live = np.bincount(code, weights=live.astype(np.float64), minlength=size)[present]
    return g_moved, g_live


# ---- the mapper's expectation -----------------------------------------------------------

def tile_elements(nest: LoopNest, mapping: Mapping, child: int, operand: str) -> int:
    """Elements of ``operand``'s tile inside the ``child`` boundary (index space, padding
    included; the mapping's padded extents)."""
    ext = dict.fromkeys(DIMS, 1)
    for lv, loop in mapping.flat():
        if lv >= child:
            ext[loop.dim] *= loop.factor
    out = 1
    for td in nest.tensor_dims(operand):
        out *= len(_offsets(td, ext))
    return out


def expected_live(nest: LoopNest, mapping: Mapping, child: int, condition: tuple,
                  densities: dict) -> float:
    """Expected fraction of a transfer's volume that moves at ``densities`` (operand ->
    non-zero fraction), i.i.d. zeros: a co-iterated tile of ``n`` elements at density ``d`` is
    empty with probability ``(1 - d) ** n``, and the transfer moves when no condition tile is
    empty (independent operands)."""
    live = 1.0
    for operand in dict.fromkeys(condition):
        n = tile_elements(nest, mapping, child, operand)
        live *= 1.0 - (1.0 - float(densities[operand])) ** n
    return live
