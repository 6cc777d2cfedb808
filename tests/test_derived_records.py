"""Derived trace records checked against the primary data they derive from, on read.

Every forgery here is *consistent*: member SHA-256s and ``metadata_sha256`` are recomputed
(``trace_helpers.rewrite``) or ``metadata_sha256`` is absent (older traces), so the checks
cannot lean on the checksums. Covered: the graph's recorded non-zeros (``graph/nonzeros.npy``)
and tensor densities against the graph masks; the per-layer density statistics against the
layer masks; op and tensor records against each other and the layer geometries; decoder phase
tags against their provenance, names and geometries.
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from accelsim.cli import main
from accelsim.errors import TraceError
from accelsim.hw import load_hw
from accelsim.sim import graph_sizes, simulate
from accelsim.trace import CaptureOptions, capture_trace, open_trace, write_trace
from accelsim.trace.file_format import GRAPH_NONZEROS_MEMBER, METADATA_MEMBER, graph_member, layer_member
from accelsim.trace.reader import _Archive
from trace_helpers import rewrite

HW = "hw_configs/sparten_like.yaml"
SHIPPED = "traces/lenet5_digits_dual.trace"   # schema 1, no graph, no metadata_sha256


class Net(nn.Module):
    """conv -> bn -> relu -> max pool -> conv + residual -> relu -> avg pool -> flatten -> fc."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = F.max_pool2d(torch.relu(self.bn(self.c1(x))), 2)
        z = torch.relu(self.c2(y) + y)
        return self.fc(F.adaptive_avg_pool2d(z, 1).flatten(1))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    x = torch.relu(torch.randn(4, 3, 8, 8))
    data = capture_trace(Net().eval(), [x], CaptureOptions(samples=4), provenance={"model": "Net"})
    return write_trace(tmp_path_factory.mktemp("derived") / "net.trace", data)


def _meta(path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read(METADATA_MEMBER))


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _member(path, name) -> np.ndarray:
    with zipfile.ZipFile(path) as z:
        return np.load(io.BytesIO(z.read(name)))


def _unsigned(path, dst):
    """The trace as an older writer left it: no metadata_sha256 (member SHAs as they are)."""
    return rewrite(path, dst, meta=lambda m: m.pop("metadata_sha256", None), fix_sha=False)


def _tid(path, op_name: str, kind: str) -> int:
    """The output tensor of the first op ``op_name`` of ``kind``."""
    graph = _meta(path)["graph"]
    return next(o["outputs"][0] for o in graph["ops"] if o["op"] == op_name and o["kind"] == kind)


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# -- recorded non-zeros (graph/nonzeros.npy) against the graph masks -------------------------------

@pytest.mark.parametrize("signed", [True, False], ids=["metadata_sha256", "older-unsigned"])
def test_forged_nonzero_counts_are_refused_before_use(good, tmp_path, signed):
    """Counts in range but one off the mask's popcount: refused where the counts are first used
    (count formats size tensors from them without reading a mask)."""
    tid = _tid(good, "relu", "activation")
    counts = _member(good, GRAPH_NONZEROS_MEMBER)
    assert counts[tid, 0] > 0
    counts[tid, 0] -= 1
    path = rewrite(good, tmp_path / "nnz.trace", {GRAPH_NONZEROS_MEMBER: _npy(counts)})
    if not signed:
        path = _unsigned(path, tmp_path / "nnz_unsigned.trace")
    hw = load_hw(HW)
    with pytest.raises(TraceError) as info:
        graph_sizes.tensor_bits(open_trace(path).graph, hw)
    text = _one_line(info)
    assert str(path) in text and "graph/nonzeros.npy" in text and f"tensor {tid}, sample 0" in text
    assert graph_member(tid) in text
    with pytest.raises(TraceError, match="nonzeros.npy"):
        simulate(open_trace(path), hw)


