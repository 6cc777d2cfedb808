"""Co-design: the validation-accuracy floor (a collapsed model is never selected), the plot's
legend outside the data, figures written to the run folder unless asked (issue 26)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accelsim.codesign.report import plot_accuracy_saving
from accelsim.codesign.run import apply_floor, mark_fronts, run_codesign, select_models
from accelsim.codesign.spec import accuracy_floor, load_codesign_spec
from accelsim.errors import ConfigError
from test_codesign import SPEC, _write

REPO = Path(__file__).resolve().parents[1]
OBJECTIVES = (("val_accuracy", "energy_pj"), ("val_accuracy", "energy_saving", "cycles"))


def _table(spec, accuracies: dict[int, float], saving: dict[int, float]) -> pd.DataFrame:
    """Rows as build_rows makes them, one design: point i has accuracy and saving given."""
    rows = []
    for i, tp in enumerate(spec.points):
        s = saving[i]
        rows.append({"train_id": tp.id, "penalty": tp.params.get("penalty"), "design": "d",
                     "design_label": "d", "status": "ok", "val_accuracy": accuracies[i],
                     "energy_saving": s, "energy_pj": 1e6 * (1 - s), "cycles": 1e4 * (1 - s),
                     "speedup": 1 / (1 - s)})
    return pd.DataFrame(rows)


def test_floor_fields_default_and_validation(tmp_path):
    spec = load_codesign_spec(_write(tmp_path))
    assert spec.min_val_accuracy is None and spec.max_accuracy_drop == 0.1
    assert accuracy_floor(spec, 0.97) == pytest.approx(0.87)
    spec = load_codesign_spec(_write(tmp_path, dict(SPEC, min_val_accuracy=0.9)))
    assert accuracy_floor(spec, 0.97) == pytest.approx(0.9)
    assert accuracy_floor(spec, 0.5) == pytest.approx(0.9)   # the floor can exclude every model
    with pytest.raises(ConfigError, match=r"min_val_accuracy: expected a validation accuracy"):
        load_codesign_spec(_write(tmp_path, dict(SPEC, min_val_accuracy=1.5)))
    with pytest.raises(ConfigError, match=r"did you mean 'min_val_accuracy'"):
        load_codesign_spec(_write(tmp_path, dict(SPEC, min_val_acuracy=0.5)))


def test_collapsed_model_that_ends_the_front_is_not_selected(tmp_path):
    spec = load_codesign_spec(_write(tmp_path))     # 3 models, default floor: best - 0.1
    # model 2 collapsed (chance on 10 classes) and saves the most energy: it ends every front
    table = _table(spec, {0: 0.95, 1: 0.93, 2: 0.104}, {0: 0.3, 1: 0.5, 2: 0.9})
    collapsed = spec.points[2].id
    assert collapsed in select_models(mark_fronts(table.copy(), OBJECTIVES), OBJECTIVES)  # no floor
    floor = apply_floor(table, spec)
    assert floor == pytest.approx(0.85)
    assert table["above_floor"].tolist() == [True, True, False]
    table = mark_fronts(table, OBJECTIVES)
    chosen = select_models(table, OBJECTIVES)
    assert collapsed not in chosen and set(chosen) == {spec.points[0].id, spec.points[1].id}
    for names in OBJECTIVES:
        column = "pareto_" + "__".join(names)
        assert not table.loc[table["train_id"] == collapsed, column].any()
    # a stated floor above model 1 leaves only the best
    spec = load_codesign_spec(_write(tmp_path, dict(SPEC, min_val_accuracy=0.94)))
    table = _table(spec, {0: 0.95, 1: 0.93, 2: 0.104}, {0: 0.3, 1: 0.5, 2: 0.9})
    apply_floor(table, spec)
    assert select_models(mark_fronts(table, OBJECTIVES), OBJECTIVES) == [spec.points[0].id]


def test_run_below_the_floor_selects_and_tests_nothing(tmp_path):
    # the tiny synthetic models are at chance (0.1); a floor of 0.5 leaves every one out
    path = _write(tmp_path, dict(SPEC, min_val_accuracy=0.5))
    out = tmp_path / "out"
    outcome = run_codesign(load_codesign_spec(path), out, workers=1, train_jobs=1, progress=False)
    t = outcome.table
    assert (t["val_accuracy"] < 0.5).all() and not t["above_floor"].any()
    assert outcome.selected == [] and not t["selected"].any() and t["test_accuracy"].isna().all()
    assert not list(out.glob("train/*/test_metrics.json"))     # the test split was never read
    assert not t.filter(like="pareto_").any().any()
    record = json.loads((out / "codesign.json").read_text())
    assert record["accuracy_floor"] == 0.5 and record["selected"] == []
    assert "accuracy floor 0.500: 3 models below it" in outcome.summary()


def test_plot_legend_outside_the_axes_and_floor_note(tmp_path):
    spec = load_codesign_spec(_write(tmp_path))
    table = _table(spec, {0: 0.95, 1: 0.93, 2: 0.104}, {0: 0.3, 1: 0.5, 2: 0.9})
    apply_floor(table, spec)
    table = mark_fronts(table, OBJECTIVES)
    table["selected"] = table["train_id"].isin(select_models(table, OBJECTIVES))
    figure = plot_accuracy_saving(table, spec)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = figure.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    frame = ax.get_window_extent(renderer)
    assert legend.x0 >= frame.x1 or legend.y1 <= frame.y0, "legend overlaps the data area"
    whole = figure.bbox
    assert legend.x1 <= whole.x1 + 1 and legend.y0 >= whole.y0 - 1   # and inside the figure
    notes = [t.get_text() for t in figure.texts]
    assert any(re.search(r"1 model\(s\) below the validation-accuracy floor of 85\.0%", n)
               for n in notes), notes
    drawn = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if len(c.get_offsets())])
    assert drawn.min() >= 85.0                                 # the collapsed model is not drawn


def test_readme_codesign_command_writes_to_the_run_folder():
    text = (REPO / "README.md").read_text()
    commands = [line for line in text.splitlines() if line.startswith("accelsim codesign ")]
    assert commands
    for line in commands:
        command = line.split("#")[0]
        assert "docs/" not in command, f"README command writes under docs/: {line}"
        assert re.search(r"-o runs/\S+", command), line


def test_cli_default_writes_only_under_the_run_folder(tmp_path, monkeypatch, capsys):
    from accelsim.cli import main

    path = _write(tmp_path)
    work = tmp_path / "cwd"
    (work / "docs").mkdir(parents=True)
    monkeypatch.chdir(work)
    assert main(["codesign", str(path), "--workers", "1", "--train-jobs", "1", "-q"]) == 0
    capsys.readouterr()
    assert not any((work / "docs").iterdir())
    assert (work / "runs" / "codesign" / "tiny_codesign" / "codesign_pareto.png").is_file()
