"""MAC-driven accesses in full / gated / skipped on mapped loop nests, against a slot-by-slot walk.

The oracle below takes every MAC slot of a tiny random nest on a random three-level mapping
(level 0 temporal, level 1 temporal + spatial: the array, level 2 per PE) one by one, decomposes
its indices into loop digits, and groups slots into accesses from first principles: a MAC-driven
access of operand ``T`` at ``L``, the innermost level keeping it, is one step (every temporal
digit) of one instance of ``L`` (the spatial digits above ``L``) and

- where ``L`` multicasts (reduces partial sums), the units below it that touch the same element
  of ``T`` (equal coordinates) in that step;
- where it does not (``unicast``), one unit.

A slot is issued per the design's skipping (a padding position is a zero input, issued when
inputs are skipped only with ``pad_issued``); live when issued with every operand of the
action's ``condition_on`` non-zero. An access happens in full when a slot it serves is live,
else is gated (gate) / skipped (skip) when one is issued, else is skipped. A partial-sum read
goes with every update that happens but an element copy's first (time order: steps, then
unicast siblings).

Checked against :func:`accelsim.sim.mac_gating.mac_accesses` (as ``_sample`` calls it), and the
oracle's access totals against :func:`accelsim.map.access.analyse` (the dense counts it
scales), for dense, skipping and gating designs, with padding, strides, dilation, row
stationary's diagonal, remainders and unicast levels.
"""
from __future__ import annotations

import random
from itertools import product
from types import SimpleNamespace

import numpy as np
import pytest

from accelsim.map.access import UPDATES, analyse
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, LoopNest
from accelsim.map.sparse import MODE_ACT, MODE_BOTH, MODE_DENSE, MODE_WEIGHT
from accelsim.sim.conditions import live_slots
from accelsim.sim.mac_gating import mac_accesses
from sim_helpers import split_factors

MODES = (MODE_DENSE, MODE_ACT, MODE_WEIGHT, MODE_BOTH)
CONDS = (("inputs",), ("weights",), ("inputs", "weights"))


def _remainder_factors(bound: int, slots: int, rng) -> list[int]:
    from test_map_access import remainder_factors
    return remainder_factors(bound, slots, rng)


def _case(seed: int) -> dict:
    rng = random.Random(1009 + seed)
    remainder = seed % 3 == 2
    b = dict(N=rng.choice([1, 2]), G=rng.choice([1, 1, 2]), K=rng.choice([1, 2, 3, 4]),
             C=rng.choice([1, 2, 3]), P=rng.choice([1, 2, 3, 4]), Q=rng.choice([1, 2, 3]),
             R=rng.choice([1, 2, 3]), S=rng.choice([1, 2]))
    nest = LoopNest(tuple(b[d] for d in DIMS), rng.choice([1, 2]), rng.choice([1, 2]),
                    rng.choice([1, 1, 2]), rng.choice([1, 2]))
    levels = [[[], []] for _ in range(3)]
    for d in DIMS:
        parts = (_remainder_factors(b[d], 4, rng) if remainder
                 else split_factors(b[d], 4, rng))
        for j, f in enumerate(parts):
            lv = (0, 1, 1, 2)[j]
            spatial = j == 2
            levels[lv][int(spatial)].append(Loop(d, f, spatial, rng.choice("XY")))
    for lv in levels:
        rng.shuffle(lv[0])
    mapping = Mapping(tuple(LevelLoops(f"L{i}", tuple(t), tuple(s))
                            for i, (t, s) in enumerate(levels)))
    keeps = (frozenset("WIO"),
             frozenset(t for t in "WIO" if rng.random() < 0.6),
             frozenset(t for t in "WIO" if rng.random() < 0.4))
    unicast = frozenset(i for i in (0, 1) if rng.random() < 0.25)
    pads = (rng.choice([0, 1]), rng.choice([0, 1]))
    h = max((b["P"] - 1) * nest.stride_h + (b["R"] - 1) * nest.dil_h + 1 - 2 * pads[0], 1)
    w = max((b["Q"] - 1) * nest.stride_w + (b["S"] - 1) * nest.dil_w + 1 - 2 * pads[1], 1)
    np_rng = np.random.default_rng(seed)
    act = np_rng.random((b["N"], b["G"] * b["C"], h, w)) < rng.choice([0.0, 0.3, 0.6, 1.0])
    wmask = (np_rng.random((b["G"] * b["K"], b["C"], b["R"], b["S"]))
             < rng.choice([0.0, 0.4, 0.8, 1.0]))
    mode = MODES[seed % 4]
    pad_issued = mode in (MODE_ACT, MODE_BOTH) and rng.random() < 0.5 and any(pads)

    def action(tensor):
        pick = rng.random()
        if tensor == "I" and pick < 0.7:
            return None
        if pick < 0.2:
            return None
        return ("gate" if rng.random() < 0.7 else "skip", rng.choice(CONDS))
    actions = tuple(action(t) for t in "WIO")
    return dict(nest=nest, mapping=mapping, keeps=keeps, unicast=unicast, pads=pads, act=act,
                wmask=wmask, mode=mode, pad_issued=pad_issued, actions=actions)


