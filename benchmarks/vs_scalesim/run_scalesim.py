"""Run SCALE-Sim 3.x on a topology CSV, one layer per process, and write its per-layer report as JSON.

SCALE-Sim is driven through its Python API (``scalesim.scale_sim.scalesim`` with
``save_disk_space=True``, so no trace CSVs are written). Each layer runs in a fresh process (SCALE-Sim
keeps every demand matrix of a run in memory, and a process is the only way to give it back), in a
temporary directory that is removed afterwards.

Usage (run with SCALE-Sim's interpreter; if this one lacks ``scalesim`` the script re-executes
itself with ``$SCALESIM_VENV/bin/python``, default ``/work/venvs/scalesim``):

    /work/venvs/scalesim/bin/python benchmarks/vs_scalesim/run_scalesim.py \\
        --topology benchmarks/vs_scalesim/topologies/lenet5.csv \\
        --config benchmarks/vs_scalesim/configs/ws_8x8.cfg --out /tmp/lenet5_ws_8x8.json

``--sparsity N:M`` writes that ratio into every layer row (SCALE-Sim reads it only when the config
has ``SparsitySupport: true``). The JSON schema is described in ``docs/scalesim_conventions.md``.
"""
from __future__ import annotations

import argparse
import configparser
import json
import os
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SCHEMA = "accelsim.scalesim_run/1"
DEFAULT_VENV = "/work/venvs/scalesim"


class RunError(Exception):
    """Bad input to this script (missing file, unknown layer, malformed argument)."""


def _ensure_scalesim() -> None:
    """Re-execute under SCALE-Sim's venv when ``scalesim`` is not importable here."""
    try:
        import scalesim  # noqa: F401
        return
    except ImportError:
        pass
    venv = Path(os.environ.get("SCALESIM_VENV", DEFAULT_VENV))
    venv_python = venv / "bin" / "python"
    if venv_python.is_file() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(str(venv_python), [str(venv_python), *sys.argv])
    raise RunError(f"scalesim is not importable and {venv_python} does not exist; run "
                   "benchmarks/vs_scalesim/install_scalesim.sh first (or set SCALESIM_VENV)")


def _read_topology_rows(path: Path) -> tuple[str, list[list[str]]]:
    """Header and rows (cells without the trailing empty one) of a SCALE-Sim topology CSV."""
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    if not lines:
        raise RunError(f"{path}: empty topology file")
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if not line.endswith(","):
            raise RunError(f"{path}:{lineno}: SCALE-Sim rows must end with a comma")
        cells = [c.strip() for c in line.split(",")[:-1]]
        if len(cells) not in (8, 9):
            raise RunError(f"{path}:{lineno}: expected 8 columns (+ optional N:M), got {len(cells)}")
        if "DP" in cells[0]:
            raise RunError(f"{path}:{lineno}: layer {cells[0]!r}: names containing 'DP' make "
                           "SCALE-Sim split the layer per channel; rename it")
        rows.append(cells)
    return lines[0], rows


def _config_summary(path: Path) -> dict:
    """Array, dataflow, SRAM and sparsity settings of a SCALE-Sim config (checked up front)."""
    cp = configparser.ConfigParser()
    try:
        cp.read(path)
        return _summarise(cp)
    except (KeyError, ValueError, configparser.Error) as exc:
        raise RunError(f"{path}: malformed SCALE-Sim config ({type(exc).__name__}: {exc}); "
                       "regenerate it with make_configs.py") from None


def _summarise(cp: configparser.ConfigParser) -> dict:
    arch = cp["architecture_presets"]
    sparsity = cp["sparsity"] if cp.has_section("sparsity") else {}
    support = str(sparsity.get("SparsitySupport", "false")).lower() == "true"
    return {
        "rows": int(arch["ArrayHeight"]),
        "cols": int(arch["ArrayWidth"]),
        "dataflow": arch["Dataflow"].strip(),
        "sram_kb": {"ifmap": int(arch["IfmapSramSzkB"]), "filter": int(arch["FilterSramSzkB"]),
                    "ofmap": int(arch["OfmapSramSzkB"])},
        "bandwidth_mode": cp["run_presets"]["InterfaceBandwidth"].strip(),
        "sparsity_support": support,
        "sparse_representation": sparsity.get("SparseRep", "").strip() if support else None,
        "optimized_mapping": support
        and str(sparsity.get("OptimizedMapping", "false")).lower() == "true",
    }


