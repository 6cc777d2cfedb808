"""Shared plotting helpers: headless figures, unit scaling, layer axes, atomic saving.

Figures are built with :class:`matplotlib.figure.Figure` directly (never ``pyplot``),
so nothing depends on a display, no global figure state leaks between calls, and the
Agg/SVG/PDF canvases are picked by ``savefig`` from the file extension.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from accelsim.errors import AccelsimError
from accelsim.atomic import atomic_write

FORMATS = ("png", "svg", "pdf")
ENERGY_UNITS = (("pJ", 1.0), ("nJ", 1e-3), ("µJ", 1e-6), ("mJ", 1e-9), ("J", 1e-12))
CYCLE_UNITS = (("cycles", 1.0), ("kcycles", 1e-3), ("Mcycles", 1e-6), ("Gcycles", 1e-9))
BYTE_UNITS = (("B", 1.0), ("KiB", 1 / 1024), ("MiB", 1 / 1024 ** 2), ("GiB", 1 / 1024 ** 3))
# Seconds to display units, smallest unit first (pick_unit takes the last one still >= 1).
TIME_UNITS = (("ns", 1e9), ("µs", 1e6), ("ms", 1e3), ("s", 1.0))
_COMPONENT = re.compile(r"^energy_(?P<name>.+)_pj$")
# Stacking order for the usual components; others follow alphabetically.
COMPONENT_ORDER = ("mac", "spad", "noc", "glb", "dram", "leakage", "clock", "wakeup")


@dataclass
class PlotResult:
    """A figure and exactly the numbers drawn on it (``units``: column -> unit label)."""

    figure: Figure
    data: pd.DataFrame
    units: dict = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> Path:
        return save_figure(self.figure, path)


@dataclass
class PlotContext:
    """What a plot is about, for its title: the design, the trace and the unit basis.

    Simulated figures are per inference: the mean over ``samples`` traced inputs.
    ``clock_mhz`` lets latency be drawn in time units.
    """

    design: str | None = None
    trace: str | None = None
    samples: int | None = None
    clock_mhz: float | None = None

    def subtitle(self) -> str:
        """``design on trace · per inference (mean of N samples)``, leaving out what is unknown."""
        subject = " on ".join(str(x) for x in (self.design, self.trace) if x)
        basis = "per inference" + (f" (mean of {self.samples:,} samples)" if self.samples else "")
        return " · ".join(part for part in (subject, basis) if part)

    @classmethod
    def of_table(cls, table: pd.DataFrame | None, **given) -> "PlotContext":
        """Fill what ``given`` leaves out from a results table's ``hw_name`` and ``samples``."""
        found: dict = {}
        if table is not None and len(table):
            if "hw_name" in table and table["hw_name"].notna().any():
                found["design"] = str(table["hw_name"].dropna().iloc[0])
            if "samples" in table and table["samples"].notna().any():
                found["samples"] = int(table["samples"].max())
        found.update({k: v for k, v in given.items() if v is not None})
        return cls(**found)


def titled(what: str, context: PlotContext | None) -> str:
    """A two-line title: what is drawn, then the design, trace and unit basis."""
    sub = context.subtitle() if context is not None else "per inference"
    return f"{what}\n{sub}" if sub else what


def set_title(figure: Figure, text: str) -> None:
    """The figure's title (above the legend too, so a long second line is never clipped)."""
    figure.suptitle(text, fontsize=11)


def title_of(figure: Figure) -> str:
    """The title :func:`set_title` gave ``figure`` (for tests and reports)."""
    sup = getattr(figure, "_suptitle", None)
    return sup.get_text() if sup is not None else ""


def pick_unit(values, units: tuple[tuple[str, float], ...]) -> tuple[str, float]:
    """The largest unit in which the biggest |value| is still >= 1."""
    arr = np.abs(np.asarray(values, dtype=np.float64))
    arr = arr[np.isfinite(arr)]
    peak = float(arr.max()) if arr.size else 0.0
    chosen = units[0]
    for unit in units:
        if peak * unit[1] >= 1.0:
            chosen = unit
    return chosen


def new_figure(n_layers: int = 0, height: float = 4.5, rows: int = 1) -> Figure:
    """A figure wide enough for ``n_layers`` labelled bars."""
    width = max(8.0, min(28.0, 1.6 + 0.42 * n_layers))
    return Figure(figsize=(width, height * rows), layout="constrained")


def label_layers(ax, names: list[str]) -> None:
    """Readable layer names under bars: rotated when they would collide, smaller when many."""
    positions = np.arange(len(names))
    ax.set_xticks(positions)
    longest = max((len(n) for n in names), default=0)
    size = 9 if len(names) <= 24 else 7
    rotate = len(names) > 6 or longest > 8
    ax.set_xticklabels(names, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                       rotation_mode="anchor", fontsize=size)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xlabel("layer")


def component_columns(table: pd.DataFrame) -> list[str]:
    """The ``energy_<component>_pj`` columns of a per-layer table, in stacking order; a
    breakdown of a listed component (``energy_dram_activate_pj`` under ``energy_dram_pj``) is
    not a component of its own (stacking it would count that energy twice)."""
    from accelsim.sim.energy import energy_parts

    found = {name: f"energy_{name}_pj" for name in energy_parts(dict.fromkeys(map(str, table.columns)))}
    ordered = [found[n] for n in COMPONENT_ORDER if n in found]
    return ordered + [found[n] for n in sorted(found) if n not in COMPONENT_ORDER]


def component_name(column: str) -> str:
    m = _COMPONENT.match(column)
    return m["name"] if m else column


def require_columns(table: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise AccelsimError(f"{what}: the table lacks column(s) {', '.join(missing)}; it has "
                            f"{', '.join(map(str, table.columns))}")


def check_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise AccelsimError(f"{path}: unsupported image format {suffix or '(none)'!r}; use a "
                            f"file name ending in .png, .svg or .pdf")
    return suffix


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Save ``figure`` atomically; the format follows the extension (png, svg, pdf)."""
    fmt = check_format(path)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format=fmt, dpi=dpi))


def figure_bytes(figure: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """The encoded image (for embedding in a report)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()
