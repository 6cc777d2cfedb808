"""`accelsim map --trace` plans the network as `simulate` does (issue 23 item 6): each layer's
figures "as simulated" are simulate's row, and it says where the layer's tensors live."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelsim.cli import main
from accelsim.hw import load_hw
from accelsim.sim.simulate import simulate
from accelsim.trace import open_trace

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "traces" / "lenet5_digits_dual.trace"
HW = ROOT / "hw_configs" / "eyeriss_v1.yaml"


#: a systolic design (pe_array.systolic): map shows the lowered GEMM's SCALE-Sim mapping
TPU = ROOT / "hw_configs" / "dense_ws_tpu_like.yaml"


def _map_json(capsys, *extra, hw=HW) -> dict:
    assert main(["map", "--trace", str(TRACE), "--hw", str(hw), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("hw, batch", [(HW, None), (HW, 2), (TPU, None)])
def test_map_figures_are_simulates_rows(capsys, hw, batch):
    from accelsim.map.fixed import parse_mappings
    from accelsim.sim.loopnest import mapping_text

    extra = ["--samples", "4"] + (["--batch", str(batch)] if batch else [])
    out = _map_json(capsys, *extra, hw=hw)
    rows = {r["layer"]: r for r in simulate(open_trace(TRACE), load_hw(hw), samples=4,
                                           batch=batch).rows}
    assert [r["layer"] for r in out["layers"]] == list(rows)
    for report in out["layers"]:
        row, sim = rows[report["layer"]], report["simulated"]
        for key in ("cycles", "energy_pj", "dram_bytes"):
            assert sim[key] == row[key], (report["layer"], key)
        assert sim["mapping"] == row["mapping"]        # the same mapping was simulated
        shown = parse_mappings({"version": 1, "layers": {"x": report["mapping"]}})["x"]
        assert mapping_text(shown) == row["mapping"]   # ... and it is the one map shows


def test_map_says_where_each_layers_tensors_live(capsys):
    out = _map_json(capsys, "--samples", "2")
    first, second = out["layers"][0]["network"], out["layers"][1]["network"]
    assert first["inputs_from"] == "DRAM"            # the network's input
    assert first["outputs_to"] == second["inputs_from"] == "on chip (glb)"
    assert first["weights"] == "streamed from DRAM"  # eyeriss_v1's glb keeps no weights
