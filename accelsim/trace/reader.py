"""Reading trace files lazily: :func:`open_trace` and :class:`Trace`.

Opening a trace reads only its ``metadata.json``; each ``LayerTrace`` reads its own
members when its masks are asked for (see :mod:`accelsim.trace.file_format`).
Every problem with the file raises :class:`~accelsim.errors.TraceError` naming the
file and what is wrong.
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from accelsim.errors import TraceError
from accelsim.trace import density as dens
from accelsim.trace.file_format import (FORMAT_NAME, METADATA_MEMBER, READABLE_VERSIONS,
                                        SCHEMA_VERSION, layer_member)
from accelsim.trace.bits import unpack_flat, unpack_rows
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.layer import LayerTrace
from accelsim.trace.records import ARRAY_STATS, StatisticalLayer, statistical_layer_trace
from accelsim.trace.writer import content_hash as _content_hash

_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


class _Archive:
    """An open trace container; every failure becomes a TraceError naming the file."""

    def __init__(self, path: Path, members: dict | None = None):
        self.path = path
        self._members = members or {}
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

    def read_bytes(self, name: str) -> bytes:
        with self._member(name):
            data = self._zip.read(name)
        expected = self._members.get(name, {}).get("sha256")
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise TraceError(f"{self.path}: member {name!r} is corrupt (its SHA-256 does not "
                             "match the one recorded in metadata.json)")
        return data

    def read_array(self, name: str) -> np.ndarray:
        data = self.read_bytes(name)
        try:
            return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except _READ_ERRORS as exc:
            raise TraceError(f"{self.path}: member {name!r} is not a valid array "
                             f"({type(exc).__name__}: {exc})") from None

    def read_rows(self, name: str, rows: int) -> np.ndarray:
        """The first ``rows`` rows of a 2-D uint8 member, decompressing only those."""
        with self._member(name), self._zip.open(name) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            if len(shape) != 2 or fortran or dtype != np.uint8 or rows > shape[0]:
                raise ValueError(f"expected a uint8 (N>={rows}, bytes) C-order array, got "
                                 f"{dtype} {shape}")
            want = rows * shape[1]
            data = fh.read(want)
            if len(data) != want:
                raise EOFError(f"member ends after {len(data)} of {want} bytes")
        return np.frombuffer(data, dtype=np.uint8).reshape(rows, shape[1])


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
        self.layer_names: list[str] = [r["name"] for r in self._records]
        self._index = {name: i for i, name in enumerate(self.layer_names)}
        self._hash: str | None = None
        self._open: _Archive | None = None
        self._open_pid = -1
        self._geometries: list[LayerGeometry] = []
        for i, record in enumerate(self._records):
            try:
                self._geometries.append(LayerGeometry.from_dict(record["geometry"]))
            except (TypeError, ValueError, KeyError) as exc:
                raise TraceError(f"{path}: layer {i} ({record.get('name')!r}) has an invalid "
                                 f"geometry: {exc}") from None

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
            self._open = _Archive(self.path, self._meta.get("members"))
            self._open_pid = os.getpid()
        return self._open

    def _captured_layer(self, index: int, record: dict, geometry: LayerGeometry) -> LayerTrace:
        stats = dict(record.get("stats", {}))
        archive = self._archive()
        for key in ARRAY_STATS:
            stats[key] = archive.read_array(layer_member(index, key))
        weight_name = layer_member(index, "weight_mask")
        act_name = layer_member(index, "act_mask")

        def load_weights() -> np.ndarray:
            packed = self._archive().read_array(weight_name)
            try:
                if geometry.per_sample_weights:  # one row per sample (a matmul's 2nd operand)
                    return unpack_rows(packed, geometry.weight_mask_shape)
                return unpack_flat(packed, geometry.weight_shape)
            except ValueError as exc:
                raise TraceError(f"{self.path}: {weight_name!r} does not match the layer "
                                 f"geometry {geometry.weight_shape}: {exc}") from None

        def load_acts(n: int) -> np.ndarray:
            archive = self._archive()
            packed = (archive.read_array(act_name) if n >= geometry.N
                      else archive.read_rows(act_name, n))
            row_bytes = (geometry.C * geometry.H * geometry.W + 7) // 8
            if packed.ndim != 2 or packed.shape[1] != row_bytes or packed.shape[0] < n:
                raise TraceError(f"{self.path}: {act_name!r} has shape {packed.shape}; the "
                                 f"geometry needs ({geometry.N}, {row_bytes})")
            return unpack_rows(packed[:n], (n,) + geometry.act_shape[1:])

        out_name = layer_member(index, "out_mask")
        load_out = None
        if out_name in self._meta.get("members", {}):
            def load_out(n: int) -> np.ndarray:
                packed = self._archive().read_rows(out_name, n)
                try:
                    return unpack_rows(packed, (n,) + geometry.output_shape[1:])
                except ValueError as exc:
                    raise TraceError(f"{self.path}: {out_name!r} does not match the layer "
                                     f"geometry {geometry.output_shape}: {exc}") from None

        return LayerTrace(index, record["name"], geometry, record["act_bits"],
                          record["weight_bits"], load_weights, load_acts,
                          output_density=record.get("output_density"), stats=stats,
                          out_loader=load_out)

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
            kind = spec.get("model")
            if kind == "uniform":
                densities[tensor] = spec.get("density")
            elif kind == "n_of_m" and tensor == "weight":
                densities[tensor] = dens.NOfM(spec.get("n"), spec.get("m"))
            elif kind == "per_channel":
                densities[tensor] = self._archive().read_array(
                    layer_member(index, f"{tensor}_density"))
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
    if not meta["layers"]:
        raise TraceError(f"{path}: the trace has no layers")
    for i, record in enumerate(meta["layers"]):
        missing = [k for k in ("name", "geometry", "act_bits", "weight_bits")
                   if not isinstance(record, dict) or k not in record]
        if missing:
            raise TraceError(f"{path}: metadata.json layers[{i}] lacks {', '.join(missing)}")


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


def open_trace(path: str | os.PathLike) -> Trace:
    """Open a trace file lazily; raises ``TraceError`` for any problem with it."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: trace file not found")
    archive = _Archive(path)
    try:
        raw = archive.read_bytes(METADATA_MEMBER)
    finally:
        archive.close()
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: metadata.json is not valid JSON ({exc})") from None
    _check_metadata(path, meta)
    return Trace(path, meta)
