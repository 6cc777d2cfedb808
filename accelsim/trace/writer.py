"""Writing a :class:`~accelsim.trace.records.TraceData` to a trace file, atomically.

See :mod:`accelsim.trace.file_format` for the layout. The file is written to a
temporary name in the destination folder and renamed into place only when
complete, so a reader never sees a half-written trace.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from accelsim.atomic import atomic_write
from accelsim.trace import density as dens
from accelsim.trace.file_format import (FORMAT_NAME, GRAPH_NONZEROS_MEMBER, METADATA_MEMBER,
                                        SCHEMA_VERSION, graph_member, layer_member)
from accelsim.trace.records import ARRAY_STATS, CapturedLayer, StatisticalLayer, TraceData


class _HashingWriter:
    """File-like wrapper that hashes and counts what passes through it."""

    def __init__(self, fh):
        self._fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.size += view.nbytes
        return self._fh.write(view)


#: A mask member is deflated only when deflate shrinks a sample of it to at most this
#: fraction: packed bits of sparse activations gain about 2x and cost ~3.5 ns per byte to
#: inflate on every read, while constant masks (dense layers) shrink ~200x and inflate fast.
DEFLATE_MAX_RATIO = 0.25
_PROBE_PIECES, _PROBE_BYTES = 8, 8192   # the sample: evenly spaced pieces of the rows


def deflate_pays(chunks: list[np.ndarray], level: int = 1) -> bool:
    """Whether deflate shrinks packed mask rows to at most :data:`DEFLATE_MAX_RATIO`
    (estimated on evenly spaced pieces of the rows; deterministic); always for rows
    under 8 KiB."""
    sizes = [int(c.nbytes) for c in chunks]
    total = sum(sizes)
    if total < _PROBE_BYTES:   # small: reading costs nothing either way, deflate as always
        return True
    step = max(total // _PROBE_PIECES, 1)
    piece = min(step, _PROBE_BYTES)   # pieces never overlap (a repeat would deflate)
    flat = [np.ascontiguousarray(c).reshape(-1) for c in chunks]
    ends = np.cumsum(sizes)
    pieces = []
    for offset in range(0, total, step):
        k = int(np.searchsorted(ends, offset, side="right"))
        local = offset - (int(ends[k - 1]) if k else 0)
        pieces.append(flat[k][local:local + piece].tobytes())
    sample = b"".join(pieces)
    return len(zlib.compress(sample, level)) <= DEFLATE_MAX_RATIO * len(sample)


@contextlib.contextmanager
def _stored_if(zf: zipfile.ZipFile, stored: bool):
    """Members opened inside are written without deflate when ``stored``."""
    method = zf.compression
    if stored:
        zf.compression = zipfile.ZIP_STORED
    try:
        yield
    finally:
        zf.compression = method


def _write_npy_rows(zf: zipfile.ZipFile, name: str, chunks: list[np.ndarray],
                    row_bytes: int) -> dict:
    """Write uint8 row chunks as one (sum n_i, row_bytes) ``.npy`` member without concatenating.

    In a deflating archive the member is stored when deflate would gain little on it
    (:func:`deflate_pays`): readers then read its rows without inflating them.
    """
    rows = sum(int(c.shape[0]) for c in chunks)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
              "fortran_order": False, "shape": (rows, int(row_bytes))}
    stored = zf.compression != zipfile.ZIP_STORED and not deflate_pays(
        chunks, zf.compresslevel or 1)
    with _stored_if(zf, stored), zf.open(name, "w", force_zip64=True) as raw:
        out = _HashingWriter(raw)
        np.lib.format.write_array_header_1_0(out, header)
        for chunk in chunks:
            if chunk.dtype != np.uint8 or chunk.ndim != 2 or chunk.shape[1] != row_bytes:
                raise ValueError(f"{name}: activation chunk of shape {chunk.shape}, dtype "
                                 f"{chunk.dtype}; expected (n, {row_bytes}) uint8")
            out.write(np.ascontiguousarray(chunk).data)
    return {"sha256": out.sha.hexdigest(), "bytes": out.size}


def _write_npy(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> dict:
    with zf.open(name, "w", force_zip64=True) as raw:
        out = _HashingWriter(raw)
        np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)
    return {"sha256": out.sha.hexdigest(), "bytes": out.size}


def _layer_record(index: int, layer) -> dict:
    return {"index": index, "name": layer.name, "geometry": layer.geometry.to_dict(),
            "act_bits": int(layer.act_bits), "weight_bits": int(layer.weight_bits)}


def _write_captured(zf: zipfile.ZipFile, index: int, layer: CapturedLayer,
                    members: dict) -> dict:
    g = layer.geometry
    row_bytes = (g.C * g.H * g.W + 7) // 8
    name = layer_member(index, "weight_mask")
    if g.per_sample_weights:  # a matmul's second operand: one packed row per sample
        w_row = (g.K * g.c_per_group * g.R * g.S + 7) // 8
        members[name] = _write_npy_rows(zf, name, [np.asarray(layer.weight_packed)], w_row)
    else:
        members[name] = _write_npy(zf, name, np.asarray(layer.weight_packed, dtype=np.uint8))
    if getattr(layer, "out_packed", None) is not None:
        name = layer_member(index, "out_mask")
        members[name] = _write_npy_rows(zf, name, [np.asarray(layer.out_packed)],
                                        (g.K * g.P * g.Q + 7) // 8)
    name = layer_member(index, "act_mask")
    members[name] = _write_npy_rows(zf, name, list(layer.act_chunks), row_bytes)
    for key in ARRAY_STATS:
        name = layer_member(index, key)
        members[name] = _write_npy(zf, name, np.asarray(layer.stats[key], dtype=np.float64))
    record = _layer_record(index, layer)
    record["output_density"] = (None if layer.output_density is None
                                else float(layer.output_density))
    record["stats"] = {k: (None if layer.stats.get(k) is None else float(layer.stats[k]))
                       for k in ("act_density", "weight_density", "output_density")}
    extra = {k: v for k, v in layer.stats.items()
             if k not in ARRAY_STATS and k not in record["stats"]}
    record["stats"].update(extra)  # JSON-able notes such as padding_mode
    return record


def _write_statistical(zf: zipfile.ZipFile, index: int, layer: StatisticalLayer,
                       members: dict) -> dict:
    record = _layer_record(index, layer)
    record["output_density"] = None
    model = {}
    g = layer.geometry
    filter_len = g.c_per_group * g.R * g.S
    for tensor, value in (("act", layer.act_density), ("weight", layer.weight_density)):
        if isinstance(value, dens.NOfM):
            model[tensor] = {"model": "n_of_m", "n": value.n, "m": value.m,
                             "density": value.density(filter_len)}
        elif np.ndim(value) == 0:
            model[tensor] = {"model": "uniform", "density": float(value)}
        else:
            name = layer_member(index, f"{tensor}_density")
            members[name] = _write_npy(zf, name, np.asarray(value, dtype=np.float64))
            model[tensor] = {"model": "per_channel", "mean_density": dens.mean_density(value)}
    record["density_model"] = model
    record["stats"] = {"act_density": dens.mean_density(layer.act_density),
                       "weight_density": dens.mean_density(layer.weight_density, filter_len),
                       "output_density": None}
    return record


def _jsonable(value):
    """``json.dumps`` fallback: numpy scalars/arrays, paths and tuples become plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (os.PathLike, set, frozenset)):
        return str(value) if isinstance(value, os.PathLike) else sorted(value)
    raise TypeError(f"provenance value {value!r} of type {type(value).__name__} is not JSON-able")


