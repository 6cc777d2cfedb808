"""Published zero-skipping figures the project claims to reproduce in shape (slow).

One test per figure (benchmarks/published/figures.py), on statistical traces at the densities the
papers report, through benchmarks/published/reproduce.py. Shapes and tolerances, stated:

- Cnvlutin 1.37x (activation skipping): accelsim's speedup as shipped is at least the published one
  (its output-stationary rows balance better than Cnvlutin's brick lanes) and at most the
  compute-bound one, which is within 5% of the work bound (little imbalance);
- SCNN 2.7x speed / 2.3x energy, SparTen 4.7x (dual skipping): compute-bound speedup at least
  SCNN's and within 15% of SparTen's on VGG-16; energy improvement within a factor 1.5 of 2.3x;
- SparTen 1.8x over one-sided: compute-bound within a factor 1.5 of it;
- Eyeriss 45% PE power (gating): not one cycle faster than with gating off; PE energy saved
  within 10 percentage points of 45% (the paper's target, restored: a strict xfail while the
  figure is out of that window, see the test's reason).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "published"))

import figures  # noqa: E402
import reproduce  # noqa: E402

pytestmark = pytest.mark.slow


def _row(rows, scope, compared=None):
    hits = [r for r in rows
            if r["scope"] == scope and (compared is None or r["compared"] == compared)]
    assert len(hits) == 1
    return hits[0]


def test_cnvlutin_activation_skipping_brackets_published_speedup():
    rows = reproduce.study_cnvlutin("alexnet")
    conv = _row(rows, "conv (ReLU inputs)")
    published = figures.CNVLUTIN_SPEEDUP.value
    assert published <= conv["speedup"] <= conv["compute_speedup"] * 1.001
    assert conv["compute_speedup"] <= conv["work_bound"] * 1.001
    assert conv["compute_speedup"] >= 0.95 * conv["work_bound"]
    assert conv["work_bound"] == pytest.approx(1 / figures.ACT_DENSITY, rel=0.02)
    assert conv["energy_improvement"] > 1.0


def test_dual_skipping_speed_and_energy_against_scnn_and_sparten():
    alex = _row(reproduce.study_dual("alexnet"), "conv", "sparten_like vs dense twin")
    vgg_rows = reproduce.study_dual("vgg16")
    vgg = _row(vgg_rows, "conv", "sparten_like vs dense twin")
    for row in (alex, vgg):
        assert row["compute_speedup"] >= figures.SCNN_SPEEDUP.value
        assert row["compute_speedup"] <= row["work_bound"] * 1.001
        assert row["speedup"] <= row["compute_speedup"]
        energy = figures.SCNN_ENERGY.value
        assert energy / 1.5 <= row["energy_improvement"] <= energy * 1.5
    assert vgg["compute_speedup"] == pytest.approx(figures.SPARTEN_SPEEDUP.value, rel=0.15)


def test_two_sided_over_one_sided_skipping_against_sparten():
    rows = reproduce.study_dual("alexnet")
    row = _row(rows, "conv", "sparten_like vs activation-only skipping")
    published = figures.SPARTEN_VS_ONE_SIDED.value
    assert published / 1.5 <= row["compute_speedup"] <= published * 1.5


def test_eyeriss_gating_saves_pe_energy_without_speedup():
    rows = reproduce.study_eyeriss("alexnet")
    for row in rows:
        assert row["speedup"] == 1.0 and row["compute_speedup"] == 1.0
        assert row["total_energy_saving"] > 0


@pytest.mark.xfail(strict=True, reason=(
    "out of its window since the zero-detecting scratchpad read is charged in full: 27.9% of "
    "the PE energy saved on AlexNet conv against 45% published (one per-bit scratchpad energy "
    "cannot show that Eyeriss' 224-entry filter SRAM costs more per read than its ifmap and psum "
    "registers). The target stays the paper's; strict, so a figure back in the window fails here"))
def test_eyeriss_gating_pe_energy_against_the_published_45_percent():
    conv = _row(reproduce.study_eyeriss("alexnet"), "conv")
    assert conv["pe_energy_saving"] == pytest.approx(figures.EYERISS_PE_POWER.value, abs=0.10)

