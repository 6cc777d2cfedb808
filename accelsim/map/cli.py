"""``accelsim map --trace T --hw H``: the mapping of every layer, with per-level figures."""
from __future__ import annotations

import argparse
import json
import sys

from accelsim.cli_types import positive_int
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
    parser.add_argument("--samples", type=positive_int, default=None, metavar="N",
                        help="simulate at most N captured samples per layer for the figures "
                             "'as simulated' (default: all, as `accelsim simulate`)")
    parser.add_argument("--batch", type=positive_int, default=None, metavar="B",
                        help="samples run together (default: the design's residency.batch, as "
                             "`accelsim simulate`)")
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
    from accelsim.map.fixed import fixed_result
    from accelsim.sim.residency import written_density
    from accelsim.sim.simulate import simulate

    # the network as `simulate` runs it: the same residency plan, contexts and mappings, so
    # each layer's figures "as simulated" are simulate's row for that layer
    layers = [layer for layer in trace if not wanted or layer.name in wanted]
    result = simulate(trace, hw, samples=args.samples, batch=args.batch, mappings=fixed or None)
    rows = {row["layer"]: row for row in result.rows}
    contexts = network_contexts(trace, hw, args.samples, args.batch, result.meta["weights_resident"])
    reports, chosen = [], {}
    for layer in layers:
        ctx = contexts[layer.name]
        batch = min(ctx.batch, rows[layer.name]["samples"])
        if hw.pe_array.systolic:   # the lowered GEMM on SCALE-Sim's mapping, as simulated
            from accelsim.map.nest import LoopNest
            from accelsim.sim.design import resolve
            from accelsim.sim.loopnest import _reserve, _systolic_mapped
            from accelsim.sim.systolic import lowered_geometry

            arch = resolve(hw).arch
            if ctx.reserved_bytes:
                arch = _reserve(arch, ctx.reserved_bytes * 8.0)
            nest = LoopNest.of_geometry(lowered_geometry(layer.geometry, batch))
            mapped = _systolic_mapped(layer.name, nest, arch, hw.pe_array.dataflow, ctx,
                                      (layer.geometry, batch))
        elif layer.name in fixed:
            from accelsim.map.nest import LoopNest
            from accelsim.sim.design import resolve
            from accelsim.sim.loopnest import _reserve

            arch = resolve(hw).arch
            if ctx.reserved_bytes:
                arch = _reserve(arch, ctx.reserved_bytes * 8.0)
            mapped = fixed_result(layer.name, fixed[layer.name],
                                  LoopNest.of_geometry(layer.geometry, batch=batch), arch)
        else:
            mapped = map_layer(layer, hw, batch, ctx.reserved_bytes, written_density(layer, ctx))
        chosen[layer.name] = mapped.mapping
        report = layer_report(layer.name, mapped, hw)
        report["network"] = network_place(ctx, hw)
        report["simulated"] = {key: rows[layer.name][key] for key in SIMULATED
                               if key in rows[layer.name]}
        reports.append(report)
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


#: simulate's row columns that `map` shows per layer "as simulated"
SIMULATED = ("samples", "cycles", "energy_pj", "dram_bytes", "bottleneck", "utilization",
             "mapping")


def network_contexts(trace, hw, samples, batch, weights_resident: bool) -> dict:
    """Each layer's :class:`~accelsim.sim.residency.LayerContext` as ``simulate`` plans it
    (``weights_resident``: what the run settled on, after an ``auto`` fallback)."""
    from accelsim.sim.residency import plan_network, streamed

    items = list(trace)
    plan = plan_network(items, hw, hw.residency.batch if batch is None else batch,
                        samples=samples, graph=getattr(trace, "graph", None))
    if plan.weights_resident and not weights_resident:
        plan = streamed(plan, items, hw)
    return {layer.name: ctx for layer, ctx in zip(items, plan.contexts)}


def network_place(ctx, hw) -> dict:
    """Where a layer's tensors come from and go to in the network run."""
    from accelsim.sim.residency import buffer_capacity

    def level(tensor: str) -> str:
        for lv in hw.memory_hierarchy:
            if lv.instances == "one" and tensor in lv.keeps:
                return lv.name
        return "on chip"
    return {"batch": int(ctx.batch),
            "inputs_from": f"on chip ({level('inputs')})" if ctx.input_on_chip else "DRAM",
            "outputs_to": f"on chip ({level('outputs')})" if ctx.output_on_chip else "DRAM",
            "weights": (f"resident on chip ({level('weights')})" if ctx.weights_resident
                        else "streamed from DRAM"),
            "reserved_bytes": float(ctx.reserved_bytes),
            "buffer_bytes": buffer_capacity(hw, "inputs")}
