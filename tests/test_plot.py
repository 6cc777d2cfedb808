"""Each plot kind writes a non-empty image whose drawn data matches the input table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from accelsim.errors import AccelsimError
from accelsim.plot.common import (BYTE_UNITS, CYCLE_UNITS, ENERGY_UNITS, TIME_UNITS, PlotContext,
                                  pick_unit, save_figure, title_of)
from accelsim.plot.density import density_table, plot_density
from accelsim.plot.layers import (latency_split, plot_breakdown, plot_compare, plot_latency,
                                  plot_memory, plot_savings, savings_table)
from accelsim.plot.pareto import plot_pareto
from accelsim.sweep.pareto import pareto_brute_force
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.layer import LayerTrace

SCALE = {name: factor for name, factor in ENERGY_UNITS + CYCLE_UNITS + BYTE_UNITS}


def layer_table(n: int = 5, seed: int = 0, scale: float = 1.0) -> pd.DataFrame:
    """A per-layer results table with the simulator's columns (values made up for plotting)."""
    rng = np.random.default_rng(seed)
    t = pd.DataFrame({"layer": [f"features.{i}.conv" for i in range(n)]})
    for comp in ("mac", "spad", "glb", "noc", "dram", "leakage"):
        t[f"energy_{comp}_pj"] = rng.uniform(1e5, 1e6, n) * scale
    t["energy_pj"] = t.filter(regex=r"^energy_.+_pj$").sum(axis=1)
    t["compute_cycles"] = rng.integers(10_000, 50_000, n).astype(float)
    t["busy_mean_sum"] = t["compute_cycles"] * rng.uniform(0.5, 0.9, n)
    t["load_imbalance"] = t["compute_cycles"] / t["busy_mean_sum"]
    t["fill_drain_cycles"] = rng.integers(10, 200, n).astype(float)
    t["busy_mean_sum"] -= t["fill_drain_cycles"]
    t["stall_cycles"] = rng.integers(0, 5_000, n).astype(float)
    t["cycles"] = t["compute_cycles"] + t["fill_drain_cycles"] + t["stall_cycles"]
    t["onchip_peak_bytes"] = rng.integers(1_000, 60_000, n).astype(float)
    t["offchip_peak_bytes"] = np.where(np.arange(n) % 2, rng.integers(1, 9_000, n), 0).astype(float)
    return t


