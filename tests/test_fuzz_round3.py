"""Round-3 seeded fuzzing: six more input classes, and the ``--threads`` caps.

Each class is mutated with a seeded generator and fed through the real entry points:

- ``mapping``: a user mapping file (``accelsim map --save-mappings`` output for LeNet-5 on
  eyeriss_v1) -> ``load_mappings`` + ``simulate(mappings=...)``; the CLI cases run
  ``accelsim simulate --mappings`` or ``accelsim map --mappings``;
- ``codesign``: a co-design spec (the shipped ``hw_configs/codesign/lenet5.yaml``, and one with
  hardware axes and constraints) or its base recipe (``models/lenet5_digits_codesign.yaml``)
  -> ``load_codesign_spec`` (no training: the CLI cases run ``accelsim codesign`` with
  ``run_codesign`` replaced by a stub that stops once the spec is loaded);
- ``llm``: a tiny randomly initialised Llama checkpoint folder (safetensors, config, generation
  config, a word-level tokenizer) -> ``load_decoder`` + ``capture_decoder`` (1 decode token);
  CLI: ``accelsim trace capture --model FOLDER --prompt-file F --decode-tokens 1``;
- ``images``: an ``imagenet:PATH`` tree of tiny PNG and JPEG files -> ``load_dataset`` of both
  splits, every image decoded; CLI: ``accelsim trace capture --data imagenet:...``;
- ``graph``: the graph records (ops, tensors, masks, non-zero counts) of a small captured
  trace -> ``open_trace`` + ``simulate``; edits either left unsigned (the metadata SHA-256
  must catch them) or consistently re-signed (``trace_helpers.rewrite``: the cross-checks of
  the records must catch them, or the trace is another self-consistent one);
- ``output``: the output path of ``simulate -o``, ``map --save-mappings`` and
  ``trace from-model -o`` made a FIFO, socket, device, directory, symbolic link (to a file,
  FIFO, folder, nothing, itself), hard link, a path under a file, a missing folder, a long
  or odd name, or with a planted sidecar.

Mutations: byte flips, truncation, appended bytes, zero runs, line/value edits with hostile
YAML/JSON values (type swaps, NaN/inf, huge/negative numbers, deep nesting, aliases, tags
naming code), deleted/duplicated/renamed keys and entries, structured edits (factors, levels,
layers, config fields, header fields, file names and node types), and a planted module
(``fuzz3_payload``, on ``sys.path``) that any file may name.

Every mutant's outcome is exactly one of:

- ``ok-identical``: accepted, the same result as the unmutated input;
- ``ok-other``: accepted, a different result that is what the mutant legitimately describes:
  finite, reproducible (re-loading the accepted input's canonical form gives it again), and
  checked against the input by class (a mapping's layers simulated with the loop nests the
  file gives; a co-design point's recipe holding its axis values; every checkpoint tensor
  loaded as stored, none re-initialised; the images listed by the documented folder rules,
  PNG pixels unchanged (PNG is checksummed; JPEG is not, so a flipped JPEG byte may decode to
  other pixels); a re-signed graph edit of a primary record). Unsigned graph edits and
  output paths never land here;
- ``one-line-error``: an ``AccelsimError`` (or, in the CLI, exit 2 / exit 1 for OS errors)
  whose message is one line;
- ``traceback``: any other exception, a multi-line message, or CLI stderr that is not one
  ``error:`` line;
- ``hang``: no answer within 20 s (in process: ``SIGALRM``; CLI: ``timeout``), or a worker
  process that stopped reporting;
- ``crash``: the process died of a signal (each mutant runs in a supervised worker
  process, restarted after the mutant that killed it);
- ``code-execution``: the planted module was imported, or a process was started / a shell
  run during an in-process case (audit hook), or its marker file appeared;
- ``data-loss``: an input file or folder, or any node next to an output path, changed;
- ``silent-wrong``: accepted, but the result is not what the input says (see ``ok-other``),
  not finite, not reproducible, or the CLI accepted what the API refused.

The tests require zero ``traceback``, ``hang``, ``crash``, ``code-execution``, ``data-loss`` and
``silent-wrong``. ``python tests/test_fuzz_round3.py [N] [SEED] [CLI_EVERY]`` prints the table
for N mutants per class.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import os
import random
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

OUTCOMES = ("ok-identical", "ok-other", "one-line-error", "traceback", "hang", "crash",
            "code-execution", "data-loss", "silent-wrong")
BAD = ("traceback", "hang", "crash", "code-execution", "data-loss", "silent-wrong")
CLASSES = ("mapping", "codesign", "llm", "images", "graph", "output")
PAYLOAD = "fuzz3_payload"
TIMEOUT = float(os.environ.get("FUZZ3_TIMEOUT", 20.0))   # in-process seconds per mutant
CLI_TIMEOUT = 120.0     # seconds per CLI subprocess
STALL = 240.0           # a worker silent this long is killed (its mutant: hang)
TRACE = ROOT / "traces" / "lenet5_digits_dual.trace"
EYERISS = ROOT / "hw_configs" / "eyeriss_v1.yaml"
SPARTEN = ROOT / "hw_configs" / "sparten_like.yaml"


# ================================================================ thread caps (task 1)

@pytest.fixture
def two_cores(monkeypatch):
    import accelsim.sweep.evaluate as evaluate

    monkeypatch.setattr(evaluate, "usable_cores", lambda: 2)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("count", ["9", "100000", "1" + "0" * 400])
def test_simulate_threads_above_the_cap_are_refused(two_cores, capsys, count):
    from accelsim.cli import main

    assert main(["simulate", "--trace", str(TRACE), "--hw", str(SPARTEN), "--threads", count]) == 2
    line = _one_error_line(capsys)
    assert "--threads" in line and "more than the limit of 8 (4 per usable CPU core, 2 here)" in line
    assert "Dask" not in line   # threads cannot go to other machines


def test_simulate_threads_at_the_cap_run(two_cores, capsys):
    from accelsim.cli import main

    argv = ["simulate", "--trace", str(TRACE), "--hw", str(SPARTEN), "--samples", "2", "--json"]
    assert main(argv + ["--threads", "8"]) == 0
    many = json.loads(capsys.readouterr().out)["totals"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["totals"] == many


@pytest.mark.parametrize("count", ["9", "100000", "1" + "0" * 400])
def test_train_threads_above_the_cap_are_refused_before_training(two_cores, capsys, tmp_path,
                                                                 count):
    from accelsim.cli import main

    recipe = ROOT / "models" / "lenet5_digits_dual.yaml"
    out = tmp_path / "run"
    assert main(["train", str(recipe), "-o", str(out), "--threads", count]) == 2
    line = _one_error_line(capsys)
    assert "--threads" in line and "more than the limit of 8" in line
    assert not out.exists()


def test_train_thread_choice_within_the_cap(two_cores):
    from accelsim.errors import AccelsimError
    from accelsim.train.cli import pick_threads

    assert pick_threads(8) == (8, "--threads")
    for bad in (0, -3):
        with pytest.raises(AccelsimError, match="--threads: expected a positive integer"):
            pick_threads(bad)
    with pytest.raises(AccelsimError, match="--threads: 9 threads is more than the limit of 8"):
        pick_threads(9)


# ================================================================ LLM folder fixes

def build_llm_folder(base: Path) -> Path:
    """A tiny randomly initialised Llama checkpoint folder with a word-level tokenizer."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    base.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2,
                                      num_key_value_heads=2, max_position_embeddings=64)
    transformers.LlamaForCausalLM(config).save_pretrained(base)
    vocab = {"[UNK]": 0, "[BOS]": 1, "[EOS]": 2, "hello": 3, "world": 4, "sparse": 5,
             "decode": 6, "tokens": 7}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]",
                                                bos_token="[BOS]", eos_token="[EOS]")
    fast.save_pretrained(base)
    return base


@pytest.fixture(scope="module")
def llm_folder(tmp_path_factory):
    pytest.importorskip("transformers")
    return build_llm_folder(tmp_path_factory.mktemp("llm") / "base")


