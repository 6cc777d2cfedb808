"""Atomic writes: ordinary permissions, nothing half-written on failure."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from accelsim.atomic import atomic_write, atomic_write_text


def test_written_file_has_umask_permissions(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "out.txt", "hello")
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_text() == "hello"
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_failure_leaves_destination_untouched(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def broken(tmp: str) -> None:
        Path(tmp).write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
