"""Closed-form SCALE-Sim 3.0.0 compute cycles and SRAM access counts, re-derived from its source.

What SCALE-Sim reports for a layer run with ``InterfaceBandwidth: CALC`` (no memory stalls) is a
pure function of the layer shape, the array size and the dataflow; this module computes it without
SCALE-Sim. ``docs/scalesim_conventions.md`` explains every term and points at SCALE-Sim's source.

Only the Python standard library is used, so the module runs in accelsim's environment and in
SCALE-Sim's own virtual environment alike.

    >>> layer = ScaleSimLayer("conv1", 32, 32, 5, 5, 1, 6, 1)
    >>> scalesim_cycles(layer, 8, 8, "ws").total_cycles
    3223
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

DATAFLOWS = ("os", "ws", "is")


@dataclass(frozen=True)
class ScaleSimLayer:
    """One row of a SCALE-Sim convolution topology CSV.

    ``ifmap_h``/``ifmap_w`` are the input size as SCALE-Sim sees it (it has no padding, so a padded
    layer is given its effective size ``(E - 1) * stride + filter``). ``sparsity`` is the optional
    per-layer N:M ratio column; it is ignored unless the config switches sparsity support on.
    """

    name: str
    ifmap_h: int
    ifmap_w: int
    filt_h: int
    filt_w: int
    channels: int
    num_filt: int
    stride: int
    sparsity: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        for field in ("ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels", "num_filt", "stride"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{self.name}: {field}: expected a positive integer, got {value!r}")
        n, m = self.sparsity
        if not (1 <= n <= m):
            raise ValueError(f"{self.name}: sparsity: expected N:M with 1 <= N <= M, got {n}:{m}")
        if self.filt_h > self.ifmap_h or self.filt_w > self.ifmap_w:
            raise ValueError(f"{self.name}: filter {self.filt_h}x{self.filt_w} is larger than the "
                             f"ifmap {self.ifmap_h}x{self.ifmap_w} (SCALE-Sim asserts on this)")

    @property
    def ofmap_h(self) -> int:
        """SCALE-Sim rounds the output size up: ceil((H - R + s) / s)."""
        return math.ceil((self.ifmap_h - self.filt_h + self.stride) / self.stride)

    @property
    def ofmap_w(self) -> int:
        return math.ceil((self.ifmap_w - self.filt_w + self.stride) / self.stride)

    @property
    def ofmap_px(self) -> int:
        """Output pixels per filter (rows of the lowered ifmap/ofmap matrices)."""
        return self.ofmap_h * self.ofmap_w

    @property
    def window(self) -> int:
        """Convolution window R*S*C (columns of the lowered ifmap, rows of the filter matrix)."""
        return self.filt_h * self.filt_w * self.channels

    @property
    def macs(self) -> int:
        """Dense MACs, SCALE-Sim's ``num_compute`` (the numerator of its utilisation)."""
        return self.ofmap_px * self.num_filt * self.window


@dataclass(frozen=True)
class ScaleSimCycles:
    """What SCALE-Sim 3.0.0 reports for one layer (CALC mode), derived in closed form."""

    dataflow: str
    rows: int
    cols: int
    sr: int                 # operand dimension mapped on the array rows
    sc: int                 # operand dimension mapped on the array columns
    t: int                  # temporal dimension streamed through the array per fold
    row_folds: int
    col_folds: int
    cycles_per_fold: int    # demand-matrix lines per fold (fill + stream + drain)
    schedule_cycles: int    # folds * cycles_per_fold: lines in SCALE-Sim's demand matrices
    total_cycles: int       # SCALE-Sim "Total Cycles" (= compute cycles; stalls are 0 in CALC)
    stall_cycles: int
    overall_util: float     # percent; dense MACs / (total_cycles * rows * cols)
    mapping_efficiency: float  # percent
    compute_util: float     # percent
    ifmap_sram_reads: float  # float because sparse ws multiplies by M/N
    filter_sram_reads: int
    ofmap_sram_writes: int

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds


def effective_window(window: int, n: int, m: int) -> int:
    """Rows kept in SCALE-Sim's N:M-compressed filter matrix (non-optimised mapping).

    Each block of ``m`` window rows keeps its first ``n``; a final partial block of ``r`` rows
    keeps ``min(r, n)``.
    """
    full, rest = divmod(window, m)
    return full * n + min(rest, n)


