"""Statistical traces: seeded, reproducible draws with the requested densities."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from accelsim.errors import AccelsimError, ConfigError
from accelsim.trace import (CaptureOptions, capture_trace, open_trace, statistical_from_model,
                            statistical_from_topology, statistical_from_trace, write_trace)
from accelsim.trace.density import draw_act_mask, draw_weight_mask
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.topology import read_topology

TOPOLOGY = """Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1, 34, 34, 3, 3, 16, 32, 1,
Conv2, 32, 32, 3, 3, 32, 64, 2,
FC1, 1, 1, 1, 1, 256, 10, 1,
"""


@pytest.fixture
def topology_csv(tmp_path):
    path = tmp_path / "net.csv"
    path.write_text(TOPOLOGY)
    return path


def test_topology_parsing(topology_csv):
    layers, notes = read_topology(topology_csv, samples=2)
    assert [l.name for l in layers] == ["Conv1", "Conv2", "FC1"]
    c1, c2, fc = (l.geometry for l in layers)
    assert (c1.N, c1.C, c1.H, c1.W, c1.K, c1.R, c1.S, c1.P, c1.pad_h) == (2, 16, 34, 34, 32, 3, 3, 32, 0)
    assert (c2.stride_h, c2.stride_w, c2.P, c2.Q) == (2, 2, 15, 15)
    assert (fc.C, fc.K, fc.P) == (256, 10, 1)
    assert len(notes) == 1 and "Conv2" in notes[0] and "16x16" in notes[0]


@pytest.mark.parametrize("text,match", [
    ("name,h,w,r,s,c,k,st,\nL1, 8, 8, 3, x, 4, 4, 1,\n", r"line 2, column 'filter width'.*'x'"),
    ("L1, 8, 8, 3, 3, 4, 4,\n", "line 1: expected 8 columns"),
    ("L1, 2, 2, 3, 3, 4, 4, 1,\n", "larger than the IFMAP"),
    ("name,h,w\n\n", "no layer rows"),
])
def test_topology_errors_name_file_line_and_column(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"bad\.csv: {match}" if "line" in match else match):
        read_topology(path)


def test_reproducible_from_seed_and_prefix_consistent(topology_csv, tmp_path):
    a = statistical_from_topology(topology_csv, 0.4, 0.3, seed=7, samples=3,
                                  output=tmp_path / "a.trace")
    b = open_trace(tmp_path / "a.trace")
    statistical_from_topology(topology_csv, 0.4, 0.3, seed=8, samples=3, output=tmp_path / "c.trace")
    c = open_trace(tmp_path / "c.trace")
    assert b.is_statistical and b.num_samples == 3 and b.seed == 7
    for mem, disk, other in zip(a.layer_traces(), b, c):
        np.testing.assert_array_equal(mem.weight_mask(), disk.weight_mask())
        np.testing.assert_array_equal(mem.act_mask(), disk.act_mask())
        np.testing.assert_array_equal(disk.act_mask(2), disk.act_mask()[:2])
        assert not np.array_equal(disk.act_mask(), other.act_mask())
    # layers use distinct streams: same geometry, different layer index -> different masks
    g = LayerGeometry("conv2d", 1, 4, 8, 8, 4, 3, 3)
    assert not np.array_equal(draw_act_mask(g, 0.5, 0, 0, 1), draw_act_mask(g, 0.5, 0, 1, 1))


@pytest.mark.parametrize("act,weight", [(0.1, 0.9), (0.5, 0.25)])
def test_uniform_density_within_sampling_error(act, weight):
    g = LayerGeometry("conv2d", 4, 64, 16, 16, 64, 3, 3, pad_h=1, pad_w=1)
    acts = draw_act_mask(g, act, 3, 0, 4)
    weights = draw_weight_mask(g, weight, 3, 0)
    for mask, d in ((acts, act), (weights, weight)):
        sigma = np.sqrt(d * (1 - d) / mask.size)
        assert abs(mask.mean() - d) < 5 * sigma


def test_per_channel_density_within_sampling_error():
    g = LayerGeometry("conv2d", 8, 6, 32, 32, 5, 3, 3)
    act_d = np.array([0.0, 0.1, 0.3, 0.5, 0.9, 1.0])
    w_d = np.linspace(0.1, 0.9, 5)
    acts = draw_act_mask(g, act_d, 1, 2, 8)
    per_channel = acts.mean(axis=(0, 2, 3))
    sigma = np.sqrt(act_d * (1 - act_d) / (8 * 32 * 32))
    assert np.all(np.abs(per_channel - act_d) <= 5 * sigma + 1e-12)
    assert per_channel[0] == 0.0 and per_channel[-1] == 1.0
    weights = draw_weight_mask(g, w_d, 1, 2)
    per_filter = weights.reshape(5, -1).mean(axis=1)
    assert np.all(np.abs(per_filter - w_d) < 5 * np.sqrt(w_d * (1 - w_d) / 54) + 1e-12)


def test_from_model_matches_captured_geometry(tmp_path):
    from accelsim.zoo import get_model

    stat = statistical_from_model("resnet18_cifar", None, 0.5, 0.5, samples=2)
    captured = capture_trace(get_model("resnet18_cifar"), [torch.randn(2, 3, 32, 32)],
                             CaptureOptions(samples=2))
    assert stat.layer_names == captured.layer_names
    assert [l.geometry for l in stat.layers] == [l.geometry for l in captured.layers]
    assert stat.provenance["model"] == "resnet18_cifar"
    assert stat.provenance["input_shape"] == [3, 32, 32]


def test_from_model_instance_input_density_and_mapping():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 2))
    data = statistical_from_model(model, (3, 8, 8), {"*": 0.2, "3": [0.5] * 144}, 0.7,
                                  input_density=1.0)
    first, fc = data.layers
    assert first.act_density == 1.0 and fc.geometry.C == 144
    assert np.allclose(fc.act_density, 0.5) and fc.weight_density == 0.7
    with pytest.raises(AccelsimError, match="no density given for layer '3'"):
        statistical_from_model(model, (3, 8, 8), {"0": 0.2}, 0.5)
    with pytest.raises(AccelsimError, match=r"act density: expected a density in \[0, 1\]"):
        statistical_from_model(model, (3, 8, 8), 1.5, 0.5)
    with pytest.raises(AccelsimError, match="144 per-channel densities"):
        statistical_from_model(model, (3, 8, 8), {"*": 0.2, "3": [0.5] * 3}, 0.5)


def test_from_trace_per_channel(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, padding=1))
    captured = write_trace(tmp_path / "cap.trace",
                           capture_trace(model, [torch.randn(4, 3, 16, 16)],
                                         CaptureOptions(samples=4, act_bits=6)))
    source = open_trace(captured)
    data = statistical_from_trace(source, "per_channel", seed=1, samples=50,
                                  output=tmp_path / "stat.trace")
    stat = open_trace(tmp_path / "stat.trace")
    assert stat.num_samples == 50 and stat.layer(1).act_bits == 6
    assert stat.provenance["from_trace_hash"] == source.content_hash
    measured = source.layer(1).stats["act_density_per_channel"]
    drawn = stat.layer(1).act_mask().mean(axis=(0, 2, 3))
    assert np.all(np.abs(drawn - measured) < 0.03)
    uniform = statistical_from_trace(source, "uniform")
    assert np.ndim(uniform.layers[1].act_density) == 0
    assert data.layers[1].geometry == LayerGeometry.from_dict(
        {**source.layer(1).geometry.to_dict(), "N": 50})
