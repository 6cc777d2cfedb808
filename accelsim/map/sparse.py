"""Work of every PE in every step of a mapping, from the real zero masks.

A step is one iteration of the temporal loops at the shared levels (everything a PE's own
levels iterate inside is that PE's block). For each (step, PE row, PE column) the kernel
counts the MAC slots the PE must issue: all of them (dense), those with a non-zero activation,
a non-zero weight, or both non-zero, walking the loop nest point by point in the mapping's
order (an odometer over the flattened loops, dimension values kept incrementally).
Padding positions hold a zero activation.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from accelsim.map.mapping import Mapping
from accelsim.map.nest import DIMS, LoopNest
from accelsim.numba_config import JIT

MODE_DENSE, MODE_ACT, MODE_WEIGHT, MODE_BOTH = 0, 1, 2, 3
KIND_OUTER, KIND_SPATIAL_X, KIND_SPATIAL_Y, KIND_INNER = 0, 1, 2, 3
_N, _G, _K, _C, _P, _Q, _R, _S = range(8)


@njit(**JIT)
def _walk(dim, factor, stride, kind, place, n_outer, ny, nx, act, wmask, geo, mode):
    """``work[step, y, x]``: issued MAC slots per PE and step (see module docstring)."""
    n_loops = dim.shape[0]
    work = np.zeros((n_outer, ny, nx), dtype=np.int64)
    idx = np.zeros(n_loops, dtype=np.int64)
    val = np.zeros(8, dtype=np.int64)
    kg, cg, sh, sw, ph, pw, dh, dw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7]
    H, W = act.shape[2], act.shape[3]
    coord = np.zeros(4, dtype=np.int64)   # step, y, x: mixed radix of their loops
    while True:
        step = coord[0]
        y = coord[1]
        x = coord[2]
        g = val[_G]
        if mode == MODE_DENSE:
            hit = 1
        else:
            a = 0
            h = val[_P] * sh + val[_R] * dh - ph
            w = val[_Q] * sw + val[_S] * dw - pw
            if 0 <= h < H and 0 <= w < W:
                a = act[val[_N], g * cg + val[_C], h, w]
            wt = wmask[g * kg + val[_K], val[_C], val[_R], val[_S]]
            if mode == MODE_ACT:
                hit = 1 if a != 0 else 0
            elif mode == MODE_WEIGHT:
                hit = 1 if wt != 0 else 0
            else:
                hit = 1 if (a != 0 and wt != 0) else 0
        work[step, y, x] += hit
        # odometer: advance the innermost loop, carry outward
        l = n_loops - 1
        while l >= 0:
            idx[l] += 1
            val[dim[l]] += stride[l]
            coord[kind[l]] += place[l]
            if idx[l] < factor[l]:
                break
            idx[l] = 0
            val[dim[l]] -= stride[l] * factor[l]
            coord[kind[l]] -= place[l] * factor[l]
            l -= 1
        if l < 0:
            break
    return work


def step_work(nest: LoopNest, mapping: Mapping, fanout_level: int, act: np.ndarray,
              wmask: np.ndarray, pads: tuple[int, int], mode: int) -> np.ndarray:
    """Issued MAC slots ``(steps, Y, X)`` of one batch of ``act`` ``(N, C, H, W)`` masks.

    ``fanout_level``: the innermost level whose spatial loops spread over the PE array (spatial
    loops at it and above index PEs); temporal loops at it and above are steps, loops at levels
    below it (and the MAC lanes) are PE blocks.
    """
    flat = mapping.flat()
    n = len(flat)
    dim = np.zeros(n, np.int64)
    factor = np.zeros(n, np.int64)
    stride = np.zeros(n, np.int64)
    kind = np.zeros(n, np.int64)
    place = np.zeros(n, np.int64)
    radix = {}
    coord_size = [1, 1, 1, 1]
    for i in range(n - 1, -1, -1):
        lv, loop = flat[i]
        d = DIMS.index(loop.dim)
        dim[i], factor[i] = d, loop.factor
        stride[i] = radix.get(d, 1)
        radix[d] = stride[i] * loop.factor
        if lv > fanout_level:
            k = KIND_INNER
        elif loop.spatial:   # spread over the PE array (possibly from several levels)
            k = KIND_SPATIAL_X if loop.axis == "X" else KIND_SPATIAL_Y
        else:
            k = KIND_OUTER
        code = {KIND_OUTER: 0, KIND_SPATIAL_Y: 1, KIND_SPATIAL_X: 2, KIND_INNER: 3}[k]
        kind[i] = code
        place[i] = coord_size[code]
        coord_size[code] *= loop.factor
    geo = np.array([nest.bound("K"), nest.bound("C"), nest.stride_h, nest.stride_w,
                    pads[0], pads[1], nest.dil_h, nest.dil_w], np.int64)
    act = np.ascontiguousarray(act, dtype=np.uint8)
    wmask = np.ascontiguousarray(wmask, dtype=np.uint8)
    return _walk(dim, factor, stride, kind, place, coord_size[0], coord_size[1], coord_size[2],
                 act, wmask, geo, mode)
