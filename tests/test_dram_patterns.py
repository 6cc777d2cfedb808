"""The precomputed stated-pattern figures equal what the DRAM kernel gives now."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelsim.dram.model import cached_pattern_result
from accelsim.dram.patterns import FIELDS, build, key, pattern_figures

TABLE = Path(__file__).resolve().parents[1] / "accelsim" / "dram" / "data" / "pattern_figures.json"


def test_table_equals_the_kernel():
    """Regenerate with ``python -m accelsim.dram.patterns > accelsim/dram/data/pattern_figures.json``."""
    assert json.loads(TABLE.read_text()) == build()


@pytest.mark.parametrize("args", [("LPDDR5-6400", 1, None, "open", "random", 64),
                                  ("HBM3", 32, None, "closed", "sequential", 64),
                                  ("DDR4-3200", 1, "bank_interleaved", "open", "random", 64),
                                  ("DDR4-3200", 4, None, "open", "sequential", 128)])
def test_lookup_or_kernel_gives_the_kernel_figures(args):
    r = cached_pattern_result(*args)
    assert pattern_figures(*args) == {name: float(getattr(r, name)) for name in FIELDS}


def test_shipped_designs_devices_are_precomputed():
    """hw show on a shipped design reads the table (no Numba at start-up)."""
    from accelsim.hw import load_hw

    table = json.loads(TABLE.read_text())
    for path in sorted((TABLE.parents[3] / "hw_configs").glob("*.yaml")):
        d = load_hw(path).dram
        if d.device is None:
            continue
        for pattern in ("sequential", "random"):
            assert key(d.device, d.device_channels, d.address_mapping, d.page_policy or "open",
                       pattern, d.burst_bytes) in table, path.name