# ---- the oracle ------------------------------------------------------------------------------

def _slot_states(case, n, g, k, c, p, q, r, s):
    nest, act, wmask, pads = case["nest"], case["act"], case["wmask"], case["pads"]
    kg, cg = nest.bound("K"), nest.bound("C")
    y = p * nest.stride_h + r * nest.dil_h - pads[0]
    x = q * nest.stride_w + s * nest.dil_w - pads[1]
    pad = not (0 <= y < act.shape[2] and 0 <= x < act.shape[3])
    a = False if pad else bool(act[n, g * cg + c, y, x])
    wt = bool(wmask[g * kg + k, c, r, s])
    mode = case["mode"]
    issued = True
    if mode in (MODE_ACT, MODE_BOTH):
        issued &= a or (pad and case["pad_issued"])
    if mode in (MODE_WEIGHT, MODE_BOTH):
        issued &= wt
    return issued, a, wt


def _live(issued, a, wt, action):
    if action is None:
        return issued
    cond = set(action[1])
    return issued and (a or "inputs" not in cond) and (wt or "weights" not in cond)


def oracle(case) -> dict:
    """Per access kind (W read, I read, O read, O update): (accesses, full, gated, issued but
    not live: gated or skipped by the action)."""
    nest, mapping = case["nest"], case["mapping"]
    loops = mapping.flat()
    factors = [l.factor for _, l in loops]
    stride = [0] * len(loops)
    acc = {}
    for j in range(len(loops) - 1, -1, -1):
        d = loops[j][1].dim
        stride[j] = acc.get(d, 1)
        acc[d] = stride[j] * loops[j][1].factor
    inner = {t: max(i for i, kp in enumerate(case["keeps"]) if t in kp) for t in "WIO"}
    groups = {t: {} for t in "WIO"}
    for digits in product(*[range(f) for f in factors]):
        idx = dict.fromkeys(DIMS, 0)
        for j, (_, loop) in enumerate(loops):
            idx[loop.dim] += digits[j] * stride[j]
        if any(idx[d] >= nest.bound(d) for d in DIMS):
            continue                                    # a remainder's padded index: no slot
        n, g, k, c, p, q, r, s = (idx[d] for d in DIMS)
        issued, a, wt = _slot_states(case, n, g, k, c, p, q, r, s)
        step = tuple(d for d, (_, l) in zip(digits, loops) if not l.spatial)
        element = {"W": (g, k, c, r, s),
                   "I": (n, g, c, p * nest.stride_h + r * nest.dil_h,
                         q * nest.stride_w + s * nest.dil_w),
                   "O": (n, g, k, p, q)}
        for ti, t in enumerate("WIO"):
            lvl = inner[t]
            above = tuple(d for d, (lv, l) in zip(digits, loops) if l.spatial and lv < lvl)
            below = tuple(d for d, (lv, l) in zip(digits, loops) if l.spatial and lv >= lvl)
            unit = below if lvl in case["unicast"] else ()
            key = (above, element[t], step, unit)
            live = _live(issued, a, wt, case["actions"][ti])
            if t == "I" and case["actions"][1] is None:
                live = issued
            got = groups[t].setdefault(key, [False, False])
            got[0] |= issued
            got[1] |= live

    def tally(t, kind):
        full = sum(1 for i, l in groups[t].values() if l)
        not_live = sum(1 for i, l in groups[t].values() if i and not l)
        return len(groups[t]), full, not_live if kind == "gate" else 0, not_live

    kinds = [a[0] if a else "skip" for a in case["actions"]]
    out = {"W read": tally("W", kinds[0]), "I read": tally("I", kinds[1]),
           "O update": tally("O", kinds[2])}
    # partial-sum reads: per element copy, its updates in time order; all but the first that
    # happens read the running sum, in the state of their update
    copies: dict = {}
    for (above, elem, step, unit), state in groups["O"].items():
        copies.setdefault((above, elem), []).append(((step, unit), state))
    dense = full = not_live = 0
    for updates in copies.values():
        updates.sort()
        dense += len(updates) - 1
        started = False
        for _, (issued, live) in updates:
            if not issued:
                continue
            if started:
                full += live
                not_live += not live
            started = True
    out["O read"] = (dense, full, not_live if kinds[2] == "gate" else 0, not_live)
    return out


