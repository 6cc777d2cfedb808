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
from accelsim.plot.common import PlotContext, PlotResult, figure_bytes
from accelsim.atomic import atomic_write_text
from accelsim.plot.density import density_table, plot_density
from accelsim.plot.layers import (plot_breakdown, plot_latency, plot_memory, plot_savings,
                                  savings_table)
from accelsim.sim.headline import energy_saving_text, headline_figures, percent, times

# Per-layer columns shown in the main table (all columns are in the collapsible full table).
LAYER_COLUMNS = ("layer", "cycles", "compute_cycles", "stall_cycles", "utilization",
                 "load_imbalance", "macs_dense", "macs_issued", "macs_skipped", "macs_gated",
                 "energy_pj", "dram_bytes", "onchip_peak_bytes", "offchip_peak_bytes")

# Fits a 1,400 px window: the page is at most 1,200 px wide and every table scrolls inside
# its own box (div.scroll), so nothing pushes the page wider than the window.
_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em;overflow-wrap:anywhere}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.scroll{max-width:100%;overflow-x:auto;margin:.5em 0}
table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right;white-space:nowrap;
font-variant-numeric:tabular-nums}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em;max-width:100%}
.meta{color:#666;font-size:.9em}.good{color:#1b7837}.bad{color:#b2182b}
details{margin:.6em 0}
"""
COMPONENT_NAMES = {"mac": "MAC", "spad": "scratchpad", "glb": "global buffer", "noc": "NoC",
                   "dram": "DRAM", "leakage": "leakage", "clock": "clock tree",
                   "wakeup": "wake-up"}


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
    """One value on its own (key-value tables, where each row is another quantity)."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return column_formatter(pd.Series([float(value)]))(value)
    return html.escape(str(value))


def column_formatter(values: pd.Series):
    """One number format for a whole column, chosen from its values.

    Whole numbers: thousands separators, no decimals. Others: four significant digits of
    the column's largest magnitude, the same decimals in every row (scientific notation
    for the whole column when that is >= 1e7 or < 1e-3). Non-numbers are shown as text.
    """
    numeric = pd.to_numeric(values, errors="coerce") if values.dtype == object else values
    if values.dtype == bool or not np.issubdtype(np.asarray(numeric).dtype, np.number):
        return lambda v: ("yes" if v else "no") if isinstance(v, (bool, np.bool_)) \
            else html.escape(str(v))
    arr = np.asarray(numeric, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    peak = float(np.abs(finite).max()) if finite.size else 0.0
    if finite.size and np.all(finite == np.round(finite)) and peak < 1e15:
        spec = ",.0f"
    elif peak and (peak >= 1e7 or peak < 1e-3):
        spec = ".3e"
    else:
        decimals = 3 if not peak else int(min(6, max(0, 3 - np.floor(np.log10(peak)))))
        spec = f",.{decimals}f"

    def fmt(v) -> str:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return html.escape(str(v))
        return format(x, spec) if np.isfinite(x) else "–"
    return fmt


def table_html(frame: pd.DataFrame, max_rows: int | None = None) -> str:
    """An HTML table, one number format per column, in a box that scrolls sideways."""
    frame = frame if max_rows is None else frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    formats = [column_formatter(frame[c]) for c in frame.columns]
    body = "".join("<tr>" + "".join(f"<td>{f(v)}</td>" for f, v in zip(formats, row)) + "</tr>"
                   for row in frame.itertuples(index=False))
    return (f"<div class='scroll'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def dominant_component(totals: dict) -> tuple[str, float]:
    """The energy component with the largest share of a design's total, and that share (%)."""
    from accelsim.sim.energy import energy_parts

    parts = {k: float(v) for k, v in energy_parts(totals).items()
             if isinstance(v, (int, float, np.integer, np.floating))}
    total = sum(parts.values())
    if not parts or total <= 0:
        return "none", 0.0
    name = max(parts, key=parts.get)
    return COMPONENT_NAMES.get(name, name), 100.0 * parts[name] / total


def energy_shares(results, baseline=None) -> pd.DataFrame:
    """Each energy component's share of the total (%), for the design and its dense twin."""
    from accelsim.sim.energy import energy_parts

    def shares(totals: dict) -> dict:
        parts = {f"energy_{k}_pj": float(v) for k, v in energy_parts(totals).items()}
        total = sum(parts.values())
        return {k: (100.0 * v / total if total else 0.0) for k, v in parts.items()}

    design = shares(results.totals)
    frame = pd.DataFrame({"component": [COMPONENT_NAMES.get(k[7:-3], k[7:-3]) for k in design],
                          "share of design energy (%)": list(design.values())})
    if baseline is not None:
        twin = shares(baseline.totals)
        frame["share of dense-twin energy (%)"] = [twin.get(k, np.nan) for k in design]
    return frame.sort_values("share of design energy (%)", ascending=False, ignore_index=True)


def _kv_table(pairs: list[tuple[str, object]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in pairs)
    return f"<div class='scroll'><table>{rows}</table></div>"


def _img(plot: PlotResult, alt: str) -> str:
    data = base64.b64encode(figure_bytes(plot.figure, "png")).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


# Network totals shown in the report, in readable units: (key, label, unit, factor).
TOTALS_SHOWN = (
    ("latency_s", "latency", "µs", 1e6), ("cycles", "cycles", "cycles", 1.0),
    ("energy_pj", "energy", "µJ", 1e-6), ("utilization", "PE utilisation", "%", 100.0),
    ("load_imbalance", "load imbalance (slowest / mean PE)", "ratio", 1.0),
    ("macs_issued", "MACs issued", "MACs", 1.0), ("macs_skipped", "MACs skipped", "MACs", 1.0),
    ("macs_gated", "MACs gated", "MACs", 1.0), ("dram_bytes", "DRAM traffic", "KiB", 1 / 1024),
    ("peak_onchip_bytes", "largest on-chip footprint of a layer", "KiB", 1 / 1024),
    ("peak_offchip_bytes", "largest off-chip spill of a layer (maybe another layer)", "KiB",
     1 / 1024),
    ("area_mm2", "core area (estimate, accelsim.hw.area)", "mm²", 1.0),
)


def totals_table(results, baseline=None) -> pd.DataFrame:
    """Key network totals per inference in readable units, with the dense twin and the ratio.

    Each row is one metric (its values share one format); every numeric total is in the
    collapsible full list below it.
    """
    rows = []
    for key, label, unit, factor in TOTALS_SHOWN:
        if key not in results.totals:
            continue
        row = {"metric": label, "unit": unit, "design": float(results.totals[key]) * factor}
        if baseline is not None:
            dense = float(baseline.totals.get(key, np.nan)) * factor
            row["dense twin"] = dense
            row["design / dense"] = row["design"] / dense if dense else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _metric_rows_html(frame: pd.DataFrame) -> str:
    """A metric-per-row table: the value columns of a row share that metric's format."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    value_cols = [c for c in frame.columns if c not in ("metric", "unit", "design / dense")]
    ratio = column_formatter(frame["design / dense"]) if "design / dense" in frame else None
    body = []
    for _, row in frame.iterrows():
        fmt = column_formatter(pd.Series([row[c] for c in value_cols], dtype=float))
        cells = [html.escape(str(row["metric"])), html.escape(str(row["unit"]))]
        cells += [fmt(row[c]) for c in value_cols]
        if ratio is not None:
            cells.append(ratio(row["design / dense"]))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f"<div class='scroll'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def all_totals(results, baseline=None) -> pd.DataFrame:
    """Every numeric network total (raw units, as saved in FILE.json)."""
    names = [k for k, v in results.totals.items()
             if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)]
    frame = pd.DataFrame({"metric": names,
                          "design": [float(results.totals[k]) for k in names]})
    if baseline is not None:
        frame["dense twin"] = [float(baseline.totals.get(k, np.nan)) for k in names]
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

    samples = int(layers["samples"].max()) if "samples" in layers and len(layers) else None
    basis = (f"per inference: the mean over {samples:,} samples of {inputs.trace_label}"
             if samples else f"per inference of {inputs.trace_label}")
    parts.append("<h2>Network totals</h2>")
    parts.append(f"<p>All figures are {html.escape(basis)}.</p>")
    name, share = dominant_component(results.totals)
    dominant = (f"<p>Dominant energy component: <b>{html.escape(name)}</b>, "
                f"<b>{share:.1f}%</b> of {html.escape(hw.name)}'s energy")
    if baseline is not None:
        twin_name, twin_share = dominant_component(baseline.totals)
        dominant += f" (dense twin: {html.escape(twin_name)}, {twin_share:.1f}%)"
    parts.append(dominant + ".</p>")
    if baseline is not None:   # the network figures accelsim simulate prints (headline.py)
        head = headline_figures(results, baseline)
        cls = "good" if not head["energy_saving"] < 0 else "bad"
        parts.append(f"<p>Against its dense twin, <b>{html.escape(hw.name)}</b>: "
                     f"<b class='{cls}'>{energy_saving_text(head)}</b>, "
                     f"speedup <b>{times(head['speedup'])}</b>, DRAM "
                     f"{percent(head['dram_share'])} of energy (dense twin "
                     f"{percent(head['baseline_dram_share'])}); network totals, with the ops "
                     "between layers.</p>")
    parts.append(_metric_rows_html(totals_table(results, baseline)))
    parts.append("<h3>Energy by component</h3>" + table_html(energy_shares(results, baseline)))
    parts.append("<details><summary>All network totals (raw units: pJ, cycles, bytes, s)"
                 f"</summary>{table_html(all_totals(results, baseline))}</details>")

    parts.append("<h2>Plots</h2>")
    plots: list[tuple[str, PlotResult]] = []
    context = PlotContext(hw.name, inputs.trace_label, samples,
                          float(hw.technology.clock_mhz))
    if baseline is not None:
        plots.append(("Per-layer energy savings vs the dense twin",
                      plot_savings(layers, baseline.layers, context=context,
                                   totals=(results.totals, baseline.totals))))
    plots.append(("Per-layer energy by component", plot_breakdown(layers, context=context)))
    plots.append(("Per-layer latency", plot_latency(layers, context=context)))
    if inputs.density is not None:
        plots.append(("Per-layer density", plot_density(
            inputs.density, context=PlotContext(trace=inputs.trace_label,
                                                samples=inputs.trace_meta.get("num_samples")))))
    plots.append(("Runtime memory", plot_memory(layers, figures["global_buffer_bytes"],
                                                context=context)))
    for caption, plot in plots:
        parts.append(f"<h3>{html.escape(caption)}</h3>{_img(plot, caption)}")
        plot.figure.clear()

    for section_title, section_html in inputs.extra_sections:
        parts.append(f"<h2>{html.escape(section_title)}</h2>{section_html}")

    parts.append("<h2>Per-layer results</h2>")
    shown = layers[[c for c in LAYER_COLUMNS if c in layers.columns]].copy()
    if baseline is not None:
        shown["energy saving (%)"] = savings_table(layers, baseline.layers)["saved_percent"].to_numpy()
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