def test_forged_mask_with_the_old_counts_is_refused(good, tmp_path):
    """The other way round: a mask rewritten (and re-checksummed) under unchanged counts."""
    tid = _tid(good, "relu", "activation")
    name = graph_member(tid)

    def flip_first_bit(data: bytes) -> bytes:
        rows = _member(good, name).copy()
        rows[0, 0] ^= 0x80
        return _npy(rows)

    path = rewrite(good, tmp_path / "mask.trace", {name: flip_first_bit})
    with pytest.raises(TraceError, match=f"tensor {tid}, sample 0"):
        open_trace(path).graph.nonzeros(tid)
    with pytest.raises(TraceError, match=f"tensor {tid}, sample 0"):
        open_trace(path).graph.mask(tid)          # a mask read checks the counts just the same


def test_forged_tensor_density_is_refused(good, tmp_path):
    tid = _tid(good, "relu", "activation")

    def edit(meta):
        meta["graph"]["tensors"][tid]["density"] = 0.9

    path = rewrite(good, tmp_path / "density.trace", meta=edit)
    with pytest.raises(TraceError, match=rf"graph.tensors\[{tid}\]: density: records 0.9"):
        open_trace(path).graph.nonzeros(tid)


def test_counts_are_checked_in_the_pass_that_verifies_the_mask(good, monkeypatch):
    """No pass of its own: a mask read first checks the counts; the counts then read nothing."""
    opened = []
    real = _Archive._open_rows

    def counting(self, name, shape, hashing):
        opened.append((name, hashing))
        return real(self, name, shape, hashing)

    monkeypatch.setattr(_Archive, "_open_rows", counting)
    tid = _tid(good, "relu", "activation")
    graph = open_trace(good).graph
    blocks = list(graph.mask_blocks(tid, size=2))
    assert opened == [(graph_member(tid), True)]
    counts = graph.nonzeros(tid)
    assert opened == [(graph_member(tid), True)]            # no second pass
    np.testing.assert_array_equal(counts, np.concatenate([b for _, b in blocks]).sum(axis=1))
    other = _tid(good, "batch_norm", "norm")
    graph.nonzeros(other)                                   # counts first: one verifying pass
    graph.mask(other)                                       # then a read, no hash again
    assert opened[1:] == [(graph_member(other), True), (graph_member(other), False)]


def test_genuine_graph_trace_reads_and_simulates(good):
    hw = load_hw(HW)
    result = simulate(open_trace(good), hw)
    assert result.totals["energy_vector_pj"] > 0


# -- per-layer density statistics against the layer masks ----------------------------------------

def _permute(values: np.ndarray) -> np.ndarray:
    """Swap the largest and the smallest entry: every mean stays, one entry is wrong."""
    out = values.copy()
    hi, lo = int(np.argmax(out)), int(np.argmin(out))
    assert out[hi] != out[lo]
    out[hi], out[lo] = out[lo], out[hi]
    return out


def test_per_sample_act_densities_are_checked_against_the_act_mask(tmp_path):
    """On the shipped schema-1 trace (no metadata_sha256): the per-sample densities size the
    layer inputs in the residency plan without a mask read."""
    name = layer_member(1, "act_density_per_sample")
    forged = _npy(_permute(_member(SHIPPED, name)))
    path = _unsigned(rewrite(SHIPPED, tmp_path / "a.trace", {name: forged}), tmp_path / "b.trace")
    assert "metadata_sha256" not in _meta(path)
    with pytest.raises(TraceError) as info:
        open_trace(path).layer(1).act_mask(1)
    text = _one_line(info)
    assert name in text and layer_member(1, "act_mask") in text and "layer 1 ('conv2')" in text
    with pytest.raises(TraceError, match="act_density_per_sample"):
        simulate(open_trace(path), load_hw(HW), samples=2)


def test_rescaled_act_statistics_are_refused(tmp_path):
    """All act statistics of a layer halved together (their means agree): the mask disagrees."""
    edits = {layer_member(1, key): _npy(_member(SHIPPED, layer_member(1, key)) * 0.5)
             for key in ("act_density_per_sample", "act_density_per_channel")}

    def scalar(meta):
        meta["layers"][1]["stats"]["act_density"] *= 0.5

    path = _unsigned(rewrite(SHIPPED, tmp_path / "a.trace", edits, meta=scalar),
                     tmp_path / "b.trace")
    with pytest.raises(TraceError, match="act_density_per_sample"):
        simulate(open_trace(path), load_hw(HW), samples=1)