def _edit_json(path: Path, **changes) -> None:
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def _rename_weight(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = data[8:8 + size].replace(b"v_proj.weight", b"v_proj.weiGht")
    (folder / "model.safetensors").write_bytes(data[:8] + header + data[8 + size:])


LLM_FIXES = {
    # config.json asks for a second block the checkpoint lacks: transformers initialised it at
    # random and loaded the rest, silently (fuzz: llm silent-wrong)
    "one-more-block": (lambda f: _edit_json(f / "config.json", num_hidden_layers=2),
                       "num_hidden_layers: 2 blocks, but the checkpoint holds the weights of 1"),
    # a million blocks: transformers built them for minutes (fuzz: hang)
    "million-blocks": (lambda f: _edit_json(f / "config.json", num_hidden_layers=10 ** 6),
                       "num_hidden_layers: 1,000,000 blocks"),
    # a mismatched size was allocated (here 2 GB) before transformers compared the shapes
    "huge-mlp": (lambda f: _edit_json(f / "config.json", intermediate_size=10 ** 7),  # [.., 10000000]
                 "10000000]"),
    # a weight renamed in the safetensors header: the real one re-initialised at random
    "renamed-weight": (_rename_weight, "does not match its config.json: weight"),
    # NaN activations were recorded as non-zeros (fuzz: silent-wrong, non-finite logits)
    "negative-eps": (lambda f: _edit_json(f / "config.json", rms_norm_eps=-0.5),
                     "computes non-finite values"),
    # a tokenizer setting of the wrong type failed inside the tokenizer (fuzz: traceback)
    "tokenizer-setting": (lambda f: _edit_json(f / "tokenizer_config.json", model_max_length="x"),
                          "its tokenizer cannot encode the prompt text"),
    # json.loads' RecursionError escaped (the CLI named no file)
    "deep-config": (lambda f: (f / "generation_config.json").write_text("[" * 100000 + "]" * 100000),
                    "generation_config.json: not a configuration: nested too deeply"),
}


@pytest.mark.parametrize("name", sorted(LLM_FIXES))
def test_llm_folder_refusals(llm_folder, tmp_path, name):
    import torch

    from accelsim.errors import AccelsimError
    from accelsim.trace import CaptureOptions
    from accelsim.trace.llm import capture_decoder, encode_text, load_decoder

    folder = tmp_path / "m"
    shutil.copytree(llm_folder, folder)
    edit, message = LLM_FIXES[name]
    edit(folder)
    start = time.perf_counter()
    with pytest.raises(AccelsimError) as info:
        model, tokenizer = load_decoder(folder)
        ids = encode_text("hello world", tokenizer, model.config.vocab_size)
        capture_decoder(model, torch.tensor([ids]), 1, CaptureOptions())
    text = str(info.value)
    assert message in text and "\n" not in text and str(folder) in text, text
    assert time.perf_counter() - start < 15


def test_llm_folder_still_loads(llm_folder, capfd):
    from accelsim.trace.llm import load_decoder

    model, tokenizer = load_decoder(llm_folder)
    assert tokenizer is not None and model.config.num_hidden_layers == 1
    assert "LOAD REPORT" not in capfd.readouterr().err


# ================================================================ mutation helpers

HOSTILE = ["020", "1:30", "yes", "off", "1e308", "-1e400", "-1", "0", ".nan", ".inf", "-.inf",
           "4611686018427387904", "1" + "0" * 400, "''", "[]", "{}", "null", "~", "true",
           "1_000", "0x10", "0o17", "2.5", "-0.0", "1e-320", "*undefined", "&a x",
           f"{PAYLOAD}:payload", f"!!python/object/apply:{PAYLOAD}.payload []",
           f"!!python/name:{PAYLOAD}.payload", "!!python/object/apply:os.system ['true']",
           "\"\\xff\"", "\"x\\ny\"", "[" * 100 + "]" * 100, "{a: {b: {c: {d: 1}}}}",
           "[1, [2, [3]]]"]
INSERTS = ["extends: missing.yaml", "<<: {a: 1}", "version: 1", "version: 2",
           "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
           "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
           "e: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]",
           "x: " + "[" * 5000 + "]" * 5000, "? [a]\n: b", "x: 1\nx: 2", "\t", "%YAML 1.1\n---",
           "--- \n---", f"model: {PAYLOAD}:payload", f"x: !!python/object/apply:{PAYLOAD}.p []"]


def mutate_bytes(rng: random.Random, data: bytes, lo: int = 0) -> bytes:
    """Flip bits, truncate, append or zero a run, at or after offset ``lo``."""
    kind = rng.choice(("flip", "flip", "flip", "truncate", "append", "zero-run"))
    data = bytearray(data)
    if not data:
        return bytes(rng.randrange(256) for _ in range(8))
    lo = min(lo, len(data) - 1)
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(lo, len(data))
            data[i] ^= rng.choice((1, 2, 4, 8, 16, 32, 64, 128, 255))
    elif kind == "truncate":
        del data[rng.randrange(lo, len(data)):]
    elif kind == "append":
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        i = rng.randrange(lo, len(data))
        data[i:i + rng.randint(1, 32)] = bytes(min(32, len(data) - i))
    return bytes(data)


def mutate_text(rng: random.Random, text: str, values: list[str] = ()) -> bytes:
    """A line or value edit of a YAML text (or a byte mutation)."""
    lines = text.splitlines()
    kind = rng.choice(("bytes", "value", "value", "value", "value", "delete", "duplicate",
                       "insert", "swap", "indent"))
    if kind == "bytes":
        return mutate_bytes(rng, text.encode())
    i = rng.randrange(len(lines))
    pool = list(HOSTILE) + list(values) * 3
    if kind == "value":
        line = lines[i]
        if ":" in line and not line.strip().startswith("- ["):
            key = line.split(":", 1)[0]
            lines[i] = f"{key}: {rng.choice(pool)}"
        elif "[" in line:   # a flow list: replace one item
            head, _, tail = line.partition("[")
            items = tail.rstrip("]").split(",")
            items[rng.randrange(len(items))] = " " + rng.choice(pool)
            lines[i] = head + "[" + ",".join(items) + "]"
        else:
            lines[i] = line + " " + rng.choice(pool)
    elif kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(rng.randrange(len(lines) + 1), lines[i])
    elif kind == "insert":
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(INSERTS))
    elif kind == "swap":
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = " " * rng.randint(1, 4) + lines[i]
    return ("\n".join(lines) + "\n").encode()


def leaves(node, path=()):
    if isinstance(node, dict):
        if not node:
            yield path
        for k, v in node.items():
            yield from leaves(v, path + (k,))
    elif isinstance(node, list):
        if not node:
            yield path
        for i, v in enumerate(node):
            yield from leaves(v, path + (i,))
    else:
        yield path


DEEP = "__fuzz3_deep__"
JSON_VALUES = [-1, 0, 1, 2, 7, -0.5, 1.5, 1e308, float("inf"), float("-inf"), float("nan"),
               2 ** 62, 10 ** 9, -(10 ** 9), 10 ** 30, None, True, False, "x", "", [], {}, [1, 2],
               {"a": 1}, DEEP, f"{PAYLOAD}.payload", f"{PAYLOAD}:payload"]


def mutate_tree(rng: random.Random, data, values: list = (), log: list | None = None) -> Any:
    """A structured edit of parsed JSON/YAML data: a leaf replaced (type swap, NaN/inf, huge,
    negative, deep nesting, a name of code), a key deleted, added or renamed, an entry
    duplicated or removed."""
    data = copy.deepcopy(data)
    paths = [p for p in leaves(data) if p]
    if not paths:
        return rng.choice(JSON_VALUES)
    path = rng.choice(paths)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    old = parent[key]
    kind = rng.choice(("leaf", "leaf", "leaf", "leaf", "delete", "add", "rename", "container"))
    choices = list(JSON_VALUES) + list(values) * 2
    if isinstance(old, (int, float)) and not isinstance(old, bool):
        choices += [old + 1, old - 1, old * 2, -old, old * 1000]
    if log is not None:
        log.append(f"{kind} {'.'.join(str(p) for p in path)}")
    if kind == "leaf":
        parent[key] = rng.choice(choices)
        if log is not None:
            log[-1] += f"={str(parent[key])[:40]}"
    elif kind == "delete":
        parent.pop(key) if isinstance(parent, dict) else parent.pop(key)
    elif kind == "add":
        if isinstance(parent, dict):
            parent[rng.choice(["unknown_key", "auto_map", "extends", "x" * 300, "__class__",
                               "version", "1"])] = rng.choice(choices)
        else:
            parent.insert(key, rng.choice(choices + [copy.deepcopy(old)]))
    elif kind == "rename" and isinstance(parent, dict):
        parent[str(key) + rng.choice(["_", "s", " ", "\u00e9"])] = parent.pop(key)
    else:   # the enclosing container swapped for another type
        holder = data
        for part in path[:-2]:
            holder = holder[part]
        if len(path) >= 2:
            holder[path[-2]] = rng.choice([list(parent.values()) if isinstance(parent, dict)
                                           else {str(i): v for i, v in enumerate(parent)},
                                           "x", 3, None])
        else:
            data = rng.choice([[data], "x", None, 3])
    return data


def dump_json(data) -> bytes:
    text = json.dumps(data, allow_nan=True)
    return text.replace(json.dumps(DEEP), "[" * 50000 + "]" * 50000).encode()


def dump_yaml(data) -> bytes:
    import yaml

    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True)
    return text.replace(DEEP, "[" * 3000 + "]" * 3000).encode()


def finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(finite(v) for v in value)
    return True


# ================================================================ snapshots (data loss)

def snapshot(paths) -> dict:
    """Type, content hash / link target / device of every node under ``paths`` (no link followed)."""
    out: dict = {}

    def visit(path: str, rel: str) -> None:
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            out[rel] = None
            return
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(mode):
            out[rel] = ("dir",)
            for name in sorted(os.listdir(path)):
                visit(os.path.join(path, name), f"{rel}/{name}")
        elif stat.S_ISREG(mode):
            with open(path, "rb") as fh:
                out[rel] = ("file", hashlib.sha256(fh.read()).hexdigest(), info.st_ino)
        else:
            out[rel] = ("node", stat.S_IFMT(mode), info.st_rdev, info.st_ino)

    for p in paths:
        visit(str(p), str(p))
    return out


# ================================================================ the planted code

PAYLOAD_CODE = textwrap.dedent("""
    import os
    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "PWNED"), "w").write("ran")
    def payload(*args, **kwargs):
        import torch
        return torch.nn.Identity()
    p = Model = Config = Tok = payload
""")

CLI_HOOK = textwrap.dedent(f"""
    import json, os, sys
    events = []
    def hook(event, args):
        if event == "import" and args and str(args[0]).split(".")[0] == "{PAYLOAD}":
            events.append(["import", str(args[0])])
        elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                       "os.startfile"):
            events.append([event, repr(args)[:200]])
    sys.addaudithook(hook)
    def dump():
        found = [["module", m] for m in sys.modules if m.split(".")[0] == "{PAYLOAD}"]
        with open(sys.argv[1], "w") as fh:
            json.dump(events + found, fh)
    import atexit
    atexit.register(dump)
    if os.environ.get("FUZZ3_STUB_CODESIGN"):
        import accelsim.codesign.run as run
        def stub(spec, *args, **kwargs):
            print("FUZZ3 SPEC LOADED", len(spec.points), len(spec.designs))
            raise SystemExit(0)
        run.run_codesign = stub
    from accelsim.cli import main
    sys.exit(main(sys.argv[2:]))
""")


class _Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise _Hang


_ARMED = [False]
_EVENTS: list = []


def _audit(event, args):
    if not _ARMED[0]:
        return
    if event == "import" and args and str(args[0]).split(".")[0] == PAYLOAD:
        _EVENTS.append(f"import {args[0]}")
    elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "os.startfile"):
        _EVENTS.append(f"{event} {repr(args)[:200]}")


@dataclass
class Case:
    """One mutant: how to run it, how to judge an accepted result, what it must not change."""
    run: Callable[[], Any]
    judge: Callable[[Any], tuple[str, str]]
    inputs: list = field(default_factory=list)
    argv: list | None = None
    env: dict = field(default_factory=dict)
    what: str = ""
    cli_judge: Callable[[int, str, str], tuple[str, str] | None] | None = None
    reset: Callable[[], None] | None = None   # rebuilds the scene before the CLI run
    cli_reads_all: bool = True   # False: the CLI command reads only part of what the API does


# ================================================================ the harness

