"""Pareto fronts of a results table.

A point is on the front when no other point is at least as good in every objective
and strictly better in one. Objectives are minimised unless listed in
``accelsim.sweep.spec.MAXIMIZED`` (then negated). Rows with a missing (NaN) objective
are never on the front. Exact duplicates of a front point are on the front too.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from accelsim.sweep.spec import MAXIMIZED


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n, k), all minimised.

    Sort by the first objective (ties by the others), then keep a row if no kept row
    dominates it: O(n * front) comparisons.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D array (points x objectives), got shape {values.shape}")
    n = values.shape[0]
    mask = np.zeros(n, dtype=bool)
    finite = np.all(np.isfinite(values), axis=1)
    idx = np.flatnonzero(finite)
    if idx.size == 0:
        return mask
    order = idx[np.lexsort(values[idx].T[::-1])]
    front: list[np.ndarray] = []
    for i in order:
        row = values[i]
        dominated = False
        for kept in front:
            if np.all(kept <= row) and np.any(kept < row):
                dominated = True
                break
        if not dominated:
            mask[i] = True
            front.append(row)
    return mask


def pareto_brute_force(values: np.ndarray) -> np.ndarray:
    """O(n^2) reference of :func:`pareto_mask` (tests)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    mask = np.zeros(n, dtype=bool)
    for i in range(n):
        if not np.all(np.isfinite(values[i])):
            continue
        mask[i] = not any(
            np.all(np.isfinite(values[j])) and np.all(values[j] <= values[i])
            and np.any(values[j] < values[i]) for j in range(n) if j != i)
    return mask


def objective_values(table: pd.DataFrame, objectives: Sequence[str]) -> np.ndarray:
    """The objective columns as an (n, k) float array oriented for minimisation."""
    cols = []
    for name in objectives:
        col = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=np.float64)
        cols.append(-col if name in MAXIMIZED else col)
    return np.column_stack(cols) if cols else np.empty((len(table), 0))


def pareto_column(pair: Sequence[str]) -> str:
    """Name of the results-table column marking the front of ``pair``."""
    return "pareto_" + "__".join(pair)


def mark_fronts(table: pd.DataFrame, pairs: Sequence[Sequence[str]],
                group_by: str | None = "trace") -> pd.DataFrame:
    """Add one boolean ``pareto_<x>__<y>`` column per objective pair (front per ``group_by``).

    Rows whose status is not ``ok`` and rows lacking an objective are never on a front;
    a pair naming a column the table lacks gives an all-False column.
    """
    table = table.copy()
    ok = (table["status"] == "ok").to_numpy() if "status" in table else np.ones(len(table), bool)
    groups = (table.groupby(group_by, sort=False).indices if group_by and group_by in table
              else {None: np.arange(len(table))})
    for pair in pairs:
        column = np.zeros(len(table), dtype=bool)
        if all(name in table for name in pair):
            values = objective_values(table, pair)
            values[~ok] = np.nan
            for rows in groups.values():
                rows = np.asarray(rows)
                column[rows] = pareto_mask(values[rows])
        table[pareto_column(pair)] = column
    return table
