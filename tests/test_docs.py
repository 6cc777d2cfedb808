"""The documentation stays true: generated pages are current, examples run."""
from __future__ import annotations

from pathlib import Path

from accelsim.hw import docs

REPO = Path(__file__).resolve().parents[1]


def test_hardware_reference_is_current():
    page = REPO / "docs" / "hardware.md"
    current = docs.markdown()
    assert page.is_file() and page.read_text() == current, (
        f"docs/hardware.md is out of date with accelsim/hw/schema.py; regenerate it with "
        f"`{docs.REGENERATE}` and commit the result")


def _python_blocks(text: str) -> str:
    import re

    return "\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))


def _run_examples(path: Path, code: str, folder: Path, monkeypatch) -> dict:
    """Run documentation code in ``folder``, where the checkout's data folders are linked."""
    for name in ("traces", "hw_configs", "models"):
        (folder / name).symlink_to(REPO / name, target_is_directory=True)
    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "__docs__"}
    exec(compile(code, str(path.relative_to(REPO)), "exec"), namespace)
    return namespace


def test_api_page_examples_run(tmp_path, monkeypatch, capsys):
    page = REPO / "docs" / "api.md"
    ns = _run_examples(page, _python_blocks(page.read_text()), tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert "sparten-like 256 output_stationary" in out
    assert "['conv', 'fc'] 8" in out
    assert ns["tiny_result"].totals["macs_skipped"] > 0
    for name in ("results.csv", "results.csv.json", "tiny.trace", "savings.png", "compare.svg",
                 "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_readme_and_simulator_snippets_run(tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Python API")[1].split("\n### ")[0]
    code = _python_blocks(section)
    assert "simulate(" in code
    ns = _run_examples(REPO / "README.md", code, tmp_path, monkeypatch)
    assert ns["result"].totals["energy_uj"] > 0
    assert "uJ per inference" in capsys.readouterr().out
    sim_page = REPO / "docs" / "simulator.md"
    (tmp_path / "sim").mkdir()
    ns = _run_examples(sim_page, _python_blocks(sim_page.read_text()), tmp_path / "sim", monkeypatch)
    assert (tmp_path / "sim" / "out.csv").is_file() and len(ns["res"].layers) == 5
