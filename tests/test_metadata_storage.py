"""Metadata as its own storage (fidelity issue item 4): a level's compressed tensors charge their
metadata bits to the level's metadata storage, at its energy and port; targets are hand counts."""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.hw.schema import LevelFormat
from accelsim.sim import storage
from accelsim.sim.engine import simulate_layer
from sim_helpers import make_hw, random_layer


def test_metadata_part_of_each_format_by_hand():
    mask = np.zeros((2, 8), dtype=bool)
    mask[0, [1, 6]] = True
    mask[1, 7] = True                                  # 3 non-zeros of 16
    assert storage.metadata_bits(mask, LevelFormat("dense"), 8) == 0
    assert storage.metadata_bits(mask, LevelFormat("bitmap"), 8) == 16
    assert storage.metadata_bits(mask, LevelFormat("csr", index_bits=4), 8) == (2 + 1 + 3) * 4
    assert storage.metadata_bits(mask, LevelFormat("coo", index_bits=4), 8) == 3 * 2 * 4
    # C order: runs 1, 4, 8 -> with run_bits 2 (longest run 3): 1 | 4 = 4 + 0 (one overflow)
    # | 8 = 4 + 4 + 0 (two overflows): 3 + 1 + 2 = 6 entries
    assert storage.metadata_bits(mask, LevelFormat("run_length", run_bits=2), 8) == 6 * 2
    # ranked [UOP, B]: 2 + 1 offsets into the 3 entries the B rank keeps, ceil(log2(3 + 1)) = 2
    # bits each, then one 8-bit mask per row
    fmt = LevelFormat("ranked", ranks=("UOP", "B"))
    assert storage.metadata_bits(mask, fmt, 8) == 3 * 2 + 2 * 8
    for f in (LevelFormat("bitmap"), LevelFormat("csr", index_bits=4), fmt,
              LevelFormat("run_length", run_bits=2)):
        values = storage.tensor_bits(mask, f, 8) - storage.metadata_bits(mask, f, 8)
        assert values % 8 == 0 and values >= 3 * 8


GLB = {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 1 << 20,
       "word_bits": 8, "read_pj": 0.8, "write_pj": 0.8,
       "formats": {"inputs": {"format": "bitmap"}}}


def _hw(metadata=None):
    glb = dict(GLB)
    if metadata is not None:
        glb["metadata"] = metadata
    return make_hw(pe_array={"rows": 2, "cols": 2, "dataflow": "output_stationary"},
                   memory_hierarchy=[glb])


def _layer():
    return random_layer("l", density_a=0.3, density_w=1.0, C=4, H=6, W=6, K=4, R=3, S=3)


def test_metadata_storage_with_the_levels_energy_changes_nothing():
    layer = _layer()
    plain = simulate_layer(layer, _hw())
    same = simulate_layer(layer, _hw({"word_bits": 8, "read_pj": 0.8, "write_pj": 0.8}))
    assert same["energy_pj"] == pytest.approx(plain["energy_pj"], rel=1e-12)
    assert same["cycles"] == plain["cycles"]


def test_free_metadata_removes_exactly_its_bits_from_the_level():
    layer = _layer()
    plain = simulate_layer(layer, _hw())
    free = simulate_layer(layer, _hw({"word_bits": 8, "read_pj": 0.0, "write_pj": 0.0}))
    # what the level moved as bitmap metadata: one presence bit per input element moved, i.e. the
    # level's input bits in the bitmap format less the values among them
    act = np.asarray(layer.act_mask(), dtype=bool)
    per_bit_meta = storage.metadata_bits(act, LevelFormat("bitmap"), 8, True) / (act.size * 8)
    moved_dense_bits = (plain["level_glb_read_bits"] + plain["level_glb_write_bits"]
                        - free["level_glb_read_bits"] - free["level_glb_write_bits"])
    assert moved_dense_bits > 0
    assert plain["energy_glb_pj"] - free["energy_glb_pj"] == pytest.approx(moved_dense_bits * 0.1)
    assert per_bit_meta == pytest.approx(1 / 8)


def test_a_narrow_metadata_port_binds():
    layer = _layer()
    narrow = simulate_layer(layer, _hw({"word_bits": 1, "read_words_per_cycle": 0.05}))
    assert narrow["bottleneck"] == "glb_metadata"
    wide = simulate_layer(layer, _hw({"word_bits": 64, "read_words_per_cycle": 64}))
    assert narrow["cycles"] > wide["cycles"]
