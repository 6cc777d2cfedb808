"""Seeded fuzzing of every input a stranger can hand accelsim.

Five classes of input are mutated (byte flips, truncation, appended bytes, line and value
edits, structured metadata edits) and fed through the real entry points:

- ``trace``: a captured trace file -> ``open_trace`` + ``simulate`` (all samples and 2);
- ``hw``: a hardware YAML file -> ``load_hw`` + ``simulate``;
- ``sweep``: a sweep spec -> ``load_sweep_spec`` + ``expand``;
- ``recipe``: a training recipe -> ``load_recipe``;
- ``checkpoint``: an accelsim checkpoint -> ``load_checkpoint``.

Each mutant's outcome is one of:

- ``clean error``: an :class:`~accelsim.errors.AccelsimError` whose message is one line;
- ``identical``: the same result as the unmutated input;
- ``valid other``: (configuration files only, whose edits can describe another valid
  design) a result that is finite and equal to the result of re-loading the accepted
  input's canonical form; trace and checkpoint mutants may never land here, their
  content is integrity-checked;
- ``anything else``: any other exception, a hang (> 20 s), a non-finite number, or a
  different number: the tests require zero.

``python tests/test_fuzz.py [N] [SEED]`` prints the table for N mutants per class.
"""
from __future__ import annotations

import copy
import io
import json
import math
import random
import signal
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml

from accelsim.errors import AccelsimError

OUTCOMES = ("clean error", "identical", "valid other", "anything else")
CLASSES = ("trace", "hw", "sweep", "recipe", "checkpoint")
HOSTILE = ["020", "1:30", "yes", "off", "1e308", "-1", "0", ".nan", ".inf", "-.inf",
           "4611686018427387904", "1" + "0" * 400, "''", "[]", "{}", "null", "~", "true",
           "1_000", "0x10", "0o17", "2.5", "-0.0", "*undefined", "&a x", "!!python/object:os.system",
           "\"\\xff\"", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
           "16", "64", "8", "output_stationary", "weight_stationary", "bitmap"]
INSERTS = ["extends: missing.yaml", "extends: {x: 1}", "<<: {a: 1}", "version: 1",
           "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
           "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
           "e: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]",
           "x: " + "[" * 200 + "]" * 200, "? [a]\n: b", "x: 1\nx: 2", "\t", "%YAML 1.1\n---",
           "--- \n---"]


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def classify(run, baseline, canonical=None, timeout: float = 20.0) -> tuple[str, str]:
    """Run one mutant; returns (outcome, detail)."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        result = run()
    except AccelsimError as exc:
        text = str(exc)
        if "\n" in text or not text.strip():
            return "anything else", f"multi-line error: {text[:200]!r}"
        return "clean error", text[:120]
    except _Hang:
        return "anything else", "hang"
    except BaseException as exc:  # noqa: BLE001 - the point is to catch everything
        return "anything else", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if result == baseline:
        return "identical", ""
    if canonical is None:
        return "anything else", f"different result: {str(result)[:200]}"
    try:
        again = canonical()
    except BaseException as exc:  # noqa: BLE001
        return "anything else", f"accepted, but its canonical form fails: {exc!r}"[:250]
    if again != result or not _finite(result):
        return "anything else", f"accepted, not reproducible or not finite: {str(result)[:200]}"
    return "valid other", ""


# ---------------------------------------------------------------- mutations of bytes and text


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    kind = rng.choice(("flip", "flip", "flip", "truncate", "append", "zero-run"))
    data = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= rng.choice((1, 2, 4, 8, 16, 32, 64, 128, 255))
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    elif kind == "append":
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        i = rng.randrange(len(data))
        data[i:i + rng.randint(1, 32)] = bytes(min(32, len(data) - i))
    return bytes(data)


def mutate_text(rng: random.Random, text: str) -> bytes:
    lines = text.splitlines()
    kind = rng.choice(("bytes", "value", "value", "value", "delete", "duplicate", "insert",
                       "swap", "indent"))
    if kind == "bytes":
        return mutate_bytes(rng, text.encode())
    i = rng.randrange(len(lines))
    if kind == "value":
        line = lines[i]
        if ":" in line:
            key = line.split(":", 1)[0]
            lines[i] = f"{key}: {rng.choice(HOSTILE)}"
        else:
            lines[i] = line + " " + rng.choice(HOSTILE)
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


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))
    else:
        yield path


def mutate_json_leaf(rng: random.Random, meta: dict) -> dict:
    meta = copy.deepcopy(meta)
    path = rng.choice(list(_leaves(meta)))
    node = meta
    for part in path[:-1]:
        node = node[part]
    old = node[path[-1]]
    choices = [-1, 0, 1, 2, 7, -0.5, 1.5, 1e308, float("nan"), 2 ** 62, 10 ** 9, None, True,
               "x", [], {}]
    if isinstance(old, (int, float)) and not isinstance(old, bool):
        choices += [old + 1, old - 1, old * 2]
    if rng.random() < 0.1:
        node.pop(path[-1])
    else:
        node[path[-1]] = rng.choice(choices)
    return meta


# ---------------------------------------------------------------- the five input classes


class _Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, groups=2)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        return self.fc(torch.relu(self.c2(x)).flatten(1))


HW_TEXT = """version: 1
name: fuzz
technology:
  clock_mhz: 500
  energy_overrides:
    mac_pj: 0.5
