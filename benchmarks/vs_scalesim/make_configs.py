"""Write the SCALE-Sim ``.cfg`` files used by the comparison (one per array size and dataflow).

Every file uses ``InterfaceBandwidth: CALC`` (SCALE-Sim estimates the DRAM bandwidth it needs, so
there are no memory stalls) and the 64 KiB-per-operand SRAMs of SCALE-Sim's own sample config.
With CALC the SRAM sizes change the DRAM traces, never the compute cycles.

Sparse configs (``sparse_<rep>_<df>_<n>x<n>.cfg``) switch on SCALE-Sim 3's N:M weight sparsity; the
N:M ratio itself is a per-layer column of the topology CSV (``run_scalesim.py --sparsity N:M``).

Usage: python benchmarks/vs_scalesim/make_configs.py [--out DIR]
Runs with any Python 3 (no third-party imports).
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

ARRAY_SIZES = (8, 16, 32)
RECT_ARRAYS = ((8, 16), (16, 8))  # rows x cols; non-square arrays catch row/column mix-ups
DATAFLOWS = ("os", "ws", "is")
# (representation, dataflow, array size) of the recorded sparse runs
SPARSE_CASES = (("ellpack_block", "os", 8), ("ellpack_block", "ws", 8), ("ellpack_block", "is", 8),
                ("csr", "ws", 8), ("csc", "ws", 8), ("ellpack_block", "ws", 16))

SRAM_KB = 64  # per operand (ifmap, filter, ofmap), as SCALE-Sim's sample scale.cfg


def config_text(rows: int, cols: int, dataflow: str, sparse_rep: str | None = None) -> str:
    """The INI text of one SCALE-Sim config."""
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow: expected one of {DATAFLOWS}, got {dataflow!r}")
    name = f"{'sparse_' + sparse_rep + '_' if sparse_rep else ''}{dataflow}_{rows}x{cols}"
    sparsity = (
        "SparsitySupport : true\n"
        f"SparseRep : {sparse_rep}\n"
        "OptimizedMapping : false\n"
        "BlockSize : 4\n"
        "RandomNumberGeneratorSeed : 40\n"
        if sparse_rep else
        "SparsitySupport : false\n"
        "SparseRep : ellpack_block\n"
        "OptimizedMapping : false\n"
        "BlockSize : 4\n"
        "RandomNumberGeneratorSeed : 40\n"
    )
    return (
        "[general]\n"
        f"run_name = {name}\n"
        "\n"
        "[architecture_presets]\n"
        f"ArrayHeight : {rows}\n"
        f"ArrayWidth : {cols}\n"
        f"IfmapSramSzkB : {SRAM_KB}\n"
        f"FilterSramSzkB : {SRAM_KB}\n"
        f"OfmapSramSzkB : {SRAM_KB}\n"
        "IfmapOffset : 0\n"
        "FilterOffset : 10000000\n"
        "OfmapOffset : 20000000\n"
        f"Dataflow : {dataflow}\n"
        "Bandwidth : 10\n"
        "ReadRequestBuffer : 32\n"
        "WriteRequestBuffer : 32\n"
        "\n"
        "[layout]\n"
        "IfmapCustomLayout : False\n"
        "IfmapSRAMBankBandwidth : 10\n"
        "IfmapSRAMBankNum : 10\n"
        "IfmapSRAMBankPort : 2\n"
        "FilterCustomLayout : False\n"
        "FilterSRAMBankBandwidth : 10\n"
        "FilterSRAMBankNum : 10\n"
        "FilterSRAMBankPort : 2\n"
        "\n"
        "[sparsity]\n"
        f"{sparsity}"
        "\n"
        "[run_presets]\n"
        "InterfaceBandwidth : CALC\n"
        "UseRamulatorTrace : False\n"
    )


def config_name(rows: int, cols: int, dataflow: str, sparse_rep: str | None = None) -> str:
    """File name of the config for a ``rows`` x ``cols`` array."""
    prefix = f"sparse_{sparse_rep}_" if sparse_rep else ""
    return f"{prefix}{dataflow}_{rows}x{cols}.cfg"


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_all(out_dir: Path) -> list[Path]:
    """Write every dense and sparse config into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for rows, cols in [(n, n) for n in ARRAY_SIZES] + list(RECT_ARRAYS):
        for df in DATAFLOWS:
            path = out_dir / config_name(rows, cols, df)
            _write(path, config_text(rows, cols, df))
            written.append(path)
    for rep, df, size in SPARSE_CASES:
        path = out_dir / config_name(size, size, df, rep)
        _write(path, config_text(size, size, df, rep))
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "configs",
                        help="directory for the .cfg files (default: configs/ next to this script)")
    args = parser.parse_args()
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
