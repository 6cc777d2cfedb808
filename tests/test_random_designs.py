"""Random valid designs x random layers through ``simulate``: a design the schema accepts either
runs or is refused in one clean line, and every row keeps the invariants any design must keep.

A design draws each part of the schema at random: dataflow, array shape and sync group, a
systolic array or not, a shared level or none, per-PE levels for any tensor (sizes down to one
byte, per-level formats), a gate or skip action on some level, zero skipping and gating, storage
formats, residency, an ideal DRAM, a bandwidth or a DRAM device with or without the access
stream, power and clock gating, at the fast or cycle fidelity. Layers: convolutions (padding,
stride, dilation, groups), depthwise, pointwise and linear layers, at densities 0 to 1.

Invariants, from the definitions of the counts (not from the model's rules):

- every number is finite and no count, byte or energy is negative;
- effectual <= issued <= dense MACs; skipped + issued = dense; gated <= issued;
- a PE issues at most one pair per lane per cycle: ``cycles x PEs x lanes >= issued``;
- utilisation <= 1; DRAM bytes >= their compulsory part.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.hw import load_hw_dict
from accelsim.sim.simulate import simulate
from tests.sim_helpers import random_layer

FORMATS = ["dense", "bitmap", "run_length", "csr", "coo"]
TENSORS = ["weights", "inputs", "outputs"]


def random_design(r: random.Random) -> dict:
    """A hardware dict drawn over the schema (it may still be refused at load)."""
    dataflow = r.choice(["output_stationary", "weight_stationary", "input_stationary",
                         "row_stationary"])
    levels = []
    if r.random() < 0.85:
        keeps = TENSORS if r.random() < 0.6 else r.sample(TENSORS, r.randint(1, 3))
        levels.append({"name": "glb", "keeps": list(keeps), "instances": "one",
                       "size_bytes": r.choice([None, 64, 512, 4096, 65536, 1 << 20]),
                       "word_bits": r.choice([8, 16, 64]), "banks": r.choice([1, 4]),
                       "read_words_per_cycle": r.choice([None, 1, 4, 16])})
    for tensor in ("inputs", "weights", "outputs"):
        if r.random() < 0.6:
            level = {"name": f"{tensor[0]}reg", "keeps": [tensor], "instances": "per_pe",
                     "size_bytes": r.choice([None, 1, 4, 16, 128]),
                     "word_bits": r.choice([8, 16, 24])}
            if tensor != "outputs" and r.random() < 0.2:
                level["formats"] = {tensor: {"format": r.choice(FORMATS)}}
            levels.append(level)
    if not levels:
        levels.append({"name": "buf", "keeps": list(TENSORS), "instances": "one"})
    if r.random() < 0.3:
        r.choice(levels)["actions"] = [{"kind": r.choice(["gate", "skip"]),
                                        "target": r.choice(TENSORS),
                                        "condition_on": r.sample(["inputs", "weights"],
                                                                 r.randint(1, 2))}]
    dram = r.choice([{"ideal": True}, {"bandwidth_gb_per_s": 4.0},
                     {"device": r.choice(["DDR4-3200", "LPDDR4X-4266", "HBM3"]),
                      "access_stream": r.random() < 0.7}])
    design = {
        "version": 1, "name": "random-design", "technology": {"clock_mhz": 500},
        "precision": {"activation_bits": r.choice([8, 16]), "weight_bits": r.choice([8, 16]),
                      "accumulator_bits": 24},
        "pe_array": {"rows": r.choice([1, 2, 3, 4, 8]), "cols": r.choice([1, 2, 4, 5, 8]),
                     "dataflow": dataflow,
                     "sync": r.choice(["array", "row", "column", "decoupled"]),
                     "macs_per_pe": r.choice([1, 1, 2]),
                     "systolic": r.random() < 0.2 and dataflow in ("output_stationary",
                                                                    "weight_stationary")},
        "memory_hierarchy": levels,
        "sparsity": {"skip_zero_activations": r.random() < 0.4,
                     "skip_zero_weights": r.random() < 0.3,
                     "gate_zero_operands": r.random() < 0.3, "skip_padding": r.random() < 0.2},
        "storage": {t: {"format": r.choice(FORMATS)} for t in ("activations", "weights",
                                                               "outputs")},
        "dram": dram,
        "low_power": {"power_gating": r.random() < 0.2, "clock_gating": r.random() < 0.3},
    }
    if r.random() < 0.5:
        design["residency"] = {"weights": r.choice(["auto", "streamed", "resident"]),
                               "activations": r.choice(["auto", "streamed"])}
    return design


def random_layers(r: random.Random, seed: int) -> list:
    """One to three small layers of random kinds, shapes and densities."""
    out = []
    for i in range(r.randint(1, 3)):
        kind = r.choice(["conv", "conv", "depthwise", "linear", "pointwise"])
        dens = dict(density_a=r.choice([0.0, 0.3, 0.7, 1.0]),
                    density_w=r.choice([0.0, 0.5, 1.0]), seed=seed * 10 + i, index=i)
        if kind == "linear":
            out.append(random_layer(f"l{i}", kind="linear", C=r.randint(1, 40),
                                    K=r.randint(1, 20), H=1, W=1, R=1, S=1, **dens))
        elif kind == "depthwise":
            c, h = r.randint(1, 8), r.randint(3, 9)
            out.append(random_layer(f"l{i}", C=c, K=c, groups=c, H=h, W=h, R=3, S=3, pad_h=1,
                                    pad_w=1, stride_h=r.choice([1, 2]),
                                    stride_w=r.choice([1, 2]), **dens))
        elif kind == "pointwise":
            out.append(random_layer(f"l{i}", C=r.randint(1, 20), K=r.randint(1, 20),
                                    H=r.randint(1, 7), W=r.randint(1, 7), R=1, S=1, **dens))
        else:
            k, g = r.choice([1, 2, 3, 5]), r.choice([1, 1, 2])
            h = r.randint(k, 10)
            out.append(random_layer(f"l{i}", C=g * r.randint(1, 5), K=g * r.randint(1, 6),
                                    groups=g, H=h, W=r.randint(k, 10), R=k, S=k,
                                    pad_h=r.choice([0, 1]), pad_w=r.choice([0, 1]),
                                    stride_h=r.choice([1, 2]), stride_w=r.choice([1, 1, 3]),
                                    dil_h=r.choice([1, 1, 2]) if h >= 2 * k else 1, **dens))
    return out


def broken_invariants(rows, lanes_per_array: int) -> list[str]:
    """The invariants (module docstring) the rows break."""
    tol = 1e-6
    numbers = rows.select_dtypes("number")
    values = numbers.to_numpy(dtype=float)
    out = []
    if not np.isfinite(values).all():
        out.append("non-finite: " + ", ".join(c for c in numbers.columns
                                              if not np.isfinite(numbers[c]).all()))
    negative = [c for c in numbers.columns if (numbers[c] < -tol).any()]
    if negative:
        out.append("negative: " + ", ".join(negative))
    dense, issued = rows["macs_dense"], rows["macs_issued"]
    checks = {
        "effectual <= issued": rows["macs_effectual"] <= issued + tol,
        "issued <= dense": issued <= dense + tol,
        "skipped + issued = dense": (rows["macs_skipped"] + issued - dense).abs()
        <= tol * (dense + 1),
        "gated <= issued": rows["macs_gated"] <= issued + tol,
        "cycles x PEs x lanes >= issued": rows["cycles"] * lanes_per_array >= issued - tol,
        "utilisation <= 1": rows["utilization"] <= 1 + 1e-9,
        "DRAM >= compulsory": rows["dram_bytes"] >= rows["dram_compulsory_bytes"] - tol,
    }
    out += [name for name, ok in checks.items() if not bool(ok.all())]
    return out


def check_design(seed: int) -> str:
    """``'refused'``, ``'ran'``; fails on any other exception or a broken invariant."""
    r = random.Random(seed)
    design = random_design(r)
    try:
        hw = load_hw_dict(design, source="<random design>")
    except AccelsimError as err:
        assert "\n" not in str(err).strip(), err
        return "refused"
    layers = random_layers(r, seed)
    fidelity = r.choice(["fast", "fast", "cycle"])
    try:
        result = simulate(layers, hw, fidelity=fidelity)
    except AccelsimError as err:
        assert "\n" not in str(err).strip(), err
        return "refused"
    pe = hw.pe_array
    broken = broken_invariants(result.layers, pe.rows * pe.cols * pe.macs_per_pe)
    assert not broken, f"seed {seed} ({fidelity}): {broken}; design {design}"
    return "ran"


def test_random_designs_run_or_are_refused_and_keep_the_invariants():
    outcomes = [check_design(seed) for seed in range(12)]
    assert outcomes.count("ran") >= 4, outcomes      # the draw reaches the model


@pytest.mark.slow
@pytest.mark.parametrize("block", range(10))
def test_random_designs_many_seeds(block):
    for seed in range(12 + 50 * block, 12 + 50 * (block + 1)):
        check_design(seed)
