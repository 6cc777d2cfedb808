"""``accelsim map --trace T --hw H``: the mapping of every layer, with per-level figures."""
from __future__ import annotations

import argparse
import json
import sys

from accelsim.errors import AccelsimError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "map", help="show the loop-nest mapping of each layer on a design (utilisation, reuse)",
        description="Map every layer of a trace onto a design with a memory_hierarchy and print "
                    "the loop nest, each level's tile, utilisation, accesses and reuse, and the "
                    "dense energy and latency of the mapping with its bottleneck.")
    parser.add_argument("--trace", required=True, help="trace file (.trace)")
    parser.add_argument("--hw", required=True, help="hardware YAML with a memory_hierarchy")
    parser.add_argument("--layer", action="append", default=None, metavar="NAME",
                        help="only this layer (repeatable)")
    parser.add_argument("--objective", choices=("energy", "latency", "edp"), default=None,
                        help="override the design's mapping.objective")
    parser.add_argument("--mappings", metavar="FILE", default=None,
                        help="YAML of mappings fixed per layer (others are searched); see "
                             "--save-mappings for the format")
    parser.add_argument("--save-mappings", metavar="FILE", default=None,
                        help="write the layers' mappings to FILE (YAML), to edit and pass back with "
                             "--mappings here or to `accelsim simulate`")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=_map)


def _map(args: argparse.Namespace) -> int:
    import dataclasses

    from accelsim.hw.load import load_hw
    from accelsim.map.report import layer_report, render_report
    from accelsim.sim.loopnest import map_layer
    from accelsim.trace import open_trace

    hw = load_hw(args.hw)
    if hw.memory_hierarchy is None:
        raise AccelsimError(f"{args.hw}: memory_hierarchy: this design has none, so it uses the "
                            "SCALE-Sim systolic mapping; add a memory_hierarchy to map it")
    if args.objective:
        hw = dataclasses.replace(hw, mapping=dataclasses.replace(hw.mapping, objective=args.objective))
    trace = open_trace(args.trace)
    wanted = set(args.layer or [])
    unknown = wanted - set(trace.layer_names)
    if unknown:
        raise AccelsimError(f"{args.trace}: no layer named {', '.join(sorted(unknown))} "
                            f"(layers: {', '.join(trace.layer_names)})")
    fixed = {}
    if args.mappings:
        from accelsim.map.fixed import load_mappings

        fixed = load_mappings(args.mappings)
        unknown = sorted(set(fixed) - set(trace.layer_names))
        if unknown:
            raise AccelsimError(f"{args.mappings}: layers: no layer named {', '.join(unknown[:5])} "
                                f"in {args.trace}")
    reports, chosen = [], {}
    for layer in trace:
        if wanted and layer.name not in wanted:
            continue
        if layer.name in fixed:
            from accelsim.map.fixed import fixed_result
            from accelsim.map.nest import LoopNest
            from accelsim.sim.loopnest import _design

            result = fixed_result(layer.name, fixed[layer.name], LoopNest.of_geometry(layer.geometry),
                                  _design(hw).arch)
        else:
            result = map_layer(layer, hw)
        chosen[layer.name] = result.mapping
        reports.append(layer_report(layer.name, result, hw))
    if args.save_mappings:
        from accelsim.map.fixed import save_mappings

        save_mappings(args.save_mappings, chosen)
        print(f"saved mappings of {len(chosen)} layer(s) to {args.save_mappings}",
              file=sys.stderr if args.json else sys.stdout)
    if args.json:
        json.dump({"hw": hw.name, "objective": hw.mapping.objective, "layers": reports},
                  sys.stdout, indent=2)
        print()
    else:
        print(render_report(hw, reports))
    return 0
