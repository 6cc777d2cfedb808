"""accelsim codesign: strict spec, train x trace x simulate, fronts, selection, cache, kill."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from accelsim.cli import main
from accelsim.codesign.run import run_codesign
from accelsim.codesign.spec import apply_training, load_codesign_spec
from accelsim.errors import ConfigError
from accelsim.sweep.pareto import pareto_brute_force

REPO = Path(__file__).resolve().parents[1]
RECIPE = {
    "version": 1, "name": "tiny", "seed": 0, "model": "lenet5",
    "data": {"dataset": "synthetic:1,32,32,10,60", "batch_size": 20, "validation_fraction": 0.25},
    "stages": [
        {"name": "dense", "epochs": 1, "optimizer": {"type": "sgd", "lr": 0.05}},
        {"name": "sparse", "epochs": 1, "optimizer": {"type": "sgd", "lr": 0.02},
         "prune": {"sparsity": 0.5, "schedule": "cubic", "end_epoch": 0},
         "activation_penalty": {"type": "tl1", "b": 0.5, "lambda": 0.1}},
    ],
}
SPEC = {
    "version": 1, "name": "tiny_codesign", "recipe": "recipe.yaml",
    "training": {"penalty": ["l1", "tl1"], "lambda": [0.1], "tl1_b": [0.5, 1.0], "prune_sparsity": [0.5]},
    "hardware": {"designs": [str(REPO / "hw_configs" / "sparten_like.yaml"),
                             str(REPO / "hw_configs" / "cnvlutin_like.yaml")]},
    "samples": 6,
    "objectives": [["val_accuracy", "energy_pj"], ["val_accuracy", "energy_saving", "cycles"]],
}


def _write(folder: Path, spec: dict | None = None, recipe: dict | None = None) -> Path:
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe or RECIPE))
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec or SPEC))
    return path


def test_spec_expands_training_points_once_each(tmp_path):
    spec = load_codesign_spec(_write(tmp_path))
    # l1 ignores tl1_b: 1 l1 point + 2 tl1 points
    assert [p.params for p in spec.points] == [
        {"penalty": "l1", "lambda": 0.1, "tl1_b": None, "prune_sparsity": 0.5},
        {"penalty": "tl1", "lambda": 0.1, "tl1_b": 0.5, "prune_sparsity": 0.5},
        {"penalty": "tl1", "lambda": 0.1, "tl1_b": 1.0, "prune_sparsity": 0.5}]
    assert len({p.id for p in spec.points}) == 3 and [d.design for d in spec.designs] == [
        "sparten_like", "cnvlutin_like"]
    l1 = spec.points[0].recipe.stages[1].activation_penalty
    assert l1.type == "l1" and l1.coefficients == 0.1


def test_apply_training_rules():
    raw = apply_training(RECIPE, {"penalty": "hoyer_square", "prune_schedule": "oneshot",
                                  "prune_sparsity": 0.7, "seed": 3})
    stage = raw["stages"][1]
    assert "b" not in stage["activation_penalty"] and stage["activation_penalty"]["type"] == "hoyer_square"
    assert stage["prune"] == {"sparsity": 0.7, "schedule": "oneshot"} and raw["seed"] == 3
    assert RECIPE["stages"][1]["prune"]["end_epoch"] == 0  # the base is not changed


@pytest.mark.parametrize("change,field,words", [
    ({"trainig": {}}, "trainig", "did you mean 'training'"),
    ({"training": {"penalty": ["l2"]}}, "training.penalty[0]", "expected one of"),
    ({"training": {"lambda": ["big"]}}, "training.lambda[0]", "expected a number"),
    ({"training": {"seed": [-1]}}, "training.seed[0]", "expected"),
    ({"training": {"model": ["lenet6"]}}, "training.model[0]", "did you mean 'lenet5'"),
    ({"objectives": [["test_accuracy", "energy_pj"]]}, "objectives[0][0]", "validation split"),
    ({"objectives": [["val_acc", "energy_pj"]]}, "objectives[0][0]", "did you mean 'val_accuracy'"),
    ({"hardware": {"designs": ["nope.yaml"]}}, "hardware.designs[0]", "not found"),
    ({"hardware": {"designs": [str(REPO / "hw_configs" / "sparten_like.yaml")],
                   "axes": {"pe_array.rowz": [4]}}}, "hardware.axes.pe_array.rowz", "did you mean"),
    ({"hardware": {"designs": [str(REPO / "hw_configs" / "sparten_like.yaml")],
                   "axes": {"pe_array.rows": [-4]}}}, "hardware.axes.pe_array.rows.values[0]", "expected"),
    ({"recipe": "missing.yaml"}, "recipe", "not found"),
])
def test_spec_errors_name_file_and_field(tmp_path, change, field, words):
    path = _write(tmp_path, dict(SPEC, **change))
    with pytest.raises(ConfigError) as info:
        load_codesign_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: ") and words in message and "\n" not in message


def test_axis_needs_a_stage_to_vary(tmp_path):
    recipe = dict(RECIPE, stages=[RECIPE["stages"][0]])
    with pytest.raises(ConfigError, match=r"spec.yaml: training.penalty: .*no stage with 'activation_penalty'"):
        load_codesign_spec(_write(tmp_path, recipe=recipe))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codesign")
    spec = load_codesign_spec(_write(folder))
    outcome = run_codesign(spec, folder / "out", workers=1, train_jobs=1, progress=False)
    return folder, spec, outcome


def test_table_against_direct_simulation(finished):
    from accelsim.hw import load_hw
    from accelsim.sim import simulate
    from accelsim.trace import open_trace

    folder, spec, outcome = finished
    table = outcome.table
    assert len(table) == 3 * 2 and (table["status"] == "ok").all()
    row = table[(table["penalty"] == "tl1") & (table["tl1_b"] == 1.0)
                & (table["design"] == "cnvlutin_like")].iloc[0]
    trace = open_trace(folder / "out" / "traces" / f"{row['train_id']}.trace")
    assert trace.num_samples == 6 and "validation split" in trace.provenance["dataset"]
    hw = load_hw(REPO / "hw_configs" / "cnvlutin_like.yaml")
    mine = simulate(trace, hw, samples=6, progress=False).totals
    dense = simulate(trace, hw.dense_twin(), samples=6, progress=False).totals
    assert row["energy_pj"] == pytest.approx(mine["energy_pj"], rel=1e-9)
    assert row["cycles"] == pytest.approx(mine["cycles"], rel=1e-9)
    assert row["energy_saving"] == pytest.approx(1 - mine["energy_pj"] / dense["energy_pj"], rel=1e-9)
    assert row["speedup"] == pytest.approx(dense["cycles"] / mine["cycles"], rel=1e-9)
    # validation accuracy is the trained model's own (from its checkpoint)
    from accelsim.train import load_checkpoint

    meta = load_checkpoint(folder / "out" / "train" / row["train_id"] / "model.pt")[2]
    assert row["val_accuracy"] == meta["metrics"]["val_accuracy"]
    assert "test_accuracy" not in meta["metrics"]  # training never read the test split


def test_fronts_and_selection_follow_their_definitions(finished):
    _, _, outcome = finished
    t = outcome.table
    eligible = t["above_floor"].to_numpy(bool)    # rows below the accuracy floor are on no front
    assert eligible.any()
    for names, column in ((["val_accuracy", "energy_pj"], "pareto_val_accuracy__energy_pj"),
                          (["val_accuracy", "energy_saving", "cycles"],
                           "pareto_val_accuracy__energy_saving__cycles")):
        values = np.column_stack([-t[n].to_numpy(float) if n in ("val_accuracy", "energy_saving")
                                  else t[n].to_numpy(float) for n in names])
        expected = np.zeros(len(t), bool)
        expected[eligible] = pareto_brute_force(values[eligible])
        assert np.array_equal(t[column].to_numpy(bool), expected)
    on_front = set(t.loc[t["pareto_val_accuracy__energy_pj"]
                         | t["pareto_val_accuracy__energy_saving__cycles"], "train_id"])
    best = t[eligible].sort_values(["val_accuracy", "train_id"],
                                   ascending=[False, True]).iloc[0]["train_id"]
    assert set(outcome.selected) == on_front | {best}
    assert t["selected"].equals(t["train_id"].isin(outcome.selected))
    assert t.loc[t["selected"], "test_accuracy"].notna().all()
    assert t.loc[~t["selected"], "test_accuracy"].isna().all()


def test_energy_delay_area_product_is_in_the_table(finished):
    t = finished[2].table
    ok = t[t["status"] == "ok"]
    assert (ok["area_mm2"] > 0).all()
    assert ok["edap_pj_s_mm2"].to_numpy() == pytest.approx(
        (ok["energy_pj"] * ok["latency_s"] * ok["area_mm2"]).to_numpy(), rel=1e-12)


def test_rerun_is_from_cache_and_identical(finished):
    folder, spec, outcome = finished
    again = run_codesign(spec, folder / "out", workers=1, train_jobs=1, progress=False)
    assert again.trained == 0 and again.traced == 0 and again.simulated == 0   # all from cache
    assert again.trained_cached == 3 and again.simulated_cached > 0
    pd.testing.assert_frame_equal(pd.read_csv(outcome.results_path), pd.read_csv(again.results_path))
    for name in ("results.csv", "codesign_pareto.png", "report.html", "codesign.json"):
        assert (folder / "out" / name).is_file()
    html = (folder / "out" / "report.html").read_text()
    assert "Selected models" in html and "data:image/png;base64" in html


def test_cli_one_line_errors(tmp_path, capsys):
    path = _write(tmp_path, dict(SPEC, samples=0))
    assert main(["codesign", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: samples: ") and err.count("\n") == 1


@pytest.mark.slow
def test_killed_codesign_resumes_without_losing_or_repeating(tmp_path):
    spec = dict(SPEC, training=dict(SPEC["training"], **{"lambda": [0.05, 0.1, 0.2]}))
    recipe = dict(RECIPE, stages=[dict(RECIPE["stages"][0], epochs=3), RECIPE["stages"][1]])
    path = _write(tmp_path, spec, recipe)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "accelsim.cli", "codesign", str(path), "-o", str(out),
                             "--train-jobs", "1", "--workers", "1", "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("train/*/model.pt"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p: p.stat().st_mtime_ns for p in out.glob("train/*/model.pt")}
    assert 2 <= len(done_before) < 9, "the co-design finished before it could be killed"
    resumed = run_codesign(load_codesign_spec(path), out, workers=1, train_jobs=1, progress=False)
    assert resumed.trained == 9 - len(done_before)  # nothing finished is trained again
    assert all(p.stat().st_mtime_ns == m for p, m in done_before.items())
    fresh = run_codesign(load_codesign_spec(path), tmp_path / "fresh", workers=1, train_jobs=1,
                         progress=False)
    columns = [c for c in fresh.table if c != "train_seconds"]
    pd.testing.assert_frame_equal(resumed.table[columns], fresh.table[columns])  # nothing lost