class Harness:
    """Builds each class's unmutated inputs (lazily) and runs mutants of it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.payload_dir = self.folder / "payload"
        self.payload_dir.mkdir(parents=True, exist_ok=True)
        (self.payload_dir / f"{PAYLOAD}.py").write_text(PAYLOAD_CODE)
        self.marker = self.payload_dir / "PWNED"
        self.bin = self.folder / "bin"   # a planted Ghostscript: an EPS decoder would run it
        self.bin.mkdir(exist_ok=True)
        gs = self.bin / "gs"
        gs.write_text(f"#!/bin/sh\necho ran > {self.marker}\n")
        gs.chmod(0o755)
        if str(self.payload_dir) not in sys.path:
            sys.path.insert(0, str(self.payload_dir))
        os.environ["PATH"] = f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        sys.addaudithook(_audit)
        self.ready: set = set()

    # ------------------------------------------------------------- running one case
    def setup(self, kind: str) -> None:
        if kind not in self.ready:
            getattr(self, f"setup_{kind}")()
            self.ready.add(kind)

    def run(self, kind: str, index: int, seed: int, cli: bool) -> tuple[str, str]:
        self.setup(kind)
        rng = random.Random(f"{seed}-{kind}-{index}")
        case = getattr(self, f"case_{kind}")(rng, index)
        outcome, detail = self.in_process(case)
        if cli and case.argv is not None and outcome not in BAD:
            cli_outcome, cli_detail = self.in_cli(case)
            if cli_outcome == "ok" and outcome == "one-line-error" and not case.cli_reads_all:
                cli_outcome, cli_detail = outcome, f"{detail} (the CLI does not read it)"
            outcome, detail = self.reconcile(outcome, detail, cli_outcome, cli_detail)
            detail = f"[cli] {detail}"
        return outcome, f"{case.what}: {detail}"[:400]

    def _exec_check(self) -> str | None:
        found = [m for m in sys.modules if m.split(".")[0] == PAYLOAD]
        if self.marker.exists() or found or _EVENTS:
            text = f"marker={self.marker.exists()} modules={found} events={_EVENTS[:3]}"
            for m in found:
                sys.modules.pop(m, None)
            self.marker.unlink(missing_ok=True)
            _EVENTS.clear()
            return text
        return None

    def in_process(self, case: Case) -> tuple[str, str]:
        before = snapshot(case.inputs)
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
        _ARMED[0] = True
        error = None
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                result = case.run()
        except _Hang:
            error = ("hang", f"no answer in {TIMEOUT:.0f} s")
        except BaseException as exc:  # noqa: BLE001 - every exception is classified
            from accelsim.errors import AccelsimError

            text = str(exc)
            if isinstance(exc, AccelsimError) and text.strip() and "\n" not in text:
                error = ("one-line-error", text[:200])
            elif isinstance(exc, AccelsimError):
                error = ("traceback", f"multi-line AccelsimError: {text[:200]!r}")
            else:
                import traceback

                where = traceback.extract_tb(exc.__traceback__)[-1]
                error = ("traceback", f"{type(exc).__name__}: {text[:160]} "
                                      f"({Path(where.filename).name}:{where.lineno})")
        finally:
            _ARMED[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        executed = self._exec_check()
        if executed:
            return "code-execution", executed
        after = snapshot(case.inputs)
        if after != before:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            return "data-loss", f"input changed: {changed[:3]}"
        if error is not None:
            return error
        try:
            return case.judge(result)
        except _Hang:
            return "hang", "judging the accepted result took too long"

    def in_cli(self, case: Case) -> tuple[str, str]:
        events = self.folder / "cli_events.json"
        events.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(self.payload_dir)]),
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", COLUMNS="100", **case.env)
        if case.reset is not None:
            case.reset()
        before = snapshot(case.inputs)
        try:
            done = subprocess.run([sys.executable, "-c", CLI_HOOK, str(events), *case.argv],
                                  cwd=self.folder, env=env, capture_output=True, text=True,
                                  errors="replace", timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            return "hang", f"CLI ran past {CLI_TIMEOUT:.0f} s"
        recorded = json.loads(events.read_text()) if events.is_file() else []
        if recorded or self.marker.exists():
            self._exec_check()
            return "code-execution", f"CLI: {recorded[:3]}"
        if snapshot(case.inputs) != before:
            return "data-loss", "CLI changed an input"
        if done.returncode < 0:
            return "crash", f"CLI killed by signal {-done.returncode}"
        if case.cli_judge is not None:
            judged = case.cli_judge(done.returncode, done.stdout, done.stderr)
            if judged is not None:
                return judged
        return cli_outcome(done.returncode, done.stderr)

    @staticmethod
    def reconcile(api: str, api_detail: str, cli: str, cli_detail: str) -> tuple[str, str]:
        if cli in BAD:
            return cli, cli_detail
        if cli == "ok":
            if api == "one-line-error":
                return "silent-wrong", f"the CLI accepted what the API refused ({api_detail})"
            return api, api_detail
        return cli, cli_detail   # a one-line CLI error (the CLI may check more than the API)

    # ============================================================ the classifier's own checks
    def setup_selftest(self):
        self.self_file = self.folder / "selftest.txt"
        self.self_file.write_text("keep\n")

    def case_selftest(self, rng: random.Random, index: int) -> Case:
        """Positive controls: each index provokes one outcome (see test_classifier_*)."""
        import importlib

        from accelsim.errors import AccelsimError

        def crash():
            import ctypes
            ctypes.string_at(0)   # SIGSEGV

        def stall():   # an alarm that never arrives: the supervisor must notice
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
            time.sleep(3600)

        def multi():
            raise AccelsimError("two\nlines")

        behaviours = [
            ("ok-identical", lambda: 1),
            ("one-line-error", lambda: (_ for _ in ()).throw(AccelsimError("selftest.txt: bad"))),
            ("traceback", lambda: {}["missing"]),
            ("traceback", multi),
            ("code-execution", lambda: importlib.import_module(PAYLOAD)),
            ("code-execution", lambda: subprocess.run(["true"], check=False)),
            ("data-loss", lambda: self.self_file.write_text("changed\n")),
            ("hang", lambda: time.sleep(3600)),
            ("silent-wrong", lambda: 2),
            ("crash", crash),
            ("hang", stall),
        ]
        want, run = behaviours[index]

        def judge(result):
            return ("ok-identical", "") if result == 1 else ("silent-wrong", f"got {result}")

        if want == "data-loss":
            self.self_file.write_text("keep\n")
        return Case(run, judge, [self.self_file], what=f"expect {want}")

    # ============================================================ class: mapping
    def setup_mapping(self):
        from accelsim.hw import load_hw
        from accelsim.map.fixed import load_mappings, save_mappings
        from accelsim.sim.loopnest import map_layer, mapping_text
        from accelsim.trace import open_trace

        self.map_dir = self.folder / "mapping"
        self.map_dir.mkdir(exist_ok=True)
        self.map_hw = load_hw(EYERISS)
        self.map_trace = open_trace(TRACE)
        chosen = {layer.name: map_layer(layer, self.map_hw).mapping for layer in self.map_trace}
        base = self.map_dir / "base.yaml"
        save_mappings(base, chosen)
        self.map_text = base.read_text()
        import yaml

        self.map_raw = yaml.safe_load(self.map_text)
        self.map_texts = {name: mapping_text(m) for name, m in chosen.items()}
        self.map_base = self._map_result(load_mappings(base))
        self.map_cli = {}   # argv kind -> baseline totals

    def _map_result(self, mappings):
        from accelsim.sim import simulate

        result = simulate(self.map_trace, self.map_hw, samples=1, mappings=mappings)
        texts = {r["layer"]: r["mapping"] for r in result.rows}
        totals = {k: v for k, v in result.totals.items() if isinstance(v, (int, float))}
        return texts, totals

    def case_mapping(self, rng: random.Random, index: int) -> Case:
        from accelsim.map.fixed import load_mappings, save_mappings
        from accelsim.sim.loopnest import mapping_text

        path = self.map_dir / f"m{index % 2}.yaml"
        layers = list(self.map_raw["layers"])
        levels = [lv["level"] for lv in self.map_raw["layers"][layers[0]]]
        values = ["P", "Q", "R", "S", "C", "K", "N", "X", "Y", "Z", "glb", "DRAM", "psum_spad",
                  "ifmap_spad", "1", "3", "5", "14", "28", "-2", "2147483648", "conv9", "fc1",
                  "[K, 2]", "[[K, 2, X]]", "[K, 2, Y]"]
        kind = rng.choice(("text", "text", "tree", "tree", "edit", "edit", "edit"))
        what = kind
        if kind == "text":
            data = mutate_text(rng, self.map_text, values)
        elif kind == "tree":
            data = dump_yaml(mutate_tree(rng, self.map_raw, values[:8] + [["K", 2], ["C", 3, "X"]]))
        else:
            raw = copy.deepcopy(self.map_raw)
            name = rng.choice(layers)
            nest = raw["layers"][name]
            lv = rng.choice(nest)
            loops = [lp for lvl in nest for part in ("temporal", "spatial") for lp in lvl[part]]
            edit = rng.choice(("factor", "dim", "move", "drop-loop", "dup-loop", "drop-level",
                               "rename-level", "reorder", "rename-layer", "drop-layer", "axis",
                               "to-spatial", "swap-layers", "version"))
            what = f"edit {edit} {name}"
            if edit == "factor" and loops:
                lp = rng.choice(loops)
                lp[1] = rng.choice([1, 2, 3, lp[1] * 2, max(1, lp[1] // 2), lp[1] + 1, 0, -lp[1],
                                    2 ** 31, 1.5, True, "2", None])
            elif edit == "dim" and loops:
                rng.choice(loops)[0] = rng.choice(["P", "Q", "R", "S", "C", "K", "N", "Z", "k"])
            elif edit == "move" and loops:
                src = rng.choice([lvl for lvl in nest if lvl["temporal"]] or [lv])
                if src["temporal"]:
                    moved = src["temporal"].pop(rng.randrange(len(src["temporal"])))
                    rng.choice(nest)["temporal"].insert(0, moved)
            elif edit == "drop-loop" and loops:
                holder = rng.choice([lvl[p] for lvl in nest for p in ("temporal", "spatial")
                                     if lvl[p]] or [[]])
                if holder:
                    holder.pop(rng.randrange(len(holder)))
            elif edit == "dup-loop" and loops:
                holder = rng.choice([lvl[p] for lvl in nest for p in ("temporal", "spatial")
                                     if lvl[p]] or [[]])
                if holder:
                    holder.append(list(holder[0]))
            elif edit == "drop-level":
                nest.remove(lv)
            elif edit == "rename-level":
                lv["level"] = rng.choice(levels + ["GLB", "dram", "spad", "", "glb "])
            elif edit == "reorder":
                rng.shuffle(nest)
            elif edit == "rename-layer":
                raw["layers"][rng.choice(["conv9", "CONV1", "conv1 ", "", "fc1.weight"])] = \
                    raw["layers"].pop(name)
            elif edit == "drop-layer":
                raw["layers"].pop(name)
                if not raw["layers"]:
                    raw["layers"] = {}
            elif edit == "axis":
                spatial = [lp for lvl in nest for lp in lvl["spatial"]]
                if spatial:
                    rng.choice(spatial)[2] = rng.choice(["X", "Y", "Z", "x", 0])
            elif edit == "to-spatial":
                src = [lvl for lvl in nest if lvl["temporal"]]
                if src:
                    lvl = rng.choice(src)
                    lp = lvl["temporal"].pop()
                    rng.choice(nest)["spatial"].append(lp + [rng.choice(["X", "Y"])])
            elif edit == "swap-layers" and len(layers) > 1:
                other = rng.choice([n for n in layers if n != name])
                raw["layers"][name], raw["layers"][other] = raw["layers"][other], raw["layers"][name]
            else:
                raw["version"] = rng.choice([2, 0, "1", 1.0, None])
            data = dump_yaml(raw)
        path.write_bytes(data)

        def run():
            maps = load_mappings(path)
            return maps, self._map_result(maps)

        def judge(result):
            maps, (texts, totals) = result
            for name, text in texts.items():
                want = mapping_text(maps[name]) if name in maps else self.map_texts[name]
                if text != want:
                    return "silent-wrong", f"layer {name} simulated with {text!r}, file says {want!r}"
            if not finite(totals):
                return "silent-wrong", "non-finite totals"
            if (texts, totals) == self.map_base:
                return "ok-identical", ""
            canonical = self.map_dir / "canonical.yaml"
            save_mappings(canonical, maps)
            if self._map_result(load_mappings(canonical)) != (texts, totals):
                return "silent-wrong", "the canonical form of the accepted mappings simulates differently"
            return "ok-other", ""

        verb = rng.choice(("simulate", "map"))
        if verb == "simulate":
            argv = ["simulate", "--trace", str(TRACE), "--hw", str(EYERISS), "--mappings", str(path),
                    "--samples", "1", "--json"]
        else:
            argv = ["map", "--trace", str(TRACE), "--hw", str(EYERISS), "--mappings", str(path),
                    "--json"]
        return Case(run, judge, [path], argv, what=what)

    # ============================================================ class: codesign
    def setup_codesign(self):
        from accelsim.codesign.spec import load_codesign_spec

        self.cd_dir = self.folder / "codesign"
        (self.cd_dir / "hw").mkdir(parents=True, exist_ok=True)
        for name in ("sparten_like", "cnvlutin_like", "eyeriss_v1", "edge_lowpower"):
            shutil.copy(ROOT / "hw_configs" / f"{name}.yaml", self.cd_dir / "hw" / f"{name}.yaml")
        self.cd_recipe = (ROOT / "models" / "lenet5_digits_codesign.yaml").read_text()
        shipped = (ROOT / "hw_configs" / "codesign" / "lenet5.yaml").read_text()
        shipped = shipped.replace("../../models/lenet5_digits_codesign.yaml", "m_recipe.yaml")
        shipped = shipped.replace("../", "hw/")
        axes = textwrap.dedent("""\
            version: 1
            name: fuzz_axes
            recipe: m_recipe.yaml
            training:
              penalty: [tl1, l1]
              lambda: [0.2]
              tl1_b: [0.5, 1.0]
              prune_sparsity: [0.6]
              prune_schedule: [cubic, oneshot]
              model: [lenet5]
              seed: [0, 3]
            hardware:
              designs: [hw/sparten_like.yaml, hw/eyeriss_v1.yaml]
              axes:
                pe_array.rows:
                  values: [8, 16]
                technology.clock_mhz:
                  random: {low: 100, high: 900, count: 2}
              constraints:
                max_pes: 4096
              seed: 3
            fidelity: cycle
            samples: 16
            objectives:
              - [val_accuracy, energy_pj]
              - [val_accuracy, pe_array.rows]
            """)
        self.cd_specs = [shipped, axes]
        self.cd_base = []
        for i, text in enumerate(self.cd_specs):
            (self.cd_dir / "m_recipe.yaml").write_text(self.cd_recipe)
            (self.cd_dir / "m.yaml").write_text(text)
            self.cd_base.append(self._cd_result(load_codesign_spec(self.cd_dir / "m.yaml")))
        assert len(self.cd_base[1][3]) == 12 and len(self.cd_base[1][5]) == 8, self.cd_base[1]

    def _cd_result(self, spec):
        points = [(json.dumps(p.params, sort_keys=True), p.recipe.sha256) for p in spec.points]
        designs = [(d.design, json.dumps(d.params, sort_keys=True),
                    d.point.hw.hash if d.point.hw else None) for d in spec.designs]
        return (spec.name, spec.fidelity, spec.samples, points,
                [list(o) for o in spec.objectives], designs)

    def _cd_problem(self, spec) -> str | None:
        """Why an accepted spec's points do not hold what the spec says, or None."""
        for d in spec.designs:
            if d.point.hw is None:
                return f"design {d.label} has no hardware"
            for key, value in d.params.items():
                node = d.point.hw
                for part in key.split("."):
                    node = getattr(node, part, None)
                if node is not None and node != value:
                    return f"design {d.label}: {key} is {node!r}, the axis says {value!r}"
            if not finite(d.params):
                return f"design {d.label}: non-finite axis value"
        for p in spec.points:
            raw, params = p.recipe.raw, p.params
            if not finite(params) or not finite(raw):
                return f"point {params}: non-finite value"
            stages = raw.get("stages") or []
            pens = [s["activation_penalty"] for s in stages if s.get("activation_penalty")]
            prunes = [s["prune"] for s in stages if s.get("prune")]
            for name, holders, key in (("penalty", pens, "type"), ("lambda", pens, "lambda"),
                                       ("prune_sparsity", prunes, "sparsity"),
                                       ("prune_schedule", prunes, "schedule")):
                if params.get(name) is not None and any(h.get(key) != params[name] for h in holders):
                    return f"point {params}: a stage's {key} is not the axis value {params[name]!r}"
            if params.get("tl1_b") is not None and any(h.get("type") == "tl1" and
                                                       h.get("b") != params["tl1_b"] for h in pens):
                return f"point {params}: tl1 b is not the axis value"
            for name in ("model", "seed"):
                if params.get(name) is not None and raw.get(name) != params[name]:
                    return f"point {params}: {name} is {raw.get(name)!r}"
        return None

    def case_codesign(self, rng: random.Random, index: int) -> Case:
        from accelsim.codesign.spec import load_codesign_dict, load_codesign_spec

        which = rng.randrange(len(self.cd_specs))
        spec_text, recipe_text = self.cd_specs[which], self.cd_recipe
        values = ["l1", "tl1", "hoyer_square", "oneshot", "cubic", "lenet5", "resnet18_cifar",
                  "0.5", "1.0", "fast", "cycle", "hw/missing.yaml", "../../../etc/passwd",
                  "/dev/zero", "hw/sparten_like.yaml", "[val_accuracy]", "[cycles, cycles]",
                  "[test_accuracy, cycles]", "{values: [1, 2]}", "{range: {start: 1, stop: 1e9}}",
                  "{random: {low: 1, high: 2, count: 1000000}}"]
        target = rng.choice(("spec", "spec", "spec", "recipe"))
        kind = rng.choice(("text", "text", "tree"))
        import yaml

        if target == "spec":
            data = (mutate_text(rng, spec_text, values) if kind == "text"
                    else dump_yaml(mutate_tree(rng, yaml.safe_load(spec_text), values[:9])))
            recipe = recipe_text.encode()
        else:
            recipe = (mutate_text(rng, recipe_text, values) if kind == "text"
                      else dump_yaml(mutate_tree(rng, yaml.safe_load(recipe_text), values[:9])))
            data = spec_text.encode()
        spec_path = self.cd_dir / "m.yaml"
        spec_path.write_bytes(data)
        (self.cd_dir / "m_recipe.yaml").write_bytes(recipe)

        def run():
            return load_codesign_spec(spec_path)

        def judge(spec):
            problem = self._cd_problem(spec)
            if problem:
                return "silent-wrong", problem
            got = self._cd_result(spec)
            if got == self.cd_base[which]:
                return "ok-identical", ""
            raw = {"version": spec.version, "name": spec.name, "description": spec.description,
                   "recipe": spec.recipe,
                   "training": {k: list(v) for k, v in spec.training.given().items()},
                   "hardware": {"designs": list(spec.hardware.designs),
                                "axes": copy.deepcopy(spec.hardware.axes),
                                "constraints": copy.deepcopy(spec.hardware.constraints),
                                "seed": spec.hardware.seed},
                   "fidelity": spec.fidelity, "samples": spec.samples,
                   "objectives": [list(o) for o in spec.objectives]}
            again = load_codesign_dict(raw, str(spec_path), root=self.cd_dir)
            if self._cd_result(again) != got:
                return "silent-wrong", "the canonical form of the accepted spec loads differently"
            return "ok-other", ""

        def cli_judge(rc, out, err):
            if rc == 0 and "FUZZ3 SPEC LOADED" in out:
                return "ok", ""
            return None

        argv = ["codesign", str(spec_path), "-o", str(self.cd_dir / "never"), "-q"]
        return Case(run, judge, [spec_path, self.cd_dir / "m_recipe.yaml"], argv,
                    env={"FUZZ3_STUB_CODESIGN": "1"}, what=f"{target} {kind} (spec {which})",
                    cli_judge=cli_judge)

    # ============================================================ class: llm
    LLM_TEXT = "hello world sparse decode tokens"

    def setup_llm(self):
        self.llm_dir = self.folder / "llm"
        base = build_llm_folder(self.llm_dir / "base")
        self.llm_base_dir = base
        self.llm_files = sorted(p.name for p in base.iterdir())
        assert "model.safetensors" in self.llm_files and "tokenizer.json" in self.llm_files
        (self.llm_dir / "prompt.txt").write_text(self.LLM_TEXT + "\n")
        self.llm_base = self._llm_result(base)

    def _llm_result(self, folder: Path):
        import torch

        from accelsim.trace import CaptureOptions
        from accelsim.trace.llm import capture_decoder, encode_text, load_decoder

        model, tokenizer = load_decoder(folder)
        vocab = getattr(model.config, "vocab_size", None)
        ids = encode_text(self.LLM_TEXT, tokenizer, vocab)
        prompts = torch.tensor([ids], dtype=torch.long)
        data = capture_decoder(model, prompts, 1, CaptureOptions())
        masks = [(layer.name, int(layer.act_mask().sum()), int(layer.weight_mask().sum()))
                 for layer in data.layers]
        with torch.no_grad():
            logits = model(input_ids=prompts).logits.double().reshape(-1).tolist()
        return model, tokenizer, (ids, masks, logits)

    def _llm_problem(self, folder: Path, model) -> str | None:
        """A checkpoint tensor not loaded as stored, a model tensor not from the checkpoint."""
        import torch
        from safetensors.torch import load_file

        try:
            stored = load_file(str(folder / "model.safetensors"))
        except Exception as exc:  # noqa: BLE001
            return f"model.safetensors does not load ({type(exc).__name__}), yet the folder did"
        state = model.state_dict()
        for key, tensor in stored.items():
            if key not in state:
                return f"checkpoint tensor {key} is not used"
            here = state[key]
            if here.shape != tensor.shape or not torch.equal(here, tensor.to(here.dtype)):
                return f"checkpoint tensor {key} was not loaded as stored"
        missing = [k for k in state if k not in stored]
        if missing:
            return f"model tensor {missing[0]} is not in the checkpoint (re-initialised)"
        if not all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point()):
            return "non-finite weights accepted"
        return None

    def case_llm(self, rng: random.Random, index: int) -> Case:
        folder = self.llm_dir / "m"
        if folder.exists() or folder.is_symlink():
            shutil.rmtree(folder)
        shutil.copytree(self.llm_base_dir, folder)
        configs = ["config.json", "generation_config.json", "tokenizer_config.json",
                   "tokenizer.json"]
        hf_values = ["gelu", "relu", "float16", "bfloat16", "float64", "mistral", "gpt2", "llama",
                     "LlamaForCausalLM", "GPT2LMHeadModel", "flash_attention_2", "eager",
                     {"AutoModelForCausalLM": f"{PAYLOAD}.Model"}, {"rope_type": "linear"},
                     {"quant_method": "bitsandbytes", "load_in_4bit": True},
                     "PreTrainedTokenizerFast", "LlamaTokenizerFast", f"{PAYLOAD}.Tok",
                     "../../../etc/passwd", 10 ** 6, 2, 3, 4, 8, 1e-300, 1e300]
        kind = rng.choice(("config", "config", "config", "config-bytes", "config-size",
                           "tokenizer", "tokenizer", "weights-header", "weights-data",
                           "weights-bytes", "file", "code"))
        what = kind
        if kind == "config-size":   # the architecture's sizes, which the weights must match
            raw = json.loads((folder / "config.json").read_text())
            key = rng.choice(["num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size",
                              "num_attention_heads", "num_key_value_heads", "head_dim",
                              "max_position_embeddings", "tie_word_embeddings", "attention_bias",
                              "mlp_bias", "rms_norm_eps"])
            old = raw.get(key)
            pool = [0, 1, 2, 3, 4, 64, -1, 10 ** 6, 10 ** 12, 2.5, True, False, None, "8"]
            if isinstance(old, (int, float)) and not isinstance(old, bool):
                pool += [old + 1, old - 1, old * 2, old // 2]
            raw[key] = rng.choice(pool)
            (folder / "config.json").write_text(json.dumps(raw))
            what = f"config {key}={raw[key]!r}"
        elif kind in ("config", "tokenizer"):
            name = (rng.choice(configs[:2] + ["config.json"]) if kind == "config"
                    else rng.choice(configs[2:]))
            raw = json.loads((folder / name).read_text())
            (folder / name).write_bytes(dump_json(mutate_tree(rng, raw, hf_values)))
            what = f"{kind} {name}"
        elif kind == "config-bytes":
            name = rng.choice(configs)
            (folder / name).write_bytes(mutate_bytes(rng, (folder / name).read_bytes()))
            what = f"bytes {name}"
        elif kind.startswith("weights"):
            path = folder / "model.safetensors"
            data = path.read_bytes()
            size = struct.unpack("<Q", data[:8])[0]
            if kind == "weights-header":
                header = json.loads(data[8:8 + size])
                header = mutate_tree(rng, header, ["F16", "F64", "I64", "BOOL", [16, 16],
                                                   [300, 16, 1], [0, 4], [0, 10 ** 12]])
                text = dump_json(header)
                data = struct.pack("<Q", len(text)) + text + data[8 + size:]
            elif kind == "weights-data":
                data = mutate_bytes(rng, data, lo=8 + size)
            else:
                data = mutate_bytes(rng, data)
            path.write_bytes(data)
        elif kind == "file":
            name = rng.choice(self.llm_files)
            path = folder / name
            action = rng.choice(("delete", "fifo", "dir", "link-outside", "dev-zero", "empty",
                                 "swap-with-config", "hardlink"))
            what = f"file {action} {name}"
            path.unlink()
            if action == "fifo":
                os.mkfifo(path)
            elif action == "dir":
                path.mkdir()
            elif action == "link-outside":
                path.symlink_to(self.llm_base_dir / name)
            elif action == "dev-zero":
                path.symlink_to("/dev/zero")
            elif action == "empty":
                path.write_bytes(b"")
            elif action == "swap-with-config":
                shutil.copy(self.llm_base_dir / rng.choice(configs), path)
            elif action == "hardlink":
                os.link(self.llm_base_dir / name, path)
        else:   # code: a module in the folder, named by auto_map, a tokenizer class or a pickle
            (folder / f"{PAYLOAD}.py").write_text(PAYLOAD_CODE)
            action = rng.choice(("auto_map", "tokenizer_class", "pickle-weights", "custom"))
            what = f"code {action}"
            if action == "auto_map":
                name = rng.choice(configs[:3])
                raw = json.loads((folder / name).read_text())
                raw["auto_map"] = {"AutoConfig": f"{PAYLOAD}.Config",
                                   "AutoModelForCausalLM": f"{PAYLOAD}.Model",
                                   "AutoTokenizer": [f"{PAYLOAD}.Tok", None]}
                (folder / name).write_text(json.dumps(raw))
            elif action == "tokenizer_class":
                raw = json.loads((folder / "tokenizer_config.json").read_text())
                raw["tokenizer_class"] = rng.choice([f"{PAYLOAD}.Tok", "Fuzz3PayloadTokenizer"])
                (folder / "tokenizer_config.json").write_text(json.dumps(raw))
            elif action == "pickle-weights":
                import pickle

                class Evil:
                    def __reduce__(self):
                        return (__import__, (PAYLOAD,))

                (folder / "model.safetensors").unlink()
                (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"w": Evil()}))
            else:
                raw = json.loads((folder / "config.json").read_text())
                raw["custom_pipelines"] = {"text-generation": {"impl": f"{PAYLOAD}.Model"}}
                raw["model_type"] = rng.choice(["llama", PAYLOAD])
                (folder / "config.json").write_text(json.dumps(raw))

        def run():
            return self._llm_result(folder)

        def judge(result):
            model, tokenizer, got = result
            problem = self._llm_problem(folder, model)
            if problem:
                return "silent-wrong", problem
            if not finite(got[2]):
                return "silent-wrong", "non-finite logits"
            if got == self.llm_base[2]:
                return "ok-identical", ""
            if self._llm_result(folder)[2] != got:
                return "silent-wrong", "loading the accepted folder again gives another result"
            return "ok-other", ""

        argv = ["trace", "capture", "--model", str(folder), "--prompt-file",
                str(self.llm_dir / "prompt.txt"), "--samples", "1", "--decode-tokens", "1",
                "-o", str(self.llm_dir / "out.trace")]
        return Case(run, judge, [folder, self.llm_base_dir], argv, what=what)

    # ============================================================ class: images
    def setup_images(self):
        import numpy as np
        from PIL import Image

        self.img_dir = self.folder / "images"
        base = self.img_dir / "base"
        rng = np.random.default_rng(0)
        self.img_originals = {}   # sha256 of the bytes -> relative path in the base tree
        for split in ("train", "val"):
            for cls in ("ant", "bee"):
                d = base / split / cls
                d.mkdir(parents=True, exist_ok=True)
                shapes = [(12, 10), (9, 13)] + ([(10, 10)] if split == "train" else [])
                for n, (h, w) in enumerate(shapes):
                    pixels = (rng.random((h, w, 3)) * 255).astype("uint8")
                    name = f"{'abc'[n]}.{'png' if n != 1 else 'jpg'}"
                    fmt = "PNG" if name.endswith("png") else "JPEG"
                    Image.fromarray(pixels).save(d / name, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        self.img_base_dir = base
        # a decompression bomb (9000 x 9000 1-bit: 81 M pixels in a few KiB) and a 1:40 strip
        buf = io.BytesIO()
        Image.new("1", (9000, 9000)).save(buf, "PNG")
        self.img_bomb = buf.getvalue()
        buf = io.BytesIO()
        Image.new("RGB", (2, 80), (10, 20, 30)).save(buf, "PNG")
        self.img_strip = buf.getvalue()
        others = {}
        for fmt in ("GIF", "BMP", "TIFF", "WEBP", "PPM"):
            buf = io.BytesIO()
            try:
                Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, fmt)
            except (KeyError, OSError):
                continue
            others[fmt] = buf.getvalue()
        others["EPS"] = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n%%EOF\n"
        others["SVG"] = b"<svg xmlns='http://www.w3.org/2000/svg' width='8' height='8'/>"
        self.img_others = others
        self.img_spec = "imagenet:{root},crop=4,resize=6"
        self.img_base = self._img_result(base, self.img_spec)
        self.img_by_content = {}   # sha256 of an original file's bytes -> its pixels' digest
        for p in base.rglob("*"):
            if p.is_file():
                rel = str(p.relative_to(base))
                self.img_by_content[hashlib.sha256(p.read_bytes()).hexdigest()] = \
                    self.img_base[rel.split("/")[0]][1][rel][1]

    @staticmethod
    def _img_result(root: Path, spec: str):
        from accelsim.datasets import load_dataset

        out = {}
        for train in (True, False):
            ds = load_dataset(spec.format(root=root), train=train)
            x, y = ds.batch(list(range(len(ds))))
            rows = {}
            for i, path in enumerate(ds.files):
                rel = str(Path(path).relative_to(root))
                rows[rel] = (int(y[i]), hashlib.sha256(x[i].numpy().tobytes()).hexdigest(),
                             bool(x[i].isfinite().all()))
            out["train" if train else "val"] = (list(ds.classes), rows)
        return out

    @staticmethod
    def _img_expected(root: Path, split: str, classes: list | None):
        """The documented listing of ``root/split``: (classes, {relative file: label}) or None
        where the loader must refuse."""
        folder = root / split
        if not folder.is_dir():
            return None
        try:
            found = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
        except OSError:
            return None
        if not found:
            return None
        classes = found if classes is None else classes
        index = {n: i for i, n in enumerate(classes)}
        files = {}
        for name in found:
            if name not in index:
                return None
            try:
                images = [e.name for e in os.scandir(folder / name) if e.is_file()
                          and not e.name.startswith(".")
                          and e.name.lower().endswith((".jpg", ".jpeg", ".png"))]
            except OSError:
                return None
            if not images and split == "train":
                return None
            for image in images:
                files[f"{split}/{name}/{image}"] = index[name]
        return (classes, files) if files else None

    def case_images(self, rng: random.Random, index: int) -> Case:
        from PIL import Image

        root = self.img_dir / "m"
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(self.img_base_dir, root, symlinks=True)
        spec = self.img_spec
        images = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        target = rng.choice(images)
        path = root / target
        legit = set()     # relative files whose pixels may legitimately change
        kind = rng.choice(("bytes", "bytes", "bytes", "header", "content", "name", "node", "tree",
                           "spec"))
        what = kind
        split = target.split("/")[0]
        if kind == "bytes":
            data = path.read_bytes()
            path.write_bytes(mutate_bytes(rng, data) if rng.random() < 0.9 else b"")
            if target.endswith(".jpg"):
                legit.add(target)   # JPEG has no checksum: other pixels may decode
            what = f"bytes {target}"
        elif kind == "header":   # PNG IHDR width/height, re-checksummed
            if target.endswith(".png"):
                data = bytearray(path.read_bytes())
                at = 16 + 4 * rng.randrange(2)
                value = rng.choice([0, 1, 2, 10 ** 5, 2 ** 31 - 1, 2 ** 32 - 1, 65535, 9000])
                data[at:at + 4] = struct.pack(">I", value)
                data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
                path.write_bytes(bytes(data))
                legit.add(target)   # re-checksummed: a consistent edit may decode other pixels
                what = f"IHDR {'wh'[(at - 16) // 4]}={value} {target}"
            else:   # JPEG SOF0 height/width
                data = bytearray(path.read_bytes())
                sof = data.find(b"\xff\xc0")
                if sof > 0:
                    at = sof + 5 + 2 * rng.randrange(2)
                    data[at:at + 2] = struct.pack(">H", rng.choice([0, 1, 65535, 9000]))
                path.write_bytes(bytes(data))
                legit.add(target)
                what = f"SOF {target}"
        elif kind == "content":
            choice = rng.choice(("bomb", "strip", "mode", "mode", "other", "swap-format"))
            what = f"content {choice} {target}"
            if choice == "bomb":
                path.write_bytes(self.img_bomb)
            elif choice == "strip":
                path.write_bytes(self.img_strip)
            elif choice == "mode":
                with Image.open(path) as im:
                    im = im.convert(rng.choice(["L", "RGBA", "P", "I;16", "1", "CMYK", "LA"]))
                    try:
                        im.save(path, "PNG" if target.endswith(".png") else "JPEG")
                    except OSError:
                        im.convert("RGB").save(path, "PNG" if target.endswith(".png") else "JPEG")
                legit.add(target)
            elif choice == "other":
                fmt = rng.choice(sorted(self.img_others))
                path.write_bytes(self.img_others[fmt])
                what += f" {fmt}"
            else:   # a JPEG named .png or a PNG named .jpg: same pixels
                other = rng.choice([i for i in images if i.rsplit(".", 1)[1] != target.rsplit(".", 1)[1]])
                shutil.copy(root / other, path)
                legit.add(target)
        elif kind == "name":
            new = rng.choice([".hidden.png", "UPPER.PNG", "x.JPEG", "x.jpeg", "noext", "x.gif",
                              "x.png.txt", "\u00fcn\u00efc\u00f8d\u00e9.png", "new\nline.png",
                              "sp ace,comma.png", "a" * 240 + ".png", "-dash.png", "x.png "])
            dest = path.parent / new
            path.rename(dest)
            what = f"rename {target} -> {new!r}"
        elif kind == "node":
            choice = rng.choice(("dir", "fifo", "link", "dangling", "dev-zero", "loop", "hardlink",
                                 "link-dir"))
            what = f"node {choice} {target}"
            path.unlink()
            if choice == "dir":
                path.mkdir()
            elif choice == "fifo":
                os.mkfifo(path)
            elif choice == "link":
                path.symlink_to(self.img_base_dir / target)
            elif choice == "dangling":
                path.symlink_to(root / "nowhere.png")
            elif choice == "dev-zero":
                path.symlink_to("/dev/zero")
            elif choice == "loop":
                path.symlink_to(path)
            elif choice == "hardlink":
                os.link(self.img_base_dir / target, path)
            else:
                path.symlink_to(self.img_base_dir / "train")
        elif kind == "tree":
            choice = rng.choice(("drop-split", "drop-class", "empty-class", "new-val-class",
                                 "hidden-class", "link-class", "file-in-split", "rename-class",
                                 "class-is-file", "split-is-link", "class-loop"))
            what = f"tree {choice}"
            split = rng.choice(("train", "val"))
            cls = rng.choice(("ant", "bee"))
            if choice == "drop-split":
                shutil.rmtree(root / split)
            elif choice == "drop-class":
                shutil.rmtree(root / split / cls)
            elif choice == "empty-class":
                for p in (root / split / cls).iterdir():
                    p.unlink()
            elif choice == "new-val-class":
                shutil.copytree(root / "val" / cls, root / "val" / "cow")
            elif choice == "hidden-class":
                (root / split / cls).rename(root / split / f".{cls}")
            elif choice == "link-class":
                (root / split / "cat").symlink_to(root / split / cls)
            elif choice == "file-in-split":
                shutil.copy(root / "train" / "ant" / "a.png", root / split / "stray.png")
            elif choice == "rename-class":
                (root / split / cls).rename(root / split / rng.choice(["Ant", "zebra", "0", "a,b"]))
            elif choice == "class-is-file":
                shutil.rmtree(root / split / cls)
                (root / split / cls).write_text("x")
            elif choice == "split-is-link":
                shutil.rmtree(root / split)
                (root / split).symlink_to(root / ("val" if split == "train" else "train"))
            else:
                (root / split / cls / "loop").symlink_to(root / split)
        else:
            options = rng.choice(["crop=0", "crop=-1", "crop=99999", "resize=3", "resize=4",
                                  "crop=4,crop=4", "seed=-1", "seed=1", "seed=99999999999999999999",
                                  "crop=04", "crop=4.0", "crop=", "bogus=1", "crop=4 ", " crop=4",
                                  "crop=\u0664", "resize=6,resize=6", ""])
            spec = "imagenet:{root}" + ("," + options if options else "")
            what = f"spec {spec!r}"

        def run():
            return self._img_result(root, spec)

        def judge(got):
            train = self._img_expected(root, "train", None)
            val = None if train is None else self._img_expected(root, "val", train[0])
            if train is None or val is None:
                return "silent-wrong", "accepted a tree the documented rules refuse"
            for split, (classes, files) in (("train", train), ("val", val)):
                got_classes, rows = got[split]
                if got_classes != classes or {k: v[0] for k, v in rows.items()} != files:
                    return "silent-wrong", f"{split}: listed {sorted(rows)[:4]}, the rules give {sorted(files)[:4]}"
                for rel, (label, digest, ok) in rows.items():
                    if not ok:
                        return "silent-wrong", f"{rel}: non-finite pixels"
                    if kind == "spec" or rel in legit:
                        continue
                    data = (root / rel).read_bytes()
                    known = self.img_by_content.get(hashlib.sha256(data).hexdigest())
                    if known is not None:   # an original file's bytes: its original pixels
                        if digest != known:
                            return "silent-wrong", f"{rel}: an unchanged image decoded differently"
                        continue
                    if rel.endswith(".png") and (self.img_base_dir / rel).is_file():
                        if digest != self.img_base[split][1][rel][1]:   # PNG is checksummed
                            return "silent-wrong", f"{rel}: a changed PNG decoded to other pixels"
                        continue
                    return "silent-wrong", f"{rel}: changed content accepted"
            if got == self.img_base:
                return "ok-identical", ""
            if self._img_result(root, spec) != got:
                return "silent-wrong", "not reproducible"
            return "ok-other", ""

        # the capture reads the val split (and the train split's class folders): all 4 images
        argv = ["trace", "capture", "--model", "resnet18_cifar", "--samples", "4",
                "--data", spec.format(root=root) if "{root}" in spec else spec,
                "-o", str(self.img_dir / "out.trace")]
        train_only = kind != "spec" and (target.startswith("train/") if kind != "tree"
                                         else split == "train")
        return Case(run, judge, [root, self.img_base_dir], argv, what=what,
                    cli_reads_all=not train_only)

    # ============================================================ class: graph
    def setup_graph(self):
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        from accelsim.hw import load_hw
        from accelsim.trace import CaptureOptions, capture_trace, write_trace

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.c1 = nn.Conv2d(3, 8, 3, padding=1)
                self.bn = nn.BatchNorm2d(8)
                self.c2 = nn.Conv2d(8, 8, 3, padding=1)
                self.fc = nn.Linear(8, 4)

            def forward(self, x):
                y = F.max_pool2d(torch.relu(self.bn(self.c1(x))), 2)
                z = torch.relu(self.c2(y) + y)
                return self.fc(F.adaptive_avg_pool2d(z, 1).flatten(1))

        self.g_dir = self.folder / "graph"
        self.g_dir.mkdir(exist_ok=True)
        torch.manual_seed(0)
        x = torch.relu(torch.randn(4, 3, 8, 8))
        data = capture_trace(Net().eval(), [x], CaptureOptions(samples=4), provenance={"model": "Net"})
        self.g_trace = write_trace(self.g_dir / "net.trace", data)
        with zipfile.ZipFile(self.g_trace) as z:
            self.g_meta = json.loads(z.read("metadata.json"))
            self.g_members = [n for n in z.namelist() if n.startswith("graph/")]
        self.g_hw = load_hw(SPARTEN)
        self.g_base = self._g_result(self.g_trace)
        assert self.g_base["energy_vector_pj"] > 0

    def _g_result(self, path):
        from accelsim.sim import simulate
        from accelsim.trace import open_trace

        with open_trace(path) as trace:
            result = simulate(trace, self.g_hw)
        return {k: v for k, v in result.totals.items() if isinstance(v, (int, float))}

    def case_graph(self, rng: random.Random, index: int) -> Case:
        import numpy as np
        from trace_helpers import rewrite

        path = self.g_dir / "m.trace"
        signed = rng.random() < 0.4
        kind = rng.choice(("leaf", "leaf", "leaf", "structure", "member", "consistent-mask",
                           "drop-graph"))
        values = [0, 1, 3, 9, 10, 11, 2 ** 40, -1, [8, 8, 8], [3, 8, 8], [0], [], "relu",
                  "max_pool2d", "layer", "op", "input", "norm", "pool", "add", True, None,
                  {"kernel": 10 ** 9}, {"alias": True}]
        edited: list = []
        members = {}
        drop = ()

        def edit(meta):
            graph = meta["graph"]
            if kind == "leaf":
                meta["graph"] = mutate_tree(rng, graph, values, edited)
            elif kind == "structure":
                ops, tensors = graph["ops"], graph["tensors"]
                choice = rng.choice(("drop-op", "dup-op", "swap-ops", "drop-tensor", "dup-tensor",
                                     "cycle", "outputs", "self-input", "graph-type", "deep",
                                     "huge-shape", "no-outputs"))
                edited.append(choice)
                if choice == "drop-op":
                    ops.pop(rng.randrange(len(ops)))
                elif choice == "dup-op":
                    ops.insert(rng.randrange(len(ops)), copy.deepcopy(rng.choice(ops)))
                elif choice == "swap-ops":
                    i, j = rng.randrange(len(ops)), rng.randrange(len(ops))
                    ops[i], ops[j] = ops[j], ops[i]
                elif choice == "drop-tensor":
                    tensors.pop(rng.randrange(len(tensors)))
                elif choice == "dup-tensor":
                    tensors.append(copy.deepcopy(rng.choice(tensors)))
                elif choice == "cycle":
                    op = rng.choice(ops)
                    op["inputs"] = [rng.choice(op["outputs"] or [0])] + op["inputs"][1:]
                elif choice == "outputs":
                    graph["outputs"] = rng.choice([[0], [3, 3], [99], [], [-1], "x"])
                    edited.append(graph["outputs"])
                elif choice == "self-input":
                    op = rng.choice(ops)
                    op["outputs"] = list(op["inputs"])
                elif choice == "graph-type":
                    meta["graph"] = rng.choice([[], "x", None, 3, {"ops": [], "tensors": []}])
                elif choice == "deep":
                    rng.choice(ops)["attrs"] = DEEP
                elif choice == "huge-shape":
                    t = rng.choice(tensors)
                    t["shape"] = rng.choice([[2 ** 40], [2 ** 20, 2 ** 20], [-8, 8], [0, 8]])
                    t["elements"] = rng.choice([t["elements"], math.prod(t["shape"])])
                else:
                    for op in ops:
                        op["outputs"] = []
            elif kind == "drop-graph":
                meta.pop("graph")
                edited.append("drop-graph")

        if kind == "member":
            name = rng.choice(self.g_members)
            with zipfile.ZipFile(self.g_trace) as z:
                data = z.read(name)
            members[name] = mutate_bytes(rng, data, lo=min(len(data) - 1, 128) if rng.random() < 0.7 else 0)
            edited.append(f"member {name}")
        elif kind == "consistent-mask":   # a mask, its non-zero count and density edited together
            tid = rng.choice([t["id"] for t in self.g_meta["graph"]["tensors"] if t["has_mask"]])
            name = f"graph/tensor_{tid:05d}_mask.npy"
            with zipfile.ZipFile(self.g_trace) as z:
                rows = np.load(io.BytesIO(z.read(name)))
                counts = np.load(io.BytesIO(z.read("graph/nonzeros.npy")))
            rows = rows.copy()
            rows[0, 0] ^= 0x80
            counts = counts.copy()
            counts[tid, 0] = int(np.unpackbits(rows[0])[: self.g_meta["graph"]["tensors"][tid]["elements"]].sum())

            def npy(a):
                buf = io.BytesIO()
                np.save(buf, a)
                return buf.getvalue()

            members = {name: npy(rows), "graph/nonzeros.npy": npy(counts)}
            elements = self.g_meta["graph"]["tensors"][tid]["elements"]
            total = int(counts[tid].sum())

            def fix_density(meta, tid=tid, total=total, elements=elements):
                meta["graph"]["tensors"][tid]["density"] = total / (elements * counts.shape[1])

            edited.append(f"consistent mask of tensor {tid}")
        elif kind == "drop-graph":
            drop = tuple(self.g_members)

        def meta_edit(meta):
            if kind in ("leaf", "structure", "drop-graph"):
                edit(meta)
            elif kind == "consistent-mask":
                fix_density(meta)

        try:
            rewrite(self.g_trace, path, members=members, meta=meta_edit, fix_sha=not signed,
                    drop=drop)
        except (KeyError, TypeError, ValueError):
            shutil.copy(self.g_trace, path)   # an edit the helper cannot express: the original
        raw = path.read_bytes()
        if DEEP.encode() in raw:   # deep nesting inside metadata.json
            with zipfile.ZipFile(path) as z:
                contents = {i.filename: z.read(i.filename) for i in z.infolist()}
            contents["metadata.json"] = contents["metadata.json"].replace(
                json.dumps(DEEP).encode(), b"[" * 50000 + b"]" * 50000)
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
                for name, data in contents.items():
                    z.writestr(name, data)
        mode = "signed" if signed else "re-signed"

        def run():
            return self._g_result(path)

        def judge(got):
            if not finite(got):
                return "silent-wrong", "non-finite totals"
            if got == self.g_base:
                return "ok-identical", ""
            if signed:
                return "silent-wrong", f"an unsigned edit ({edited}) changed the result"
            if self._g_result(path) != got:
                return "silent-wrong", "not reproducible"
            return "ok-other", f"{edited}"

        argv = ["simulate", "--trace", str(path), "--hw", str(SPARTEN), "--json"]
        return Case(run, judge, [path], argv, what=f"{mode} {kind} {edited}")

    # ============================================================ class: output
    def setup_output(self):
        from accelsim.cli import main

        self.o_dir = self.folder / "output"
        self.o_dir.mkdir(exist_ok=True)
        self.o_base = {}
        for verb in ("simulate", "map", "from-model"):
            target = self.o_dir / f"base_{verb}{self._o_suffix(verb)}"
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                assert main(self._o_argv(verb, target)) == 0
            self.o_base[verb] = self._o_content(verb, target)

    @staticmethod
    def _o_suffix(verb: str) -> str:
        return {"simulate": ".csv", "map": ".yaml", "from-model": ".trace"}[verb]

    @staticmethod
    def _o_argv(verb: str, target) -> list:
        if verb == "simulate":
            return ["simulate", "--trace", str(TRACE), "--hw", str(EYERISS), "--samples", "1",
                    "-o", str(target)]
        if verb == "map":
            return ["map", "--trace", str(TRACE), "--hw", str(EYERISS), "--layer", "conv2",
                    "--save-mappings", str(target)]
        return ["trace", "from-model", "lenet5", "--act-density", "0.5", "--weight-density", "0.5",
                "--samples", "1", "-o", str(target)]

    @staticmethod
    def _o_content(verb: str, target: Path):
        if verb == "simulate":
            side = json.loads(Path(f"{target}.json").read_text())
            side.get("meta", {}).pop("elapsed_s", None)
            return target.read_bytes(), json.dumps(side, sort_keys=True)
        if verb == "map":
            return target.read_bytes()
        from accelsim.trace import open_trace

        with open_trace(target) as trace:
            return trace.content_hash

    def case_output(self, rng: random.Random, index: int) -> Case:
        from accelsim.cli import main

        work = self.o_dir / f"case{index % 2}"
        verb = rng.choice(("simulate", "map", "from-model"))
        suffix = self._o_suffix(verb)
        name = rng.choice(["out", "out", "new\nline", "\u00fcn\u00efc\u00f8d\u00e9", "sp ace,comma",
                           "a" * 200, "b" * 300, "..", "."]) + rng.choice([suffix, suffix, suffix, ".txt", ""])
        parent = rng.choice(("plain", "plain", "plain", "missing", "file", "link-dir"))
        node = rng.choice(("missing", "missing", "regular", "hardlink", "fifo", "socket", "device",
                           "dir-empty", "dir-full", "link-file", "link-fifo", "link-dir", "dangling",
                           "link-self"))
        sidecar = rng.choice((None, None, None, "fifo", "dir-full", "link-file", "regular"))
        elsewhere = work / "elsewhere"
        victim = elsewhere / "victim.txt"
        base = {"plain": work, "missing": work / "new" / "deeper", "file": work / "afile",
                "link-dir": work / "linked"}[parent]
        target = base / name
        result_paths = [target] + ([Path(f"{target}.json")] if verb == "simulate" else [])
        argv = self._o_argv(verb, target)
        what = (f"{verb} {parent}/{name[:12]!r}{name[-6:]!r} node={node} "
                f"sidecar={sidecar if verb == 'simulate' else '-'}")
        scene = {}

        def plant(path: Path, kind: str) -> None:
            if kind == "missing" or not path.parent.is_dir() or path.name in (".", ".."):
                return
            if os.path.lexists(path):
                return
            try:
                if kind == "regular":
                    path.write_text("old\n")
                elif kind == "hardlink":
                    os.link(victim, path)
                elif kind == "fifo":
                    os.mkfifo(path)
                elif kind == "socket":
                    sock = socket.socket(socket.AF_UNIX)
                    try:
                        sock.bind(str(path))
                    finally:
                        sock.close()
                elif kind == "device":
                    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
                elif kind == "dir-empty":
                    path.mkdir()
                elif kind == "dir-full":
                    path.mkdir()
                    (path / "inside.txt").write_text("precious\n")
                elif kind == "link-file":
                    path.symlink_to(victim)
                elif kind == "link-fifo":
                    path.symlink_to(elsewhere / "pipe")
                elif kind == "link-dir":
                    path.symlink_to(elsewhere / "dir")
                elif kind == "dangling":
                    path.symlink_to(work / "not-there.csv")
                elif kind == "link-self":
                    path.symlink_to(path.name)
            except OSError:   # a name too long for the file system, a socket path over 108 bytes
                pass

        def build() -> None:
            """The scene, from scratch: a victim file, FIFO and folder elsewhere, the planted nodes."""
            if os.path.lexists(work):
                shutil.rmtree(work)
            elsewhere.mkdir(parents=True)
            victim.write_text("precious\n")
            os.mkfifo(elsewhere / "pipe")
            (elsewhere / "dir").mkdir()
            (elsewhere / "dir" / "inside.txt").write_text("precious\n")
            if parent == "file":
                base.write_text("precious\n")
            elif parent == "link-dir":
                base.symlink_to(elsewhere / "dir")
            plant(target, node)
            if verb == "simulate" and sidecar:
                plant(Path(f"{target}.json"), sidecar)
            scene["before"] = snapshot([work])

        def judge_effects(rc: int, err: str):
            after = snapshot([work])
            before = scene["before"]
            allowed = {str(p) for p in result_paths}
            if parent == "link-dir":   # the output lands in the linked folder (the user's choice)
                allowed |= {str(elsewhere / "dir" / p.name) for p in result_paths}
            temps = [k for k in after if k not in before and k.endswith(".tmp")]
            if temps:
                return "silent-wrong", f"temporary file left: {temps[0]}"
            for key in set(before) | set(after):
                old, new = before.get(key), after.get(key)
                if old == new:
                    continue
                regular_now = new is not None and new[0] == "file"
                if key in allowed and (old is None or old[0] == "file") and regular_now and rc == 0:
                    continue   # the output created, or a regular file replaced
                if old is None and new is not None and new[0] == "dir" and \
                        any(a.startswith(key + "/") for a in allowed):
                    continue   # a missing parent folder created for the output
                return "data-loss", f"{key[len(str(work)):]!r}: {old} -> {new} (exit {rc})"
            if rc == 0:
                if not all(os.path.isfile(p) and not os.path.islink(p) for p in result_paths):
                    return "silent-wrong", "exit 0 but no output file at the path"
                if self._o_content(verb, target) != self.o_base[verb]:
                    return "silent-wrong", "the output differs from the baseline's"
                return "ok-identical", ""
            lines = [line for line in err.strip().splitlines() if line.strip()]
            if rc in (1, 2) and len(lines) == 1 and lines[0].startswith("error: "):
                return "one-line-error", lines[0][:200]
            return "traceback", f"exit {rc}: {err.strip()[-300:]!r}"

        def run():
            build()
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = main(list(argv))
            return rc, err.getvalue()

        def judge(result):
            return judge_effects(*result)

        def cli_judge(rc, out, err):
            if rc < 0:
                return "crash", f"signal {-rc}"
            return judge_effects(rc, err)

        return Case(run, judge, [TRACE, EYERISS], argv, what=what, cli_judge=cli_judge,
                    reset=build)


