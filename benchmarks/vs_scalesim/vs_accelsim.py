"""accelsim's side of the SCALE-Sim comparison: dense hardware, statistical traces, N:M masks.

Everything SCALE-Sim is compared with is built here, so the comparison script, the N:M script
and the CI test (``tests/test_validation_scalesim.py``) run exactly the same accelsim setup:

- :func:`dense_hw`: a ``rows`` x ``cols`` array with every sparsity feature off, dense storage,
  ideal DRAM, an unbounded global-buffer port and a buffer large enough that partial sums never
  split the stream (SCALE-Sim's CALC mode never stalls and never runs out of partial-sum space);
- :func:`topology_layers`: a statistical trace of a SCALE-Sim topology CSV at density 1.0;
- :func:`run_accelsim`: simulate and time it (cold = first call in the process, warm = best of
  ``repeats``);
- :func:`nm_weight_mask` / :func:`compacted_layer`: N:M-structured weight masks, and the dense
  layer SCALE-Sim actually simulates in its sparse mode (the window compressed to ``Wn'``).

accelsim reports the schedule length; SCALE-Sim reports the 0-based index of the last cycle, so
``accelsim cycles == SCALE-Sim Total Cycles + 1`` per layer (``SCALESIM_OFFSET``).
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from accelsim.hw import HardwareConfig, load_hw_dict
from accelsim.sim import simulate
from accelsim.trace import LayerGeometry, LayerTrace, statistical_from_topology

HERE = Path(__file__).resolve().parent
TOPOLOGIES = HERE / "topologies"
DATAFLOWS = {"os": "output_stationary", "ws": "weight_stationary", "is": "input_stationary"}
#: accelsim cycles minus SCALE-Sim's "Total Cycles" for one layer (schedule length vs last index).
SCALESIM_OFFSET = 1
#: Global buffer of 1 GiB: partial sums always fit, as in SCALE-Sim (see docs/simulator.md §2).
HUGE_BUFFER_KIB = 1 << 20


def dense_hw(rows: int, cols: int, dataflow: str, skip_zero_weights: bool = False,
             sync: str = "array") -> HardwareConfig:
    """The accelsim twin of a SCALE-Sim config (``dataflow`` is ``os``, ``ws`` or ``is``).

    ``skip_zero_weights`` switches on zero-weight skipping (the N:M comparison); everything
    else stays off.
    """
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow: expected one of {', '.join(DATAFLOWS)}, got {dataflow!r}")
    data = {
        "version": 1,
        "name": f"scalesim-twin-{dataflow}-{rows}x{cols}" + ("-skipw" if skip_zero_weights else ""),
        "description": "SCALE-Sim CALC-mode twin: no sparsity, ideal memory, unbounded port",
        "technology": {"clock_mhz": 1000},
        "precision": {"activation_bits": 8, "weight_bits": 8, "accumulator_bits": 32},
        "pe_array": {"rows": rows, "cols": cols, "dataflow": DATAFLOWS[dataflow], "sync": sync},
        "scratchpad": {"input_bytes": 16, "weight_bytes": 16, "psum_bytes": 4},
        "global_buffer": {"size_kib": HUGE_BUFFER_KIB, "words_per_cycle": None},
        "dram": {"ideal": True},
        "sparsity": {"skip_zero_activations": False, "skip_zero_weights": skip_zero_weights,
                     "gate_zero_operands": False},
    }
    return load_hw_dict(data, source=f"<vs_scalesim {dataflow} {rows}x{cols}>")


@dataclasses.dataclass(frozen=True)
class TopologyLayers:
    """The layers of a topology as accelsim traces them, plus notes on geometry differences."""

    layers: list
    notes: dict          # layer name -> why accelsim's geometry differs from SCALE-Sim's

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]


def topology_layers(topology: str | Path, density: float = 1.0, seed: int = 0) -> TopologyLayers:
    """A statistical trace of ``topology`` (a SCALE-Sim CSV) at ``density`` for both operands."""
    data = statistical_from_topology(topology, density, density, seed=seed)
    notes = {}
    for note in data.provenance.get("notes", []):
        # "layer 'name': SCALE-Sim rounds the output up ..." (accelsim.trace.topology)
        name = note.split("'")[1] if "'" in note else note
        notes[name] = note
    return TopologyLayers(data.layer_traces(), notes)


@dataclasses.dataclass
class AccelsimRun:
    """Per-layer cycles and wall times of one accelsim simulation."""

    layers: list[dict]   # name, cycles, compute_cycles, fill_drain_cycles, folds, macs_dense
    wall_cold_s: float   # first call (includes loading Numba's cached kernels in a fresh process)
    wall_s: float        # best of the repeats

    @property
    def total_cycles(self) -> int:
        return sum(row["compute_cycles"] for row in self.layers)


def run_accelsim(layers: list, hw: HardwareConfig, repeats: int = 3) -> AccelsimRun:
    """Simulate ``layers`` on ``hw`` (fast fidelity, one sample) and time it."""
    if repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, got {repeats}")
    times = []
    result = None
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        result = simulate(layers, hw, fidelity="fast", samples=1)
        times.append(time.perf_counter() - t0)
    keep = ("layer", "cycles", "compute_cycles", "fill_drain_cycles", "folds", "macs_dense",
            "macs_issued")
    rows = []
    for rec in result.layers[list(keep)].to_dict(orient="records"):
        row = {k: (int(v) if isinstance(v, (int, float, np.integer, np.floating))
                   and float(v).is_integer() else v) for k, v in rec.items()}
        row["name"] = row.pop("layer")
        rows.append(row)
    return AccelsimRun(rows, wall_cold_s=times[0], wall_s=min(times[1:]))


# ---- N:M structured weight sparsity ------------------------------------------------------------

def window_index(geometry: LayerGeometry) -> np.ndarray:
    """SCALE-Sim's window position of every weight, shape ``(C, R, S)``: ``(r*S + s)*C + c``."""
    c, r, s = np.meshgrid(np.arange(geometry.C), np.arange(geometry.R), np.arange(geometry.S),
                          indexing="ij")
    return (r * geometry.S + s) * geometry.C + c