# ---- the model, as _sample calls it ----------------------------------------------------------

def model(case):
    nest, act, wmask, pads, mode = (case[k] for k in ("nest", "act", "wmask", "pads", "mode"))
    keeps, unicast = case["keeps"], case["unicast"]
    counts = analyse(nest, case["mapping"], keeps, unicast)
    arch = SimpleNamespace(levels=[SimpleNamespace(keeps=kp) for kp in keeps], unicast=unicast)
    # issued slots, and the live ones per operand, from the slot walk's definitions
    issued = 0
    for n, g, k, c, p, q, r, s in product(*[range(b) for b in nest.bounds]):
        issued += _slot_states(case, n, g, k, c, p, q, r, s)[0]
    dense = float(nest.macs)
    live = live_slots(nest, act, wmask, pads, mode, case["pad_issued"], float(issued))
    full = np.full(3, issued / dense)
    gated = np.zeros(3)
    for ti, action in enumerate(case["actions"]):
        if action is not None:
            full[ti] = live.live(action[1]) / dense
            if action[0] == "gate":
                gated[ti] = issued / dense - full[ti]
    got = mac_accesses(nest, case["mapping"], arch, act, wmask, pads, mode, case["pad_issued"],
                       case["actions"], (dense, float(issued), full * dense, gated * dense,
                                         float(counts.macs_reads[2])))
    inner_o = max(i for i, kp in enumerate(keeps) if "O" in kp)
    dense_acc = np.append(counts.macs_reads, counts.counts[inner_o, 2, UPDATES])
    # the slot fractions where the model keeps them (as _sample does)
    f = np.where(np.isnan(got.full), dense_acc * full[[0, 1, 2, 2]], got.full)
    gt = np.where(np.isnan(got.gated), dense_acc * gated[[0, 1, 2, 2]], got.gated)
    return counts, dense_acc, f, gt, got, issued


