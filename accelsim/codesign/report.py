"""The co-design figure (validation accuracy against energy saving, coloured by design)
and its HTML report page."""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from accelsim.atomic import atomic_write_text
from accelsim.plot.common import figure_bytes, save_figure
from accelsim.sweep.pareto import pareto_mask

MARKERS = {"l1": "s", "hoyer_square": "^", "tl1": "o"}


def plot_accuracy_saving(table: pd.DataFrame, spec):
    """Validation accuracy (%) against energy saving vs each design's dense twin (%).

    One colour per hardware point, one marker per penalty; each design's front over
    (accuracy, saving) is drawn as a step line; selected models are outlined in black.
    Models below the spec's accuracy floor (never selected; e.g. collapsed ones, which would
    squash the axis) are left out and counted under the plot; the legend sits beside the axes,
    outside the data.
    """
    from matplotlib.figure import Figure

    from accelsim.codesign.spec import accuracy_floor

    ok = table[table["status"] == "ok"]
    floor = accuracy_floor(spec, float(ok["val_accuracy"].max()) if len(ok) else 0.0)
    if "above_floor" in ok:
        above = ok["above_floor"].astype(bool)
    else:
        above = ok["val_accuracy"] >= floor - 1e-12
    hidden = ok[~above]
    ok = ok[above]
    figure = Figure(figsize=(10.5, 5.6))
    ax = figure.add_subplot(1, 1, 1)
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    for i, (label, group) in enumerate(ok.groupby("design_label", sort=True)):
        colour = cmap(i % 10)
        x = 100 * group["energy_saving"].to_numpy(float)
        y = 100 * group["val_accuracy"].to_numpy(float)
        kinds = group["penalty"] if "penalty" in group else pd.Series([None] * len(group))
        for kind in sorted(set(kinds), key=str):
            sel = (kinds == kind).to_numpy()
            edge = np.where(group["selected"].to_numpy()[sel], "black", "none") \
                if "selected" in group else "none"
            ax.scatter(x[sel], y[sel], color=colour, marker=MARKERS.get(kind, "o"), s=36,
                       edgecolors=edge, linewidths=0.8, alpha=0.85)
        front = pareto_mask(np.column_stack([-x, -y]))
        order = np.argsort(x[front])
        ax.step(x[front][order], y[front][order], where="post", color=colour, lw=1.2,
                label=f"{label} (front)")
    if "penalty" in ok:
        for kind in sorted(set(ok["penalty"].dropna())):
            ax.scatter([], [], color="grey", marker=MARKERS.get(kind, "o"), label=f"penalty: {kind}")
    ax.scatter([], [], facecolors="none", edgecolors="black", label="selected (test set evaluated)")
    ax.set_xlabel("energy saving vs the design's dense twin (%)")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    if len(hidden):
        figure.text(0.01, 0.01, f"not shown: {hidden['train_id'].nunique()} model(s) below the "
                    f"validation-accuracy floor of {100 * floor:.1f}% (never selected; lowest "
                    f"{100 * hidden['val_accuracy'].min():.1f}%)", ha="left", va="bottom",
                    fontsize=7, color="#555")
    models = ", ".join(sorted({tp.recipe.model for tp in spec.points}))
    datasets = ", ".join(sorted({tp.recipe.data.dataset for tp in spec.points}))
    figure.suptitle(f"Co-design {spec.name}: validation accuracy vs energy saving per design\n"
                    f"{models} on {datasets} (validation split, {spec.samples} samples per model), "
                    f"{table['train_id'].nunique()} models x {table['design_label'].nunique()} "
                    "hardware points", fontsize=10)
    figure.tight_layout(rect=(0, 0.03 if len(hidden) else 0, 1, 1))
    return figure


def write_plot(table: pd.DataFrame, spec, path: str | os.PathLike) -> Path:
    return save_figure(plot_accuracy_saving(table, spec), path, dpi=110)


def write_report(table: pd.DataFrame, spec, path: str | os.PathLike,
                 plot_path: str | os.PathLike | None = None) -> Path:
    """One self-contained HTML page: the plot, the selected models, the fronts, every row."""
    from accelsim.sweep.report import table_html

    figure = plot_accuracy_saving(table, spec)
    image = base64.b64encode(figure_bytes(figure, "png", dpi=100)).decode("ascii")
    fronts = [c for c in table if c.startswith("pareto_")]
    axes = [c for c in ("penalty", "lambda", "tl1_b", "prune_sparsity", "prune_schedule", "model",
                        "seed") if c in table]
    sel = (table[table["selected"]].drop_duplicates("train_id")
           [["train_id", *axes, "val_accuracy", "test_accuracy", "val_mean_act_sparsity",
             "weight_sparsity", "val_mult_reduction"]])
    parts = [f"<h1>Co-design {html.escape(spec.name)}</h1>",
             f"<p class='meta'>{html.escape(spec.description or '')}</p>",
             f"<p>{table['train_id'].nunique()} models trained (choices on the validation split) x "
             f"{table['design_label'].nunique()} hardware points, simulated at {spec.fidelity} "
             f"fidelity on {spec.samples} validation samples per model. Energy saving and speedup are "
             "against each design's dense twin on the same trace. The test split is evaluated once, "
             "for the selected models only. Models below the validation-accuracy floor "
             f"(min_val_accuracy {spec.min_val_accuracy}, max_accuracy_drop "
             f"{spec.max_accuracy_drop:g} below the best) are on no front and never selected"
             + (f": {table.loc[~table['above_floor'], 'train_id'].nunique()} here"
                if "above_floor" in table else "") + ".</p>",
             f"<img alt='validation accuracy vs energy saving' src='data:image/png;base64,{image}'>",
             "<h2>Selected models (validation-selected; test accuracy measured once)</h2>",
             table_html(sel)]
    for column in fronts:
        names = column[len("pareto_"):].split("__")
        front = table[table[column]]
        parts += [f"<h2>Pareto front: {html.escape(', '.join(names))} ({len(front)} rows)</h2>",
                  table_html(front[["train_id", *axes, "design_label", *[n for n in names
                                                                         if n not in axes]]])]
    parts += ["<h2>Every row</h2>", "<details><summary>results table</summary>",
              table_html(table), "</details>"]
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>Co-design {html.escape(spec.name)}</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
            ".scroll{max-width:100%;overflow-x:auto}table{border-collapse:collapse;font-size:.85em}"
            "td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right;white-space:nowrap}"
            "th{background:#f3f3f3}img{max-width:100%}.meta{color:#666}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
    atomic_write_text(path, page)
    return Path(path)