precision:
  activation_bits: 8
  weight_bits: 8
pe_array:
  rows: 4
  cols: 4
  dataflow: output_stationary
  macs_per_pe: 1
sparsity:
  skip_zero_activations: true
  skip_zero_weights: false
scratchpad:
  input_bytes: 16
  weight_bytes: 16
  psum_bytes: 4
global_buffer:
  size_kib: 64
  words_per_cycle: 8
dram:
  ideal: false
  bandwidth_gb_per_s: 8
storage:
  activations:
    format: bitmap
"""
SPEC_TEXT = """version: 1
name: fuzz
base: hw.yaml
mode: grid
seed: 0
axes:
  pe_array.rows:
    values: [4, 8]
  global_buffer.size_kib:
    range: {start: 32, stop: 64, step: 32}
  technology.clock_mhz:
    random: {low: 100, high: 900, count: 2}
constraints:
  max_pes: 64
traces:
  - t.trace
fidelity: fast
samples: 2
objectives:
  - [energy_pj, cycles]
"""
RECIPE_TEXT = """version: 1
name: fuzz
seed: 0
model: lenet5
data:
  dataset: digits
  batch_size: 64
stages:
  - name: dense
    epochs: 2
    optimizer:
      type: sgd
      lr: 0.05
      momentum: 0.9
    lr_schedule: cosine
  - name: prune
    epochs: 2
    optimizer: {type: adam, lr: 0.001}
    prune: {sparsity: 0.5, scope: layerwise, schedule: cubic, end_epoch: 1}
    weight_l1: 1.0e-4
    activation_penalty: {type: tl1, b: 1.0, lambda: 1.0e-3}