def check(seed: int) -> None:
    case = _case(seed)
    want = oracle(case)
    counts, dense_acc, full, gated, got, issued = model(case)
    info = (f"seed {seed}: mode {case['mode']} actions {case['actions']} keeps "
            f"{[''.join(sorted(k)) for k in case['keeps']]} unicast {sorted(case['unicast'])} "
            f"pad_issued {case['pad_issued']} mapping {case['mapping']}")
    # the oracle's accesses are the dense counts the model scales (Timeloop's conventions)
    for i, name in enumerate(("W read", "I read", "O read", "O update")):
        assert want[name][0] == dense_acc[i], (info, name, want[name][0], dense_acc[i])
        if not np.isnan(got.dense[i]):
            assert got.dense[i] == want[name][0], (info, name)
    skipping = case["mode"] != MODE_DENSE
    for i, name in enumerate(("W read", "I read", "O read", "O update")):
        _, w_full, w_gated, w_not_live = want[name]
        assert gated[i] == pytest.approx(w_gated, abs=1e-9), \
            (info, name, "gated", gated[i], w_gated)
        if name == "O read" and skipping and np.isnan(got.dense[3]):
            # updates of one slot each: the reads keep skipping's slot-fraction total, less
            # the reads of updates that are not live (exact; gated or skipped by the action)
            total = counts.macs_reads[2] * issued / counts.macs
            if case["actions"][2] is not None:
                assert full[i] == pytest.approx(max(0.0, total - w_not_live), abs=1e-9), \
                    (info, name)
            else:
                assert full[i] == pytest.approx(total, abs=1e-9), (info, name)
            continue
        assert full[i] == pytest.approx(w_full, abs=1e-9), (info, name, "full", full[i], w_full)


@pytest.mark.parametrize("seed", range(16))
def test_mac_accesses_match_a_slot_walk(seed):
    check(seed)


@pytest.mark.slow
def test_mac_accesses_match_a_slot_walk_many_seeds():
    for seed in range(16, 616):
        check(seed)


def test_cases_cover_the_brief():
    """The default seeds include shared and unicast levels, remainders, every mode, gate and
    skip actions, padding issued, and row stationary's diagonal sharing of inputs."""
    from accelsim.sim.mac_gating import _plan

    cases = [_case(seed) for seed in range(16)]
    assert {c["mode"] for c in cases} == set(MODES)
    assert any(c["unicast"] for c in cases)
    assert any(c["pad_issued"] for c in cases)
    kinds = {a[0] for c in cases for a in c["actions"] if a}
    assert kinds == {"gate", "skip"}
    shared = set()
    for c in cases:
        for t in "WIO":
            lvl = max(i for i, kp in enumerate(c["keeps"]) if t in kp)
            plan = _plan(c["nest"], c["mapping"], lvl, t, lvl not in c["unicast"])
            if plan.free:
                shared.add(t)
            if plan.diagonal:
                shared.add("diagonal")
    assert shared >= {"W", "I", "O"}
    assert any(any(c["mapping"].factor_product(d) != c["nest"].bound(d) for d in DIMS)
               for c in cases)


def test_chunked_slot_walk(monkeypatch):
    """The slot walk behind row stationary's diagonal input groups, in chunks of a few slots
    (each access in one chunk), counts the same."""
    import accelsim.sim.mac_gating as mg

    monkeypatch.setattr(mg, "_CHUNK", 4)
    for seed in range(16):
        check(seed)


# ---- end to end: a mapped design, gating on and off -------------------------------------------

#: edge_lowpower's shape: weights read from the glb every MAC cycle (multicast along the array),
#: inputs and psums in per-PE registers
EDGE_LIKE = [
    {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 65536,
     "word_bits": 8, "read_words_per_cycle": 8},
    {"name": "ispad", "instances": "per_pe", "keeps": ["inputs"], "size_bytes": 16, "word_bits": 8},
    {"name": "pspad", "instances": "per_pe", "keeps": ["outputs"], "size_bytes": 4,
     "word_bits": 24},
]


