"""Per-phase simulation of a decoder trace: prefill, and every decode step (one token).

A trace from :func:`accelsim.trace.llm.capture_decoder` tags each layer with its phase
and step. :func:`simulate_phases` simulates each step's layers as one network pass
(``hw.residency`` decides what stays on chip) and reports its latency, energy and DRAM
bytes; :func:`decode_per_token` averages the decode steps (figures per generated
token) and sets them against the same hardware's dense twin; :func:`phase_summary` gives
the prefill figures (per prompt) and the decode figures per token that ``accelsim simulate``
prints for such a trace. Savings and speed-ups are :mod:`accelsim.sim.headline`'s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import TraceError
from accelsim.sim import headline
from accelsim.sim.simulate import simulate
from accelsim.trace.phases import layer_phase

STEP_FIGURES = ("latency_s", "energy_uj", "dram_bytes", "dram_weight_read_bytes", "cycles",
                "compute_cycles", "macs_issued", "macs_dense", "energy_pj", "energy_dram_pj")


def phase_groups(layers) -> dict[tuple[str, int], list]:
    """Layers grouped by (phase, step) in execution order; untagged traces are ("all", 0)."""
    groups: dict[tuple[str, int], list] = {}
    for layer in layers:
        phase, step = layer_phase(layer)
        groups.setdefault((phase, 0 if step is None else step), []).append(layer)
    if not groups:
        raise TraceError("the trace has no layers to simulate")
    return groups


def has_phases(layers) -> bool:
    """Whether any layer carries a prefill/decode phase tag (a decoder capture)."""
    return any(layer_phase(layer)[0] != "all" for layer in layers)


def simulate_phases(layers, hw, fidelity: str = "fast", samples: int | None = None,
                    **options) -> list[dict]:
    """One row per (phase, step): its figures per sample (``STEP_FIGURES``) and per-layer table.

    ``options`` go to :func:`~accelsim.sim.simulate.simulate` (``threads``, ``batch``)."""
    rows = []
    for (phase, step), group in phase_groups(list(layers)).items():
        result = simulate(group, hw, fidelity=fidelity, samples=samples, **options)
        row = {"phase": phase, "step": step}
        for key in STEP_FIGURES:
            row[key] = float(result.totals.get(key, 0.0))
        row["layers"] = result.layers
        rows.append(row)
    return rows


@dataclass(frozen=True)
class DecodeFigures:
    """Per generated token, means over the decode steps (and over samples)."""

    latency_s: float
    energy_uj: float
    dram_bytes: float
    dram_weight_read_bytes: float
    steps: int

    @classmethod
    def of(cls, rows: list[dict]) -> "DecodeFigures":
        decode = [r for r in rows if r["phase"] == "decode"]
        if not decode:
            raise TraceError("the trace has no decode steps (capture with --decode-tokens N)")
        return cls(*(float(np.mean([r[k] for r in decode])) for k in
                     ("latency_s", "energy_uj", "dram_bytes", "dram_weight_read_bytes")),
                   steps=len(decode))


def decode_per_token(layers, hw, fidelity: str = "fast", samples: int | None = None) -> dict:
    """Decode figures per token on ``hw`` and on its dense twin, with the ratios."""
    layers = list(layers)
    sparse = DecodeFigures.of(simulate_phases(layers, hw, fidelity, samples))
    dense = DecodeFigures.of(simulate_phases(layers, hw.dense_twin(), fidelity, samples))
    return {
        "sparse": sparse, "dense": dense,
        "speedup": headline.speedup(sparse.latency_s, dense.latency_s),
        "energy_saving": headline.saving(sparse.energy_uj, dense.energy_uj),
        "dram_ratio": headline.share(sparse.dram_bytes, dense.dram_bytes),
    }


def phase_means(rows: list[dict], phase: str) -> dict | None:
    """``STEP_FIGURES`` of one phase's steps, means over the steps (per sample), and
    ``steps``; None when the phase has no step. Decode means are figures per token."""
    chosen = [r for r in rows if r["phase"] == phase]
    if not chosen:
        return None
    means = {k: float(np.mean([r[k] for r in chosen])) for k in STEP_FIGURES}
    means["steps"] = len(chosen)
    return means


def phase_summary(rows: list[dict], baseline_rows: list[dict] | None = None) -> dict:
    """``{"prefill": figures, "decode_per_token": figures}`` of :func:`simulate_phases` rows
    (a phase without steps is left out); with the dense twin's rows, each phase's figures also
    hold the headline figures against it (``speedup``, ``energy_saving``, ...) and the twin's
    own (``baseline``)."""
    summary = {}
    for phase, name in (("prefill", "prefill"), ("decode", "decode_per_token")):
        figures = phase_means(rows, phase)
        if figures is None:
            continue
        if baseline_rows is not None:
            base = phase_means(baseline_rows, phase)
            figures.update(headline.headline_figures(figures, base))
            figures["baseline"] = base
        else:
            figures.update(headline.headline_figures(figures))
        summary[name] = figures
    return summary
