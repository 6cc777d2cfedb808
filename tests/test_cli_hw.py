"""`accelsim hw validate/show`: exit codes and one clear line per error, no traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from accelsim.cli import main

HW_DIR = Path(__file__).resolve().parents[1] / "hw_configs"


def test_validate_shipped_configs(capsys) -> None:
    files = [str(p) for p in sorted(HW_DIR.glob("*.yaml"))]
    assert main(["hw", "validate", *files]) == 0
    assert capsys.readouterr().out.count("ok:") == len(files)


def test_validate_reports_each_bad_file(tmp_path: Path, capsys, minimal_hw) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(minimal_hw))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(dict(minimal_hw, pe_array={"rows": -1, "cols": 4, "dataflow": "output_stationary"})))
    worse = tmp_path / "worse.yaml"
    worse.write_text("pe_array: {rows: [\n")
    assert main(["hw", "validate", str(good), str(bad), str(worse)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"error: {bad}: pe_array.rows: expected a positive integer")
    assert err[1].startswith(f"error: {worse}: malformed YAML")


def test_show_prints_derived_figures(capsys) -> None:
    assert main(["hw", "show", str(HW_DIR / "eyeriss_v1.yaml")]) == 0
    out = capsys.readouterr().out
    assert "peak MACs/cycle           168" in out
    assert "energy per dense MAC" in out
    assert main(["hw", "show", "--json", str(HW_DIR / "eyeriss_v1.yaml")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["derived"]["peak_macs_per_cycle"] == 168
    assert data["config"]["pe_array"]["rows"] == 12


def test_console_error_has_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [\n")
    proc = subprocess.run([sys.executable, "-m", "accelsim.cli", "hw", "show", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and str(bad) in proc.stderr
