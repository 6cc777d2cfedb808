"""Turning one layer call's masks into packed bits and counts, off the forward's critical path.

The capture hook does only what cannot wait: it takes the non-zero masks of the
layer input and output (the model may overwrite those tensors in place right
after the hook, e.g. ``ReLU(inplace=True)``). Packing and counting then run

- for CPU tensors, on a worker thread (NumPy releases the GIL), overlapping the
  rest of the forward pass;
- for accelerator tensors, on the device; results stay there until
  :meth:`DeviceResult.result` copies the (8x smaller) packed bits back, so the
  forward is not synchronised once per layer.

Every job yields a :class:`BatchMasks`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class BatchMasks:
    """One layer call on one batch: packed activation rows and counts."""

    packed: np.ndarray               # uint8 (n, ceil(C*H*W/8))
    per_sample_channel: np.ndarray   # int64 (n, C): non-zero activations
    out_nnz: int
    out_total: int


def count_per_channel(mask: np.ndarray, packed: np.ndarray) -> np.ndarray:
    """Non-zeros per (sample, channel) of a bool (n, C, H, W) mask, int64 (n, C)."""
    n, c = mask.shape[:2]
    hw = int(np.prod(mask.shape[2:], dtype=np.int64))
    if hw % 8 == 0:  # each channel fills whole bytes of the packed rows: popcount them
        return np.bitwise_count(packed.reshape(n, c, hw // 8)).sum(axis=2, dtype=np.int64)
    # Summing the bytes of the bool mask (0/1) is the fastest exact count otherwise.
    return mask.reshape(n, c, -1).view(np.uint8).sum(axis=2, dtype=np.int64)


def cpu_job(mask: np.ndarray, out_mask: np.ndarray | None) -> BatchMasks:
    """Pack and count a bool (n, C, H, W) mask (runs on a worker thread)."""
    n = mask.shape[0]
    packed = np.packbits(mask.reshape(n, -1), axis=1)
    out_nnz = int(np.count_nonzero(out_mask)) if out_mask is not None else 0
    return BatchMasks(packed, count_per_channel(mask, packed), out_nnz,
                      0 if out_mask is None else int(out_mask.size))


def packbits_torch(bits: torch.Tensor) -> torch.Tensor:
    """``np.packbits(bits, axis=1)`` for a bool (n, L) tensor, on its device."""
    n, length = bits.shape
    pad = (-length) % 8
    as_bytes = bits.to(torch.uint8)
    if pad:
        as_bytes = torch.nn.functional.pad(as_bytes, (0, pad))
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=bits.device)
    return (as_bytes.view(n, -1, 8) * weights).sum(dim=2, dtype=torch.uint8)


class DeviceResult:
    """Packing and counting done on the device; ``result()`` copies them to the host."""

    def __init__(self, mask: torch.Tensor, output: torch.Tensor | None):
        n, c = mask.shape[:2]
        self._packed = packbits_torch(mask.reshape(n, -1))
        self._per_sample_channel = mask.reshape(n, c, -1).sum(dim=2)
        self._out_nnz = torch.count_nonzero(output) if output is not None else None
        self._out_total = 0 if output is None else output.numel()

    def result(self) -> BatchMasks:
        out_nnz = 0 if self._out_nnz is None else int(self._out_nnz.item())
        return BatchMasks(self._packed.cpu().numpy(),
                          self._per_sample_channel.cpu().numpy().astype(np.int64),
                          out_nnz, self._out_total)


class DeviceWeights:
    """A weight mask (K, ...) packed and counted by torch; ``result()`` copies it back."""

    def __init__(self, mask: torch.Tensor):
        k = mask.shape[0]
        self._packed = packbits_torch(mask.reshape(1, -1))[0]
        self._nnz = mask.reshape(k, -1).sum(dim=1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self._packed.cpu().numpy(), self._nnz.cpu().numpy().astype(np.int64)
