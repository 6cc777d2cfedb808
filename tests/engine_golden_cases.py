"""The cases of the flat systolic engine's golden file and the rows it froze.

``tests/fixtures/engine_golden.json`` was written by the flat engine (before the issue-14
rewrite, which reproduced it to rtol 1e-12) for each design shipped without a
``memory_hierarchy`` at the time (kept verbatim in ``tests/fixtures/systolic_designs``) on both
LeNet-5 traces (``fast`` and ``cycle``, batch 1 and 4) and random layers (padding, stride,
dilation, groups, depthwise, linear, matmul, all-zero and all-one masks, odd sizes, a single PE)
on synthetic designs covering every dataflow, skip, sync, gating and storage format.

The flat engine is retired (issue 23): flat files load ported to the loop-nest model's systolic
mode. ``tests/test_sim_ported_golden.py`` runs these cases through the one model and checks
the columns both must agree on against these frozen rows; this module holds the cases.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_helpers import random_layer  # noqa: E402

from accelsim.trace.geometry import LayerGeometry  # noqa: E402
from accelsim.trace.layer import LayerTrace  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "engine_golden.json"
#: The shipped designs as they were when the fixture was written, in their flat (systolic) form:
#: the shipped files now describe memory hierarchies, so the systolic engine is pinned on
#: these copies.
SYSTOLIC = REPO / "tests" / "fixtures" / "systolic_designs"
TRACES = ("lenet5_digits_dual", "lenet5_digits_baseline")
QUICK_SAMPLES = 12   # the default suite's trace cases; the slow test runs every sample
RTOL = 1e-12

SYNTHETIC = {
    "os_both": dict(sparsity={"skip_zero_activations": True, "skip_zero_weights": True}),
    "os_both_decoupled_lanes": dict(
        pe_array={"rows": 3, "cols": 5, "sync": "decoupled", "macs_per_pe": 2,
                  "work_queue_depth": 2, "operand_queue_depth": 3},
        sparsity={"skip_zero_activations": True, "skip_zero_weights": True},
        storage={"activations": {"format": "bitmap"}, "weights": {"format": "run_length"}}),
    "os_act_rowsync_gated": dict(
        pe_array={"rows": 4, "cols": 3, "sync": "row"},
        sparsity={"skip_zero_activations": True, "gate_zero_operands": True},
        low_power={"power_gating": True, "min_idle_cycles": 2}),
    "os_weight_colsync": dict(pe_array={"rows": 2, "cols": 4, "sync": "column"},
                              sparsity={"skip_zero_weights": True}),
    "os_dense_gated": dict(sparsity={"gate_zero_operands": True}),
    "ws_both": dict(pe_array={"rows": 4, "cols": 2, "dataflow": "weight_stationary"},
                    sparsity={"skip_zero_activations": True, "skip_zero_weights": True}),
    "ws_act_small_glb": dict(pe_array={"rows": 3, "cols": 4, "dataflow": "weight_stationary"},
                             sparsity={"skip_zero_activations": True},
                             global_buffer={"size_kib": 1, "words_per_cycle": 2}),
    "ws_dense": dict(pe_array={"rows": 5, "cols": 3, "dataflow": "weight_stationary"}),
    "is_both_rle": dict(pe_array={"rows": 3, "cols": 3, "dataflow": "input_stationary"},
                        sparsity={"skip_zero_activations": True, "skip_zero_weights": True},
                        storage={"weights": {"format": "run_length"}}),
    "is_weight_gated": dict(pe_array={"rows": 2, "cols": 5, "dataflow": "input_stationary",
                                      "sync": "decoupled"},
                            sparsity={"skip_zero_weights": True, "gate_zero_operands": True}),
    "single_pe": dict(pe_array={"rows": 1, "cols": 1},
                      sparsity={"skip_zero_activations": True, "skip_zero_weights": True}),
    "single_pe_ws": dict(pe_array={"rows": 1, "cols": 1, "dataflow": "weight_stationary"},
                         sparsity={"skip_zero_activations": True}),
}


def _matmul(seed: int) -> LayerTrace:
    geo = LayerGeometry("matmul", N=2, C=2 * 5, H=3, W=1, K=2 * 4, groups=2)
    rng = np.random.default_rng(seed)
    weight = rng.random(geo.weight_mask_shape) < 0.5
    act = rng.random(geo.act_shape) < 0.6
    return LayerTrace.from_masks("matmul", geo, weight, act, index=9)


def random_layers() -> list[LayerTrace]:
    """Small random layers covering the lowering's edge cases (fresh objects each call)."""
    layers = [
        random_layer("plain", C=3, H=7, W=6, K=5, R=3, S=3, N=2, seed=1),
        random_layer("padded", C=2, H=5, W=7, K=3, R=3, S=3, pad_h=1, pad_w=2, N=2, seed=2,
                     index=1),
        random_layer("strided", C=3, H=9, W=7, K=5, R=3, S=3, stride_h=2, stride_w=3, pad_h=1,
                     pad_w=1, N=2, seed=3, index=2),
        random_layer("dilated", C=2, H=9, W=9, K=2, R=3, S=2, dil_h=2, dil_w=3, pad_h=2, N=2,
                     seed=4, index=3),
        random_layer("grouped", kind="grouped_conv2d", C=4, H=5, W=5, K=6, R=3, S=3, pad_h=1,
                     pad_w=1, groups=2, N=2, seed=5, index=4),
        random_layer("depthwise", kind="depthwise_conv2d", C=3, H=6, W=5, K=3, R=3, S=3,
                     pad_h=1, pad_w=1, groups=3, N=2, seed=6, index=5),
        random_layer("linear", kind="linear", C=70, H=3, W=1, K=9, N=2, seed=7, index=6),
        random_layer("zeros", C=3, H=5, W=5, K=4, R=3, S=3, pad_h=1, pad_w=1, density_a=0.0,
                     density_w=0.0, seed=8, index=7),
        random_layer("ones", C=5, H=6, W=5, K=7, R=2, S=3, pad_w=1, density_a=1.0,
                     density_w=1.0, seed=9, index=8),
        random_layer("wide", C=33, H=4, W=4, K=3, R=2, S=2, stride_h=2, N=3, density_a=0.3,
                     density_w=0.7, seed=10, index=10),
        _matmul(11),
    ]
    return layers