def bars(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def assert_image(path):
    assert path.is_file() and path.stat().st_size > 1000


@pytest.mark.parametrize("ext", ["png", "svg", "pdf"])
def test_savings_plot_matches_table(tmp_path, ext):
    sparse, dense = layer_table(seed=1), layer_table(seed=1, scale=2.5)
    sparse.loc[2, "energy_pj"] = dense.loc[2, "energy_pj"] * 1.1  # one layer costs more
    result = plot_savings(sparse, dense)
    expected = savings_table(sparse, dense)
    assert np.allclose(result.data["saved_percent"],
                       100 * (dense["energy_pj"] - sparse["energy_pj"]) / dense["energy_pj"])
    assert result.data.loc[2, "saved_percent"] < 0
    factor = SCALE[result.units["dense_energy"]]
    top, bottom = result.figure.axes
    assert [b.get_height() for b in bars(top)] == pytest.approx(list(result.data["saved_percent"]))
    heights = [b.get_height() for b in bars(bottom)]
    assert heights[:5] == pytest.approx(list(expected["dense_energy_pj"] * factor))
    assert heights[5:] == pytest.approx(list(expected["sparse_energy_pj"] * factor))
    assert [t.get_text() for t in bottom.get_xticklabels()] == list(sparse["layer"])
    assert bottom.get_ylabel() == f"energy per inference ({result.units['dense_energy']})"
    assert_image(save_figure(result.figure, tmp_path / f"s.{ext}"))


def test_savings_needs_matching_layers():
    sparse, dense = layer_table(), layer_table().iloc[:3]
    with pytest.raises(AccelsimError, match="no result for layer"):
        plot_savings(sparse, dense)


def test_breakdown_stacks_components_to_the_total(tmp_path):
    table = layer_table(6)
    result = plot_breakdown(table)
    unit = result.units["mac"]
    assert list(result.data.columns) == ["layer", "mac", "spad", "noc", "glb", "dram", "leakage"]
    assert result.data.iloc[:, 1:].sum(axis=1).to_numpy() == \
        pytest.approx(table["energy_pj"].to_numpy() * SCALE[unit])
    ax = result.figure.axes[0]
    rects = bars(ax)
    assert len(rects) == 6 * 6
    tops = np.zeros(6)
    for rect in rects:
        tops[int(round(rect.get_x() + rect.get_width() / 2))] = max(
            tops[int(round(rect.get_x() + rect.get_width() / 2))], rect.get_y() + rect.get_height())
    assert tops == pytest.approx(table["energy_pj"].to_numpy() * SCALE[unit])
    assert_image(result.save(tmp_path / "b.png"))


def test_latency_parts_sum_to_cycles(tmp_path):
    table = layer_table(4)
    split = latency_split(table)
    assert split[["useful", "imbalance", "fill_drain", "stall"]].sum(axis=1).to_numpy() == \
        pytest.approx(table["cycles"].to_numpy())
    busy = table["compute_cycles"] - table["fill_drain_cycles"]
    assert split["useful"].to_numpy() == pytest.approx(table["busy_mean_sum"].to_numpy())
    assert split["imbalance"].to_numpy() == pytest.approx((busy - table["busy_mean_sum"]).to_numpy())
    assert split["stall"].to_numpy() == pytest.approx(
        (table["cycles"] - table["compute_cycles"]).to_numpy())
    # without busy_mean_sum, the slowest/mean ratio gives the same split
    ratio = table.drop(columns="busy_mean_sum")
    ratio["load_imbalance"] = busy / table["busy_mean_sum"]
    assert latency_split(ratio)["useful"].to_numpy() == pytest.approx(split["useful"].to_numpy())
    result = plot_latency(table)
    factor = SCALE[result.units["useful"]]
    ax = result.figure.axes[0]
    assert [b.get_height() for b in bars(ax)[:4]] == pytest.approx(list(split["useful"] * factor))
    assert [b.get_height() for b in bars(ax)[-4:]] == pytest.approx(list(split["stall"] * factor))
    assert_image(result.save(tmp_path / "l.svg"))


def test_memory_plot_against_global_buffer(tmp_path):
    table = layer_table(5)
    result = plot_memory(table, glb_bytes=64 * 1024)
    unit = result.units["onchip"]
    ax = result.figure.axes[0]
    rects = bars(ax)
    assert [r.get_height() for r in rects[:5]] == pytest.approx(
        list(table["onchip_peak_bytes"] * SCALE[unit]))
    assert [r.get_height() for r in rects[5:]] == pytest.approx(
        list(table["offchip_peak_bytes"] * SCALE[unit]))
    line = [l for l in ax.get_lines() if l.get_linestyle() == "--"][0]
    assert line.get_ydata()[0] == pytest.approx(64 * 1024 * SCALE[unit])
    assert "2 of 5 layers spill" in title_of(result.figure)
    assert_image(result.save(tmp_path / "m.pdf"))


def test_density_table_and_plot(tmp_path):
    g = LayerGeometry("conv2d", N=2, C=3, H=5, W=5, K=4, R=3, S=3)
    rng = np.random.default_rng(0)
    w = rng.random(g.weight_shape) < 0.3
    a = rng.random(g.act_shape) < 0.6
    layers = [LayerTrace.from_masks("conv1", g, w, a),
              LayerTrace.from_masks("conv2", g, np.ones_like(w), a, index=1)]
    table = density_table(layers)
    assert table["weight_density"].tolist() == pytest.approx([w.mean(), 1.0])
    assert table["act_density"].tolist() == pytest.approx([a.mean(), a.mean()])
    result = plot_density(table)
    ax = result.figure.axes[0]
    heights = [b.get_height() for b in bars(ax)]
    assert heights == pytest.approx([a.mean() * 100, a.mean() * 100, w.mean() * 100, 100.0])
    assert ax.get_ylabel() == "density (% non-zero)"
    assert_image(result.save(tmp_path / "d.png"))


def test_pareto_plot_marks_the_front(tmp_path):
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"point": np.arange(60), "trace": ["a"] * 30 + ["b"] * 30,
                          "status": ["ok"] * 58 + ["error"] * 2,
                          "energy_pj": rng.uniform(1, 10, 60), "cycles": rng.uniform(1, 10, 60)})
    result = plot_pareto(table)
    for name in ("a", "b"):
        rows = table[(table["trace"] == name) & (table["status"] == "ok")]
        drawn = result.data[result.data["trace"] == name]
        assert drawn["point"].tolist() == rows["point"].tolist()
        expected = pareto_brute_force(rows[["energy_pj", "cycles"]].to_numpy())
        assert drawn["pareto"].tolist() == expected.tolist()
    ax = result.figure.axes[0]
    assert ax.get_xlabel() == "energy (pJ)" and ax.get_ylabel() == "latency (cycles)"
    scatter = ax.collections[0].get_offsets()
    off = result.data[(result.data["trace"] == "a") & ~result.data["pareto"]]
    assert np.asarray(scatter)[:, 0] == pytest.approx(off["energy_pj"].to_numpy())
    big = table.assign(energy_pj=table["energy_pj"] * 1e6)
    scaled = plot_pareto(big)
    assert scaled.units["energy_pj"] == "µJ"
    assert scaled.figure.axes[0].get_xlabel() == "energy (µJ)"
    offsets = np.asarray(scaled.figure.axes[0].collections[0].get_offsets())
    off = scaled.data[(scaled.data["trace"] == "a") & ~scaled.data["pareto"]]
    assert offsets[:, 0] == pytest.approx(off["energy_pj"].to_numpy() * 1e-6)
    assert_image(result.save(tmp_path / "p.png"))
    only_b = plot_pareto(table, trace="b", log=True)
    assert set(only_b.data["trace"]) == {"b"}
    with pytest.raises(AccelsimError, match="no trace named 'c'"):
        plot_pareto(table, trace="c")
    with pytest.raises(AccelsimError, match="lacks column"):
        plot_pareto(table, x="dram_bytes")


