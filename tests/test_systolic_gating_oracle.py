"""Gating on systolic (ported flat) designs against a pair-by-pair oracle.

A flat design (``global_buffer`` + ``scratchpad``) loads ported onto the loop-nest model's
systolic mode (``accelsim/hw/port.py``, docs/simulator.md section 0): the layer runs as its
im2col GEMM ``out[m, n] = sum_r A[m, r] W[r, n]`` per conv group, SCALE-Sim's mapping (array rows
take ``Sr``, columns ``Sc``, the stream ``T`` runs in the PE level keeping the stationary tensor:
OS partial sums, WS weights, IS inputs); the streamed operands live at the global buffer.

The oracle below walks every MAC slot ``(group, m, r, n)`` of the lowered GEMM, with the operand
matrix built element by element from the convolution's index algebra (padding positions marked),
and derives from the documented definitions only:

- issued slots: all, unless ``skip_zero_activations`` (a zero input is skipped; a padding
  position too when ``skip_padding``, else it is issued as a present zero) or
  ``skip_zero_weights`` (a zero weight is skipped);
- gated slots (``gate_zero_operands``): issued slots where an operand named in ``gate_on`` is
  zero (padding is a zero input); a gated slot's MAC costs ``gated_mac_pj``;
- MAC-driven accesses at each operand's innermost level (docs/simulator.md, "Sparse accesses"
  and "Access counts"): the input (the leader, which finds the zero) is read in full for every
  issued slot; the weight read, the partial-sum update, and the partial-sum read (every update
  but an element's first) are gated for gated slots. A level kept per PE (the stationary
  operand) serves one slot per access. A global-buffer access of a streamed operand serves a
  group of slots: a weight/input read multicast to the PEs of a fold that need the same
  element, a partial-sum update reduced down a column; it is gated when every issued slot it
  serves is gated, and in full otherwise (the same rule the docs give for a multicast read at an
  outer level: "skipped only when every receiver skips").

Comparing two runs that differ only in ``gate_zero_operands`` (same masks) isolates the
MAC-driven accesses from fills, drains and the chain's pipeline registers: per energy component
the difference is ``-sum gated accesses x bits x (full energy - gated energy)`` (per level),
and for the MACs ``-gated x (mac_pj - gated_mac_pj)``.

Findings (the four hand-counted cases at the end, strict xfails until fixed): the model scaled
every operand's dense MAC-driven accesses by the fraction of gated slots, which equals the
per-access count where each access serves one slot in a fixed pattern (the stationary register's
weight reads, the psum register's updates), but not for psum reads of an element's first update,
shared (multicast / reduced) global-buffer accesses whose slots are gated differently, or
partial folds. The model now counts each access from the slots it serves
(``accelsim/sim/mac_gating.py``), and every case, random or by hand, matches the oracle on every
level (``tests/test_mac_gating_oracle.py`` checks the same rule slot by slot on mapped nests).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sim_helpers import make_hw, random_layer

from accelsim.hw import load_hw_dict
from accelsim.sim.design import resolve
from accelsim.sim.engine import simulate_layer
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.layer import LayerTrace

RTOL = 1e-9
ZERO, NONZERO, PAD = 0, 1, 2
DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary")
#: slot axes of a conv group's GEMM: r (reduction), m (output pixel), n (filter)
AXIS = {"r": 0, "m": 1, "n": 2}
#: docs/simulator.md section 2: (array rows, array columns, stream)
ROLES = {"output_stationary": ("m", "n", "r"), "weight_stationary": ("r", "n", "m"),
         "input_stationary": ("r", "m", "n")}
#: the slot axis a tensor does not depend on (its accesses are shared along it)
FREE_AXIS = {"W": "m", "I": "n", "O": "r"}
GATE_ONS = (("inputs",), ("weights",), ("inputs", "weights"))
#: per-word energies of the OS psum register that make a gated psum read cost a full one, so the
#: energy difference of the PE level is the psum updates' alone (24-bit words: 0.05625 / 0.1125
#: pJ per bit)
OS_UPDATES_ONLY = {"read_pj": 1.35, "write_pj": 2.7, "gated_read_pj": 1.35}


# ---- designs ----------------------------------------------------------------------------------

def _design(dataflow: str, rows: int, cols: int, gate: bool, gate_on=("inputs", "weights"),
            sparsity: dict | None = None, pe_level: dict | None = None):
    """A flat design (ported on load onto the systolic mode); ``gate_on`` and the per-PE level's
    energies are then set on the ported form (a flat file gates on both operands only)."""
    flat = make_hw(pe_array={"rows": rows, "cols": cols, "dataflow": dataflow},
                   scratchpad={"input_bytes": 16, "weight_bytes": 16, "psum_bytes": 16},
                   sparsity=dict(sparsity or {}, gate_zero_operands=gate))
    assert flat.pe_array.systolic and flat.memory_hierarchy is not None   # ported
    raw = flat.to_dict()
    raw["sparsity"]["gate_on"] = list(gate_on)
    if pe_level:
        raw["memory_hierarchy"][-1].update(pe_level)
    return load_hw_dict(raw, "<gating-oracle>")


# ---- the oracle -------------------------------------------------------------------------------

def _operand_codes(act: np.ndarray, geo) -> np.ndarray:
    """(G, C/G*R*S, N*P*Q) int8: the im2col operand matrix of ``act`` element by element, entry
    ((c, u, v), (b, p, q)) the input at (p*stride - pad + u*dil, q*stride - pad + v*dil):
    ZERO, NONZERO, or PAD where that position is padding."""
    g, cg = geo.groups, geo.C // geo.groups
    nb, _, h, w = act.shape
    out = np.full((g, cg * geo.R * geo.S, nb * geo.P * geo.Q), PAD, dtype=np.int8)
    for gi in range(g):
        for c in range(cg):
            for u in range(geo.R):
                for v in range(geo.S):
                    row = (c * geo.R + u) * geo.S + v
                    for b in range(nb):
                        for p in range(geo.P):
                            for q in range(geo.Q):
                                y = p * geo.stride_h - geo.pad_h + u * geo.dil_h
                                x = q * geo.stride_w - geo.pad_w + v * geo.dil_w
                                if 0 <= y < h and 0 <= x < w:
                                    out[gi, row, (b * geo.P + p) * geo.Q + q] = \
                                        NONZERO if act[b, gi * cg + c, y, x] else ZERO
    return out


def _oracle(layer, hw) -> dict:
    """Pair-by-pair counts of one sample on ``hw`` (see the module): slots (dense, issued,
    gated, effectual), gated MAC-driven accesses per (level, tensor, read/update), and the
    expected energy difference per component between gating on and off."""
    geo = layer.geometry
    sp, pe = hw.sparsity, hw.pe_array
    arch = resolve(hw).arch
    levels = arch.levels
    inner = {t: max(i for i, lv in enumerate(levels) if t in lv.keeps) for t in "WIO"}
    codes = _operand_codes(np.asarray(layer.act_mask(1)[:1], dtype=bool), geo)
    wmask = np.asarray(layer.weight_mask(), dtype=bool).reshape(geo.groups, geo.K // geo.groups, -1)
    y_ax, x_ax, s_ax = ROLES[pe.dataflow]
    rows, cols = pe.rows, pe.cols
    out = {"dense": 0, "issued": 0, "gated": 0, "effectual": 0}
    gated_acc: dict[tuple, int] = {}

    def add(key, value):
        gated_acc[key] = gated_acc.get(key, 0) + int(value)

    for g in range(geo.groups):
        a = codes[g][:, :, None]                      # (r, m, 1)
        w = wmask[g].T[:, None, :]                    # (r, 1, n)
        shape = (codes.shape[1], codes.shape[2], wmask.shape[1])
        issued = np.ones(shape, dtype=bool)
        if sp.skip_zero_activations:
            issued &= (a == NONZERO) | ((a == PAD) & (not sp.skip_padding))
        if sp.skip_zero_weights:
            issued &= w
        gated = np.zeros(shape, dtype=bool)
        if sp.gate_zero_operands:
            zero = np.zeros(shape, dtype=bool)
            if "inputs" in sp.gate_on:
                zero |= a != NONZERO
            if "weights" in sp.gate_on:
                zero |= ~w
            gated = issued & zero
        out["dense"] += int(np.prod(shape))
        out["issued"] += int(issued.sum())
        out["gated"] += int(gated.sum())
        out["effectual"] += int(((a == NONZERO) & w).sum())
        size = {"r": shape[0], "m": shape[1], "n": shape[2]}
        for fx in range(math.ceil(size[x_ax] / cols)):          # column folds outer
            for fy in range(math.ceil(size[y_ax] / rows)):      # row folds inner
                block = [slice(None)] * 3
                block[AXIS[y_ax]] = slice(fy * rows, min((fy + 1) * rows, size[y_ax]))
                block[AXIS[x_ax]] = slice(fx * cols, min((fx + 1) * cols, size[x_ax]))
                iss, gat = issued[tuple(block)], gated[tuple(block)]
                for t in "WIO":
                    if t == "I":       # the leader: read in full for every issued slot
                        continue
                    lvl = inner[t]
                    if levels[lvl].per_pe:      # the stationary operand: one slot per access
                        add((lvl, t, "update" if t == "O" else "read"), gat.sum())
                        if t == "O":   # the running sum is read on every update but the first
                            first = iss & (np.cumsum(iss, axis=AXIS[s_ax]) == 1)
                            add((lvl, t, "read"), (gat & ~first).sum())
                        continue
                    # a streamed operand at the shared level: one access per group of the
                    # fold's slots that differ only along the tensor's free axis (spread over
                    # the array); gated when every issued slot it serves is gated
                    free = AXIS[FREE_AXIS[t]]
                    assert FREE_AXIS[t] in (y_ax, x_ax)
                    served = iss.any(axis=free)
                    all_gated = served & (gat | ~iss).all(axis=free)
                    if t != "O":
                        add((lvl, t, "read"), all_gated.sum())
                        continue
                    add((lvl, t, "update"), all_gated.sum())
                    # psums reduced down the columns: the row folds of a column fold update the
                    # same elements; all but an element's first update read the running sum
                    assert y_ax == "r"
                    if fy > 0:
                        earlier = [slice(None)] * 3
                        earlier[AXIS["r"]] = slice(0, fy * rows)
                        earlier[AXIS[x_ax]] = block[AXIS[x_ax]]
                        started = issued[tuple(earlier)].any(axis=AXIS["r"])
                    else:
                        started = np.zeros_like(served)
                    add((lvl, t, "read"), (all_gated & started).sum())
    bits = dict(zip("WIO", arch.tensor_bits))
    diff = {"mac": -out["gated"] * (arch.mac_pj - arch.gated_mac_pj), "spad": 0.0, "glb": 0.0}
    for (lvl, t, action), n in gated_acc.items():
        lv = levels[lvl]
        gated_e = (lv.gated_pj_per_bit if lv.gated_pj_per_bit is not None
                   else lv.read_pj_per_bit * arch.gated_fraction)
        full_e = lv.read_pj_per_bit if action == "read" else lv.write_pj_per_bit
        diff["spad" if lv.per_pe else "glb"] -= n * bits[t] * (full_e - gated_e)
    out["gated_accesses"] = gated_acc
    out["diff"] = diff
    out["mac_energy"] = ((out["issued"] - out["gated"]) * arch.mac_pj
                         + out["gated"] * arch.gated_mac_pj)
    out["mac_energy_off"] = out["issued"] * arch.mac_pj
    return out


def _runs(layer, dataflow, rows, cols, gate_on, sparsity=None, pe_level=None):
    """(row gating on, row gating off, the oracle of the gating design)."""
    on = _design(dataflow, rows, cols, True, gate_on, sparsity, pe_level)
    off = _design(dataflow, rows, cols, False, gate_on, sparsity, pe_level)
    return simulate_layer(layer, on, samples=1), simulate_layer(layer, off, samples=1), \
        _oracle(layer, on)


def _diff(on: dict, off: dict, component: str) -> float:
    return on[f"energy_{component}_pj"] - off[f"energy_{component}_pj"]


def _close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=RTOL, abs_tol=1e-9)


# ---- random cases -----------------------------------------------------------------------------

def _case(seed: int) -> dict:
    rng = np.random.default_rng(7919 + seed)
    dataflow = DATAFLOWS[seed % 3]
    gate_on = GATE_ONS[(seed // 3) % 3]
    groups = int(rng.choice([1, 1, 2]))
    r, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = 2 if seed % 4 == 1 else int(rng.integers(1, 3))
    geometry = dict(C=groups * int(rng.integers(1, 4)), K=groups * int(rng.integers(1, 5)),
                    R=r, S=s, stride_h=stride, stride_w=stride,
                    pad_h=int(rng.integers(0, 2)), pad_w=int(rng.integers(0, 2)), groups=groups,
                    H=r + int(rng.integers(0, 4)), W=s + int(rng.integers(0, 4)),
                    kind="conv2d" if groups == 1 else "grouped_conv2d")
    density_a = (0.5, 0.0, 0.3, 1.0, 0.7)[seed % 5]
    density_w = (0.6, 1.0, 0.4, 0.0)[(seed // 2) % 4]
    layer = random_layer("l", density_a, density_w, seed=seed, **geometry)
    rows, cols = (1, 1) if seed % 6 == 0 else (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    sparsity = {"skip_zero_activations": bool(rng.random() < 0.3),
                "skip_zero_weights": bool(rng.random() < 0.2),
                "skip_padding": bool(rng.random() < 0.5)}
    return dict(layer=layer, dataflow=dataflow, rows=rows, cols=cols, gate_on=gate_on,
                sparsity=sparsity)


def _check(seed: int) -> None:
    case = _case(seed)
    df = case["dataflow"]
    # OS: the psum register's gated read costs a full read, so its energy difference is the
    # psum updates' alone (its reads' gating: _check_psum_register)
    pe_level = OS_UPDATES_ONLY if df == "output_stationary" else None
    on, off, want = _runs(case["layer"], df, case["rows"], case["cols"], case["gate_on"],
                          case["sparsity"], pe_level)
    info = f"seed {seed}: {df} {case['rows']}x{case['cols']} gate_on={case['gate_on']} " \
           f"{case['sparsity']}"
    # slots, from the masks
    assert on["macs_dense"] == off["macs_dense"] == want["dense"], info
    assert on["macs_issued"] == off["macs_issued"] == want["issued"], info
    assert on["macs_gated"] == want["gated"], info
    assert off["macs_gated"] == 0, info
    assert on["macs_effectual"] == want["effectual"], info
    # MACs: full and gated energies, and the difference
    assert _close(on["energy_mac_pj"], want["mac_energy"]), (info, on["energy_mac_pj"], want)
    assert _close(off["energy_mac_pj"], want["mac_energy_off"]), info
    assert _close(_diff(on, off, "mac"), want["diff"]["mac"]), info
    # the PE level (the stationary operand, one slot per access): WS weight reads, OS psum
    # updates, IS input reads (the leader: never gated)
    assert _close(_diff(on, off, "spad"), want["diff"]["spad"]), \
        (info, _diff(on, off, "spad"), want["diff"]["spad"])
    # gating moves nothing else: the chain, DRAM, leakage and clock are the same
    for component in ("noc", "dram", "leakage", "clock"):
        assert _diff(on, off, component) == 0.0, (info, component)
    assert on["cycles"] == off["cycles"], info
    # the shared level: every access counted from the slots it serves
    assert _close(_diff(on, off, "glb"), want["diff"]["glb"]), \
        (info, _diff(on, off, "glb"), want["diff"]["glb"])


def _check_psum_register(seed: int) -> None:
    """OS at the default energies of the psum register (a gated read cheaper than a full
    one): its reads' gating is counted too (an element's first issued update reads nothing)."""
    case = _case(seed)
    on, off, want = _runs(case["layer"], "output_stationary", case["rows"], case["cols"],
                          case["gate_on"], case["sparsity"])
    info = f"seed {seed}: OS {case['rows']}x{case['cols']} {case['gate_on']} {case['sparsity']}"
    for component in ("mac", "spad", "glb"):
        assert _close(_diff(on, off, component), want["diff"][component]), \
            (info, component, _diff(on, off, component), want["diff"][component])


@pytest.mark.parametrize("seed", range(16))
def test_gating_matches_a_pair_by_pair_count(seed):
    _check(seed)


@pytest.mark.parametrize("seed", range(12))
def test_os_psum_register_reads_match_a_pair_by_pair_count(seed):
    _check_psum_register(seed)


@pytest.mark.slow
def test_gating_matches_a_pair_by_pair_count_many_seeds():
    for seed in range(16, 316):
        _check(seed)
        _check_psum_register(seed)


def test_random_cases_cover_the_brief():
    """The default seeds include every dataflow and gate_on, all-zero and all-one masks,
    padding, stride 2, odd sizes and a single PE."""
    cases = [_case(seed) for seed in range(16)]
    assert {c["dataflow"] for c in cases} == set(DATAFLOWS)
    assert {c["gate_on"] for c in cases} == set(GATE_ONS)
    geos = [c["layer"].geometry for c in cases]
    assert any(g.pad_h or g.pad_w for g in geos)
    assert any(g.stride_h == 2 for g in geos)
    assert any(c["rows"] == c["cols"] == 1 for c in cases)
    assert any(g.groups == 2 for g in geos)
    dens = [float(np.mean(c["layer"].act_mask(1))) for c in cases]
    wdens = [float(np.mean(c["layer"].weight_mask())) for c in cases]
    assert 0.0 in dens and 1.0 in dens and 0.0 in wdens and 1.0 in wdens
    assert any(c["sparsity"]["skip_zero_activations"] for c in cases)


# ---- every slot gated / none: every component exact -----------------------------------------

def _conv(act: np.ndarray, weights: np.ndarray, **geometry) -> LayerTrace:
    geo = LayerGeometry(kind="conv2d", N=1, **geometry)
    return LayerTrace.from_masks("l", geo, np.asarray(weights, dtype=bool).reshape(geo.weight_shape),
                                 np.asarray(act, dtype=bool).reshape(geo.act_shape))


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("gate_on", [("weights",), ("inputs", "weights")])
def test_zero_weights_gate_every_slot(dataflow, gate_on):
    """All weights zero, a 3x2 array with partial folds, stride 2 and padding: every slot is
    issued and gated, so every MAC-driven weight read and psum read/update is gated whatever
    rule shares them."""
    rng = np.random.default_rng(5)
    geo = dict(C=3, H=5, W=6, K=5, R=3, S=2, stride_h=2, stride_w=2, pad_h=1, pad_w=1)
    g = LayerGeometry(kind="conv2d", N=1, **geo)
    layer = _conv(rng.random(g.act_shape) < 0.5, np.zeros(g.weight_shape), **geo)
    on, off, want = _runs(layer, dataflow, 3, 2, gate_on)
    assert want["gated"] == want["issued"] == want["dense"] > 0
    assert on["macs_gated"] == want["gated"]
    for component in ("mac", "spad", "glb"):
        assert _close(_diff(on, off, component), want["diff"][component]), component
    assert want["diff"]["glb"] < 0.0          # something at the buffer was gated


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("gate_on", GATE_ONS)
def test_dense_masks_gate_nothing(dataflow, gate_on):
    """All-one masks, no padding: no slot has a zero operand, gating changes no energy."""
    geo = dict(C=2, H=4, W=3, K=3, R=2, S=2)
    g = LayerGeometry(kind="conv2d", N=1, **geo)
    layer = _conv(np.ones(g.act_shape), np.ones(g.weight_shape), **geo)
    on, off, want = _runs(layer, dataflow, 2, 2, gate_on)
    assert want["gated"] == on["macs_gated"] == 0
    assert on["energy_pj"] == off["energy_pj"]


def test_one_mac_hand_count():
    """One MAC on a 1x1 WS array, zero input, non-zero weight, gate_on [inputs]: the slot is
    gated. Gated: the MAC, the weight register's read (8 bits, per PE) and the partial sum's
    one update at the buffer (24 bits, its first: no read); the input (the leader) is read in
    full. Each gated access saves (1 - gated fraction) of its read energy."""
    layer = _conv([[[[False]]]], [[[[True]]]], C=1, H=1, W=1, K=1)
    on, off, want = _runs(layer, "weight_stationary", 1, 1, ("inputs",))
    arch = resolve(_design("weight_stationary", 1, 1, True, ("inputs",))).arch
    spad, glb = arch.levels[2].read_pj_per_bit, arch.levels[1].read_pj_per_bit
    saved = 1.0 - arch.gated_fraction
    assert on["macs_gated"] == 1
    assert want["gated_accesses"] == {(2, "W", "read"): 1, (1, "O", "update"): 1,
                                      (1, "O", "read"): 0}
    assert _diff(on, off, "mac") == pytest.approx(-(arch.mac_pj - arch.gated_mac_pj), rel=RTOL)
    assert _diff(on, off, "spad") == pytest.approx(-8 * spad * saved, rel=RTOL)
    assert _diff(on, off, "glb") == pytest.approx(-24 * glb * saved, rel=RTOL)
    assert want["diff"]["spad"] == pytest.approx(_diff(on, off, "spad"), rel=RTOL)
    assert want["diff"]["glb"] == pytest.approx(_diff(on, off, "glb"), rel=RTOL)


# ---- disagreements ----------------------------------------------------------------------------
#
# Each case is tiny and counted by hand; default energies (psum register and the 24-bit psum
# at 0.05625 pJ/bit, the buffer at its table energy, gated = 0.05 x read). The model used to
# charge ``dense accesses x gated slots / dense slots`` gated accesses per operand (the figures
# of that model are in each docstring's last line).

def _disagreement(layer, dataflow, rows, cols, component, hand_gated: dict):
    on, off, want = _runs(layer, dataflow, rows, cols, ("inputs",))
    arch = resolve(_design(dataflow, rows, cols, True, ("inputs",))).arch
    # the oracle's gated accesses are the hand count
    assert {k: v for k, v in want["gated_accesses"].items() if v} == hand_gated
    got = _diff(on, off, component)
    assert _close(got, want["diff"][component]), \
        f"model {got!r} vs pair-by-pair {want['diff'][component]!r}"


def test_os_gated_first_update_has_no_psum_read():
    """1x1 OS array, one pixel, one filter, Kred = 2: inputs (0, 1), weights (1, 1). Slot r=0
    is gated and is the element's first update (no read); slot r=1 reads the running sum in
    full. Gated: 1 psum update, 0 psum reads; 1 weight read at the buffer. (Was: spad difference
    -1.92375 pJ, pair-by-pair -1.2825 pJ.)"""
    layer = _conv([0, 1], [1, 1], C=2, H=1, W=1, K=1)
    _disagreement(layer, "output_stationary", 1, 1, "spad",
                  {(2, "O", "update"): 1, (1, "W", "read"): 1})


def test_os_partial_fold_weight_read():
    """2x1 OS array, 3 pixels (folds of 2 and 1), 1 filter, Kred 1: inputs (1, 1, 0), weight 1.
    The last fold's weight read serves one gated slot. (Was: 0.667 gated reads, glb -4.1587 pJ
    against -6.2380 pJ.)"""
    layer = _conv([1, 1, 0], [1], C=1, H=1, W=3, K=1)
    _disagreement(layer, "output_stationary", 2, 1, "glb",
                  {(2, "O", "update"): 1, (1, "W", "read"): 1})


def test_os_multicast_weight_read_with_an_effectual_receiver():
    """2x1 OS array, 2 pixels (one fold), 1 filter, Kred 1: inputs (0, 1), weight 1. The read
    serves an effectual PE: in full. (Was: half gated, glb -3.1190 pJ against 0.)"""
    layer = _conv([0, 1], [1], C=1, H=1, W=2, K=1)
    _disagreement(layer, "output_stationary", 2, 1, "glb", {(2, "O", "update"): 1})


def test_ws_reduced_psum_update_with_an_effectual_row():
    """2x1 WS array, Kred 2 on the rows, 1 pixel, 1 filter: inputs (0, 1), weights (1, 1). One
    update reduced from a gated and an effectual row: in full. (Was: half gated, glb -9.3570 pJ
    against 0.)"""
    layer = _conv([0, 1], [1, 1], C=2, H=1, W=1, K=1)
    _disagreement(layer, "weight_stationary", 2, 1, "glb", {(2, "W", "read"): 1})
