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

    Two objectives (every sweep front): one sort and a running minimum, O(n log n).
    Otherwise sort by the first objective (ties by the others), then keep a row if no
    kept row dominates it: O(n * front) vectorised comparisons.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D array (points x objectives), got shape {values.shape}")
    if values.shape[1] == 2:
        return _pareto_mask_2d(values)
    n = values.shape[0]
    mask = np.zeros(n, dtype=bool)
    finite = np.all(np.isfinite(values), axis=1)
    idx = np.flatnonzero(finite)
    if idx.size == 0:
        return mask
    order = idx[np.lexsort(values[idx].T[::-1])]
    front = np.empty_like(values)
    size = 0
    for i in order:
        row = values[i]
        kept = front[:size]
        if not np.any(np.all(kept <= row, axis=1) & np.any(kept < row, axis=1)):
            mask[i] = True
            front[size] = row
            size += 1
    return mask


def _pareto_mask_2d(values: np.ndarray) -> np.ndarray:
    """:func:`pareto_mask` for two objectives.

    Sorted by (x, y), a row is on the front iff its y is the least of its x group and
    below every y of the smaller x values (equal rows are all kept).
    """
    mask = np.zeros(values.shape[0], dtype=bool)
    idx = np.flatnonzero(np.all(np.isfinite(values), axis=1))
    if idx.size == 0:
        return mask
    x, y = values[idx, 0], values[idx, 1]
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
    group_min = y[starts]  # sorted by y within a group: the first is the least
    before = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]]  # least y of smaller x
    group = np.cumsum(np.r_[True, x[1:] != x[:-1]]) - 1
    keep = (y == group_min[group]) & (group_min[group] < before[group])
    mask[idx[order[keep]]] = True
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
