"""Block-wise reading of activation and graph masks: equal to whole reads, checksummed, flat memory."""
from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn

from accelsim.errors import TraceError
from accelsim.hw import load_hw
from accelsim.sim import engine, graph_sizes, simulate
from accelsim.sim.storage import format_bits
from accelsim.trace import CaptureOptions, capture_trace, open_trace, write_trace
from accelsim.trace.file_format import METADATA_MEMBER, graph_member, layer_member
from accelsim.trace.layer import LayerTrace
from accelsim.trace.reader import _Archive
from trace_helpers import rewrite

SAMPLES = 11


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.fc = nn.Linear(8 * 6 * 6, 4)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x)) + x
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def captured():
    torch.manual_seed(1)
    x = torch.randn(SAMPLES, 3, 6, 6)
    return capture_trace(Net(), [x[:5], x[5:]], CaptureOptions(samples=SAMPLES),
                         provenance={"model": "Net"})


@pytest.fixture(scope="module", params=[True, False], ids=["deflate", "stored"])
def path(request, captured, tmp_path_factory):
    out = tmp_path_factory.mktemp("blocks") / "net.trace"
    return write_trace(out, captured, compress=request.param)


def _corrupt(src, dst, name, offset):
    """Copy a trace with one byte of ``name`` flipped and its recorded SHA-256 left as it was."""
    with zipfile.ZipFile(src) as zin:
        contents = {i.filename: (zin.read(i.filename), i.compress_type) for i in zin.infolist()}
    data = bytearray(contents[name][0])
    data[offset] ^= 0x01
    contents[name] = (bytes(data), contents[name][1])
    with zipfile.ZipFile(dst, "w") as zout:
        for member, (payload, kind) in contents.items():
            zout.writestr(member, payload, compress_type=kind)
    return dst


@pytest.mark.parametrize("samples", [None, 1, 4, SAMPLES])
@pytest.mark.parametrize("size", [1, 3, 8, 64])
def test_blocks_equal_the_whole_mask(path, samples, size):
    trace = open_trace(path)
    for layer in trace:
        whole = layer.act_mask(samples)
        blocks = list(layer.act_blocks(samples, size))
        assert [s for s, _ in blocks] == list(range(0, whole.shape[0], size))
        assert all(b.dtype == bool for _, b in blocks)
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), whole)


def test_random_access_block_equals_slice(path):
    trace = open_trace(path)
    rng = np.random.default_rng(0)
    for layer in trace:
        whole = layer.act_mask()
        for _ in range(5):
            start = int(rng.integers(0, SAMPLES))
            stop = int(rng.integers(start + 1, SAMPLES + 1))
            np.testing.assert_array_equal(layer.act_mask_block(start, stop), whole[start:stop])
        with pytest.raises(TraceError, match="not a non-empty range"):
            layer.act_mask_block(3, 3)
        with pytest.raises(TraceError, match="not a non-empty range"):
            layer.act_mask_block(0, SAMPLES + 1)


def test_in_memory_layers_slice_their_masks():
    geo = open_trace(_any_trace()).geometry(0)
    rng = np.random.default_rng(2)
    act = rng.random((geo.N,) + geo.act_shape[1:]) < 0.5
    layer = LayerTrace.from_masks("x", geo, rng.random(geo.weight_shape) < 0.5, act)
    got = np.concatenate([b for _, b in layer.act_blocks(None, 2)])
    np.testing.assert_array_equal(got, act)
    np.testing.assert_array_equal(layer.act_mask_block(1, 3), act[1:3])


def _any_trace():
    return "traces/lenet5_digits_dual.trace"


