"""Trace integrity: checksums on every read, exact mask lengths, range-checked fields, size limits."""
from __future__ import annotations

import ast
import io
import os
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn

from accelsim.errors import ConfigError, TraceError
from accelsim.trace import CaptureOptions, capture_trace, open_trace, write_trace
from accelsim.trace.file_format import MAX_METADATA_BYTES, METADATA_MEMBER, layer_member
from accelsim.trace.topology import read_topology
from trace_helpers import rewrite


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 5 * 5, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.c1(x)).flatten(1))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    x = torch.relu(torch.randn(6, 3, 5, 5))
    data = capture_trace(Small(), [x], CaptureOptions(samples=6), provenance={"model": "Small"})
    path = tmp_path_factory.mktemp("t") / "good.trace"
    write_trace(path, data)
    return path


def totals(path, samples=None):
    trace = open_trace(path)
    return [(layer.weight_mask().sum(), layer.act_mask(samples).sum()) for layer in trace]


def flip(offset):
    def edit(data):
        data = bytearray(data)
        data[offset] ^= 0xFF
        return bytes(data)
    return edit


def npy(array, shape=None):
    out = io.BytesIO()
    np.lib.format.write_array(out, array)
    data = out.getvalue()
    if shape is not None:  # lie about the shape in the header
        header = repr(array.shape).encode()
        data = data.replace(header, repr(shape).encode().ljust(len(header)), 1)
    return data


ACT0 = layer_member(0, "act_mask")
W0 = layer_member(0, "weight_mask")


@pytest.mark.parametrize("samples", [None, 2])
def test_flipped_mask_bytes_are_refused_on_partial_reads_too(good, tmp_path, samples):
    # sha NOT re-recorded: the bytes differ from what the writer hashed (ZIP CRC is valid)
    bad = rewrite(good, tmp_path / "bad.trace", {ACT0: flip(-58)}, fix_sha=False)  # row 0
    totals(good, samples)
    with pytest.raises(TraceError, match=r"bad.trace: member 'layers/0000/act_mask.npy' is "
                                         r"corrupt \(its SHA-256"):
        totals(bad, samples)


def test_row_beyond_the_samples_read_is_still_verified(good, tmp_path):
    header = len(npy(np.zeros((6, 10), np.uint8))) - 60  # header length of the member
    last_row = len(zipfile.ZipFile(good).read(ACT0)) - 1
    assert last_row > header
    bad = rewrite(good, tmp_path / "bad.trace", {ACT0: flip(last_row)}, fix_sha=False)
    with pytest.raises(TraceError, match="SHA-256"):
        open_trace(bad).layer(0).act_mask(1)


@pytest.mark.parametrize("edit", [lambda m: m["layers"][0].update(act_bits=4),
                                  lambda m: m["layers"][1]["geometry"].update(K=5, P=-1, Q=-1)])
def test_valid_looking_metadata_edits_are_refused(good, tmp_path, edit):
    bad = rewrite(good, tmp_path / "bad.trace", meta=edit, fix_sha=False)
    with pytest.raises(TraceError, match="metadata.json was edited or is corrupt"):
        open_trace(bad)


def test_missing_checksum_is_refused(good, tmp_path):
    bad = rewrite(good, tmp_path / "bad.trace", meta=lambda m: m["members"].pop(ACT0))
    with pytest.raises(TraceError, match="has no SHA-256 in metadata.json"):
        open_trace(bad).layer(0).act_mask(1)


def test_short_weight_mask_is_refused_not_zero_padded(good, tmp_path):
    short = rewrite(good, tmp_path / "short.trace",
                    {W0: lambda d: npy(np.load(io.BytesIO(d))[:-1])})
    with pytest.raises(TraceError, match=r"weight_mask.npy' is a uint8 array of shape \(20,\); "
                                         r"the layer geometry and sample count imply uint8 \(21,\)"):
        open_trace(short).layer(0).weight_mask()


def test_changed_dimension_is_refused(good, tmp_path):
    def bump_k(meta):
        meta["layers"][0]["geometry"]["K"] = 7
    bad = rewrite(good, tmp_path / "k7.trace", meta=bump_k)
    with pytest.raises(TraceError, match="the layer geometry and sample count imply"):
        open_trace(bad).layer(0).weight_mask()


@pytest.mark.parametrize("field,value,words", [
    ("output_density", -0.5, r"layer 0 \('c1'\): output_density: expected a density in \[0, 1\]"),
    ("act_bits", -8, r"layer 0 \('c1'\): act_bits: expected an integer from 1 to 32, got -8"),
    ("weight_bits", 0, "weight_bits: expected an integer from 1 to 32"),
    ("act_bits", 8.5, "act_bits: expected an integer"),
    ("act_bits", True, "act_bits: expected an integer"),
    ("stats", {"act_density": 2.0}, r"stats.act_density: expected a density"),
    ("name", 7, "name: expected a non-empty string"),
])
def test_numeric_fields_are_range_checked(good, tmp_path, field, value, words):
    def edit(meta):
        meta["layers"][0][field] = value
    bad = rewrite(good, tmp_path / "bad.trace", meta=edit)
    with pytest.raises(TraceError, match=words) as info:
        open_trace(bad)
    assert str(tmp_path / "bad.trace") in str(info.value)


def test_density_arrays_are_range_checked(good, tmp_path):
    name = layer_member(0, "act_density_per_channel")
    bad = rewrite(good, tmp_path / "bad.trace", {name: npy(np.full(3, -1.0))})
    with pytest.raises(TraceError, match="act_density_per_channel: expected densities in"):
        open_trace(bad).layer(0)


def _refused_fast(fn, words):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(TraceError, match=words):
            fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0 and peak < 20e6, (time.perf_counter() - start, peak)


