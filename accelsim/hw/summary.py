"""Derived figures of a hardware design (what ``accelsim hw show`` prints)."""
from __future__ import annotations

from accelsim.hw.energy import energy_model, load_table
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
    spad_bytes_per_pe = hw.scratchpad.input_bytes + hw.scratchpad.weight_bytes + hw.scratchpad.psum_bytes
    glb_bytes = int(round(hw.global_buffer.size_kib * 1024))
    mac = e.mac_pj
    spad = mac + (operand_bits + 2 * p.accumulator_bits) * e.spad_pj_per_bit
    noc = spad + operand_bits * e.noc_pj_per_bit_hop
    glb = noc + operand_bits * e.glb_pj_per_bit
    dram = glb + operand_bits * e.dram_pj_per_bit
    table = load_table(hw.technology.energy_table)
    words = hw.global_buffer.words_per_cycle
    glb_bw = None if words is None else words * hw.global_buffer.word_bits / 8
    return {
        "pes": hw.num_pes,
        "peak_macs_per_cycle": peak_macs,
        "peak_gops": 2 * peak_macs * hw.technology.clock_mhz / 1e3,
        "clock_mhz": hw.technology.clock_mhz,
        "voltage_v": hw.technology.voltage_v or float(table["nominal_voltage_v"]),
        "technology_node_nm": table["node_nm"],
        "scratchpad_bytes_per_pe": spad_bytes_per_pe,
        "global_buffer_bytes": glb_bytes,
        "onchip_sram_bytes": glb_bytes + spad_bytes_per_pe * hw.num_pes,
        "global_buffer_bytes_per_cycle": glb_bw,
        "dram_bytes_per_cycle": (None if hw.dram.ideal else
                                 hw.dram.bandwidth_gb_per_s * 1e3 / hw.technology.clock_mhz),
        "energy_per_mac_pj": {
            "mac": mac, "scratchpad": spad, "noc": noc, "global_buffer": glb, "dram": dram,
        },
        "energy_model": e.as_dict(),
    }


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
        "energy per dense MAC, operands fetched from:",
    ]
    for level, value in figures["energy_per_mac_pj"].items():
        lines.append(f"  {level:<22}  {value:9.3f} pJ")
    return "\n".join(lines)


def _per_cycle(value: float | None) -> str:
    return "unbounded (ideal)" if value is None else f"{value:.2f} B/cycle"
