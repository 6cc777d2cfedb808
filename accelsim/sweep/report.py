"""One self-contained HTML report of a trace on a hardware design (plots embedded as PNG).

Sections: inputs (trace provenance, hardware identity), hardware summary (derived
figures, resolved YAML), network totals (against the dense twin when a baseline is
given), the plots (savings, energy breakdown, latency, density, memory) and the
per-layer table. Nothing is fetched from the network when the page is opened.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import accelsim
from accelsim.hw.load import dump_hw
from accelsim.hw.schema import HardwareConfig
from accelsim.hw.summary import derived_figures, format_figures
from accelsim.plot.common import PlotResult, figure_bytes
from accelsim.atomic import atomic_write_text
from accelsim.plot.density import density_table, plot_density
from accelsim.plot.layers import (plot_breakdown, plot_latency, plot_memory, plot_savings,
                                  savings_table)

# Per-layer columns shown in the main table (all columns are in the collapsible full table).
LAYER_COLUMNS = ("layer", "cycles", "compute_cycles", "stall_cycles", "utilization",
                 "load_imbalance", "macs_dense", "macs_issued", "macs_skipped", "macs_gated",
                 "energy_pj", "dram_bytes", "onchip_peak_bytes", "offchip_peak_bytes")

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
.meta{color:#666;font-size:.9em}.good{color:#1b7837}.bad{color:#b2182b}
details{margin:.6em 0}
"""


@dataclass
class ReportInputs:
    """What one report is about: a trace, a design and its simulation results."""

    trace_label: str
    trace_meta: dict
    hw: HardwareConfig
    results: object                     # SimResult of ``hw``
    baseline: object | None = None      # SimResult of ``hw.dense_twin()``
    density: pd.DataFrame | None = None
    extra_sections: list[tuple[str, str]] = field(default_factory=list)  # (title, html)


