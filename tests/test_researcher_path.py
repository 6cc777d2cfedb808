"""Issue 26, the researcher's path: absolute figures next to relative ones in `simulate`'s
text (the DRAM price, a memory line whose parts add up, residency reasons that name the real
cause)."""
from __future__ import annotations

import re

import pytest

from accelsim.cli import main
from accelsim.hw import load_hw, load_hw_dict
from accelsim.hw.energy import energy_model, load_table
from accelsim.sim import simulate
from accelsim.sim.cli import memory_line
from accelsim.sim.residency import plan_network
from accelsim.trace import open_trace

TRACE = "traces/lenet5_digits_dual.trace"
KIB = r"([\d,]+\.\d)"


def _kib(text: str) -> float:
    return float(text.replace(",", ""))


def _run(capsys, *args) -> str:
    assert main(["simulate", "--trace", TRACE, "--samples", "2", *args]) == 0
    return capsys.readouterr().out


def test_memory_line_parts_add_up(capsys):
    # edge_lowpower on LeNet-5: conv1 spills while fc1 has the largest footprint; the old line
    # printed "47.0 KiB (on chip 47.0 KiB, off chip 2.3 KiB)", a total smaller than its parts
    out = _run(capsys, "--hw", "hw_configs/edge_lowpower.yaml")
    line = next(l for l in out.splitlines() if l.startswith("peak runtime memory"))
    m = re.search(rf"{KIB} KiB in layer (\S+) = on chip {KIB} \+ off chip {KIB} KiB", line)
    assert m, line
    total, layer, onchip, offchip = _kib(m[1]), m[2], _kib(m[3]), _kib(m[4])
    assert total == pytest.approx(onchip + offchip, abs=0.11)
    res = simulate(open_trace(TRACE), load_hw("hw_configs/edge_lowpower.yaml"), samples=2)
    rows = res.layers
    big = rows.loc[rows["live_bytes"].idxmax()]
    assert layer == big["layer"] and total == pytest.approx(big["live_bytes"] / 1024, abs=0.06)
    spilled = res.totals["spilled_layers"]
    if spilled:   # a spilling layer other than the largest one: the case the old line got wrong
        assert f"layers spilling to DRAM: {spilled[0]}" in line and "largest spill" in line


def test_memory_line_names_the_graph_peak_apart():
    res = simulate(open_trace(TRACE), load_hw("hw_configs/sparten_like.yaml"), samples=2)
    t = res.totals
    layer_peak = t["peak_live_bytes"]
    # as simulate() records it when the trace has a graph: lifetimes give the network's peak
    t["peak_layer_live_bytes"], t["peak_live_bytes"], t["peak_live_step"] = layer_peak, 3 * layer_peak, 4
    line = memory_line(res)
    m = re.search(rf"peak runtime memory: {KIB} KiB of live tensors at op 4 .*largest layer "
                  rf"footprint: {KIB} KiB in layer \S+ = on chip {KIB} \+ off chip {KIB} KiB", line)
    assert m, line
    assert _kib(m[1]) == pytest.approx(3 * layer_peak / 1024, abs=0.06)
    assert _kib(m[2]) == pytest.approx(_kib(m[3]) + _kib(m[4]), abs=0.11)


def test_dram_price_printed_with_the_totals(capsys, tmp_path):
    import yaml

    data = load_hw("hw_configs/eyeriss_v1.yaml").to_dict()
    data["dram"]["device"] = None      # priced by the energy table (a design naming no device)
    data["dram"]["access_stream"] = False
    data["dram"].pop("layout", None)
    path = tmp_path / "eyeriss_no_device.yaml"
    path.write_text(yaml.safe_dump(data))
    out = _run(capsys, "--hw", str(path))
    hw = load_hw(path)
    price = load_table(hw.technology.energy_table)["dram_pj_per_bit"]
    line = next(l for l in out.splitlines() if l.startswith("DRAM:"))
    assert f"DRAM: {price:g} pJ/bit (energy table {hw.technology.energy_table}" in line
    assert f"{hw.dram.bandwidth_gb_per_s:g} GB/s" in line
    res = simulate(open_trace(TRACE), hw, samples=2)
    share = res.totals["energy_dram_pj"] / res.totals["energy_pj"]
    assert f"{res.totals['energy_dram_pj'] / 1e6:.3f} uJ = {100 * share:.1f}% of the energy" in line


def test_dram_priced_as_accessed_on_a_device(capsys):
    """A mapped design whose DRAM device is driven by its access streams: the line gives the
    price they paid (energy over bytes on the bus) and their row-hit rate, not a table figure."""
    out = _run(capsys, "--hw", "hw_configs/edge_npu_lpddr.yaml")
    hw = load_hw("hw_configs/edge_npu_lpddr.yaml")
    res = simulate(open_trace(TRACE), hw, samples=2)
    t = res.totals
    stream = sum(t[f"energy_dram_{a}_pj"] for a in
                 ("activate", "precharge", "read", "write", "refresh", "background", "io"))
    line = next(l for l in out.splitlines() if l.startswith("DRAM:"))
    assert f"DRAM: {stream / (8 * t['dram_stream_bytes']):.4g} pJ/bit as accessed" in line
    assert f"row hits {100 * t['dram_row_hit_rate']:.1f}%" in line and "LPDDR4X-4266" in line


