"""Per-op memory timeline: what is live while each op of the network runs.

Built from :func:`accelsim.sim.liveness.liveness` (a captured graph with the ops between
layers): one stacked bar per op, stacked by role (inputs, weights, outputs, kept-alive)
or by tensor, against the global-buffer size. Bytes are per inference (mean over the
traced samples); the title names the peak (the largest over the samples).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from accelsim.plot.common import (BYTE_UNITS, PlotContext, PlotResult, label_layers, new_figure,
                                  pick_unit, set_title, titled)
from accelsim.sim.liveness import ROLES

BY = ("role", "tensor")
_ROLE_COLOURS = {"inputs": "#4393c3", "weights": "#762a83", "outputs": "#1b7837",
                 "kept-alive": "#f4a582"}
_MAX_TENSOR_LEGEND = 12


def timeline_table(lv, by: str = "role") -> pd.DataFrame:
    """Bytes per step (rows, in op order) and role or tensor (columns); ``step`` names the op."""
    if by not in BY:
        raise ValueError(f"by: expected one of {BY}, got {by!r}")
    rows = []
    for step in lv.steps:
        if by == "role":
            row = step.by_role()
        else:
            row = {}
            for t in step.tensors:
                key = t.id if isinstance(t.id, str) else f"tensor {t.id}"
                row[key] = row.get(key, 0.0) + t.bytes
        rows.append(row)
    table = pd.DataFrame(rows).fillna(0.0)
    if by == "role":
        table = table.reindex(columns=list(ROLES), fill_value=0.0)
    table.insert(0, "step", [f"{s.index}:{s.name or s.kind}" for s in lv.steps])
    return table


def plot_timeline(lv, by: str = "role", glb_bytes: float | None = None,
                  title: str | None = None, context: PlotContext | None = None) -> PlotResult:
    """Stacked live bytes per op; a dashed line at the global-buffer size when given."""
    table = timeline_table(lv, by)
    columns = [c for c in table.columns if c != "step"]
    values = table[columns].to_numpy(dtype=float)
    totals = values.sum(axis=1)
    unit, scale = pick_unit(np.concatenate([totals, [glb_bytes] if glb_bytes else []]),
                            BYTE_UNITS)
    data = table.copy()
    data[columns] = values * scale
    fig = new_figure(len(table))
    ax = fig.subplots()
    x = np.arange(len(table))
    bottom = np.zeros(len(table))
    palette = [_ROLE_COLOURS.get(c) for c in columns] if by == "role" else \
        [f"C{i % 10}" for i in range(len(columns))]
    for i, column in enumerate(columns):
        label = column if (by == "role" or len(columns) <= _MAX_TENSOR_LEGEND) else None
        ax.bar(x, data[column], bottom=bottom, width=0.8, color=palette[i], label=label)
        bottom += data[column].to_numpy()
    if glb_bytes:
        ax.axhline(glb_bytes * scale, color="black", linestyle="--", linewidth=1.2,
                   label=f"global buffer {glb_bytes * scale:.4g} {unit}")
    ax.set_ylabel(f"live memory ({unit})")
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    label_layers(ax, table["step"].tolist())
    peak_unit, peak_scale = pick_unit([lv.peak_bytes], BYTE_UNITS)
    set_title(fig, titled(f"{title or 'Live memory per op'} (by {by}; peak "
                          f"{lv.peak_bytes * peak_scale:.4g} {peak_unit} at op {lv.peak_step})",
                          context))
    return PlotResult(fig, data, {c: unit for c in columns})