def test_scalar_statistics_against_their_arrays(tmp_path):
    def edit(meta):
        meta["layers"][2]["stats"]["weight_density"] = 0.5

    path = rewrite(SHIPPED, tmp_path / "w.trace", meta=edit)
    with pytest.raises(TraceError, match=r"layer 2 \('fc1'\): stats.weight_density: records 0.5"):
        open_trace(path).layer(2)


def test_per_filter_weight_densities_are_checked_against_the_weight_mask(tmp_path):
    name = layer_member(0, "weight_density_per_filter")
    path = rewrite(SHIPPED, tmp_path / "w.trace", {name: _npy(_permute(_member(SHIPPED, name)))})
    with pytest.raises(TraceError) as info:
        open_trace(path).layer(0).weight_mask()
    assert name in _one_line(info) and "filter" in str(info.value)


def test_shipped_traces_still_read():
    for path in ("traces/lenet5_digits_dual.trace", "traces/lenet5_digits_baseline.trace"):
        for layer in open_trace(path):
            layer.weight_mask()
            layer.act_mask()


# -- op and tensor records against each other and the layer geometries ----------------------------

def _op(meta, op, kind):
    return next(o for o in meta["graph"]["ops"] if o["op"] == op and o["kind"] == kind)


def _inflate(meta, tid, shape):
    t = meta["graph"]["tensors"][tid]
    t["shape"], t["elements"] = list(shape), int(np.prod(shape))


def _elementwise_out(meta):   # the bn's relu writes 64x more than it reads
    _inflate(meta, _op(meta, "relu", "activation")["outputs"][0], (8, 64, 64))


def _layer_in(meta):          # the pool output c2 reads grows to 8x8
    _inflate(meta, _op(meta, "max_pool2d", "pool")["outputs"][0], (8, 8, 8))


def _layer_out(meta):
    _inflate(meta, _op(meta, "fc", "layer")["outputs"][0], (40,))


def _kernel(meta):
    _op(meta, "max_pool2d", "pool")["attrs"]["kernel"] = 1 << 20


def _kind(meta):
    _op(meta, "batch_norm", "norm")["kind"] = "activation"


def _source(meta):
    meta["graph"]["tensors"][_op(meta, "batch_norm", "norm")["outputs"][0]]["source"] = "layer"


def _layer_index(meta):
    _op(meta, "c1", "layer")["layer"] = 1


def _inplace(meta):
    meta["graph"]["tensors"][_op(meta, "fc", "layer")["outputs"][0]]["inplace_of"] = 0


def _reshape_not_alias(meta):
    _op(meta, "flatten", "reshape")["attrs"] = {}


@pytest.mark.parametrize("edit,words", [
    (_elementwise_out, r"ops\[\d+\] \('relu'\): outputs: .* elementwise op"),
    (_layer_in, r"ops\[\d+\] \('c2'\): inputs: .* reads C\*H\*W = 128"),
    (_layer_out, r"ops\[\d+\] \('fc'\): outputs: .* writes K\*P\*Q = 4"),
    (_kernel, r"ops\[\d+\] \('max_pool2d'\): attrs.kernel: .* spatial extent \(64\)"),
    (_kind, r"ops\[\d+\] \('batch_norm'\): kind: .* of kind norm, got 'activation'"),
    (_source, r"tensors\[\d+\]: source: expected op"),
    (_layer_index, r"ops\[0\] \('c1'\): op: a layer op names its layer 'c2'"),
    (_inplace, r"tensors\[\d+\]: inplace_of: expected an input of its producer"),
    (_reshape_not_alias, r"tensors\[\d+\]: alias_of: expected only on the output of an alias op"),
], ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else "")
def test_graph_records_disagreeing_with_geometry_or_each_other(good, tmp_path, edit, words):
    path = rewrite(good, tmp_path / "g.trace", meta=edit)
    for target in (path, _unsigned(path, tmp_path / "u.trace")):
        with pytest.raises(TraceError, match=r"metadata.json graph\." + words) as info:
            simulate(open_trace(target), load_hw(HW))
        assert str(target) in _one_line(info)


