"""Core area per component (``accelsim.hw.area``): one stacked bar per design (and node)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from accelsim.hw.area import AreaBreakdown
from accelsim.plot.common import PlotResult, new_figure, require_columns, set_title

#: Stacking order and colours of the component categories.
CATEGORIES = {
    "shared buffers": "#4575b4", "PE storage": "#91bfdb", "MACs": "#d73027",
    "network": "#fc8d59", "PE control": "#fee090", "sparse logic": "#1a9850",
    "vector unit": "#984ea3",
}
_SPARSE = ("zero_gating", "sparse_join", "sparse_skip", "operand_queues", "codecs")


def category(component: str, shared_levels: set[str], pe_levels: set[str]) -> str:
    """The plot category of one :class:`~accelsim.hw.area.AreaComponent` name."""
    if component in shared_levels:
        return "shared buffers"
    if component in pe_levels:
        return "PE storage"
    return {"mac": "MACs", "noc": "network", "pe_control": "PE control",
            "vector_unit": "vector unit"}.get(component, "sparse logic" if component in _SPARSE
                                              else component)


def area_table(designs: list[tuple[str, AreaBreakdown, set[str], set[str]]]) -> pd.DataFrame:
    """``design, component, category, mm2`` rows of ``(label, area, shared level names, per-PE
    level names)`` entries."""
    rows = []
    for label, area, shared, per_pe in designs:
        for comp in area.components:
            rows.append({"design": label, "component": comp.name,
                         "category": category(comp.name, shared, per_pe), "mm2": comp.mm2})
    return pd.DataFrame(rows, columns=["design", "component", "category", "mm2"])


def plot_area(table: pd.DataFrame, title: str | None = None) -> PlotResult:
    """Horizontal bars, one per design, stacked by component category, total at the end."""
    require_columns(table, ("design", "category", "mm2"), "area table")
    designs = list(dict.fromkeys(table["design"].astype(str)))
    cats = [c for c in CATEGORIES if c in set(table["category"])]
    cats += [c for c in dict.fromkeys(table["category"]) if c not in cats]
    data = (table.groupby(["design", "category"], sort=False)["mm2"].sum()
            .unstack(fill_value=0.0).reindex(index=designs, columns=cats, fill_value=0.0))
    fig = new_figure(height=1.6 + 0.55 * len(designs))
    ax = fig.subplots()
    y = np.arange(len(designs))
    left = np.zeros(len(designs))
    for cat in cats:
        values = data[cat].to_numpy(dtype=float)
        ax.barh(y, values, left=left, label=cat, color=CATEGORIES.get(cat, "#999999"), height=0.6)
        left += values
    for i, total in enumerate(left):
        ax.text(total, y[i], f" {total:.3g} mm²", va="center", fontsize=8)
    ax.set_yticks(y, designs)
    ax.invert_yaxis()
    ax.set_xlim(0, max(left.max() * 1.2, 1e-9) if len(left) else 1.0)
    ax.set_xlabel("core area estimate (mm²)")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncol=min(4, len(cats)))
    set_title(fig, title or "Core area by component\naccelsim.hw.area: cells and macros x layout "
                            "overhead (pads not included)")
    data = data.reset_index().rename(columns={"index": "design"})
    data["total"] = left
    return PlotResult(fig, data, {c: "mm2" for c in [*cats, "total"]})


def designs_area(hw_paths: list[str], nodes: list[int] | None = None
                 ) -> list[tuple[str, AreaBreakdown, set[str], set[str]]]:
    """``area_table`` entries of hardware files, at their own node or at each of ``nodes``."""
    from accelsim.hw.area import area_of
    from accelsim.hw.hierarchy import levels_of
    from accelsim.hw.load import load_hw

    out = []
    for path in hw_paths:
        for node in (nodes or [None]):
            hw = load_hw(path, {"technology.node_nm": node} if node is not None else None)
            levels = levels_of(hw)
            area = area_of(hw)
            label = hw.name + (f" @ {area.node_nm} nm" if nodes else "")
            out.append((label, area, {lv.name for lv in levels if lv.instances == "one"},
                        {lv.name for lv in levels if lv.instances == "per_pe"}))
    return out