def _simulate_layer(header: str, cells: list[str], config: str, sparsity: str | None) -> dict:
    """Child process: run one layer through SCALE-Sim and return its report items."""
    import io
    import contextlib

    from scalesim.scale_sim import scalesim

    row = list(cells[:8]) + ([sparsity] if sparsity else cells[8:9])
    with tempfile.TemporaryDirectory(prefix="scalesim_layer_") as tmp:
        topo = Path(tmp) / "layer.csv"
        topo.write_text(header + "\n" + ", ".join(row) + ",\n")
        layout = Path(tmp) / "layout.csv"  # required by SCALE-Sim even with custom layouts off
        layout.write_text("Layer name,\n")
        t0 = time.perf_counter()
        noise = io.StringIO()
        with contextlib.redirect_stdout(noise):
            sim = scalesim(save_disk_space=True, verbose=False, config=config,
                           topology=str(topo), layout=str(layout))
            sim.run_scale(top_path=str(Path(tmp) / "out"))
        wall = time.perf_counter() - t0
        layer = sim.runner.single_layer_sim_object_list[0]
        comp = [_plain(x) for x in layer.get_compute_report_items()]
        bw = [_plain(x) for x in layer.get_bandwidth_report_items()]
        det = [_plain(x) for x in layer.get_detail_report_items()]
        sparse = ([_plain(x) for x in layer.get_sparse_report_items()]
                  if sim.config.sparsity_support else None)
        cs = layer.compute_system
        topo_obj = sim.topo
        ofmap_h, ofmap_w = topo_obj.get_layer_ofmap_dims(0)
        demand_lines = int(layer.memory_system.ofmap_trace_matrix.shape[0])

    if len(bw) == 7:  # sparse runs add the filter-metadata SRAM bandwidth
        bw_keys = ["ifmap_sram", "filter_sram", "filter_metadata_sram", "ofmap_sram",
                   "ifmap_dram", "filter_dram", "ofmap_dram"]
    else:
        bw_keys = ["ifmap_sram", "filter_sram", "ofmap_sram", "ifmap_dram", "filter_dram",
                   "ofmap_dram"]
    total_cycles, stall_cycles = int(comp[1]), int(comp[2])
    result = {
        "name": cells[0],
        "ifmap_h": int(cells[1]), "ifmap_w": int(cells[2]), "filt_h": int(cells[3]),
        "filt_w": int(cells[4]), "channels": int(cells[5]), "num_filt": int(cells[6]),
        "stride": int(cells[7]), "sparsity_ratio": row[8] if len(row) > 8 else "1:1",
        "ofmap_h": int(ofmap_h), "ofmap_w": int(ofmap_w),
        "macs": int(layer.num_compute),
        "total_cycles_incl_prefetch": int(comp[0]),
        "total_cycles": total_cycles,
        "compute_cycles": total_cycles - stall_cycles,
        "stall_cycles": stall_cycles,
        "overall_util_pct": comp[3],
        "mapping_efficiency_pct": comp[4],
        "compute_util_pct": comp[5],
        "mapping": {"sr": int(cs.Sr), "sc": int(cs.Sc), "t": int(cs.T),
                    "row_folds": int(getattr(cs, "row_fold_demand_matrices", cs.row_fold)),
                    "col_folds": int(cs.col_fold), "demand_lines": demand_lines},
        "sram": {"ifmap_start_cycle": det[0], "ifmap_stop_cycle": det[1], "ifmap_reads": det[2],
                 "filter_start_cycle": det[3], "filter_stop_cycle": det[4],
                 "filter_reads": det[5],
                 "ofmap_start_cycle": det[6], "ofmap_stop_cycle": det[7], "ofmap_writes": det[8]},
        "dram": {"ifmap_start_cycle": det[9], "ifmap_stop_cycle": det[10], "ifmap_reads": det[11],
                 "filter_start_cycle": det[12], "filter_stop_cycle": det[13],
                 "filter_reads": det[14],
                 "ofmap_start_cycle": det[15], "ofmap_stop_cycle": det[16],
                 "ofmap_writes": det[17]},
        "avg_bw_words_per_cycle": dict(zip(bw_keys, bw)),
        "sparse": None if sparse is None else {
            "representation": sim.config.sparsity_representation,
            "original_filter_storage": sparse[0], "new_filter_storage": sparse[1],
            "filter_metadata_storage": sparse[2], "avg_filter_metadata_sram_bw": sparse[3]},
        "wall_s": round(wall, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    return result


def _plain(x):
    """numpy scalar or Python number -> int when integral, else float."""
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


def run(topology: Path, config: Path, layers: list[str] | None, sparsity: str | None,
        jobs: int) -> dict:
    """Simulate the selected layers and return the JSON document."""
    for path, what in ((topology, "topology"), (config, "config")):
        if not path.is_file():
            raise RunError(f"--{what}: file not found: {path}")
    if sparsity is not None:
        parts = sparsity.split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts) or \
                not 1 <= int(parts[0]) <= int(parts[1]):
            raise RunError(f"--sparsity: expected N:M with 1 <= N <= M, got {sparsity!r}")
    header, rows = _read_topology_rows(topology)
    names = [r[0] for r in rows]
    if layers:
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise RunError(f"--layers: {', '.join(unknown)} not in {topology} "
                           f"(layers: {', '.join(names)})")
        rows = [r for r in rows if r[0] in layers]
    cfg = _config_summary(config)

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with SCALE-Sim
        tqdm = None
    t0 = time.perf_counter()
    results: list[dict] = []
    with ProcessPoolExecutor(max_workers=jobs, max_tasks_per_child=1) as pool:
        futures = [pool.submit(_simulate_layer, header, r, str(config.resolve()), sparsity)
                   for r in rows]
        bar = tqdm(total=len(futures), desc=f"scalesim {topology.stem} {config.stem}",
                   file=sys.stderr, unit="layer") if tqdm else None
        for row, fut in zip(rows, futures):
            try:
                results.append(fut.result())
            except Exception as exc:  # SCALE-Sim failed inside the child process
                raise RunError(f"layer {row[0]!r}: SCALE-Sim failed: "
                               f"{type(exc).__name__}: {exc}") from exc
            if bar:
                bar.update(1)
        if bar:
            bar.close()
    wall = time.perf_counter() - t0

    from importlib.metadata import version
    import numpy

    return {
        "schema": SCHEMA,
        "tool": {"name": "SCALE-Sim", "package": "scalesim", "version": version("scalesim"),
                 "numpy": numpy.__version__, "python": platform.python_version()},
        "topology": topology.name,
        "config": config.name,
        **cfg,
        "sparsity_cli": sparsity,
        "layers": results,
        "totals": {
            "total_cycles": sum(r["total_cycles"] for r in results),
            "compute_cycles": sum(r["compute_cycles"] for r in results),
            "stall_cycles": sum(r["stall_cycles"] for r in results),
            "macs": sum(r["macs"] for r in results),
        },
        "wall_s": round(wall, 3),
        "layer_wall_s_sum": round(sum(r["wall_s"] for r in results), 3),
        "jobs": jobs,
        "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
    }


def write_json(doc: dict, out: Path) -> None:
    """Write ``doc`` atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", type=Path, required=True, help="SCALE-Sim topology CSV")
    parser.add_argument("--config", type=Path, required=True, help="SCALE-Sim .cfg")
    parser.add_argument("--layers", help="comma-separated layer names (default: all)")
    parser.add_argument("--sparsity", help="N:M ratio written into every layer row")
    parser.add_argument("--jobs", type=int, default=1, help="layers simulated at once (default 1)")
    parser.add_argument("--out", type=Path, required=True, help="output JSON path")
    args = parser.parse_args(argv)
    try:
        if args.jobs < 1:
            raise RunError(f"--jobs: expected a positive integer, got {args.jobs}")
        _ensure_scalesim()
        layers = [s.strip() for s in args.layers.split(",")] if args.layers else None
        doc = run(args.topology, args.config, layers, args.sparsity, args.jobs)
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_json(doc, args.out)
    t = doc["totals"]
    print(f"{doc['topology']} {doc['config']}: {len(doc['layers'])} layers, "
          f"total_cycles={t['total_cycles']} stall_cycles={t['stall_cycles']} "
          f"wall={doc['wall_s']}s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
