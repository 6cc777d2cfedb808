"""Metadata capacity (issue 22 item 4): a level's metadata storage has its own size
(``metadata.size_bytes``); a tile fits only when its dense data fits the level and the
worst-case metadata (density 1) of its compressed tensors fits the metadata storage."""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from accelsim.errors import ConfigError, MappingError
from accelsim.hw.schema import LevelFormat
from accelsim.map.access import analyse
from accelsim.map.arch import arch_of, tile_metadata_bits
from accelsim.map.fixed import fixed_result
from accelsim.map.mapper import _overflow, metadata_overflow, search
from accelsim.map.mapping import LevelLoops, Loop, Mapping
from accelsim.map.nest import DIMS, LoopNest
from accelsim.sim import storage
from sim_helpers import make_hw

GLB = {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 1 << 20,
       "word_bits": 8}
SPAD = {"name": "spad", "instances": "per_pe", "keeps": ["inputs"], "size_bytes": 4096,
        "word_bits": 8, "formats": {"inputs": {"format": "bitmap"}}}


def _hw(spad_metadata=None, spad=None):
    level = dict(SPAD, **(spad or {}))
    if spad_metadata is not None:
        level["metadata"] = spad_metadata
    return make_hw(pe_array={"rows": 2, "cols": 2, "dataflow": "output_stationary"},
                   memory_hierarchy=[GLB, level])


def _ext(**kw) -> dict:
    ext = dict.fromkeys(DIMS, 1)
    ext.update(kw)
    return ext


def test_a_16_byte_metadata_store_cannot_hold_200_bitmap_elements():
    # input tile C8 x 5 x 5 = 200 elements (1x1 filter, stride 1): bitmap = 200 bits = 25 bytes
    nest = LoopNest((1, 1, 4, 8, 5, 5, 1, 1), 1, 1, 1, 1, "l")
    ext = _ext(C=8, P=5, Q=5)
    for size, fits in ((16, False), (24, False), (25, True), (None, True)):
        arch = arch_of(_hw({"word_bits": 8, "size_bytes": size} if size else {"word_bits": 8}))
        spad = arch.levels[2]
        assert spad.name == "spad"
        assert (_overflow(nest, ext, spad, arch.tensor_bits) is None) == fits, size
    # the data alone (200 bytes) fits the 4096-byte level either way
    arch = arch_of(_hw({"word_bits": 8, "size_bytes": 16}))
    assert arch.levels[2].capacity_bits == 4096 * 8
    assert _overflow(nest, _ext(C=8, P=4, Q=4), arch.levels[2], arch.tensor_bits) is None  # 128 b


def test_no_metadata_storage_or_a_dense_format_needs_no_metadata_room():
    nest = LoopNest((1, 1, 4, 8, 5, 5, 1, 1), 1, 1, 1, 1, "l")
    ext = _ext(C=8, P=5, Q=5)
    dense = arch_of(_hw({"word_bits": 8, "size_bytes": 1},
                        {"formats": {"inputs": {"format": "dense"}}}))
    assert dense.levels[2].metadata_capacity_bits == 8
    assert _overflow(nest, ext, dense.levels[2], dense.tensor_bits) is None
    plain = arch_of(_hw())
    assert plain.levels[2].metadata_capacity_bits is None


FORMATS = [LevelFormat("bitmap"), LevelFormat("run_length", run_bits=3),
           LevelFormat("csr", index_bits=5), LevelFormat("coo", index_bits=7),
           LevelFormat("ranked", ranks=("UOP", "CP")), LevelFormat("ranked", ranks=("B", "B")),
           LevelFormat("ranked", ranks=("U", "RLE"), run_bits=2),
           LevelFormat("ranked", ranks=("UOP", "U", "B"))]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.format + "".join(f.ranks))
def test_worst_case_metadata_is_the_exact_size_of_an_all_ones_tile(fmt):
    """Reference: the simulator's exact mask sizer (storage.metadata_bits) on a tile of ones,
    and density 1 is the worst case: no random mask of the tile needs more."""
    rng = np.random.default_rng(0)
    key = (fmt.format, fmt.run_bits, fmt.index_bits, tuple(fmt.ranks), fmt.coord_bits,
           fmt.offset_bits)
    for shape in [(1, 1, 1), (3, 5, 2), (4, 1, 7), (2, 3, 3, 3)]:
        ones = np.ones(shape, dtype=bool)
        assert tile_metadata_bits(key, shape) == pytest.approx(
            storage.metadata_bits(ones, fmt, 8)), shape
        for density in (0.1, 0.5, 0.9):
            mask = rng.random(shape) < density
            assert storage.metadata_bits(mask, fmt, 8) <= tile_metadata_bits(key, shape) + 1e-9
    # inputs: samples of per-sample tiles, as the simulator's batched masks
    ones = np.ones((3, 2, 4, 5), dtype=bool)
    assert tile_metadata_bits(key, (2, 4, 5), 3) == pytest.approx(
        storage.metadata_bits(ones, fmt, 8, batched=True))


