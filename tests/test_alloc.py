"""The command line's glibc malloc tuning (accelsim.alloc)."""
from __future__ import annotations

import platform
import sys

import pytest

from accelsim.alloc import keep_freed_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_thresholds_are_set_on_glibc(monkeypatch):
    monkeypatch.delenv("ACCELSIM_MALLOC_TUNING", raising=False)
    assert keep_freed_memory() is True


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_switched_off_by_the_environment(monkeypatch, value):
    monkeypatch.setenv("ACCELSIM_MALLOC_TUNING", value)
    assert keep_freed_memory() is False


def test_the_cli_tunes_before_parsing(monkeypatch):
    import accelsim.cli as cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1))
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert calls == [1]
