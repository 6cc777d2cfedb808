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


def arch_of_fixture(fx: dict, dataflow_rows_cols: tuple[int, int] | None = None):
    """An :class:`accelsim.map.arch.Arch` with the fixture's levels, word capacities and
    per-word action energies (bits per element = 1, so capacities and energies are per word)."""
    from accelsim.map.arch import Arch, Level

    ert = {}
    for e in fx["reference"]["ert"]:
        ert[(e["component"], e["action"])] = e["energy_pJ"]
    levels = []
    compute = None
    for a in fx["architecture"]:
        if a["kind"] == "compute":
            compute = a
            continue
        if a["kind"] != "storage":
            continue
        b = a.get("block_size") or 1
        read = ert.get((a["name"], "read"), 0.0) / b
        write = ert.get((a["name"], "write"), read * b) / b
        per_pe = a["instances"] > 1
        cap = a.get("size_words")
        levels.append(Level(a["name"], frozenset(TENSOR_OF[t] for t in a["keeps"]), per_pe,
                            float(cap) if cap else None, 1, None, None, True, read, write, True))
    mac = next((e["energy_pJ"] for e in fx["reference"]["ert"]
                if e["component"] == compute["name"] and e["action"] in ("compute", "mac_random",
                                                                         "multiply_accumulate")), 0.0)
    rows, cols = dataflow_rows_cols or (compute.get("meshY", 1), compute.get("meshX", 1))
    return Arch(tuple(levels), rows, cols, 1, (1, 1, 1), mac, 0.0, 0.0, 0.0, None)


def timeloop_energy(fx: dict, counts, arch) -> float:
    """Dynamic energy by Timeloop's formula: per level, tensor and instance
    ceil(reads/B) E_read + ceil(fills/B) E_write + ceil(updates/B) E_update, plus MACs."""
    import math

    ert = {(e["component"], e["action"]): e["energy_pJ"] for e in fx["reference"]["ert"]}
    blocks = {a["name"]: a.get("block_size") or 1 for a in fx["architecture"]}
    total = counts.macs * arch.mac_pj
    for i, lv in enumerate(arch.levels):
        inst = max(int(counts.instances[i]), 1)
        b = blocks.get(lv.name, 1)
        for t in range(3):
            r, f, u = (float(x) / inst for x in counts.counts[i, t])
            e = (math.ceil(r / b) * ert.get((lv.name, "read"), 0.0)
                 + math.ceil(f / b) * ert.get((lv.name, "write"), 0.0)
                 + math.ceil(u / b) * ert.get((lv.name, "update"), ert.get((lv.name, "write"), 0.0)))
            total += e * inst
    return total
