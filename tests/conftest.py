"""Shared pytest fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HW_DIR = REPO / "hw_configs"


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