def test_unit_choice_and_bad_format(tmp_path):
    assert pick_unit([5e8], ENERGY_UNITS) == ("µJ", 1e-6)
    assert pick_unit([0.5], ENERGY_UNITS) == ("pJ", 1.0)
    assert pick_unit([2048], BYTE_UNITS) == ("KiB", 1 / 1024)
    with pytest.raises(AccelsimError, match="unsupported image format 'jpg'"):
        plot_density(pd.DataFrame({"layer": ["x"], "act_density": [0.5],
                                   "weight_density": [0.5]})).save(tmp_path / "x.jpg")


# -- labels: every plot says what it shows, of which design and trace, per what ------------------

CTX = PlotContext(design="edge-lowpower", trace="lenet5_digits_dual", samples=359)
SUBTITLE = "edge-lowpower on lenet5_digits_dual · per inference (mean of 359 samples)"


def test_context_subtitle_and_table_defaults():
    assert CTX.subtitle() == SUBTITLE
    assert PlotContext().subtitle() == "per inference"
    table = layer_table(3).assign(hw_name="d1", samples=[7, 7, 7])
    ctx = PlotContext.of_table(table, trace="t")
    assert (ctx.design, ctx.trace, ctx.samples) == ("d1", "t", 7)
    assert PlotContext.of_table(table, design="given").design == "given"


def test_savings_labels():
    result = plot_savings(layer_table(seed=1), layer_table(seed=1, scale=2.0), context=CTX)
    title = title_of(result.figure)
    # no network totals given: the sum of the layers, and the title says so (headline.py)
    assert title.splitlines()[0] == ("Per-layer energy savings vs the dense twin (network energy "
                                     "saving 50.0% (sum of layers))")
    assert title.splitlines()[1] == SUBTITLE
    top, bottom = result.figure.axes
    assert top.get_ylabel() == "energy saving (%)"
    assert bottom.get_ylabel() == f"energy per inference ({result.units['dense_energy']})"
    assert [t.get_text() for t in bottom.get_legend().get_texts()] == ["dense twin", "sparse design"]


def test_breakdown_labels():
    result = plot_breakdown(layer_table(4), context=CTX)
    ax = result.figure.axes[0]
    assert title_of(result.figure) == f"Per-layer energy by component\n{SUBTITLE}"
    assert ax.get_ylabel() == f"energy per inference ({result.units['mac']})"
    assert ax.get_xlabel() == "layer"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "MAC", "scratchpad", "NoC", "global buffer", "DRAM", "leakage"]


def test_latency_in_time_units_when_the_clock_is_known():
    table = layer_table(4)
    cycles = latency_split(table)[["useful", "imbalance", "fill_drain", "stall"]].sum(axis=1)
    in_cycles = plot_latency(table, context=CTX)
    assert in_cycles.figure.axes[0].get_ylabel() == "latency per inference (kcycles)"
    clocked = PlotContext("d", "t", 10, clock_mhz=500.0)
    result = plot_latency(table, context=clocked)
    ax = result.figure.axes[0]
    # 10k-60k cycles at 500 MHz are 20-120 µs: drawn in µs, not 0.00012 s
    assert result.units["useful"] == "µs"
    assert ax.get_ylabel() == "latency per inference (µs)"
    parts = result.data[["useful", "imbalance", "fill_drain", "stall"]].sum(axis=1)
    assert parts.to_numpy() == pytest.approx(cycles.to_numpy() / 500e6 * 1e6)
    assert title_of(result.figure).splitlines()[0].startswith("Per-layer latency at 500 MHz (")
    assert title_of(result.figure).splitlines()[1] == "d on t · per inference (mean of 10 samples)"


