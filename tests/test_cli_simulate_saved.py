"""`simulate --baseline dense -o F` saves the twin next to F; saved plots read them back."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from accelsim.cli import main
from accelsim.sim.result import twin_path

REPO = Path(__file__).resolve().parents[1]
TRACE = str(REPO / "traces" / "lenet5_digits_dual.trace")
HW = REPO / "hw_configs"


def _simulate(out: Path, design: str, capsys) -> Path:
    assert main(["simulate", "--trace", TRACE, "--hw", str(HW / f"{design}.yaml"),
                 "--samples", "4", "--baseline", "dense", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"dense twin {twin_path(out)}" in printed
    return out


def test_twin_path_convention():
    assert twin_path("a/results.csv") == Path("a/results.dense_twin.csv")
    assert twin_path("r.parquet") == Path("r.dense_twin.parquet")


def test_baseline_output_writes_twin_and_fraction_savings(tmp_path, capsys):
    out = _simulate(tmp_path / "sparten.csv", "sparten_like", capsys)
    table, twin = pd.read_csv(out), pd.read_csv(twin_path(out))
    assert twin["hw_name"].iloc[0] == table["hw_name"].iloc[0] + "-dense"
    assert list(twin["layer"]) == list(table["layer"])
    # one convention (accelsim.sim.headline): fractions named as sim.compare names them
    assert not {"energy_saved_percent", "dram_saved_percent"} & set(table.columns)
    expected = 1.0 - table["energy_pj"] / twin["energy_pj"]
    assert table["energy_saving"].to_numpy() == pytest.approx(expected.to_numpy())
    assert table["dram_saving"].to_numpy() == pytest.approx(
        (1.0 - table["dram_bytes"] / twin["dram_bytes"]).to_numpy(), nan_ok=True)
    assert table["speedup"].to_numpy() == pytest.approx((twin["cycles"] / table["cycles"]).to_numpy())
    totals = json.loads(Path(str(out) + ".json").read_text())["totals"]
    twin_totals = json.loads(Path(str(twin_path(out)) + ".json").read_text())["totals"]
    assert "energy_saved_percent" not in totals
    assert totals["energy_saving"] == pytest.approx(
        1.0 - totals["energy_pj"] / twin_totals["energy_pj"])
    assert json.loads(Path(str(twin_path(out)) + ".json").read_text())["meta"]["trace_path"] == TRACE


def test_saved_results_plot_savings_and_compare(tmp_path, capsys):
    a = _simulate(tmp_path / "sparten.csv", "sparten_like", capsys)
    b = _simulate(tmp_path / "cnvlutin.csv", "cnvlutin_like", capsys)
    assert main(["plot", "savings", "--results", str(a), "-o", str(tmp_path / "s.png")]) == 0
    assert main(["plot", "compare", "--results", str(a), "--results", str(b),
                 "-o", str(tmp_path / "c.svg")]) == 0
    svg = (tmp_path / "c.svg").read_text()
    for text in ("sparten-like", "cnvlutin-like", "lenet5_digits_dual", "per inference",
                 "mean of 4 samples"):
        assert text in svg
    capsys.readouterr()
    alone = tmp_path / "alone.csv"
    pd.read_csv(a).to_csv(alone, index=False)
    assert main(["plot", "savings", "--results", str(alone), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no dense-twin table alone.dense_twin.csv" in err[0]
