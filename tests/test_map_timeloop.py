"""Per-level access counts equal Timeloop's reference outputs, given the same mapping.

Fixtures: tests/fixtures/timeloop/*.json, extracted from Timeloop's public exercises (see
the README there). Every dense example with a problem accelsim's loop nest can express is
checked on every level and tensor: reads, fills and updates, totals over utilised instances.
"""
from __future__ import annotations

import pytest

from accelsim.map.access import analyse
from accelsim.map.nest import TENSORS
from timeloop_fixture import FIXTURES, convert, load, reference_totals

DENSE = sorted(p.stem for p in FIXTURES.glob("*.json")
               if not p.stem.startswith("sparseloop") and "sparse" not in p.stem)


def test_fixtures_present():
    assert len(DENSE) >= 15


@pytest.mark.parametrize("name", DENSE)
def test_access_counts_equal_timeloop(name):
    fx = load(name)
    nest, mapping, keeps = convert(fx)
    counts = analyse(nest, mapping, keeps)
    names = [lv.level for lv in mapping.levels]
    ref = reference_totals(fx)
    assert ref
    for (level, tensor), expected in ref.items():
        got = tuple(int(v) for v in counts.counts[names.index(level), TENSORS.index(tensor)])
        assert got == tuple(expected), (level, tensor)
    assert counts.macs == fx["reference"]["levels_outer_to_inner"][-1]["reference"]["xml"].get(
        "algorithmic_computes", counts.macs)