def cli_outcome(rc: int, err: str) -> tuple[str, str]:
    """``ok`` for exit 0; otherwise the outcome of the CLI's stderr."""
    if rc == 0:
        return "ok", ""
    if "Traceback" in err:
        return "traceback", err.strip()[-300:]
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    if rc in (1, 2) and len(errors) == 1 and lines and lines[-1] == errors[0]:
        return "one-line-error", errors[0][:200]
    return "traceback", f"exit {rc}: {err.strip()[-300:]!r}"


# ================================================================ worker and supervisor

def worker_main(folder: str, jobs_file: str, log_file: str) -> int:
    """Run the jobs of ``jobs_file`` in this process, one log line before and after each."""
    jobs = json.loads(Path(jobs_file).read_text())
    harness = Harness(Path(folder))
    with open(log_file, "a") as log:
        for kind, index, seed, cli in jobs:
            try:
                harness.setup(kind)
            except BaseException:  # noqa: BLE001 - a broken harness fails the test, not a mutant
                import traceback

                log.write(json.dumps({"setup": kind, "error": traceback.format_exc()}) + "\n")
                return 3
            log.write(json.dumps({"job": [kind, index], "state": "start"}) + "\n")
            log.flush()
            start = time.perf_counter()
            outcome, detail = harness.run(kind, index, seed, cli)
            log.write(json.dumps({"job": [kind, index], "outcome": outcome, "detail": detail,
                                  "seconds": round(time.perf_counter() - start, 3)}) + "\n")
            log.flush()
    return 0


