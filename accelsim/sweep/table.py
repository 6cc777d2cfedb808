"""The results table, written incrementally and assembled by streaming.

While a sweep runs, finished rows go to part files under ``DIR/parts/`` (Parquet
when pyarrow is installed, CSV otherwise), a few thousand rows each, written
atomically; each row carries ``_order``, its position in the final table. At the end
:func:`assemble` makes two passes over the parts, holding one part or one window of
rows at a time: the first collects the column types and the objective columns (the
Pareto fronts need every row, but only those few numbers), the second writes the
final table window by window in ``_order``. So a 10^5-point table is never held in
memory whole.
"""
from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from accelsim.atomic import atomic_write
from accelsim.errors import AccelsimError
from accelsim.sweep.pareto import mark_fronts, pareto_column

ORDER = "_order"
PARTS_DIR = "parts"
WINDOW_ROWS = 20000  # rows of the final table assembled (held) at a time


def have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def part_format() -> str:
    """``parquet`` when pyarrow is installed, else ``csv``."""
    return "parquet" if have_pyarrow() else "csv"


class PartWriter:
    """Buffers rows and writes them as numbered part files (``rows`` rows or ``max_age_s``)."""

    def __init__(self, folder: str | os.PathLike, fmt: str | None = None, rows: int = 2000,
                 max_age_s: float = 30.0):
        self.folder = Path(folder)
        if self.folder.exists():  # parts are derived data: the previous run's are stale
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self.fmt = fmt or part_format()
        self.rows = rows
        self.max_age_s = max_age_s
        self.buffer: list[dict] = []
        self.parts: list[Path] = []
        self.written = 0
        self.started = time.monotonic()

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.rows or time.monotonic() - self.started >= self.max_age_s:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        frame = pd.DataFrame(self.buffer)
        path = self.folder / f"part-{len(self.parts):06d}.{self.fmt}"
        if self.fmt == "parquet":
            atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
        else:
            atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
        self.parts.append(path)
        self.written += len(self.buffer)
        self.buffer = []
        self.started = time.monotonic()


def read_part(path: Path, low: int | None = None, high: int | None = None) -> pd.DataFrame:
    """Rows of one part, those with ``low <= _order < high`` when given."""
    if path.suffix == ".parquet":
        filters = None if low is None else [(ORDER, ">=", low), (ORDER, "<", high)]
        frame = pd.read_parquet(path, filters=filters)
    else:
        frame = pd.read_csv(path, keep_default_na=True)
        if low is not None:
            frame = frame[(frame[ORDER] >= low) & (frame[ORDER] < high)]
    return frame


@dataclass
class _ColumnInfo:
    kinds: set = field(default_factory=set)  # dtype kinds of parts with a value
    strings_only: bool = True                # object values are all str
    nulls: bool = False                      # some row lacks a value

    def target(self) -> str:
        kinds = self.kinds
        if not kinds:
            return "object"
        if "O" in kinds or "U" in kinds:
            return "object"
        if kinds <= {"b"}:
            return "object" if self.nulls else "bool"
        if kinds <= {"i", "u"} and not self.nulls:
            return "int64"
        if kinds <= {"i", "u", "f"}:
            return "float64"
        return "object"


@dataclass
class TableSummary:
    """Counts and the column layout of an assembled table."""

    rows: int = 0
    ok: int = 0
    front_sizes: dict = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    columns: list = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.rows - self.ok


def _cast(frame: pd.DataFrame, targets: dict[str, str]) -> pd.DataFrame:
    for name, target in targets.items():
        column = frame[name]
        if target == "float64":
            frame[name] = pd.to_numeric(column, errors="coerce").astype("float64")
        elif target == "int64":
            frame[name] = column.astype("int64")
        elif target == "bool":
            frame[name] = column.astype(bool)
        else:
            frame[name] = column.astype(object).where(column.notna(), None)
    return frame


