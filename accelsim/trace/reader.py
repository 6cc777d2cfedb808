"""Reading trace files lazily: :func:`open_trace` and :class:`Trace`.

Opening a trace reads only its ``metadata.json``; each ``LayerTrace`` reads its own
members when its masks are asked for (see :mod:`accelsim.trace.file_format`).
Every problem with the file raises :class:`~accelsim.errors.TraceError` naming the
file and what is wrong.
"""
from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import io
import json
import os
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from accelsim.errors import AccelsimError, TraceError
from accelsim.inputs import check_regular_file
from accelsim.trace import density as dens
from accelsim.trace.file_format import (FORMAT_NAME, GRAPH_NONZEROS_MEMBER, MAX_DIM,
                                        MAX_ELEMENTS, MAX_METADATA_BYTES, MAX_SAMPLES,
                                        METADATA_MEMBER, READABLE_VERSIONS, SCHEMA_VERSION,
                                        geometry_limit_error, graph_member, layer_member)
from accelsim.trace.bits import unpack_flat, unpack_rows
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.layer import LayerTrace
from accelsim.trace.phases import PHASES
from accelsim.trace.records import ARRAY_STATS, StatisticalLayer, statistical_layer_trace
from accelsim.trace.writer import METADATA_SHA_KEY
from accelsim.trace.writer import content_hash as _content_hash
from accelsim.trace.writer import metadata_sha256 as _metadata_sha256

# RuntimeError: zipfile's "is encrypted, password required" (a flipped flag bit)
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
                RuntimeError, SyntaxError, tokenize.TokenError)   # the last two: a mangled npy header


class _HashingReader:
    """File-like wrapper that counts what is read through it and (``hashing``) hashes it."""

    def __init__(self, fh, hashing: bool = True):
        self._fh = fh
        self.sha = hashlib.sha256() if hashing else None
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        if self.sha is not None:
            self.sha.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) the rest without keeping it."""
        while self.read(_STREAM_BYTES):
            pass


def _npy_header(fh, shape: tuple, dtype: np.dtype) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran order, dtype) of the ``.npy`` header at ``fh``.

    A version-1.0 header byte-for-byte equal to the one NumPy writes for the expected
    ``shape`` and ``dtype`` (every member accelsim writes) is taken as read: NumPy's reader
    parses the header text with ``ast.literal_eval``, 0.2 ms a member, 0.08 s of a ResNet-50
    simulate. Any other header is parsed by NumPy, as before.
    """
    version = np.lib.format.read_magic(fh)
    if version != (1, 0):
        return np.lib.format.read_array_header_2_0(fh)
    length = fh.read(2)
    text = fh.read(int.from_bytes(length, "little")) if len(length) == 2 else b""
    dtype = np.dtype(dtype)
    if text == _header_text(tuple(int(d) for d in shape), dtype.str):
        return tuple(shape), False, dtype
    return np.lib.format.read_array_header_1_0(io.BytesIO(length + text))


