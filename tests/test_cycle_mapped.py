"""Cycle-level runs of mapped designs (issue 24 item 1): accelsim.sim.cycle_mapped and its kernel."""
from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from accelsim.errors import AccelsimError
from accelsim.hw.load import load_hw_dict
from accelsim.map.arch import arch_of
from accelsim.map.cost import level_bits
from accelsim.map.nest import LoopNest
from accelsim.map.sparse import MODE_BOTH, step_work
from accelsim.sim import cycle_mapped
from accelsim.sim.engine import simulate_layer
from accelsim.sim.kernels import mapped_cycle as mc
from accelsim.sim.kernels import schedule as sch
from accelsim.sim.loopnest import map_layer, simulate_layer_loopnest
from cycle_mapped_reference import reference
from sim_helpers import make_hw, random_layer

REPO = Path(__file__).resolve().parents[1]
TIME_KEYS = ("cycles", "compute_cycles", "stall_cycles", "glb_stall_cycles", "dram_stall_cycles",
             "fill_drain_cycles", "utilization", "energy_leakage_pj", "energy_clock_pj", "energy_pj")


def eyeriss(ideal: bool = False, glb_port: float | None = 4, dram_gbps: float = 1.6,
            double: bool = False, sync: str = "array", depth: int | None = None, sparsity=None):
    """hw_configs/eyeriss_v1.yaml with its ports changed (None: unbounded) and DRAM ideal."""
    data = yaml.safe_load((REPO / "hw_configs" / "eyeriss_v1.yaml").read_text())
    data = copy.deepcopy(data)
    glb = data["memory_hierarchy"][0]
    if glb_port is None:
        glb.pop("read_words_per_cycle", None)
    else:
        glb["read_words_per_cycle"] = glb_port
    for level in data["memory_hierarchy"]:
        level["double_buffered"] = double
    data["dram"] = {"ideal": True} if ideal else {"bandwidth_gb_per_s": dram_gbps}
    data["pe_array"]["sync"] = sync
    if depth is not None:
        data["pe_array"]["work_queue_depth"] = depth
    if sparsity is not None:
        data["sparsity"] = sparsity
    return load_hw_dict(data, source="<eyeriss test>")


def small(dataflow: str, port: float | None, double: bool = False, ideal: bool = True,
          sync: str = "array", depth: int = 1, sparsity=None, spad_port: float | None = None):
    """A 4x4 design with a shared buffer and a per-PE scratchpad."""
    glb = {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 65536,
           "word_bits": 64, "double_buffered": double}
    if port is not None:
        glb["read_words_per_cycle"] = port
    spad = {"name": "spad", "instances": "per_pe", "keeps": ["weights", "inputs", "outputs"],
            "size_bytes": 256, "word_bits": 16, "double_buffered": double}
    if spad_port is not None:
        spad["read_words_per_cycle"] = spad_port
        spad["write_words_per_cycle"] = spad_port
    extra = {} if ideal else {"dram": {"ideal": False, "bandwidth_gb_per_s": 2.0}}
    return make_hw(pe_array={"rows": 4, "cols": 4, "dataflow": dataflow, "sync": sync,
                             "work_queue_depth": depth},
                   memory_hierarchy=[glb, spad], sparsity=sparsity or {}, **extra)


GEOS = [
    dict(C=3, H=9, W=9, K=8, R=3, S=3, pad_h=1, pad_w=1),
    dict(C=4, H=10, W=10, K=4, R=3, S=3, stride_h=2, stride_w=2),
    dict(C=5, H=7, W=7, K=3, R=3, S=3),
    dict(C=16, H=5, W=5, K=12, R=1, S=1),
]
SKIP = {"skip_zero_activations": True, "skip_zero_weights": True}


def both(layer, hw):
    fast = simulate_layer(layer, hw, fidelity="fast", samples=1)
    cyc = simulate_layer(layer, hw, fidelity="cycle", samples=1)
    return fast, cyc


