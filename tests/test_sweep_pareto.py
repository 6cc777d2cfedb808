"""Pareto fronts equal a brute-force reference; results-table marking."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accelsim.sweep.pareto import mark_fronts, pareto_brute_force, pareto_column, pareto_mask


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [2, 3])
def test_front_equals_brute_force(seed, k):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 12, size=(80, k)).astype(float)  # many ties and duplicates
    values[rng.random(80) < 0.05, 0] = np.nan
    assert np.array_equal(pareto_mask(values), pareto_brute_force(values))


def test_front_of_known_points():
    values = np.array([[1, 5], [2, 2], [3, 1], [2, 3], [4, 4], [1, 5], [0.5, np.nan]])
    assert pareto_mask(values).tolist() == [True, True, True, False, False, True, False]


def test_empty_and_single():
    assert pareto_mask(np.empty((0, 2))).tolist() == []
    assert pareto_mask(np.array([[3.0, 4.0]])).tolist() == [True]


def test_mark_fronts_per_trace_and_status():
    table = pd.DataFrame({
        "trace": ["a", "a", "a", "b", "b", "a"],
        "status": ["ok", "ok", "ok", "ok", "ok", "error"],
        "energy_pj": [1.0, 2.0, 3.0, 10.0, 20.0, 0.1],
        "cycles": [3.0, 1.0, 3.0, 5.0, 1.0, 0.1],
        "utilization": [0.5, 0.9, 0.1, 0.2, 0.3, 1.0],
    })
    marked = mark_fronts(table, [("energy_pj", "cycles"), ("energy_pj", "utilization"),
                                 ("energy_pj", "not_a_column")])
    assert marked[pareto_column(("energy_pj", "cycles"))].tolist() == \
        [True, True, False, True, True, False]
    # utilization is maximised: point 1 (2 pJ, 0.9) is not dominated by point 0 (1 pJ, 0.5)
    assert marked["pareto_energy_pj__utilization"].tolist() == \
        [True, True, False, True, True, False]
    assert not marked["pareto_energy_pj__not_a_column"].any()
