"""Energy tables (package data) and the per-design energy model derived from them.

A table gives per-operation energies at a technology node and its nominal voltage
(sources are cited in each YAML file under ``accelsim/hw/data``). :func:`energy_model`
turns a table plus a :class:`~accelsim.hw.schema.HardwareConfig` into the
per-access energies the simulator charges, in pJ, at the design's voltage:

* MAC of ``a``-bit activation by ``w``-bit weight: integer multiply energy scaled by
  ``a*w / 64`` from the 8-bit figure (array-multiplier area ~ product of widths), plus
  an accumulator add scaled linearly from the 32-bit figure.
* Global buffer: 64-bit SRAM read energy at the *bank* size (log-log interpolation
  between the tabulated sizes, extrapolated at the ends), divided by 64 bits.
* Scratchpad and NoC: Eyeriss' normalised ratios times this table's 16-bit MAC.
* Dynamic energies scale with ``(V / V_nominal)^2``; leakage power with ``V / V_nominal``.
* ``technology.energy_overrides`` are given at the table's nominal voltage and scale the
  same way (:func:`scale_overrides`); figures derived from an overridden ``mac_pj`` (gated
  MAC, clock) follow the scaled value. DRAM energy per bit is never voltage-scaled.

Technology nodes (``technology_nodes.yaml``): ``technology.node_nm`` selects a node's table
(:func:`resolve_energy_table`); node tables are derived from ``horowitz_45nm`` with
``scaling: stillmaker_baas_2017`` (energy x E_node(V_nom) / E_45(0.9 V), :func:`sb17_energy_scale`)
plus an optional ``extra:`` block of figures published at the node.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from importlib import resources

import yaml

from accelsim.errors import ConfigError

_DATA_PACKAGE = "accelsim.hw.data"


#: Package-data YAML files that are not energy tables.
_NOT_TABLES = ("technology_nodes",)
#: Derived tables with ``scaling: stillmaker_baas_2017`` scale by the [SB17] energy ratio.
SB17 = "stillmaker_baas_2017"


@functools.lru_cache(maxsize=None)
def available_tables() -> tuple[str, ...]:
    """Names of the packaged energy tables."""
    names = [p.name[:-5] for p in resources.files(_DATA_PACKAGE).iterdir()
             if p.name.endswith(".yaml") and p.name[:-5] not in _NOT_TABLES]
    return tuple(sorted(names))


@functools.lru_cache(maxsize=None)
def technology_data() -> dict:
    """``technology_nodes.yaml``: node -> energy table, Stillmaker-Baas data, area primitives."""
    return yaml.safe_load(resources.files(_DATA_PACKAGE).joinpath("technology_nodes.yaml").read_text())


def technology_nodes() -> tuple[int, ...]:
    """The nodes ``technology.node_nm`` may name, largest first."""
    return tuple(sorted((int(n) for n in technology_data()["nodes"]), reverse=True))


def _interp_log_node(points: dict, node_nm: float, value) -> float:
    """``value(points[n])`` at ``node_nm``, linear in log(node) between the tabulated nodes."""
    nodes = sorted(float(n) for n in points)
    if not nodes[0] <= node_nm <= nodes[-1]:
        raise ValueError(f"node {node_nm:g} nm is outside the tabulated {nodes[0]:g}-{nodes[-1]:g} nm")
    by = {float(n): v for n, v in points.items()}
    if node_nm in by:
        return value(by[node_nm])
    lo = max(n for n in nodes if n < node_nm)
    hi = min(n for n in nodes if n > node_nm)
    t = math.log(node_nm / lo) / math.log(hi / lo)
    return value(by[lo]) + t * (value(by[hi]) - value(by[lo]))


def sb17_energy(node_nm: float, volts: float) -> float:
    """Stillmaker-Baas energy factor ``a V^2 + b V + c`` of a node (arbitrary unit; use ratios)."""
    coeffs = technology_data()["stillmaker_baas_energy"]
    return _interp_log_node(coeffs, float(node_nm), lambda c: c[0] * volts ** 2 + c[1] * volts + c[2])


def sb17_energy_scale(to_nm: float, to_v: float, from_nm: float, from_v: float) -> float:
    """Energy per operation at ``to_nm``/``to_v`` over that at ``from_nm``/``from_v`` [SB17]."""
    return sb17_energy(to_nm, to_v) / sb17_energy(from_nm, from_v)


def table_for_node(node_nm: int) -> str:
    """The energy table ``technology.node_nm`` selects."""
    return str(technology_data()["nodes"][node_nm]["energy_table"])


def resolve_energy_table(energy_table: str, node_nm: int | None) -> str:
    """The energy table a ``technology`` section uses.

    Without ``node_nm``: ``energy_table``. With it: the node's table (``technology_nodes.yaml``),
    unless ``energy_table`` names another table of that same node. The default table
    (``horowitz_45nm``) yields to ``node_nm``; any other table of a different node is refused
    with a :class:`~accelsim.hw.rules.RuleError` naming both.
    """
    if node_nm is None:
        return energy_table
    from accelsim.hw.rules import RuleError

    if int(load_table(energy_table)["node_nm"]) == node_nm:
        return energy_table
    if energy_table == DEFAULT_TABLE:
        return table_for_node(node_nm)
    raise RuleError("technology.node_nm",
                    f"{node_nm} nm, but energy_table {energy_table!r} is a "
                    f"{load_table(energy_table)['node_nm']} nm table; drop energy_table (node_nm "
                    f"then selects {table_for_node(node_nm)!r}) or node_nm")


#: The table of a design that names neither a table nor a node.
DEFAULT_TABLE = "horowitz_45nm"


@functools.lru_cache(maxsize=None)
def load_table(name: str) -> dict:
    """A packaged energy table, with any ``derived_from`` scaling applied."""
    if name not in available_tables():
        raise ConfigError(None, "technology.energy_table",
                          f"unknown energy table {name!r}; available: {', '.join(available_tables())}")
    raw = yaml.safe_load(resources.files(_DATA_PACKAGE).joinpath(f"{name}.yaml").read_text())
    if "derived_from" not in raw:
        return raw
    base = dict(load_table(raw["derived_from"]))
    if raw.get("scaling") == SB17:  # [SB17]: dynamic and leakage energy by the node's E(V) ratio
        dyn = leak = sb17_energy_scale(raw["node_nm"], raw["nominal_voltage_v"],
                                       base["node_nm"], base["nominal_voltage_v"])
    else:
        dyn, leak = float(raw["dynamic_scale"]), float(raw["leakage_scale"])
    table = {
        "name": raw["name"], "node_nm": raw["node_nm"], "nominal_voltage_v": raw["nominal_voltage_v"],
        "derived_from": raw["derived_from"],
    }
    for key, value in base.items():
        if key in table or key in ("name", "node_nm", "nominal_voltage_v"):
            continue
        if key.endswith("_pj") and isinstance(value, dict):
            table[key] = {k: v * dyn for k, v in value.items()}
        elif key == "dram_pj_per_bit":
            table[key] = value * dyn if raw.get("scale_dram", False) else value
        elif key.endswith("_uw") or key.endswith("_uw_per_kib"):
            table[key] = value * leak
        else:
            table[key] = value  # ratios and fractions are node-independent
    for key, value in (raw.get("extra") or {}).items():  # figures published at this node, unscaled
        if isinstance(value, dict):
            table[key] = dict(sorted({**table.get(key, {}), **value}.items(), key=lambda kv: float(kv[0])))
        else:
            table[key] = value
    return table


def _loglog(points: dict, x: float) -> float:
    """Piecewise log-log interpolation (linear extrapolation in log space at the ends)."""
    xs = sorted(float(k) for k in points)
    ys = [float(points[k]) for k in sorted(points, key=float)]
    lx = math.log(x)
    if x <= xs[0]:
        i = 0
    elif x >= xs[-1]:
        i = len(xs) - 2
    else:
        i = max(j for j in range(len(xs) - 1) if xs[j] <= x)
    x0, x1 = math.log(xs[i]), math.log(xs[i + 1])
    y0, y1 = math.log(ys[i]), math.log(ys[i + 1])
    return math.exp(y0 + (y1 - y0) * (lx - x0) / (x1 - x0))


def int_mult_pj(table: dict, a_bits: int, w_bits: int) -> float:
    """Integer multiply energy: the 8x8 figure scaled by the product of the widths."""
    return float(table["int_mult_pj"][8]) * (a_bits * w_bits) / 64.0


def int_add_pj(table: dict, bits: int) -> float:
    """Integer add energy: the 32-bit figure scaled linearly with width."""
    return float(table["int_add_pj"][32]) * bits / 32.0


def sram_pj_per_bit(table: dict, size_kib: float) -> float:
    """SRAM access energy per bit for an array of ``size_kib`` KiB."""
    return _loglog(table["sram_read_64b_pj"], max(size_kib, 1e-3)) / 64.0


@dataclass(frozen=True)
class EnergyModel:
    """Per-access energies of one design, in pJ, at its voltage."""

    mac_pj: float                    # one a-bit x w-bit multiply + accumulate
    gated_mac_pj: float              # a gated (zero-operand) MAC slot
    spad_pj_per_bit: float           # per-PE scratchpad read or write
    glb_pj_per_bit: float            # global-buffer read or write
    noc_pj_per_bit_hop: float        # one NoC hop
    dram_pj_per_bit: float           # off-chip read or write
    pe_leakage_pj_per_cycle: float   # one PE, powered
    glb_leakage_pj_per_cycle: float  # whole global buffer
    pe_clock_pj_per_cycle: float     # one PE's clock tree, when not clock-gated
    gated_fraction: float            # cost of a gated read as a fraction of a full one
    wakeup_energy_pj: float          # one power-gated PE waking up

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def energy_model(hw) -> EnergyModel:
    """Derive the energy model of a :class:`~accelsim.hw.schema.HardwareConfig`."""
    from accelsim.hw.hierarchy import sram_bank_kib, shared_bytes

    t = load_table(hw.technology.energy_table)
    v_nom = float(t["nominal_voltage_v"])
    volts = hw.technology.voltage_v or v_nom
    dyn = (volts / v_nom) ** 2
    leak = volts / v_nom
    p = hw.precision
    mac16 = int_mult_pj(t, 16, 16) + int_add_pj(t, 32)
    mac = (int_mult_pj(t, p.activation_bits, p.weight_bits) + int_add_pj(t, p.accumulator_bits)) * dyn
    gated = float(t["gated_fraction"])
    bank_kib = sram_bank_kib(hw)
    cycle_ns = 1e3 / hw.technology.clock_mhz
    # uW * ns = 1e-6 W * 1e-9 s = 1e-15 J = 1e-3 pJ
    pe_leak = float(t["pe_leakage_uw"]) * leak * cycle_ns * 1e-3
    glb_leak = float(t["sram_leakage_uw_per_kib"]) * (shared_bytes(hw) / 1024.0) * leak * cycle_ns * 1e-3
    values = dict(
        mac_pj=mac,
        gated_mac_pj=mac * gated,
        spad_pj_per_bit=float(t["rf_access_over_mac16"]) * mac16 / 16.0 * dyn,
        glb_pj_per_bit=sram_pj_per_bit(t, bank_kib) * dyn,
        noc_pj_per_bit_hop=float(t["noc_hop_over_mac16"]) * mac16 / 16.0 * dyn,
        # a named DRAM device prices a bit at its sequential-stream energy (accelsim.dram)
        dram_pj_per_bit=(hw.dram.device_pj_per_bit() if getattr(hw.dram, "device", None)
                         else float(t["dram_pj_per_bit"])),
        pe_leakage_pj_per_cycle=pe_leak,
        glb_leakage_pj_per_cycle=glb_leak,
        pe_clock_pj_per_cycle=float(t["pe_clock_over_mac"]) * mac,
        gated_fraction=gated,
        wakeup_energy_pj=hw.low_power.wakeup_energy_pj,
    )
    overrides = scale_overrides(hw.technology.energy_overrides, dyn, leak)
    if "mac_pj" in overrides:  # MAC-relative figures follow an overridden MAC unless given too
        overrides.setdefault("gated_mac_pj", overrides["mac_pj"] * gated)
        overrides.setdefault("pe_clock_pj_per_cycle", float(t["pe_clock_over_mac"]) * overrides["mac_pj"])
    values.update(overrides)
    return EnergyModel(**values)


#: Override keys that are leakage (power x cycle time): they scale with ``V / V_nominal``.
LEAKAGE_ACTIONS = ("pe_leakage_pj_per_cycle", "glb_leakage_pj_per_cycle")
#: Override keys that are not voltage-scaled (off-chip interface, like the table's DRAM figure).
UNSCALED_ACTIONS = ("dram_pj_per_bit",)


def scale_overrides(overrides, dyn: float, leak: float) -> dict[str, float]:
    """Energy overrides, given at the table's nominal voltage, at the design's voltage.

    Dynamic energies are multiplied by ``dyn = (V / V_nominal)^2``, leakage per cycle by
    ``leak = V / V_nominal``; ``dram_pj_per_bit`` is kept as given (the table's is not scaled).
    """
    out = {}
    for key, value in overrides.items():
        if key in UNSCALED_ACTIONS:
            out[key] = float(value)
        elif key in LEAKAGE_ACTIONS:
            out[key] = float(value) * leak
        else:
            out[key] = float(value) * dyn
    return out
