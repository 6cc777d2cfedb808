"""DRAM device presets: loading and validation (package data ``accelsim/dram/data/presets.yaml``).

A preset describes one *channel* of a DRAM standard (what one command bus drives):
organisation, timing in clocks of ``tck_ns``, datasheet currents per voltage domain,
the interface energy per bit, and a ``sources`` mapping that cites every value. Errors
are one line naming the file and the dotted field (:class:`accelsim.errors.ConfigError`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from accelsim.errors import ConfigError

#: Timing parameters in kernel order (clocks of ``tck_ns``); ``BURST`` is derived.
TIMING_FIELDS = ("CL", "CWL", "RCD", "RP", "RAS", "RC", "CCD_S", "CCD_L", "RRD_S", "RRD_L",
                 "FAW", "WR", "WTR_S", "WTR_L", "RTW", "RTP", "REFI", "RFC")
ORG_FIELDS = ("ranks", "bank_groups", "banks_per_group", "rows", "columns", "device_width",
              "devices_per_rank", "burst_length")
CURRENT_FIELDS = ("IDD0", "IDD2N", "IDD3N", "IDD4R", "IDD4W", "IDD5B")
TOP_FIELDS = ("standard", "description", "data_rate_mtps", "tck_ns", "default_channels",
              "organisation", "timing", "power", "io_pj_per_bit", "rho", "sources")
OPTIONAL_TOP = {"rho": 1.0, "description": ""}
_DATA = "accelsim.dram.data"
_FILE = "presets.yaml"


@dataclass(frozen=True)
class PowerDomain:
    """Datasheet currents (mA) of one supply of one device, at ``voltage_v``."""

    name: str
    voltage_v: float
    IDD0: float
    IDD2N: float
    IDD3N: float
    IDD4R: float
    IDD4W: float
    IDD5B: float


@dataclass(frozen=True)
class DramDevice:
    """One DRAM channel's organisation, timing (clocks), currents and interface energy."""

    name: str
    standard: str
    description: str
    data_rate_mtps: float
    tck_ns: float
    default_channels: int
    ranks: int
    bank_groups: int
    banks_per_group: int
    rows: int
    columns: int
    device_width: int
    devices_per_rank: int
    burst_length: int
    timing: tuple[tuple[str, int], ...]
    power: tuple[PowerDomain, ...]
    io_pj_per_bit: float
    rho: float
    sources: tuple[tuple[str, str], ...]

    # ---- derived figures --------------------------------------------------
    def t(self, name: str) -> int:
        """A timing parameter in clocks (``BURST``: clocks of one burst on the data bus)."""
        if name == "BURST":
            return self.burst_clocks
        return dict(self.timing)[name]

    @property
    def banks(self) -> int:
        """Banks per rank."""
        return self.bank_groups * self.banks_per_group

    @property
    def burst_clocks(self) -> int:
        """Clocks one burst occupies the data bus: BL beats at ``data_rate_mtps``."""
        return max(1, round(self.burst_length * 1e3 / (self.data_rate_mtps * self.tck_ns)))

    @property
    def channel_width_bits(self) -> int:
        return self.device_width * self.devices_per_rank

    @property
    def burst_bytes(self) -> int:
        """Bytes moved by one read or write command (the access granularity)."""
        return self.channel_width_bits * self.burst_length // 8

    @property
    def bursts_per_row(self) -> int:
        """Column commands that fit in one row (page)."""
        return self.columns // self.burst_length

    @property
    def row_bytes(self) -> int:
        return self.bursts_per_row * self.burst_bytes

    @property
    def capacity_bytes(self) -> int:
        """Bytes of one channel (all ranks)."""
        return self.ranks * self.banks * self.rows * self.row_bytes

    @property
    def peak_gb_per_s(self) -> float:
        """Peak data bandwidth of one channel in GB/s (10^9 bytes): width x data rate."""
        return self.channel_width_bits * self.data_rate_mtps / 8e3

    def source(self, field: str) -> str:
        """The citation of ``field`` (dotted: ``timing.CL``, ``power.VDD.IDD0``)."""
        table = dict(self.sources)
        parts = field.split(".")
        for i in range(len(parts)):
            key = ".".join(parts[i:])
            if key in table:
                return table[key]
        return table.get(parts[0], table.get("*", ""))


def available_presets() -> tuple[str, ...]:
    """Names of the packaged DRAM presets."""
    return tuple(load_presets())