def test_dram_price_follows_an_override(tmp_path, capsys):
    data = load_hw("hw_configs/edge_npu_lpddr.yaml").to_dict()
    data["technology"]["energy_overrides"] = {"dram_pj_per_bit": 4.5}
    path = tmp_path / "lpddr.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data))
    assert energy_model(load_hw(path)).dram_pj_per_bit == 4.5
    out = _run(capsys, "--hw", str(path), "--json")
    import json

    assert json.loads(out)["meta"]["dram"]["pj_per_bit"] == 4.5
    out = _run(capsys, "--hw", str(path))
    assert "DRAM: 4.5 pJ/bit (technology.energy_overrides.dram_pj_per_bit)" in out


def _notes(hw) -> str:
    return " ".join(plan_network(list(open_trace(TRACE)), hw, weights="auto").notes)


def test_residency_reason_bypass_on_eyeriss_v1(capsys):
    hw = load_hw("hw_configs/eyeriss_v1.yaml")    # its glb keeps inputs and outputs only
    note = _notes(hw)
    assert "bypass" in note and "glb keeps inputs, outputs" in note
    assert "do not fit" not in note and "capacity" not in note
    out = _run(capsys, "--hw", "hw_configs/eyeriss_v1.yaml")
    assert "residency: weights streamed (bypass)" in out


def test_residency_reason_capacity():
    # the flat Eyeriss-class design the project once shipped: a global buffer that keeps
    # everything, too small for LeNet-5's weights
    hw = load_hw("tests/fixtures/systolic_designs/eyeriss_like.yaml")
    size = hw.memory_hierarchy[0].size_bytes     # the buffer, ported as the file loads
    note = _notes(hw)
    assert "(capacity)" in note and f"{size:,.0f} bytes" in note and "bypass" not in note
    # a memory_hierarchy whose shared level keeps weights but is too small
    data = load_hw("hw_configs/eyeriss_v1.yaml").to_dict()
    data["memory_hierarchy"][0]["keeps"] = ["weights", "inputs", "outputs"]
    data["memory_hierarchy"][0]["size_bytes"] = 65536
    note = _notes(load_hw_dict(data, "small_glb.yaml"))
    assert "(capacity)" in note and "glb level's 65,536 bytes" in note and "bypass" not in note


# -- long work: run folders, progress and estimates ----------------------------------------

def _llm_decode():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "llm_decode.py"
    spec = importlib.util.spec_from_file_location("llm_decode_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_llm_decode_default_output_is_a_run_folder():
    from pathlib import Path

    bench = _llm_decode()
    out = Path(bench.build_parser().parse_args([]).out)
    assert not out.is_absolute() and out.parts[0] == "runs" and "docs" not in out.parts
    assert Path(bench.build_parser().parse_args(["--out", "docs/x.png"]).out) == Path("docs/x.png")


def test_llm_decode_progress_estimates_time_left(monkeypatch):
    import io

    bench = _llm_decode()
    now = [100.0]
    monkeypatch.setattr(bench.time, "monotonic", lambda: now[0])
    stream = io.StringIO()
    progress = bench.Progress(targets=4, stream=stream)
    progress.loop_start = now[0]
    assert "known after the first target" in progress.left()
    with progress.phase("s=0.00 [1/4] capture"):
        now[0] += 30.0
    progress.done = 1
    now[0] += 10.0
    assert progress.left() == "about 2:00 left"    # 40 s per target, 3 to go
    lines = stream.getvalue().splitlines()
    assert lines == ["[0:00] s=0.00 [1/4] capture ...", "[0:30] s=0.00 [1/4] capture: 30 s"]


@pytest.mark.slow   # about 15 s on 2 cores (trains and captures a tiny decoder)
def test_llm_decode_end_to_end_writes_under_runs_with_progress(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    docs = {p: p.stat().st_mtime_ns for p in (repo / "docs").iterdir()}
    bench = _llm_decode()
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--targets", "0", "0.5", "--train-steps", "2", "--decode-tokens", "1",
                       "--prompt-tokens", "4"]) == 0
    captured = capsys.readouterr()
    assert (tmp_path / "runs" / "llm_decode" / "llm_decode.png").is_file()
    table = (tmp_path / "runs" / "llm_decode" / "llm_decode.md").read_text()
    assert table.startswith("| target s |") and table.count("\n| 0.") == 2
    assert {p: p.stat().st_mtime_ns for p in (repo / "docs").iterdir()} == docs
    err = captured.err
    assert re.search(r"\[\d+:\d\d\] s=0\.00 \[1/2\] done; about \d+:\d\d left", err), err
    assert "torch threads" in err and "fine-tuning llama_tiny (2 steps): " in err
