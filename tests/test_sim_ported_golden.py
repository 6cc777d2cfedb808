"""The engine golden file's cases through the one model (issue 23): each flat design loads
ported to the loop-nest model's systolic mode (:mod:`accelsim.hw.port`).

Two checks:

- **what the two engines must agree on**, against the flat engine's golden rows
  (``tests/fixtures/engine_golden.json``, rtol 1e-12): every MAC count (dense, issued, skipped,
  gated, effectual), the MAC energy, the input and weight densities and partial-sum spills on
  every case, and compute cycles and folds at batch 1 (at batch 4 the lowered GEMM's pixel
  dimension spans the batch, so a batch shares its last partial fold; the flat engine pays it
  per sample);
- **every figure of the ported designs**, pinned in ``tests/fixtures/ported_golden.json``
  (written through explicit ports before flat files were routed through the one model as they
  load; the routing did not move them). Regenerate only when a result is meant to change, and say why::

    python tests/test_sim_ported_golden.py --write
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine_golden_cases as flat  # noqa: E402
from sim_helpers import make_hw  # noqa: E402

from accelsim.hw import load_hw  # noqa: E402
from accelsim.sim import simulate  # noqa: E402
from accelsim.trace import open_trace  # noqa: E402

FIXTURE = flat.REPO / "tests" / "fixtures" / "ported_golden.json"
#: Columns the flat engine and the one model must give alike on every case.
SHARED = ("layer", "index", "kind", "samples", "macs_dense", "macs_issued", "macs_skipped",
          "macs_gated", "macs_effectual", "energy_mac_pj", "act_density", "weight_density",
          "psum_spill_bytes")
#: ... and at batch 1 (one sample per lowered GEMM).
SHARED_BATCH_1 = ("compute_cycles", "folds")


def trace_case(trace: str, design: str, fidelity: str, batch: int, samples) -> list[dict]:
    hw = load_hw(flat.SYSTOLIC / f"{design}.yaml")      # a flat file: ported as it loads
    with open_trace(flat.REPO / "traces" / f"{trace}.trace") as opened:
        return flat._row(simulate(opened, hw, fidelity=fidelity, batch=batch,
                                  samples=samples).layers)


def random_case(design: str, fidelity: str) -> list[dict]:
    hw = make_hw(**flat.SYNTHETIC[design])
    rows = []
    for layer in flat.random_layers():
        rows += flat._row(simulate([layer], hw, fidelity=fidelity).layers)
    return rows


def quick_trace_keys() -> list[tuple]:
    return [k for k in flat.trace_keys(flat.QUICK_SAMPLES) if not (k[2] == "cycle" and k[3] == 4)]


def build() -> dict:
    cases = {}
    for key in quick_trace_keys():
        cases[flat._key(("trace",) + key)] = trace_case(*key)
    for design in flat.SYNTHETIC:
        for fidelity in ("fast", "cycle"):
            cases[flat._key(("random", design, fidelity))] = random_case(design, fidelity)
    return cases


def assert_shared(got: list[dict], want: list[dict], label: str, batch: int) -> None:
    columns = SHARED + (SHARED_BATCH_1 if batch == 1 else ())
    assert len(got) == len(want), f"{label}: {len(got)} rows, the flat engine {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        for col in columns:
            expected, value = w[col], g[col]
            if isinstance(expected, float):
                same = math.isclose(value, expected, rel_tol=flat.RTOL, abs_tol=0.0)
            else:
                same = value == expected
            assert same, f"{label} row {i} ({w['layer']}) {col}: {value!r}, flat {expected!r}"


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(flat.FIXTURE.read_text())


@pytest.fixture(scope="module")
def pinned() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("design", list(flat.SYNTHETIC))
@pytest.mark.parametrize("fidelity", ["fast", "cycle"])
def test_random_layers(golden, pinned, design, fidelity) -> None:
    key = flat._key(("random", design, fidelity))
    rows = random_case(design, fidelity)
    assert_shared(rows, golden[key], key, batch=1)
    flat.assert_rows_equal(rows, pinned[key], key)


@pytest.mark.parametrize("key", quick_trace_keys(), ids=flat._key)
def test_traces(golden, pinned, key) -> None:
    label = flat._key(("trace",) + key)
    rows = trace_case(*key)
    assert_shared(rows, golden[label], label, batch=key[3])
    flat.assert_rows_equal(rows, pinned[label], label)


@pytest.mark.slow
@pytest.mark.parametrize("key", flat.trace_keys(None) + [k for k in flat.trace_keys(flat.QUICK_SAMPLES)
                                                        if k[2] == "cycle" and k[3] == 4],
                         ids=flat._key)
def test_traces_all_samples_share_the_flat_engines_columns(golden, key) -> None:
    label = flat._key(("trace",) + key)
    assert_shared(trace_case(*key), golden[label], label, batch=key[3])


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_sim_ported_golden.py --write")
    FIXTURE.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}")
