"""Per-point result cache: one small JSON file per (hardware, trace, version, fidelity, samples).

Files live under ``DIR/cache/<key[:2]>/<key>.json`` and are written atomically
(temporary file in the same folder, then ``os.replace``), so a sweep killed at any
moment leaves only complete entries: re-running it resumes where it stopped.
Every entry carries ``checksum``, the SHA-256 of its own canonical JSON without that
field: a file that does not parse, whose recorded identity differs from its key, or
whose content does not match its checksum (an edited ``energy_pj``) is ignored
(counted in ``corrupt``) and overwritten by the recomputed result.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import accelsim
from accelsim.atomic import atomic_write_text


def point_identity(hw_hash: str, trace_hash: str, fidelity: str, samples: int | None,
                   version: str | None = None) -> dict:
    """Everything a cached result depends on."""
    return {"hw_hash": hw_hash, "trace_hash": trace_hash,
            "accelsim_version": version or accelsim.__version__,
            "fidelity": fidelity, "samples": samples}


def point_key(identity: dict) -> str:
    """SHA-256 of the canonical JSON of ``identity``."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def record_checksum(record: dict) -> str:
    """SHA-256 of the canonical JSON of ``record`` without its ``checksum`` field."""
    body = {k: v for k, v in record.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and ``os.replace``."""
    atomic_write_text(path, json.dumps(data, sort_keys=True))


def _checksum_ok(record: dict) -> bool:
    try:
        return record.get("checksum") == record_checksum(record)
    except (TypeError, ValueError):  # not JSON-able as recorded (NaN, ...)
        return False


class ResultCache:
    """Cached point results under ``directory``; counts hits, misses and corrupt entries."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored record of ``key``, or None (missing, unreadable or not matching)."""
        path = self.path(key)
        try:
            with open(path) as fh:
                record = json.load(fh)
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, RecursionError):
            self.corrupt += 1
            self.misses += 1
            return None
        if not isinstance(record, dict) or record.get("key") != key \
                or not isinstance(record.get("identity"), dict) \
                or point_key(record["identity"]) != key or not _checksum_ok(record):
            self.corrupt += 1
            self.misses += 1
            return None
        self.hits += 1
        del record["checksum"]
        return record

    def put(self, key: str, record: dict) -> None:
        """Store ``record`` (a JSON-able dict holding ``key`` and ``identity``) atomically."""
        if record.get("key") != key:
            raise ValueError(f"record key {record.get('key')!r} does not match {key!r}")
        write_json_atomic(self.path(key), {**record, "checksum": record_checksum(record)})

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def __len__(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(1 for _ in self.directory.glob("*/*.json"))
