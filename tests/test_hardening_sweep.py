"""Sweep specs: the number of design points is bounded before any value is listed."""
from __future__ import annotations

import dataclasses
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from accelsim.cli import main
from accelsim.errors import ConfigError
from accelsim.sweep.expand import expand
from accelsim.sweep.spec import DEFAULT_MAX_POINTS, load_sweep_spec, point_count


@pytest.fixture
def spec_dir(tmp_path: Path, minimal_hw: dict) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(minimal_hw))
    (tmp_path / "t.trace").write_bytes(b"")
    return tmp_path


def write_spec(folder: Path, axes: dict, **extra) -> Path:
    data = {"version": 1, "base": "base.yaml", "traces": ["t.trace"], "axes": axes, **extra}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _refused_fast(path: Path, words: str, **kwargs) -> ConfigError:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ConfigError, match=words) as info:
            load_sweep_spec(path, **kwargs)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 50e6, f"{peak / 1e6:.0f} MB allocated before refusing"
    return info.value


def test_billion_point_grid_is_refused_with_the_count_and_the_flag(spec_dir):
    values = list(range(1, 1001))
    path = write_spec(spec_dir, {"pe_array.rows": values, "pe_array.cols": values,
                                 "pe_array.macs_per_pe": values})
    err = _refused_fast(path, r"axes: the grid has 1,000,000,000 points, more than the limit "
                              r"of 100,000; pass --max-points 1000000000 to run it anyway")
    assert err.file == str(path)


def test_million_point_grid_is_refused_by_default(spec_dir):
    path = write_spec(spec_dir, {"pe_array.rows": list(range(1, 1001)),
                                 "pe_array.cols": list(range(1, 1001))})
    _refused_fast(path, "the grid has 1,000,000 points")
    spec = load_sweep_spec(path, max_points=1_000_000)  # the flag's way through
    assert point_count(spec) == 1_000_000


@pytest.mark.parametrize("axis,words", [
    ({"range": {"start": 1, "stop": 1e12, "step": 1}},
     r"axes.global_buffer.size_kib: this axis alone has 1,000,000,000,000 points"),
    ({"range": {"start": 1, "stop": 1e300, "step": 1e-300}}, "the range has no end"),
    ({"random": {"low": 1, "high": 10, "count": 10 ** 12}}, "this axis alone has 1,000,000,000,000"),
])
def test_huge_axes_are_refused_before_listing(spec_dir, axis, words):
    _refused_fast(write_spec(spec_dir, {"global_buffer.size_kib": axis}), words)


def test_random_mode_points_are_bounded(spec_dir):
    path = write_spec(spec_dir, {"pe_array.rows": [4, 8]}, mode="random", points=10 ** 12)
    _refused_fast(path, r"points: the sweep has 1,000,000,000,000 points.*--max-points")


def test_expand_checks_again_for_specs_built_in_code(spec_dir):
    spec = load_sweep_spec(write_spec(spec_dir, {"pe_array.rows": [4, 8]}))
    big = dataclasses.replace(spec, mode="random", points=10 ** 9, axes=spec.axes)
    with pytest.raises(ConfigError, match="the sweep has 1,000,000,000 points"):
        expand(big)
    assert len(expand(spec).points) == 2


def test_cli_flag(spec_dir, capsys):
    path = write_spec(spec_dir, {"pe_array.rows": list(range(1, 401)),
                                 "pe_array.cols": list(range(1, 401))})
    assert main(["sweep", str(path), "-o", str(spec_dir / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pass --max-points 160000" in err
    assert DEFAULT_MAX_POINTS == 100_000
