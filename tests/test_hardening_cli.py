"""One CLI-wide guard: OSError and MemoryError are one line and exit 1; pipes and devices are refused."""
from __future__ import annotations

import os

import pytest

from accelsim import cli
from accelsim.cli import main

TRACE = "traces/lenet5_digits_dual.trace"
HW = "hw_configs/sparten_like.yaml"


@pytest.fixture
def repo(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    return repo_root


def _one_line(capsys):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_output_under_a_regular_file(repo, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["simulate", "--trace", TRACE, "--hw", HW, "-o", str(blocker / "out.csv")]) == 1
    err = _one_line(capsys)
    assert f"accelsim simulate: creating the output's folder {blocker}" in err


@pytest.mark.parametrize("exc,words", [
    (PermissionError(13, "Permission denied", "/ro/out/results.csv"),
     "error: accelsim hw: writing the output /ro/out/results.csv: Permission denied"),
    (OSError(28, "No space left on device", "/ro/out/x.tmp"),
     "writing the output /ro/out/x.tmp: No space left on device"),
    (IsADirectoryError(21, "Is a directory", "/etc"), "accessing /etc: Is a directory"),
    (OSError(5, "Input/output error"), "error: accelsim hw: Input/output error"),
    (MemoryError(), "error: accelsim hw: out of memory"),
])
def test_os_and_memory_errors_are_one_line(monkeypatch, capsys, exc, words):
    parser = cli.build_parser()

    def handler(args):
        raise exc

    real_parse = parser.parse_args

    def parse(argv):
        args = real_parse(argv)
        args.handler, args.output = handler, "/ro/out"
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert main(["hw", "tables"]) == 1
    assert words in _one_line(capsys)


@pytest.mark.parametrize("argv", [
    ["simulate", "--trace", "{fifo}", "--hw", HW],
    ["simulate", "--trace", "/dev/zero", "--hw", HW],
    ["simulate", "--trace", TRACE, "--hw", "{fifo}"],
    ["simulate", "--trace", TRACE, "--hw", "/dev/zero"],
    ["trace", "info", "{fifo}"],
])
def test_pipes_and_devices_are_refused_not_read(repo, tmp_path, capsys, argv):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code = main([a.replace("{fifo}", str(fifo)) for a in argv])
    assert code in (1, 2)
    err = _one_line(capsys)
    assert "is a FIFO" in err or "is a device" in err