def check_invariants(fast: dict, cyc: dict, hw) -> None:
    """fast <= cycle; stalls by cause sum to cycles - compute; non-time fields unchanged."""
    assert cyc["compute_cycles"] == fast["compute_cycles"]
    assert cyc["cycles"] >= fast["cycles"] - 1e-9
    causes = [k for k in cyc if k.startswith("stall_") and k != "stall_cycles"]
    assert causes and all(cyc[k] >= -1e-9 for k in causes)
    total = sum(cyc[k] for k in causes) + cyc["fill_drain_cycles"]
    assert total == pytest.approx(cyc["cycles"] - cyc["compute_cycles"], abs=1e-6)
    assert cyc["glb_stall_cycles"] + cyc["dram_stall_cycles"] + cyc["fill_drain_cycles"] == \
        pytest.approx(cyc["stall_cycles"], abs=1e-6)
    for key, value in fast.items():
        if key not in TIME_KEYS:
            assert cyc[key] == value, key


# ---- (a) unbounded ports and ideal memory: cycle == fast ------------------------------------

@pytest.mark.parametrize("dataflow", ["row_stationary", "weight_stationary", "output_stationary"])
@pytest.mark.parametrize("geo", GEOS[:3])
def test_unbounded_equals_fast(dataflow, geo):
    layer = random_layer(seed=3, density_a=0.4, density_w=0.6, **geo)
    for sparsity in ({}, SKIP):
        fast, cyc = both(layer, small(dataflow, None, sparsity=sparsity))
        for key in TIME_KEYS:
            assert cyc[key] == fast[key], key
        assert cyc["fill_drain_cycles"] == 0.0


@pytest.mark.parametrize("sync,depth", [("array", 1), ("row", 2), ("decoupled", 3), ("column", 1)])
def test_unbounded_equals_fast_any_sync(sync, depth):
    layer = random_layer(seed=5, density_a=0.3, density_w=0.5, **GEOS[0])
    fast, cyc = both(layer, small("row_stationary", None, sync=sync, depth=depth, sparsity=SKIP))
    assert cyc["cycles"] == fast["cycles"] == fast["compute_cycles"]


def test_eyeriss_unbounded_equals_fast():
    layer = random_layer(seed=1, act_bits=16, weight_bits=16, **GEOS[0])
    hw = eyeriss(ideal=True, glb_port=None)
    fast, cyc = both(layer, hw)
    for key in TIME_KEYS:
        assert cyc[key] == fast[key], key


# ---- (b) finite ports: fast <= cycle, stalls add up -------------------------------------------

@pytest.mark.parametrize("dataflow", ["row_stationary", "weight_stationary", "output_stationary"])
def test_finite_ports_never_faster(dataflow):
    layer = random_layer(seed=7, density_a=0.5, density_w=0.5, **GEOS[1])
    for hw in (small(dataflow, 1), small(dataflow, 2, ideal=False, sparsity=SKIP),
               small(dataflow, 1, spad_port=1, sync="row", depth=2)):
        fast, cyc = both(layer, hw)
        check_invariants(fast, cyc, hw)
        assert cyc["cycles"] > cyc["compute_cycles"]   # these ports cost time


def test_eyeriss_stalls_and_levels():
    layer = random_layer(seed=2, act_bits=16, weight_bits=16, **GEOS[0])
    hw = eyeriss(dram_gbps=0.2)
    fast, cyc = both(layer, hw)
    check_invariants(fast, cyc, hw)
    assert fast["bottleneck"] == "DRAM"
    assert cyc["cycles"] >= fast["level_DRAM_cycles"]
    # DRAM[] holds no loops here: the buffer's whole tile is filled before the first step and
    # the outputs drained after the last, which the fast model overlaps with compute
    assert "DRAM[]" in cyc["mapping"]
    assert cyc["fill_drain_cycles"] >= fast["level_DRAM_cycles"] - 1


def test_metadata_port_is_served_at_its_fast_time():
    """A level's metadata storage is its own port: cycles cover its fast-model time."""
    glb = {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 65536,
           "word_bits": 64, "formats": {"inputs": {"format": "bitmap"}},
           "metadata": {"word_bits": 1, "read_words_per_cycle": 0.05}}
    hw = make_hw(pe_array={"rows": 2, "cols": 2, "dataflow": "output_stationary"},
                 memory_hierarchy=[glb])
    layer = random_layer("l", density_a=0.3, density_w=1.0, C=4, H=6, W=6, K=4, R=3, S=3)
    fast, cyc = both(layer, hw)
    assert fast["bottleneck"] == "glb_metadata"
    check_invariants(fast, cyc, hw)
    assert cyc["cycles"] >= fast["cycles"] > fast["compute_cycles"]
    assert cyc["glb_stall_cycles"] + cyc["fill_drain_cycles"] > 0


# ---- (c) double buffering is never slower -----------------------------------------------------