@pytest.mark.parametrize("row", [0, SAMPLES - 1])  # a row read, a row beyond the samples read
def test_corrupt_row_fails_the_block_iteration(path, tmp_path, row):
    name = layer_member(1, "act_mask")
    with zipfile.ZipFile(path) as z:
        size = len(z.read(name))
    row_bytes = (8 * 6 * 6 + 7) // 8
    header = size - SAMPLES * row_bytes
    bad = _corrupt(path, tmp_path / "bad.trace", name, header + row * row_bytes)
    layer = open_trace(bad).layer(1)
    with pytest.raises(TraceError, match=r"bad.trace: member 'layers/0001/act_mask.npy' is "
                                         r"corrupt \(its SHA-256"):
        for _ in layer.act_blocks(2, 1):
            pass
    with pytest.raises(TraceError, match="SHA-256"):
        open_trace(bad).layer(1).act_mask_block(0, 1)
    hw = load_hw("hw_configs/sparten_like.yaml")
    with pytest.raises(TraceError, match="SHA-256"):
        simulate(open_trace(bad), hw, samples=2)


def test_a_member_is_hashed_once_per_open_trace(path, monkeypatch):
    calls = []
    real = _Archive._check_sha
    monkeypatch.setattr(_Archive, "_check_sha",
                        lambda self, name, actual: (calls.append(name), real(self, name, actual)))
    trace = open_trace(path)
    layer = trace.layer(0)
    name = layer_member(0, "act_mask")
    for _ in range(3):
        list(layer.act_blocks(None, 4))
        layer.act_mask_block(2, 5)
        layer.act_mask(3)
    assert calls.count(name) == 1
    trace.close()   # a reopened archive checks again
    list(trace.layer(0).act_blocks(None, 4))
    assert calls.count(name) == 2


def test_abandoned_iteration_does_not_count_as_verified(path, tmp_path):
    name = layer_member(0, "act_mask")
    with zipfile.ZipFile(path) as z:
        size = len(z.read(name))
    bad = _corrupt(path, tmp_path / "bad.trace", name, size - 1)   # the last row
    layer = open_trace(bad).layer(0)
    blocks = layer.act_blocks(None, 2)
    next(blocks)
    blocks.close()
    with pytest.raises(TraceError, match="SHA-256"):
        layer.act_mask_block(0, 1)


@pytest.mark.parametrize("design", ["sparten_like", "edge_npu_lpddr", "eyeriss_v1"])
@pytest.mark.parametrize("batch", [1, 3])
def test_engine_results_do_not_depend_on_the_block_size(path, design, batch, monkeypatch):
    hw = load_hw(f"hw_configs/{design}.yaml")

    def run(block):
        monkeypatch.setattr(engine, "SAMPLE_BLOCK", block)
        with open_trace(path) as trace:
            return simulate(trace, hw, samples=10, batch=batch).layers

    reference = run(64)   # one block: every sample at once, as before block reading
    for block in (1, 4):
        got = run(block)
        assert got.columns.tolist() == reference.columns.tolist()
        for column in reference.columns:
            assert got[column].tolist() == reference[column].tolist(), (block, column)


def test_graph_sizes_equal_a_per_sample_reference_and_read_once(path, monkeypatch):
    hw = load_hw("hw_configs/sparten_like.yaml")
    data = hw.to_dict()
    data["storage"]["activations"] = {"format": "run_length", "run_bits": 2,
                                      "dram": {"format": "csr"}}
    from accelsim.hw import load_hw_dict

    hw = load_hw_dict(data, source="rl.yaml")
    trace = open_trace(path)
    graph = trace.graph
    assert graph is not None and any(t.has_mask for t in graph.tensors)
    reads = []
    real = graph.mask_blocks
    monkeypatch.setattr(graph, "mask_blocks", lambda *a, **k: (reads.append(a[0]), real(*a, **k))[1])
    for samples in (None, 3):
        n = SAMPLES if samples is None else samples
        for level in ("on_chip", "off_chip"):
            got = graph_sizes.tensor_bits(graph, hw, samples, level)
            # reference: whole masks, one sample at a time, aliases copied from their storage
            want = np.zeros((len(graph.tensors), n))
            for t in graph.tensors:
                fmt = graph_sizes.tensor_format(graph, t.id, hw, level)
                source = graph.storage_of(t.id)
                mask = graph.mask(source, n)
                if mask is not None:
                    shape = tuple(graph.tensors[source].shape)   # per sample, e.g. (C, H, W)
                    want[t.id] = [format_bits(mask[i].reshape(shape), fmt.format, 8,
                                              fmt.run_bits, fmt.index_bits) for i in range(n)]
                else:
                    d = graph.tensors[source].density
                    from accelsim.sim.storage import expected_bits
                    want[t.id] = expected_bits((graph.tensors[source].elements,),
                                               1.0 if d is None else d, fmt.format, 8,
                                               fmt.run_bits, fmt.index_bits)
            np.testing.assert_array_equal(got, want)
            got[:] = -1   # a copy: the memo is not changed by the caller
    # run-length activations read their masks (layer outputs, bitmap here, read packed rows)
    masked = sum(t.has_mask and t.alias_of is None and t.source != "layer" for t in graph.tensors)
    assert masked > 0
    assert len(reads) == 2 * masked   # once per sample count, both levels in one pass