def _row(frame) -> list[dict]:
    out = []
    for record in frame.to_dict(orient="records"):
        row = {}
        for key, value in record.items():
            if isinstance(value, (bool, np.bool_)):
                row[key] = bool(value)
            elif isinstance(value, (int, float, np.integer, np.floating)):
                row[key] = float(value)
            else:
                row[key] = str(value)
        out.append(row)
    return out


# The shipped designs without a memory_hierarchy when the fixture was written (frozen: a
# design added later, or edited, is not what this file pins; their files are in SYSTOLIC).
DESIGNS = ("cnvlutin_like", "dense_ws_tpu_like", "edge_lowpower", "eyeriss_like", "sparten_like")


def shipped_designs() -> list[str]:
    return list(DESIGNS)


def trace_keys(samples) -> list[tuple]:
    return [(t, d, f, b, samples) for t in TRACES for d in shipped_designs()
            for f in ("fast", "cycle") for b in (1, 4)]


def _key(parts) -> str:
    return "|".join(str(p) for p in parts)


def assert_rows_equal(got: list[dict], want: list[dict], label: str) -> None:
    assert len(got) == len(want), f"{label}: {len(got)} rows, golden has {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert set(g) == set(w), f"{label} row {i}: columns {sorted(set(g) ^ set(w))} differ"
        for col, expected in w.items():
            value = g[col]
            if isinstance(expected, float):
                same = (math.isnan(expected) and math.isnan(value)) or math.isclose(
                    value, expected, rel_tol=RTOL, abs_tol=0.0)
                assert same, f"{label} row {i} ({w.get('layer')}) {col}: {value!r} != {expected!r}"
            else:
                assert value == expected, f"{label} row {i} {col}: {value!r} != {expected!r}"
