"""Reading SCALE-Sim topology CSV files into layer geometries.

Two layouts, as SCALE-Sim reads them:

* convolution (default): columns by position (the header's wording is not checked):
  layer name, IFMAP height, IFMAP width, filter height, filter width, channels,
  num filters, strides. The format has no padding, so a layer is an unpadded conv
  (a fully connected layer is a 1x1 filter on a 1x1 IFMAP). As in SCALE-Sim, a layer
  whose name contains ``DP`` is depthwise: each of its C channels is filtered on its
  own by the row's ``num filters`` filters (``groups = C``, ``K = C * num filters``).
* GEMM (SCALE-Sim's ``-i gemm``): a header whose columns 2-4 are ``M, N, K``, then
  rows ``name, M, N, K``: an (M x K) by (K x N) product, read as a linear layer with
  M tokens, K input and N output features.

Rows may end with a trailing comma; blank lines are skipped. SCALE-Sim 3's optional
ninth column ``N:M`` (structured weight sparsity, ``1:1`` = dense) is kept in
:attr:`TopologyLayer.nm`; statistical traces draw N:M-structured weight masks for
such layers. Further columns are ignored. Output sizes follow
PyTorch's rule ``(H - R) // stride + 1``; SCALE-Sim rounds the division up instead,
so where ``(H - R) % stride != 0`` SCALE-Sim counts one more output row/column —
:func:`read_topology` returns a note for each such layer.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from accelsim.errors import ConfigError
from accelsim.inputs import read_limited
from accelsim.trace.file_format import MAX_DIM, geometry_limit_error
from accelsim.trace.geometry import LayerGeometry

MAX_TOPOLOGY_BYTES = 16 << 20

COLUMNS = ("layer name", "IFMAP height", "IFMAP width", "filter height", "filter width",
           "channels", "num filters", "strides")
GEMM_COLUMNS = ("layer name", "M", "N", "K")


@dataclass(frozen=True)
class TopologyLayer:
    name: str
    geometry: LayerGeometry
    nm: tuple[int, int] | None = None  # SCALE-Sim's N:M weight sparsity, None when absent or 1:1


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def read_topology(path: str | os.PathLike, samples: int = 1) -> tuple[list[TopologyLayer], list[str]]:
    """Parse a SCALE-Sim topology CSV; returns (layers with N=``samples``, notes)."""
    path = Path(path)
    data = read_limited(path, MAX_TOPOLOGY_BYTES, "topology file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, f"not UTF-8 text (byte at offset {exc.start}); "
                                           "save the topology as UTF-8 CSV") from None
    layers: list[TopologyLayer] = []
    notes: list[str] = []
    names: set[str] = set()
    gemm = False
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        while cells and cells[-1] == "":
            cells.pop()
        if not cells:
            continue
        if not layers and len(cells) > 1 and not _is_int(cells[1]):
            gemm = [c.upper() for c in cells[1:4]] == ["M", "N", "K"]
            continue  # the header row
        where = f"line {line_no}"
        columns = GEMM_COLUMNS if gemm else COLUMNS
        if len(cells) < len(columns):
            hint = ("" if gemm or len(cells) != 4 else
                    "; a GEMM topology needs the header 'Layer, M, N, K'")
            raise ConfigError(str(path), where,
                              f"expected {len(columns)} columns ({', '.join(columns)}), "
                              f"got {len(cells)}{hint}")
        values = []
        for column, cell in zip(columns[1:], cells[1:len(columns)]):
            if not _is_int(cell) or int(cell) < 1:
                raise ConfigError(str(path), f"{where}, column {column!r}",
                                  f"expected a positive integer, got {cell!r}")
            if int(cell) > MAX_DIM:
                raise ConfigError(str(path), f"{where}, column {column!r}",
                                  f"{int(cell):,} is above the limit of {MAX_DIM:,}")
            values.append(int(cell))
        name = cells[0] or f"layer{len(layers)}"
        if name in names:
            name = f"{name}#{line_no}"
        names.add(name)
        if gemm:
            m, n, k = values
            geometry = LayerGeometry(kind="linear", N=samples, C=k, H=m, W=1, K=n)
            problem = geometry_limit_error(geometry)
            if problem:
                raise ConfigError(str(path), where, problem)
            layers.append(TopologyLayer(name, geometry))
            continue
        h, w, r, s, c, k, stride = values
        if r > h or s > w:
            raise ConfigError(str(path), where,
                              f"filter {r}x{s} is larger than the IFMAP {h}x{w} (the format has "
                              "no padding: give the padded IFMAP size)")
        if "DP" in name:  # SCALE-Sim's depthwise convention
            geometry = LayerGeometry(kind="depthwise_conv2d", N=samples, C=c, H=h, W=w, K=c * k,
                                     R=r, S=s, stride_h=stride, stride_w=stride, groups=c)
        else:
            geometry = LayerGeometry(kind="conv2d", N=samples, C=c, H=h, W=w, K=k, R=r, S=s,
                                     stride_h=stride, stride_w=stride)
        nm = None
        if len(cells) > len(COLUMNS) and cells[len(COLUMNS)].replace(" ", "") not in ("1:1", ""):
            text = cells[len(COLUMNS)].replace(" ", "")
            parts = text.split(":")
            if (len(parts) != 2 or not all(p.isdigit() for p in parts)
                    or not 1 <= int(parts[0]) <= int(parts[1])):
                raise ConfigError(str(path), f"{where}, column 'sparsity'",
                                  f"expected N:M with 1 <= N <= M (e.g. 2:4), got {text!r}")
            nm = (int(parts[0]), int(parts[1]))
        if (h - r) % stride or (w - s) % stride:
            p_up, q_up = -(-(h - r) // stride) + 1, -(-(w - s) // stride) + 1
            notes.append(f"layer {name!r}: SCALE-Sim rounds the output up to {p_up}x{q_up}; "
                         f"this trace uses PyTorch's {geometry.P}x{geometry.Q}")
        problem = geometry_limit_error(geometry)
        if problem:
            raise ConfigError(str(path), where, problem)
        layers.append(TopologyLayer(name, geometry, nm))
    if not layers:
        raise ConfigError(str(path), None, "the topology file has no layer rows")
    return layers, notes
