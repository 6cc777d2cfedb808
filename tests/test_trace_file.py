"""Trace files: round trip, lazy per-layer reads, integrity and version errors."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn

from accelsim.errors import TraceError
from accelsim.trace import CaptureOptions, capture_trace, open_trace, write_trace
from accelsim.trace.file_format import METADATA_MEMBER, SCHEMA_VERSION


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, groups=3, stride=2)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def captured():
    torch.manual_seed(0)
    model = Small()
    with torch.no_grad():
        model.c2.weight[model.c2.weight.abs() < 0.1] = 0
    x = torch.randn(7, 3, 9, 9)
    return capture_trace(model, [x[:3], x[3:]], CaptureOptions(samples=7),
                         provenance={"model": "Small", "dataset": "random:3,9,9"})


@pytest.fixture(params=[True, False], ids=["deflate", "stored"])
def trace_file(request, captured, tmp_path):
    path = tmp_path / "small.trace"
    write_trace(path, captured, compress=request.param)
    return path


def test_round_trip(trace_file, captured):
    trace = open_trace(trace_file)
    assert trace.path == trace_file and trace.schema_version == SCHEMA_VERSION
    assert not trace.is_statistical and trace.num_samples == 7 and len(trace) == 3
    assert trace.layer_names == ["c1", "c2", "fc"]
    assert trace.provenance["model"] == "Small"
    assert trace.provenance["capture_options"]["samples"] == 7
    assert trace.provenance["accelsim_version"]
    for mem, disk in zip(captured.layer_traces(), trace):
        assert disk.geometry == mem.geometry and disk.name == mem.name
        assert (disk.act_bits, disk.weight_bits) == (8, 8)
        np.testing.assert_array_equal(disk.weight_mask(), mem.weight_mask())
        np.testing.assert_array_equal(disk.act_mask(), mem.act_mask())
        np.testing.assert_array_equal(disk.act_mask(3), mem.act_mask()[:3])
        assert disk.output_density == pytest.approx(mem.output_density)
        for key, value in mem.stats.items():
            np.testing.assert_allclose(disk.stats[key], value)
    assert trace.layer("c2").index == 1 and trace.layer(-1).name == "fc"


def test_readable_with_numpy_without_pickle(trace_file):
    with np.load(trace_file, allow_pickle=False) as npz:
        packed = npz["layers/0000/act_mask"]
    assert packed.dtype == np.uint8 and packed.shape == (7, (3 * 9 * 9 + 7) // 8)


def test_content_hash_stable_and_sensitive(tmp_path, captured):
    a, b = tmp_path / "a.trace", tmp_path / "b.trace"
    write_trace(a, captured)
    captured.provenance["created"] = "2000-01-01T00:00:00+00:00"
    write_trace(b, captured, compress=False)
    assert open_trace(a).content_hash == open_trace(b).content_hash
    captured.layers[0].act_chunks[0] = captured.layers[0].act_chunks[0] ^ np.uint8(1)
    try:
        write_trace(b, captured)
        assert open_trace(a).content_hash != open_trace(b).content_hash
    finally:
        captured.layers[0].act_chunks[0] = captured.layers[0].act_chunks[0] ^ np.uint8(1)


def test_reading_one_layer_opens_only_its_members(trace_file, monkeypatch):
    trace = open_trace(trace_file)
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    layer = trace.layer(1)
    layer.weight_mask()
    layer.act_mask()
    layer.act_mask(2)
    assert opened and all(name.startswith("layers/0001/") for name in opened), opened


def test_atomic_write_leaves_no_temporary_and_keeps_old_file(tmp_path, captured):
    path = tmp_path / "t.trace"
    write_trace(path, captured)
    before = path.read_bytes()
    good = captured.layers[1].act_chunks
    captured.layers[1].act_chunks = [np.zeros((7, 3), dtype=np.uint8)]  # wrong row size
    try:
        with pytest.raises(ValueError, match="activation chunk"):
            write_trace(path, captured)
    finally:
        captured.layers[1].act_chunks = good
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["t.trace"]


def test_missing_not_a_trace_and_truncated(tmp_path, trace_file):
    with pytest.raises(TraceError, match="not found"):
        open_trace(tmp_path / "nope.trace")
    junk = tmp_path / "junk.trace"
    junk.write_text("hello")
    with pytest.raises(TraceError, match=r"junk\.trace.*truncated or not a trace"):
        open_trace(junk)
    data = trace_file.read_bytes()
    cut = tmp_path / "cut.trace"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(TraceError, match=r"cut\.trace"):
        open_trace(cut)


def _rewrite(src, dst, edit_member=None, edit_metadata=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == METADATA_MEMBER and edit_metadata:
                meta = json.loads(data)
                edit_metadata(meta)
                data = json.dumps(meta).encode()
            elif edit_member and info.filename == edit_member[0]:
                data = edit_member[1](data)
            zout.writestr(info.filename, data)


def test_corrupt_member_detected(tmp_path, trace_file):
    bad = tmp_path / "bad.trace"
    name = "layers/0001/act_mask.npy"
    _rewrite(trace_file, bad, edit_member=(name, lambda d: d[:-1] + bytes([d[-1] ^ 0xFF])))
    trace = open_trace(bad)  # metadata is fine
    layer = trace.layer(1)
    with pytest.raises(TraceError, match=r"bad\.trace.*layers/0001/act_mask.npy.*corrupt"):
        layer.act_mask()
    trace.layer(0).act_mask()  # other layers still read

    flipped = tmp_path / "flipped.trace"  # flip stored bytes behind zip's back: CRC catches it
    write_trace(flipped, _reload(trace_file), compress=False)
    with zipfile.ZipFile(flipped) as zf:
        info = zf.getinfo(name)
        offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 200
    raw = bytearray(flipped.read_bytes())
    raw[offset] ^= 0xFF
    flipped.write_bytes(bytes(raw))
    with pytest.raises(TraceError, match="corrupt"):
        open_trace(flipped).layer(1).act_mask()


def _reload(path):
    """A TraceData copy of a captured trace file (for re-writing it)."""
    from accelsim.trace.records import CapturedLayer, TraceData
    from accelsim.trace.bits import pack_flat, pack_rows

    trace = open_trace(path)
    layers = [CapturedLayer(l.name, l.geometry, l.act_bits, l.weight_bits,
                            pack_flat(l.weight_mask()), [pack_rows(l.act_mask())],
                            l.output_density, dict(l.stats)) for l in trace]
    return TraceData(layers, dict(trace.provenance))


def test_missing_member_and_bad_metadata(tmp_path, trace_file):
    with zipfile.ZipFile(trace_file) as zin:
        names = zin.namelist()
    lost = tmp_path / "lost.trace"
    with zipfile.ZipFile(trace_file) as zin, zipfile.ZipFile(lost, "w") as zout:
        for n in names:
            if n != "layers/0002/weight_mask.npy":
                zout.writestr(n, zin.read(n))
    with pytest.raises(TraceError, match="weight_mask.npy.*missing"):
        open_trace(lost).layer("fc").weight_mask()

    nometa = tmp_path / "nometa.trace"
    with zipfile.ZipFile(nometa, "w") as zf:
        zf.writestr("x.npy", b"1")
    with pytest.raises(TraceError, match="metadata.json.*missing"):
        open_trace(nometa)

    other = tmp_path / "other.trace"
    _rewrite(trace_file, other, edit_metadata=lambda m: m.update(format="something-else"))
    with pytest.raises(TraceError, match="not an accelsim trace"):
        open_trace(other)

    badgeom = tmp_path / "badgeom.trace"
    _rewrite(trace_file, badgeom, edit_metadata=lambda m: m["layers"][0]["geometry"].update(C=-1))
    with pytest.raises(TraceError, match=r"badgeom\.trace: layer 0 \('c1'\) has an invalid geometry"):
        open_trace(badgeom)


@pytest.mark.parametrize("version,advice", [(SCHEMA_VERSION + 1, "newer accelsim"), (0, "re-capture")])
def test_wrong_schema_version(tmp_path, trace_file, version, advice):
    path = tmp_path / "v.trace"
    _rewrite(trace_file, path, edit_metadata=lambda m: m.update(schema_version=version))
    with pytest.raises(TraceError, match=rf"v\.trace: trace schema version {version} is not "
                                         rf"supported.*{advice}"):
        open_trace(path)


def test_unknown_layer(trace_file):
    trace = open_trace(trace_file)
    with pytest.raises(TraceError, match=r"small\.trace: no layer named 'c3'; did you mean"):
        trace.layer("c3")
    with pytest.raises(TraceError, match=r"no layer 3; the trace has 3 layers"):
        trace.layer(3)
    with pytest.raises(TraceError, match="by index or name"):
        trace.layer(1.5)


def test_trace_pickles_and_reopens(trace_file):
    import pickle

    trace = open_trace(trace_file)
    first = trace.layer(0).act_mask()
    clone = pickle.loads(pickle.dumps(trace))
    np.testing.assert_array_equal(clone.layer(0).act_mask(), first)
    with clone:
        assert clone.layer("fc").weight_mask().shape == (5, 96, 1, 1)


@pytest.mark.slow
def test_resnet50_imagenet_capture_reads_one_layer_lazily(tmp_path, monkeypatch):
    from accelsim.zoo import get_model

    torch.manual_seed(0)
    model = get_model("resnet50").eval()
    x = torch.relu(torch.randn(2, 3, 224, 224))
    path = write_trace(tmp_path / "r50.trace", capture_trace(model, [x], CaptureOptions(samples=2)))
    trace = open_trace(path)
    assert len(trace) == 54 and trace.geometry(0).H == 224
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: (
        opened.append(name if isinstance(name, str) else name.filename), real_open(self, name, *a, **k))[1])
    layer = trace.layer("layer3.2.conv2")
    assert layer.act_mask().shape == (2, 256, 14, 14)
    assert {name.split("/")[1] for name in opened} == {f"{layer.index:04d}"}
