"""Sparse/dense ratios from real masks against Sparseloop's reference outputs.

Where the two models coincide (one PE, or statistics that do not depend on where the zeros are)
accelsim's mean over random masks of the exercise's exact density equals Sparseloop's expected
value; where it differs, the difference is the documented one (docs/validation.md section 9).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "vs_timeloop"))
from sparse_ratios import CASES, run_case  # noqa: E402

BY_NAME = {c.name: c for c in CASES}


@pytest.mark.parametrize("name", ["sparseloop-01.2.2-SUDU-dot-product", "sparseloop-01.2.3-SCDU-dot-product",
                                  "sparseloop-02.2.1-spMspM", "sparseloop-02.2.2-spMspM-tiled",
                                  "sparseloop-03.2.2-conv1d_oc"])
def test_single_pe_ratios_equal_sparseloop(name):
    r = run_case(BY_NAME[name], seeds=40)
    assert r["as_computes"] == pytest.approx(r["sl_computes"], rel=0.02)
    if r["skips"]:
        assert r["as_cycles"] == pytest.approx(r["sl_cycles"], rel=0.02)


def test_three_weights_cannot_be_43_percent_dense():
    """Sparseloop's density is an expectation (1.29 of 3 weights); a real mask has 1."""
    r = run_case(BY_NAME["sparseloop-03.2.1-conv1d"], seeds=5)
    assert r["as_computes"] == pytest.approx(1 / 3) and r["sl_computes"] == pytest.approx(12 / 27)


def test_four_pes_in_lock_step_wait_for_the_busiest():
    """Same actual computes, but real masks put different numbers of non-zero weights on the 4 PEs:
    lock-step cycles follow the busiest one (imbalance Sparseloop's statistics cannot show)."""
    r = run_case(BY_NAME["sparseloop-03.2.3-conv1d_oc-spatial"], seeds=40)
    assert r["as_computes"] == pytest.approx(r["sl_computes"], rel=0.02)
    assert r["as_cycles"] > 1.3 * r["sl_cycles"]


@pytest.mark.slow
def test_eyeriss_gating_keeps_cycles_and_gates_the_zero_inputs():
    r = run_case(BY_NAME["sparseloop-04.2.1-eyeriss-like-gating"], seeds=1)
    assert r["as_computes"] == pytest.approx(r["sl_computes"], rel=0.01)
    assert r["sl_cycles"] == pytest.approx(0.5, rel=0.01)    # v3.0.3's gating artefact
