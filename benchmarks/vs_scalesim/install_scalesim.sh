#!/usr/bin/env bash
# Install SCALE-Sim 3.x from PyPI into its own virtual environment (idempotent).
#
# Usage: benchmarks/vs_scalesim/install_scalesim.sh
# Env:   SCALESIM_VENV   venv path (default /work/venvs/scalesim)
#        SCALESIM_PYTHON interpreter used to create it (default python3)
#        SCALESIM_VERSION pip requirement for scalesim (default "scalesim>=3,<4")
#
# numpy must stay below 2.4: SCALE-Sim 3.0.0's memory model raises a TypeError with numpy 2.4.
# SCALE-Sim does not need torch, so none is installed here.
set -euo pipefail

VENV="${SCALESIM_VENV:-/work/venvs/scalesim}"
PY="${SCALESIM_PYTHON:-python3}"
REQ="${SCALESIM_VERSION:-scalesim>=3,<4}"

if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
fi

if "$VENV/bin/python" - "$REQ" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
import numpy
req = Requirement(sys.argv[1])
ok = version("scalesim") in req.specifier and tuple(int(x) for x in numpy.__version__.split(".")[:2]) < (2, 4)
sys.exit(0 if ok else 1)
PY
then
    echo "SCALE-Sim already installed in $VENV"
else
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet "$REQ" "numpy<2.4"
fi

"$VENV/bin/python" -c 'import importlib.metadata as m, numpy; print("scalesim", m.version("scalesim"), "numpy", numpy.__version__)'
