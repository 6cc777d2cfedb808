"""CLI start-up: building the parser and the light verbs load no heavy library.

Each check runs in a fresh interpreter and inspects ``sys.modules`` afterwards, so an
import added at the top of any stage's ``cli.py`` (or its package ``__init__``) fails here.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numba", "pandas", "matplotlib")


def _loaded_after(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    probe = (code + "\nimport json, sys\n"
             f"print(json.dumps([m for m in {list(heavy)!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_and_build_parser_load_no_heavy_library():
    assert _loaded_after("import accelsim.cli\naccelsim.cli.build_parser()") == []


@pytest.mark.parametrize("argv", [
    ["hw", "validate", "hw_configs/sparten_like.yaml"],
    ["hw", "show", "hw_configs/sparten_like.yaml"],
    ["trace", "info", "traces/lenet5_digits_dual.trace"],
], ids=lambda a: " ".join(a[:2]))
def test_light_verbs_load_no_heavy_library(argv):
    code = ("import contextlib, io\nfrom accelsim.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main({argv!r}) == 0\n")
    assert _loaded_after(code) == []


@pytest.mark.parametrize("argv", [
    ["--help"],
    ["hw", "validate", "hw_configs/sparten_like.yaml"],
], ids=lambda a: " ".join(a[:2]))
def test_help_and_hw_validate_load_no_numpy(argv):
    """Nothing `--help` or `hw validate` runs needs NumPy (about 0.1 s of start-up): the stage
    packages (accelsim.trace, accelsim.hw, ...) import their names on first use."""
    code = ("import contextlib, io\nfrom accelsim.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        code = main({argv!r})\n"
            "    except SystemExit as exc:   # --help exits 0 after printing\n"
            "        code = exc.code\n"
            "assert code == 0, code\n")
    assert _loaded_after(code, HEAVY + ("numpy",)) == []


def test_help_lists_every_stage_verb():
    done = subprocess.run([sys.executable, "-m", "accelsim.cli", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for verb in ("hw", "zoo", "trace", "train", "simulate", "sweep", "report", "demo", "plot"):
        assert f"    {verb}" in done.stdout


def test_simulate_of_a_cnn_trace_loads_no_torch():
    """Only decoder traces need the per-phase figures; a CNN trace's simulate imports no PyTorch
    (about 1.8 s of a whole-process simulate)."""
    code = ("import contextlib, io\nfrom accelsim.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['simulate', '--trace', 'traces/lenet5_digits_dual.trace', '--hw', "
            "'hw_configs/sparten_like.yaml', '--samples', '2']) == 0\n")
    assert _loaded_after(code, ("torch",)) == []
