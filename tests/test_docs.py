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
