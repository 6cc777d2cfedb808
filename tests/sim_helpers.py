"""Builders shared by the simulator tests: hardware dicts and random layers."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np

from accelsim.hw import load_hw_dict
from accelsim.hw.load import deep_merge
from accelsim.trace.geometry import LayerGeometry
from accelsim.trace.layer import LayerTrace

BASE_HW = {
    "version": 1,
    "name": "test-hw",
    "technology": {"clock_mhz": 500},
    "precision": {"activation_bits": 8, "weight_bits": 8, "accumulator_bits": 24},
    "pe_array": {"rows": 4, "cols": 4, "dataflow": "output_stationary"},
    "scratchpad": {"input_bytes": 16, "weight_bytes": 16, "psum_bytes": 4},
    "global_buffer": {"size_kib": 256, "words_per_cycle": 16, "word_bits": 16},
    "dram": {"ideal": True},
}


def make_hw(**overrides):
    """A validated HardwareConfig from :data:`BASE_HW`.

    Keys are section names or paths with ``__`` for dots; mapping values merge into
    the section, other values replace the field.
    """
    data = copy.deepcopy(BASE_HW)
    if overrides.get("memory_hierarchy") is not None:   # sizes come from the levels alone
        for shorthand in ("scratchpad", "global_buffer"):
            if not any(k.split("__")[0] == shorthand for k in overrides):
                del data[shorthand]
    for key, value in overrides.items():
        path = key.split("__")
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, dict) and isinstance(node.get(path[-1]), dict):
            node[path[-1]] = deep_merge(node[path[-1]], value)
        else:
            node[path[-1]] = value
    return load_hw_dict(data, source="<test>")


def unbounded_port(hw):
    """``hw`` with unbounded on-chip ports (every level's words per cycle None)."""
    if hw.memory_hierarchy is None:
        return dataclasses.replace(hw, global_buffer=dataclasses.replace(hw.global_buffer,
                                                                         words_per_cycle=None))
    levels = tuple(dataclasses.replace(lv, read_words_per_cycle=None, write_words_per_cycle=None)
                   for lv in hw.memory_hierarchy)
    return dataclasses.replace(hw, memory_hierarchy=levels)


def random_layer(name="layer", density_a=0.5, density_w=0.5, seed=0, index=0, act_bits=8,
                 weight_bits=8, output_density=0.5, **geometry):
    """A LayerTrace with i.i.d. random masks; geometry fields as keyword arguments."""
    geometry.setdefault("kind", "conv2d")
    geometry.setdefault("N", 1)
    geo = LayerGeometry(**geometry)
    rng = np.random.default_rng(seed)
    weight = rng.random(geo.weight_shape) < density_w
    act = rng.random(geo.act_shape) < density_a
    return LayerTrace.from_masks(name, geo, weight, act, act_bits=act_bits,
                                 weight_bits=weight_bits, index=index,
                                 output_density=output_density)


def split_factors(n: int, parts: int, rng) -> list[int]:
    """``n`` split into ``parts`` factors (each prime factor to a random part): a random tiling."""
    factors, x, p = [1] * parts, n, 2
    while x > 1:
        while x % p == 0:
            factors[rng.randrange(parts)] *= p
            x //= p
        p += 1
    return factors