def nm_weight_mask(geometry: LayerGeometry, n: int, m: int, pattern: str = "scalesim",
                   seed: int = 0) -> np.ndarray:
    """An N:M-structured weight mask of shape ``(K, C, R, S)`` along SCALE-Sim's window order.

    Blocks are ``m`` consecutive window positions (``c`` fastest, as NHWC N:M pruning groups
    input channels); each keeps ``n`` (a final partial block of ``r`` keeps ``min(r, n)``).
    ``pattern="scalesim"`` keeps the first ``n`` of every block in every filter (SCALE-Sim 3.0.0's
    fixed pattern, ``OptimizedMapping: false``); ``"random"`` draws the kept positions per filter
    and block (what magnitude N:M pruning produces).
    """
    if geometry.groups != 1:
        raise ValueError("nm_weight_mask: grouped layers are not supported")
    if not 1 <= n <= m:
        raise ValueError(f"N:M: expected 1 <= N <= M, got {n}:{m}")
    win = window_index(geometry)                       # (C, R, S)
    wn = geometry.C * geometry.R * geometry.S
    k = geometry.K
    if pattern == "scalesim":
        keep_w = (np.arange(wn) % m) < n               # (Wn,)
        keep = np.broadcast_to(keep_w, (k, wn))
    elif pattern == "random":
        rng = np.random.default_rng(seed)
        blocks = math.ceil(wn / m)
        scores = rng.random((k, blocks * m))
        scores[:, wn:] = np.inf                        # padding of the last block is never kept
        ranks = np.argsort(np.argsort(scores.reshape(k, blocks, m), axis=2), axis=2)
        keep = (ranks < n).reshape(k, blocks * m)[:, :wn]
    else:
        raise ValueError(f"pattern: expected 'scalesim' or 'random', got {pattern!r}")
    return np.asarray(keep)[:, win]                    # (K, C, R, S)


def nm_layer(layer: LayerTrace, n: int, m: int, pattern: str = "scalesim",
             seed: int = 0) -> LayerTrace:
    """``layer`` (dense activations) with an N:M-structured weight mask."""
    geo = layer.geometry
    weight = nm_weight_mask(geo, n, m, pattern, seed + layer.index)
    act = np.ones(geo.act_shape, dtype=bool)
    return LayerTrace.from_masks(layer.name, geo, weight, act, index=layer.index)


def effective_window(window: int, n: int, m: int) -> int:
    """Window rows SCALE-Sim keeps after N:M compression: ``n*floor(Wn/m) + min(Wn mod m, n)``."""
    full, rest = divmod(window, m)
    return full * n + min(rest, n)


def compacted_layer(layer: LayerTrace, n: int, m: int) -> LayerTrace:
    """The dense layer SCALE-Sim's sparse mode simulates: ``E x F`` pixels, window ``Wn'``.

    Written as a 1x1 convolution over ``Wn'`` channels of an ``E x F`` input, which lowers to
    the GEMM ``(E*F) x Wn'`` @ ``Wn' x K``.
    """
    geo = layer.geometry
    wn = effective_window(geo.C * geo.R * geo.S, n, m)
    compact = LayerGeometry(kind="conv2d", N=1, C=wn, H=geo.P, W=geo.Q, K=geo.K, R=1, S=1)
    weight = np.ones(compact.weight_shape, dtype=bool)
    act = np.ones(compact.act_shape, dtype=bool)
    return LayerTrace.from_masks(layer.name, compact, weight, act, index=layer.index)
