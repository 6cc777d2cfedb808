"""The event-driven ``cycle`` kernel gives the per-cycle model's figures (issue 14).

``accelsim.sim.kernels.cycle.cycle_simulate`` visits only the cycles where something
changes and computes each pair's consumption cycle in closed form; ``tests/naive.py``'s
``cycle`` steps every cycle with plain Python objects (the model of docs/simulator.md,
section 5). They must agree exactly on random small layers with bounded and unbounded ports
and operand queues, every dataflow, sync mode, depth, skip and lane count, odd sizes and a
single PE; and the whole ``simulate`` table (every column, energies included) must be the
same with either underneath, gating and power gating included. The last test checks that a
large array with few deliveries costs its deliveries, not its PE-cycles.
"""
from __future__ import annotations


import numpy as np
import pytest

import naive
from sim_helpers import make_hw, random_layer
from accelsim.sim import engine, simulate
from accelsim.sim.kernels import cycle as cyk
from accelsim.sim.kernels import schedule as sch
from accelsim.sim.lower import gemm_of, lower_acts, lower_weights
from accelsim.sim.map import map_gemm
from accelsim.sim.work import operand_counts, work_matrix
from accelsim.trace.geometry import LayerGeometry

DATAFLOWS = ("output_stationary", "weight_stationary", "input_stationary")
SYNC_NAMES = ("array", "row", "column", "decoupled")


def _random_geometry(rng) -> dict:
    if rng.random() < 0.15:
        return dict(kind="linear", N=1, C=int(rng.integers(1, 12)), H=int(rng.integers(1, 5)),
                    W=1, K=int(rng.integers(1, 9)))
    groups = int(rng.choice([1, 1, 2, 3]))
    r, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    dil_h, dil_w = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    pad_h, pad_w = int(rng.integers(0, r)), int(rng.integers(0, s))
    return dict(kind="grouped_conv2d" if groups > 1 else "conv2d", N=1,
                C=groups * int(rng.integers(1, 4)), K=groups * int(rng.integers(1, 4)),
                H=dil_h * (r - 1) + 1 + int(rng.integers(0, 5)),
                W=dil_w * (s - 1) + 1 + int(rng.integers(0, 5)), R=r, S=s,
                stride_h=int(rng.integers(1, 3)), stride_w=int(rng.integers(1, 3)),
                pad_h=pad_h, pad_w=pad_w, dil_h=dil_h, dil_w=dil_w, groups=groups)


def _random_kernel_case(seed: int):
    """Inputs of one random kernel call (and the same for the reference)."""
    rng = np.random.default_rng(seed)
    geo = LayerGeometry(**_random_geometry(rng))
    density_a = float(rng.choice([0.0, 0.2, 0.5, 0.9, 1.0]))
    density_w = float(rng.choice([0.0, 0.3, 0.6, 1.0]))
    act = rng.random(geo.act_shape[1:]) < density_a
    weight = rng.random(geo.weight_shape) < density_w
    acodes, wcodes = lower_acts(act, geo), lower_weights(weight, geo)
    dataflow = str(rng.choice(DATAFLOWS))
    rows, cols = (1, 1) if rng.random() < 0.15 else (int(rng.integers(1, 6)),
                                                       int(rng.integers(1, 6)))
    capacity = None if rng.random() < 0.6 else int(rng.integers(4, 40))
    m = map_gemm(gemm_of(geo), dataflow, rows, cols, capacity, acc_bits=24)
    skip = (bool(rng.integers(0, 2)), bool(rng.integers(0, 2)))
    work = work_matrix(acodes, wcodes, operand_counts(acodes, wcodes), m, *skip)
    fill = m.fill if rng.random() < 0.5 else int(rng.integers(0, 4))
    drain = m.drain if rng.random() < 0.5 else int(rng.integers(0, 4))
    bw = float(rng.choice([0.0, 3.0, 7.5, 16.0, 24.0, 64.0, 1000.0]))
    qdepth = int(rng.choice([0, 0, 1, 2, 3, 5]))
    a_cost = np.array([float(rng.choice([0.0, 1.0, 0.5])), float(rng.choice([8.0, 9.0, 4.25])),
                       0.0])
    w_cost = np.array([float(rng.choice([0.0, 8.0, 1.0])), float(rng.choice([8.0, 9.0]))])
    return dict(acodes=acodes, wcodes=wcodes, work=work, dataflow=dataflow, code=m.code,
                chunk=m.chunk_steps, skip_a=skip[0], skip_w=skip[1], rows=rows, cols=cols,
                lanes=int(rng.choice([1, 1, 2, 3])), fill=fill, drain=drain,
                sync=int(rng.integers(0, 4)), depth=int(rng.integers(1, 4)), qdepth=qdepth,
                bw=bw, a_cost=a_cost, w_cost=w_cost, psum_bits=float(rng.choice([16.0, 24.0])),
                out_bits=float(rng.choice([0.0, 8.0, 12.5])))