def get_device(name: str) -> DramDevice:
    """A packaged preset by name (one-line :class:`ConfigError` naming the choices if unknown)."""
    presets = load_presets()
    if name not in presets:
        import difflib

        close = difflib.get_close_matches(name, list(presets), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(None, "dram.device",
                          f"unknown DRAM device {name!r}{hint}; available: {', '.join(presets)}")
    return presets[name]


@functools.lru_cache(maxsize=None)
def _packaged() -> dict[str, DramDevice]:
    from accelsim.yamlio import load_yaml_text

    text = resources.files(_DATA).joinpath(_FILE).read_text(encoding="utf-8")
    source = f"accelsim/dram/data/{_FILE}"
    return parse_presets(load_yaml_text(text, source), source)


def load_presets(path: str | Path | None = None) -> dict[str, DramDevice]:
    """Presets from ``path`` (a YAML file of the packaged format), or the packaged ones."""
    if path is None:
        return dict(_packaged())
    from accelsim.yamlio import read_yaml

    return parse_presets(read_yaml(path, "DRAM preset file"), str(path))


def parse_presets(data: Any, source: str) -> dict[str, DramDevice]:
    """Validate a mapping of preset name -> preset fields into :class:`DramDevice` objects."""
    if not isinstance(data, dict) or not data:
        raise ConfigError(source, None, "expected a mapping of preset names to presets")
    return {str(name): _parse_one(str(name), body, source) for name, body in data.items()}


def _fail(source: str, field: str, message: str) -> ConfigError:
    return ConfigError(source, field, message)


def _keys(data: Any, allowed: tuple, required: tuple, source: str, path: str) -> dict:
    if not isinstance(data, dict):
        raise _fail(source, path, f"expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            raise _fail(source, f"{path}.{key}", f"unknown key; allowed: {', '.join(allowed)}")
    for key in required:
        if key not in data:
            raise _fail(source, f"{path}.{key}", "required field is missing")
    return data


def _pos_int(value: Any, source: str, path: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or value > 2 ** 40:
        raise _fail(source, path, f"expected an integer from {low} to 2**40, got {value!r}")
    return value


def _pos_float(value: Any, source: str, path: str, zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero) or value > 1e9:
        raise _fail(source, path, f"expected a {'non-negative' if zero else 'positive'} number, "
                                  f"got {value!r}")
    return float(value)


def _parse_one(name: str, body: Any, source: str) -> DramDevice:
    required = tuple(f for f in TOP_FIELDS if f not in OPTIONAL_TOP)
    body = _keys(body, TOP_FIELDS, required, source, name)
    org = _keys(body["organisation"], ORG_FIELDS, ORG_FIELDS, source, f"{name}.organisation")
    org = {k: _pos_int(org[k], source, f"{name}.organisation.{k}") for k in ORG_FIELDS}
    for k in ("rows", "columns", "burst_length"):
        if org[k] & (org[k] - 1):
            raise _fail(source, f"{name}.organisation.{k}", f"expected a power of two, got {org[k]}")
    if org["columns"] % org["burst_length"]:
        raise _fail(source, f"{name}.organisation.columns",
                    f"expected a multiple of burst_length {org['burst_length']}, got {org['columns']}")
    timing = _keys(body["timing"], TIMING_FIELDS, TIMING_FIELDS, source, f"{name}.timing")
    timing = {k: _pos_int(timing[k], source, f"{name}.timing.{k}") for k in TIMING_FIELDS}
    rate = _pos_float(body["data_rate_mtps"], source, f"{name}.data_rate_mtps")
    tck = _pos_float(body["tck_ns"], source, f"{name}.tck_ns")
    beats = org["burst_length"] * 1e3 / (rate * tck)
    if abs(beats - round(beats)) > 0.02 or round(beats) < 1:
        raise _fail(source, f"{name}.tck_ns", f"a burst of {org['burst_length']} beats at "
                                              f"{rate:g} MT/s lasts {beats:.3f} clocks of {tck:g} ns; "
                                              "expected a whole number")
    _check_timing(name, timing, int(round(beats)), source)
    domains = body["power"]
    if not isinstance(domains, list) or not domains:
        raise _fail(source, f"{name}.power", "expected a non-empty list of voltage domains")
    power = []
    for i, dom in enumerate(domains):
        path = f"{name}.power[{i}]"
        dom = _keys(dom, ("name", "voltage_v") + CURRENT_FIELDS, ("name", "voltage_v") + CURRENT_FIELDS,
                    source, path)
        cur = {k: _pos_float(dom[k], source, f"{path}.{k}", zero=True) for k in CURRENT_FIELDS}
        power.append(PowerDomain(str(dom["name"]), _pos_float(dom["voltage_v"], source, f"{path}.voltage_v"),
                                 **cur))
    rho = body.get("rho", OPTIONAL_TOP["rho"])
    if not isinstance(rho, (int, float)) or isinstance(rho, bool) or not 0 <= rho <= 1:
        raise _fail(source, f"{name}.rho", f"expected a number from 0 to 1, got {rho!r}")
    banks = org["bank_groups"] * org["banks_per_group"]
    for i, dom in enumerate(power):
        _check_currents(name, i, dom, timing, float(rho), banks, source)
    sources = body["sources"]
    if not isinstance(sources, dict) or not all(isinstance(v, str) and v.strip() for v in sources.values()):
        raise _fail(source, f"{name}.sources", "expected a mapping of field names to non-empty citations")
    if "*" not in sources:
        cited = set(sources)
        for section, keys in (("organisation", ORG_FIELDS), ("timing", TIMING_FIELDS)):
            for key in keys:
                if section not in cited and key not in cited:
                    raise _fail(source, f"{name}.sources", f"no source for {section}.{key} (give one "
                                                            f"for the field, its section or '*')")
    channels = _pos_int(body["default_channels"], source, f"{name}.default_channels")
    return DramDevice(
        name=name, standard=str(body["standard"]), description=str(body.get("description", "")),
        data_rate_mtps=rate, tck_ns=tck, default_channels=channels,
        timing=tuple(timing.items()), power=tuple(power),
        io_pj_per_bit=_pos_float(body["io_pj_per_bit"], source, f"{name}.io_pj_per_bit", zero=True),
        rho=float(rho), sources=tuple((str(k), str(v).strip()) for k, v in sources.items()), **org)


def _check_timing(name: str, t: Mapping[str, int], burst: int, source: str) -> None:
    """Relations every JEDEC device satisfies; a violation is a typo in the file."""
    rules = (
        ("RC", t["RC"] >= t["RAS"] + t["RP"] - 1, "tRC >= tRAS + tRP (one clock of rounding)"),
        ("RAS", t["RAS"] >= t["RCD"], "tRAS >= tRCD"),
        ("CCD_L", t["CCD_L"] >= t["CCD_S"], "tCCD_L >= tCCD_S"),
        ("RRD_L", t["RRD_L"] >= t["RRD_S"], "tRRD_L >= tRRD_S"),
        ("WTR_L", t["WTR_L"] >= t["WTR_S"], "tWTR_L >= tWTR_S"),
        ("FAW", t["FAW"] >= t["RRD_S"], "tFAW >= tRRD_S"),
        ("CCD_S", t["CCD_S"] >= burst, f"tCCD_S >= the burst ({burst} clocks)"),
        ("REFI", t["REFI"] >= 4 * t["RFC"], "tREFI >= 4 tRFC (real devices: 10-25 x; less "
                                             "and refresh can starve the in-order controller)"),
    )
    for field, ok, what in rules:
        if not ok:
            raise _fail(source, f"{name}.timing.{field}", f"expected {what}, got "
                                                          + ", ".join(f"{k} {v}" for k, v in t.items()
                                                                      if k in what))


def bankwise_currents(dom: PowerDomain, t: Mapping[str, int], rho: float, banks: int
                      ) -> tuple[float, float, float]:
    """DRAMPower's bank-wise currents ``(I_rho, I_1, I_theta)`` in mA (I_beta = IDD0).

    ``I_rho``: rank-shared active-standby current; ``I_1``: one bank open;
    ``I_theta``: the activate current over tRAS (from IDD0 measured over tRC).
    """
    i_rho = rho * (dom.IDD3N - dom.IDD2N) + dom.IDD2N
    i_1 = (dom.IDD3N + (banks - 1) * i_rho) / banks
    i_theta = (dom.IDD0 * (t["RP"] + t["RAS"]) - dom.IDD0 * t["RP"]) / t["RAS"]
    return i_rho, i_1, i_theta


def _check_currents(name: str, i: int, dom: PowerDomain, t: Mapping[str, int], rho: float,
                    banks: int, source: str) -> None:
    path = f"{name}.power[{i}]"
    if dom.IDD3N < dom.IDD2N:
        raise _fail(source, f"{path}.IDD3N", f"expected >= IDD2N {dom.IDD2N:g}, got {dom.IDD3N:g}")
    for key in ("IDD4R", "IDD4W", "IDD5B"):
        if getattr(dom, key) < dom.IDD3N:
            raise _fail(source, f"{path}.{key}", f"expected >= IDD3N {dom.IDD3N:g} (energy above "
                                                 f"active standby), got {getattr(dom, key):g}")
    _, i_1, i_theta = bankwise_currents(dom, t, rho, banks)
    if i_theta < i_1 - 1e-9:
        raise _fail(source, f"{path}.IDD0", f"gives a negative activate energy with rho {rho:g} "
                                            f"(I_theta {i_theta:.3g} < I_1 {i_1:.3g} mA); lower rho "
                                            "or check IDD0/IDD3N")