def _write_graph(zf: zipfile.ZipFile, graph, members: dict, num_samples: int) -> dict:
    """The data-flow record (metadata), its tensors' mask rows and their per-sample non-zero
    counts (members; the counts let count-sized formats skip reading the masks)."""
    nonzeros = np.full((len(graph.tensors), int(num_samples)), -1, dtype=np.int64)
    for tensor in graph.tensors:
        if tensor.has_mask:
            mask = graph.mask(tensor.id)
            name = graph_member(tensor.id)
            members[name] = _write_npy_rows(zf, name, [np.packbits(mask, axis=1)],
                                            (tensor.elements + 7) // 8)
            nonzeros[tensor.id] = np.count_nonzero(mask.reshape(mask.shape[0], -1), axis=1)
    members[GRAPH_NONZEROS_MEMBER] = _write_npy(zf, GRAPH_NONZEROS_MEMBER, nonzeros)
    return graph.to_metadata()


METADATA_SHA_KEY = "metadata_sha256"


def metadata_sha256(metadata: dict) -> str:
    """SHA-256 of the canonical metadata JSON without its own ``metadata_sha256`` field."""
    meta = {k: v for k, v in metadata.items() if k != METADATA_SHA_KEY}
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def content_hash(metadata: dict) -> str:
    """SHA-256 of the canonical metadata JSON without the creation time (and its checksum)."""
    meta = copy.deepcopy({k: v for k, v in metadata.items() if k != METADATA_SHA_KEY})
    meta.get("provenance", {}).pop("created", None)
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def write_trace(path: str | os.PathLike, data: TraceData, compress: bool = True,
                compresslevel: int = 1) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path.

    ``compress`` deflates the members (level ``compresslevel``, 1 = fastest) except mask
    rows that deflate would shrink by less than 4x (:func:`deflate_pays`: the packed bits
    of sparse activations), which are stored so that reading them inflates nothing;
    ``compress=False`` stores every member. Masks are bit-packed either way, and either
    way every reader reads the file (the choice is per ZIP member).
    """
    path = Path(path)
    if not data.layers:
        raise ValueError("write_trace: the trace has no layers")
    path.parent.mkdir(parents=True, exist_ok=True)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=method,
                             compresslevel=compresslevel if compress else None,
                             allowZip64=True) as zf:
            members: dict[str, dict] = {}
            records = []
            for index, layer in enumerate(data.layers):
                if data.statistical:
                    records.append(_write_statistical(zf, index, layer, members))
                else:
                    records.append(_write_captured(zf, index, layer, members))
            untraced = [dict(entry) for entry in getattr(data, "untraced", [])]
            metadata = {
                "format": FORMAT_NAME,
                "schema_version": SCHEMA_VERSION,
                "statistical": bool(data.statistical),
                "num_samples": int(data.num_samples),
                "seed": None if data.seed is None else int(data.seed),
                "provenance": dict(data.provenance),
                "layers": records,
                "members": members,
            }
            if untraced:
                metadata["untraced"] = untraced
            graph = getattr(data, "graph", None)
            if graph is not None and not data.statistical:
                metadata["graph"] = _write_graph(zf, graph, members, data.num_samples)
            metadata = json.loads(json.dumps(metadata, default=_jsonable))  # as read back
            metadata[METADATA_SHA_KEY] = metadata_sha256(metadata)
            zf.writestr(METADATA_MEMBER, json.dumps(metadata, indent=1, sort_keys=True,
                                                         default=_jsonable))

    atomic_write(path, write, fsync=True)
    return path
