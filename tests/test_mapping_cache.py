"""Mapper results are shared by the designs of a sweep that differ only outside the mapping's
inputs (one model, issue 23 item 7), and never across designs whose levels differ."""
from __future__ import annotations

from pathlib import Path

from accelsim.hw import load_hw
from accelsim.sim import loopnest
from sim_helpers import random_layer

EYERISS = Path(__file__).resolve().parents[1] / "hw_configs" / "eyeriss_v1.yaml"


def test_designs_differing_outside_the_mapping_share_its_search(monkeypatch):
    calls = []
    real = loopnest.search

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(loopnest, "search", counted)
    monkeypatch.setenv("ACCELSIM_MAPPING_CACHE", "0")   # in-process sharing only (no disk store)
    monkeypatch.setattr(loopnest, "_MAPPINGS", {})
    monkeypatch.setattr(loopnest, "_SEARCHES", {})
    layer = random_layer("l", C=8, H=10, W=10, K=8, R=3, S=3, density_a=0.5)
    a = load_hw(EYERISS)
    b = load_hw(EYERISS, {"name": "renamed", "vector_unit": {"lanes": 64}, "residency.batch": 2})
    c = load_hw(EYERISS, {"memory_hierarchy.glb.size_bytes": 8192})
    assert a.hash != b.hash
    first = loopnest.map_layer(layer, a)
    assert loopnest.map_layer(layer, b) is first          # same levels, costs, dataflow
    assert len(calls) == 1
    loopnest.map_layer(layer, c)                          # another buffer: its own search
    assert len(calls) == 2