@pytest.mark.parametrize("dataflow", ["row_stationary", "output_stationary"])
def test_double_buffering_never_slower(dataflow):
    layer = random_layer(seed=11, **GEOS[0])
    for port in (1, 4):
        single = simulate_layer(layer, small(dataflow, port), fidelity="cycle", samples=1)
        double = simulate_layer(layer, small(dataflow, port, double=True), fidelity="cycle",
                                samples=1)
        assert double["cycles"] <= single["cycles"]
        assert double["compute_cycles"] == single["compute_cycles"]


# ---- (d) the kernel against the plain per-cycle reference -------------------------------------

def test_hand_computed_fill_and_drain():
    """2 steps of 4 busy cycles, one port of 2 bits/cycle, 8 fill bits per step (+ 6 drain)."""
    work = np.full((2, 1, 1), 4, dtype=np.int64)
    gbusy = work.reshape(2, 1)
    level = np.array([1], dtype=np.int64)
    fill = np.zeros((2, 2, 1))
    drain = np.zeros((2, 2, 1))
    stream = np.zeros((2, 1))
    fill[0, :, 0] = 8 / 2
    # single buffer: fill 0..4, step 0 4..8, fill 8..12, step 1 12..16
    res, stalls = mc.mapped_cycle(gbusy, 0, 1, fill, stream, drain, level, 2)
    assert (res[mc.MC_CYCLES], res[mc.MC_COMPUTE]) == (16, 8)
    assert stalls[0] == 4 and stalls[1 + 3 + mc.CLASS_FILL] == 4
    # double buffer: the second fill (4..8) overlaps step 0: 4 + 4 + 4
    res, stalls = mc.mapped_cycle(gbusy, 0, 1, fill[::-1].copy(), stream, drain, level, 2)
    assert res[mc.MC_CYCLES] == 12 and stalls[0] == 4 and stalls.sum() == 4
    # + 6 drain bits per step: fill(1) 8..12, drain(0) 12..15, step 1 15..19, drain(1) 19..22
    drain[0, :, 0] = 6 / 2
    res, stalls = mc.mapped_cycle(gbusy, 0, 1, fill, stream, drain, level, 2)
    assert res[mc.MC_CYCLES] == 22
    assert stalls[0] == 4 + 3                      # first fill + the last drain
    assert stalls[1 + 3 + mc.CLASS_DRAIN] == 7     # step 1 waited for drain(0) until 15
    for case in ((fill, drain), (fill[::-1].copy(), drain)):
        ref = reference(work, 1, 1, 1, 0, 0, 1, case[0] * 2, stream * 2, case[1] * 2, [2], [1], 2)
        got = mc.mapped_cycle(gbusy, 0, 1, case[0], stream, case[1], level, 2)
        assert ref[0] == got[0][mc.MC_CYCLES] and ref[1] == got[0][mc.MC_COMPUTE]
        assert np.allclose(ref[2], got[1])


def _two_level_hw(rows_cols: int, dataflow: str):
    """A shared 64 KiB buffer over 256-byte per-PE scratchpads, each keeping every tensor."""
    return make_hw(pe_array={"rows": rows_cols, "cols": rows_cols, "dataflow": dataflow},
                   memory_hierarchy=[
                       {"name": "glb", "keeps": ["weights", "inputs", "outputs"],
                        "size_bytes": 65536, "word_bits": 64},
                       {"name": "spad", "instances": "per_pe", "keeps": ["weights", "inputs",
                                                                         "outputs"],
                        "size_bytes": 256, "word_bits": 16}])


def _real_case(geo, act_density, w_density, dataflow, rows_cols=4, seed=0):
    """(work, level profiles) of a real mapped layer: the demands the engine would run."""
    layer = random_layer(seed=seed, density_a=act_density, density_w=w_density, **geo)
    hw = _two_level_hw(rows_cols, dataflow)
    mapped = map_layer(layer, hw, 1)
    g = layer.geometry
    nest = LoopNest.of_geometry(g, batch=1)
    arch = arch_of(hw)
    work = step_work(nest, mapped.mapping, arch.fanout_level, np.asarray(layer.act_mask(1)),
                     np.asarray(layer.weight_mask()), (g.pad_h, g.pad_w), MODE_BOTH)
    n = work.shape[0]
    issued = work.sum(axis=(1, 2)).astype(float)
    weights = issued / issued.sum() if issued.sum() else np.full(n, 1.0 / n)
    prof = cycle_mapped.level_profiles(mapped.mapping, arch, mapped.counts.counts, n, weights)
    return work, prof, arch


