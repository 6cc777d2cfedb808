"""Per-layer activation and weight density of a trace."""
from __future__ import annotations

import numpy as np
import pandas as pd

from accelsim.plot.common import (PlotContext, PlotResult, label_layers, new_figure,
                                  require_columns, set_title)

COLORS = {"act_density": "#2166ac", "weight_density": "#b2182b"}


def density_table(layers, samples: int | None = None) -> pd.DataFrame:
    """``layer, kind, act_density, weight_density`` (fractions non-zero) of each traced layer.

    Uses the densities a trace records (measured for captured traces, the density model's
    expected value for statistical ones); a layer without them (built from in-memory
    masks) is measured from its masks.
    """
    rows = []
    for layer in layers:
        stats = layer.stats
        act = stats.get("act_density")
        weight = stats.get("weight_density")
        if act is None:
            act = float(np.mean(layer.act_mask(samples)))
        if weight is None:
            weight = float(np.mean(layer.weight_mask()))
        rows.append({"layer": layer.name, "kind": layer.kind, "act_density": float(act),
                     "weight_density": float(weight)})
    return pd.DataFrame(rows, columns=["layer", "kind", "act_density", "weight_density"])


def plot_density(table: pd.DataFrame, title: str | None = None,
                 context: PlotContext | None = None) -> PlotResult:
    """Grouped bars: percent non-zero input activations and weights per layer."""
    require_columns(table, ("layer", "act_density", "weight_density"), "density table")
    names = table["layer"].astype(str).tolist()
    data = pd.DataFrame({"layer": names,
                         "act_density": table["act_density"].astype(float).to_numpy() * 100.0,
                         "weight_density": table["weight_density"].astype(float).to_numpy() * 100.0})
    fig = new_figure(len(names))
    ax = fig.subplots()
    x = np.arange(len(names))
    for offset, column, label in ((-0.2, "act_density", "input activations"),
                                  (0.2, "weight_density", "weights")):
        bars = ax.bar(x + offset, data[column], width=0.4, label=label, color=COLORS[column])
        if len(names) <= 24:
            ax.bar_label(bars, labels=[f"{v:.0f}" for v in data[column]], fontsize=6, padding=1)
    ax.set_ylim(0, 110)
    ax.set_ylabel("density (% non-zero)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    label_layers(ax, names)
    what = title or "Per-layer operand density"
    if context is not None and (context.trace or context.samples):
        basis = f"mean over {context.samples:,} samples" if context.samples else ""
        what += "\n" + " · ".join(p for p in (context.trace, basis) if p)
    set_title(fig, what)
    return PlotResult(fig, data, {"act_density": "%", "weight_density": "%"})
