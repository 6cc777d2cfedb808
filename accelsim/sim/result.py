"""Simulation results: the per-layer table, network totals, identity, saving and comparing.

The table is kept as the engine's rows (one dict per layer) and becomes a pandas DataFrame
on first use of :attr:`SimResult.layers`: the command line's ``simulate`` totals, prints and
saves a CSV without importing pandas (a quarter of a second of its start-up).
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from accelsim.atomic import atomic_write, check_output_path
from accelsim.errors import AccelsimError
from accelsim.sim.energy import COMPONENTS

#: Columns summed over layers into the network totals.
SUMMED = ("cycles", "compute_cycles", "stall_cycles", "glb_stall_cycles", "dram_stall_cycles",
          "fill_drain_cycles", "macs_dense", "macs_issued", "macs_skipped", "macs_gated",
          "macs_effectual", "energy_pj", *(f"energy_{c}_pj" for c in COMPONENTS),
          "spad_bits", "glb_bits", "noc_bit_hops", "dram_read_bytes", "dram_write_bytes",
          "dram_bytes", "dram_weight_read_bytes", "dram_act_read_bytes", "dram_compulsory_bytes", "dram_capacity_bytes", "psum_spill_bytes", "wakeups",
          # dram.device designs (accelsim.sim.dram_stream)
          "dram_cycles", "dram_stream_bytes",
          *(f"energy_dram_{a}_pj" for a in ("activate", "precharge", "read", "write", "refresh",
                                             "background", "io")))
#: Identity columns added to a saved table.
IDENTITY = ("hw_name", "hw_hash", "trace_hash", "fidelity")


class SimResult:
    """Result of :func:`accelsim.sim.simulate`.

    ``layers``: one row per layer, a pandas DataFrame (see ``docs/simulator.md`` for every
    column); ``rows``: the same as a list of dicts; ``totals``: network figures (sums,
    peaks, latency); ``meta``: hardware and trace identity, fidelity and sample count.
    Give either ``layers`` (a DataFrame) or ``rows``.
    """

    def __init__(self, layers=None, totals: dict | None = None, meta: dict | None = None,
                 rows: list[dict] | None = None):
        if (layers is None) == (rows is None):
            raise ValueError("SimResult: give either layers (a DataFrame) or rows")
        self._frame = layers
        self._rows = None if rows is None else list(rows)
        self.totals: dict = {} if totals is None else totals
        self.meta: dict = {} if meta is None else meta

    @property
    def layers(self):
        """The per-layer table (a pandas DataFrame, built from the rows on first use)."""
        if self._frame is None:
            import pandas as pd

            self._frame = pd.DataFrame(self._rows)
            self._rows = None   # the frame is the table from now on (callers may edit it)
        return self._frame

    @layers.setter
    def layers(self, frame) -> None:
        self._frame, self._rows = frame, None

    @property
    def rows(self) -> list[dict]:
        """The per-layer table as one dict per layer (in column order)."""
        if self._rows is not None:
            return self._rows
        return self._frame.to_dict(orient="records")

    def __repr__(self) -> str:
        return (f"SimResult({len(self.rows)} layers, hw={self.meta.get('hw_name')!r}, "
                f"fidelity={self.meta.get('fidelity')!r})")

    def table(self, identity: bool = True):
        """The per-layer table (DataFrame), with the identity columns first when ``identity``."""
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
        side = path.with_name(path.name + ".json")
        check_output_path(path)   # both refused before either is written
        check_output_path(side, "output's sidecar")
        if suffix == ".parquet":
            _check_parquet(path)
            frame = self.table(identity=True)
            _atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
        elif self._frame is None:   # rows only: written as pandas' to_csv writes them
            identity = {key: self.meta.get(key) for key in IDENTITY}
            rows = [{**identity, **row} for row in self._rows]
            _atomic(path, lambda tmp: _write_csv_file(tmp, rows))
        else:
            frame = self.table(identity=True)
            _atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
        text = json.dumps({"meta": self.meta, "totals": self.totals}, indent=2, default=_plain)
        _atomic(side, lambda tmp: Path(tmp).write_text(text + "\n"))
        return path


def write_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """``pd.DataFrame(rows).to_csv(path, index=False)`` without pandas: columns in order of
    first appearance, floats in shortest round-trip form, NaN and None as empty fields.
    Written atomically (an existing ``path`` must be a regular file)."""
    atomic_write(path, lambda tmp: _write_csv_file(tmp, rows))


def _write_csv_file(path: str | os.PathLike, rows: list[dict]) -> None:
    columns: dict = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, None)
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(list(columns))
        for row in rows:
            out.writerow([_csv_field(row.get(key)) for key in columns])


def _csv_field(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def twin_path(path: str | os.PathLike) -> Path:
    """Where ``simulate --baseline dense -o PATH`` saves the dense twin's table:
    ``results.csv`` -> ``results.dense_twin.csv`` (same folder, same format)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.dense_twin{path.suffix}")


