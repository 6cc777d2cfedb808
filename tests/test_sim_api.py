"""simulate(): result table, totals, saving, accounting properties and bad input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sim_helpers import make_hw, random_layer
from accelsim.errors import AccelsimError, ConfigError, MappingError, TraceError
from accelsim.hw import energy_model
from accelsim.sim import SimResult, compare, simulate, simulate_layer
from accelsim.sim.energy import COMPONENTS

REQUIRED = ["layer", "cycles", "compute_cycles", "stall_cycles", "fill_drain_cycles",
            "utilization", "load_imbalance", "macs_dense", "macs_issued", "macs_skipped",
            "macs_gated", "energy_pj", *(f"energy_{c}_pj" for c in COMPONENTS), "dram_bytes",
            "onchip_peak_bytes", "offchip_peak_bytes", "spill"]


def net(n=2, density=0.5):
    return [
        random_layer("conv1", density, 0.6, seed=1, index=0, N=n, C=3, H=12, W=12, K=8, R=3, S=3,
                     pad_h=1, pad_w=1),
        random_layer("conv2", density, 0.4, seed=2, index=1, N=n, C=8, H=12, W=12, K=16, R=3,
                     S=3, stride_h=2, stride_w=2, pad_h=1, pad_w=1),
        random_layer("dw", density, 0.7, seed=3, index=2, N=n, C=16, H=6, W=6, K=16, R=3, S=3,
                     pad_h=1, pad_w=1, groups=16, kind="depthwise_conv2d"),
        random_layer("fc", density, 0.3, seed=4, index=3, N=n, C=64, H=1, W=1, K=10,
                     kind="linear"),
    ]


SPARSE = dict(sparsity={"skip_zero_activations": True, "skip_zero_weights": True},
              storage={"activations": {"format": "bitmap"}, "weights": {"format": "bitmap"},
                       "outputs": {"format": "bitmap"}})


def test_result_table_and_totals():
    res = simulate(net(), make_hw(**SPARSE))
    assert isinstance(res, SimResult)
    assert list(res.layers["layer"]) == ["conv1", "conv2", "dw", "fc"]
    for column in REQUIRED:
        assert column in res.layers, column
    t = res.totals
    assert t["cycles"] == pytest.approx(res.layers["cycles"].sum())
    assert t["energy_pj"] == pytest.approx(sum(t[f"energy_{c}_pj"] for c in COMPONENTS))
    assert t["peak_live_bytes"] == res.layers["live_bytes"].max()
    assert t["latency_s"] == pytest.approx(t["cycles"] / 500e6)
    row = res.layers.iloc[0]
    assert row["cycles"] == row["compute_cycles"] + row["stall_cycles"]
    assert row["macs_dense"] == row["macs_issued"] + row["macs_skipped"]
    assert 0 < row["utilization"] <= 1
    assert row["load_imbalance"] >= 1
    assert row["energy_pj"] == pytest.approx(sum(row[f"energy_{c}_pj"] for c in COMPONENTS))
    assert res.meta["hw_hash"] == make_hw(**SPARSE).hash


def test_dense_twin_issues_every_mac():
    hw = make_hw(**SPARSE)
    dense = simulate(net(), hw.dense_twin()).layers
    sparse = simulate(net(), hw).layers
    assert (dense["macs_issued"] == dense["macs_dense"]).all()
    assert (dense["macs_skipped"] == 0).all()
    assert (sparse["macs_issued"] >= sparse["macs_effectual"]).all()   # padding slots issued
    exact = simulate(net(), make_hw(**{**SPARSE, "sparsity": {**SPARSE["sparsity"],
                                                              "skip_padding": True}})).layers
    assert (exact["macs_issued"] == exact["macs_effectual"]).all()
    assert (sparse["compute_cycles"] < dense["compute_cycles"]).all()
    assert (sparse["dram_bytes"] < dense["dram_bytes"]).all()
    table = compare(simulate(net(), hw), simulate(net(), hw.dense_twin()))
    assert (table["speedup"] > 1).all() and (table["energy_saving"] > 0).all()


def test_gating_saves_mac_energy_but_not_cycles():
    base = simulate(net(), make_hw()).layers
    gated = simulate(net(), make_hw(sparsity={"gate_zero_operands": True})).layers
    assert (gated["cycles"] == base["cycles"]).all()
    assert (gated["macs_gated"] == gated["macs_issued"] - gated["macs_effectual"]).all()
    assert (gated["energy_mac_pj"] < base["energy_mac_pj"]).all()
    assert (gated["energy_spad_pj"] < base["energy_spad_pj"]).all()
    assert (base["macs_gated"] == 0).all()


def test_skipping_only_activations_or_only_weights():
    acts = simulate(net(), make_hw(sparsity={"skip_zero_activations": True})).layers
    weights = simulate(net(), make_hw(sparsity={"skip_zero_weights": True})).layers
    both = simulate(net(), make_hw(sparsity={"skip_zero_activations": True,
                                             "skip_zero_weights": True})).layers
    assert (both["macs_issued"] <= acts["macs_issued"]).all()
    assert (both["macs_issued"] <= weights["macs_issued"]).all()
    assert (acts["macs_issued"] < acts["macs_dense"]).all()


def test_clock_and_power_gating_cut_idle_energy():
    common = dict(sparsity={"skip_zero_activations": True, "skip_zero_weights": True},
                  pe_array={"sync": "array"})
    plain_hw = make_hw(**common)
    plain = simulate(net(), plain_hw).layers
    clock = simulate(net(), make_hw(**common, low_power={"clock_gating": True})).layers
    assert (clock["energy_clock_pj"] < plain["energy_clock_pj"]).all()
    assert (clock["cycles"] == plain["cycles"]).all()
    free = simulate(net(), make_hw(**common, low_power={"power_gating": True})).layers
    assert (free["energy_leakage_pj"] < plain["energy_leakage_pj"]).all()
    assert free["wakeups"].sum() > 0 and free["gated_pe_cycles"].sum() > 0
    # gating every short idle spell costs more wake-ups than it saves ...
    wake = 0.1
    eager = simulate(net(), make_hw(**common, low_power={"power_gating": True,
                                                         "wakeup_energy_pj": wake})).layers
    assert (eager["energy_leakage_pj"] > plain["energy_leakage_pj"]).any()
    # ... while a break-even minimum idle time never loses energy
    leak = energy_model(plain_hw).pe_leakage_pj_per_cycle
    careful = simulate(net(), make_hw(**common, low_power={
        "power_gating": True, "wakeup_energy_pj": wake,
        "min_idle_cycles": int(np.ceil(wake / leak))})).layers
    assert (careful["energy_leakage_pj"] <= plain["energy_leakage_pj"]).all()


def test_samples_are_simulated_one_by_one_and_averaged():
    layers = net(n=3)
    hw = make_hw(**SPARSE)
    all_rows = simulate(layers, hw).layers
    per_sample = []
    for n in range(3):
        single = [random_layer(l.name, 0.5, index=l.index, N=1, **_geometry_kwargs(l))
                  for l in layers]
        for s, l in zip(single, layers):  # same masks, sample n only
            s._act_loader = (lambda a: (lambda k: a))(l.act_mask()[n:n + 1])
            s._weight_loader = l._weight_loader
        per_sample.append(simulate(single, hw).layers)
    for column in ("cycles", "energy_pj", "macs_issued", "dram_bytes"):
        mean = np.mean([frame[column].to_numpy() for frame in per_sample], axis=0)
        assert np.allclose(all_rows[column].to_numpy(), mean)
    assert (all_rows["samples"] == 3).all()
    assert (simulate(layers, hw, samples=1).layers["samples"] == 1).all()
    assert np.allclose(simulate(layers, hw, samples=1).layers["cycles"],
                       per_sample[0]["cycles"])


def _geometry_kwargs(layer):
    data = layer.geometry.to_dict()
    data.pop("N")
    data.pop("P")
    data.pop("Q")
    return data


def test_generator_input_and_memory_figures():
    hw = make_hw(global_buffer={"size_kib": 1})  # a 1 KiB buffer: tiles re-fetched from DRAM
    res = simulate((layer for layer in net()), hw)
    layers = res.layers
    registers = hw.num_pes * hw.memory_hierarchy[1].size_bytes    # the PEs' own level
    assert (layers["onchip_peak_bytes"] <= 1024 + registers).all()
    assert np.allclose(layers["onchip_peak_bytes"] + layers["offchip_peak_bytes"],
                       layers["live_bytes"])
    roomy = simulate(net(), make_hw()).layers
    assert (layers["dram_bytes"] >= roomy["dram_bytes"]).all()
    assert (layers["dram_bytes"] > roomy["dram_bytes"]).any()


def test_compulsory_dram_traffic_and_bandwidth_stalls():
    ideal = simulate(net(), make_hw()).layers
    slow = simulate(net(), make_hw(dram={"ideal": False, "bandwidth_gb_per_s": 0.5})).layers
    compulsory = ideal["act_bytes"] + ideal["weight_bytes"] + ideal["output_bytes"]
    assert np.allclose(ideal["dram_bytes"], compulsory)
    assert (ideal["dram_stall_cycles"] == 0).all()
    assert (slow["dram_stall_cycles"] > 0).any()       # DRAM overlaps compute where it can
    # 0.5 GB/s at 500 MHz = 1 byte per cycle: the layer takes at least its DRAM bytes in cycles
    assert (slow["cycles"] >= slow["dram_bytes"] - 1).all()


def test_compressed_storage_shrinks_sparse_activations():
    sparse = net(density=0.1)
    dense = simulate(sparse, make_hw()).layers
    rle = simulate(sparse, make_hw(storage={"activations": {"format": "run_length",
                                                            "run_bits": 4}})).layers
    assert (rle["act_bytes"] < dense["act_bytes"]).all()


def test_save_csv_with_identity(tmp_path):
    res = simulate(net(), make_hw(**SPARSE), trace_hash="abc123")
    path = res.save(tmp_path / "sub" / "out.csv")
    table = pd.read_csv(path)
    assert list(table.columns[:4]) == ["hw_name", "hw_hash", "trace_hash", "fidelity"]
    assert (table["trace_hash"] == "abc123").all()
    assert np.allclose(table["cycles"], res.layers["cycles"])
    side = json.loads((tmp_path / "sub" / "out.csv.json").read_text())
    assert side["meta"]["hw_name"] == "test-hw" and side["totals"]["layers"] == 4
    assert not list((tmp_path / "sub").glob("*.tmp"))
    assert json.loads(json.dumps(res.to_dict(), default=str))["layers"][0]["layer"] == "conv1"


def test_save_rejects_unknown_suffix_and_missing_parquet(tmp_path):
    res = simulate(net()[:1], make_hw())
    with pytest.raises(AccelsimError, match=r"\.csv or \.parquet"):
        res.save(tmp_path / "out.xlsx")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(AccelsimError, match="pyarrow"):
            res.save(tmp_path / "out.parquet")
        assert not (tmp_path / "out.parquet").exists()
    else:
        res.save(tmp_path / "out.parquet")
        assert len(pd.read_parquet(tmp_path / "out.parquet")) == 1


def test_precision_mismatch_names_both_sides():
    layer = random_layer("big", act_bits=16, C=2, H=4, W=4, K=2)
    with pytest.raises(MappingError) as info:
        simulate([layer], make_hw())
    message = str(info.value)
    assert "16-bit activations" in message and "precision.activation_bits=8" in message


def test_empty_trace_is_an_error():
    with pytest.raises(TraceError, match="no layers"):
        simulate([], make_hw())


def test_unmappable_layer_is_an_error():
    layer = random_layer(C=512, H=3, W=3, K=512, R=3, S=3)
    hw = make_hw(pe_array={"rows": 64, "cols": 64}, global_buffer={"size_kib": 0.125})
    with pytest.raises(MappingError, match="systolic mapping: level 'global_buffer' holds 128 "
                                           "bytes"):
        simulate([layer], hw)
    with pytest.raises(ConfigError, match="scratchpad.psum_bytes"):   # no room for a partial sum
        make_hw(scratchpad={"psum_bytes": 1})


def test_unmodelled_dataflow_is_a_config_error():
    import dataclasses

    hw = make_hw()
    odd = dataclasses.replace(hw, pe_array=dataclasses.replace(hw.pe_array,
                                                               dataflow="row_stationary"))
    with pytest.raises(AccelsimError, match="pe_array.dataflow.*row_stationary"):
        simulate([random_layer(C=2, H=3, W=3, K=2)], odd)


def test_bad_arguments():
    layer = random_layer(C=2, H=3, W=3, K=2)
    with pytest.raises(AccelsimError, match="fidelity"):
        simulate([layer], make_hw(), fidelity="exact")
    with pytest.raises(AccelsimError, match="samples"):
        simulate_layer(layer, make_hw(), samples=0)
