"""Derived figures of a hardware design (what ``accelsim hw show`` prints)."""
from __future__ import annotations

from accelsim.hw.energy import energy_model, load_table
from accelsim.hw.hierarchy import levels_of, onchip_sram_bytes, per_pe_bytes, shared_bytes, shared_port
from accelsim.hw.schema import HardwareConfig


def derived_figures(hw: HardwareConfig) -> dict:
    """Peak throughput, on-chip SRAM and the energy of one dense MAC by operand source.

    ``energy_per_mac_pj`` gives, for each level, the energy of one MAC whose two operands
    are fetched from that level (and passed down through the levels below it), with its
    partial sum read and written in the PE scratchpad:
    ``mac`` only; ``+ scratchpad``; ``+ noc`` (one hop); ``+ global_buffer``; ``+ dram``.
    """
    e = energy_model(hw)
    p = hw.precision
    operand_bits = p.activation_bits + p.weight_bits
    peak_macs = hw.num_pes * hw.pe_array.macs_per_pe
    spad_bytes_per_pe = per_pe_bytes(hw)
    glb_bytes = int(round(shared_bytes(hw)))
    mac = e.mac_pj
    spad = mac + (operand_bits + 2 * p.accumulator_bits) * e.spad_pj_per_bit
    noc = spad + operand_bits * e.noc_pj_per_bit_hop
    glb = noc + operand_bits * e.glb_pj_per_bit
    dram = glb + operand_bits * e.dram_pj_per_bit
    table = load_table(hw.technology.energy_table)
    words, word_bits = shared_port(hw)
    glb_bw = None if words is None else words * word_bits / 8
    return {
        "pes": hw.num_pes,
        "peak_macs_per_cycle": peak_macs,
        "peak_gops": 2 * peak_macs * hw.technology.clock_mhz / 1e3,
        "clock_mhz": hw.technology.clock_mhz,
        "voltage_v": hw.technology.voltage_v or float(table["nominal_voltage_v"]),
        "technology_node_nm": table["node_nm"],
        "scratchpad_bytes_per_pe": spad_bytes_per_pe,
        "global_buffer_bytes": glb_bytes,
        "onchip_sram_bytes": int(round(onchip_sram_bytes(hw))),
        "global_buffer_bytes_per_cycle": glb_bw,
        "dram_bytes_per_cycle": (None if hw.dram.ideal else
                                 hw.dram.bandwidth_gb_per_s * 1e3 / hw.technology.clock_mhz),
        "energy_per_mac_pj": {
            "mac": mac, "scratchpad": spad, "noc": noc, "global_buffer": glb, "dram": dram,
        },
        "energy_model": e.as_dict(),
        "model": "loop_nest" if hw.memory_hierarchy is not None else "systolic",
        "mapping": ("systolic" if hw.memory_hierarchy is None or hw.pe_array.systolic
                    else "mapper"),
        "hierarchy": hierarchy_lines(hw),
        "area": area_figures(hw),
    }


def area_figures(hw: HardwareConfig) -> dict:
    """Area per component and total in mm^2 (:func:`accelsim.hw.area.area_of`, core estimate)."""
    from accelsim.hw.area import area_of

    return area_of(hw).as_dict()


def area_lines(area: dict) -> list[str]:
    """``hw show`` lines of :func:`area_figures`: each component's mm^2 and share, the total."""
    total = area["total_mm2"] or 1.0
    lines = [f"area at {area['node_nm']} nm, core estimate (cells and macros x "
             f"{area['layout_overhead']:g} layout overhead; pads/I-O ring not included):"]
    for c in area["components"]:
        lines.append(f"  {c['name']:<22}  {c['mm2']:9.4f} mm2  {100 * c['mm2'] / total:5.1f} %  {c['detail']}")
    lines.append(f"  {'total':<22}  {area['total_mm2']:9.4f} mm2  (cells and macros "
                 f"{area['cells_mm2']:.4f} mm2, logic {area['logic_gates'] / 1e3:,.0f} kGE)")
    return lines