def _codes(codes: np.ndarray) -> np.ndarray:
    return np.require(codes, np.uint8, ("C", "W", "A"))


def _run_both(c: dict):
    # the kernel takes one array type per argument (one compiled specialisation)
    got = cyk.cycle_simulate(_codes(c["acodes"]), _codes(c["wcodes"]), sch.as_work(c["work"]),
                             c["code"], c["chunk"], bool(c["skip_a"]), bool(c["skip_w"]), c["rows"],
                             c["cols"], c["lanes"], c["fill"], c["drain"], c["sync"], c["depth"],
                             c["qdepth"], float(c["bw"]), c["a_cost"], c["w_cost"],
                             float(c["psum_bits"]), float(c["out_bits"]), False)
    ref = naive.cycle(c["acodes"], c["wcodes"], c["work"], c["dataflow"], c["chunk"],
                      c["skip_a"], c["skip_w"], c["rows"], c["cols"], c["lanes"], c["fill"],
                      c["drain"], c["sync"], c["depth"], c["qdepth"], c["bw"], c["a_cost"],
                      c["w_cost"], c["psum_bits"], c["out_bits"])
    return got, ref


def _assert_equal(got, ref, label):
    assert got[cyk.CY_CYCLES] == ref["cycles"], label
    assert got[cyk.CY_STARVED] == ref["starved"], label
    assert got[cyk.CY_WRITE_STALL] == ref["write_stall"], label
    assert got[cyk.CY_BLOCKED] == ref["blocked"], label
    assert got[cyk.CY_PAIRS] == ref["pairs"], label
    assert got[cyk.CY_GLB_BITS] == pytest.approx(ref["glb_bits"], rel=1e-12), label


@pytest.mark.parametrize("seed", range(60))
def test_event_kernel_equals_per_cycle_reference(seed):
    case = _random_kernel_case(seed)
    got, ref = _run_both(case)
    _assert_equal(got, ref, {k: case[k] for k in ("dataflow", "rows", "cols", "lanes", "sync",
                                                  "depth", "qdepth", "bw", "skip_a", "skip_w")})
    assert ref["pairs"] == case["work"].sum()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(60, 400))
def test_event_kernel_equals_per_cycle_reference_many(seed):
    case = _random_kernel_case(seed)
    got, ref = _run_both(case)
    _assert_equal(got, ref, seed)


@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("sync", [sch.SYNC_ARRAY, sch.SYNC_ROW, sch.SYNC_COLUMN,
                                  sch.SYNC_DECOUPLED])
@pytest.mark.parametrize("qdepth,bw", [(0, 0.0), (0, 5.0), (1, 0.0), (1, 5.0), (2, 33.0)])
def test_every_sync_mode_with_bounded_resources(dataflow, sync, qdepth, bw):
    """Idle stretches (long fill/drain), a narrow port and shallow queues, lanes 1 and 2."""
    geo = LayerGeometry(kind="conv2d", N=1, C=3, H=6, W=5, K=5, R=3, S=2, pad_h=1, stride_w=2)
    rng = np.random.default_rng(7)
    act, weight = rng.random(geo.act_shape[1:]) < 0.6, rng.random(geo.weight_shape) < 0.5
    acodes, wcodes = lower_acts(act, geo), lower_weights(weight, geo)
    m = map_gemm(gemm_of(geo), dataflow, 3, 4, None, acc_bits=24)
    work = work_matrix(acodes, wcodes, operand_counts(acodes, wcodes), m, True, True)
    for lanes, fill, drain in ((1, 9, 13), (2, 0, 0)):
        case = dict(acodes=acodes, wcodes=wcodes, work=work, dataflow=dataflow, code=m.code,
                    chunk=m.chunk_steps, skip_a=True, skip_w=True, rows=3, cols=4, lanes=lanes,
                    fill=fill, drain=drain, sync=sync, depth=2, qdepth=qdepth, bw=bw,
                    a_cost=np.array([1.0, 9.0, 0.0]), w_cost=np.array([1.0, 9.0]),
                    psum_bits=24.0, out_bits=8.0)
        got, ref = _run_both(case)
        _assert_equal(got, ref, (lanes, fill, drain))


