"""Per-rank formats (fidelity issue item 4): sizes from the masks against an encoder that writes
every rank out field by field, the classic formats they generalise, and the expected size.

The oracle builds the fibre tree as nested Python lists and emits, rank by rank, the fields a
hardware encoder would store; it shares nothing with the counting in accelsim.sim.fibertree."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from accelsim.errors import ConfigError
from accelsim.sim import storage
from accelsim.sim.fibertree import expected_ranked_bits, ranked_bits
from sim_helpers import make_hw, random_layer


def _bits(n: int) -> int:
    return max(1, math.ceil(math.log2(max(n, 2))))


def _encode(mask: np.ndarray, ranks, value_bits, run_bits=4, coord_bits=None, offset_bits=None):
    """Write the tensor out rank by rank; return the bits of every field and value."""
    k = len(ranks)
    shape = mask.shape
    if k > len(shape):
        shape = (1,) * (k - len(shape)) + shape
    sizes = list(shape[:k - 1]) + [int(np.prod(shape[k - 1:]))]
    m = mask.reshape(sizes)

    def nonempty(index) -> bool:
        return bool(m[tuple(index)].any())

    # the fibre tree: the fibres of each rank and the coordinates each rank keeps
    fibres_of, kept_of = [], []
    fibres = [()]
    for j, fmt in enumerate(ranks):
        kept = []
        for prefix in fibres:
            coords = [prefix + (i,) for i in range(sizes[j])]
            kept.extend(coords if fmt in ("U", "UOP") else [c for c in coords if nonempty(c)])
        fibres_of.append(fibres)
        kept_of.append(kept)
        fibres = kept
    total = 0
    for j, fmt in enumerate(ranks):
        last = j == k - 1
        for prefix in fibres_of[j]:
            mine = [c for c in kept_of[j] if c[:-1] == prefix]
            if fmt == "UOP":      # n + 1 offsets into the next rank's entries (or the values)
                nxt = len(kept_of[j + 1]) if not last else len(kept_of[j])
                total += (sizes[j] + 1) * (offset_bits or _bits(nxt + 1))
            elif fmt == "CP":
                total += len(mine) * (coord_bits or _bits(sizes[j]))
            elif fmt == "B":
                total += sizes[j]
            elif fmt == "RLE":
                previous = -1
                for c in mine:
                    gap = c[-1] - previous - 1
                    while gap >= 2 ** run_bits:   # overflow: the longest run, an empty payload
                        total += run_bits + (value_bits if last else 0)
                        gap -= 2 ** run_bits
                    total += run_bits
                    previous = c[-1]
    total += len(kept_of[-1]) * value_bits
    return total


RANKS = [["B"], ["RLE"], ["CP"], ["U"], ["UOP"], ["UOP", "CP"], ["UOP", "B"], ["B", "B"],
         ["CP", "RLE"], ["U", "CP"], ["RLE", "U"], ["UOP", "CP", "CP"], ["B", "U", "RLE"],
         ["CP", "UOP", "B"]]


@pytest.mark.parametrize("ranks", RANKS, ids="-".join)
@pytest.mark.parametrize("density", [0.0, 0.05, 0.4, 1.0])
@pytest.mark.parametrize("shape", [(3, 4, 5), (4, 2, 3, 3), (1, 1, 37)])
def test_sizes_equal_the_encoder(ranks, density, shape):
    rng = np.random.default_rng(len(ranks) * 100 + int(density * 10))
    mask = rng.random(shape) < density
    for run_bits in (1, 4):
        want = _encode(mask, ranks, 8, run_bits)
        assert ranked_bits(mask, ranks, 8, run_bits) == want


@pytest.mark.parametrize("seed", range(40))
def test_random_cases_with_fixed_widths(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(x) for x in rng.integers(1, 6, size=int(rng.integers(3, 5))))
    ranks = [str(rng.choice(["U", "UOP", "CP", "B", "RLE"])) for _ in range(int(rng.integers(1, 4)))]
    mask = rng.random(shape) < rng.random()
    kw = dict(run_bits=int(rng.integers(1, 5)), coord_bits=int(rng.integers(1, 9)),
              offset_bits=int(rng.integers(1, 12)))
    assert ranked_bits(mask, ranks, 16, **kw) == _encode(mask, ranks, 16, **kw)


def test_classic_formats_are_special_cases():
    rng = np.random.default_rng(7)
    mask = rng.random((6, 4, 5)) < 0.3
    assert ranked_bits(mask, ["B"], 8) == storage.format_bits(mask, "bitmap", 8)
    assert ranked_bits(mask, ["RLE"], 8, run_bits=3) == storage.format_bits(mask, "run_length", 8,
                                                                            run_bits=3)
    assert ranked_bits(mask, ["UOP", "CP"], 8, coord_bits=16, offset_bits=16) == \
        storage.format_bits(mask, "csr", 8, index_bits=16)
    assert ranked_bits(mask, ["U"], 8) == mask.size * 8


@pytest.mark.parametrize("ranks", [["B"], ["UOP", "CP"], ["CP", "B"], ["U", "CP"], ["B", "B", "U"]],
                         ids="-".join)
@pytest.mark.parametrize("density", [0.1, 0.5])
def test_expected_size_is_the_mean_over_random_masks(ranks, density):
    rng = np.random.default_rng(1)
    shape = (4, 6, 5)
    sizes = [ranked_bits(rng.random(shape) < density, ranks, 8, coord_bits=8, offset_bits=8)
             for _ in range(600)]
    want = expected_ranked_bits(shape, density, ranks, 8, coord_bits=8, offset_bits=8)
    assert np.mean(sizes) == pytest.approx(want, rel=0.02)


def _hw(fmt):
    return make_hw(pe_array={"rows": 2, "cols": 2, "dataflow": "output_stationary"},
                   storage={"activations": fmt, "weights": fmt, "outputs": fmt},
                   memory_hierarchy=[{"name": "glb", "keeps": ["weights", "inputs", "outputs"],
                                      "size_bytes": 1 << 20, "word_bits": 8}])


def test_a_ranked_design_moves_its_ranked_sizes():
    layer = random_layer("l", density_a=0.3, density_w=0.4, C=4, H=6, W=6, K=4, R=3, S=3, N=2)
    csr = simulate(layer, _hw({"format": "csr", "index_bits": 16}))
    ranked = simulate(layer, _hw({"format": "ranked", "ranks": ["UOP", "CP"], "coord_bits": 16,
                                  "offset_bits": 16}))
    w = np.asarray(layer.weight_mask(), dtype=bool)
    assert ranked["weight_bytes"] == pytest.approx(ranked_bits(w, ["UOP", "CP"], 8, 4, 16, 16) / 8)
    assert ranked["weight_bytes"] == pytest.approx(csr["weight_bytes"])   # CSR by filter either way
    acts = np.asarray(layer.act_mask(), dtype=bool)
    per_sample = sum(ranked_bits(a, ["UOP", "CP"], 8, 4, 16, 16) for a in acts) / 8 / 2
    assert ranked["act_bytes"] == pytest.approx(per_sample)


def simulate(layer, hw):
    from accelsim.sim.engine import simulate_layer

    return simulate_layer(layer, hw)


@pytest.mark.parametrize("fmt, field, words", [
    ({"format": "ranked"}, "storage.activations.ranks", "needs its per-rank formats"),
    ({"format": "bitmap", "ranks": ["B"]}, "storage.activations.format", "expected format: ranked"),
    ({"format": "ranked", "ranks": ["CSR"]}, "storage.activations.ranks[0]", "expected one of"),
    ({"format": "ranked", "ranks": ["B", "B", "B", "B"]}, "storage.activations.ranks", "at most 3"),
])
def test_bad_ranked_formats_are_one_line_errors(fmt, field, words):
    with pytest.raises(ConfigError) as err:
        _hw(fmt)
    assert field in str(err.value) and words in str(err.value)