@pytest.mark.parametrize("formats", [("bitmap", "csr"), ("coo", "dense"), ("csr", "coo")])
def test_graph_count_formats_read_packed_rows_and_equal_the_masks(formats, path):
    """Formats sized by the non-zero count only: popcount of the packed rows (the masks are
    never unpacked), equal to counting each sample's (C, H, W) mask read with NumPy."""
    from accelsim.hw import load_hw_dict

    data = load_hw("hw_configs/sparten_like.yaml").to_dict()
    data["storage"]["activations"] = {"format": formats[0], "index_bits": 7,
                                      "dram": {"format": formats[1], "index_bits": 5}}
    data["storage"]["outputs"] = {"format": formats[1], "index_bits": 3}
    hw = load_hw_dict(data, source="count.yaml")
    graph = open_trace(path).graph
    unpacked = []
    real = graph.mask_blocks
    graph.mask_blocks = lambda *a, **k: (unpacked.append(a[0]), real(*a, **k))[1]
    checked = 0
    with zipfile.ZipFile(path) as archive:
        for level in ("on_chip", "off_chip"):
            got = graph_sizes.tensor_bits(graph, hw, None, level)
            for t in graph.tensors:
                source = graph.tensors[graph.storage_of(t.id)]
                if not source.has_mask:
                    continue
                fmt = graph_sizes.tensor_format(graph, t.id, hw, level)
                packed = np.load(io.BytesIO(archive.read(graph_member(source.id))))
                masks = np.unpackbits(packed, axis=1, count=source.elements).astype(bool)
                for i in range(SAMPLES):
                    m = masks[i].reshape(tuple(source.shape))
                    nnz, n = int(m.sum()), m.size
                    want = {"dense": n * 8, "bitmap": n + nnz * 8,
                            "csr": (m.shape[0] + 1) * fmt.index_bits + nnz * (fmt.index_bits + 8),
                            "coo": nnz * (m.ndim * fmt.index_bits + 8)}[fmt.format]
                    assert got[t.id, i] == want, (t.id, i, fmt.format)
                    checked += 1
    assert checked > 0 and unpacked == []


def _without_nonzeros(src, dst):
    """A copy of a trace as written before the non-zero counts were recorded."""
    from accelsim.trace.file_format import GRAPH_NONZEROS_MEMBER

    return rewrite(src, dst, drop=[GRAPH_NONZEROS_MEMBER])


def test_recorded_nonzeros_equal_the_masks(path):
    """The writer's per-sample non-zero counts == the stored masks counted with NumPy."""
    graph = open_trace(path).graph
    checked = 0
    with zipfile.ZipFile(path) as archive:
        for t in graph.tensors:
            if not t.has_mask:
                assert graph.nonzeros(t.id) is None
                continue
            packed = np.load(io.BytesIO(archive.read(graph_member(t.id))))
            masks = np.unpackbits(packed, axis=1, count=t.elements)
            assert graph.nonzeros(t.id).tolist() == masks.sum(axis=1).tolist()
            assert graph.nonzeros(t.id, 3).tolist() == masks[:3].sum(axis=1).tolist()
            checked += 1
    assert checked > 0


