"""One headline figure, one answer: the energy saving of a design against its dense twin is the
same in `accelsim simulate`'s lines, its CSV/JSON, the plots' titles, the HTML report and the API,
on a trace whose network totals include ops between layers (so the sum of layers differs)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from accelsim.cli import main
from accelsim.sim import headline

REPO = Path(__file__).resolve().parents[1]
HW = str(REPO / "hw_configs" / "edge_lowpower.yaml")
SAVING = re.compile(r"energy saving (-?\d+\.\d)%")


@pytest.fixture(scope="module")
def graph_trace(tmp_path_factory) -> str:
    """LeNet-5 (pooling between its layers) captured on random inputs, with its op graph."""
    torch = pytest.importorskip("torch")
    from accelsim.trace.capture import CaptureOptions, capture_trace
    from accelsim.trace.writer import write_trace
    from accelsim.zoo import get_model

    torch.manual_seed(0)
    data = capture_trace(get_model("lenet5"), [torch.randn(3, 1, 32, 32)], CaptureOptions(samples=3))
    path = write_trace(tmp_path_factory.mktemp("headline") / "lenet_graph.trace", data)
    return str(path)


def _printed(text: str) -> list[str]:
    return SAVING.findall(text)


def test_definitions_and_text():
    t = {"cycles": 100.0, "energy_pj": 40.0, "energy_dram_pj": 10.0, "dram_bytes": 8.0}
    b = {"cycles": 260.0, "energy_pj": 116.0, "energy_dram_pj": 58.0, "dram_bytes": 10.0}
    f = headline.headline_figures(t, b)
    assert list(f) == list(headline.NAMES)
    assert f["speedup"] == pytest.approx(2.6) and f["energy_saving"] == pytest.approx(1 - 40 / 116)
    assert f["dram_saving"] == pytest.approx(0.2) and f["dram_share"] == pytest.approx(0.25)
    assert f["baseline_dram_share"] == pytest.approx(0.5)
    assert headline.headline_text(f) == ("speedup 2.60x, energy saving 65.5%, DRAM 25.0% of "
                                         "energy (dense twin 50.0%)")
    assert headline.headline_figures(t) == {"dram_share": 0.25}
    assert math.isnan(headline.saving(1.0, 0.0)) and headline.percent(math.nan) == "n/a"
    assert list(headline.saving([1.0, 1.0], [2.0, 0.0])[:1]) == [0.5]


def test_one_energy_saving_everywhere(graph_trace, tmp_path, capsys):
    from accelsim.hw import load_hw
    from accelsim.plot.common import title_of
    from accelsim.plot.layers import plot_compare, plot_savings
    from accelsim.sim import compare, headline_figures, simulate
    from accelsim.sweep.report import report_for
    from accelsim.trace import open_trace

    trace, hw = open_trace(graph_trace), load_hw(HW)
    assert trace.graph is not None and trace.graph.between_layer_ops
    result, dense = simulate(trace, hw), simulate(trace, hw.dense_twin())
    api = headline_figures(result, dense)
    want = f"{100 * api['energy_saving']:.1f}"
    # the between-layer ops make the network figure differ from the sum of the layers
    layers_only = headline_figures(headline.layer_sums(result.layers),
                                   headline.layer_sums(dense.layers))
    assert headline.percent(layers_only["energy_saving"]) != headline.percent(api["energy_saving"])
    per_layer = compare(result, dense)
    assert per_layer["energy_saving"].to_numpy() == pytest.approx(
        (1 - result.layers["energy_pj"] / dense.layers["energy_pj"]).to_numpy())

    # CLI: terminal line, -o CSV + FILE.json, --json
    out = tmp_path / "r.csv"
    assert main(["simulate", "--trace", graph_trace, "--hw", HW, "--baseline", "dense",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert _printed(printed.split("vs dense twin:")[1]) == [want]
    saved = json.loads(Path(f"{out}.json").read_text())["totals"]
    assert f"{100 * saved['energy_saving']:.1f}" == want
    assert saved["speedup"] == pytest.approx(api["speedup"])
    assert saved["dram_share"] == pytest.approx(api["dram_share"])
    table = pd.read_csv(out)
    assert table["energy_saving"].to_numpy() == pytest.approx(per_layer["energy_saving"].to_numpy())
    assert main(["simulate", "--trace", graph_trace, "--hw", HW, "--baseline", "dense",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert f"{100 * data['totals']['energy_saving']:.1f}" == want

    # plots: the API with totals, the CLI simulating now and from the saved tables
    title = title_of(plot_savings(result.layers, dense.layers,
                                  totals=(result.totals, dense.totals)).figure)
    assert _printed(title) == [want]
    compared = plot_compare([(hw.name, result.layers, dense.layers)],
                            totals=[(result.totals, dense.totals)])
    legend = compared.figure.axes[0].get_legend().get_texts()[0].get_text()
    assert _printed(legend) == [want]
    for extra in (["--trace", graph_trace, "--hw", HW], ["--results", str(out)]):
        svg = tmp_path / "s.svg"
        assert main(["plot", "savings", *extra, "-o", str(svg)]) == 0
        assert f"network energy saving {want}%" in svg.read_text()
    assert main(["plot", "compare", "--results", str(out), "-o", str(tmp_path / "c.svg")]) == 0
    assert f"network energy saving {want}%" in (tmp_path / "c.svg").read_text()

    # the HTML report's headline (and the same through `accelsim report`)
    page, _ = report_for(trace, hw)
    headline_par = page.split("Against its dense twin")[1].split("</p>")[0]
    assert _printed(headline_par) == [want]
    html = tmp_path / "r.html"
    assert main(["report", "--trace", graph_trace, "--hw", HW, "-o", str(html)]) == 0
    assert _printed(html.read_text().split("Against its dense twin")[1].split("</p>")[0]) == [want]


def test_saved_plot_without_sidecars_says_sum_of_layers(tmp_path, capsys):
    trace = str(REPO / "traces" / "lenet5_digits_dual.trace")
    out = tmp_path / "r.csv"
    assert main(["simulate", "--trace", trace, "--hw", HW, "--samples", "2", "--baseline",
                 "dense", "-o", str(out)]) == 0
    capsys.readouterr()
    Path(f"{out}.json").unlink()
    svg = tmp_path / "s.svg"
    assert main(["plot", "savings", "--results", str(out), "-o", str(svg)]) == 0
    assert "(sum of layers)" in svg.read_text()