def _tile_elements(mapping: Mapping, level: int, nest: LoopNest) -> int:
    """Input elements of the tile ``level`` holds, by brute force over the loops inside it."""
    loops = [l for lv in mapping.levels[level:] for l in lv.temporal + lv.spatial]
    ranges = {d: 1 for d in DIMS}
    for l in loops:
        ranges[l.dim] *= l.factor
    seen = set()
    for n, c, p, q, r, s in itertools.product(*(range(ranges[d]) for d in "NCPQRS")):
        seen.add((n, c, p * nest.stride_h + r * nest.dil_h, q * nest.stride_w + s * nest.dil_w))
    return len(seen)


@pytest.mark.parametrize("seed", range(4))
def test_the_mappers_picks_keep_the_metadata_of_their_tiles(seed):
    rng = random.Random(seed)
    bounds = (1, 1, rng.choice([4, 8]), rng.choice([3, 8, 16]), rng.choice([4, 7]),
              rng.choice([4, 6]), rng.choice([1, 3]), rng.choice([1, 3]))
    nest = LoopNest(bounds, 1, 1, 1, 1, "l")
    size = rng.choice([2, 4, 8])
    arch = arch_of(_hw({"word_bits": 8, "size_bytes": size}))
    free = arch_of(_hw({"word_bits": 8}))
    res = search(nest, arch, "output_stationary", "energy", 4)
    elements = _tile_elements(res.mapping, 2, nest)
    assert elements <= size * 8           # bitmap: one bit per element of the spad's tile
    assert metadata_overflow(res.mapping, nest, arch) is None
    # a store large enough for any tile changes nothing (same search, same pick as null)
    roomy = arch_of(_hw({"word_bits": 8, "size_bytes": 1 << 20}))
    assert search(nest, roomy, "output_stationary", "energy", 4).mapping == \
        search(nest, free, "output_stationary", "energy", 4).mapping


def _mapping(c_in_spad: int) -> Mapping:
    return Mapping((LevelLoops("DRAM", (Loop("C", 8 // c_in_spad),)),
                    LevelLoops("glb", (Loop("K", 4),), (Loop("P", 2, True, "X"), Loop("Q", 2, True, "Y"))),
                    LevelLoops("spad", (Loop("C", c_in_spad), Loop("P", 2), Loop("Q", 2)))))


def test_a_user_mapping_whose_metadata_does_not_fit_is_refused_naming_the_level():
    nest = LoopNest((1, 1, 4, 8, 4, 4, 1, 1), 1, 1, 1, 1, "conv")
    arch = arch_of(_hw({"word_bits": 8, "size_bytes": 2}))   # 16 bits of metadata
    fixed_result("conv", _mapping(4), nest, arch)            # C4 x 2 x 2 = 16 elements: fits
    with pytest.raises(MappingError) as err:
        fixed_result("conv", _mapping(8), nest, arch)        # 32 elements: 4 bytes of bitmap
    msg = str(err.value)
    assert "\n" not in msg and "'spad'" in msg and "metadata" in msg and "4.00 bytes" in msg


def test_nothing_fits_names_the_metadata_storage():
    nest = LoopNest((1, 1, 4, 8, 4, 4, 3, 3), 1, 1, 1, 1, "conv")
    # the smallest input tile (one element) needs a presence bit; run-length 9-bit runs need 9
    arch = arch_of(_hw({"word_bits": 8, "size_bytes": 1},
                       {"formats": {"inputs": {"format": "run_length", "run_bits": 9}}}))
    with pytest.raises(MappingError) as err:
        search(nest, arch, "output_stationary", "energy", 2)
    msg = str(err.value)
    assert "\n" not in msg and "'spad'" in msg and "metadata" in msg and "size_bytes" in msg


def test_bad_size_bytes_is_one_config_error_naming_the_field():
    for bad in (0, -3, "big", 1.5):
        with pytest.raises(ConfigError, match=r"metadata\.size_bytes") as err:
            _hw({"word_bits": 8, "size_bytes": bad})
        assert "\n" not in str(err.value)
