"""Simulation results: the per-layer table, network totals, identity, saving and comparing."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from accelsim.atomic import atomic_write
from accelsim.errors import AccelsimError
from accelsim.sim.energy import COMPONENTS

#: Columns summed over layers into the network totals.
SUMMED = ("cycles", "compute_cycles", "stall_cycles", "glb_stall_cycles", "dram_stall_cycles",
          "fill_drain_cycles", "macs_dense", "macs_issued", "macs_skipped", "macs_gated",
          "macs_effectual", "energy_pj", *(f"energy_{c}_pj" for c in COMPONENTS),
          "spad_bits", "glb_bits", "noc_bit_hops", "dram_read_bytes", "dram_write_bytes",
          "dram_bytes", "dram_weight_read_bytes", "dram_act_read_bytes", "dram_compulsory_bytes", "dram_capacity_bytes", "psum_spill_bytes", "wakeups")
#: Identity columns added to a saved table.
IDENTITY = ("hw_name", "hw_hash", "trace_hash", "fidelity")


@dataclass
class SimResult:
    """Result of :func:`accelsim.sim.simulate`.

    ``layers``: one row per layer (see ``docs/simulator.md`` for every column);
    ``totals``: network figures (sums, peaks, latency); ``meta``: hardware and trace
    identity, fidelity and sample count.
    """

    layers: pd.DataFrame
    totals: dict
    meta: dict = field(default_factory=dict)

    def table(self, identity: bool = True) -> pd.DataFrame:
        """The per-layer table, with the identity columns first when ``identity``."""
        frame = self.layers.copy()
        if identity:
            for i, key in enumerate(IDENTITY):
                frame.insert(i, key, self.meta.get(key))
        return frame

    def to_dict(self) -> dict:
        """JSON-ready ``{"meta", "totals", "layers"}``."""
        return {"meta": self.meta, "totals": self.totals,
                "layers": json.loads(self.layers.to_json(orient="records"))}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table (with identity columns) as ``.csv`` or ``.parquet``, atomically.

        A sidecar ``<path>.json`` holds ``meta`` and ``totals``. Returns the table's path.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise AccelsimError(f"output {str(path)!r}: expected a .csv or .parquet file name")
        frame = self.table(identity=True)
        if suffix == ".parquet":
            _check_parquet(path)
            _atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
        else:
            _atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
        side = path.with_name(path.name + ".json")
        text = json.dumps({"meta": self.meta, "totals": self.totals}, indent=2, default=_plain)
        _atomic(side, lambda tmp: Path(tmp).write_text(text + "\n"))
        return path


def twin_path(path: str | os.PathLike) -> Path:
    """Where ``simulate --baseline dense -o PATH`` saves the dense twin's table:
    ``results.csv`` -> ``results.dense_twin.csv`` (same folder, same format)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.dense_twin{path.suffix}")


def totals_of(layers: pd.DataFrame, meta: dict) -> dict:
    """Network totals of a per-layer table."""
    totals: dict = {key: float(layers[key].sum()) for key in SUMMED if key in layers}
    pes_lanes = meta.get("pes", 1) * meta.get("macs_per_pe", 1)
    cycles = totals.get("cycles", 0.0)
    totals["utilization"] = totals.get("macs_issued", 0.0) / (pes_lanes * cycles) if cycles else 0.0
    mean_sum = float(layers["busy_mean_sum"].sum()) if "busy_mean_sum" in layers else 0.0
    totals["load_imbalance"] = (float(layers["busy_max_sum"].sum()) / mean_sum) if mean_sum else 1.0
    clock_mhz = meta.get("clock_mhz")
    if clock_mhz:
        totals["latency_s"] = cycles / (clock_mhz * 1e6)
    totals["energy_uj"] = totals.get("energy_pj", 0.0) * 1e-6
    totals["peak_live_bytes"] = float(layers["live_bytes"].max()) if len(layers) else 0.0
    totals["peak_onchip_bytes"] = float(layers["onchip_peak_bytes"].max()) if len(layers) else 0.0
    totals["peak_offchip_bytes"] = float(layers["offchip_peak_bytes"].max()) if len(layers) else 0.0
    totals["spilled_layers"] = [str(n) for n in layers.loc[layers["spill"], "layer"]] \
        if len(layers) else []
    totals["layers"] = int(len(layers))
    return totals


def compare(result: SimResult, baseline: SimResult) -> pd.DataFrame:
    """Per-layer savings of ``result`` over ``baseline`` (same layers, e.g. the dense twin).

    ``speedup`` = baseline cycles / cycles; ``energy_saving`` and ``dram_saving`` are
    fractions, ``1 - value / baseline value`` (saved tables, e.g. ``simulate --baseline dense
    -o``, give them in percent as ``energy_saved_percent`` / ``dram_saved_percent``).
    """
    a = result.layers.set_index("layer")
    b = baseline.layers.set_index("layer")
    if list(a.index) != list(b.index):
        raise AccelsimError("compare: the two results do not hold the same layers")
    out = pd.DataFrame(index=a.index)
    out["cycles"] = a["cycles"]
    out["baseline_cycles"] = b["cycles"]
    out["speedup"] = b["cycles"] / a["cycles"].where(a["cycles"] > 0)
    out["energy_pj"] = a["energy_pj"]
    out["baseline_energy_pj"] = b["energy_pj"]
    out["energy_saving"] = 1.0 - a["energy_pj"] / b["energy_pj"].where(b["energy_pj"] > 0)
    out["dram_saving"] = 1.0 - a["dram_bytes"] / b["dram_bytes"].where(b["dram_bytes"] > 0)
    return out.reset_index()


def _check_parquet(path: Path) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        try:
            import fastparquet  # noqa: F401
        except ImportError:
            raise AccelsimError(
                f"output {str(path)!r}: writing Parquet needs pyarrow (pip install pyarrow); "
                "or save as .csv") from None


def _atomic(path: Path, write) -> None:
    atomic_write(path, write)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)
