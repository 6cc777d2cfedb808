"""The ``--device`` flag of ``accelsim train`` and ``accelsim trace capture``.

:func:`resolve_device` turns the user's text into a ``torch.device`` that this PyTorch
build can use, or raises :class:`~accelsim.errors.AccelsimError` with one line saying
why not (not a device name, no CUDA GPU in this build, no such GPU index, a backend
this machine lacks). Nothing is allocated on a CUDA device here, so the CUDA context
(and cuBLAS, whose determinism setting is read when it starts) is created later by the
caller.
"""
from __future__ import annotations

from accelsim.errors import AccelsimError


def resolve_device(text: str, flag: str = "--device"):
    """A usable ``torch.device`` for ``text`` (``cpu``, ``cuda``, ``cuda:1``, ...)."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise AccelsimError(f"{flag}: {text!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AccelsimError(f"{flag} {text}: this PyTorch build ({torch.__version__}) sees no "
                                "CUDA GPU; use --device cpu, or install a CUDA build of PyTorch "
                                "on a machine with an NVIDIA GPU")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise AccelsimError(f"{flag} {text}: no such GPU; this machine has {count} "
                                f"(cuda:0 to cuda:{count - 1})")
        return device
    if device.type == "meta":
        raise AccelsimError(f"{flag} {text}: the meta device holds no data; use cpu or cuda")
    try:  # other backends (mps, xpu, ...): a tiny allocation tells whether they work here
        torch.empty(1, device=device)
    except Exception as exc:  # the backends raise RuntimeError, AssertionError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AccelsimError(f"{flag} {text}: this machine cannot use that device ({first})") from None
    return device
