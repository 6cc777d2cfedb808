"""Checkpoint files: plain tensors plus JSON-able provenance, loadable with ``weights_only=True``.

Format (a dict saved with ``torch.save``)::

    {"format": "accelsim-checkpoint", "version": 1,
     "state_dict": {name: tensor, ...},      # plain parameter names, pruned weights exactly 0
     "masks": {name: bool tensor, ...},      # pruning masks by parameter name (may be empty)
     "metadata": {...},                      # recipe, seed, metrics, accelsim version, ...
     "content_sha256": hex}                  # see content_hash()

A file from a stranger is read with ``torch.load(..., weights_only=True)``, so it can
hold tensors and plain containers only and cannot run code. ``content_sha256`` (SHA-256
over every tensor's name, dtype, shape and bytes and the canonical JSON of the metadata)
is written on save and checked on load, so a flipped bit in a weight is refused rather
than loaded; accelsim checkpoints written before the hash existed, and plain PyTorch
state_dicts, load without it.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import os
from pathlib import Path

import torch

from accelsim.atomic import atomic_write
from accelsim.errors import AccelsimError
from accelsim.inputs import check_regular_file

CHECKPOINT_FORMAT = "accelsim-checkpoint"
CHECKPOINT_VERSION = 1


def content_hash(state_dict: dict, masks: dict, metadata: dict) -> str:
    """SHA-256 of the tensors (name, dtype, shape, bytes) and the canonical metadata JSON."""
    digest = hashlib.sha256()
    for group, tensors in (("state_dict", state_dict), ("masks", masks)):
        for name in sorted(tensors):
            t = tensors[name].detach().cpu().contiguous()
            digest.update(json.dumps([group, name, str(t.dtype), list(t.shape)]).encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest.update(json.dumps(metadata, sort_keys=True, separators=(",", ":"),
                             default=str).encode())
    return digest.hexdigest()


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
    payload["content_sha256"] = content_hash(payload["state_dict"], payload["masks"],
                                             payload["metadata"])
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict, dict]:
    """Read a checkpoint safely; returns ``(state_dict, masks, metadata)``.

    A bare ``state_dict`` saved by plain PyTorch is accepted too (empty masks and metadata).
    """
    path = check_regular_file(path, "checkpoint file")
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
        expected = payload.get("content_sha256")
        if expected is not None:
            try:
                actual = content_hash(state, masks, metadata)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise AccelsimError(f"{path}: metadata: not plain JSON data ({exc})") from None
            if actual != expected:
                raise AccelsimError(f"{path}: the checkpoint is corrupt: its tensors or metadata do "
                                    "not match the content hash written with them (content_sha256)")
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