"""


def _layer_for_hw():
    from accelsim.trace.geometry import LayerGeometry
    from accelsim.trace.layer import LayerTrace

    rng = np.random.default_rng(0)
    geo = LayerGeometry(kind="conv2d", N=2, C=3, H=5, W=5, K=4, R=3, S=3)
    return LayerTrace.from_masks("l", geo, rng.random(geo.weight_shape) < 0.5,
                                 rng.random(geo.act_shape) < 0.5)


def _sim_numbers(layers, hw, samples=None) -> dict:
    from accelsim.sim.simulate import simulate

    result = simulate(layers, hw, fidelity="fast", samples=samples)
    return {k: v for k, v in result.totals.items() if isinstance(v, (int, float))}


class Harness:
    """Builds the unmutated inputs once and runs mutants of each class."""

    def __init__(self, folder: Path):
        from accelsim.hw import load_hw
        from accelsim.trace import CaptureOptions, capture_trace, write_trace
        from accelsim.train.checkpoint import save_checkpoint

        self.folder = folder
        torch.manual_seed(0)
        x = torch.relu(torch.randn(4, 3, 5, 5))
        model = _Small()
        with torch.no_grad():
            model.c2.weight[model.c2.weight.abs() < 0.1] = 0
        data = capture_trace(model, [x], CaptureOptions(samples=4), provenance={"model": "S"})
        self.trace_path = folder / "t.trace"
        write_trace(self.trace_path, data)
        self.trace_bytes = self.trace_path.read_bytes()
        with zipfile.ZipFile(self.trace_path) as zf:
            self.trace_members = {i.filename: zf.read(i.filename) for i in zf.infolist()}
        (folder / "hw.yaml").write_text(HW_TEXT)
        self.hw = load_hw(folder / "hw.yaml")
        self.layer = _layer_for_hw()
        ckpt = folder / "c.pt"
        save_checkpoint(ckpt, {"w": torch.randn(4, 3), "b": torch.arange(4.0),
                               "n": torch.tensor(3)},
                        {"stage": "dense", "metrics": {"accuracy": 0.5}, "layers": ["a"]},
                        {"w": torch.rand(4, 3) > 0.5})
        self.ckpt_bytes = ckpt.read_bytes()
        self.baselines = {
            "trace": self._trace_result(self.trace_path),
            "hw": self._hw_result(folder / "hw.yaml"),
            "sweep": self._sweep_result(self._write("spec.yaml", SPEC_TEXT.encode())),
            "recipe": self._recipe_result(self._write("r.yaml", RECIPE_TEXT.encode())),
            "checkpoint": self._ckpt_result(ckpt),
        }

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    # ------------------------------------------------------------- results per class
    def _trace_result(self, path):
        from accelsim.trace import open_trace

        trace = open_trace(path)
        return [_sim_numbers(trace, self.hw, samples) for samples in (None, 2)]

    def _hw_result(self, path):
        from accelsim.hw import load_hw

        return _sim_numbers([self.layer], load_hw(path))

    def _hw_canonical(self, path):
        from accelsim.hw import dump_hw, load_hw, load_hw_dict

        return _sim_numbers([self.layer], load_hw_dict(yaml.safe_load(dump_hw(load_hw(path)))))

    def _sweep_result(self, path):
        from accelsim.sweep.expand import expand
        from accelsim.sweep.spec import load_sweep_spec

        exp = expand(load_sweep_spec(path))
        return [(p.params, p.hw.hash if p.hw else p.error) for p in exp.points]

    def _recipe_result(self, path):
        from accelsim.train.recipe import load_recipe

        return load_recipe(path)

    def _recipe_canonical(self, path):
        from accelsim.train.recipe import load_recipe, parse_recipe

        recipe = load_recipe(path)
        return parse_recipe(copy.deepcopy(recipe.raw), recipe.source)

    def _ckpt_result(self, path):
        from accelsim.train.checkpoint import load_checkpoint

        state, masks, meta = load_checkpoint(path)
        return ({k: (str(v.dtype), tuple(v.shape), v.reshape(-1).tolist()) for k, v in state.items()},
                {k: v.reshape(-1).tolist() for k, v in masks.items()}, json.dumps(meta, sort_keys=True))

    # ------------------------------------------------------------- one mutant
    def run(self, kind: str, rng: random.Random) -> tuple[str, str]:
        base = self.baselines[kind]
        if kind == "trace":
            path = self._write("m.trace", self._mutate_trace(rng))
            return classify(lambda: self._trace_result(path), base)
        if kind == "hw":
            path = self._write("m_hw.yaml", mutate_text(rng, HW_TEXT))
            return classify(lambda: self._hw_result(path), base, lambda: self._hw_canonical(path))
        if kind == "sweep":
            path = self._write("m_spec.yaml", mutate_text(rng, SPEC_TEXT))
            return classify(lambda: self._sweep_result(path), base,
                            lambda: self._sweep_result(path))
        if kind == "recipe":
            path = self._write("m_r.yaml", mutate_text(rng, RECIPE_TEXT))
            return classify(lambda: self._recipe_result(path), base,
                            lambda: self._recipe_canonical(path))
        path = self._write("m.pt", mutate_bytes(rng, self.ckpt_bytes))
        return classify(lambda: self._ckpt_result(path), base)

    def _mutate_trace(self, rng: random.Random) -> bytes:
        kind = rng.choice(("bytes", "bytes", "zip-header", "metadata", "member"))
        if kind == "bytes":
            return mutate_bytes(rng, self.trace_bytes)
        if kind == "zip-header":  # a field of a local or central-directory header
            data = bytearray(self.trace_bytes)
            starts = [i for sig in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06")
                      for i in range(len(data)) if data.startswith(sig, i)]
            at = min(rng.choice(starts) + rng.randrange(4, 30), len(data) - 1)  # EOCD is 22 bytes
            data[at] ^= rng.choice((1, 2, 8, 64, 128, 255))
            return bytes(data)
        members = dict(self.trace_members)
        if kind == "metadata":
            meta = json.loads(members["metadata.json"])
            members["metadata.json"] = json.dumps(mutate_json_leaf(rng, meta)).encode()
        else:  # a member's bytes changed inside a well-formed ZIP (valid CRC)
            name = rng.choice([n for n in members if n.endswith(".npy")])
            members[name] = mutate_bytes(rng, members[name])
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return out.getvalue()


def fuzz(folder: Path, per_class: int, seed: int) -> tuple[dict, dict]:
    """Outcome counts per class and up to 5 examples of ``anything else`` per class."""
    harness = Harness(folder)
    table = {kind: Counter() for kind in CLASSES}
    examples: dict = {kind: [] for kind in CLASSES}
    for kind in CLASSES:
        rng = random.Random(f"{seed}-{kind}")
        for _ in range(per_class):
            outcome, detail = harness.run(kind, rng)
            table[kind][outcome] += 1
            if outcome == "anything else" and len(examples[kind]) < 5:
                examples[kind].append(detail)
    return table, examples


def format_table(table: dict) -> str:
    rows = [f"{'class':<12}{'inputs':>8}" + "".join(f"{o:>16}" for o in OUTCOMES)]
    for kind, counts in table.items():
        rows.append(f"{kind:<12}{sum(counts.values()):>8}"
                    + "".join(f"{counts[o]:>16}" for o in OUTCOMES))
    total = Counter()
    for counts in table.values():
        total.update(counts)
    rows.append(f"{'total':<12}{sum(total.values()):>8}" + "".join(f"{total[o]:>16}" for o in OUTCOMES))
    return "\n".join(rows)


def _check(table, examples, capsys=None):
    report = format_table(table)
    print("\n" + report)
    bad = {k: v for k, v in examples.items() if v}
    assert not bad, f"{report}\nanything else: {bad}"


def test_fuzz_every_input_class(tmp_path):
    table, examples = fuzz(tmp_path, per_class=150, seed=11)
    _check(table, examples)
    assert all(sum(c.values()) == 150 for c in table.values())
    assert all(c["clean error"] > 0 for c in table.values())  # the mutations do bite


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzz_every_input_class_long(tmp_path, seed):
    table, examples = fuzz(tmp_path, per_class=400, seed=seed)
    _check(table, examples)


if __name__ == "__main__":
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    with tempfile.TemporaryDirectory() as tmp:
        table, examples = fuzz(Path(tmp), n, seed)
    print(format_table(table))
    for kind, found in examples.items():
        for detail in found:
            print(f"{kind}: {detail}")