def gemm_cycles(ofmap_px: int, window: int, num_filt: int, rows: int, cols: int, dataflow: str,
                macs: int | None = None, sparse_nm: tuple[int, int] | None = None) -> ScaleSimCycles:
    """SCALE-Sim's cycles for the lowered matrices ifmap (ofmap_px x window) @ filter (window x K).

    ``sparse_nm`` is the layer's N:M ratio when the config has ``SparsitySupport: true`` (then the
    window is compressed before mapping); ``macs`` defaults to the dense product.
    """
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow: expected one of {DATAFLOWS}, got {dataflow!r}")
    for name, value in (("ofmap_px", ofmap_px), ("window", window), ("num_filt", num_filt),
                        ("rows", rows), ("cols", cols)):
        if value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    dense_macs = ofmap_px * window * num_filt if macs is None else macs
    win = window if sparse_nm is None else effective_window(window, *sparse_nm)

    if dataflow == "os":
        sr, sc, t = ofmap_px, num_filt, win
        per_fold = t + rows + cols - 2
        util_fold_cycles = per_fold
    elif dataflow == "ws":
        sr, sc, t = win, num_filt, ofmap_px
        per_fold = 2 * rows + cols + t - 2
        util_fold_cycles = per_fold + cols - 1
    else:  # is
        sr, sc, t = win, ofmap_px, num_filt
        per_fold = 2 * rows + cols + t - 2
        util_fold_cycles = per_fold + cols - 1

    row_folds = math.ceil(sr / rows)
    col_folds = math.ceil(sc / cols)
    folds = row_folds * col_folds
    schedule = folds * per_fold
    total = schedule - 1
    pes = rows * cols

    if dataflow == "os":
        ifmap_reads: float = col_folds * t * sr
        filter_reads = row_folds * t * sc
        ofmap_writes = sr * sc + folds * (rows + cols)
    elif dataflow == "ws":
        ifmap_reads = col_folds * t * sr
        if sparse_nm is not None:
            ifmap_reads *= sparse_nm[1] / sparse_nm[0]
        filter_reads = sr * sc
        ofmap_writes = row_folds * t * sc
    else:
        ifmap_reads = sr * sc
        filter_reads = col_folds * sr * t
        ofmap_writes = row_folds * sc * t

    return ScaleSimCycles(
        dataflow=dataflow, rows=rows, cols=cols, sr=sr, sc=sc, t=t,
        row_folds=row_folds, col_folds=col_folds, cycles_per_fold=per_fold,
        schedule_cycles=schedule, total_cycles=total, stall_cycles=0,
        overall_util=dense_macs * 100 / (total * pes),
        mapping_efficiency=sr * sc * 100 / (folds * pes),
        compute_util=sr * sc * t * 100 / (folds * pes * util_fold_cycles),
        ifmap_sram_reads=ifmap_reads, filter_sram_reads=filter_reads,
        ofmap_sram_writes=ofmap_writes,
    )


def scalesim_cycles(layer: ScaleSimLayer, rows: int, cols: int, dataflow: str,
                    sparsity_support: bool = False) -> ScaleSimCycles:
    """SCALE-Sim 3.0.0's compute report for ``layer`` on a ``rows`` x ``cols`` array.

    ``sparsity_support`` mirrors the config's ``[sparsity] SparsitySupport`` with
    ``OptimizedMapping: false``; the layer's own N:M ratio is then applied.
    """
    nm = layer.sparsity if sparsity_support else None
    return gemm_cycles(layer.ofmap_px, layer.window, layer.num_filt, rows, cols, dataflow,
                       macs=layer.macs, sparse_nm=nm)


def sparse_storage(layer: ScaleSimLayer, representation: str) -> dict[str, float]:
    """SCALE-Sim's SPARSE_REPORT numbers (in words) for the layer's N:M filter.

    The filter's zero pattern is the N:M pattern repeated down each column of the
    (window x num_filt) filter matrix, identical in every column.
    """
    n, m = layer.sparsity
    window, k = layer.window, layer.num_filt
    kept = effective_window(window, n, m)          # non-zeros per column
    original = window * k
    if representation == "ellpack_block":
        metadata = kept * k * math.ceil(math.log2(m)) / 32 if m > 1 else 0.0
        new = kept * k + metadata
    elif representation == "csr":
        nnz = kept * k
        metadata = nnz + window + 1
        new = 2 * nnz + window + 1
    elif representation == "csc":
        nnz = kept * k
        metadata = nnz + k + 1
        new = 2 * nnz + k + 1
    else:
        raise ValueError("representation: expected 'ellpack_block', 'csr' or 'csc', "
                         f"got {representation!r}")
    return {"original_filter_storage": original, "new_filter_storage": new,
            "filter_metadata_storage": metadata}


def read_topology(path: str | Path) -> list[ScaleSimLayer]:
    """Parse a SCALE-Sim convolution topology CSV the way SCALE-Sim does.

    The header row is skipped, every row must end with a comma, a ninth column may hold ``N:M``,
    and a layer whose name contains ``DP`` is expanded into one single-channel layer per channel
    (SCALE-Sim's depthwise convention).
    """
    path = Path(path)
    layers: list[ScaleSimLayer] = []
    lines = path.read_text().splitlines()
    for lineno, raw in enumerate(lines[1:], start=2):
        row = raw.strip()
        if not row:
            continue
        if not row.endswith(","):
            raise ValueError(f"{path}:{lineno}: SCALE-Sim rows must end with a comma: {row!r}")
        cells = [c.strip() for c in row.split(",")[:-1]]
        if len(cells) not in (8, 9):
            raise ValueError(f"{path}:{lineno}: expected 8 columns (+ optional N:M), "
                             f"got {len(cells)}")
        name = cells[0]
        try:
            h, w, r, s, c, k, stride = (int(x) for x in cells[1:8])
            nm = (1, 1)
            if len(cells) == 9:
                n_str, m_str = cells[8].split(":")
                nm = (int(n_str), int(m_str))
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: {exc}") from None
        if "DP" in name:
            layers += [ScaleSimLayer(f"{name}Channel_{i}", h, w, r, s, 1, k, stride, nm)
                       for i in range(c)]
        else:
            layers.append(ScaleSimLayer(name, h, w, r, s, c, k, stride, nm))
    return layers
