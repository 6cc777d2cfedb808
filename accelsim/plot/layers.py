"""Per-layer plots of simulation results: energy savings, energy breakdown, latency, memory.

Each function takes per-layer result tables (pandas, one row per layer, the simulator's
columns) and returns a :class:`~accelsim.plot.common.PlotResult` whose ``data`` holds
exactly the bar heights drawn, in the units named by ``units``. A network figure in a title
or legend (the energy saving) is :mod:`accelsim.sim.headline`'s, from the network totals when
they are given (``totals=(design totals, dense-twin totals)``: they include the ops between
layers), else from the sum of the layers (then the title says so).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

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


_COMPONENT_KEY = re.compile(r"^energy_.+_pj$")


@dataclass
class CompareResult(PlotResult):
    """:func:`plot_compare`'s figure and numbers: ``data`` the per-layer savings (long form),
    ``network`` one row per design with the absolute figures drawn in the lower panels."""

    network: pd.DataFrame = field(default_factory=pd.DataFrame)


def network_figures(sparse: pd.DataFrame, dense: pd.DataFrame,
                    totals: tuple[dict, dict] | None = None) -> tuple[dict, dict, bool]:
    """A design's and its dense twin's network energy (``energy_pj`` and its
    ``energy_<component>_pj``), ``cycles`` and ``latency_s`` (when known): the network totals
    when given (what ``simulate`` prints and ``FILE.json`` holds, ops between layers
    included), else the sums of the layers. The flag says which."""
    def summed(table: pd.DataFrame) -> dict:
        keys = ["energy_pj", "cycles", *component_columns(table)]
        return {k: float(table[k].astype(float).sum()) for k in keys if k in table}

    if totals is not None:
        picked = []
        for figures in totals:
            keep = {k: float(v) for k, v in figures.items()
                    if (k in ("energy_pj", "cycles", "latency_s") or _COMPONENT_KEY.match(k))
                    and isinstance(v, (int, float)) and not isinstance(v, bool)}
            picked.append(keep)
        return picked[0], picked[1], True
    return summed(sparse), summed(dense), False


def plot_compare(runs: list[tuple[str, pd.DataFrame, pd.DataFrame]], title: str | None = None,
                 context: PlotContext | None = None,
                 totals: list[tuple[dict, dict] | None] | None = None,
                 log: bool = False) -> CompareResult:
    """Several designs on one trace: relative and absolute figures side by side.

    Top: energy saved per layer by each design against its own dense twin (percent). Bottom
    left: each design's network energy per inference, stacked by component (DRAM included),
    beside its dense twin's; bottom right: network latency per inference of each design and its
    twin (time when every design's clock is known, else cycles). Savings alone cannot show that
    one design uses 14x less energy than another; the lower panels do.

    ``runs``: ``(design name, per-layer results, dense-twin results)``, all of one trace.
    ``totals``: per run, its and its twin's network totals (the legend's network saving and the
    absolute bars; without them the sums of the layers, and the panels say so). ``log``: the
    absolute panels on a log scale (designs orders of magnitude apart).
    ``data`` is long-form: ``layer, design, saved_percent``; ``network``: per design
    ``energy``, ``dense_energy``, ``energy_<component>``, ``latency``, ``dense_latency`` in
    ``units``.
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
    totals = list(totals) if totals is not None else [None] * len(runs)
    if len(totals) != len(runs):
        raise AccelsimError(f"plot compare: {len(totals)} network totals for {len(runs)} designs")
    width = 0.8 / len(tables)
    base = new_figure(len(names) * max(1, len(tables) // 2))
    fig = Figure(figsize=(max(11.0, base.get_figwidth()), 9.0), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=(1.15, 1.0))
    ax = fig.add_subplot(grid[0, :])
    ax_energy, ax_latency = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    x = np.arange(len(names))
    colors = _palette(len(tables))
    parts = []
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

    network, units = _compare_network(runs, totals, designs)
    _draw_network_energy(ax_energy, network, units["energy"], designs, log)
    _draw_network_latency(ax_latency, network, units["latency"], designs, log)
    sources = set(network["source"])
    note = "" if sources == {"network totals"} else " (sum of layers: ops between layers left out)"
    ax_energy.set_title(f"network energy per inference{note}", fontsize=9)
    ax_latency.set_title(f"network latency per inference{note}", fontsize=9)

    context = context or PlotContext.of_table(runs[0][1])
    context = PlotContext(None, context.trace, context.samples, context.clock_mhz)
    set_title(fig, titled(title or f"Per-layer energy savings of {len(tables)} designs, "
                          "network energy and latency", context))
    units = {"saved_percent": "%", **{k: v for k, v in units.items()}}
    return CompareResult(fig, data, units, network.drop(columns=["source"]))


def _compare_network(runs, totals, designs) -> tuple[pd.DataFrame, dict]:
    """Per design, the absolute network figures in display units (see :func:`plot_compare`)."""
    rows = []
    for (name, sparse, dense), given in zip(runs, totals):
        mine, twin, from_totals = network_figures(sparse, dense, given)
        row = {"design": name, "source": "network totals" if from_totals else "sum of layers",
               "energy_pj": mine.get("energy_pj", np.nan),
               "dense_energy_pj": twin.get("energy_pj", np.nan),
               "latency_s": mine.get("latency_s", np.nan),
               "dense_latency_s": twin.get("latency_s", np.nan),
               "cycles": mine.get("cycles", np.nan), "dense_cycles": twin.get("cycles", np.nan)}
        for key, value in mine.items():
            if _COMPONENT_KEY.match(key) and key != "energy_pj":
                row[key] = value
        rows.append(row)
    raw = pd.DataFrame(rows)
    components = component_columns(raw)
    raw[components] = raw[components].fillna(0.0)
    e_unit, e_scale = pick_unit(raw[["energy_pj", "dense_energy_pj"]].to_numpy(), ENERGY_UNITS)
    timed = raw[["latency_s", "dense_latency_s"]].notna().all().all()
    if timed:
        t_unit, t_scale = pick_unit(raw[["latency_s", "dense_latency_s"]].to_numpy(), TIME_UNITS)
        latency, dense_latency = raw["latency_s"] * t_scale, raw["dense_latency_s"] * t_scale
    else:
        t_unit, t_scale = pick_unit(raw[["cycles", "dense_cycles"]].to_numpy(), CYCLE_UNITS)
        latency, dense_latency = raw["cycles"] * t_scale, raw["dense_cycles"] * t_scale
    network = pd.DataFrame({"design": designs, "source": raw["source"],
                            "energy": raw["energy_pj"] * e_scale,
                            "dense_energy": raw["dense_energy_pj"] * e_scale})
    for column in components:
        network[f"energy_{component_name(column)}"] = raw[column] * e_scale
    network["latency"], network["dense_latency"] = latency, dense_latency
    units = {"energy": e_unit, "dense_energy": e_unit, "latency": t_unit, "dense_latency": t_unit,
             **{f"energy_{component_name(c)}": e_unit for c in components}}
    return network, units


def _design_axis(ax, designs: list[str]) -> None:
    ax.set_xticks(np.arange(len(designs)))
    rotate = len(designs) > 3 or max(len(d) for d in designs) > 14
    ax.set_xticklabels(designs, rotation=30 if rotate else 0, ha="right" if rotate else "center",
                       rotation_mode="anchor", fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def _value_axis(ax, values: np.ndarray, log: bool) -> None:
    """Room above the tallest bar for its label; on a log scale, from below the smallest."""
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return
    if log:
        ax.set_yscale("log")
        ax.set_ylim(float(values.min()) / 3.0, float(values.max()) * 3.0)
    else:
        ax.set_ylim(0, float(values.max()) * 1.15)


def _ratio_labels(values: np.ndarray) -> list[str]:
    """``1.23 (14.0x)``: the value and its multiple of the smallest (left out for the smallest)."""
    low = float(np.nanmin(values)) if len(values) else 0.0
    out = []
    for v in values:
        ratio = v / low if low > 0 else np.nan
        out.append(f"{v:.3g}" + (f" ({ratio:.1f}x)" if ratio == ratio and ratio >= 1.05 else ""))
    return out


def _draw_network_energy(ax, network: pd.DataFrame, unit: str, designs: list[str],
                         log: bool = False) -> None:
    x = np.arange(len(designs))
    components = [c for c in network.columns if c.startswith("energy_")]
    from matplotlib import colormaps

    colors = [colormaps["Set2"](i % 8) for i in range(len(components))]   # not the designs' colours
    bottom = np.zeros(len(designs))
    for color, column in zip(colors, components):
        name = column[len("energy_"):]
        values = network[column].to_numpy(float)
        ax.bar(x - 0.19, values, bottom=bottom, width=0.36, color=color,
               label=COMPONENT_LABELS.get(name, name))
        bottom += values
    if not components:   # no split known: the total alone
        ax.bar(x - 0.19, network["energy"], width=0.36, color=COLORS["sparse"], label="design")
        bottom = network["energy"].to_numpy(float)
    ax.bar(x + 0.19, network["dense_energy"], width=0.36, color="none", edgecolor="#555",
           hatch="//", label="dense twin")
    for xi, top, text in zip(x, bottom, _ratio_labels(network["energy"].to_numpy(float))):
        ax.text(xi - 0.19, top, text, ha="center", va="bottom", fontsize=7)
    _value_axis(ax, np.concatenate([bottom, network["dense_energy"].to_numpy(float)]), log)
    ax.set_ylabel(f"energy per inference ({unit})")
    _design_axis(ax, designs)
    ax.legend(title="component", fontsize=7, title_fontsize=8, loc="upper left",
              bbox_to_anchor=(1.005, 1.0))


def _draw_network_latency(ax, network: pd.DataFrame, unit: str, designs: list[str],
                          log: bool = False) -> None:
    x = np.arange(len(designs))
    colors = _palette(len(designs))
    ax.bar(x - 0.19, network["latency"], width=0.36, color=colors)   # colours: the top legend
    ax.bar(x + 0.19, network["dense_latency"], width=0.36, color="none", edgecolor="#555",
           hatch="//", label="dense twin")
    values = network["latency"].to_numpy(float)
    for xi, top, text in zip(x, values, _ratio_labels(values)):
        ax.text(xi - 0.19, top, text, ha="center", va="bottom", fontsize=7)
    _value_axis(ax, np.concatenate([values, network["dense_latency"].to_numpy(float)]), log)
    ax.set_ylabel(f"latency per inference ({unit})")
    _design_axis(ax, designs)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0))


def _palette(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