def totals_of(layers, meta: dict) -> dict:
    """Network totals of a per-layer table: a DataFrame or a list of row dicts."""
    rows = layers if isinstance(layers, list) else layers.to_dict(orient="records")
    keys = set(rows[0]) if rows else set()

    def column(key: str) -> np.ndarray:
        return np.array([row[key] for row in rows], dtype=np.float64)

    totals: dict = {key: float(column(key).sum()) for key in SUMMED if key in keys}
    if "dram_row_hit_rate" in keys:    # weighted by the bytes each layer's stream moved
        moved = np.array([row.get("dram_stream_bytes", 0.0) for row in rows], dtype=np.float64)
        hits = np.array([row.get("dram_row_hit_rate", 0.0) for row in rows], dtype=np.float64)
        totals["dram_row_hit_rate"] = float((hits * moved).sum() / moved.sum()) if moved.sum() else 0.0
    pes_lanes = meta.get("pes", 1) * meta.get("macs_per_pe", 1)
    cycles = totals.get("cycles", 0.0)
    totals["utilization"] = totals.get("macs_issued", 0.0) / (pes_lanes * cycles) if cycles else 0.0
    mean_sum = float(column("busy_mean_sum").sum()) if "busy_mean_sum" in keys else 0.0
    totals["load_imbalance"] = (float(column("busy_max_sum").sum()) / mean_sum) if mean_sum else 1.0
    clock_mhz = meta.get("clock_mhz")
    if clock_mhz:
        totals["latency_s"] = cycles / (clock_mhz * 1e6)
    totals["energy_uj"] = totals.get("energy_pj", 0.0) * 1e-6
    totals["peak_live_bytes"] = float(column("live_bytes").max()) if rows else 0.0
    totals["peak_onchip_bytes"] = float(column("onchip_peak_bytes").max()) if rows else 0.0
    totals["peak_offchip_bytes"] = float(column("offchip_peak_bytes").max()) if rows else 0.0
    totals["spilled_layers"] = [str(row["layer"]) for row in rows if row["spill"]]
    totals["layers"] = int(len(rows))
    return totals


def compare(result: SimResult, baseline: SimResult):
    """Per-layer savings of ``result`` over ``baseline`` (same layers, e.g. the dense twin).

    ``speedup`` = baseline cycles / cycles; ``energy_saving`` and ``dram_saving`` are
    fractions, ``1 - value / baseline value`` (:mod:`accelsim.sim.headline`, which also gives
    the network figures: ``headline_figures(result, baseline)``). ``simulate --baseline dense
    -o`` saves these same columns.
    """
    import pandas as pd

    from accelsim.sim.headline import saving, speedup

    a = result.layers.set_index("layer")
    b = baseline.layers.set_index("layer")
    if list(a.index) != list(b.index):
        raise AccelsimError("compare: the two results do not hold the same layers")
    out = pd.DataFrame(index=a.index)
    out["cycles"] = a["cycles"]
    out["baseline_cycles"] = b["cycles"]
    out["speedup"] = speedup(a["cycles"].to_numpy(), b["cycles"].to_numpy())
    out["energy_pj"] = a["energy_pj"]
    out["baseline_energy_pj"] = b["energy_pj"]
    out["energy_saving"] = saving(a["energy_pj"].to_numpy(), b["energy_pj"].to_numpy())
    out["dram_saving"] = saving(a["dram_bytes"].to_numpy(), b["dram_bytes"].to_numpy())
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
