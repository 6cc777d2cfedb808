"""SCALE-Sim's side of the comparison: run it live, or find a recorded run, per layer.

A *run* is the JSON ``run_scalesim.py`` writes (schema ``accelsim.scalesim_run/1``, described in
``docs/scalesim_conventions.md`` section 7). Figures are tagged with where they came from:

- ``live``: SCALE-Sim ran in this invocation (``run_scalesim.py`` in SCALE-Sim's own venv,
  niced, one layer per process);
- ``recorded``: a JSON written by an earlier run (``tests/fixtures/scalesim/`` or the results
  directory); its wall times were measured when it was recorded, on this kind of machine;
- ``formula``: ``formulas.py``'s closed form, **not SCALE-Sim itself**, used only with
  ``--no-live`` where no run exists (formulas.py matches all 141 recorded layers exactly).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUN_SCALESIM = HERE / "run_scalesim.py"
CONFIGS = HERE / "configs"
FIXTURES = ROOT / "tests" / "fixtures" / "scalesim"
RESULTS = HERE / "results"
SCHEMA = "accelsim.scalesim_run/1"

sys.path.insert(0, str(HERE))
import formulas  # noqa: E402
import make_configs  # noqa: E402


class CompareError(Exception):
    """A comparison cannot run (SCALE-Sim missing or failing, bad argument)."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One (topology, array, dataflow[, N:M]) combination."""

    topology: Path
    rows: int
    cols: int
    dataflow: str                      # os | ws | is
    nm: tuple[int, int] | None = None  # SCALE-Sim sparse mode with this ratio on every layer
    representation: str = "ellpack_block"

    @property
    def network(self) -> str:
        return self.topology.stem

    @property
    def label(self) -> str:
        nm = f"_{self.nm[0]}of{self.nm[1]}_{self.representation}" if self.nm else ""
        return f"{self.network}{nm}_{self.dataflow}_{self.rows}x{self.cols}"


@dataclasses.dataclass
class ScaleSimLayer:
    """SCALE-Sim's figures for one layer and their source."""

    name: str
    total_cycles: int          # SCALE-Sim "Total Cycles" (0-based index of the last cycle)
    stall_cycles: int
    wall_s: float | None       # SCALE-Sim construction + run of this layer (None for formulas)
    source: str                # live | recorded | formula
    origin: str                # file it came from, or "formulas.py"


@dataclasses.dataclass
class ScaleSimRun:
    """The layers of a case that SCALE-Sim figures exist for, with whole-run wall times."""

    layers: dict[str, ScaleSimLayer]
    wall_s: float              # SCALE-Sim runs behind the timed layers, incl. process starts
    layer_wall_s: float        # sum of SCALE-Sim's per-layer work for the timed layers

    @property
    def sources(self) -> set[str]:
        return {layer.source for layer in self.layers.values()}

    @property
    def timed(self) -> list[str]:
        """Layers SCALE-Sim actually ran (live or recorded), in insertion order."""
        return [name for name, layer in self.layers.items() if layer.source != "formula"]


def scalesim_python() -> Path:
    """SCALE-Sim's interpreter (``$SCALESIM_VENV/bin/python``, default /work/venvs/scalesim)."""
    return Path(os.environ.get("SCALESIM_VENV", "/work/venvs/scalesim")) / "bin" / "python"


def scalesim_available() -> bool:
    return scalesim_python().is_file()


def config_for(case: Case, tmp: Path) -> Path:
    """The shipped config for ``case``, or one written into ``tmp`` by make_configs' rules."""
    rep = case.representation if case.nm else None
    name = make_configs.config_name(case.rows, case.cols, case.dataflow, rep)
    path = CONFIGS / name
    if not path.is_file():
        path = tmp / name
        path.write_text(make_configs.config_text(case.rows, case.cols, case.dataflow, rep))
    return path


def run_live(case: Case, out: Path, layers: list[str] | None = None, jobs: int = 1,
             niceness: int = 10) -> dict:
    """Run SCALE-Sim on ``case`` now (``run_scalesim.py``), write its JSON to ``out``, return it."""
    python = scalesim_python()
    if not python.is_file():
        raise CompareError(f"SCALE-Sim is not installed ({python} missing): run "
                           "benchmarks/vs_scalesim/install_scalesim.sh, or pass "
                           "--scalesim-from-fixtures")
    with tempfile.TemporaryDirectory(prefix="vs_scalesim_cfg_") as tmp:
        config = config_for(case, Path(tmp))
        cmd = [str(python), str(RUN_SCALESIM), "--topology", str(case.topology),
               "--config", str(config), "--out", str(out), "--jobs", str(jobs)]
        if niceness:
            cmd = ["nice", "-n", str(niceness), *cmd]
        if layers:
            cmd += ["--layers", ",".join(layers)]
        if case.nm:
            cmd += ["--sparsity", f"{case.nm[0]}:{case.nm[1]}"]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
    if proc.returncode != 0 or not out.is_file():
        raise CompareError(f"SCALE-Sim failed on {case.label} (exit {proc.returncode}); "
                           f"command: {' '.join(cmd)}")
    return json.loads(out.read_text())