def assemble(parts: Sequence[Path], out_path: Path, head: Sequence[str],
             pairs: Sequence[Sequence[str]], order_columns,
             window: int | None = None) -> TableSummary:
    """Write the table of ``parts`` to ``out_path`` (CSV or Parquet by extension), in ``_order``.

    ``head``: the leading columns (point, trace, axes); ``order_columns(columns)``
    orders the rest (the sweep's column order); ``pairs``: objective pairs whose
    fronts become ``pareto_<x>__<y>`` columns, computed per trace on ``ok`` rows.
    """
    window = window or WINDOW_ROWS
    infos: dict[str, _ColumnInfo] = {}
    seen: list[str] = []
    ranges: list[tuple[int, int]] = []
    objectives = sorted({name for pair in pairs for name in pair})
    small: list[pd.DataFrame] = []
    summary = TableSummary()
    for number, path in enumerate(parts):
        frame = read_part(path)
        summary.rows += len(frame)
        ranges.append((int(frame[ORDER].min()), int(frame[ORDER].max())))
        for name in frame.columns:
            if name not in infos:  # first seen here: the earlier parts' rows lack it
                infos[name] = _ColumnInfo(nulls=number > 0)
                seen.append(name)
            info, column = infos[name], frame[name]
            present = column.notna()
            if not present.all():
                info.nulls = True
            if present.any():
                info.kinds.add(column.dtype.kind)
                if column.dtype.kind == "O" and info.strings_only:
                    info.strings_only = all(isinstance(v, str) for v in column[present])
        for info_name in infos:  # a column this part lacks has nulls in its rows
            if info_name not in frame.columns:
                infos[info_name].nulls = True
        status = frame["status"].astype(str)
        summary.ok += int((status == "ok").sum())
        summary.errors.update(frame.loc[status != "ok", "error"].astype(str))
        small.append(frame[[c for c in (ORDER, "trace", "status", *objectives) if c in frame]])
    columns = list(head) + [c for c in seen if c not in head and c != ORDER]
    columns = order_columns(columns)
    targets = {name: infos[name].target() if name in infos else "object" for name in columns}
    fronts = (pd.concat(small, ignore_index=True) if small
              else pd.DataFrame(columns=[ORDER, "trace", "status"]))
    fronts = mark_fronts(fronts, pairs, group_by="trace").sort_values(ORDER)
    front_names = [pareto_column(pair) for pair in pairs]
    summary.front_sizes = {name: int(fronts[name].sum()) for name in front_names}
    summary.columns = columns + front_names
    front_values = {name: fronts[name].to_numpy() for name in front_names}
    orders = fronts[ORDER].to_numpy()
    del small, fronts
    if len(np.unique(orders)) != len(orders):
        raise AccelsimError(f"{out_path.parent / PARTS_DIR}: a result row appears twice")

    def windows():
        if not len(orders):
            yield _cast(pd.DataFrame({c: pd.Series(dtype=object) for c in columns}),
                        {c: "object" for c in columns}).assign(
                **{name: pd.Series(dtype=bool) for name in front_names})
            return
        lo, hi = int(orders.min()), int(orders.max()) + 1
        for low in range(lo, hi, window):
            high = low + window
            pieces = [read_part(path, low, high) for path, (a, b) in zip(parts, ranges)
                      if a < high and b >= low]
            pieces = [p for p in pieces if len(p)]
            if not pieces:
                continue
            frame = pd.concat(pieces, ignore_index=True).sort_values(ORDER, kind="stable")
            frame = frame.reindex(columns=[ORDER, *columns])
            frame = _cast(frame, targets)
            where = np.searchsorted(orders, frame[ORDER].to_numpy())
            for name in front_names:
                frame[name] = front_values[name][where]
            yield frame.drop(columns=[ORDER]).reset_index(drop=True)

    if out_path.suffix == ".parquet":
        _write_parquet(out_path, windows(), targets, infos)
    else:
        def write_csv(tmp: str) -> None:
            with open(tmp, "w", newline="") as fh:
                for i, frame in enumerate(windows()):
                    frame.to_csv(fh, index=False, header=i == 0)
        atomic_write(out_path, write_csv)
    return summary


def _write_parquet(out_path: Path, frames, targets: dict[str, str], infos) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise AccelsimError("Parquet output needs pyarrow: pip install 'accelsim[parquet]' "
                            "(or use --format csv)") from None

    def write(tmp: str) -> None:
        writer = None
        try:
            for frame in frames:
                for name, target in targets.items():  # arrow needs one type per column
                    if target == "object" and name in infos and not infos[name].strings_only:
                        frame[name] = frame[name].map(lambda v: None if v is None else str(v))
                schema = None if writer is None else writer.schema
                table = pa.Table.from_pandas(frame, preserve_index=False, schema=schema)
                if writer is None:
                    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f
                              for f in table.schema]
                    table = table.cast(pa.schema(fields))
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()

    atomic_write(out_path, write)