def test_count_formats_without_recorded_nonzeros_popcount_the_rows(path, tmp_path):
    """An older trace (no counts member) gives the same sizes from its packed rows."""
    from accelsim.hw import load_hw_dict

    data = load_hw("hw_configs/sparten_like.yaml").to_dict()
    data["storage"]["activations"] = {"format": "coo", "index_bits": 7, "dram": {"format": "csr"}}
    hw = load_hw_dict(data, source="count.yaml")
    old = open_trace(_without_nonzeros(path, tmp_path / "old.trace")).graph
    new = open_trace(path).graph
    assert all(old.nonzeros(t.id) is None for t in old.tensors)
    packed = []
    real = old.packed_blocks
    old.packed_blocks = lambda *a, **k: (packed.append(a[0]), real(*a, **k))[1]
    for level in ("on_chip", "off_chip"):
        np.testing.assert_array_equal(graph_sizes.tensor_bits(old, hw, None, level),
                                      graph_sizes.tensor_bits(new, hw, None, level))
    assert packed


def test_simulate_memory_is_flat_in_the_samples(tmp_path):
    """tracemalloc peak of a whole simulate: 40 samples within a small constant of 8."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
    x = torch.randn(40, 3, 48, 48)
    data = capture_trace(model, [x[:20], x[20:]], CaptureOptions(samples=40))
    path = write_trace(tmp_path / "m.trace", data)
    hw = load_hw("hw_configs/sparten_like.yaml")
    with open_trace(path) as trace:
        simulate(trace, hw, samples=1)   # kernels loaded
    peaks = {}
    for samples in (8, 40):
        with open_trace(path) as trace:
            tracemalloc.start()
            simulate(trace, hw, samples=samples)
            peaks[samples] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    per_sample_mask = 16 * 48 * 48   # bytes of one sample's bool input mask, layer 2
    # all 40 samples at once would add 32 x 36 KB of masks; blocks add only small result rows
    assert peaks[40] - peaks[8] < 4 * per_sample_mask, peaks


def test_deflate_is_kept_only_where_it_pays():
    from accelsim.trace.writer import deflate_pays

    rng = np.random.default_rng(0)
    random_bits = np.packbits(rng.random((16, 40000)) < 0.5, axis=1)
    sparse_bits = np.packbits(rng.random((16, 40000)) < 0.01, axis=1)
    assert not deflate_pays([random_bits]) and not deflate_pays([random_bits[:5], random_bits[5:]])
    assert deflate_pays([np.full((16, 500), 255, np.uint8)])
    assert deflate_pays([np.zeros((3, 7), np.uint8)]) and deflate_pays([random_bits[:, :400]])
    assert deflate_pays([sparse_bits])   # 1 % density: runs of zeros deflate well


def test_writer_stores_masks_deflate_gains_little_on(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 3))
    x = torch.randn(16, 3, 24, 24).abs() + 0.1   # a dense input: every mask bit set
    captured = capture_trace(model, [x], CaptureOptions(samples=16))
    auto = write_trace(tmp_path / "auto.trace", captured)
    stored = write_trace(tmp_path / "stored.trace", captured, compress=False)
    with zipfile.ZipFile(auto) as za, zipfile.ZipFile(stored) as zs:
        kinds = {i.filename: i.compress_type for i in za.infolist()}
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zs.infolist())
        assert kinds[METADATA_MEMBER] == zipfile.ZIP_DEFLATED
        assert kinds[layer_member(0, "act_density_per_channel")] == zipfile.ZIP_DEFLATED
        assert kinds[layer_member(1, "act_density_per_channel")] == zipfile.ZIP_DEFLATED
        # the ReLU outputs (random signs) are stored, the dense network input is deflated
        assert kinds[layer_member(1, "act_mask")] == zipfile.ZIP_STORED
        assert kinds[layer_member(0, "act_mask")] == zipfile.ZIP_DEFLATED
        for name in kinds:
            assert za.read(name) == zs.read(name) or name == METADATA_MEMBER
    a, s = open_trace(auto), open_trace(stored)
    assert a.content_hash == s.content_hash
    for la, ls in zip(a, s):
        np.testing.assert_array_equal(la.act_mask(), ls.act_mask())