def _naive_kernel(*args):
    """``naive.cycle`` behind the kernel's signature (dataflow code, statistics vector); the
    reference has no issued padding, so its cases leave ``pad_issued`` (the last) false."""
    args = list(args)
    if len(args) == 21:
        assert not args.pop(), "the per-cycle reference does not model issued padding"
    args[3] = DATAFLOWS[args[3]]
    ref = naive.cycle(*args)
    out = np.zeros(cyk.N_CYCLE_STATS)
    out[cyk.CY_CYCLES] = ref["cycles"]
    out[cyk.CY_STARVED] = ref["starved"]
    out[cyk.CY_WRITE_STALL] = ref["write_stall"]
    out[cyk.CY_BLOCKED] = ref["blocked"]
    out[cyk.CY_GLB_BITS] = ref["glb_bits"]
    out[cyk.CY_PAIRS] = ref["pairs"]
    return out


class _ReferenceKernel:
    """Stands in for the kernel module inside the engine."""

    def __getattr__(self, name):
        return getattr(cyk, name)

    cycle_simulate = staticmethod(_naive_kernel)


@pytest.mark.parametrize("seed", range(6))
def test_simulate_table_equal_with_reference_underneath(seed, monkeypatch):
    """Every column of a cycle-fidelity ``simulate`` (energies, gating, stalls) is the same
    with the per-cycle reference in place of the kernel."""
    rng = np.random.default_rng(100 + seed)
    layer = random_layer(f"l{seed}", float(rng.uniform(0.2, 0.9)), float(rng.uniform(0.2, 0.9)),
                         seed=seed, N=2, C=3, K=4, H=5 + seed % 3, W=4, R=2, S=2,
                         pad_h=seed % 2)
    hw = make_hw(
        pe_array={"rows": int(rng.integers(1, 4)), "cols": int(rng.integers(1, 4)),
                  "dataflow": DATAFLOWS[seed % 3], "sync": SYNC_NAMES[seed % 4],
                  "work_queue_depth": 2, "macs_per_pe": 1 + seed % 2,
                  "operand_queue_depth": (None, 1, 3)[seed % 3]},
        global_buffer={"words_per_cycle": (1, 2, 8)[seed % 3]},
        sparsity={"skip_zero_activations": seed % 2 == 0, "skip_zero_weights": seed % 3 == 0,
                  "gate_zero_operands": True},
        low_power={"power_gating": seed % 2 == 1, "clock_gating": True,
                   "min_idle_cycles": 2})
    fast_kernel = simulate([layer], hw, fidelity="cycle").layers
    monkeypatch.setattr(engine, "cyk", _ReferenceKernel())
    reference = simulate([layer], hw, fidelity="cycle").layers
    assert list(fast_kernel.columns) == list(reference.columns)
    for column in fast_kernel.columns:
        a, b = fast_kernel[column].to_numpy(), reference[column].to_numpy()
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=column)
        else:
            assert list(a) == list(b), column


def test_large_array_on_a_narrow_port_equals_the_reference_figures():
    """A 128 x 128 weight-stationary array on a narrow port (~10^9 PE-cycles, few deliveries):
    the event-driven kernel gives the fast model's work and a sane schedule. Its speed is
    measured by benchmarks/bench_cycle.py, not here (a timed unit test would be flaky)."""
    geo = LayerGeometry(kind="conv2d", N=1, C=16, H=10, W=10, K=128, R=3, S=3, pad_h=1, pad_w=1)
    rng = np.random.default_rng(3)
    act, weight = rng.random(geo.act_shape[1:]) < 0.3, rng.random(geo.weight_shape) < 0.5
    acodes, wcodes = lower_acts(act, geo), lower_weights(weight, geo)
    m = map_gemm(gemm_of(geo), "weight_stationary", 128, 128, None, acc_bits=24)
    work = work_matrix(acodes, wcodes, operand_counts(acodes, wcodes), m, True, True)
    args = (_codes(acodes), _codes(wcodes), sch.as_work(work), m.code, m.chunk_steps, True, True,
            128, 128, 1, m.fill, m.drain, sch.SYNC_ROW, 2, 0, 8.0, np.array([1.0, 9.0, 0.0]),
            np.array([1.0, 9.0]), 24.0, 8.0, False)
    out = cyk.cycle_simulate(*args)
    pe_cycles = 128 * 128 * out[cyk.CY_CYCLES]
    assert pe_cycles > 5e8                      # the case the event-driven kernel is built for
    assert out[cyk.CY_CYCLES] >= work.max()     # no PE finishes before its own work
