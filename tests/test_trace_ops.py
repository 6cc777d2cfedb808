"""Capture of the ops between traced layers: tensor ids, order, masks, file round trip."""
from __future__ import annotations

import collections
import json
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn

from accelsim.cli import main
from accelsim.errors import TraceError
from accelsim.trace import CaptureOptions, capture_trace
from accelsim.trace.reader import open_trace
from accelsim.trace.writer import write_trace
from accelsim.zoo import build_model


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = build_model("resnet18_cifar").eval()
    x = torch.randn(3, 3, 32, 32)
    seen: dict[str, list] = {}
    # (hooks copy through NumPy: tensor ops in a hook would be recorded as the model's ops)
    handles = [model.pool.register_forward_hook(
        lambda m, a, out: seen.setdefault("pool", []).append(out.numpy().copy())),
        model.stem[1].register_forward_hook(
        lambda m, a, out: seen.setdefault("stem_bn", []).append(out.numpy().copy()))]
    try:
        data = capture_trace(model, [x[:2], x[2:]], CaptureOptions(samples=3))
    finally:
        for h in handles:
            h.remove()
    return data, x, {k: torch.from_numpy(np.concatenate(v)) for k, v in seen.items()}


def test_resnet18_records_residual_adds_and_pooling(resnet):
    data, _, _ = resnet
    g = data.graph
    kinds = collections.Counter(op.kind for op in g.ops)
    assert kinds["layer"] == len(data.layers) == 21
    assert kinds["add"] == 8 and kinds["pool"] == 1 and kinds["norm"] == 20
    assert kinds["activation"] == 17 and kinds["reshape"] == 1   # relus; the flatten
    assert [op.layer for op in g.ops if op.is_layer] == list(range(21))
    adds = [op for op in g.ops if op.kind == "add"]
    # layer1.0: identity shortcut: the add reads the stem's ReLU output, written 6 ops before
    first = adds[0]
    assert first.name == "layer1.0" and len(first.inputs) == 2
    producers = [g.tensors[t].producer for t in first.inputs]
    assert g.ops[producers[1]].name == "stem.2" and first.index - producers[1] == 6
    # layer2.0: projection shortcut: the add reads the shortcut's batch norm
    down = next(op for op in adds if op.name == "layer2.0")
    assert {g.ops[g.tensors[t].producer].name for t in down.inputs} == {
        "layer2.0.bn2", "layer2.0.shortcut.1"}
    # every op reads only tensors written before it; in-place ReLUs reuse their input's storage
    for op in g.ops:
        for t in op.inputs:
            p = g.tensors[t].producer
            assert p is None or p < op.index
    relus = [op for op in g.ops if op.kind == "activation"]
    assert all(op.inplace and g.tensors[op.outputs[0]].inplace_of == op.inputs[0] for op in relus)
    flat = next(op for op in g.ops if op.kind == "reshape")
    assert g.tensors[flat.outputs[0]].alias_of == flat.inputs[0] and flat.attrs["alias"]
    assert g.ops[-1].is_layer and g.outputs == g.ops[-1].outputs
    pool = next(op for op in g.ops if op.kind == "pool")
    assert g.tensors[pool.outputs[0]].shape == (512, 1, 1) and pool.op == "adaptive_avg_pool2d"


def test_masks_are_the_real_tensors_nonzeros(resnet):
    data, x, seen = resnet
    g = data.graph
    pool = next(op for op in g.ops if op.kind == "pool")
    bn = next(op for op in g.ops if op.name == "stem.1")
    for tid, real in ((pool.outputs[0], seen["pool"]), (bn.outputs[0], seen["stem_bn"]),
                      (0, x)):
        want = (real != 0).reshape(3, -1).numpy()
        assert np.array_equal(g.mask(tid), want)
        assert g.tensors[tid].density == pytest.approx(want.mean())
    assert g.tensors[0].source == "input"


def test_graph_round_trip_and_partial_reads(resnet, tmp_path):
    data, _, _ = resnet
    path = write_trace(tmp_path / "r.trace", data)
    trace = open_trace(path)
    g, h = data.graph, trace.graph
    assert [o.to_dict() for o in h.ops] == [o.to_dict() for o in g.ops]
    assert [t.to_dict() for t in h.tensors] == [t.to_dict() for t in g.tensors]
    for t in g.tensors:
        if t.has_mask:
            assert np.array_equal(h.mask(t.id), g.mask(t.id))
            assert np.array_equal(h.mask(t.id, 1), g.mask(t.id)[:1])
        else:
            assert h.mask(t.id) is None


