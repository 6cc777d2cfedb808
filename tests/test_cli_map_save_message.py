"""`accelsim map --save-mappings FILE` says which file it wrote (one line), and keeps --json's
stdout pure JSON (the line then goes to stderr)."""
from __future__ import annotations

import json
from pathlib import Path


from accelsim.cli import main

REPO = Path(__file__).resolve().parents[1]
TRACE = str(REPO / "traces" / "lenet5_digits_dual.trace")
HW = str(REPO / "hw_configs" / "eyeriss_v1.yaml")



def test_save_mappings_names_the_file(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    assert main(["map", "--trace", TRACE, "--hw", HW, "--layer", "fc3",
                 "--save-mappings", str(path)]) == 0
    out = capsys.readouterr().out
    assert path.is_file()
    named = [line for line in out.splitlines() if str(path) in line]
    assert len(named) == 1 and "mapping" in named[0]


def test_save_mappings_with_json_keeps_stdout_json(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    assert main(["map", "--trace", TRACE, "--hw", HW, "--layer", "fc3", "--json",
                 "--save-mappings", str(path)]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)
    assert str(path) in captured.err
