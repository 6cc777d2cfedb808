"""Sweep axes beyond the array: batch size (residency.batch) and the clock, whose fronts use latency."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from accelsim.hw.load import load_hw
from accelsim.sim import simulate
from accelsim.sweep.run import run_sweep
from accelsim.sweep.spec import load_sweep_spec
from accelsim.trace import open_trace

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _spec(tmp_path, axes, objectives=None):
    data = {"version": 1, "base": str(ROOT / "hw_configs" / "edge_lowpower.yaml"), "axes": axes,
            "traces": [str(ROOT / "traces" / "lenet5_digits_dual.trace")], "samples": 2}
    if objectives:
        data["objectives"] = objectives
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_sweep_spec(path)


def test_batch_is_a_sweep_axis_and_matches_simulate(tmp_path):
    spec = _spec(tmp_path, {"residency.batch": [1, 2], "residency.weights": ["streamed"]})
    result = run_sweep(spec, tmp_path / "out", workers=1)
    table = result.table if hasattr(result, "table") else pd.read_csv(tmp_path / "out" / "results.csv")
    table = table.sort_values("residency.batch")
    trace = open_trace(ROOT / "traces" / "lenet5_digits_dual.trace")
    for batch, energy in zip(table["residency.batch"], table["energy_pj"]):
        hw = load_hw(ROOT / "hw_configs" / "edge_lowpower.yaml",
                     {"residency.batch": int(batch), "residency.weights": "streamed"})
        assert energy == pytest.approx(simulate(trace, hw, samples=2).totals["energy_pj"])
    assert table["energy_pj"].iloc[1] < table["energy_pj"].iloc[0]   # weights shared by 2


def test_fronts_use_latency_when_the_clock_is_swept(tmp_path):
    spec = _spec(tmp_path, {"technology.clock_mhz": [50, 100]})
    assert spec.objective_pairs[0] == ("energy_pj", "latency_s")
    assert ("energy_pj", "cycles") not in spec.objective_pairs
    fixed = _spec(tmp_path, {"pe_array.rows": [4, 8]})
    assert fixed.objective_pairs[0] == ("energy_pj", "cycles")