def test_cli_names_the_trace_and_the_record(good, tmp_path, capsys):
    path = rewrite(good, tmp_path / "k.trace", meta=_kernel)
    code = main(["simulate", "--trace", str(path), "--hw", HW, "-o", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert str(path) in err and "attrs.kernel" in err


# -- decoder phase tags -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    pytest.importorskip("transformers")
    from accelsim.trace.llm import capture_decoder, load_decoder

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_decoder("llama_tiny")[0]
        prompts = torch.randint(0, 256, (1, 4), generator=torch.Generator().manual_seed(0))
        data = capture_decoder(model, prompts, 2, CaptureOptions())
    return write_trace(tmp_path_factory.mktemp("decoder") / "d.trace", data)


def _layers(meta, step):
    return [r for r in meta["layers"] if r["stats"]["step"] == step]


def _phase_word(meta):
    meta["layers"][0]["stats"]["phase"] = "warmup"


def _step_text(meta):
    _layers(meta, 1)[0]["stats"]["step"] = "1"


def _step_negative(meta):
    _layers(meta, 1)[0]["stats"]["step"] = -1


def _prefill_step(meta):
    meta["layers"][0]["stats"]["step"] = 1


def _untagged(meta):
    del _layers(meta, 2)[0]["stats"]["phase"]
    del _layers(meta, 2)[0]["stats"]["step"]


def _merged_steps(meta):      # decode 2's layers re-tagged as decode 1: one "token" for two
    for r in _layers(meta, 2):
        r["stats"]["step"] = 1


def _merged_and_renamed(meta):
    for r in _layers(meta, 2):
        r["stats"]["step"] = 1
        r["name"] = "decode1/" + r["name"].split("/", 1)[1]


def _fewer_tokens(meta):
    meta["provenance"]["decoder"]["decode_tokens"] = 1


def _no_provenance(meta):
    del meta["provenance"]["decoder"]


def _wide_decode(meta):       # a decode layer of 4 tokens
    r = next(r for r in _layers(meta, 1) if r["geometry"]["kind"] == "linear")
    r["geometry"]["H"] = r["geometry"]["P"] = 4


@pytest.mark.parametrize("edit,words", [
    (_phase_word, r"layer 0 \('prefill/.*'\): stats.phase: expected 'prefill' or 'decode'"),
    (_step_text, r"stats.step: expected a non-negative integer, got '1'"),
    (_step_negative, r"stats.step: expected a non-negative integer, got -1"),
    (_prefill_step, r"stats.step: expected 0 for prefill and 1 or more for decode"),
    (_untagged, r"stats.phase: expected a phase tag"),
    (_merged_steps, r"\('decode2/.*'\): name: a decode step-1 layer is named decode1/<layer>"),
    (_merged_and_renamed, r"no layer of step 2 \(decode2\)"),
    (_fewer_tokens, r"provenance.decoder.phases: expected"),
    (_no_provenance, r"provenance.decoder: expected a mapping"),
    (_wide_decode, r"geometry: H = 4 tokens; a decode layer has 1 \(one token\)"),
], ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else "")
def test_phase_tags_are_checked_on_open(decoder, tmp_path, edit, words):
    path = rewrite(decoder, tmp_path / "p.trace", meta=edit)
    for target in (path, _unsigned(path, tmp_path / "u.trace")):
        with pytest.raises(TraceError, match=words) as info:
            open_trace(target)
        assert str(target) in _one_line(info)


def test_genuine_decoder_trace_reads(decoder):
    from accelsim.sim.decode import decode_per_token

    trace = open_trace(decoder)
    figures = decode_per_token(list(trace), load_hw(HW), samples=1)
    assert figures["sparse"].steps == 2


def test_norm_reading_another_tensor_than_it_writes_is_refused(tmp_path):
    """A batch_norm re-pointed at the 3x8x8 network input while writing 8x8x8 (checksums
    recomputed) changed the vector energy silently; a norm writes its input's size exactly."""
    torch.manual_seed(0)
    x = torch.relu(torch.randn(4, 3, 8, 8))
    good = write_trace(tmp_path / "net.trace", capture_trace(Net().eval(), [x],
                                                             CaptureOptions(samples=4)))
    bad = rewrite(good, tmp_path / "bad.trace",
                  meta=lambda m: m["graph"]["ops"][1].update(inputs=[0]))
    with pytest.raises(TraceError, match="writes as many as the tensor it maps"):
        simulate(open_trace(bad), load_hw(HW))
