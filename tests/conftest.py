"""Shared pytest fixtures."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HW_DIR = REPO / "hw_configs"

# The mapper's on-disk store (accelsim.map.store) and any other accelsim cache write to a
# folder of this test session (inherited by the processes tests start), never the real home.
_CACHE_DIR = tempfile.mkdtemp(prefix="accelsim-test-cache-")
os.environ["ACCELSIM_CACHE_DIR"] = _CACHE_DIR


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def minimal_hw() -> dict:
    """The smallest valid hardware mapping (raw YAML data)."""
    return {
        "version": 1,
        "name": "tiny",
        "technology": {"clock_mhz": 500},
        "pe_array": {"rows": 4, "cols": 4, "dataflow": "output_stationary"},
        "scratchpad": {"input_bytes": 16, "weight_bytes": 16, "psum_bytes": 4},
        "global_buffer": {"size_kib": 64, "words_per_cycle": 8},
        "dram": {"ideal": True},
    }
