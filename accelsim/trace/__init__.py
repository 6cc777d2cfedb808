"""Sparsity traces: capture, file format, statistical traces, analysis.

Reading a trace needs only NumPy::

    from accelsim.trace import open_trace
    trace = open_trace("resnet18.trace")
    for layer in trace:                      # one LayerTrace at a time, lazily
        layer.geometry, layer.weight_mask(), layer.act_mask(4)

Capturing and statistical builders import PyTorch on first use::

    from accelsim.trace import capture_trace, CaptureOptions, write_trace
    data = capture_trace(model, loader, CaptureOptions(samples=64))
    write_trace("model.trace", data)

Modules: ``file_format`` (the on-disk layout), ``writer`` / ``reader`` (atomic write,
lazy read), ``capture`` + ``hooks`` (forward-hook recording), ``records`` (in-memory
traces), ``density`` + ``statistical`` + ``topology`` (statistical traces),
``bits`` + ``analysis`` (packing, exact MAC and storage counts), ``cli``.
"""
from __future__ import annotations

from accelsim.lazy import lazy_getattr

# Every name is imported on first use, so `import accelsim.trace.cli` (the CLI's verb
# registration, `accelsim --help`) loads neither NumPy nor the reader.
_LAZY = {
    "LAYER_KINDS": "accelsim.trace.geometry",
    "LayerGeometry": "accelsim.trace.geometry",
    "LayerTrace": "accelsim.trace.layer",
    "Trace": "accelsim.trace.reader",
    "open_trace": "accelsim.trace.reader",
    "CapturedLayer": "accelsim.trace.records",
    "StatisticalLayer": "accelsim.trace.records",
    "TraceData": "accelsim.trace.records",
    "write_trace": "accelsim.trace.writer",
    "capture_trace": "accelsim.trace.capture",
    "CaptureOptions": "accelsim.trace.capture",
    "MaskRecorder": "accelsim.trace.capture",
    "statistical_from_topology": "accelsim.trace.statistical",
    "statistical_from_model": "accelsim.trace.statistical",
    "statistical_from_trace": "accelsim.trace.statistical",
    "effective_macs": "accelsim.trace.analysis",
    "summarize_layer": "accelsim.trace.analysis",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