CASES = [
    (GEOS[0], 0.0, 0.0, "row_stationary", 4),        # all zeros
    (GEOS[0], 1.0, 1.0, "output_stationary", 4),     # all ones
    (GEOS[2], 0.5, 0.5, "weight_stationary", 1),     # single PE, odd sizes
    (GEOS[1], 0.4, 0.7, "row_stationary", 4),        # stride
    (dict(C=3, H=7, W=7, K=5, R=3, S=3, pad_h=1, pad_w=1), 0.6, 0.3, "output_stationary", 3),
]


@pytest.mark.parametrize("geo,da,dw,dataflow,pes", CASES)
@pytest.mark.parametrize("double", [False, True])
def test_kernel_equals_per_cycle_reference(geo, da, dw, dataflow, pes, double):
    work, prof, arch = _real_case(geo, da, dw, dataflow, pes)
    rng = np.random.default_rng(len(geo) + pes)
    # integer bits on three ports (DRAM, glb read, glb write) at integer rates: exact arithmetic
    rate = [3, 2, 5]
    profile = [prof[0, 0] + prof[0, 1], prof[1, 0], prof[1, 1]]
    level = np.array([0, 1, 1], dtype=np.int64)
    scale = rng.uniform(0.02, 0.2)
    bits = [np.round(p * scale) for p in profile]      # (2 buffers, 3 classes, S)
    if double:
        bits = [np.stack([b[1] + b[0], np.zeros_like(b[0])])[::-1] for b in bits]
    fill_b = np.stack([b[:, mc.CLASS_FILL] for b in bits], axis=-1)
    stream_b = np.stack([b[:, mc.CLASS_STREAM].sum(axis=0) for b in bits], axis=-1)
    drain_b = np.stack([b[:, mc.CLASS_DRAIN] for b in bits], axis=-1)
    r = np.array(rate, dtype=float)
    for sync, depth in ((sch.SYNC_ARRAY, 1), (sch.SYNC_ROW, 2), (sch.SYNC_DECOUPLED, 1)):
        gbusy, _ = mc.group_busy(work, pes, pes, 1, sync)
        got, stalls = mc.mapped_cycle(gbusy, 0, depth, fill_b / r, stream_b / r, drain_b / r,
                                      level, len(arch.levels))
        ref = reference(work, pes, pes, 1, sync, 0, depth, fill_b, stream_b, drain_b, rate,
                        level, len(arch.levels))
        assert got[mc.MC_CYCLES] == ref[0]
        assert got[mc.MC_COMPUTE] == ref[1]
        assert np.allclose(stalls, ref[2], atol=1e-6)
        # the compute recurrence is fold_schedule's
        fs = sch.fold_schedule(sch.as_work(work), pes, pes, 1, 0, sync, depth, False, 1)
        assert got[mc.MC_COMPUTE] == fs[sch.ST_CYCLES]


def test_profiles_carry_every_bit():
    """The per-step placement keeps each level's read and write totals."""
    work, prof, arch = _real_case(GEOS[0], 0.5, 0.5, "row_stationary")
    layer = random_layer(seed=0, density_a=0.5, density_w=0.5, **GEOS[0])
    hw = _two_level_hw(4, "row_stationary")
    counts = map_layer(layer, hw, 1).counts
    reads, writes = level_bits(counts, arch)
    assert np.allclose(prof[:, 0].sum(axis=(1, 2, 3)), reads)
    assert np.allclose(prof[:, 1].sum(axis=(1, 2, 3)), writes)
    # DRAM is read for the first step's tiles at least, and written after the last step
    assert prof[0, 0, :, mc.CLASS_FILL, 0].sum() > 0
    assert prof[0, 1, :, mc.CLASS_DRAIN, -1].sum() > 0


# ---- (e) end to end -------------------------------------------------------------------------