def test_inflating_metadata_is_refused_before_reading(good, tmp_path):
    bad = tmp_path / "inflate.trace"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(METADATA_MEMBER, b" " * (MAX_METADATA_BYTES + 1))
    assert bad.stat().st_size < 1e6
    _refused_fast(lambda: open_trace(bad), r"metadata.json' declares 67,108,865 bytes; at most "
                                           r"67,108,864")


def test_npy_header_declaring_a_huge_shape_is_refused(good, tmp_path):
    rows = np.load(io.BytesIO(zipfile.ZipFile(good).read(ACT0)))
    lie = npy(rows, shape=(10 ** 9, rows.shape[1]))
    bad = rewrite(good, tmp_path / "huge.trace", {ACT0: lie})
    layer = open_trace(bad).layer(0)
    _refused_fast(lambda: layer.act_mask(2), r"shape \(1000000000, \d+\); the layer geometry")
    _refused_fast(lambda: layer.act_mask(), r"shape \(1000000000, \d+\); the layer geometry")


@pytest.mark.parametrize("key,value", [("H", 10 ** 9), ("C", 2 * 10 ** 6), ("N", 10 ** 7)])
def test_absurd_geometry_is_refused_at_open(good, tmp_path, key, value):
    def edit(meta):
        meta["layers"][0]["geometry"][key] = value
        if key == "N":
            meta["num_samples"] = value
        meta["layers"][0]["geometry"].update(P=-1, Q=-1)
    bad = rewrite(good, tmp_path / "big.trace", meta=edit)
    _refused_fast(lambda: open_trace(bad), r"layer 0 \('c1'\): geometry: |num_samples: expected")


def test_fifo_and_device_traces_are_one_line(tmp_path):
    fifo = tmp_path / "pipe.trace"
    os.mkfifo(fifo)
    _refused_fast(lambda: open_trace(fifo), "is a FIFO")
    _refused_fast(lambda: open_trace("/dev/zero"), "is a device")


def test_topology_with_absurd_dimensions_is_one_line(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("Layer, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                   "Num Filter, Strides,\nconv1, 1000000000, 1000000000, 3, 3, 3, 64, 1,\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"t.csv: line 2, column 'IFMAP height': 1,000,000,000 is above the limit") as info:
        read_topology(csv)
    assert time.perf_counter() - start < 1 and "\n" not in str(info.value)
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(ConfigError, match="is a FIFO"):
        read_topology(tmp_path / "pipe.csv")


@pytest.mark.parametrize("which", [0, -1])  # a layer member, metadata.json (written last)
def test_encrypted_flag_bit_is_one_line(good, tmp_path, which):
    data = bytearray(good.read_bytes())
    starts = [i for i in range(len(data)) if data.startswith(b"PK\x01\x02", i)]
    data[starts[which] + 8] ^= 1  # general-purpose flag bit 0: "encrypted"
    bad = tmp_path / "enc.trace"
    bad.write_bytes(bytes(data))
    with pytest.raises(TraceError, match="encrypted"):
        trace = open_trace(bad)
        for layer in trace:
            layer.weight_mask()


@pytest.mark.parametrize("bad", ["negative", "too_many", "unmasked", "shape"])
def test_recorded_nonzeros_out_of_range_are_one_clear_error(good, tmp_path, bad):
    """A consistent forgery of the graph's non-zero counts: refused, naming the member."""
    from accelsim.hw import load_hw
    from accelsim.sim import graph_sizes
    from accelsim.trace.file_format import GRAPH_NONZEROS_MEMBER

    graph = open_trace(good).graph
    assert graph is not None
    masked = next(t for t in graph.tensors if t.has_mask)
    unmasked = [t for t in graph.tensors if not t.has_mask]
    with zipfile.ZipFile(good) as z:
        counts = np.load(io.BytesIO(z.read(GRAPH_NONZEROS_MEMBER)))
    if bad == "negative":
        counts[masked.id, 0] = -2
    elif bad == "too_many":
        counts[masked.id, -1] = masked.elements + 1
    elif bad == "unmasked":
        if not unmasked:
            pytest.skip("every tensor has a mask")
        counts[unmasked[0].id, 0] = 3
    else:
        counts = counts[:, :-1]
    buf = io.BytesIO()
    np.save(buf, counts)
    path = rewrite(good, tmp_path / "bad.trace", {GRAPH_NONZEROS_MEMBER: buf.getvalue()})
    hw = load_hw("hw_configs/sparten_like.yaml")
    with pytest.raises(TraceError, match="nonzeros.npy"):
        graph_sizes.tensor_bits(open_trace(path).graph, hw)


def test_npy_headers_numpy_did_not_write_are_parsed(good, tmp_path):
    """A member whose header text differs from NumPy's own (key order, spacing) reads the same;
    one whose shape is wrong is refused."""
    name = layer_member(0, "act_mask")

    def reformat(shape_text):
        def edit(data):
            hlen = int.from_bytes(data[8:10], "little")
            header = ast.literal_eval(data[10:10 + hlen].decode("latin1"))
            shape = shape_text or repr(tuple(header["shape"]))
            text = f"{{'shape': {shape},   'fortran_order': False, 'descr': '|u1'}}"
            text = text + " " * (-(10 + len(text) + 1) % 64) + "\n"
            return data[:8] + len(text).to_bytes(2, "little") + text.encode() + data[10 + hlen:]
        return edit

    same = rewrite(good, tmp_path / "same.trace", {name: reformat(None)})
    assert totals(same) == totals(good)
    bad = rewrite(good, tmp_path / "bad.trace", {name: reformat("(1, 1)")})
    with pytest.raises(TraceError, match="act_mask"):
        totals(bad)
