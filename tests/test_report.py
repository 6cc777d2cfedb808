"""HTML report, demo and the sweep/plot/report command lines."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from accelsim.cli import main
from accelsim.hw.load import load_hw
from accelsim.sim import simulate
from accelsim.sweep.report import (column_formatter, dominant_component, energy_shares, report_for,
                                   table_html, totals_table)
from accelsim.trace import open_trace
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.records import StatisticalLayer, TraceData
from accelsim.trace.writer import write_trace

REPO = Path(__file__).resolve().parents[1]
HW = REPO / "hw_configs" / "sparten_like.yaml"


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory) -> Path:
    layers = [
        StatisticalLayer("conv1", LayerGeometry("conv2d", N=2, C=1, H=14, W=14, K=6, R=5, S=5),
                         8, 8, 1.0, 0.5),
        StatisticalLayer("conv2", LayerGeometry("conv2d", N=2, C=6, H=10, W=10, K=16, R=3, S=3),
                         8, 8, 0.35, 0.4),
        StatisticalLayer("fc1", LayerGeometry("linear", N=2, C=64, H=1, W=1, K=10), 8, 8, 0.3, 0.3),
    ]
    path = tmp_path_factory.mktemp("trace") / "tiny.trace"
    write_trace(path, TraceData(layers, {"model": "tiny-net"}, statistical=True, seed=1))
    return path


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_is_self_contained_and_complete(trace_path):
    trace, hw = open_trace(trace_path), load_hw(HW)
    page, inputs = report_for(trace, hw, samples=2)
    pngs = images(page)
    assert len(pngs) == 5 and all(p.startswith(b"\x89PNG") and len(p) > 2000 for p in pngs)
    assert not re.search(r'(src|href)="(http|//)', page)  # nothing fetched when opened
    for section in ("Inputs", "Hardware summary", "Network totals", "Plots", "Per-layer results"):
        assert f"<h2>{section}</h2>" in page
    for layer in ("conv1", "conv2", "fc1"):
        assert f"<td>{layer}</td>" in page
    assert "tiny-net" in page and hw.name in page and "peak MACs/cycle" in page
    # the totals shown are the simulator's
    direct = simulate(trace, hw, samples=2)
    dense = simulate(trace, hw.dense_twin(), samples=2)
    assert inputs.results.totals["energy_pj"] == pytest.approx(direct.totals["energy_pj"])
    table = totals_table(inputs.results, inputs.baseline).set_index("metric")
    assert table.loc["cycles", "dense twin"] == pytest.approx(dense.totals["cycles"])
    assert table.loc["energy", "design / dense"] == pytest.approx(
        direct.totals["energy_pj"] / dense.totals["energy_pj"])
    assert table.loc["energy", "unit"] == "µJ"
    assert table.loc["energy", "design"] == pytest.approx(direct.totals["energy_pj"] * 1e-6)
    saved = 100 * (1 - direct.totals["energy_pj"] / dense.totals["energy_pj"])
    assert f"{saved:.1f}%" in page


def test_report_cli_with_and_without_baseline(trace_path, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "--trace", str(trace_path), "--hw", str(HW), "-o", str(out)]) == 0
    assert len(images(out.read_text())) == 5
    assert str(out) in capsys.readouterr().out
    plain = tmp_path / "plain.html"
    assert main(["report", "--trace", str(trace_path), "--hw", str(HW), "--baseline", "none",
                 "-o", str(plain)]) == 0
    page = plain.read_text()
    assert len(images(page)) == 4 and "dense twin" not in page
    assert main(["report", "--trace", str(trace_path), "--hw", str(HW), "-o",
                 str(tmp_path / "r.pdf")]) == 2
    assert "ending in .html" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["savings", "breakdown", "latency", "memory"])
def test_plot_cli_simulates_or_reads_saved_results(kind, trace_path, tmp_path, capsys):
    out = tmp_path / f"{kind}.svg"
    assert main(["plot", kind, "--trace", str(trace_path), "--hw", str(HW), "--samples", "1",
                 "-o", str(out)]) == 0
    assert out.stat().st_size > 1000
    # the same plot from saved per-layer results (as `accelsim simulate -o` writes them)
    trace, hw = open_trace(trace_path), load_hw(HW)
    simulate(trace, hw, samples=1).save(tmp_path / "sparse.csv")
    simulate(trace, hw.dense_twin(), samples=1).save(tmp_path / "dense.csv")
    args = ["plot", kind, "--results", str(tmp_path / "sparse.csv"), "-o", str(tmp_path / "b.png")]
    if kind == "savings":
        args += ["--baseline-results", str(tmp_path / "dense.csv")]
    if kind == "memory":
        args += ["--hw", str(HW)]
    assert main(args) == 0
    assert (tmp_path / "b.png").stat().st_size > 1000


def test_plot_cli_errors(trace_path, tmp_path, capsys):
    assert main(["plot", "savings", "--trace", str(trace_path), "--hw", str(HW), "-o",
                 str(tmp_path / "x.jpg")]) == 2
    assert "unsupported image format 'jpg'" in capsys.readouterr().err
    assert main(["plot", "latency", "-o", str(tmp_path / "x.png")]) == 2
    assert "give --trace and --hw" in capsys.readouterr().err
    assert main(["plot", "pareto", "--results", str(tmp_path), "-o", str(tmp_path / "p.png")]) == 2
    assert "no results.csv" in capsys.readouterr().err
    assert main(["plot", "density", "--trace", str(tmp_path / "missing.trace"), "-o",
                 str(tmp_path / "d.png")]) == 2
    assert "trace file not found" in capsys.readouterr().err


def test_sweep_cli_and_pareto_plot(trace_path, tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "version": 1, "base": str(HW), "traces": [str(trace_path)], "samples": 1,
        "axes": {"pe_array.rows": [2, 4, 8], "memory_hierarchy.glb.size_bytes": [1024, 65536]},
        "constraints": {"max_pes": 64}, "objectives": [["energy_pj", "onchip_sram_kib"]]}))
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "-o", str(out), "--workers", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    # 16 columns: 8 rows x 16 = 128 PEs breaks the budget
    assert "4 design points; 2 dropped by constraints (max_pes: 2)" in text
    assert "Pareto front energy_pj vs onchip_sram_kib" in text
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4 and table["pareto_energy_pj__cycles"].any()
    png = tmp_path / "pareto.png"
    assert main(["plot", "pareto", "--results", str(out), "--x", "energy_pj", "--y",
                 "onchip_sram_kib", "-o", str(png)]) == 0
    assert png.stat().st_size > 1000
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"version": 1, "base": str(HW), "traces": [str(trace_path)],
                                   "axes": {"pe_array.rowz": [2]}}))
    assert main(["sweep", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: axes.pe_array.rowz: ") and "did you mean" in err
    assert main(["sweep", str(spec), "-o", str(out), "--workers", "0"]) == 2


def test_demo_writes_report_and_savings_plot(tmp_path, capsys, monkeypatch):
    from accelsim.sweep import demo

    monkeypatch.chdir(tmp_path)  # the demo finds hw_configs/ next to the package
    paths = demo.run_demo(tmp_path / "demo", samples=8, progress=False)   # every design, 8 samples
    out = capsys.readouterr().out
    for key in ("report", "savings_plot", "summary"):
        assert paths[key].is_file() and str(paths[key]) in out
    summary = pd.read_csv(paths["summary"])
    designs = len(list((REPO / "hw_configs").glob("*.yaml")))
    assert summary["trace"].nunique() == 2 and len(summary) == 2 * designs
    dense_rows = summary[summary["design"] == "dense-ws-tpu-like"]
    assert dense_rows["energy_saving"].abs().max() < 1e-9  # a dense design is its own twin
    page = paths["report"].read_text()
    assert len(images(page)) == 5 and "All shipped designs and traces" in page
    assert paths["savings_plot"].read_bytes().startswith(b"\x89PNG")


def _cells(page: str, header: str) -> list[list[str]]:
    """Rows of cell texts of the first table whose header row contains ``header``."""
    for table in re.findall(r"<table>(.*?)</table>", page, flags=re.S):
        heads = re.findall(r"<th>(.*?)</th>", table.split("</thead>")[0])
        if header in heads:
            body = table.split("<tbody>")[1]
            return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]
    raise AssertionError(f"no table with column {header!r}")


def test_one_number_format_per_column():
    fmt = column_formatter(pd.Series([1234567.0, 12.6, 0.25]))
    assert [fmt(v) for v in (1234567.0, 12.6, 0.25)] == ["1,234,567", "13", "0"]
    fmt = column_formatter(pd.Series([0.5, 0.123456, 0.02]))
    assert [fmt(v) for v in (0.5, 0.123456, 0.02)] == ["0.5000", "0.1235", "0.0200"]
    fmt = column_formatter(pd.Series([3.0, 40.0, 7.0]))
    assert [fmt(v) for v in (3.0, 40.0, 7.0)] == ["3", "40", "7"]
    fmt = column_formatter(pd.Series([2.5e9, 3.5]))
    assert fmt(3.5) == "3.500e+00" and fmt(float("nan")) == "–"
    assert column_formatter(pd.Series(["a", "b"]))("a<b") == "a&lt;b"
    # every numeric column of a rendered table: same decimals (or same notation) in all rows
    frame = pd.DataFrame({"layer": ["a", "b", "c"], "cycles": [10.0, 2500.0, 123456.0],
                          "util": [0.5, 0.123, 0.9], "energy_pj": [1.5e6, 2.25e7, 3e5]})
    rows = _cells(table_html(frame), "cycles")
    for col in (1, 2, 3):
        shapes = {(len(c.split(".")[1]) if "." in c else 0, "e" in c) for c in (r[col] for r in rows)}
        assert len(shapes) == 1, [r[col] for r in rows]


def test_report_says_basis_and_dominant_component(trace_path):
    trace, hw = open_trace(trace_path), load_hw(HW)
    page, inputs = report_for(trace, hw, samples=2)
    assert "All figures are per inference: the mean over 2 samples of tiny." in page
    totals = inputs.results.totals
    parts = {c: totals[f"energy_{c}_pj"] for c in ("mac", "spad", "glb", "noc", "dram",
                                                    "leakage", "clock")}
    top = max(parts, key=parts.get)
    name, share = dominant_component(totals)
    assert share == pytest.approx(100 * parts[top] / sum(parts.values()))
    assert f"Dominant energy component: <b>{name}</b>, <b>{share:.1f}%</b> of {hw.name}'s energy" in page
    shares = energy_shares(inputs.results, inputs.baseline)
    assert shares["share of design energy (%)"].sum() == pytest.approx(100.0)
    assert shares.iloc[0]["component"] == name
    # plots name the design, the trace and the basis
    assert "energy saving (%)" in page


CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                                "google-chrome-stable")) if p), None)
# Opens every <details>, then reports the layout once images have loaded.
_PROBE = """<script>
for (const d of document.querySelectorAll('details')) d.open = true;
window.addEventListener('load', () => {
  const doc = document.documentElement;
  const outside = [...document.body.querySelectorAll('*')].filter(e => !e.closest('.scroll'));
  const right = Math.max(...outside.map(e => e.getBoundingClientRect().right));
  const boxes = [...document.querySelectorAll('.scroll')];
  document.body.setAttribute('data-layout', JSON.stringify({
    scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, right: right,
    height: doc.scrollHeight, boxes: boxes.length,
    scrolling: boxes.filter(b => b.scrollWidth > b.clientWidth).length}));
});
</script></body>"""


def _browser(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--virtual-time-budget=10000", *args],
                          capture_output=True, text=True, timeout=120)


def _layout(page: str, folder: Path, width: int = 1400) -> tuple[dict, object]:
    """The page's layout in a ``width`` px window, and a full-page screenshot (RGB array)."""
    from matplotlib.image import imread

    path = folder / "probe.html"
    path.write_text(page.replace("</body>", _PROBE))
    done = _browser([f"--window-size={width},1000", "--dump-dom", path.as_uri()])
    found = re.search(r'data-layout="([^"]+)"', done.stdout)
    assert found, done.stderr[-500:]
    layout = json.loads(found.group(1).replace("&quot;", '"'))
    shot = folder / "shot.png"
    _browser([f"--window-size={width},{min(int(layout['height']), 16000)}",
              f"--screenshot={shot}", path.as_uri()])
    return layout, imread(shot)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no headless chromium (apt-get install chromium)")
def test_report_fits_a_1400px_window_in_a_real_browser(tmp_path):
    trace = open_trace(REPO / "traces" / "lenet5_digits_dual.trace")
    page, _ = report_for(trace, load_hw(REPO / "hw_configs" / "edge_lowpower.yaml"), samples=16)
    layout, image = _layout(page, tmp_path)
    assert layout["scrollWidth"] <= 1400 and layout["clientWidth"] == 1400, layout
    assert layout["right"] <= 1400, layout
    assert layout["scrolling"] >= 1, layout   # the wide per-layer tables scroll in their box
    # screenshot: 1400 px wide, and the right margin is empty page background (nothing spills)
    assert image.shape[1] == 1400
    margin = image[:, 1400 - 60:, :3]
    assert float(margin.min()) > 0.97, "content reaches the right edge of a 1400 px window"
    # the same check fails on a page whose tables do not scroll in their box
    broken = page.replace(".scroll{max-width:100%;overflow-x:auto;margin:.5em 0}", "")
    assert broken != page
    bad_layout, bad_image = _layout(broken, tmp_path)
    assert bad_layout["scrollWidth"] > 1400 or float(bad_image[:, 1400 - 60:, :3].min()) < 0.97