def hierarchy_lines(hw: HardwareConfig) -> list[str]:
    """The storage levels of a design, outermost first (:func:`accelsim.hw.hierarchy.levels_of`:
    for a design without ``memory_hierarchy``, the levels its shorthand expands to)."""
    short = {"weights": "W", "inputs": "I", "outputs": "O"}
    lines = ["DRAM: keeps W, I, O" + ("" if hw.dram.ideal else f", {hw.dram.bandwidth_gb_per_s:g} GB/s")]
    lines.extend(dram_device_lines(hw))
    for lv in levels_of(hw):
        size = "unbounded" if lv.size_bytes is None else f"{lv.size_bytes:,} B"
        if lv.banks > 1:
            size += f" in {lv.banks} banks"
        port = ("unbounded port" if lv.read_words_per_cycle is None
                else f"{lv.read_words_per_cycle:g} x {lv.word_bits}-bit words/cycle")
        where = "per PE" if lv.instances == "per_pe" else "shared"
        lines.append(f"{lv.name}: {where}, {size}, keeps {', '.join(short[t] for t in lv.keeps) or '-'}, "
                     f"{port}, {lv.network}")
    return lines


def dram_device_lines(hw: HardwareConfig) -> list[str]:
    """``dram.device``: the device, its peak bandwidth and the energy per bit of a sequential
    and a random read stream of ``dram.burst_bytes`` accesses (accelsim.dram; none without one)."""
    dram = hw.dram
    if dram.device is None:
        return []
    from accelsim.dram.patterns import pattern_figures
    from accelsim.dram.presets import get_device

    dev = get_device(dram.device)
    ch = dram.device_channels
    policy = dram.page_policy or "open"
    lines = [f"  device {dev.name} x {ch} channel{'s' if ch > 1 else ''} ({dev.description}): "
             f"peak {dram.device_peak_gb_per_s:g} GB/s, {policy} page, "
             f"{dram.address_mapping or 'row_bank_column'} mapping"]
    for pattern in ("sequential", "random"):
        r = pattern_figures(dev.name, ch, dram.address_mapping, policy, pattern, dram.burst_bytes)
        what = "sequential reads" if pattern == "sequential" else f"random {dram.burst_bytes}-B reads"
        lines.append(f"  {what:<18} {r['pj_per_bit']:6.2f} pJ/bit, row hits "
                     f"{100 * r['row_hit_rate']:5.1f}%, {r['bandwidth_gb_per_s']:g} GB/s achieved, "
                     f"bank parallelism {r['bank_level_parallelism']:.2f}")
    return lines


def format_figures(figures: dict) -> str:
    """Human-readable block of derived figures."""
    dram_bw = figures["dram_bytes_per_cycle"]
    lines = [
        f"PEs                       {figures['pes']}",
        f"peak MACs/cycle           {figures['peak_macs_per_cycle']}",
        f"peak GOPS (2 ops/MAC)     {figures['peak_gops']:.1f} at {figures['clock_mhz']:g} MHz, "
        f"{figures['voltage_v']:g} V, {figures['technology_node_nm']} nm",
        f"on-chip SRAM              {figures['onchip_sram_bytes'] / 1024:.1f} KiB "
        f"(global buffer {figures['global_buffer_bytes'] / 1024:.1f} KiB + "
        f"{figures['scratchpad_bytes_per_pe']} B/PE scratchpads)",
        f"global-buffer bandwidth   {_per_cycle(figures['global_buffer_bytes_per_cycle'])}",
        f"DRAM bandwidth            {_per_cycle(dram_bw)}",
    ]
    if "model" in figures:
        if figures["model"] == "systolic":
            lines.append("model                     systolic (SCALE-Sim's mapping; no memory_hierarchy "
                         "given), equivalent hierarchy:")
        elif figures.get("mapping") == "systolic":
            lines.append("model                     loop nest over the memory_hierarchy, systolic "
                         "(each layer's im2col GEMM on SCALE-Sim's mapping, fill and drain per "
                         "fold):")
        else:
            lines.append("model                     loop nest over the memory_hierarchy (mapper per layer):")
        lines.extend(f"  {line}" for line in figures["hierarchy"])
    if "area" in figures:
        lines.extend(area_lines(figures["area"]))
    lines.append("energy per dense MAC, operands fetched from:")
    for level, value in figures["energy_per_mac_pj"].items():
        lines.append(f"  {level:<22}  {value:9.3f} pJ")
    return "\n".join(lines)


