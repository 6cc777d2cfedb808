"""Per-phase simulation of a decoder trace: prefill, and every decode step (one token).

A trace from :func:`accelsim.trace.llm.capture_decoder` tags each layer with its phase
and step. :func:`simulate_phases` simulates each step's layers as one network pass
(``hw.residency`` decides what stays on chip) and reports its latency, energy and DRAM
bytes; :func:`decode_per_token` averages the decode steps (figures per generated
token) and sets them against the same hardware's dense twin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.errors import TraceError
from accelsim.sim.simulate import simulate
from accelsim.trace.llm import layer_phase

STEP_FIGURES = ("latency_s", "energy_uj", "dram_bytes", "dram_weight_read_bytes", "cycles",
                "compute_cycles", "macs_issued", "macs_dense")


def phase_groups(layers) -> dict[tuple[str, int], list]:
    """Layers grouped by (phase, step) in execution order; untagged traces are ("all", 0)."""
    groups: dict[tuple[str, int], list] = {}
    for layer in layers:
        phase, step = layer_phase(layer)
        groups.setdefault((phase, 0 if step is None else step), []).append(layer)
    if not groups:
        raise TraceError("the trace has no layers to simulate")
    return groups


def simulate_phases(layers, hw, fidelity: str = "fast", samples: int | None = None) -> list[dict]:
    """One row per (phase, step): its figures per sample (``STEP_FIGURES``) and per-layer table."""
    rows = []
    for (phase, step), group in phase_groups(list(layers)).items():
        result = simulate(group, hw, fidelity=fidelity, samples=samples)
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
        "speedup": dense.latency_s / sparse.latency_s if sparse.latency_s else float("inf"),
        "energy_saving": 1.0 - sparse.energy_uj / dense.energy_uj if dense.energy_uj else 0.0,
        "dram_ratio": sparse.dram_bytes / dense.dram_bytes if dense.dram_bytes else 1.0,
    }
