"""Capturing real sparsity traces from any ``torch.nn.Module`` with forward hooks.

``capture_trace(model, batches, CaptureOptions(...))`` runs the model on up to
``options.samples`` samples and returns a :class:`~accelsim.trace.records.TraceData`
holding, for every traced layer in execution order, its geometry, the bit-packed
weight mask and input-activation masks, the output density and the statistics
(``LayerTrace.stats`` keys): ``act_density``, ``act_density_per_channel`` (C,),
``act_density_per_sample`` (N,), ``weight_density``, ``weight_density_per_filter`` (K,),
``output_density`` (of the raw layer output, before any activation function).

A module that runs several times in one forward pass is traced once per call;
calls after the first are named ``name#1``, ``name#2``, ... The hooks are owned by a
:class:`MaskRecorder` and removed when it exits, even if the forward raises.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
import torch
import torch.nn as nn

import accelsim
from accelsim.errors import AccelsimError, TraceError
from accelsim.hooks import HookOwner, probe_forward
from accelsim.trace import hooks, maskwork
from accelsim.trace.geometry import LAYER_KINDS, LayerGeometry
from accelsim.trace.records import CapturedLayer, TraceData


@dataclass(frozen=True)
class CaptureOptions:
    """What to capture and how to decide that a value is zero.

    ``samples``: samples to trace. ``act_bits`` / ``weight_bits``: precisions recorded
    per layer (and used by quantisation). ``quantize_acts`` / ``quantize_weights``:
    quantise linearly to that many bits before masking (values rounding to zero are
    zero; see :func:`accelsim.trace.hooks.quantized_nonzero`). ``threshold``:
    activations with ``|x| < threshold`` count as zero (FATReLU/TEAL-style).
    ``kinds``: layer kinds to trace.
    """

    samples: int = 16
    act_bits: int = 8
    weight_bits: int = 8
    quantize_acts: bool = False
    quantize_weights: bool = False
    threshold: float = 0.0
    kinds: tuple[str, ...] = LAYER_KINDS

    def __post_init__(self) -> None:
        for name in ("samples", "act_bits", "weight_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise AccelsimError(f"capture option {name}: expected a positive integer, "
                                    f"got {value!r}")
        for name in ("act_bits", "weight_bits"):
            if getattr(self, name) > 32:
                raise AccelsimError(f"capture option {name}: expected at most 32 bits, "
                                    f"got {getattr(self, name)}")
        if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)
                and self.threshold >= 0):
            raise AccelsimError(f"capture option threshold: expected a finite number >= 0, "
                                f"got {self.threshold!r}")
        object.__setattr__(self, "kinds", hooks.parse_kinds(self.kinds))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["kinds"] = list(self.kinds)
        return data


@dataclass
class _LayerState:
    """What the recorder accumulates for one traced layer call."""

    name: str
    kind: str
    module: nn.Module
    chw: tuple[int, int, int]
    weights: Future | maskwork.DeviceWeights  # -> (packed weight mask, non-zeros per filter)
    pending: list = field(default_factory=list)  # Future | DeviceResult per batch
    samples: int = 0


def traced_modules(model: nn.Module, kinds: Iterable[str]) -> list[tuple[str, nn.Module, str]]:
    """(qualified name, module, kind) of every module of ``model`` of a traced kind."""
    kinds = tuple(kinds)
    found = []
    for name, module in model.named_modules():
        kind = hooks.layer_kind(module)
        if kind in kinds:
            found.append((name or type(module).__name__.lower(), module, kind))
    return found


def _weight_job(weight: torch.Tensor, options: CaptureOptions) -> tuple[np.ndarray, np.ndarray]:
    """Packed weight mask and non-zeros per filter (runs on a worker thread)."""
    mask = weight.numpy() != 0
    if options.quantize_weights:
        mask &= hooks.quantized_nonzero(weight, options.weight_bits, per_dim=0).numpy()
    packed = np.packbits(mask.reshape(-1))
    if mask[0].size % 8 == 0:  # each filter fills whole bytes: popcount them
        nnz = np.bitwise_count(packed.reshape(mask.shape[0], -1)).sum(axis=1, dtype=np.int64)
    else:
        nnz = mask.reshape(mask.shape[0], -1).view(np.uint8).sum(axis=1, dtype=np.int64)
    return packed, nnz


class MaskRecorder(HookOwner):
    """Owns forward hooks on every traced layer of ``model``; use as a context manager.

    Call :meth:`start_batch` before each forward pass and :meth:`finish` at the end.
    The hooks only snapshot masks; packing and counting run on a worker thread (CPU
    tensors) or on the device (see :mod:`accelsim.trace.maskwork`).
    """

    def __init__(self, model: nn.Module, options: CaptureOptions):
        self.options = options
        self._targets = traced_modules(model, options.kinds)
        self._handles: list = []
        self._states: dict[str, _LayerState] = {}
        self._calls: dict[str, int] = {}
        self._seen: set[str] = set()
        self._batch = 0
        self._weight_cache: dict[int, Future] = {}
        self._pool: ThreadPoolExecutor | None = None

    @property
    def num_targets(self) -> int:
        return len(self._targets)

    def __enter__(self) -> "MaskRecorder":
        workers = max(1, min(4, (os.cpu_count() or 2) // 2))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="accelsim-capture")
        return super().__enter__()

    def hook_specs(self):
        return [(module, self._make_hook(name, kind), False) for name, module, kind in self._targets]

    def remove(self) -> None:
        """Remove every hook this recorder registered and stop its worker threads."""
        super().remove()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def start_batch(self) -> None:
        if self._batch and self._seen != set(self._states):
            missing = sorted(set(self._states) - self._seen)
            raise TraceError(f"layers {missing} ran in the first batch but not in batch "
                             f"{self._batch}; models whose layers depend on the data cannot be traced")
        self._batch += 1
        self._calls.clear()
        self._seen = set()

    def _make_hook(self, name: str, kind: str):
        def hook(module: nn.Module, args: tuple, output) -> None:
            self._record(name, kind, module, args, output)
        return hook

    def _submit(self, fn, *args) -> Future:
        if self._pool is None:
            raise RuntimeError("MaskRecorder used outside its `with` block")
        return self._pool.submit(fn, *args)

    def _weights(self, module: nn.Module, kind: str) -> Future:
        cached = self._weight_cache.get(id(module))
        if cached is None:
            weight = hooks.weight_tensor(module, kind)
            if self._use_numpy(weight):  # weights do not change during the forward
                cached = self._submit(_weight_job, weight, self.options)
            else:
                mask = weight != 0
                if self.options.quantize_weights:
                    mask &= hooks.quantized_nonzero(weight, self.options.weight_bits, per_dim=0)
                cached = maskwork.DeviceWeights(mask)
            self._weight_cache[id(module)] = cached
        return cached

    def _use_numpy(self, t: torch.Tensor) -> bool:
        return t.device.type == "cpu" and t.dtype in hooks.NUMPY_DTYPES

    def _act_mask(self, act: torch.Tensor):
        """The input mask, taken now (NumPy for CPU tensors, torch on a device)."""
        if self._use_numpy(act):
            mask = hooks.nonzero_numpy(act, self.options.threshold)
            if self.options.quantize_acts:
                mask &= hooks.quantized_nonzero(act, self.options.act_bits, per_dim=0).numpy()
            return mask
        mask = act != 0
        if self.options.threshold > 0:
            mask &= act.abs() >= self.options.threshold
        if self.options.quantize_acts:
            mask &= hooks.quantized_nonzero(act, self.options.act_bits, per_dim=0)
        return mask

    def _record(self, name: str, kind: str, module: nn.Module, args: tuple, output) -> None:
        if not args or not isinstance(args[0], torch.Tensor):
            raise TraceError(f"layer {name!r}: expected a tensor input")
        x = args[0].detach()
        call = self._calls.get(name, 0)
        self._calls[name] = call + 1
        key = name if call == 0 else f"{name}#{call}"
        chw = hooks.sample_shape(kind, x, key)
        state = self._states.get(key)
        if state is None:
            if self._batch > 1:
                raise TraceError(f"layer {key!r} ran in batch {self._batch} but not in the first "
                                 "batch; models whose layers depend on the data cannot be traced")
            hooks.layer_geometry(module, kind, chw, 1, key)  # validate early
            state = _LayerState(key, kind, module, chw, self._weights(module, kind))
            self._states[key] = state
        elif state.chw != chw:
            raise TraceError(f"layer {key!r}: input sample shape changed from {state.chw} to "
                             f"{chw}; every traced sample must have the same shape")
        self._seen.add(key)
        mask = self._act_mask(hooks.as_nchw(kind, x))
        out = output.detach() if isinstance(output, torch.Tensor) else None
        if isinstance(mask, np.ndarray):
            out_mask = None if out is None else hooks.nonzero_numpy(out)
            state.pending.append(self._submit(maskwork.cpu_job, mask, out_mask))
        else:
            state.pending.append(maskwork.DeviceResult(mask, out))
        state.samples += int(mask.shape[0])

    def finish(self) -> list[CapturedLayer]:
        """The captured layers in execution order (waits for pending packing work)."""
        if not self._states:
            raise TraceError("no layer was traced: the model has no "
                             f"{'/'.join(self.options.kinds)} layers that ran")
        counts = {s.samples for s in self._states.values()}
        if len(counts) != 1:
            detail = ", ".join(f"{s.name}: {s.samples}" for s in self._states.values())
            raise TraceError("traced layers saw different sample counts (a model that reshapes "
                             f"samples into the batch dimension?): {detail}")
        layers = []
        for state in self._states.values():
            geometry = hooks.layer_geometry(state.module, state.kind, state.chw, state.samples,
                                            state.name)
            batches = [job.result() for job in state.pending]
            weight_packed, weight_nnz = state.weights.result()
            layers.append(_captured_layer(state, geometry, self.options, batches,
                                          weight_packed, weight_nnz))
        return layers


def _captured_layer(state: _LayerState, geometry: LayerGeometry, options: CaptureOptions,
                    batches: list[maskwork.BatchMasks], weight_packed: np.ndarray,
                    weight_nnz: np.ndarray) -> CapturedLayer:
    g = geometry
    per_sample_channel = np.concatenate([b.per_sample_channel for b in batches], axis=0)
    act_nnz_per_channel = per_sample_channel.sum(axis=0)
    out_nnz = sum(b.out_nnz for b in batches)
    out_total = sum(b.out_total for b in batches)
    output_density = out_nnz / out_total if out_total else None
    stats = {
        "act_density": float(act_nnz_per_channel.sum() / (g.N * g.C * g.H * g.W)),
        "act_density_per_channel": (act_nnz_per_channel / (g.N * g.H * g.W)).astype(np.float64),
        "act_density_per_sample": (per_sample_channel.sum(axis=1)
                                   / (g.C * g.H * g.W)).astype(np.float64),
        "weight_density": float(weight_nnz.sum() / (g.K * g.c_per_group * g.R * g.S)),
        "weight_density_per_filter": (weight_nnz / (g.c_per_group * g.R * g.S)).astype(np.float64),
        "output_density": output_density,
    }
    mode = getattr(state.module, "padding_mode", "zeros")
    if mode != "zeros":
        stats["padding_mode"] = mode  # the simulator treats padding as zeros regardless
    return CapturedLayer(state.name, geometry, options.act_bits, options.weight_bits,
                         weight_packed, [b.packed for b in batches], output_density, stats)


def _batch_input(batch) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, np.ndarray):
        return torch.from_numpy(batch)
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], (torch.Tensor, np.ndarray)):
        return _batch_input(batch[0])
    raise AccelsimError(f"capture: expected batches of tensors or (input, target) pairs, got "
                        f"{type(batch).__name__}")


def _model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def base_provenance(model: nn.Module, options: CaptureOptions | None, samples: int) -> dict:
    """Provenance fields every trace carries; callers add model/checkpoint/dataset."""
    return {
        "model": type(model).__name__,
        "checkpoint": None,
        "checkpoint_sha256": None,
        "dataset": None,
        "accuracy": None,
        "num_samples": int(samples),
        "capture_options": None if options is None else options.to_dict(),
        "accelsim_version": accelsim.__version__,
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def capture_trace(model: nn.Module, batches: Iterable, options: CaptureOptions,
                  provenance: dict | None = None, progress: bool = False) -> TraceData:
    """Run ``model`` on ``batches`` (tensors or (input, target) pairs) and capture a trace.

    Stops after ``options.samples`` samples (the last batch is cut so that no extra
    sample runs). ``provenance`` entries (model, checkpoint, dataset, ...) override
    the defaults of :func:`base_provenance`. ``progress`` shows a tqdm bar on stderr.
    """
    from tqdm import tqdm

    was_training = model.training
    device = _model_device(model)
    model.eval()
    taken = 0
    bar = tqdm(total=options.samples, unit="sample", desc="capture", disable=not progress,
               leave=False)
    try:
        with torch.no_grad(), MaskRecorder(model, options) as recorder:
            if recorder.num_targets == 0:
                raise TraceError(f"the model has no layers of the traced kinds "
                                 f"({', '.join(options.kinds)})")
            for batch in batches:
                x = _batch_input(batch)
                take = min(options.samples - taken, int(x.shape[0]))
                if take <= 0:
                    break
                recorder.start_batch()
                model(x[:take].to(device))
                taken += take
                bar.update(take)
                if taken >= options.samples:
                    break
            if taken == 0:
                raise AccelsimError("capture: the data gave no samples")
            layers = recorder.finish()
    finally:
        bar.close()
        model.train(was_training)
    if taken < options.samples:
        warnings.warn(f"capture: the data held only {taken} of the {options.samples} "
                      "requested samples", stacklevel=2)
    prov = base_provenance(model, options, taken)
    prov.update(provenance or {})
    prov["num_samples"] = taken
    prov["capture_options"] = options.to_dict()
    return TraceData(layers=layers, provenance=prov)


def probe_layers(model: nn.Module, example: torch.Tensor,
                 kinds: Iterable[str] = LAYER_KINDS) -> list[tuple[str, str, LayerGeometry]]:
    """(name, kind, geometry with N=1) of each traced layer, from one forward of ``example``.

    ``example`` is one batch of one sample; it may live on the ``meta`` device (no compute).
    """
    found: list[tuple[str, str, LayerGeometry]] = []

    def record(name: str, kind: str):
        def hook(module: nn.Module, args: tuple, output) -> None:
            count = sum(1 for n, _, _ in found if n == name or n.startswith(name + "#"))
            key = name if count == 0 else f"{name}#{count}"
            chw = hooks.sample_shape(kind, args[0], key)
            found.append((key, kind, hooks.layer_geometry(module, kind, chw, 1, key)))
        return hook

    targets = traced_modules(model, hooks.parse_kinds(tuple(kinds)))
    probe_forward(model, example, [(module, record(name, kind), False)
                                   for name, module, kind in targets])
    return found