def _per_cycle(value: float | None) -> str:
    return "unbounded (ideal)" if value is None else f"{value:.2f} B/cycle"


def defaulted_fields(raw: dict, resolved: dict, prefix: str = "") -> tuple[list[str], list[str]]:
    """What the loader filled in: ``(sections, fields)`` by dotted path.

    ``raw`` is the file's mapping with its ``extends:`` chain merged
    (:func:`accelsim.hw.load.resolve_extends`), ``resolved`` the config's ``to_dict()``.
    A section absent from ``raw`` is listed whole; inside a given section, each absent
    field is listed.
    """
    sections: list[str] = []
    leaves: list[str] = []
    for key, value in resolved.items():
        path = f"{prefix}{key}"
        if not isinstance(raw, dict) or key not in raw:
            (sections if isinstance(value, dict) else leaves).append(path)
        elif isinstance(value, dict) and isinstance(raw[key], dict):
            sub_sections, sub_leaves = defaulted_fields(raw[key], value, path + ".")
            sections += sub_sections
            leaves += sub_leaves
    return sections, leaves


def format_defaults(resolved: dict, sections: list[str], leaves: list[str]) -> str:
    """Lines saying which sections and fields took their defaults (for ``hw show``)."""
    def value_at(path: str):
        node = resolved
        for part in path.split("."):
            node = node[part]
        return node

    def plain(value) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {plain(v)}" for k, v in value.items()) + "}"
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    lines = [f"  {path}: not in the file, defaults {plain(value_at(path))}" for path in sections]
    if leaves:
        lines.append("  fields not in the file (defaults): "
                     + ", ".join(f"{p} = {plain(value_at(p))}" for p in leaves))
    return "\n".join(lines) if lines else "  none: every field is given in the file"


TABLE_UNITS = (("_pj_per_bit", "pJ/bit"), ("_uw_per_kib", "µW/KiB"), ("_pj", "pJ"),
               ("_uw", "µW"), ("_v", "V"), ("_nm", "nm"))


def table_lines(name: str, table: dict) -> list[str]:
    """An energy table's entries with their units, and the figures a common design derives."""
    from accelsim.hw.energy import int_add_pj, int_mult_pj, sram_pj_per_bit

    origin = f", derived from {table['derived_from']}" if "derived_from" in table else ""
    lines = [f"{name}: {table['node_nm']} nm, nominal {table['nominal_voltage_v']} V{origin}"]
    skip = {"name", "node_nm", "nominal_voltage_v", "derived_from"}
    width = max((len(k) for k in table if k not in skip), default=0)
    for key, value in table.items():
        if key in skip:
            continue
        unit = next((u for suffix, u in TABLE_UNITS if key.endswith(suffix)), "")
        if isinstance(value, dict):
            what = "KiB array" if key.startswith("sram") else "bit"
            text = ", ".join(f"{k} {what} {float(v):g}" for k, v in value.items())
            lines.append(f"  {key:<{width}}  {text} ({unit} each)")
        else:
            kind = unit or ("ratio" if "_over_" in key else "fraction" if "fraction" in key else "")
            lines.append(f"  {key:<{width}}  {float(value):g} {kind}".rstrip())
    mac8 = int_mult_pj(table, 8, 8) + int_add_pj(table, 32)
    mac16 = int_mult_pj(table, 16, 16) + int_add_pj(table, 32)
    lines.append(f"  at the nominal voltage: 8x8-bit MAC (32-bit accumulate) {mac8:.3g} pJ, "
                 f"16x16-bit {mac16:.3g} pJ; SRAM {sram_pj_per_bit(table, 16):.3g} pJ/bit "
                 f"(16 KiB bank), {sram_pj_per_bit(table, 128):.3g} pJ/bit (128 KiB bank); "
                 f"DRAM {float(table['dram_pj_per_bit']):.3g} pJ/bit")
    return lines