def _matches(doc: dict, case: Case) -> bool:
    if doc.get("schema") != SCHEMA or doc.get("topology") != case.topology.name:
        return False
    if (doc.get("rows"), doc.get("cols"), doc.get("dataflow")) != (case.rows, case.cols,
                                                                   case.dataflow):
        return False
    if bool(doc.get("sparsity_support")) != bool(case.nm):
        return False
    if case.nm:
        if doc.get("optimized_mapping") or doc.get("sparse_representation") != case.representation:
            return False
        ratio = f"{case.nm[0]}:{case.nm[1]}"
        if any(rec.get("sparsity_ratio") != ratio for rec in doc["layers"]):
            return False
    return True


def recorded_runs(case: Case, dirs: list[Path]) -> list[tuple[Path, dict]]:
    """Recorded runs of ``case`` in ``dirs``, the ones covering most layers first."""
    found = []
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.json")):
            try:
                doc = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(doc, dict) and _matches(doc, case):
                found.append((path, doc))
    found.sort(key=lambda item: -len(item[1]["layers"]))
    return found


def _layers_of(doc: dict, source: str, origin: str) -> dict[str, ScaleSimLayer]:
    return {rec["name"]: ScaleSimLayer(rec["name"], int(rec["total_cycles"]),
                                       int(rec["stall_cycles"]), rec.get("wall_s"), source, origin)
            for rec in doc["layers"]}


def formula_layer(case: Case, name: str) -> ScaleSimLayer:
    """``formulas.py``'s figures for one layer of ``case`` (no wall time: SCALE-Sim did not run)."""
    for layer in formulas.read_topology(case.topology):
        if layer.name == name:
            nm_layer = dataclasses.replace(layer, sparsity=case.nm) if case.nm else layer
            got = formulas.scalesim_cycles(nm_layer, case.rows, case.cols, case.dataflow,
                                           sparsity_support=bool(case.nm))
            return ScaleSimLayer(name, got.total_cycles, got.stall_cycles, None, "formula",
                                 "formulas.py")
    raise CompareError(f"layer {name!r} is not in {case.topology}")


def obtain(case: Case, names: list[str], use_recorded: bool, live: bool, recorded_dirs: list[Path],
           save_dir: Path | None, jobs: int = 1) -> ScaleSimRun:
    """SCALE-Sim's figures for the layers ``names`` of ``case``.

    With ``use_recorded``, layers found in recorded runs are taken from them; the others run
    live when ``live`` (saved to ``save_dir`` for reuse), or come from ``formulas.py`` otherwise.
    """
    layers: dict[str, ScaleSimLayer] = {}
    wall = layer_wall = 0.0
    if use_recorded:
        for path, doc in recorded_runs(case, recorded_dirs):
            new = {k: v for k, v in _layers_of(doc, "recorded", str(path.relative_to(ROOT)
                                                                    if path.is_relative_to(ROOT)
                                                                    else path)).items()
                   if k in names and k not in layers}
            if not new:
                continue
            layers.update(new)
            if len(new) == len(doc["layers"]):
                wall += doc["wall_s"]
                layer_wall += doc["layer_wall_s_sum"]
            else:  # only part of this run is used: count its per-layer work (no process starts)
                part = sum(layer.wall_s or 0.0 for layer in new.values())
                wall += part
                layer_wall += part
    missing = [n for n in names if n not in layers]
    if missing and live:
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            out = save_dir / f"{case.label}.json"
        else:
            out = Path(tempfile.mkdtemp(prefix="vs_scalesim_")) / f"{case.label}.json"
        doc = run_live(case, out, None if len(missing) == len(names) else missing, jobs)
        origin = str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)
        layers.update(_layers_of(doc, "live", origin))
        wall += doc["wall_s"]
        layer_wall += doc["layer_wall_s_sum"]
        missing = [n for n in names if n not in layers]
    for name in missing:
        layers[name] = formula_layer(case, name)
    return ScaleSimRun({name: layers[name] for name in names}, wall, layer_wall)
