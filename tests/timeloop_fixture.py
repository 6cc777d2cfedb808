"""Turn a Timeloop reference fixture (tests/fixtures/timeloop/*.json) into accelsim.map objects."""
from __future__ import annotations

import json
from pathlib import Path

from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, LoopNest

FIXTURES = Path(__file__).parent / "fixtures" / "timeloop"
TENSOR_OF = {"Weights": "W", "Inputs": "I", "Outputs": "O"}
DIM_OF = {"M": "K", "C": "C", "R": "R", "S": "S", "N": "N", "P": "P", "Q": "Q"}


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _input_strides(problem: dict) -> tuple[int, int, int, int]:
    """(stride_h, stride_w, dil_h, dil_w) of the Inputs projection (P pairs with R, Q with S)."""
    coeff = problem.get("coefficients", {})
    out = {"P": (1, 1), "Q": (1, 1)}
    for space in problem["data_spaces"]:
        if space["name"] != "Inputs":
            continue
        for term in space["projection"]:
            dims = {t["dim"]: coeff.get(t["coefficient"], 1) if t["coefficient"] else 1 for t in term}
            for outer, inner in (("P", "R"), ("Q", "S")):
                if outer in dims:
                    out[outer] = (dims[outer], dims.get(inner, 1))
    return out["P"][0], out["Q"][0], out["P"][1], out["Q"][1]


def convert(fx: dict):
    """(nest, mapping, keeps, level names) of a fixture; None if it uses dims accelsim lacks."""
    problem = fx["problem"]
    bounds = {DIM_OF.get(d, d): b for d, b in problem["bounds"].items()}
    if any(d not in DIMS for d in bounds):
        return None
    sh, sw, dh, dw = _input_strides(problem)
    nest = LoopNest(tuple(bounds.get(d, 1) for d in DIMS), sh, sw, dh, dw, fx["name"])
    levels, keeps = [], []
    for lv in fx["mapping"]["levels_outer_to_inner"]:
        temporal = tuple(Loop(DIM_OF.get(d, d), f) for d, f in lv["temporal_loops_outer_to_inner"])
        spatial = tuple(Loop(DIM_OF.get(d, d), f, True, axis)
                        for d, f, axis in lv["spatial_loops"])
        levels.append(LevelLoops(lv["level"], temporal, spatial))
        keeps.append(frozenset(TENSOR_OF[t] for t in lv["keep_tiles"]))
    return nest, Mapping(tuple(levels)), tuple(keeps)


def reference_totals(fx: dict) -> dict:
    """{(level name, tensor): (reads, fills, updates)} totals over utilised instances."""
    out = {}
    for lv in fx["reference"]["levels_outer_to_inner"]:
        if lv["kind"] != "storage":
            continue
        for tname, t in lv["reference"]["tensors"].items():
            tot = t["counts"]["derived_totals"]
            out[(lv["name"], TENSOR_OF[tname])] = (tot["reads_total"], tot["fills_total"],
                                                  tot["updates_total"])
    return out
