"""Checkpoint files: plain tensors plus JSON-able provenance, loadable with ``weights_only=True``.

Format (a dict saved with ``torch.save``)::

    {"format": "accelsim-checkpoint", "version": 1,
     "state_dict": {name: tensor, ...},      # plain parameter names, pruned weights exactly 0
     "masks": {name: bool tensor, ...},      # pruning masks by parameter name (may be empty)
     "metadata": {...}}                      # recipe, seed, metrics, accelsim version, ...

A file from a stranger is read with ``torch.load(..., weights_only=True)``, so it can
hold tensors and plain containers only and cannot run code.
"""
from __future__ import annotations

import hashlib
import pickle
import os
from pathlib import Path

import torch

from accelsim.atomic import atomic_write
from accelsim.errors import AccelsimError

CHECKPOINT_FORMAT = "accelsim-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state_dict: dict, metadata: dict,
                    masks: dict | None = None) -> None:
    """Write a checkpoint atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "masks": {k: v.detach().cpu().bool().clone() for k, v in (masks or {}).items()},
        "metadata": dict(metadata),
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict, dict]:
    """Read a checkpoint safely; returns ``(state_dict, masks, metadata)``.

    A bare ``state_dict`` saved by plain PyTorch is accepted too (empty masks and metadata).
    """
    path = Path(path)
    if not path.is_file():
        raise AccelsimError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        if isinstance(exc, pickle.UnpicklingError):
            why = ("it is not a PyTorch checkpoint, or it holds objects other than tensors and "
                   "plain containers, which accelsim refuses to unpickle (weights_only=True)")
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            why = f"{type(exc).__name__}: {first}"
        raise AccelsimError(f"{path}: not a readable checkpoint: {why}") from None
    if isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT:
        if payload.get("version") != CHECKPOINT_VERSION:
            raise AccelsimError(
                f"{path}: checkpoint version {payload.get('version')!r} is not supported "
                f"(expected {CHECKPOINT_VERSION})")
        state = payload.get("state_dict")
        masks = payload.get("masks", {})
        metadata = payload.get("metadata", {})
        for field, value in (("state_dict", state), ("masks", masks)):
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()):
                raise AccelsimError(f"{path}: {field}: expected a mapping of parameter names to tensors")
        if not isinstance(metadata, dict):
            raise AccelsimError(f"{path}: metadata: expected a mapping, got {type(metadata).__name__}")
        return dict(state), dict(masks), dict(metadata)
    if isinstance(payload, dict) and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return dict(payload), {}, {}
    raise AccelsimError(f"{path}: expected an accelsim checkpoint or a plain state_dict")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (checkpoint identity in trace provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
