"""Decode speed-up against activation sparsity: TEAL thresholds -> decode trace -> simulator.

For each target sparsity ``s``: calibrate TEAL thresholds on sample text, capture
``prompts`` prefill + ``decode_tokens`` decode steps with the thresholds applied, and
simulate the decode steps on a design and its dense twin (:mod:`accelsim.sim.decode`).
The ideal speed-up of a design bound by weight traffic is ``1 / (1 - s * f)`` with ``f``
the share of the dense per-token DRAM bytes that are weights of sparsified layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from accelsim.sim import headline
from accelsim.sim.decode import simulate_phases
from accelsim.sparsify.common import perplexity, sparsified_layers
from accelsim.sparsify.teal import ThresholdHooks, calibrate_thresholds
from accelsim.trace.capture import CaptureOptions
from accelsim.trace.llm import capture_decoder


@dataclass(frozen=True)
class DecodePoint:
    """One target sparsity's per-token decode figures on a design and its dense twin."""

    target: float
    reached: float            # zero share of the sparsified layers' inputs in the decode steps
    f: float                  # dense per-token DRAM share of sparsified weights
    speedup: float
    energy_saving: float
    dram_ratio: float
    bound: float              # 1 / (1 - reached * f)
    dram_bound: bool          # DRAM binds most of every decode step's cycles (:func:`dram_binds`)
    latency_s: float
    energy_uj: float
    dram_bytes: float
    dense_latency_s: float
    dense_energy_uj: float
    dense_dram_bytes: float
    perplexity: float | None
    row_hit_rate: float | None = None        # decode DRAM bursts that hit an open row (access stream)
    dense_row_hit_rate: float | None = None  # the same on the dense twin


def _base(name: str) -> str:
    return name.split("/", 1)[1] if "/" in name else name


def row_hit_rate(rows: list[dict]) -> float | None:
    """Row-buffer hit rate of the decode steps' DRAM streams, weighted by each layer's stream
    bytes; None when no layer was timed by its access stream (``dram.access_stream`` off)."""
    hits = total = 0.0
    for r in rows:
        if r["phase"] != "decode":
            continue
        layers = r["layers"]
        if "dram_row_hit_rate" not in layers or "dram_stream_bytes" not in layers:
            continue
        size = layers["dram_stream_bytes"].astype(float).fillna(0.0)
        hits += float((layers["dram_row_hit_rate"].astype(float).fillna(0.0) * size).sum())
        total += float(size.sum())
    return hits / total if total else None


def dram_binds(step: dict) -> bool:
    """Whether DRAM is the bottleneck of most of a step's cycles: the layers whose
    ``bottleneck`` is DRAM (not compute, not an on-chip port) hold over half its cycles."""
    layers = step["layers"]
    cycles = layers["cycles"].astype(float)
    total = float(cycles.sum())
    return total > 0 and float(cycles[layers["bottleneck"] == "DRAM"].sum()) > 0.5 * total


def _decode_totals(rows: list[dict]) -> dict:
    dec = [r for r in rows if r["phase"] == "decode"]
    n = len(dec)
    return {k: sum(r[k] for r in dec) / n for k in ("latency_s", "energy_uj", "dram_bytes",
                                                   "cycles", "compute_cycles")}


def capture_point(model, prompts: torch.Tensor, decode_tokens: int, target: float,
                  calib_ids: torch.Tensor, eval_ids: torch.Tensor | None = None,
                  length: int = 64) -> dict:
    """Calibrate TEAL thresholds to ``target`` and capture a decode trace with them applied."""
    layers = sparsified_layers(model)
    names = {n for n, _ in layers}
    thresholds = calibrate_thresholds(model, calib_ids, target, length)
    with ThresholdHooks(model, thresholds, layers=layers):
        trace = capture_decoder(model, prompts, decode_tokens, CaptureOptions())
        ppl = perplexity(model, eval_ids, length) if eval_ids is not None else None
    zeros = [1.0 - float(layer.stats["act_density"]) for layer in trace.layers
             if layer.stats.get("phase") == "decode" and _base(layer.name) in names]
    return {"target": float(target), "items": trace.layer_traces(), "names": names,
            "reached": sum(zeros) / len(zeros) if zeros else 0.0, "perplexity": ppl,
            "trace": trace}


def simulate_point(captured: dict, hw) -> DecodePoint:
    """Per-token decode figures of a :func:`capture_point` result on ``hw`` and its dense twin."""
    items, names = captured["items"], captured["names"]
    sparse_rows = simulate_phases(items, hw)
    dense_rows = simulate_phases(items, hw.dense_twin())
    sp, dn = _decode_totals(sparse_rows), _decode_totals(dense_rows)
    dense_decode = [r for r in dense_rows if r["phase"] == "decode"]
    weights_sparsified = sum(float(r["layers"].loc[r["layers"]["layer"].map(_base).isin(names),
                                                   "dram_weight_read_bytes"].sum())
                             for r in dense_decode)
    total = sum(r["dram_bytes"] for r in dense_decode)
    f = weights_sparsified / total if total else 0.0
    reached = captured["reached"]
    dram_bound = all(dram_binds(r) for r in sparse_rows if r["phase"] == "decode")
    return DecodePoint(
        target=captured["target"], reached=reached, f=f,
        speedup=headline.speedup(sp["latency_s"], dn["latency_s"]),
        energy_saving=headline.saving(sp["energy_uj"], dn["energy_uj"]),
        dram_ratio=headline.share(sp["dram_bytes"], dn["dram_bytes"]),
        bound=1.0 / (1.0 - reached * f), dram_bound=dram_bound,
        latency_s=sp["latency_s"], energy_uj=sp["energy_uj"], dram_bytes=sp["dram_bytes"],
        dense_latency_s=dn["latency_s"], dense_energy_uj=dn["energy_uj"],
        dense_dram_bytes=dn["dram_bytes"], perplexity=captured["perplexity"],
        row_hit_rate=row_hit_rate(sparse_rows), dense_row_hit_rate=row_hit_rate(dense_rows))
