"""`plot compare`: absolute network energy (by component) and latency panels beside the
relative savings, equal to the results tables' totals (issue 26)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from accelsim.cli import main
from accelsim.plot import layers
from accelsim.plot.common import ENERGY_UNITS, TIME_UNITS, CYCLE_UNITS
from test_plot import layer_table

TRACE = "traces/lenet5_digits_dual.trace"
DESIGNS = ("hw_configs/sparten_like.yaml", "hw_configs/eyeriss_v1.yaml")
SCALE = dict(ENERGY_UNITS + TIME_UNITS + CYCLE_UNITS)


def _stacks(ax) -> tuple[list[float], list[float]]:
    """Per x position: the filled (stacked) bar tops and the hatched (dense twin) bar heights."""
    filled, hatched = {}, {}
    for p in ax.patches:
        if not isinstance(p, Rectangle):
            continue
        x = round(p.get_x() + p.get_width() / 2, 6)
        if p.get_hatch():
            hatched[x] = p.get_height()
        else:
            filled[x] = max(filled.get(x, 0.0), p.get_y() + p.get_height())
    return [filled[k] for k in sorted(filled)], [hatched[k] for k in sorted(hatched)]


@pytest.fixture
def spy(monkeypatch):
    made = []
    original = layers.plot_compare

    def recording(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(layers, "plot_compare", recording)
    return made


def _check_against(result, totals: list[tuple[dict, dict]]):
    net = result.network
    e, t = SCALE[result.units["energy"]], SCALE[result.units["latency"]]
    mine = [a["energy_pj"] for a, _ in totals]
    assert net["energy"].to_numpy() / e == pytest.approx(mine, rel=1e-9)
    assert net["dense_energy"].to_numpy() / e == pytest.approx([b["energy_pj"] for _, b in totals],
                                                               rel=1e-9)
    assert net["latency"].to_numpy() / t == pytest.approx([a["latency_s"] for a, _ in totals],
                                                          rel=1e-9)
    # the drawn bars are those numbers: stacks of the components add up to the totals
    _, ax_energy, ax_latency = result.figure.axes[:3]
    tops, twins = _stacks(ax_energy)
    assert tops == pytest.approx(list(net["energy"]), rel=1e-9)
    assert twins == pytest.approx(list(net["dense_energy"]), rel=1e-9)
    assert _stacks(ax_latency)[0] == pytest.approx(list(net["latency"]), rel=1e-9)
    dram = net["energy_dram"].to_numpy() / e
    assert dram == pytest.approx([a["energy_dram_pj"] for a, _ in totals], rel=1e-9)
    # absolute figures show what savings cannot: the ratio between the designs
    assert max(mine) / min(mine) == pytest.approx(net["energy"].max() / net["energy"].min())


def test_compare_simulating_now_equals_simulate_totals(tmp_path, spy):
    from accelsim.hw import load_hw
    from accelsim.sim import simulate
    from accelsim.trace import open_trace

    argv = ["plot", "compare", "--trace", TRACE, "--samples", "4", "-o", str(tmp_path / "c.png")]
    for hw in DESIGNS:
        argv += ["--hw", hw]
    assert main(argv) == 0
    totals = []
    for hw_path in DESIGNS:
        hw = load_hw(hw_path)
        trace = open_trace(TRACE)
        totals.append((simulate(trace, hw, samples=4).totals,
                       simulate(trace, hw.dense_twin(), samples=4).totals))
    _check_against(spy[-1], totals)
    assert spy[-1].units["latency"] in dict(TIME_UNITS)


def test_compare_saved_results_equal_their_json_totals(tmp_path, spy, capsys):
    saved = []
    for hw in DESIGNS:
        out = tmp_path / f"{hw.split('/')[-1][:-5]}.csv"
        assert main(["simulate", "--trace", TRACE, "--hw", hw, "--samples", "4", "--baseline",
                     "dense", "-o", str(out)]) == 0
        saved.append(out)
    capsys.readouterr()
    argv = ["plot", "compare", "--log", "-o", str(tmp_path / "c.svg")]
    for out in saved:
        argv += ["--results", str(out)]
    assert main(argv) == 0
    totals = [(json.loads(out.with_name(out.name + ".json").read_text())["totals"],
               json.loads(out.with_name(out.stem + ".dense_twin.csv.json").read_text())["totals"])
              for out in saved]
    _check_against(spy[-1], totals)
    assert spy[-1].figure.axes[1].get_yscale() == "log"


def test_compare_without_totals_sums_the_layers_and_says_so():
    base = layer_table(4, seed=2, scale=3.0)
    runs = [("design-a", layer_table(4, seed=2), base),
            ("design-b", layer_table(4, seed=2, scale=20.0), base)]
    result = layers.plot_compare(runs)
    net = result.network
    e = SCALE[result.units["energy"]]
    assert net["energy"].to_numpy() / e == pytest.approx(
        [runs[0][1]["energy_pj"].sum(), runs[1][1]["energy_pj"].sum()])
    assert net["energy"].iloc[1] / net["energy"].iloc[0] == pytest.approx(20.0)
    c = SCALE[result.units["latency"]]      # no clock: cycles
    assert result.units["latency"] in dict(CYCLE_UNITS)
    assert net["latency"].to_numpy() / c == pytest.approx([t["cycles"].sum() for _, t, _ in runs])
    ax_energy = result.figure.axes[1]
    assert "sum of layers" in ax_energy.get_title()
    labels = [t.get_text() for t in ax_energy.texts]
    assert any("(20.0x)" in text for text in labels), labels
    assert np.isfinite(net.drop(columns="design").to_numpy(float)).all()
