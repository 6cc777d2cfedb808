"""Eyeriss v1 silicon (JSSC 2017 Table V, AlexNet CONV1-5, batch 4) against accelsim (slow).

The published figures and their sources are in ``tests/fixtures/silicon/eyeriss_v1_jssc2017.json``;
the comparison is ``benchmarks/vs_silicon/eyeriss_v1.py`` on the shipped
``hw_configs/eyeriss_v1.yaml``. Ratios are accelsim / silicon.

Windows, chosen before any model change from what a good model of this chip should reach (an
analytical model with the chip's dataflow, buffer sizes and clock, but statistical zeros and a
technology table that is not the chip's), never widened to make a check pass:

- processing latency: network total within 15%, each layer within 30% (cycles follow from the
  mapping and the array's utilisation; per-layer edge effects and stalls are what is left);
- DRAM accesses: each layer within 30% (counts of a mapping are exact; the run-length coded
  sizes depend on where the zeros are, and CONV5's stored output density is not published);
- global-buffer accesses: each layer within 50% (the mapper's tiling may differ from the chip's
  and the chip's GLB counting convention is not stated);
- on-chip power: each layer within 30%;
- with the chip's own mappings (Table III, CONV1-CONV5; CONV1 and CONV2 since remainder tiles
  and the folded row-stationary PE set, issue 22): latency, DRAM and GLB each within 25% per layer (the mapping is no
  longer a source of difference), power within 30%.

A check outside its window is a strict xfail whose reason gives the ratio measured when it was
marked; a model change that brings it inside the window makes the test XPASS and fail, so the
mark must then be removed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "vs_silicon"))

import eyeriss_v1 as bench  # noqa: E402

pytestmark = pytest.mark.slow

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
PUBLISHED_LAYERS = LAYERS     # CONV1/CONV2 expressible since remainder tiles (issue 22)

# Windows: allowed |ratio - 1|.
TOTAL_LATENCY = 0.15
LATENCY = 0.30
DRAM = 0.30
GLB = 0.50
POWER = 0.30
PUBLISHED_LATENCY = 0.25
PUBLISHED_DRAM = 0.25
PUBLISHED_GLB = 0.25
PUBLISHED_POWER = 0.30


def _out(ratio: str, what: str):
    """Strict xfail: the model is outside the window (``ratio`` as measured when marked)."""
    return pytest.mark.xfail(strict=True, reason=f"measured {ratio} ({what})")


@pytest.fixture(scope="module")
def mapper_rows():
    return bench.compare(bench.run("mapper"))


@pytest.fixture(scope="module")
def published_rows():
    return bench.compare(bench.run("published"))


def _ratio(rows, layer, quantity):
    return rows[layer][quantity][2]


# ---- the figures and the workload ----------------------------------------------------------


def test_fixture_totals_are_consistent():
    published, data = bench.silicon()
    rows = [published[name] for name in LAYERS]
    total = data["total"]
    for key, tol in (("total_latency_ms", 0.05), ("processing_latency_ms", 0.05),
                     ("dram_accesses_mb", 0.05), ("glb_accesses_mb", 0.15)):
        assert sum(r[key] for r in rows) == pytest.approx(total[key], abs=tol), key
    weighted = (sum(r["power_mw"] * r["total_latency_ms"] for r in rows)
                / sum(r["total_latency_ms"] for r in rows))
    assert weighted == pytest.approx(total["power_mw"], abs=0.5)
    # the abstract's 0.0029 DRAM access/MAC: 16-bit accesses, MB = 1e6 bytes
    assert total["dram_accesses_mb"] * 1e6 / 2 / total["macs"] == pytest.approx(0.0029, abs=5e-5)


def test_workload_is_the_chips():
    published, _ = bench.silicon()
    layers = bench.layer_traces()
    assert [l.name for l in layers] == list(LAYERS)
    for layer in layers:
        g = layer.geometry
        macs = g.N * g.K * g.P * g.Q * g.c_per_group * g.R * g.S
        assert macs == pytest.approx(published[layer.name]["macs"], rel=0.02)
    assert [l.geometry.groups for l in layers] == [1, 2, 1, 2, 2]
    conv2_density = 1 - published["conv2"]["ifmap_zeros_pct"] / 100
    assert layers[0].output_density == pytest.approx(conv2_density)
    assert layers[-1].output_density is None


def test_shipped_design_holds_the_chips_mappings(published_rows):
    """Table III's mappings need 16-bit psums (16 per PE in a 48-byte scratchpad, 84.5 KiB of
    psums in the global buffer); with 32-bit psums they do not fit and the run raises."""
    assert set(published_rows) - {"total"} == set(PUBLISHED_LAYERS)


# ---- accelsim's own mapper -----------------------------------------------------------------


def test_total_processing_latency(mapper_rows):
    assert abs(mapper_rows["total"]["latency"][2] - 1) <= TOTAL_LATENCY


@pytest.mark.parametrize("layer", [
    "conv1", "conv2", "conv3", "conv4", "conv5"])
def test_processing_latency(mapper_rows, layer):
    assert abs(_ratio(mapper_rows, layer, "latency") - 1) <= LATENCY


@pytest.mark.parametrize("layer", [
    "conv1", "conv2", "conv3", "conv4",
    pytest.param("conv5", marks=_out("1.87", "the mapper's mapping reads the weights twice; "
                                             "1.34 with the chip's mapping"))])
def test_dram_accesses(mapper_rows, layer):
    assert abs(_ratio(mapper_rows, layer, "dram") - 1) <= DRAM


@pytest.mark.parametrize("layer", LAYERS)
def test_glb_accesses(mapper_rows, layer):
    assert abs(_ratio(mapper_rows, layer, "glb") - 1) <= GLB


_TABLE = "65 nm table (Horowitz 45 nm scaled by Stillmaker-Baas) at 1.0 V against 65 nm silicon"


@pytest.mark.parametrize("layer", [
    "conv1",
    pytest.param("conv2", marks=_out("0.56", _TABLE)),
    pytest.param("conv3", marks=_out("0.49", _TABLE)),
    pytest.param("conv4", marks=_out("0.51", _TABLE + "; the mapper now picks the chip's mapping "
                                             "family, whose own mapping gives 0.54")),
    pytest.param("conv5", marks=_out("0.52", _TABLE))])
def test_onchip_power(mapper_rows, layer):
    assert abs(_ratio(mapper_rows, layer, "power") - 1) <= POWER


# ---- the chip's own mappings (CONV1-CONV5) -------------------------------------------------


@pytest.mark.parametrize("layer", PUBLISHED_LAYERS)
def test_published_mapping_latency(published_rows, layer):
    assert abs(_ratio(published_rows, layer, "latency") - 1) <= PUBLISHED_LATENCY


@pytest.mark.parametrize("layer", [
    "conv1", "conv2", "conv3", "conv4",
    pytest.param("conv5", marks=_out("1.34", "CONV5's output is written dense: its post-ReLU "
                                             "density is not published"))])
def test_published_mapping_dram(published_rows, layer):
    assert abs(_ratio(published_rows, layer, "dram") - 1) <= PUBLISHED_DRAM


@pytest.mark.parametrize("layer", [
    pytest.param("conv3", marks=_out("1.42", "psums cross the GLB once per 4-channel pass "
                                             "(64 passes); not explained")),
    "conv1", "conv2", "conv4", "conv5"])
def test_published_mapping_glb(published_rows, layer):
    assert abs(_ratio(published_rows, layer, "glb") - 1) <= PUBLISHED_GLB


@pytest.mark.parametrize("layer", [
    "conv1",
    pytest.param("conv2", marks=_out("0.58", _TABLE)),
    pytest.param("conv3", marks=_out("0.50", _TABLE)),
    pytest.param("conv4", marks=_out("0.54", _TABLE)),
    pytest.param("conv5", marks=_out("0.55", _TABLE))])
def test_published_mapping_power(published_rows, layer):
    assert abs(_ratio(published_rows, layer, "power") - 1) <= PUBLISHED_POWER
