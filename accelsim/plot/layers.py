"""Per-layer plots of simulation results: energy savings, energy breakdown, latency, memory.

Each function takes per-layer result tables (pandas, one row per layer, the simulator's
columns) and returns a :class:`~accelsim.plot.common.PlotResult` whose ``data`` holds
exactly the bar heights drawn, in the units named by ``units``. A network figure in a title
or legend (the energy saving) is :mod:`accelsim.sim.headline`'s, from the network totals when
they are given (``totals=(design totals, dense-twin totals)``: they include the ops between
layers), else from the sum of the layers (then the title says so).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from accelsim.errors import AccelsimError
from accelsim.sim.headline import energy_saving_text, headline_figures, layer_sums, saving
from accelsim.plot.common import (BYTE_UNITS, CYCLE_UNITS, ENERGY_UNITS, TIME_UNITS, PlotContext,
                                  PlotResult, component_columns, component_name, label_layers,
                                  new_figure, pick_unit, require_columns, set_title, titled)

COLORS = {"dense": "#9e9e9e", "sparse": "#1b7837", "gain": "#1b7837", "loss": "#b2182b"}
COMPONENT_LABELS = {"mac": "MAC", "spad": "scratchpad", "noc": "NoC", "glb": "global buffer",
                    "dram": "DRAM", "leakage": "leakage", "clock": "clock tree"}
#: A global buffer this many times the largest layer's memory is left off the memory plot's axis.
OFF_SCALE = 4.0
LATENCY_PARTS = (
    ("useful", "useful compute", "#2166ac"),
    ("imbalance", "load-imbalance loss", "#f4a582"),
    ("fill_drain", "pipeline fill/drain", "#bababa"),
    ("stall", "memory stalls (buffer, DRAM)", "#b2182b"),
)


def savings_table(sparse: pd.DataFrame, dense: pd.DataFrame) -> pd.DataFrame:
    """Per-layer energy of the sparse design and its dense twin, and the savings (pJ, %)."""
    for table, what in ((sparse, "sparse results"), (dense, "dense baseline results")):
        require_columns(table, ("layer", "energy_pj"), what)
    merged = sparse[["layer", "energy_pj"]].merge(
        dense[["layer", "energy_pj"]], on="layer", how="left", suffixes=("_sparse", "_dense"),
        validate="one_to_one")
    missing = merged.loc[merged["energy_pj_dense"].isna(), "layer"].tolist()
    if missing:
        raise AccelsimError(f"the dense baseline has no result for layer(s) {', '.join(missing)}; "
                            "both tables must come from the same trace")
    out = pd.DataFrame({"layer": merged["layer"],
                        "dense_energy_pj": merged["energy_pj_dense"].astype(float),
                        "sparse_energy_pj": merged["energy_pj_sparse"].astype(float)})
    out["saved_pj"] = out["dense_energy_pj"] - out["sparse_energy_pj"]
    # headline.saving, in percent; a layer without dense energy draws as 0
    out["saved_percent"] = np.nan_to_num(100.0 * saving(out["sparse_energy_pj"].to_numpy(),
                                                        out["dense_energy_pj"].to_numpy()))
    return out


def network_saving_text(sparse: pd.DataFrame, dense: pd.DataFrame,
                        totals: tuple[dict, dict] | None = None) -> str:
    """``network energy saving 65.5%`` from the network totals (``(design, dense twin)``), or
    ``... (sum of layers)`` from the tables when the totals are not known."""
    if totals is not None:
        return "network " + energy_saving_text(headline_figures(*totals))
    return ("network " + energy_saving_text(headline_figures(layer_sums(sparse), layer_sums(dense)))
            + " (sum of layers)")


def plot_savings(sparse: pd.DataFrame, dense: pd.DataFrame, title: str | None = None,
                 context: PlotContext | None = None,
                 totals: tuple[dict, dict] | None = None) -> PlotResult:
    """Two panels: saved energy per layer in percent, and dense vs sparse energy (absolute).

    ``totals``: the design's and the dense twin's network totals, for the title's network
    energy saving (the same figure ``accelsim simulate`` prints)."""
    context = context or PlotContext.of_table(sparse)
    table = savings_table(sparse, dense)
    names = table["layer"].astype(str).tolist()
    unit, scale = pick_unit(table[["dense_energy_pj", "sparse_energy_pj"]].to_numpy(), ENERGY_UNITS)
    data = pd.DataFrame({"layer": names, "saved_percent": table["saved_percent"].to_numpy(),
                         "dense_energy": table["dense_energy_pj"].to_numpy() * scale,
                         "sparse_energy": table["sparse_energy_pj"].to_numpy() * scale,
                         "saved_energy": table["saved_pj"].to_numpy() * scale})
    fig = new_figure(len(names), height=3.6, rows=2)
    top, bottom = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(names))
    colors = [COLORS["gain"] if v >= 0 else COLORS["loss"] for v in data["saved_percent"]]
    bars = top.bar(x, data["saved_percent"], color=colors, width=0.7)
    top.bar_label(bars, labels=[f"{v:.0f}%" for v in data["saved_percent"]], fontsize=7, padding=2)
    top.axhline(0, color="black", linewidth=0.8)
    top.set_ylabel("energy saving (%)")
    top.set_ylim(min(0.0, float(data["saved_percent"].min()) * 1.15 - 5),
                 max(100.0, float(data["saved_percent"].max()) * 1.1))
    top.grid(axis="y", alpha=0.3)
    bottom.bar(x - 0.2, data["dense_energy"], width=0.4, label="dense twin", color=COLORS["dense"])
    bottom.bar(x + 0.2, data["sparse_energy"], width=0.4, label="sparse design",
               color=COLORS["sparse"])
    bottom.set_ylabel(f"energy per inference ({unit})")
    bottom.legend(fontsize=8)
    bottom.grid(axis="y", alpha=0.3)
    label_layers(bottom, names)
    set_title(fig, titled(f"{title or 'Per-layer energy savings vs the dense twin'} "
                        f"({network_saving_text(sparse, dense, totals)})", context))
    units = {"saved_percent": "%", "dense_energy": unit, "sparse_energy": unit, "saved_energy": unit}
    return PlotResult(fig, data, units)


def plot_breakdown(results: pd.DataFrame, title: str | None = None,
                   context: PlotContext | None = None) -> PlotResult:
    """Stacked bars: each layer's energy split by component (MAC, scratchpad, GLB, NoC, DRAM, ...)."""
    context = context or PlotContext.of_table(results)
    require_columns(results, ("layer",), "per-layer results")
    components = component_columns(results)
    if not components:
        raise AccelsimError("per-layer results: no energy_<component>_pj columns to stack")
    names = results["layer"].astype(str).tolist()
    values = results[components].astype(float).fillna(0.0)
    unit, scale = pick_unit(values.sum(axis=1).to_numpy(), ENERGY_UNITS)
    data = pd.DataFrame({"layer": names})
    for column in components:
        data[component_name(column)] = values[column].to_numpy() * scale
    fig = new_figure(len(names))
    ax = fig.subplots()
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    cmap = _palette(len(components))
    for color, column in zip(cmap, components):
        name = component_name(column)
        ax.bar(x, data[name], bottom=bottom, label=COMPONENT_LABELS.get(name, name), color=color,
               width=0.7)
        bottom += data[name].to_numpy()
    if bottom.max() > 0:  # stacked near-empty segments pin autoscaling to the top: add headroom
        ax.set_ylim(0, float(bottom.max()) * 1.06)
    ax.set_ylabel(f"energy per inference ({unit})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="component", fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    label_layers(ax, names)
    set_title(fig, titled(title or "Per-layer energy by component", context))
    return PlotResult(fig, data, {name: unit for name in data.columns[1:]})


def latency_split(results: pd.DataFrame) -> pd.DataFrame:
    """Each layer's cycles split into useful compute, load-imbalance loss, fill/drain, stalls.

    ``compute_cycles`` = fill/drain + the array's busy time; of that busy time, the mean
    PE's busy cycles (``busy_mean_sum``, summed over folds) are useful work and the rest
    is time PEs wait for the slowest of their group (load imbalance). Without
    ``busy_mean_sum`` the ratio ``load_imbalance`` (slowest / mean busy) is used.
    ``stall_cycles`` (global-buffer and DRAM stalls) = ``cycles - compute_cycles``.
    The four parts always sum to ``cycles``.
    """
    require_columns(results, ("layer", "cycles", "compute_cycles"), "per-layer results")
    cycles = results["cycles"].astype(float).to_numpy()
    compute = results["compute_cycles"].astype(float).to_numpy()
    fill = (results["fill_drain_cycles"].astype(float).to_numpy()
            if "fill_drain_cycles" in results else np.zeros(len(results)))
    busy = np.maximum(compute - fill, 0.0)
    if "busy_mean_sum" in results:
        useful = np.minimum(results["busy_mean_sum"].astype(float).to_numpy(), busy)
    elif "load_imbalance" in results:
        ratio = np.maximum(results["load_imbalance"].astype(float).fillna(1.0).to_numpy(), 1.0)
        useful = busy / ratio
    else:
        useful = busy
    stall = cycles - compute
    return pd.DataFrame({"layer": results["layer"].astype(str), "useful": useful,
                         "imbalance": busy - useful, "fill_drain": compute - busy,
                         "stall": stall})


def plot_latency(results: pd.DataFrame, title: str | None = None,
                 context: PlotContext | None = None) -> PlotResult:
    """Stacked bars of each layer's latency: useful compute, imbalance loss, fill/drain, stalls.

    In time units (ns ... s, by magnitude) when the context knows the clock, else in cycles.
    """
    context = context or PlotContext.of_table(results)
    split = latency_split(results)
    names = split["layer"].tolist()
    parts = [p for p, _, _ in LATENCY_PARTS]
    if context.clock_mhz:
        seconds = split[parts].to_numpy() / (context.clock_mhz * 1e6)
        unit, scale = pick_unit(seconds.sum(axis=1), TIME_UNITS)
        scale = scale / (context.clock_mhz * 1e6)  # cycles -> display unit
    else:
        unit, scale = pick_unit(split[parts].sum(axis=1).to_numpy(), CYCLE_UNITS)
    data = split.copy()
    data[parts] = data[parts] * scale
    fig = new_figure(len(names))
    ax = fig.subplots()
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for key, label, color in LATENCY_PARTS:
        ax.bar(x, data[key], bottom=bottom, label=label, color=color, width=0.7)
        bottom += data[key].to_numpy()
    ax.set_ylabel(f"latency per inference ({unit})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    label_layers(ax, names)
    total = split[parts].to_numpy().sum()
    lost = split[["imbalance", "stall"]].to_numpy().sum()
    share = 100.0 * lost / total if total else 0.0
    clock = f" at {context.clock_mhz:g} MHz" if context.clock_mhz else ""
    set_title(fig, titled(f"{title or 'Per-layer latency'}{clock} ({share:.1f}% lost to imbalance "
                        "and stalls)", context))
    return PlotResult(fig, data, {p: unit for p in parts})


def plot_memory(results: pd.DataFrame, glb_bytes: float, title: str | None = None,
                context: PlotContext | None = None) -> PlotResult:
    """Runtime memory per layer (on-chip, spilled off-chip) against the global-buffer size.

    The axis follows the bars: a buffer more than :data:`OFF_SCALE` times the tallest bar is
    named in the legend instead of stretching the axis to it.
    """
    context = context or PlotContext.of_table(results)
    require_columns(results, ("layer", "onchip_peak_bytes", "offchip_peak_bytes"),
                    "per-layer results")
    names = results["layer"].astype(str).tolist()
    onchip = results["onchip_peak_bytes"].astype(float).to_numpy()
    offchip = results["offchip_peak_bytes"].astype(float).to_numpy()
    peak = float((onchip + offchip).max()) if len(names) else 0.0
    off_scale = peak > 0 and glb_bytes > OFF_SCALE * peak
    unit, scale = pick_unit(onchip + offchip if off_scale else
                            np.concatenate([onchip + offchip, [glb_bytes]]), BYTE_UNITS)
    data = pd.DataFrame({"layer": names, "onchip": onchip * scale, "offchip": offchip * scale})
    fig = new_figure(len(names))
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x, data["onchip"], label="on-chip (global buffer)", color="#4393c3", width=0.7)
    ax.bar(x, data["offchip"], bottom=data["onchip"], label="off-chip (DRAM)", color="#d6604d",
           width=0.7)
    glb_unit, glb_scale = pick_unit([glb_bytes], BYTE_UNITS)
    glb_text = f"global buffer {glb_bytes * glb_scale:.4g} {glb_unit}"
    if off_scale:
        ax.plot([], [], color="black", linestyle=":", label=f"{glb_text} (off scale: "
                f"{glb_bytes / peak:.0f}x the largest layer)")
        ax.set_ylim(0, peak * scale * 1.15)
    else:
        ax.axhline(glb_bytes * scale, color="black", linestyle="--", linewidth=1.2, label=glb_text)
    ax.set_ylabel(f"peak runtime memory ({unit})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    label_layers(ax, names)
    spills = int(np.count_nonzero(offchip > 0))
    set_title(fig, titled(f"{title or 'Runtime memory per layer'} ({spills} of {len(names)} "
                        "layers spill)", context))
    return PlotResult(fig, data, {"onchip": unit, "offchip": unit, "glb": unit})


def plot_compare(runs: list[tuple[str, pd.DataFrame, pd.DataFrame]], title: str | None = None,
                 context: PlotContext | None = None,
                 totals: list[tuple[dict, dict] | None] | None = None) -> PlotResult:
    """Energy saved per layer by several designs, each against its own dense twin, side by side.

    ``runs``: ``(design name, per-layer results, dense-twin results)``, all of one trace.
    ``totals``: per run, its and its twin's network totals (for the legend's network saving).
    ``data`` is long-form: ``layer, design, saved_percent``.
    """
    if len(runs) < 1:
        raise AccelsimError("plot compare: give at least one design")
    tables = [(name, savings_table(sparse, dense)) for name, sparse, dense in runs]
    names = tables[0][1]["layer"].astype(str).tolist()
    for name, table in tables[1:]:
        if table["layer"].astype(str).tolist() != names:
            raise AccelsimError(f"plot compare: {name} has other layers than {tables[0][0]}; "
                                "compare designs on the same trace")
    designs = [name for name, _ in tables]
    if len(set(designs)) != len(designs):
        raise AccelsimError(f"plot compare: design names repeat ({', '.join(designs)}); "
                            "each design needs its own name")
    width = 0.8 / len(tables)
    fig = new_figure(len(names) * max(1, len(tables) // 2), height=4.8)
    ax = fig.subplots()
    x = np.arange(len(names))
    colors = _palette(len(tables))
    parts = []
    totals = list(totals) if totals is not None else [None] * len(runs)
    if len(totals) != len(runs):
        raise AccelsimError(f"plot compare: {len(totals)} network totals for {len(runs)} designs")
    for i, ((name, table), color) in enumerate(zip(tables, colors)):
        network = network_saving_text(runs[i][1], runs[i][2], totals[i])
        ax.bar(x - 0.4 + width * (i + 0.5), table["saved_percent"], width=width * 0.95,
               color=color, label=f"{name} ({network})")
        parts.append(pd.DataFrame({"layer": names, "design": name,
                                   "saved_percent": table["saved_percent"].to_numpy()}))
    data = pd.concat(parts, ignore_index=True)
    ax.axhline(0, color="black", linewidth=0.8)
    low = float(data["saved_percent"].min())
    ax.set_ylim(min(0.0, low * 1.15 - 5), max(100.0, float(data["saved_percent"].max()) * 1.1))
    ax.set_ylabel("energy saving vs own dense twin (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="design", fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    label_layers(ax, names)
    context = context or PlotContext.of_table(runs[0][1])
    context = PlotContext(None, context.trace, context.samples, context.clock_mhz)
    set_title(fig, titled(title or f"Per-layer energy savings of {len(tables)} designs", context))
    return PlotResult(fig, data, {"saved_percent": "%"})


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
