"""The headline figures of a design against a baseline (its dense twin), defined once.

============================  ========================================  =====================
name (in data)                definition                                printed as
============================  ========================================  =====================
``energy_saving``             1 - energy / baseline energy (fraction)   ``energy saving 65.5%``
``speedup``                   baseline cycles / cycles (ratio)          ``speedup 2.60x``
``dram_saving``               1 - DRAM bytes / baseline DRAM bytes      ``DRAM traffic saving 12.0%``
``dram_share``                DRAM energy / energy (fraction)           ``DRAM 21.9% of energy``
``baseline_dram_share``       the same, of the baseline
============================  ========================================  =====================

A network's figures come from its network totals (``SimResult.totals``), which include what
no per-layer row holds: the ops between layers (vector-unit cycles and energy) and their DRAM
traffic. Every output that states one computes it here and prints it with :func:`percent` /
:func:`times`: ``accelsim simulate`` (terminal, ``--json``, the ``-o`` table and its
``FILE.json``), :func:`accelsim.sim.compare` (per layer) and :func:`headline_figures`
(network), the savings plots' titles, the HTML report, the demo summary, the co-design table
and the per-token decode figures (:mod:`accelsim.sim.decode`). Data (tables, JSON, the API)
keep fractions; only text shows percent. A baseline figure of zero (or less) gives NaN.
"""
from __future__ import annotations

import math

#: The headline names, in the order they are printed and stored.
NAMES = ("speedup", "energy_saving", "dram_saving", "dram_share", "baseline_dram_share")
#: Decimals of a printed percent (``percent``) and of a printed speed-up (``times``).
PERCENT_DECIMALS = 1
TIMES_DECIMALS = 2


def _divide(num, den):
    """``num / den``, NaN where ``den`` <= 0; scalars give a float, arrays and Series an array."""
    if _scalar(num) and _scalar(den):
        num, den = float(num), float(den)
        return num / den if den > 0 else math.nan
    import numpy as np

    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _scalar(value) -> bool:
    return not hasattr(value, "__len__") and getattr(value, "ndim", 0) == 0


def saving(value, baseline):
    """``1 - value / baseline``: the fraction of the baseline's amount saved (elementwise)."""
    return 1.0 - _divide(value, baseline)


def speedup(cycles, baseline_cycles):
    """``baseline_cycles / cycles`` (elementwise); any time unit will do, the same for both."""
    return _divide(baseline_cycles, cycles)


def share(part, whole):
    """``part / whole``: a fraction of the whole (elementwise)."""
    return _divide(part, whole)


def _totals(value) -> dict:
    """Network totals of a ``SimResult`` or a totals dict."""
    totals = getattr(value, "totals", value)
    if not isinstance(totals, dict):
        raise TypeError(f"expected a SimResult or a totals dict, got {type(value).__name__}")
    return totals


def _get(totals: dict, key: str) -> float:
    value = totals.get(key)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def headline_figures(result, baseline=None) -> dict:
    """The network headline figures of ``result`` (a ``SimResult`` or its totals), against
    ``baseline`` (its dense twin) when given: ``{name: value}`` for :data:`NAMES` (without
    the comparisons when there is no baseline)."""
    t = _totals(result)
    figures = {"dram_share": share(_get(t, "energy_dram_pj"), _get(t, "energy_pj"))}
    if baseline is None:
        return figures
    b = _totals(baseline)
    figures = {
        "speedup": speedup(_get(t, "cycles"), _get(b, "cycles")),
        "energy_saving": saving(_get(t, "energy_pj"), _get(b, "energy_pj")),
        "dram_saving": saving(_get(t, "dram_bytes"), _get(b, "dram_bytes")),
        **figures,
        "baseline_dram_share": share(_get(b, "energy_dram_pj"), _get(b, "energy_pj")),
    }
    return figures


def layer_sums(table) -> dict:
    """Totals-like sums of a per-layer table (DataFrame or row dicts), for saved tables whose
    network totals (``FILE.json``) are missing: they leave out the ops between layers."""
    rows = table if isinstance(table, list) else table.to_dict(orient="records")
    keys = ("cycles", "energy_pj", "energy_dram_pj", "dram_bytes")
    return {k: float(sum(float(r[k]) for r in rows)) for k in keys if rows and k in rows[0]}


# -- text ---------------------------------------------------------------------------------

def percent(fraction: float, decimals: int = PERCENT_DECIMALS) -> str:
    """A fraction as printed everywhere: ``0.6551`` -> ``65.5%`` (NaN -> ``n/a``)."""
    fraction = float(fraction)
    return "n/a" if math.isnan(fraction) else f"{100.0 * fraction:.{decimals}f}%"


def times(ratio: float, decimals: int = TIMES_DECIMALS) -> str:
    """A speed-up as printed everywhere: ``2.6`` -> ``2.60x`` (NaN -> ``n/a``)."""
    ratio = float(ratio)
    return "n/a" if math.isnan(ratio) else f"{ratio:.{decimals}f}x"


def energy_saving_text(figures: dict) -> str:
    """``energy saving 65.5%``: the one phrase the CLI, the plots and the report print."""
    return f"energy saving {percent(figures['energy_saving'])}"


def headline_text(figures: dict, baseline_name: str = "dense twin") -> str:
    """``speedup 2.60x, energy saving 65.5%, DRAM 21.9% of energy (dense twin 30.1%)``."""
    parts = []
    if "speedup" in figures:
        parts += [f"speedup {times(figures['speedup'])}", energy_saving_text(figures)]
    dram = f"DRAM {percent(figures['dram_share'])} of energy"
    if "baseline_dram_share" in figures:
        dram += f" ({baseline_name} {percent(figures['baseline_dram_share'])})"
    return ", ".join(parts + [dram])
