"""Hardware values have sane upper bounds: whatever validates, the simulator runs to finite figures."""
from __future__ import annotations

import copy
import math
import typing
from dataclasses import fields, is_dataclass

import pytest

from accelsim.errors import ConfigError, MappingError
from accelsim.hw import load_hw_dict
from accelsim.hw.load import deep_merge
from accelsim.hw.rules import RuleError
from accelsim.hw.schema import HardwareConfig
from accelsim.sim.simulate import simulate
from tests.sim_helpers import BASE_HW, random_layer


def _numeric_fields(cls=HardwareConfig, prefix=""):
    """(dotted path, rule, is_int) of every plain numeric leaf of the schema."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        hint = hints[f.name]
        path = f"{prefix}{f.name}"
        if is_dataclass(hint):
            yield from _numeric_fields(hint, path + ".")
            continue
        args = set(typing.get_args(hint)) or {hint}
        if args & {int, float} and not args & {str, bool}:
            yield path, f.metadata["rule"], float not in args


def _largest_accepted(rule, is_int):
    """The largest value ``rule`` accepts, by doubling then bisection (independent of the rule's code)."""
    def ok(v):
        try:
            rule(int(v) if is_int else float(v), "x")
            return True
        except RuleError:
            return False
    hi = 1
    while ok(hi * 2) and hi < 2 ** 1100:
        hi *= 2
    if hi >= 2 ** 1100:
        return math.inf
    lo, hi = hi, hi * 2
    while hi - lo > (1 if is_int else lo * 1e-12):
        mid = (lo + hi) // 2 if is_int else (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return int(lo) if is_int else lo


def _set(data, path, value):
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


FIELDS = [f for f in _numeric_fields() if not f[0].startswith("version")]


def test_every_numeric_field_has_a_finite_ceiling():
    for path, rule, is_int in FIELDS:
        top = _largest_accepted(rule, is_int)
        assert top < 2 ** 63, f"{path}: accepts {top}"


@pytest.mark.parametrize("path,rule,is_int", FIELDS, ids=[f[0] for f in FIELDS])
def test_largest_accepted_value_simulates_to_finite_figures(path, rule, is_int):
    top = _largest_accepted(rule, is_int)
    data = deep_merge(copy.deepcopy(BASE_HW), {"dram": {"ideal": False, "bandwidth_gb_per_s": 8},
                                               "low_power": {"power_gating": True}})
    _set(data, path, top)
    if path == "pe_array.rows" or path == "pe_array.cols":
        _set(data, "pe_array.cols" if path.endswith("rows") else "pe_array.rows", 1)
    try:
        hw = load_hw_dict(data)
    except ConfigError:
        return  # refused by a cross-field check: also fine, nothing to simulate
    layer = random_layer(C=3, H=5, W=5, K=4, R=3, S=3, N=2)
    for fidelity in ("fast", "cycle"):
        try:
            result = simulate([layer], hw, fidelity=fidelity)
        except MappingError:
            continue  # a clean refusal (e.g. scratchpads too small for 1,024 lanes)
        numbers = {k: v for k, v in result.totals.items() if isinstance(v, (int, float))}
        assert all(math.isfinite(v) and v >= 0 for v in numbers.values()), (path, fidelity, numbers)
        assert numbers["cycles"] > 0 and numbers["energy_pj"] > 0, (path, fidelity)
        table = result.table().select_dtypes("number").to_numpy()
        assert (abs(table) < float("inf")).all(), (path, fidelity)


@pytest.mark.parametrize("path,value", [
    ("pe_array.rows", 4611686018427387904),      # segfaulted the cycle kernel
    ("global_buffer.size_kib", 1e308),            # gave inf uJ
    ("technology.clock_mhz", 1e308),
    ("technology.voltage_v", 1e6),
    ("technology.energy_overrides.mac_pj", 1e300),
    ("scratchpad.input_bytes", 2 ** 62),
    ("pe_array.work_queue_depth", 2 ** 40),
    ("low_power.wakeup_energy_pj", 1e308),
])
def test_absurd_values_are_refused_with_the_field(path, value):
    data = copy.deepcopy(BASE_HW)
    _set(data, path, value)
    with pytest.raises(ConfigError, match=r"expected (at most|an integer from|a positive number up)"):
        load_hw_dict(data, source="x.yaml")


def test_pe_count_is_bounded():
    data = copy.deepcopy(BASE_HW)
    _set(data, "pe_array.rows", 4096)
    _set(data, "pe_array.cols", 4096)
    with pytest.raises(ConfigError, match="pe_array: rows x cols = 16,777,216 PEs"):
        load_hw_dict(data, source="x.yaml")
