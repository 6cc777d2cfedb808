"""Area in sweeps (constraint, objective, energy-delay-area product) and the area plot."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from accelsim.errors import ConfigError
from accelsim.hw.area import area_of
from accelsim.hw.load import load_hw
from accelsim.sweep.expand import expand
from accelsim.sweep.run import run_sweep
from accelsim.sweep.spec import CONSTRAINT_NAMES, HW_METRICS, SIM_METRICS, load_sweep_spec
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.records import StatisticalLayer, TraceData
from accelsim.trace.writer import write_trace

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "hw_configs" / "sparten_like.yaml"
AXES = {"pe_array.rows": [2, 4, 8], "pe_array.cols": [4]}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    layer = StatisticalLayer("fc", LayerGeometry("linear", N=1, C=48, H=1, W=1, K=8), 8, 8, 0.5, 0.6)
    write_trace(tmp_path / "tiny.trace", TraceData([layer], {"model": "tiny"}, statistical=True, seed=0))
    return tmp_path


def _spec(folder: Path, **extra) -> Path:
    data = {"version": 1, "base": str(BASE), "axes": AXES, "traces": ["tiny.trace"], **extra}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _area(rows: int) -> float:
    return area_of(load_hw(BASE, {"pe_array.rows": rows, "pe_array.cols": 4})).total_mm2


def test_area_is_a_constraint_and_an_objective():
    assert "max_area_mm2" in CONSTRAINT_NAMES and "min_area_mm2" in CONSTRAINT_NAMES
    assert "area_mm2" in HW_METRICS and "edap_pj_s_mm2" in SIM_METRICS


def test_area_budget_drops_the_large_points(folder):
    budget = (_area(4) + _area(8)) / 2
    expansion = expand(load_sweep_spec(_spec(folder, constraints={"max_area_mm2": budget})))
    rows = sorted(p.params["pe_array.rows"] for p in expansion.points)
    assert rows == [2, 4] and expansion.dropped == 1
    assert all(p.figures["area_mm2"] <= budget for p in expansion.points)


def test_bad_area_budget_is_refused(folder):
    with pytest.raises(ConfigError, match="max_area_mm2"):
        load_sweep_spec(_spec(folder, constraints={"max_area_mm2": "small"}))


def test_sweep_table_has_area_and_edap_and_fronts_on_area(folder):
    spec = load_sweep_spec(_spec(folder, objectives=[["energy_pj", "area_mm2"],
                                                     ["edap_pj_s_mm2", "cycles"]]))
    table = run_sweep(spec, folder / "out", workers=1, progress=False).table
    assert (table["status"] == "ok").all() and len(table) == 3
    for _, row in table.iterrows():
        assert row["area_mm2"] == pytest.approx(_area(int(row["pe_array.rows"])))
        assert row["edap_pj_s_mm2"] == pytest.approx(row["energy_pj"] * row["latency_s"] * row["area_mm2"])
    assert "pareto_energy_pj__area_mm2" in table and table["pareto_energy_pj__area_mm2"].any()
    saved = pd.read_csv(folder / "out" / "results.csv")
    assert np.allclose(saved["edap_pj_s_mm2"], table["edap_pj_s_mm2"])


def test_area_plot_draws_the_model(tmp_path):
    from accelsim.plot.area import area_table, designs_area, plot_area

    paths = [str(REPO / "hw_configs" / "eyeriss_v1.yaml"), str(BASE)]
    result = plot_area(area_table(designs_area(paths)))
    totals = dict(zip(result.data["design"], result.data["total"]))
    assert totals["eyeriss-v1"] == pytest.approx(area_of(load_hw(paths[0])).total_mm2)
    assert totals["sparten-like"] == pytest.approx(area_of(load_hw(BASE)).total_mm2)
    assert result.data.loc[result.data["design"] == "sparten-like", "sparse logic"].iloc[0] > 0
    nodes = plot_area(area_table(designs_area(paths[:1], [65, 7])))
    assert list(nodes.data["design"]) == ["eyeriss-v1 @ 65 nm", "eyeriss-v1 @ 7 nm"]
    assert nodes.data["total"].iloc[0] > nodes.data["total"].iloc[1]
    result.save(tmp_path / "area.png")
    assert (tmp_path / "area.png").stat().st_size > 0


def test_plot_area_command(tmp_path):
    from accelsim.cli import main

    out = tmp_path / "a.svg"
    assert main(["plot", "area", "--hw", str(BASE), "--node", "28", "-o", str(out)]) == 0
    assert out.is_file()