def _fmt(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            return "–"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return html.escape(str(value))


def table_html(frame: pd.DataFrame, max_rows: int | None = None) -> str:
    """An HTML table with numbers formatted for reading."""
    frame = frame if max_rows is None else frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv_table(pairs: list[tuple[str, object]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in pairs)
    return f"<table>{rows}</table>"


def _img(plot: PlotResult, alt: str) -> str:
    data = base64.b64encode(figure_bytes(plot.figure, "png")).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def totals_table(results, baseline=None) -> pd.DataFrame:
    """Network totals (numeric), with the dense twin and the ratio when a baseline is given."""
    names = [k for k, v in results.totals.items()
             if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)]
    frame = pd.DataFrame({"metric": names,
                          "design": [float(results.totals[k]) for k in names]})
    if baseline is not None:
        dense = np.array([float(baseline.totals.get(k, np.nan)) for k in names])
        frame["dense twin"] = dense
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["design / dense"] = np.where(dense != 0, frame["design"].to_numpy() / dense, np.nan)
    return frame


def _trace_rows(label: str, meta: dict) -> list[tuple[str, object]]:
    prov = meta.get("provenance", {}) or {}
    rows = [("trace", label), ("kind", "statistical" if meta.get("statistical") else "captured"),
            ("layers", meta.get("layers")), ("samples", meta.get("num_samples"))]
    for key in ("model", "dataset", "checkpoint", "accuracy", "source", "created"):
        if prov.get(key) not in (None, ""):
            rows.append((key, prov[key]))
    if meta.get("content_hash"):
        rows.append(("content hash", meta["content_hash"][:16] + "…"))
    return rows


def build_report(inputs: ReportInputs, title: str | None = None) -> str:
    """The report page as one HTML string."""
    hw, results, baseline = inputs.hw, inputs.results, inputs.baseline
    layers = results.layers
    figures = derived_figures(hw)
    title = title or f"accelsim report: {inputs.trace_label} on {hw.name}"
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='meta'>accelsim {accelsim.__version__} · {created}</p>"]

    parts.append("<h2>Inputs</h2>")
    parts.append(_kv_table(_trace_rows(inputs.trace_label, inputs.trace_meta) + [
        ("hardware", hw.name), ("description", hw.description or "–"),
        ("hardware hash", hw.hash[:16] + "…")]))

    parts.append("<h2>Hardware summary</h2>")
    parts.append(f"<pre>{html.escape(format_figures(figures))}</pre>")
    parts.append("<details><summary>Resolved hardware description (YAML)</summary>"
                 f"<pre>{html.escape(dump_hw(hw))}</pre></details>")

    parts.append("<h2>Network totals</h2>")
    if baseline is not None:
        energy = savings_table(layers, baseline.layers)
        dense, sparse = energy["dense_energy_pj"].sum(), energy["sparse_energy_pj"].sum()
        share = 100.0 * (dense - sparse) / dense if dense else 0.0
        cyc_d = float(baseline.totals.get("cycles", np.nan))
        cyc_s = float(results.totals.get("cycles", np.nan))
        speedup = cyc_d / cyc_s if cyc_s else np.nan
        cls = "good" if share >= 0 else "bad"
        parts.append(f"<p>Against its dense twin, <b>{html.escape(hw.name)}</b> saves "
                     f"<b class='{cls}'>{share:.1f}%</b> of the energy and runs "
                     f"<b>{speedup:.2f}×</b> faster.</p>")
    parts.append(table_html(totals_table(results, baseline)))

    parts.append("<h2>Plots</h2>")
    plots: list[tuple[str, PlotResult]] = []
    if baseline is not None:
        plots.append(("Per-layer energy savings vs the dense twin",
                      plot_savings(layers, baseline.layers, f"{hw.name} vs its dense twin")))
    plots.append(("Per-layer energy by component", plot_breakdown(layers, f"{hw.name}: energy by component")))
    plots.append(("Per-layer latency", plot_latency(layers, f"{hw.name}: latency")))
    if inputs.density is not None:
        plots.append(("Per-layer density", plot_density(inputs.density,
                                                        f"{inputs.trace_label}: operand density")))
    plots.append(("Runtime memory", plot_memory(layers, figures["global_buffer_bytes"],
                                                f"{hw.name}: runtime memory")))
    for caption, plot in plots:
        parts.append(f"<h3>{html.escape(caption)}</h3>{_img(plot, caption)}")
        plot.figure.clear()

    for section_title, section_html in inputs.extra_sections:
        parts.append(f"<h2>{html.escape(section_title)}</h2>{section_html}")

    parts.append("<h2>Per-layer results</h2>")
    shown = layers[[c for c in LAYER_COLUMNS if c in layers.columns]].copy()
    if baseline is not None:
        shown["saved_energy_%"] = savings_table(layers, baseline.layers)["saved_percent"].to_numpy()
    parts.append(table_html(shown))
    parts.append("<details><summary>All per-layer columns</summary>"
                 f"{table_html(layers)}</details>")
    if baseline is not None:
        parts.append("<details><summary>Dense twin, all per-layer columns</summary>"
                     f"{table_html(baseline.layers)}</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a text file (the report, a summary) atomically."""
    return atomic_write_text(path, text)


def trace_meta(trace) -> dict:
    """Identity fields of an opened trace for the report's inputs table."""
    return {"provenance": dict(getattr(trace, "provenance", {}) or {}),
            "statistical": bool(getattr(trace, "is_statistical", False)),
            "layers": len(trace), "num_samples": getattr(trace, "num_samples", None),
            "content_hash": getattr(trace, "content_hash", None)}


def report_for(trace, hw: HardwareConfig, fidelity: str = "fast", samples: int | None = None,
               baseline: bool = True, label: str | None = None,
               progress: bool = False) -> tuple[str, ReportInputs]:
    """Simulate ``trace`` on ``hw`` (and its dense twin) and build the report page."""
    from accelsim.sim import simulate

    results = simulate(trace, hw, fidelity=fidelity, samples=samples, progress=progress)
    dense = (simulate(trace, hw.dense_twin(), fidelity=fidelity, samples=samples,
                      progress=progress) if baseline else None)
    inputs = ReportInputs(label or Path(str(getattr(trace, "path", "trace"))).stem,
                          trace_meta(trace), hw, results, dense,
                          density=density_table(trace, samples))
    return build_report(inputs), inputs