def test_memory_axis_follows_the_data_when_the_buffer_is_far_larger():
    table = layer_table(5)
    table["onchip_peak_bytes"] = np.linspace(5, 11, 5) * 1024   # LeNet-5: 5-11 KiB
    table["offchip_peak_bytes"] = 0.0
    result = plot_memory(table, glb_bytes=256 * 1024, context=CTX)
    ax = result.figure.axes[0]
    assert result.units["onchip"] == "KiB"
    assert ax.get_ylim()[1] == pytest.approx(11 * 1.15)   # not stretched to 256 KiB
    assert not [l for l in ax.get_lines() if l.get_linestyle() == "--"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "global buffer 256 KiB (off scale: 23x the largest layer)"
    assert ax.get_ylabel() == "peak runtime memory (KiB)"
    assert title_of(result.figure) == f"Runtime memory per layer (0 of 5 layers spill)\n{SUBTITLE}"


def test_density_labels():
    table = pd.DataFrame({"layer": ["a", "b"], "act_density": [0.5, 0.2],
                          "weight_density": [1.0, 0.3]})
    result = plot_density(table, context=PlotContext(trace="lenet5_digits_dual", samples=359))
    assert title_of(result.figure) == ("Per-layer operand density\n"
                                       "lenet5_digits_dual · mean over 359 samples")
    ax = result.figure.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["input activations", "weights"]


def test_pareto_labels_time_axis_and_subtitle():
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"trace": ["lenet"] * 20, "samples": 64, "status": "ok",
                          "energy_pj": rng.uniform(1e6, 5e6, 20),
                          "latency_s": rng.uniform(2e-5, 9e-5, 20)})
    result = plot_pareto(table, x="energy_pj", y="latency_s")
    ax = result.figure.axes[0]
    assert ax.get_xlabel() == "energy (µJ)"
    assert ax.get_ylabel() == "latency (µs)"     # 20-90 µs, not 0.00009 s
    assert result.units["latency_s"] == "µs"
    ys = np.asarray(ax.collections[0].get_offsets())[:, 1]
    assert ys.min() > 10 and ys.max() < 100
    assert title_of(result.figure) == ("Design-space sweep: latency vs energy (20 points)\n"
                                       "lenet · per inference (mean of 64 samples)")


def test_compare_plot_side_by_side():
    base = layer_table(4, seed=2, scale=3.0)
    runs = [("design-a", layer_table(4, seed=2), base),
            ("design-b", layer_table(4, seed=2, scale=2.0), base)]
    result = plot_compare(runs, context=CTX)
    ax = result.figure.axes[0]
    expected_a = 100 * (1 - runs[0][1]["energy_pj"] / base["energy_pj"])
    expected_b = 100 * (1 - runs[1][1]["energy_pj"] / base["energy_pj"])
    rects = bars(ax)
    assert [r.get_height() for r in rects] == pytest.approx(list(expected_a) + list(expected_b))
    # side by side: design-a's bar left of design-b's in every layer group
    assert all(rects[i].get_x() < rects[i + 4].get_x() for i in range(4))
    assert result.data.groupby("design")["saved_percent"].count().to_dict() == {
        "design-a": 4, "design-b": 4}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("design-a (network ") and legend[1].startswith("design-b (network ")
    assert ax.get_ylabel() == "energy saving vs own dense twin (%)"
    assert title_of(result.figure) == ("Per-layer energy savings of 2 designs, network energy "
                                       "and latency\n"
                                       "lenet5_digits_dual · per inference (mean of 359 samples)")
    with pytest.raises(AccelsimError, match="other layers"):
        plot_compare([runs[0], ("design-c", layer_table(3), layer_table(3))])
    with pytest.raises(AccelsimError, match="names repeat"):
        plot_compare([runs[0], runs[0]])


def test_time_units_by_magnitude():
    assert pick_unit([5e-5], TIME_UNITS) == ("µs", 1e6)
    assert pick_unit([2.5e-3], TIME_UNITS) == ("ms", 1e3)
    assert pick_unit([3.0], TIME_UNITS) == ("s", 1.0)
    assert pick_unit([4e-8], TIME_UNITS) == ("ns", 1e9)