@pytest.mark.parametrize("seed", range(6))
def test_mapped_design_energy_difference_is_the_gated_accesses(seed):
    """On an edge_lowpower-like mapped design, the energy difference of each level between
    gating on and off is the oracle's gated accesses (on the mapper's mapping) x bits x (full -
    gated energy); the MACs' is the gated slots'."""
    from sim_helpers import make_hw, random_layer

    from accelsim.sim.design import resolve
    from accelsim.sim.engine import simulate_layer
    from accelsim.sim.loopnest import _mode, _tensor_actions, map_layer

    rng = random.Random(seed)
    sparsity = {"skip_zero_activations": seed % 2 == 0, "skip_padding": seed % 3 == 0,
                "gate_on": [["inputs"], ["weights"], ["inputs", "weights"]][seed % 3]}
    geometry = dict(C=rng.choice([3, 4, 8]), K=rng.choice([4, 6, 8]), R=3, S=3,
                    H=rng.choice([5, 6, 7]), W=rng.choice([5, 6]), pad_h=1, pad_w=1,
                    stride_h=rng.choice([1, 2]), stride_w=1)
    layer = random_layer("l", density_a=rng.choice([0.2, 0.5]),
                         density_w=rng.choice([0.3, 0.6]), seed=seed, **geometry)

    def design(gate):
        return make_hw(pe_array={"rows": 4, "cols": 4, "dataflow": "output_stationary"},
                       memory_hierarchy=EDGE_LIKE,
                       sparsity=dict(sparsity, gate_zero_operands=gate))

    on, off = design(True), design(False)
    row_on, row_off = (simulate_layer(layer, hw, samples=1) for hw in (on, off))
    arch = resolve(on).arch
    geo = layer.geometry
    mode = _mode(on)
    case = dict(nest=LoopNest.of_geometry(geo, batch=1), mapping=map_layer(layer, on).mapping,
                keeps=arch.keeps, unicast=arch.unicast, pads=(geo.pad_h, geo.pad_w),
                act=np.asarray(layer.act_mask(1)[:1], dtype=bool),
                wmask=np.asarray(layer.weight_mask(), dtype=bool), mode=mode,
                pad_issued=(mode in (MODE_ACT, MODE_BOTH) and not on.sparsity.skip_padding),
                actions=_tensor_actions(on, arch))
    assert map_layer(layer, off).mapping == case["mapping"]     # the same mapping both ways
    want = oracle(case)
    inner = {t: max(i for i, kp in enumerate(arch.keeps) if t in kp) for t in "WIO"}
    bits = dict(zip("WIO", arch.tensor_bits))
    diff = {"spad": 0.0, "glb": 0.0}
    for name, t, action in (("W read", "W", "read"), ("I read", "I", "read"),
                            ("O read", "O", "read"), ("O update", "O", "update")):
        lv = arch.levels[inner[t]]
        gated_e = (lv.gated_pj_per_bit if lv.gated_pj_per_bit is not None
                   else lv.read_pj_per_bit * arch.gated_fraction)
        full_e = lv.read_pj_per_bit if action == "read" else lv.write_pj_per_bit
        diff["spad" if lv.per_pe else "glb"] -= want[name][2] * bits[t] * (full_e - gated_e)
    for component in ("glb", "spad"):
        got = row_on[f"energy_{component}_pj"] - row_off[f"energy_{component}_pj"]
        assert got == pytest.approx(diff[component], rel=1e-9, abs=1e-9), (seed, component)
    gated_slots = row_on["macs_gated"]
    assert row_on["energy_mac_pj"] - row_off["energy_mac_pj"] == pytest.approx(
        -gated_slots * (arch.mac_pj - arch.gated_mac_pj), rel=1e-9, abs=1e-9)
    assert want["W read"][0] > 0 and any(want[n][2] for n in want) or gated_slots == 0


@pytest.mark.parametrize("seed", range(8))
def test_one_tap_input_counts_equal_the_walk(seed):
    # the NumPy path of a one-tap nest (a lowered operand matrix) against the kernel's walk
    from accelsim.sim import mac_gating as mg

    rng = np.random.default_rng(seed)
    n, g, cg, p, q = (int(rng.integers(1, 4)) for _ in range(5))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    codes = rng.integers(0, 3, size=(n, g, cg, (p - 1) * sh + 1, (q - 1) * sw + 1)).astype(np.uint8)
    for mode in (mg.MODE_DENSE, mg.MODE_ACT, mg.MODE_BOTH):
        for pad_issued in (False, True):
            ia, iw = mg.issue_tables(mode, pad_issued)
            la, _ = mg.live_tables(ia, iw, ("inputs",))
            np.testing.assert_array_equal(
                mg._input_counts_one_tap(codes, ia, la, p, q, sh, sw),
                mg._input_counts(codes, ia, la, 1, 1, p, q, sh, sw, 1, 1))