def _rewrite_metadata(src, dst, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "metadata.json":
                meta = json.loads(data)
                edit(meta)
                data = json.dumps(meta).encode()
            zout.writestr(item, data)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["graph"]["ops"][3]["inputs"].append(60), "reads a tensor produced by itself"),
    (lambda m: m["graph"]["tensors"][5].update(elements=7), "elements"),
    (lambda m: m["graph"]["ops"][1].update(kind="warp"), "kind: expected one of"),
    (lambda m: m["graph"]["tensors"][2].update(alias_of=9), "alias_of"),
    (lambda m: m["graph"].update(ops="x"), "expected a mapping with lists"),
    (lambda m: m["graph"]["ops"][1]["attrs"].update(kernel=-1), "attrs"),
    (lambda m: m["graph"]["tensors"][3].update(producer=1), "outputs"),
])
def test_corrupt_graph_is_one_clear_error(resnet, tmp_path, edit, message):
    data, _, _ = resnet
    good = write_trace(tmp_path / "good.trace", data)
    bad = tmp_path / "bad.trace"
    _rewrite_metadata(good, bad, edit)
    with pytest.raises(TraceError, match=message) as info:
        open_trace(bad)
    assert "\n" not in str(info.value) and "graph" in str(info.value)


def test_corrupt_graph_mask_member_is_refused(resnet, tmp_path):
    data, _, _ = resnet
    good = write_trace(tmp_path / "good.trace", data, compress=False)
    raw = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("graph/tensor_00002_mask.npy")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    raw[offset] ^= 0xFF
    bad = tmp_path / "bad.trace"
    bad.write_bytes(bytes(raw))
    trace = open_trace(bad)
    with pytest.raises(TraceError, match="corrupt"):
        trace.graph.mask(2)


def test_trace_without_graph_says_unknown(resnet, tmp_path, capsys):
    data, _, _ = resnet
    old = type(data)(layers=data.layers, provenance=data.provenance, untraced=data.untraced)
    path = write_trace(tmp_path / "old.trace", old)
    assert open_trace(path).graph is None
    assert main(["trace", "info", str(path)]) == 0
    assert "between-layer ops: unknown" in capsys.readouterr().out
    assert main(["trace", "info", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["between_layer_ops"] is None


def test_trace_info_lists_between_layer_ops(resnet, tmp_path, capsys):
    data, _, _ = resnet
    path = write_trace(tmp_path / "r.trace", data)
    assert main(["trace", "info", "--json", str(path)]) == 0
    ops = json.loads(capsys.readouterr().out)["between_layer_ops"]
    kinds = {row["kind"]: row for row in ops["kinds"]}
    assert kinds["add"]["count"] == 8 and kinds["pool"]["count"] == 1
    # a stage-1 add writes 64x32x32 one-byte values per sample (capture act_bits 8)
    assert kinds["add"]["dense_bytes"] == pytest.approx(2 * 64 * 32 * 32 + 2 * 128 * 16 * 16
                                                        + 2 * 256 * 8 * 8 + 2 * 512 * 4 * 4)
    assert ops["ops"] == sum(row["count"] for row in ops["kinds"])
    assert main(["trace", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "between-layer ops: 47" in out and "add" in out


class Plain(nn.Module):
    """Concatenation, softmax, a slice, an explicit in-place op and a view."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 1)
        self.b = nn.Conv2d(2, 3, 1)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], dim=1)
        y = y.relu_()
        y = y.view(y.shape[0], -1)
        return torch.softmax(self.fc(y), dim=-1)[:, :3]


def test_concat_softmax_slice_and_per_sample_forward_agree():
    torch.manual_seed(1)
    model = Plain()
    x = torch.randn(4, 2, 4, 4)
    batched = capture_trace(model, [x], CaptureOptions(samples=4)).graph
    single = capture_trace(model, [x], CaptureOptions(samples=4, per_sample_forward=True)).graph
    kinds = [op.kind for op in batched.ops]
    assert kinds == ["layer", "layer", "concat", "activation", "reshape", "layer", "softmax",
                     "slice"]
    cat = batched.ops[2]
    assert [batched.tensors[t].producer for t in cat.inputs] == [0, 1]
    assert batched.ops[3].inplace and batched.tensors[batched.ops[4].outputs[0]].alias_of == 4
    assert [o.to_dict() for o in single.ops] == [o.to_dict() for o in batched.ops]
    for t in batched.tensors:
        if t.has_mask:
            assert np.array_equal(single.mask(t.id), batched.mask(t.id))


def test_transformer_capture_keeps_a_graph():
    torch.manual_seed(0)
    model = build_model("tiny_transformer")
    from accelsim.zoo import model_input_shape

    shape = model_input_shape("tiny_transformer")
    x = torch.randn(2, *shape)
    data = capture_trace(model, [x], CaptureOptions(samples=2))
    g = data.graph
    assert g is not None
    layer_ops = [op.layer for op in g.ops if op.is_layer]
    assert sorted(set(layer_ops)) == list(range(len(data.layers)))
