"""Sweep scatter with its Pareto front."""
from __future__ import annotations

import numpy as np
import pandas as pd

from accelsim.errors import AccelsimError
from accelsim.plot.common import (BYTE_UNITS, CYCLE_UNITS, ENERGY_UNITS, TIME_UNITS, PlotContext,
                                  PlotResult, new_figure, pick_unit, require_columns, set_title,
                                  titled)
from accelsim.sweep.pareto import objective_values, pareto_mask

AXIS_LABELS = {
    "energy_pj": "energy", "cycles": "latency", "latency_s": "latency",
    "edp_pj_s": "energy-delay product (pJ·s)", "dram_bytes": "DRAM traffic",
    "onchip_sram_kib": "on-chip SRAM (KiB)", "global_buffer_kib": "global buffer (KiB)",
    "pes": "processing elements", "peak_macs_per_cycle": "peak MACs per cycle",
    "utilization": "PE utilisation", "peak_onchip_bytes": "peak on-chip memory",
    "peak_offchip_bytes": "peak off-chip memory", "peak_live_bytes": "peak live memory",
}


def axis_unit(name: str, values) -> tuple[str | None, float]:
    """Display unit and factor of a metric, from its name (``_pj``, ``cycles``, ``_bytes``)."""
    if name.endswith("_pj"):
        return pick_unit(values, ENERGY_UNITS)
    if name.endswith("cycles"):
        return pick_unit(values, CYCLE_UNITS)
    if name.endswith("_bytes"):
        return pick_unit(values, BYTE_UNITS)
    if name == "latency_s" or (name.endswith("_s") and not name.endswith(("_pj_s", "_per_s"))):
        return pick_unit(values, TIME_UNITS)
    return None, 1.0


def axis_label(name: str, unit: str | None = None) -> str:
    label = AXIS_LABELS.get(name, name)
    return f"{label} ({unit})" if unit else label


def plot_pareto(table: pd.DataFrame, x: str = "energy_pj", y: str = "cycles",
                trace: str | None = None, log: bool = False,
                title: str | None = None, context: PlotContext | None = None) -> PlotResult:
    """Every successful sweep point as (x, y), the non-dominated ones joined as a front.

    ``data`` holds the table's values; they are drawn in the display ``units``
    (e.g. energy in µJ: ``x * 1e-6``).

    One colour per trace; the front is computed per trace (points of different traces
    run different workloads and are not comparable).
    """
    require_columns(table, (x, y), "sweep results")
    rows = table
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    if trace is not None:
        if "trace" not in rows or trace not in set(rows["trace"]):
            known = sorted(set(table["trace"])) if "trace" in table else []
            raise AccelsimError(f"sweep results: no trace named {trace!r}; the table has "
                                f"{', '.join(map(str, known)) or 'no trace column'}")
        rows = rows[rows["trace"] == trace]
    if rows.empty:
        raise AccelsimError("sweep results: no successful point to plot")
    groups = rows.groupby("trace", sort=False) if "trace" in rows else [(None, rows)]
    x_unit, x_scale = axis_unit(x, rows[x].astype(float))
    y_unit, y_scale = axis_unit(y, rows[y].astype(float))
    fig = new_figure(0, height=5.0)
    ax = fig.subplots()
    parts = []
    colors = ["#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214", "#35978f"]
    for i, (name, group) in enumerate(groups):
        values = objective_values(group, (x, y))
        front = pareto_mask(values)
        color = colors[i % len(colors)]
        xs = group[x].astype(float).to_numpy() * x_scale
        ys = group[y].astype(float).to_numpy() * y_scale
        label = f"{name}: " if name is not None else ""
        ax.scatter(xs[~front], ys[~front], s=14, alpha=0.45, color=color,
                   label=f"{label}design points")
        order = np.argsort(xs[front], kind="stable")
        ax.plot(xs[front][order], ys[front][order], marker="o", markersize=6, color=color,
                linewidth=1.5,
                label=f"{label}Pareto front ({int(front.sum())})")
        part = pd.DataFrame({"trace": name, "point": group["point"].to_numpy()
                             if "point" in group else np.arange(len(group)),
                             x: xs / x_scale, y: ys / y_scale, "pareto": front})
        parts.append(part)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(axis_label(x, x_unit))
    ax.set_ylabel(axis_label(y, y_unit))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if context is None:
        traces = sorted(set(map(str, rows["trace"]))) if "trace" in rows else []
        context = PlotContext(trace=", ".join(traces) if 0 < len(traces) <= 3 else
                              (f"{len(traces)} traces" if traces else None),
                              samples=int(rows["samples"].max()) if "samples" in rows
                              and rows["samples"].notna().any() else None)
    set_title(fig, titled(title or f"Design-space sweep: {axis_label(y)} vs {axis_label(x)} "
                        f"({len(rows)} points)", context))
    data = pd.concat(parts, ignore_index=True)
    units = {x: x_unit or "", y: y_unit or ""}
    return PlotResult(fig, data, units)