def test_simulate_cycle_on_eyeriss_end_to_end():
    from accelsim.sim import simulate

    layers = [random_layer(name="c1", index=0, act_bits=16, weight_bits=16, seed=1,
                           C=3, H=12, W=12, K=8, R=3, S=3, pad_h=1, pad_w=1),
              random_layer(name="c2", index=1, act_bits=16, weight_bits=16, seed=2,
                           C=8, H=12, W=12, K=8, R=3, S=3, pad_h=1, pad_w=1)]
    hw = yaml.safe_load((REPO / "hw_configs" / "eyeriss_v1.yaml").read_text())
    hw = load_hw_dict(hw, source="eyeriss_v1.yaml")
    fast = simulate(layers, hw, fidelity="fast")
    cyc = simulate(layers, hw, fidelity="cycle")
    for f_row, c_row in zip(fast.rows, cyc.rows):
        assert c_row["cycles"] >= f_row["cycles"] - 1e-9
        assert c_row["compute_cycles"] == f_row["compute_cycles"]
        assert "stall_fill_glb_cycles" in c_row
    assert cyc.meta["fidelity"] == "cycle"


def test_unknown_fidelity_is_refused():
    layer = random_layer(C=2, H=5, W=5, K=2, R=3, S=3)
    with pytest.raises(AccelsimError, match="fidelity"):
        simulate_layer_loopnest(layer, small("row_stationary", 1), fidelity="exact")


# ---- randomized (slow) ----------------------------------------------------------------------

def _random_geo(rng: random.Random) -> dict:
    r = rng.choice([1, 3])
    stride = rng.choice([1, 2])
    pad = rng.choice([0, r // 2])
    h = rng.randint(r + 1, 9)
    return dict(C=rng.randint(1, 6), H=h, W=rng.randint(r + 1, 9), K=rng.randint(1, 8), R=r, S=r,
                stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(200))
def test_random_unbounded_equal_and_finite_bounded(seed):
    rng = random.Random(seed)
    geo = _random_geo(rng)
    layer = random_layer(seed=seed, density_a=rng.random(), density_w=rng.random(), **geo)
    dataflow = rng.choice(["row_stationary", "weight_stationary", "output_stationary",
                           "input_stationary"])
    sparsity = rng.choice([{}, SKIP, {"skip_zero_activations": True}])
    sync, depth = rng.choice([("array", 1), ("row", 2), ("column", 1), ("decoupled", 2)])
    fast, cyc = both(layer, small(dataflow, None, sync=sync, depth=depth, sparsity=sparsity))
    for key in TIME_KEYS:
        assert cyc[key] == fast[key], key
    port = rng.choice([0.25, 1, 3])
    hw1 = small(dataflow, port, sync=sync, depth=depth, sparsity=sparsity, ideal=rng.random() < 0.5)
    fast, cyc = both(layer, hw1)
    check_invariants(fast, cyc, hw1)
    hw2 = small(dataflow, port, double=True, sync=sync, depth=depth, sparsity=sparsity,
                ideal=hw1.dram.ideal)
    assert simulate_layer(layer, hw2, fidelity="cycle", samples=1)["cycles"] <= cyc["cycles"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100))
def test_random_kernel_equals_reference(seed):
    rng = np.random.default_rng(seed)
    n_steps = int(rng.integers(1, 7))
    rows, cols = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    work = rng.integers(0, 6, size=(n_steps, rows, cols)) * (rng.random((n_steps, rows, cols)) < 0.8)
    n_ports = int(rng.integers(1, 4))
    rate = [int(x) for x in rng.integers(1, 5, size=n_ports)]
    level = rng.integers(0, 2, size=n_ports).astype(np.int64)
    fill = rng.integers(0, 10, size=(2, n_steps, n_ports)) * (rng.random((2, n_steps, n_ports)) < 0.5)
    stream = rng.integers(0, 10, size=(n_steps, n_ports)) * (rng.random((n_steps, n_ports)) < 0.5)
    drain = rng.integers(0, 10, size=(2, n_steps, n_ports)) * (rng.random((2, n_steps, n_ports)) < 0.5)
    sync = int(rng.integers(0, 4))
    depth = int(rng.integers(1, 4))
    lanes = int(rng.integers(1, 3))
    r = np.array(rate, dtype=float)
    gbusy, _ = mc.group_busy(work.astype(np.int64), rows, cols, lanes, sync)
    got, stalls = mc.mapped_cycle(gbusy, 0, depth, fill / r, stream / r, drain / r, level, 2)
    ref = reference(work, rows, cols, lanes, sync, 0, depth, fill, stream, drain, rate, level, 2)
    assert (got[mc.MC_CYCLES], got[mc.MC_COMPUTE]) == (ref[0], ref[1])
    assert np.allclose(stalls, ref[2], atol=1e-6)