@functools.lru_cache(maxsize=4096)
def _header_text(shape: tuple, dtype_str: str) -> bytes:
    """The header text (after magic, version and length) NumPy writes for ``shape``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype_str)), "fortran_order": False,
        "shape": shape})
    return buf.getvalue()[10:]


_HEADER_SLACK = 1 << 16  # bytes an .npy header may take beyond the data
_STREAM_BYTES = 1 << 20  # piece size of streaming reads (hashing what is not kept)


def row_popcounts(packed: np.ndarray, width: int) -> np.ndarray:
    """int64 (rows,): set bits of each ``np.packbits`` row (uint8 (rows, ceil(width/8)), big bit
    order) among its first ``width`` bits (pad bits are not mask bits)."""
    rows, nbytes = packed.shape
    if nbytes == 0:
        return np.zeros(rows, dtype=np.int64)
    if nbytes % 8 == 0 and packed.flags.c_contiguous:   # 8x fewer elements to count and sum
        counts = np.bitwise_count(packed.view(np.uint64)).sum(axis=1, dtype=np.int64)
    else:
        counts = np.bitwise_count(packed).sum(axis=1, dtype=np.int64)
    tail = width % 8
    if tail:
        counts -= np.bitwise_count(packed[:, -1] & np.uint8((1 << (8 - tail)) - 1))
    return counts


class _Check:
    """Derived records of one member, checked against it in the pass that verifies its
    SHA-256 (no pass of its own): ``rows`` is called with the member's per-row non-zero counts
    (a rows member of ``width`` bits per row, counted as the pass streams the rows),
    ``whole`` with the member's array when it is read whole (``read_array``). Either raises
    :class:`TraceError`; the member then stays unverified, so every later read fails too."""

    def __init__(self, width: int | None = None, rows=None, whole=None):
        self.width, self._rows, self._whole = width, rows, whole

    def counter(self) -> "_RowCounter | None":
        return None if self._rows is None else _RowCounter(self.width, self._rows)

    def whole(self, array: np.ndarray) -> None:
        if self._whole is not None:
            self._whole(array)
        elif self._rows is not None:
            self._rows(row_popcounts(array.reshape(array.shape[0], -1), self.width))


class _RowCounter:
    """Per-row non-zero counts gathered during one streaming pass over a rows member."""

    def __init__(self, width: int, done):
        self.width, self._done, self._parts = width, done, []

    def add(self, rows: np.ndarray) -> None:
        self._parts.append(row_popcounts(rows, self.width))

    def finish(self) -> None:
        self._done(np.concatenate(self._parts) if self._parts else np.zeros(0, np.int64))


class _RowStream:
    """Rows of an open rows member read in order; every row read goes to ``counter``."""

    def __init__(self, fh: _HashingReader, shape: tuple[int, int], counter: _RowCounter | None):
        self.fh, self.shape, self.counter = fh, shape, counter
        self.done = 0   # rows consumed

    def take(self, rows: int) -> np.ndarray:
        want = rows * self.shape[1]
        data = self.fh.read(want)
        if len(data) != want:
            raise EOFError(f"member ends after {self.fh.size} bytes, within its rows")
        out = np.frombuffer(data, dtype=np.uint8).reshape(rows, self.shape[1])
        self.done += rows
        if self.counter is not None:
            self.counter.add(out)
        return out

    def skip(self, rows: int) -> None:
        """Read past ``rows`` rows (counted when there is a counter)."""
        piece = max(1, _STREAM_BYTES // max(self.shape[1], 1))
        if self.counter is not None:
            while rows > 0:
                rows -= self.take(min(piece, rows)).shape[0]
            return
        skip = rows * self.shape[1]
        while skip > 0:
            data = self.fh.read(min(skip, _STREAM_BYTES))
            if not data:
                raise EOFError(f"member ends after {self.fh.size} bytes, within its rows")
            skip -= len(data)
        self.done += rows

    def drain(self) -> None:
        """The remaining rows (counted), then anything after them (hashed, not kept)."""
        if self.counter is not None:
            self.skip(self.shape[0] - self.done)
        self.fh.drain()


class _Archive:
    """An open trace container; every failure becomes a TraceError naming the file.

    Reads check the member's declared size and ``.npy`` header against the shape the
    caller expects before allocating, and its SHA-256 against ``metadata.json`` (once per
    member and open archive: later reads of a verified member skip the hash, never the
    header, size or ZIP checks).
    """

    def __init__(self, path: Path, members: dict | None = None, check_for=None):
        self.path = path
        self._members = members or {}
        self._verified: set[str] = set()
        # member name -> _Check or None: the derived records checked in the member's verifying pass
        self._check_for = check_for or (lambda name: None)
        try:
            check_regular_file(path, "trace file")
        except AccelsimError as exc:
            raise TraceError(str(exc)) from None
        try:
            self._zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise TraceError(f"{path}: trace file not found") from None
        except IsADirectoryError:
            raise TraceError(f"{path}: is a directory, expected a trace file") from None
        except _READ_ERRORS as exc:
            raise TraceError(f"{path}: not a readable trace file; it is truncated or not a "
                             f"trace at all ({type(exc).__name__}: {exc})") from None

    def close(self) -> None:
        self._zip.close()

    @contextlib.contextmanager
    def _member(self, name: str):
        """Turn a missing or unreadable member into a :class:`TraceError` naming it."""
        try:
            yield
        except KeyError:
            raise TraceError(f"{self.path}: member {name!r} is missing; the trace is corrupt "
                             "or truncated, re-capture or re-copy it") from None
        except _READ_ERRORS as exc:
            raise TraceError(f"{self.path}: member {name!r} is corrupt "
                             f"({type(exc).__name__}: {exc})") from None

    def _size(self, name: str, limit: int) -> int:
        """The member's declared uncompressed size, refused above ``limit`` before reading."""
        with self._member(name):
            size = self._zip.getinfo(name).file_size
        if size > limit:
            raise TraceError(f"{self.path}: member {name!r} declares {size:,} bytes; at most "
                             f"{limit:,} are possible for it (the trace is corrupt or hostile)")
        return size

    def _recorded_sha(self, name: str) -> str:
        entry = self._members.get(name)
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(sha, str):
            raise TraceError(f"{self.path}: member {name!r} has no SHA-256 in metadata.json; "
                             "the trace is corrupt, re-capture or re-copy it")
        return sha

    def _check_sha(self, name: str, actual: str) -> None:
        if actual != self._recorded_sha(name):
            raise TraceError(f"{self.path}: member {name!r} is corrupt (its SHA-256 does not "
                             "match the one recorded in metadata.json)")

    def read_bytes(self, name: str, limit: int, checked: bool = True) -> bytes:
        """A whole member of at most ``limit`` bytes, its SHA-256 checked unless ``checked`` is off."""
        self._size(name, limit)
        with self._member(name):
            data = self._zip.read(name)
        if checked and name not in self._verified:
            self._check_sha(name, hashlib.sha256(data).hexdigest())
            self._verified.add(name)
        return data

    def read_array(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A whole ``.npy`` member that must hold exactly ``shape`` of ``dtype`` (on its first
        read, the member's derived records are checked against it, see :class:`_Check`)."""
        dtype = np.dtype(dtype)
        want = int(np.prod(shape, dtype=object)) * dtype.itemsize
        verify = name not in self._verified
        data = self.read_bytes(name, want + _HEADER_SLACK, checked=False)
        if verify:
            self._check_sha(name, hashlib.sha256(data).hexdigest())
        array = self._parse_array(name, data, shape, dtype, want)
        if verify:
            check = self._check_for(name)
            if check is not None:
                check.whole(array)
            self._verified.add(name)
        return array

    def _parse_array(self, name: str, data: bytes, shape: tuple, dtype: np.dtype,
                     want: int) -> np.ndarray:
        try:
            fh = io.BytesIO(data)
            self._check_header(name, _npy_header(fh, shape, dtype), shape, dtype)
            body = fh.read()
        except _READ_ERRORS as exc:
            raise TraceError(f"{self.path}: member {name!r} is not a valid array "
                             f"({type(exc).__name__}: {exc})") from None
        if len(body) != want:
            raise TraceError(f"{self.path}: member {name!r} holds {len(body):,} data bytes; "
                             f"shape {shape} needs {want:,}")
        return np.frombuffer(body, dtype=dtype).reshape(shape)

    def _check_header(self, name: str, header, shape: tuple, dtype: np.dtype) -> None:
        got_shape, fortran, got_dtype = header
        if tuple(got_shape) != tuple(shape) or fortran or got_dtype != dtype:
            raise TraceError(f"{self.path}: member {name!r} is a {got_dtype} array of shape "
                             f"{tuple(got_shape)}; the layer geometry and sample count imply "
                             f"{dtype} {tuple(shape)}")

    def _open_rows(self, name: str, shape: tuple[int, int], hashing: bool):
        """Open a uint8 ``.npy`` member of exactly ``shape``, positioned at its first row.

        Returns ``(raw, rows, size)``: the open member (close it), a :class:`_RowStream` over
        it (``hashing``: hashing what it reads and feeding every row to the member's
        :class:`_Check`, if it has one) and the member's declared size.
        """
        want = shape[0] * shape[1]
        size = self._size(name, want + _HEADER_SLACK)
        raw = self._zip.open(name)
        try:
            if hashing and hasattr(raw, "_expected_crc"):
                self._recorded_sha(name)   # the SHA-256 checked after the pass replaces CRC-32
                raw._expected_crc = None   # (CPython's ZipExtFile: None skips the CRC update)
            fh = _HashingReader(raw, hashing)
            self._check_header(name, _npy_header(fh, shape, np.uint8), shape, np.dtype(np.uint8))
            if size != fh.size + want:
                raise TraceError(f"{self.path}: member {name!r} declares {size:,} bytes; shape "
                                 f"{shape} needs {fh.size + want:,}")
        except BaseException:
            raw.close()
            raise
        check = self._check_for(name) if hashing else None
        return raw, _RowStream(fh, shape, None if check is None else check.counter()), size

    def _finish(self, name: str, rows: "_RowStream", size: int) -> None:
        """Stream the rest of the member through the hash (and its check's row counts) and
        check both (once per member and open archive)."""
        rows.drain()
        fh = rows.fh
        if fh.size != size:
            raise EOFError(f"member ends after {fh.size} of {size} bytes")
        self._check_sha(name, fh.sha.hexdigest())
        if rows.counter is not None:
            rows.counter.finish()
        self._verified.add(name)

    def verify(self, name: str, shape: tuple[int, int], again: bool = False) -> None:
        """Check a rows member's header, size, SHA-256 and derived records by streaming it
        once (not kept); done once per member and open archive (``again``: even if done)."""
        if name in self._verified and not again:
            return
        with self._member(name):
            raw, rows, size = self._open_rows(name, shape, True)
            with raw:
                self._finish(name, rows, size)

    def read_rows(self, name: str, rows: int, shape: tuple[int, int]) -> np.ndarray:
        """The first ``rows`` rows of a uint8 member of exactly ``shape``.

        The rest of the member is streamed through its SHA-256 (not kept) before the
        rows are returned, once per member and open archive.
        """
        return self.read_row_block(name, shape, 0, rows)

    def read_row_block(self, name: str, shape: tuple[int, int], start: int,
                       stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of a uint8 member of exactly ``shape``, returned only after
        the whole member's SHA-256 was checked (streamed, not kept; once per member and open
        archive)."""
        if not 0 <= start <= stop <= shape[0]:
            raise ValueError(f"rows [{start}, {stop}) are outside the member's {shape[0]} rows")
        verify = name not in self._verified
        with self._member(name):
            raw, stream, size = self._open_rows(name, shape, verify)
            with raw:
                stream.skip(start)   # a ZIP member is a stream: read past the rows before
                rows = stream.take(stop - start)
                if verify:
                    self._finish(name, stream, size)
        return rows

    def row_blocks(self, name: str, shape: tuple[int, int], rows: int,
                   size: int) -> Iterator[tuple[int, np.ndarray]]:
        """Rows ``[0, rows)`` of a uint8 member of exactly ``shape`` in blocks of at most
        ``size`` rows, ``(start, uint8 (n, shape[1]))``, from ONE streaming pass (nothing but
        the current block is held).

        Until the member's SHA-256 has been checked in this open archive, the pass hashes
        what it reads and, after the last block, the rest of the member: a corrupt member
        raises :class:`TraceError` from the iteration before it ends. Blocks are therefore
        provisional until the iteration has finished; consume it to the end before trusting
        anything computed from them.
        """
        if size < 1 or not 0 <= rows <= shape[0]:
            raise ValueError(f"row_blocks: {rows} rows of {shape[0]} in blocks of {size}")
        verify = name not in self._verified
        with self._member(name):
            raw, stream, total = self._open_rows(name, shape, verify)
            with raw:
                for start in range(0, rows, size):
                    yield start, stream.take(min(size, rows - start))
                if verify:
                    self._finish(name, stream, total)


class Trace:
    """A trace file opened lazily. Iterating yields one ``LayerTrace`` at a time.

    Attributes: ``path``, ``schema_version``, ``provenance`` (dict), ``is_statistical``,
    ``num_samples``, ``layer_names`` (execution order), ``content_hash``, ``seed``.
    """

    def __init__(self, path: Path, metadata: dict):
        self.path = path
        self._meta = metadata
        self.schema_version: int = metadata["schema_version"]
        self.provenance: dict = metadata.get("provenance", {})
        self.is_statistical: bool = bool(metadata.get("statistical", False))
        self.num_samples: int = int(metadata["num_samples"])
        self.seed: int | None = metadata.get("seed")
        self._records: list[dict] = metadata["layers"]
        self.untraced: list[dict] = _untraced(path, metadata.get("untraced", []))
        self._graph_meta = _graph_metadata(path, metadata)
        self._graph = None
        self._graph_nnz: np.ndarray | None = None
        self.layer_names: list[str] = [r["name"] for r in self._records]
        self._index = {name: i for i, name in enumerate(self.layer_names)}
        self._hash: str | None = None
        self._open: _Archive | None = None
        self._open_pid = -1
        self._geometries: list[LayerGeometry] = []
        for i, record in enumerate(self._records):
            try:
                geometry = LayerGeometry.from_dict(record["geometry"])
            except (TypeError, ValueError, KeyError) as exc:
                raise TraceError(f"{path}: layer {i} ({record.get('name')!r}) has an invalid "
                                 f"geometry: {exc}") from None
            problem = geometry_limit_error(geometry)
            if problem is None and geometry.N != self.num_samples:
                problem = f"N = {geometry.N}, but the trace has num_samples = {self.num_samples}"
            if problem:
                raise TraceError(f"{path}: layer {i} ({record.get('name')!r}): geometry: "
                                 f"{problem}")
            self._geometries.append(geometry)
        _check_phases(path, metadata, self._geometries)
        # Derived records checked in the pass that verifies the member they derive from
        # (see _Check): member name -> (what, index).
        self._checks: dict[str, tuple[str, int]] = {}
        if not self.is_statistical:
            for i in range(len(self._records)):
                self._checks[layer_member(i, "act_mask")] = ("act", i)
                self._checks[layer_member(i, "weight_mask")] = ("weight", i)
        for t in (self._graph_meta or {}).get("tensors", []):
            if t["has_mask"]:
                self._checks[graph_member(t["id"])] = ("graph", t["id"])
        self._layer_arrays: dict[int, dict] = {}       # layer -> its ARRAY_STATS, once read
        self._graph_counts: dict[int, np.ndarray] = {}  # tensor -> non-zeros per sample, checked

    def close(self) -> None:
        """Close the file handle (reopened on the next read)."""
        if self._open is not None:
            self._open.close()
            self._open = None

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict:  # picklable for worker processes: no open handle
        state = dict(self.__dict__)
        state["_open"] = None
        return state

    @property
    def content_hash(self) -> str:
        """Stable hex SHA-256 identifying the trace content (see ``file_format``)."""
        if self._hash is None:
            self._hash = _content_hash(self._meta)
        return self._hash

    @property
    def metadata(self) -> dict:
        """The parsed ``metadata.json`` (read-only by convention)."""
        return self._meta

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[LayerTrace]:
        for i in range(len(self._records)):
            yield self.layer(i)

    def __repr__(self) -> str:
        kind = "statistical" if self.is_statistical else "captured"
        return f"Trace({str(self.path)!r}, {kind}, {len(self)} layers, N={self.num_samples})"

    @property
    def graph(self):
        """The forward's data flow with the ops between layers
        (:class:`~accelsim.trace.graph.OpGraph`), or None when the trace does not record
        it (captured before accelsim recorded it, or statistical): those ops are unknown."""
        if self._graph_meta is None:
            return None
        if self._graph is None:
            from accelsim.trace.graph import GraphOp, GraphTensor, OpGraph, record_problem

            meta = self._graph_meta
            # the records against each other and the layer geometries (metadata only)
            problem = record_problem(meta["tensors"], meta["ops"], self._geometries,
                                     self.layer_names)
            if problem:
                raise TraceError(f"{self.path}: metadata.json graph.{problem}")
            tensors = [GraphTensor(t["id"], tuple(t["shape"]), t["elements"], t["per_sample"],
                                   t["source"], t["producer"], t["alias_of"], t["inplace_of"],
                                   t["density"], t["has_mask"]) for t in meta["tensors"]]
            ops = [GraphOp(o["index"], o["kind"], o["op"], o["name"], list(o["inputs"]),
                           list(o["outputs"]), o["layer"], o["params"], o["inplace"],
                           dict(o["attrs"])) for o in meta["ops"]]
            n = self.num_samples

            def load(tid: int, samples: int | None) -> np.ndarray:
                rows = n if samples is None else max(1, min(int(samples), n))
                width = tensors[tid].elements
                packed = self._archive().read_rows(graph_member(tid), rows,
                                                   (n, (width + 7) // 8))
                return unpack_rows(packed, (rows, width))

            def packed_blocks(tid: int, samples: int | None, size: int):
                rows = n if samples is None else max(1, min(int(samples), n))
                width = tensors[tid].elements
                yield from self._archive().row_blocks(graph_member(tid), (n, (width + 7) // 8),
                                                      rows, size)

            def blocks(tid: int, samples: int | None, size: int):
                width = tensors[tid].elements
                for start, packed in packed_blocks(tid, samples, size):
                    yield start, unpack_rows(packed, (packed.shape[0], width))

            load.blocks = blocks   # see OpGraph.mask_blocks
            load.packed_blocks = packed_blocks   # see OpGraph.packed_blocks
            if GRAPH_NONZEROS_MEMBER in self._meta.get("members", {}):
                load.nonzeros = self._graph_nonzeros   # see OpGraph.nonzeros
            self._graph = OpGraph(tensors, ops, list(meta["outputs"]), load, n)
        return self._graph

    def _graph_nonzeros(self, tid: int, samples: int | None) -> np.ndarray:
        """Tensor ``tid``'s recorded non-zeros (``graph/nonzeros.npy``) in each of its first
        ``samples`` samples, checked against its mask before first use: the pass that
        verifies the mask member's SHA-256 (run here at the tensor's first use unless a mask
        read already did) counts its rows (:meth:`_graph_counted`)."""
        counts = self._graph_counts.get(tid)
        if counts is None:
            tensor = self._graph_meta["tensors"][tid]
            shape = (self.num_samples, (tensor["elements"] + 7) // 8)
            archive = self._archive()
            archive.verify(graph_member(tid), shape)
            counts = self._graph_counts.get(tid)
            if counts is None:   # verified before its counts were kept (not expected): recount
                archive.verify(graph_member(tid), shape, again=True)
                counts = self._graph_counts[tid]
        rows = self.num_samples if samples is None else max(1, min(int(samples),
                                                                    self.num_samples))
        return counts[:rows]

    def _recorded_nonzeros(self) -> np.ndarray | None:
        """The writer's ``graph/nonzeros.npy`` (range-checked, once per open trace), or None
        for a trace written before it existed."""
        if GRAPH_NONZEROS_MEMBER not in self._meta.get("members", {}):
            return None
        if self._graph_nnz is None:
            tensors = self._graph_meta["tensors"]
            shape = (len(tensors), self.num_samples)
            counts = self._archive().read_array(GRAPH_NONZEROS_MEMBER, shape, "<i8")
            masked = np.array([t["has_mask"] for t in tensors], dtype=bool)
            limit = np.array([t["elements"] for t in tensors], dtype=np.int64)[:, None]
            ok = np.where(masked[:, None], (counts >= 0) & (counts <= limit), counts == -1)
            if not ok.all():
                bad = int(np.argwhere(~ok)[0][0])
                raise TraceError(f"{self.path}: member {GRAPH_NONZEROS_MEMBER!r}: tensor {bad} "
                                 "expected a non-zero count from 0 to its elements per sample "
                                 "(-1 for a tensor without a mask); the trace is corrupt")
            self._graph_nnz = counts
        return self._graph_nnz

    # -- derived records checked against the members they derive from ---------------------

    def _member_check(self, name: str) -> _Check | None:
        """The :class:`_Check` of member ``name`` (its derived records), or None."""
        spec = self._checks.get(name)
        if spec is None:
            return None
        what, index = spec
        if what == "graph":
            width = self._graph_meta["tensors"][index]["elements"]
            return _Check(width, rows=functools.partial(self._graph_counted, index))
        g = self._geometries[index]
        if what == "act":
            return _Check(g.C * g.H * g.W, rows=functools.partial(self._act_counted, index))
        return _Check(whole=functools.partial(self._weights_checked, index))

    def _graph_counted(self, tid: int, counts: np.ndarray) -> None:
        tensor = self._graph_meta["tensors"][tid]
        recorded = self._recorded_nonzeros()
        if recorded is not None:
            bad = np.flatnonzero(recorded[tid] != counts)
            if bad.size:
                s = int(bad[0])
                raise TraceError(
                    f"{self.path}: member {GRAPH_NONZEROS_MEMBER!r}: tensor {tid}, sample {s}: "
                    f"records {int(recorded[tid, s])} non-zeros but its mask "
                    f"{graph_member(tid)!r} has {int(counts[s])}; the trace is corrupt or was "
                    "edited")
        density = tensor["density"]
        total = counts.size * tensor["elements"]
        if density is not None and total and abs(density - counts.sum() / total) > _DENSITY_TOL:
            raise TraceError(f"{self.path}: metadata.json graph.tensors[{tid}]: density: "
                             f"records {density!r} but its mask {graph_member(tid)!r} has "
                             f"{counts.sum() / total!r}; the trace is corrupt or was edited")
        self._graph_counts[tid] = counts

    def _layer_stat(self, index: int, key: str) -> np.ndarray:
        arrays = self._layer_arrays.get(index)
        if arrays is None or key not in arrays:
            g = self._geometries[index]
            length = dict(zip(ARRAY_STATS, (g.C, g.N, g.K)))[key]
            return self._archive().read_array(layer_member(index, key), (length,), np.float64)
        return arrays[key]

    def _act_counted(self, index: int, counts: np.ndarray) -> None:
        g = self._geometries[index]
        recorded = self._layer_stat(index, "act_density_per_sample") * (g.C * g.H * g.W)
        self._counts_agree(index, "act_density_per_sample", "act_mask", recorded, counts,
                           "sample", "activations")

    def _weights_checked(self, index: int, packed: np.ndarray) -> None:
        g = self._geometries[index]
        length = g.c_per_group * g.R * g.S
        copies = g.N if g.per_sample_weights else 1
        if length % 8 == 0:   # each filter whole bytes: count the packed bits
            counts = row_popcounts(packed.reshape(copies * g.K, length // 8), length)
        elif g.per_sample_weights:
            counts = unpack_rows(packed, g.weight_mask_shape).reshape(copies * g.K, length).sum(
                axis=1, dtype=np.int64)
        else:
            counts = unpack_flat(packed, g.weight_shape).reshape(g.K, length).sum(
                axis=1, dtype=np.int64)
        counts = counts.reshape(copies, g.K).sum(axis=0)
        recorded = self._layer_stat(index, "weight_density_per_filter") * (copies * length)
        self._counts_agree(index, "weight_density_per_filter", "weight_mask", recorded, counts,
                           "filter", "weights")

    def _counts_agree(self, index: int, stat: str, mask: str, recorded: np.ndarray,
                      counts: np.ndarray, unit: str, what: str) -> None:
        """One line naming both members when a recorded count is not the mask's popcount."""
        bad = np.flatnonzero(np.abs(recorded - counts) > _COUNT_TOL)
        if bad.size:
            i = int(bad[0])
            raise TraceError(
                f"{self.path}: layer {index} ({self.layer_names[index]!r}): member "
                f"{layer_member(index, stat)!r}: {unit} {i} records {recorded[i]:.6g} non-zero "
                f"{what} but the mask {layer_member(index, mask)!r} has {int(counts[i])}; the "
                "trace is corrupt or was edited")

    def geometry(self, key: int | str) -> LayerGeometry:
        """Geometry of one layer, from the metadata only."""
        return self._geometries[self._resolve(key)]

    def _resolve(self, key: int | str) -> int:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            index = int(key)
            if -len(self) <= index < len(self):
                return index % len(self)
            raise TraceError(f"{self.path}: no layer {index}; the trace has {len(self)} layers "
                             f"(0..{len(self) - 1})")
        if isinstance(key, str):
            if key in self._index:
                return self._index[key]
            close = difflib.get_close_matches(key, self.layer_names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise TraceError(f"{self.path}: no layer named {key!r}{hint} "
                             f"(the trace has {len(self)} layers; `accelsim trace info` lists them)")
        raise TraceError(f"{self.path}: a layer is addressed by index or name, got {key!r}")

    def layer(self, key: int | str) -> LayerTrace:
        """One layer by index or name; its masks are read only when asked for."""
        index = self._resolve(key)
        record = self._records[index]
        geometry = self._geometries[index]
        if self.is_statistical:
            return statistical_layer_trace(index, self._statistical_layer(index, record, geometry),
                                           int(self.seed or 0))
        return self._captured_layer(index, record, geometry)

    # -- captured layers ---------------------------------------------------------------

    def _archive(self) -> _Archive:
        """The container, opened once and kept (its directory is parsed only once)."""
        # A forked worker must not share the parent's file offset: reopen per process.
        if self._open is None or self._open_pid != os.getpid():
            self._open = _Archive(self.path, self._meta.get("members"), self._member_check)
            self._open_pid = os.getpid()
        return self._open

    def _captured_layer(self, index: int, record: dict, geometry: LayerGeometry) -> LayerTrace:
        stats = dict(record.get("stats", {}))
        archive = self._archive()
        g = geometry
        for key, length in zip(ARRAY_STATS, (g.C, g.N, g.K)):
            values = archive.read_array(layer_member(index, key), (length,), np.float64)
            _check_densities(self.path, index, record["name"], key, values)
            stats[key] = values
        _check_stat_means(self.path, index, record, stats)
        self._layer_arrays[index] = {key: stats[key] for key in ARRAY_STATS}
        weight_name = layer_member(index, "weight_mask")
        act_name = layer_member(index, "act_mask")
        weight_row = (g.K * g.c_per_group * g.R * g.S + 7) // 8
        act_shape = (g.N, (g.C * g.H * g.W + 7) // 8)

        def load_weights() -> np.ndarray:
            if geometry.per_sample_weights:  # one row per sample (a matmul's 2nd operand)
                packed = self._archive().read_array(weight_name, (g.N, weight_row), np.uint8)
                return unpack_rows(packed, geometry.weight_mask_shape)
            packed = self._archive().read_array(weight_name, (weight_row,), np.uint8)
            return unpack_flat(packed, geometry.weight_shape)

        def load_acts(n: int) -> np.ndarray:
            archive = self._archive()
            packed = (archive.read_array(act_name, act_shape, np.uint8) if n >= geometry.N
                      else archive.read_rows(act_name, n, act_shape))
            return unpack_rows(packed[:n], (n,) + geometry.act_shape[1:])

        def act_blocks(n: int, size: int):
            for start, packed in self._archive().row_blocks(act_name, act_shape, n, size):
                yield start, unpack_rows(packed, (packed.shape[0],) + geometry.act_shape[1:])

        def act_block(start: int, stop: int) -> np.ndarray:
            packed = self._archive().read_row_block(act_name, act_shape, start, stop)
            return unpack_rows(packed, (stop - start,) + geometry.act_shape[1:])

        out_name = layer_member(index, "out_mask")
        load_out = None
        if out_name in self._meta.get("members", {}):
            out_shape = (g.N, (g.K * g.P * g.Q + 7) // 8)

            def load_out(n: int) -> np.ndarray:
                packed = self._archive().read_rows(out_name, n, out_shape)
                try:
                    return unpack_rows(packed, (n,) + geometry.output_shape[1:])
                except ValueError as exc:
                    raise TraceError(f"{self.path}: {out_name!r} does not match the layer "
                                     f"geometry {geometry.output_shape}: {exc}") from None

        return LayerTrace(index, record["name"], geometry, record["act_bits"],
                          record["weight_bits"], load_weights, load_acts,
                          output_density=record.get("output_density"), stats=stats,
                          out_loader=load_out, act_blocks_loader=act_blocks,
                          act_block_loader=act_block)

    # -- statistical layers ------------------------------------------------------------

    def _statistical_layer(self, index: int, record: dict,
                           geometry: LayerGeometry) -> StatisticalLayer:
        model = record.get("density_model")
        if not isinstance(model, dict):
            raise TraceError(f"{self.path}: layer {index} ({record['name']!r}) of a statistical "
                             "trace has no density_model")
        densities = {}
        for tensor in ("act", "weight"):
            spec = model.get(tensor, {})
            if not isinstance(spec, dict):
                raise TraceError(f"{self.path}: layer {index} ({record['name']!r}): "
                                 f"density_model.{tensor}: expected a mapping with 'model', got "
                                 f"{type(spec).__name__}")
            kind = spec.get("model")
            if kind == "uniform":
                densities[tensor] = spec.get("density")
            elif kind == "n_of_m" and tensor == "weight":
                densities[tensor] = dens.NOfM(spec.get("n"), spec.get("m"))
            elif kind == "per_channel":
                length = geometry.C if tensor == "act" else geometry.K
                densities[tensor] = self._archive().read_array(
                    layer_member(index, f"{tensor}_density"), (length,), np.float64)
            else:
                raise TraceError(f"{self.path}: layer {index} ({record['name']!r}): "
                                 f"density_model.{tensor}.model: expected 'uniform', "
                                 f"'per_channel' or (weights) 'n_of_m', got {kind!r}")
        try:
            return StatisticalLayer(record["name"], geometry, record["act_bits"],
                                    record["weight_bits"], densities["act"], densities["weight"])
        except Exception as exc:  # AccelsimError from validation, TypeError from bad JSON types
            raise TraceError(f"{self.path}: layer {index} ({record['name']!r}): {exc}") from None


def _check_metadata(path: Path, meta) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise TraceError(f"{path}: not an accelsim trace (metadata.json has no "
                         f"\"format\": \"{FORMAT_NAME}\")")
    version = meta.get("schema_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        advice = ("it was written by a newer accelsim; upgrade accelsim" if newer
                  else "re-capture the trace with this accelsim")
        raise TraceError(f"{path}: trace schema version {version!r} is not supported (this "
                         f"accelsim reads versions {', '.join(map(str, READABLE_VERSIONS))}); "
                         f"{advice}")
    for key, kind in (("num_samples", int), ("layers", list)):
        if not isinstance(meta.get(key), kind):
            raise TraceError(f"{path}: metadata.json field {key!r} is missing or not a "
                             f"{kind.__name__}")
    if not isinstance(meta.get("provenance", {}), dict):
        raise TraceError(f"{path}: metadata.json field 'provenance': expected a mapping, got "
                         f"{type(meta['provenance']).__name__}")
    if not meta["layers"]:
        raise TraceError(f"{path}: the trace has no layers")
    for i, record in enumerate(meta["layers"]):
        missing = [k for k in ("name", "geometry", "act_bits", "weight_bits")
                   if not isinstance(record, dict) or k not in record]
        if missing:
            raise TraceError(f"{path}: metadata.json layers[{i}] lacks {', '.join(missing)}")
    _check_fields(path, meta)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_density(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0.0 <= value <= 1.0)


def _check_densities(path: Path, index: int, name: str, key: str, values: np.ndarray) -> None:
    if not np.all((values >= 0.0) & (values <= 1.0)):  # NaN fails both
        raise TraceError(f"{path}: layer {index} ({name!r}): {key}: expected densities in "
                         f"[0, 1], got {values[~((values >= 0) & (values <= 1))][:3].tolist()}")


def _check_fields(path: Path, meta: dict) -> None:
    """Range-check every numeric metadata field; one error naming the file, layer and field."""
    n = meta["num_samples"]
    if isinstance(n, bool) or not 1 <= n <= MAX_SAMPLES:
        raise TraceError(f"{path}: metadata.json num_samples: expected an integer from 1 to "
                         f"{MAX_SAMPLES:,}, got {n!r}")
    seed = meta.get("seed")
    if seed is not None and not (_is_int(seed) and seed >= 0):
        raise TraceError(f"{path}: metadata.json seed: expected a non-negative integer or "
                         f"null, got {seed!r}")
    if not isinstance(meta.get("statistical", False), bool):
        raise TraceError(f"{path}: metadata.json statistical: expected true or false, got "
                         f"{meta.get('statistical')!r}")
    members = meta.get("members", {})
    if not isinstance(members, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in members.values()):
        raise TraceError(f"{path}: metadata.json members: expected a mapping of member names "
                         "to {\"sha256\": hex, \"bytes\": int}")
    for i, record in enumerate(meta["layers"]):
        name = record["name"]
        where = f"{path}: layer {i} ({name!r})"
        if not isinstance(name, str) or not name:
            raise TraceError(f"{path}: layer {i}: name: expected a non-empty string, got {name!r}")
        if not isinstance(record["geometry"], dict):
            raise TraceError(f"{where}: geometry: expected a mapping, got "
                             f"{type(record['geometry']).__name__}")
        for key in ("act_bits", "weight_bits"):
            value = record[key]
            if not (_is_int(value) and 1 <= value <= 32):
                raise TraceError(f"{where}: {key}: expected an integer from 1 to 32, got {value!r}")
        value = record.get("output_density")
        if value is not None and not _is_density(value):
            raise TraceError(f"{where}: output_density: expected a density in [0, 1] or null, "
                             f"got {value!r}")
        stats = record.get("stats", {})
        if not isinstance(stats, dict):
            raise TraceError(f"{where}: stats: expected a mapping, got {type(stats).__name__}")
        for key in ("act_density", "weight_density", "output_density"):
            value = stats.get(key)
            if value is not None and not _is_density(value):
                raise TraceError(f"{where}: stats.{key}: expected a density in [0, 1] or null, "
                                 f"got {value!r}")


#: Tolerances of recorded densities against the counts of their masks: densities are float64
#: quotients of integer counts, exact to ~1e-16 relative, so a count off by one is far outside.
_DENSITY_TOL = 1e-9
_COUNT_TOL = 0.01


def _check_stat_means(path: Path, index: int, record: dict, stats: dict) -> None:
    """The scalar statistics of a captured layer against its per-channel, per-sample and
    per-filter arrays (their means; the arrays are checked against the masks when read)."""
    where = f"{path}: layer {index} ({record['name']!r})"
    for key, array in (("act_density", "act_density_per_sample"),
                       ("act_density", "act_density_per_channel"),
                       ("weight_density", "weight_density_per_filter")):
        value, values = stats.get(key), stats[array]
        if value is not None and len(values) and abs(value - float(values.mean())) > _DENSITY_TOL:
            raise TraceError(f"{where}: stats.{key}: records {value!r} but the mean of member "
                             f"{layer_member(index, array)!r} is {float(values.mean())!r}; the "
                             "trace is corrupt or was edited")
    top, inner = record.get("output_density"), stats.get("output_density")
    if top is not None and inner is not None and top != inner:
        raise TraceError(f"{where}: output_density: records {top!r} but stats.output_density "
                         f"{inner!r}; the trace is corrupt or was edited")




def _check_phases(path: Path, meta: dict, geometries: list) -> None:
    """Phase tags (``stats.phase``, ``stats.step``; decoder traces, see
    :mod:`accelsim.trace.llm`) well-formed and consistent with ``provenance.decoder``, the layer
    names and geometries: every layer tagged or none; ``prefill`` step 0, ``decode`` steps 1..D
    (``decode_tokens``), in execution order, each step present, named ``<phase name>/<layer>``
    after ``provenance.decoder.phases``, every decode step the same layers; a decode step's
    linear and matmul layers one token (``H = 1``), prefill's at most ``prompt_tokens``."""
    tags = []
    for i, record in enumerate(meta["layers"]):
        stats = record.get("stats", {})
        has = ("phase" in stats, "step" in stats)
        if not any(has):
            tags.append(None)
            continue
        where = f"{path}: layer {i} ({record['name']!r})"
        if not all(has):
            raise TraceError(f"{where}: stats.phase, stats.step: expected both (a decoder "
                             "layer's phase and step) or neither")
        phase, step = stats["phase"], stats["step"]
        if phase not in PHASES:
            raise TraceError(f"{where}: stats.phase: expected 'prefill' or 'decode', got "
                             f"{phase!r:.40}")
        if not (_is_int(step) and step >= 0):
            raise TraceError(f"{where}: stats.step: expected a non-negative integer, got "
                             f"{step!r:.40}")
        if (phase == "prefill") != (step == 0):
            raise TraceError(f"{where}: stats.step: expected 0 for prefill and 1 or more for "
                             f"decode, got {phase} step {step}")
        tags.append((phase, step))
    if all(tag is None for tag in tags):
        return
    if None in tags:
        i = tags.index(None)
        raise TraceError(f"{path}: layer {i} ({meta['layers'][i]['name']!r}): stats.phase: "
                         "expected a phase tag (a decoder trace tags every layer)")
    prov = meta.get("provenance")
    decoder = prov.get("decoder") if isinstance(prov, dict) else None
    where = f"{path}: metadata.json provenance.decoder"
    if not isinstance(decoder, dict):
        raise TraceError(f"{where}: expected a mapping with prompt_tokens, decode_tokens and "
                         "phases (the layers carry phase tags)")
    steps, prompt = decoder.get("decode_tokens"), decoder.get("prompt_tokens")
    if not (_is_int(steps) and 0 <= steps <= MAX_SAMPLES):
        raise TraceError(f"{where}.decode_tokens: expected a non-negative integer, got "
                         f"{steps!r:.40}")
    if not (_is_int(prompt) and prompt >= 1):
        raise TraceError(f"{where}.prompt_tokens: expected a positive integer, got "
                         f"{prompt!r:.40}")
    names = ["prefill"] + [f"decode{t}" for t in range(1, steps + 1)]
    if decoder.get("phases") != names:
        raise TraceError(f"{where}.phases: expected {names if steps <= 3 else names[:3] + ['...']}"
                         f" (decode_tokens = {steps}), got {decoder.get('phases')!r:.80}")
    per_step: dict[int, list[str]] = {}
    last = 0
    for i, ((phase, step), record) in enumerate(zip(tags, meta["layers"])):
        where = f"{path}: layer {i} ({record['name']!r})"
        if step > steps:
            raise TraceError(f"{where}: stats.step: expected at most provenance.decoder."
                             f"decode_tokens = {steps}, got {step}")
        if step < last:
            raise TraceError(f"{where}: stats.step: step {step} after step {last}; a decoder "
                             "trace holds its steps in execution order")
        last = step
        prefix = f"{names[step]}/"
        if not record["name"].startswith(prefix):
            raise TraceError(f"{where}: name: a {phase} step-{step} layer is named "
                             f"{prefix}<layer>")
        g = geometries[i]
        if g.kind in ("linear", "matmul") and (g.H != 1 if step else g.H > prompt):
            want = "1 (one token)" if step else f"at most prompt_tokens = {prompt}"
            raise TraceError(f"{where}: geometry: H = {g.H} tokens; a {phase} layer has {want}")
        per_step.setdefault(step, []).append(record["name"][len(prefix):])
    missing = [t for t in range(steps + 1) if t not in per_step]
    if missing:
        raise TraceError(f"{path}: metadata.json layers: no layer of step {missing[0]} "
                         f"({names[missing[0]]}); provenance.decoder.decode_tokens = {steps}")
    for t in range(2, steps + 1):
        if per_step[t] != per_step[1]:
            raise TraceError(f"{path}: metadata.json layers: decode step {t} has other layers "
                             "than decode step 1 (every step runs the same model)")


def _untraced(path: Path, entries) -> list[dict]:
    """The optional ``untraced`` list (schema 2), validated: name, op, calls, macs."""
    if not isinstance(entries, list):
        raise TraceError(f"{path}: metadata.json field 'untraced' is not a list")
    for i, entry in enumerate(entries):
        ok = (isinstance(entry, dict) and isinstance(entry.get("name"), str)
              and isinstance(entry.get("op"), str)
              and all(isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool)
                      and entry[k] >= 0 for k in ("calls", "macs")))
        if not ok:
            raise TraceError(f"{path}: metadata.json untraced[{i}]: expected {{\"name\": str, "
                             "\"op\": str, \"calls\": int >= 0, \"macs\": int >= 0}")
    return [dict(entry) for entry in entries]


_TENSOR_KEYS = ("id", "shape", "elements", "per_sample", "source", "producer", "alias_of",
                "inplace_of", "density", "has_mask")
_OP_KEYS = ("index", "kind", "op", "name", "inputs", "outputs", "layer", "params", "inplace",
            "attrs")


def _graph_metadata(path: Path, meta: dict) -> dict | None:
    """The optional ``graph`` record, checked field by field (one error naming the entry)."""
    from accelsim.trace.graph import LAYER_KIND, OP_KINDS, SOURCES

    graph = meta.get("graph")
    if graph is None:
        return None
    where = f"{path}: metadata.json graph"
    if not isinstance(graph, dict) or not all(isinstance(graph.get(k), list)
                                              for k in ("tensors", "ops", "outputs")):
        raise TraceError(f"{where}: expected a mapping with lists tensors, ops and outputs")
    tensors, ops = graph["tensors"], graph["ops"]
    n_t, n_o, n_l = len(tensors), len(ops), len(meta["layers"])
    members = meta.get("members", {})

    def tid(value, limit: int) -> bool:
        return _is_int(value) and 0 <= value < limit

    for i, t in enumerate(tensors):
        bad = None
        if not isinstance(t, dict) or any(k not in t for k in _TENSOR_KEYS):
            bad = f"expected a mapping with {', '.join(_TENSOR_KEYS)}"
        elif t["id"] != i or not _is_int(t["id"]):
            bad = f"id: expected {i} (its position), got {t['id']!r}"
        elif not (isinstance(t["shape"], list) and len(t["shape"]) <= 16
                  and all(_is_int(d) and 0 <= d <= MAX_DIM for d in t["shape"])):
            bad = f"shape: expected a list of at most 16 sizes from 0 to {MAX_DIM:,}"
        elif not (_is_int(t["elements"]) and 0 <= t["elements"] <= MAX_ELEMENTS):
            bad = f"elements: expected an integer from 0 to {MAX_ELEMENTS:,}"
        elif not isinstance(t["per_sample"], bool) or not isinstance(t["has_mask"], bool):
            bad = "per_sample, has_mask: expected true or false"
        elif t["per_sample"] and t["elements"] != _prod(t["shape"]):
            bad = f"elements: {t['elements']!r} is not the product of the shape {t['shape']}"
        elif t["source"] not in SOURCES:
            bad = f"source: expected one of {', '.join(SOURCES)}, got {t['source']!r}"
        elif t["producer"] is not None and not tid(t["producer"], n_o):
            bad = f"producer: expected null or an op index below {n_o}, got {t['producer']!r}"
        elif any(t[k] is not None and not tid(t[k], i) for k in ("alias_of", "inplace_of")):
            bad = "alias_of, inplace_of: expected null or the id of an earlier tensor"
        elif t["density"] is not None and not _is_density(t["density"]):
            bad = f"density: expected a density in [0, 1] or null, got {t['density']!r}"
        elif t["has_mask"] and (not t["per_sample"] or t["alias_of"] is not None
                                or graph_member(i) not in members):
            bad = "has_mask: only a per-sample, non-alias tensor with its mask member has a mask"
        if bad:
            raise TraceError(f"{where}.tensors[{i}]: {bad}")
    for j, o in enumerate(ops):
        bad = None
        if not isinstance(o, dict) or any(k not in o for k in _OP_KEYS):
            bad = f"expected a mapping with {', '.join(_OP_KEYS)}"
        elif o["index"] != j or not _is_int(o["index"]):
            bad = f"index: expected {j} (its position), got {o['index']!r}"
        elif o["kind"] not in OP_KINDS + (LAYER_KIND,):
            bad = f"kind: expected one of {', '.join(OP_KINDS + (LAYER_KIND,))}, got {o['kind']!r}"
        elif not isinstance(o["op"], str) or not isinstance(o["name"], str):
            bad = "op, name: expected strings"
        elif not all(isinstance(o[k], list) and all(tid(v, n_t) for v in o[k])
                     for k in ("inputs", "outputs")):
            bad = f"inputs, outputs: expected lists of tensor ids below {n_t}"
        elif any(tensors[v]["producer"] is not None and tensors[v]["producer"] >= j
                 for v in o["inputs"]):
            bad = "inputs: an op reads a tensor produced by itself or a later op"
        elif any(tensors[v]["producer"] != j for v in o["outputs"]):
            bad = "outputs: a tensor listed here names another producer"
        elif o["layer"] is not None and not tid(o["layer"], n_l):
            bad = f"layer: expected null or a layer index below {n_l}, got {o['layer']!r}"
        elif not (_is_int(o["params"]) and o["params"] >= 0) or not isinstance(o["inplace"], bool):
            bad = "params: expected an integer >= 0; inplace: true or false"
        elif not isinstance(o["attrs"], dict) or not all(
                (k == "kernel" and _is_int(v) and 1 <= v <= MAX_ELEMENTS)
                or (k == "alias" and isinstance(v, bool)) for k, v in o["attrs"].items()):
            bad = "attrs: expected a mapping of kernel (integer >= 1) and alias (true or false)"
        if bad:
            raise TraceError(f"{where}.ops[{j}]: {bad}")
    for i, t in enumerate(tensors):
        if t["producer"] is not None and i not in ops[t["producer"]]["outputs"]:
            raise TraceError(f"{where}.tensors[{i}]: producer: op {t['producer']} does not list "
                             "it among its outputs")
    if not all(tid(v, n_t) for v in graph["outputs"]):
        raise TraceError(f"{where}.outputs: expected a list of tensor ids below {n_t}")
    return graph


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number a trace may record")


def open_trace(path: str | os.PathLike) -> Trace:
    """Open a trace file lazily; raises ``TraceError`` for any problem with it."""
    path = Path(path)
    archive = _Archive(path)
    try:
        raw = archive.read_bytes(METADATA_MEMBER, MAX_METADATA_BYTES, checked=False)
    finally:
        archive.close()
    try:
        meta = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: metadata.json is not valid JSON ({exc})") from None
    _check_metadata(path, meta)
    trace = Trace(path, meta)  # field checks first: they name what is wrong
    recorded = meta.get(METADATA_SHA_KEY)  # absent in traces written before it existed
    if recorded is not None and recorded != _metadata_sha256(meta):
        raise TraceError(f"{path}: metadata.json was edited or is corrupt (its SHA-256 does "
                         f"not match {METADATA_SHA_KEY}); re-capture or re-copy the trace")
    return trace
