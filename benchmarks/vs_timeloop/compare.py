"""accelsim's loop-nest model against Timeloop's reference outputs (tests/fixtures/timeloop/).

Usage: python benchmarks/vs_timeloop/compare.py [--search-size N]

1. access counts: for every dense exercise, the fixture's own mapping through accelsim.map.access;
   per level and tensor, reads/fills/updates compared with Timeloop's totals;
2. energy: Timeloop's per-action energies (its ERT) applied to accelsim's counts reproduce its
   dynamic energy;
3. mapper: accelsim's mapper on the same architecture, per-action energies and dataflow, its
   mapping's energy (same formula) against the reference mapping's;
4. the mapper under each reference's own objective (:data:`OBJECTIVES`, from the exercises'
   mapper files): the `design-*` references are Timeloop mapper searches for the energy-delay
   product (``_include/mapper.yaml``: ``optimization_metrics: [edp]``), the tutorials' for delay,
   then energy (``optimization_metrics: [delay, energy]``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from accelsim.map.access import analyse  # noqa: E402
from accelsim.map.arch import Arch, Level  # noqa: E402
from accelsim.map.mapper import search  # noqa: E402
from accelsim.map.nest import TENSORS  # noqa: E402
from timeloop_fixture import (FIXTURES, arch_of_fixture, convert, load,  # noqa: E402
                              reference_totals, timeloop_energy)

MAPPER_CASES = {
    "tutorial-06-mapper-convlayer-eyeriss": "row_stationary",
    "tutorial-timeloop_accelergy-intmac": "row_stationary",
    "design-eyeriss_like": "row_stationary",
    "design-simple_weight_stationary": "weight_stationary",
    "design-simple_output_stationary": "output_stationary",
    "tutorial-05-mapper-conv1d_oc-3level-null": "weight_stationary",
    "tutorial-05-mapper-conv1d_oc-3level-baked": "output_stationary",
    "tutorial-05-mapper-conv1d_oc-3level-freebypass": "output_stationary",
}

#: each reference's optimisation metrics, from the exercises' mapper files (commit 2d55108):
#: example_designs/_include/mapper.yaml [edp]; tutorial 05/06 and timeloop+accelergy mapper.yaml
#: [delay, energy] (accelsim's "latency": cycles, then energy)
OBJECTIVES = {name: ("edp" if name.startswith("design-") else "latency") for name in MAPPER_CASES}


def objective_ratio(objective: str, mine: tuple[float, float], ref: tuple[float, float]) -> float:
    """accelsim's figure over the reference's under ``objective`` ((cycles, energy) each): the
    energy-delay product, or cycles (energy when the cycles are equal) for delay-then-energy."""
    if objective == "edp":
        return (mine[0] * mine[1]) / (ref[0] * ref[1])
    if mine[0] != ref[0]:
        return mine[0] / ref[0]
    return mine[1] / ref[1]


def under_own_objective(name: str, dataflow: str, search_size: int) -> dict:
    """The mapper searched for the reference's objective, both mappings' cycles and energy."""
    fx = load(name)
    nest, _, _ = convert(fx)
    arch = arch_of_fixture(fx)
    objective = OBJECTIVES[name]
    found = search(nest, arch, dataflow, objective, search_size)
    mine = (float(found.counts.steps), timeloop_energy(fx, found.counts, arch))
    ref = (float(fx["reference"]["cycles"]), float(fx["reference"]["energy"]["dynamic_pJ_total"]))
    return {"objective": objective, "mine": mine, "ref": ref,
            "ratio": objective_ratio(objective, mine, ref)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-size", type=int, default=16)
    args = parser.parse_args()
    dense = sorted(p.stem for p in FIXTURES.glob("*.json") if "sparse" not in p.stem)
    print("| exercise | counts equal | energy (Timeloop formula on accelsim counts) / Timeloop |")
    print("|---|---|---|")
    for name in dense:
        fx = load(name)
        nest, mapping, keeps = convert(fx)
        counts = analyse(nest, mapping, keeps)
        names = [lv.level for lv in mapping.levels]
        ref = reference_totals(fx)
        equal = sum(tuple(int(v) for v in counts.counts[names.index(lv), TENSORS.index(t)]) == tuple(exp)
                    for (lv, t), exp in ref.items())
        arch = arch_of_fixture(fx)
        by_name = {lv.name: lv for lv in arch.levels}
        empty = lambda n: Level(n, frozenset(), False, None, 1, None, None, True, 0.0, 0.0, True)
        full = Arch(tuple(by_name.get(n, empty(n)) for n in names), arch.rows, arch.cols, 1, (1, 1, 1),
                    arch.mac_pj, 0.0, 0.0, 0.0, None)
        energy = timeloop_energy(fx, counts, full) / fx["reference"]["energy"]["dynamic_pJ_total"]
        print(f"| {name} | {equal}/{len(ref)} | {energy:.4f} |")
    print()
    print("| exercise | dataflow | Timeloop energy (pJ) | accelsim mapper (pJ) | ratio | mapper time (s) |")
    print("|---|---|---|---|---|---|")
    for name, dataflow in MAPPER_CASES.items():
        fx = load(name)
        nest, _, _ = convert(fx)
        arch = arch_of_fixture(fx)
        t = time.perf_counter()
        found = search(nest, arch, dataflow, "energy", args.search_size)
        dt = time.perf_counter() - t
        mine = timeloop_energy(fx, found.counts, arch)
        ref = fx["reference"]["energy"]["dynamic_pJ_total"]
        print(f"| {name} | {dataflow} | {ref:.4e} | {mine:.4e} | {mine / ref:.3f} | {dt:.2f} |")
    print()
    print("| exercise | objective | Timeloop cycles | Timeloop energy (pJ) | accelsim cycles | "
          "accelsim energy (pJ) | ratio under the objective |")
    print("|---|---|---|---|---|---|---|")
    for name, dataflow in MAPPER_CASES.items():
        r = under_own_objective(name, dataflow, args.search_size)
        label = "EDP" if r["objective"] == "edp" else "delay, then energy"
        print(f"| {name} | {label} | {r['ref'][0]:,.0f} | {r['ref'][1]:.4e} | {r['mine'][0]:,.0f} | "
              f"{r['mine'][1]:.4e} | {r['ratio']:.3f} |")


if __name__ == "__main__":
    main()
