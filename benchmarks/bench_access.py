"""Access counting speed (issue 23 item 7): ``accelsim.map.access.analyse`` against the version
before its speed-up, in the same run, over the mapper's real candidates.

Usage: python benchmarks/bench_access.py [--hw NAME ...] [--base REV] [--repeats N] [--search]

1. Records every ``(nest, mapping, keeps, unicast)`` the mapper analyses while it searches the
   distinct ResNet-50 (ImageNet) layer shapes on each design (cold: the on-disk mapping store
   is off and the in-process caches are cleared), ranking by the layer's densities as
   ``simulate`` does;
2. times ``analyse`` of this tree and of ``git show BASE:accelsim/map/access.py`` (loaded as a
   temporary module) over the same recorded calls, alternately, each pass with its module's
   caches cleared (a fresh process's cost), best of ``--repeats``;
3. checks every field of every result equal (counts, footprints, instances, MAC reads: arrays
   equal element for element with the same dtype; macs, steps) and prints the ratio;
4. ``--search``: also times the mapper's whole searches of those shapes per design with each
   ``analyse`` (alternately, caches cleared), and checks the picks equal.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
#: the last commit before access.py's speed-up
BASE = "c3377bb"
DESIGNS = ("sparten_like", "eyeriss_v1", "cnvlutin_like")


def base_module(rev: str):
    """``accelsim/map/access.py`` as it was at ``rev``, as a module."""
    source = subprocess.run(["git", "show", f"{rev}:accelsim/map/access.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("access_base")
    sys.modules["access_base"] = module        # dataclasses look their module up
    exec(compile(source, "access_base.py", "exec"), module.__dict__)
    return module


def shapes_of(design: str) -> tuple:
    """``design``'s config and its distinct ResNet-50 layer shapes (a layer of each)."""
    from accelsim.hw import load_hw
    from accelsim.map.nest import LoopNest
    from bench_map import resnet50_layers

    hw = load_hw(ROOT / f"hw_configs/{design}.yaml")
    shapes: dict = {}
    for layer in resnet50_layers():
        n = LoopNest.of_geometry(layer.geometry)
        shapes.setdefault(LoopNest(n.bounds, n.stride_h, n.stride_w, n.dil_h, n.dil_w), layer)
    return hw, shapes


def searches(hw, shapes: dict) -> list:
    """The mapper's picks for ``shapes`` on ``hw`` (in-process caches cleared first)."""
    from accelsim.sim import loopnest

    loopnest._MAPPINGS.clear()
    loopnest._SEARCHES.clear()
    return [loopnest._mapped(nest, hw, hw.mapping.objective, 0.0, loopnest.layer_densities(layer))
            for nest, layer in shapes.items()]


def record(design: str) -> list:
    """Every analyse call of the mapper's searches of the ResNet-50 shapes on ``design``."""
    from accelsim.map import mapper

    hw, shapes = shapes_of(design)
    calls: list = []
    analyse = mapper.analyse

    def recorder(nest, mapping, keeps, unicast=frozenset()):
        calls.append((nest, mapping, keeps, unicast))
        return analyse(nest, mapping, keeps, unicast)

    mapper.analyse = recorder
    try:
        searches(hw, shapes)
    finally:
        mapper.analyse = analyse
    return calls


def clear_caches(module) -> None:
    for value in vars(module).values():
        if hasattr(value, "cache_clear"):
            value.cache_clear()


def timed(module, calls: list) -> tuple[float, list]:
    clear_caches(module)
    t = time.perf_counter()
    out = [module.analyse(*c) for c in calls]
    return time.perf_counter() - t, out


def same(a, b) -> bool:
    arrays = ("counts", "footprint", "instances", "macs_reads")
    return (all(getattr(a, f).dtype == getattr(b, f).dtype and np.array_equal(getattr(a, f), getattr(b, f))
                for f in arrays) and a.macs == b.macs and a.steps == b.steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", nargs="+", default=list(DESIGNS), help="hw_configs/NAME.yaml")
    parser.add_argument("--base", default=BASE, help="git revision of the baseline access.py")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--search", action="store_true", help="also time the whole searches")
    args = parser.parse_args()
    os.environ["ACCELSIM_MAPPING_CACHE"] = "0"
    from accelsim.map import access

    old = base_module(args.base)
    calls: dict = {}
    for design in args.hw:
        calls[design] = record(design)
    every = [c for design in args.hw for c in calls[design]]
    remainder = sum(1 for nest, mapping, _, _ in every
                    if any(mapping.factor_product(d) != b for d, b in zip("NGKCPQRS", nest.bounds)))
    print(f"{len(every)} mappings analysed by the mapper over the ResNet-50 shapes of "
          f"{', '.join(args.hw)} ({remainder} with remainder tiles)")
    best = {"base": float("inf"), "new": float("inf")}
    for _ in range(args.repeats):
        t_old, out_old = timed(old, every)
        t_new, out_new = timed(access, every)
        best["base"], best["new"] = min(best["base"], t_old), min(best["new"], t_new)
        bad = [i for i, (a, b) in enumerate(zip(out_old, out_new)) if not same(a, b)]
        assert not bad, f"{len(bad)} results differ, first: {every[bad[0]][1].render()}"
    print(f"  analyse, all results identical: base ({args.base}) {best['base']:.2f} s, "
          f"now {best['new']:.2f} s: {best['base'] / best['new']:.2f}x (best of {args.repeats}, "
          f"caches cleared each pass)")
    for design in args.hw:
        t_old, _ = timed(old, calls[design])
        t_new, _ = timed(access, calls[design])
        print(f"  {design:<14} {len(calls[design]):>5} mappings: base {t_old:.2f} s, now {t_new:.2f} s: "
              f"{t_old / t_new:.2f}x")
    if not args.search:
        return
    from accelsim.map import mapper

    analyse = mapper.analyse
    for design in args.hw:
        hw, shapes = shapes_of(design)
        best = {"base": float("inf"), "new": float("inf")}
        try:
            for _ in range(args.repeats):
                picks = {}
                for label, module in (("base", old), ("new", access)):
                    mapper.analyse = module.analyse
                    clear_caches(module)
                    t = time.perf_counter()
                    picks[label] = searches(hw, shapes)
                    best[label] = min(best[label], time.perf_counter() - t)
                assert all(a.mapping == b.mapping and a.candidates == b.candidates
                           for a, b in zip(picks["base"], picks["new"])), design
        finally:
            mapper.analyse = analyse
        print(f"  mapper search, {design:<14} {len(shapes)} shapes, same picks: base "
              f"{best['base']:.2f} s, now {best['new']:.2f} s: {best['base'] / best['new']:.2f}x")


if __name__ == "__main__":
    main()