def fuzz(folder: Path, per_class: int, seed: int, cli_every: int = 0,
         classes=CLASSES, stall: float = STALL) -> tuple[dict, dict]:
    """Outcome counts per class and the details of every bad outcome (and of every ``ok-other``
    of a re-signed graph edit), each mutant run in a supervised worker process."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(kind, i, seed, bool(cli_every) and i % cli_every == cli_every - 1)
            for kind in classes for i in range(per_class)]
    done: dict = {}
    attempt = 0
    while len(done) < len(jobs):
        pending = [j for j in jobs if (j[0], j[1]) not in done]
        attempt += 1
        jobs_file, log_file = folder / f"jobs{attempt}.json", folder / f"log{attempt}.jsonl"
        jobs_file.write_text(json.dumps(pending))
        log_file.write_text("")
        errors = open(folder / f"worker{attempt}.err", "w")
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker",
                                 str(folder / "work"), str(jobs_file), str(log_file)],
                                cwd=ROOT, stdout=errors, stderr=subprocess.STDOUT)
        last_size, last_change, killed = 0, time.monotonic(), False
        while proc.poll() is None:
            time.sleep(0.2)
            size = log_file.stat().st_size
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            elif time.monotonic() - last_change > stall:
                proc.kill()
                proc.wait()
                killed = True
        errors.close()
        started = None
        for line in log_file.read_text().splitlines():
            entry = json.loads(line)
            if "setup" in entry:
                raise RuntimeError(f"fuzz harness setup of {entry['setup']} failed:\n{entry['error']}")
            key = tuple(entry["job"])
            if entry.get("state") == "start":
                started = key
            else:
                done[key] = (entry["outcome"], entry["detail"])
                started = None
        if started is not None:   # the worker died (or stalled) inside this mutant
            rc = proc.returncode
            done[started] = (("hang", f"worker silent for {stall:.0f} s") if killed else
                             ("crash", f"worker exited {rc}: "
                              f"{(folder / f'worker{attempt}.err').read_text()[-300:]!r}"))
        elif proc.returncode != 0 and len(done) < len(jobs):
            raise RuntimeError(f"fuzz worker failed before its first mutant (exit "
                               f"{proc.returncode}):\n{(folder / f'worker{attempt}.err').read_text()[-4000:]}")
    table = {kind: Counter() for kind in classes}
    notes: dict = {kind: [] for kind in classes}
    for (kind, index), (outcome, detail) in sorted(done.items()):
        table[kind][outcome] += 1
        if outcome in BAD or (kind == "graph" and outcome == "ok-other"):
            notes[kind].append(f"#{index} {outcome}: {detail}")
    return table, notes


def format_table(table: dict) -> str:
    width = max(len(o) for o in OUTCOMES) + 2
    rows = [f"{'class':<10}{'inputs':>8}" + "".join(f"{o:>{width}}" for o in OUTCOMES)]
    total = Counter()
    for kind, counts in table.items():
        total.update(counts)
        rows.append(f"{kind:<10}{sum(counts.values()):>8}"
                    + "".join(f"{counts[o]:>{width}}" for o in OUTCOMES))
    rows.append(f"{'total':<10}{sum(total.values()):>8}" + "".join(f"{total[o]:>{width}}" for o in OUTCOMES))
    return "\n".join(rows)


def _check(table: dict, notes: dict) -> None:
    report = format_table(table)
    print("\n" + report)
    for kind, found in notes.items():
        for line in found:
            print(f"{kind}: {line}")
    bad = {kind: [n for n in found if n.split(" ", 2)[1].rstrip(":") in BAD]
           for kind, found in notes.items()}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"{report}\n{bad}"


SELFTEST = ("ok-identical", "one-line-error", "traceback", "traceback", "code-execution",
            "code-execution", "data-loss", "hang", "silent-wrong", "crash", "hang")


def test_classifier_sees_every_outcome(tmp_path, monkeypatch):
    """Positive controls through the supervised worker: every outcome is recognised, a worker
    killed by a signal or stalled past the alarm is restarted after the mutant."""
    monkeypatch.setenv("FUZZ3_TIMEOUT", "2")
    table, notes = fuzz(tmp_path, per_class=len(SELFTEST), seed=0, classes=("selftest",), stall=8)
    got = {int(line.split(" ", 1)[0][1:]): line.split(" ", 2)[1].rstrip(":")
           for line in notes["selftest"]}
    want = {i: o for i, o in enumerate(SELFTEST) if o in BAD}
    assert got == want, notes
    assert table["selftest"]["ok-identical"] == 1 and table["selftest"]["one-line-error"] == 1


def test_cli_outcome_rules():
    assert cli_outcome(0, "")[0] == "ok"
    assert cli_outcome(2, "error: f.yaml: x: bad\n")[0] == "one-line-error"
    assert cli_outcome(1, "warning: y\nerror: accelsim map: writing f: Is a directory\n")[0] == \
        "one-line-error"
    assert cli_outcome(2, "error: a\nerror: b\n")[0] == "traceback"
    assert cli_outcome(2, "error: a\nmore text\n")[0] == "traceback"
    assert cli_outcome(1, "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n")[0] == "traceback"
    assert cli_outcome(3, "error: a\n")[0] == "traceback"


def test_fuzz_round3_every_class(tmp_path):
    pytest.importorskip("transformers")
    # 4 cases per class here (the mapped designs cost more per case); 300 in the slow test
    table, notes = fuzz(tmp_path, per_class=4, seed=31, cli_every=4)
    _check(table, notes)
    assert all(sum(c.values()) == 4 for c in table.values())


@pytest.mark.slow
def test_fuzz_round3_every_class_long(tmp_path):
    pytest.importorskip("transformers")
    table, notes = fuzz(tmp_path, per_class=200, seed=7, cli_every=15)
    _check(table, notes)
    assert all(counts["one-line-error"] > 0 for counts in table.values())   # the mutations bite


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.exit(worker_main(*sys.argv[2:5]))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 31
    cli_every = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    only = sys.argv[4].split(",") if len(sys.argv) > 4 else CLASSES
    with tempfile.TemporaryDirectory() as tmp:
        table, notes = fuzz(Path(tmp), n, seed, cli_every, tuple(only))
    print(format_table(table))
    for kind, found in notes.items():
        for line in found:
            print(f"{kind}: {line}")
