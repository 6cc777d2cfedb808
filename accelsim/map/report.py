"""A mapping's per-level figures as plain data and as text (``accelsim map``)."""
from __future__ import annotations

from accelsim.map.access import FILLS, READS, UPDATES
from accelsim.map.mapper import MapResult
from accelsim.map.nest import TENSORS

_NAMES = {"W": "weights", "I": "inputs", "O": "outputs"}


def layer_report(name: str, result: MapResult, hw) -> dict:
    """Loop nest, per-level tiles/utilisation/accesses/reuse, dense energy and latency."""
    from accelsim.sim.design import resolve

    arch = resolve(hw).arch
    counts, cost = result.counts, result.cost
    bits = arch.tensor_bits
    levels = []
    for i, lv in enumerate(arch.levels):
        used_bits = float(sum(counts.footprint[i, t] * bits[t] for t in range(3)))
        tensors = {}
        for t, tname in enumerate(TENSORS):
            if tname not in lv.keeps:
                continue
            reads = counts.counts[i, t, READS]
            if tname == "O":   # psums leaving this level: the updates of the next level out
                outer = [j for j in range(i) if tname in arch.levels[j].keeps]
                arrivals = counts.counts[outer[-1], t, UPDATES] if outer else counts.counts[i, t, UPDATES]
            else:
                arrivals = counts.counts[i, t, FILLS] if i > 0 else reads
            tensors[_NAMES[tname]] = {
                "tile_words": float(counts.footprint[i, t]),
                "reads": float(reads), "fills": float(counts.counts[i, t, FILLS]),
                "updates": float(counts.counts[i, t, UPDATES]),
                # MAC operand uses per word brought in (psums: per word sent out)
                "reuse": float(counts.macs / max(arrivals, 1.0)),
            }
        levels.append({
            "level": lv.name,
            "instances_used": int(counts.instances[i]),
            "capacity_used": (used_bits / lv.capacity_bits) if lv.capacity_bits else None,
            "port_cycles": cost.level_cycles[i],
            "energy_pj": cost.level_energy_pj[i],
            "tensors": tensors,
        })
    return {
        "layer": name,
        "mapping": result.mapping.to_dict(),
        "loop_nest": result.mapping.render(),
        "macs": counts.macs,
        "spatial_utilization": float(counts.instances[-1]) / (arch.rows * arch.cols * arch.lanes),
        "cycles": cost.cycles, "compute_cycles": cost.compute_cycles,
        "bottleneck": cost.bottleneck, "energy_pj": cost.energy_pj,
        "mapper_candidates": result.candidates,
        "levels": levels,
    }


def render_report(hw, reports: list[dict]) -> str:
    lines = [f"design {hw.name}: {hw.pe_array.rows}x{hw.pe_array.cols} PEs, dataflow "
             f"{hw.pe_array.dataflow}, mapper objective {hw.mapping.objective} (dense figures)"]
    for r in reports:
        lines.append("")
        lines.append(f"== {r['layer']}: {r['macs']:,} MACs, {r['cycles']:,.0f} cycles "
                     f"(compute {r['compute_cycles']:,.0f}, bound by {r['bottleneck']}), "
                     f"{r['energy_pj'] / 1e6:,.3f} uJ, PEs used {100 * r['spatial_utilization']:.0f}%")
        lines.extend(_network_lines(r))
        lines.extend("   " + line for line in r["loop_nest"].splitlines())
        lines.append(f"   {'level':<14}{'inst':>6}{'cap used':>10}{'port cyc':>12}  tensor: tile words, "
                     "reads / fills / updates, reuse")
        for lv in r["levels"]:
            cap = f"{100 * lv['capacity_used']:.0f}%" if lv["capacity_used"] is not None else "-"
            head = f"   {lv['level']:<14}{lv['instances_used']:>6}{cap:>10}{lv['port_cycles']:>12,.0f}"
            parts = [f"{t}: {v['tile_words']:,.0f}w, {v['reads']:,.0f}/{v['fills']:,.0f}/"
                     f"{v['updates']:,.0f}, x{v['reuse']:,.1f}" for t, v in lv["tensors"].items()]
            lines.append(head + "  " + ("; ".join(parts) if parts else "(bypassed)"))
    return "\n".join(lines)


def _network_lines(r: dict) -> list[str]:
    """The layer's place in the network run and its figures as ``simulate`` reports them."""
    out = []
    place = r.get("network")
    if place:
        out.append(f"   in the network (batch {place['batch']}): inputs from {place['inputs_from']}, "
                   f"outputs to {place['outputs_to']}, weights {place['weights']}")
    sim = r.get("simulated")
    if sim:
        out.append(f"   as simulated (per inference, mean of {sim['samples']:.0f} samples, real masks): "
                   f"{sim['cycles']:,.0f} cycles, {sim['energy_pj'] / 1e6:,.3f} uJ, DRAM "
                   f"{sim['dram_bytes']:,.0f} B, bound by {sim['bottleneck']}")
    return out
