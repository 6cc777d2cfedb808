"""Dataflow mapping of a GEMM onto the PE array (SCALE-Sim's conventions).

=====================  ===================  =====================  ====================
dataflow               array rows <- (Sr)   array columns <- (Sc)  stream per PE (T)
=====================  ===================  =====================  ====================
output_stationary      output pixels ``M``  filters ``N``          reduction ``Kred``
weight_stationary      reduction ``Kred``   filters ``N``          output pixels ``M``
input_stationary       reduction ``Kred``   output pixels ``M``    filters ``N``
=====================  ===================  =====================  ====================

Folds: ``ceil(Sr/rows) * ceil(Sc/cols)`` per conv group (and stream chunk, see
:func:`map_gemm`), column folds outer, row folds inner. Each fold
pays a fixed pipeline fill + drain that depends only on the array size (SCALE-Sim
uses the full array dimensions even for partial folds); :func:`fill_drain` is the one
place that fixes it.
"""
from __future__ import annotations

from dataclasses import dataclass

from accelsim.sim.lower import Gemm

DF_OS, DF_WS, DF_IS = 0, 1, 2

DATAFLOW_CODES = {
    "output_stationary": DF_OS,
    "weight_stationary": DF_WS,
    "input_stationary": DF_IS,
}

#: Constant SCALE-Sim adds once per layer on top of the per-fold cycles (kept here so the
#: comparison with its reported cycles can be aligned in one place; the closed form
#: :func:`scalesim_compute_cycles` the tests compare with adds it).
SCALESIM_LAYER_OFFSET = 0


def fill_drain(dataflow: str, rows: int, cols: int) -> tuple[int, int]:
    """Per-fold (fill, drain) cycles of a ``rows x cols`` array.

    From SCALE-Sim v2's demand matrices: output stationary streams both operands in
    with a skew of ``rows - 1 + cols - 1`` cycles (outputs leave after the fold);
    weight and input stationary first load the stationary operand (``rows`` cycles),
    skew the streamed operand (``rows - 1``) and drain the last partial sums across the
    columns (``cols - 1``). So a dense fold with stream length ``T`` takes
    ``T + rows + cols - 2`` (OS) or ``T + 2*rows + cols - 2`` (WS/IS) cycles.
    """
    if dataflow == "output_stationary":
        return rows + cols - 2, 0
    if dataflow in ("weight_stationary", "input_stationary"):
        return 2 * rows - 1, cols - 1
    raise ValueError(f"dataflow: unknown {dataflow!r}")


@dataclass(frozen=True)
class Mapping:
    """A GEMM mapped onto an array: spatial sizes, stream length, stream chunks and folds."""

    dataflow: str
    rows: int
    cols: int
    Sr: int
    Sc: int
    T: int
    groups: int
    fill: int
    drain: int
    chunk: int = 0  # stream steps per chunk (0: the whole stream)

    @property
    def code(self) -> int:
        return DATAFLOW_CODES[self.dataflow]

    @property
    def row_folds(self) -> int:
        return -(-self.Sr // self.rows)

    @property
    def col_folds(self) -> int:
        return -(-self.Sc // self.cols)

    @property
    def chunk_steps(self) -> int:
        return self.chunk if 0 < self.chunk < self.T else self.T

    @property
    def chunks(self) -> int:
        """Stream chunks: passes over the array, each with its own folds."""
        return -(-self.T // self.chunk_steps)

    @property
    def folds(self) -> int:
        """Folds of one sample, all conv groups and stream chunks."""
        return self.groups * self.chunks * self.row_folds * self.col_folds

    @property
    def overhead(self) -> int:
        """Fill + drain cycles of every fold."""
        return self.fill + self.drain


def map_gemm(gemm: Gemm, dataflow: str, rows: int, cols: int,
             psum_capacity_bytes: float | None = None, acc_bits: int = 32) -> Mapping:
    """Map ``gemm`` onto a ``rows x cols`` array with ``dataflow``.

    Weight and input stationary accumulate partial sums across row folds: a column
    fold keeps ``T * cols`` of them in the global buffer. When that exceeds
    ``psum_capacity_bytes`` the stream is split into chunks that fit, each run as its
    own set of folds (the stationary operand is loaded again per chunk). SCALE-Sim
    never splits the stream, so dense cycles equal its formula only when the
    partial sums fit (or ``psum_capacity_bytes`` is None).
    """
    if dataflow == "output_stationary":
        sr, sc, t = gemm.M, gemm.N, gemm.Kred
    elif dataflow == "weight_stationary":
        sr, sc, t = gemm.Kred, gemm.N, gemm.M
    elif dataflow == "input_stationary":
        sr, sc, t = gemm.Kred, gemm.M, gemm.N
    else:
        raise ValueError(f"dataflow: unknown {dataflow!r}")
    fill, drain = fill_drain(dataflow, rows, cols)
    chunk = 0
    if dataflow != "output_stationary" and psum_capacity_bytes is not None and sr > rows:
        per_step = min(cols, sc) * acc_bits / 8.0
        if t * per_step > psum_capacity_bytes:
            chunk = max(1, int(psum_capacity_bytes // per_step))
    return Mapping(dataflow, rows, cols, sr, sc, t, gemm.groups, fill, drain, chunk)


def scalesim_compute_cycles(gemm: Gemm, dataflow: str, rows: int, cols: int) -> int:
    """SCALE-Sim's dense compute cycles of one sample: folds x (T + fill + drain) + offset."""
    mapping = map_gemm(gemm, dataflow, rows, cols)
    return mapping.folds * (mapping.T + mapping.overhead) + SCALESIM_LAYER_OFFSET
