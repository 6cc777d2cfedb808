"""No file makes any verb run code (hardening: the one gate, accelsim.zoo.gate).

Every command-line verb is enumerated from the parser. Verbs that read a file able to name a
model (recipes, co-design specs, checkpoints, LLM folders, image folders) get a hostile file
and run in a fresh interpreter under an audit hook that records every import of the planted
module, every process started and every ``os.system``; the planted code would also leave a
marker file. The other verbs are listed with the reason no file of theirs names code, so a new
verb fails here until someone classifies it.
"""
from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from accelsim.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = "evil_payload_mod"

# Each verb whose inputs cannot name a model, with the reason (checked against the parser).
NO_MODEL_NAMES = {
    "hw validate": "hardware YAML: numbers and enumerated words only",
    "hw show": "hardware YAML",
    "hw port": "hardware YAML",
    "hw tables": "package energy tables",
    "hw schema": "no input",
    "zoo": "no input",
    "trace from-topology": "a topology CSV: layer sizes only",
    "trace from-model": "the model is the user's positional argument (command line)",
    "trace from-trace": "a trace: arrays read with allow_pickle=False, names never resolved",
    "trace info": "a trace",
    "map": "hardware YAML, a trace, a mapping YAML of loop factors",
    "simulate": "hardware YAML and a trace",
    "sweep": "a sweep spec of hardware fields and trace paths",
    "report": "results tables",
    "demo": "shipped files only",
    "plot savings": "results tables",
    "plot compare": "results tables",
    "plot breakdown": "results tables",
    "plot latency": "results tables",
    "plot density": "a trace",
    "plot pareto": "results tables",
    "plot memory": "results tables",
    "plot area": "hardware YAML",
}

HOOK = textwrap.dedent(f"""
    import json, sys
    events = []
    def hook(event, args):
        if event == "import" and args and str(args[0]).split(".")[0].startswith("{PAYLOAD}"):
            events.append(["import", str(args[0])])
        elif event == "exec" and "{PAYLOAD}" in str(getattr(args[0], "co_filename", "")):
            events.append(["exec", args[0].co_filename])
        elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                       "os.spawn", "_posixsubprocess.fork_exec"):
            events.append([event, repr(args)[:200]])
    sys.addaudithook(hook)
    from accelsim.cli import main
    try:
        rc = main(sys.argv[2:])
    except SystemExit as exc:
        rc = exc.code
    events += [["module", name] for name in sys.modules if name.startswith("{PAYLOAD}")]
    with open(sys.argv[1], "w") as fh:
        json.dump({{"rc": rc, "events": events}}, fh)
""")


def _verbs(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _verbs(sub, prefix + (name,))
            return
    yield " ".join(prefix)


def _plant(folder: Path) -> Path:
    """A module that would leave a marker if anything imported it; returns the marker path."""
    marker = folder / "PWNED"
    (folder / f"{PAYLOAD}.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "def payload(**kwargs):\n    import torch\n    return torch.nn.Identity()\n")
    return marker


def _run(folder: Path, *argv: str, stdin: str = "y\ny\ny\n") -> dict:
    """Run ``accelsim ARGV`` in ``folder`` under the audit hook; the recorded outcome."""
    out = folder / "audit.json"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{folder}",
               PATH=f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", HOOK, str(out), *argv], cwd=folder, env=env,
                          input=stdin, capture_output=True, text=True, timeout=300)
    assert out.is_file(), done.stderr[-2000:]
    result = json.loads(out.read_text())
    result["stderr"] = done.stderr
    return result


def _assert_refused(result: dict, marker: Path, *words: str) -> None:
    assert result["events"] == [], result["events"]
    assert not marker.exists(), "the planted code ran"
    assert result["rc"] not in (0, None), result
    lines = [line for line in result["stderr"].splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result["stderr"][-3000:]
    assert "Traceback" not in result["stderr"]
    for word in words:
        assert word in lines[0], lines[0]


def test_every_verb_is_classified():
    verbs = set(_verbs(build_parser()))
    hostile = set(HOSTILE)
    assert verbs == hostile | set(NO_MODEL_NAMES), (
        f"unclassified verbs: {sorted(verbs - hostile - set(NO_MODEL_NAMES))}; "
        f"gone: {sorted((hostile | set(NO_MODEL_NAMES)) - verbs)}")
    assert not hostile & set(NO_MODEL_NAMES)


def _recipe(folder: Path, base: str = "lenet5_digits_baseline.yaml") -> Path:
    text = (ROOT / "models" / base).read_text()
    lines = [f"model: {PAYLOAD}:payload" if line.startswith("model:") else line
             for line in text.splitlines()]
    path = folder / "evil_recipe.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def hostile_train(folder: Path, marker: Path) -> None:
    _assert_refused(_run(folder, "train", str(_recipe(folder)), "-o", str(folder / "run")),
                    marker, "evil_recipe.yaml", "zoo")


def hostile_codesign(folder: Path, marker: Path) -> None:
    recipe = _recipe(folder, "lenet5_digits_codesign.yaml")
    spec = folder / "evil_codesign.yaml"
    base = (ROOT / "hw_configs" / "codesign").glob("*.yaml")
    text = next(iter(sorted(base))).read_text()
    lines = []
    for line in text.splitlines():
        if line.startswith("recipe:"):
            line = f"recipe: {recipe}"
        lines.append(line)
    text = "\n".join(lines) + "\n"
    # designs named relative to the shipped spec's folder keep working from here
    spec.write_text(text.replace("../", str(ROOT / "hw_configs") + "/"))
    result = _run(folder, "codesign", str(spec), "-o", str(folder / "cd"))
    _assert_refused(result, marker, "zoo")


def hostile_capture(folder: Path, marker: Path) -> None:
    from accelsim.train.checkpoint import load_checkpoint, save_checkpoint

    state, masks, meta = load_checkpoint(ROOT / "models" / "lenet5_digits_baseline.pt")
    evil = folder / "evil.pt"
    save_checkpoint(evil, state, dict(meta, model=f"{PAYLOAD}:payload"), masks)
    result = _run(folder, "trace", "capture", "--checkpoint", str(evil), "--samples", "1",
                  "--data", "random:1,28,28", "-o", str(folder / "t.trace"))
    _assert_refused(result, marker, "evil.pt", "zoo")
    # an LLM folder naming its own modelling code (auto_map)
    transformers = pytest.importorskip("transformers")
    llm = folder / "llm"
    llm.mkdir()
    config = transformers.LlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2,
                                      num_key_value_heads=2, max_position_embeddings=64)
    transformers.LlamaForCausalLM(config).save_pretrained(llm)
    raw = json.loads((llm / "config.json").read_text())
    raw["auto_map"] = {"AutoConfig": f"{PAYLOAD}.Config",
                       "AutoModelForCausalLM": f"{PAYLOAD}.Model"}
    (llm / "config.json").write_text(json.dumps(raw))
    (llm / f"{PAYLOAD}.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    prompts = folder / "prompts.txt"
    prompts.write_text("hello there\n")
    result = _run(folder, "trace", "capture", "--model", str(llm), "--prompt-file", str(prompts),
                  "--samples", "1", "--decode-tokens", "1", "-o", str(folder / "l.trace"))
    _assert_refused(result, marker, "auto_map")
    # an "image" that is EPS: its decoder would run Ghostscript (a planted `gs` here)
    for split in ("train", "val"):
        (folder / "imgs" / split / "cls").mkdir(parents=True)
        (folder / "imgs" / split / "cls" / "a.jpg").write_text(
            "%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\nshowpage\n%%EOF\n")
    (folder / "bin").mkdir()
    gs = folder / "bin" / "gs"
    gs.write_text(f"#!/bin/sh\necho ran > {marker}\n")
    gs.chmod(gs.stat().st_mode | stat.S_IEXEC)
    result = _run(folder, "trace", "capture", "--model", "resnet18_cifar", "--samples", "1",
                  "--data", f"imagenet:{folder / 'imgs'},crop=32,resize=32",
                  "-o", str(folder / "i.trace"))
    _assert_refused(result, marker, "a.jpg")


HOSTILE = {"train": hostile_train, "codesign": hostile_codesign, "trace capture": hostile_capture}


@pytest.mark.parametrize("verb", sorted(HOSTILE))
def test_no_file_runs_code(verb, tmp_path):
    marker = _plant(tmp_path)
    HOSTILE[verb](tmp_path, marker)


def test_user_code_only_from_the_command_line(tmp_path):
    """The same spec runs when the user gives it with --model (the gate lets the user choose)."""
    marker = _plant(tmp_path)
    result = _run(tmp_path, "trace", "capture", "--model", f"{PAYLOAD}:payload", "--samples", "1",
                  "--data", "random:4", "-o", str(tmp_path / "u.trace"))
    assert marker.exists() and ["module", PAYLOAD] in result["events"], result["events"]
    assert any(kind == "exec" for kind, _ in result["events"])  # the hook sees module code run


def test_plain_strings_never_import():
    from accelsim.errors import AccelsimError
    from accelsim.zoo import UserCode, build_model, get_model, resolve_model

    for build in (build_model, get_model, resolve_model):
        with pytest.raises(AccelsimError, match="names code to import"):
            build("os:system")
    assert isinstance(build_model(UserCode("torch.nn:Identity")), torch.nn.Identity)
    # the mark does not survive a trip through text
    with pytest.raises(AccelsimError):
        build_model(str(UserCode("torch.nn:Identity")))


def test_config_error_crosses_processes():
    import pickle

    from accelsim.errors import ConfigError

    error = pickle.loads(pickle.dumps(ConfigError("spec.yaml", "training.lambda", "expected a number")))
    assert (error.file, error.field, str(error)) == (
        "spec.yaml", "training.lambda", "spec.yaml: training.lambda: expected a number")
