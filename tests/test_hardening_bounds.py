"""Hardening: products and inputs bounded before allocation, one-line errors, capped messages.

Each test reproduces an attack on the tree before these fixes (a huge co-design grid, a
``local:100000`` scheduler, a FIFO prompt file, a 530-byte CIFAR pickle that allocates
gigabytes, an unbounded mapper budget, tracebacks from odd values, multi-megabyte error
lines, a read-only install) and checks the one clean refusal or the bounded result.
"""
from __future__ import annotations

import os
import pickle
import shutil
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from accelsim.cli import main
from accelsim.errors import AccelsimError, ConfigError, DataError, TraceError

REPO = Path(__file__).resolve().parents[1]
SPARTEN = str(REPO / "hw_configs" / "sparten_like.yaml")
BASELINE_TRACE = REPO / "traces" / "lenet5_digits_baseline.trace"


def _bounded(run, seconds: float = 2.0, megabytes: float = 50.0):
    """Run ``run()``; assert it took under ``seconds`` and allocated under ``megabytes``."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        return run()
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert elapsed < seconds, f"took {elapsed:.1f} s"
        assert peak < megabytes * 1e6, f"{peak / 1e6:.0f} MB allocated"


def _alias_bomb(levels: int = 5) -> str:
    """A flow sequence whose aliases expand to 9**levels nodes (under the YAML node limit)."""
    text = "[&a [xxxxxxxxxx, x, x, x, x, x, x, x, x]"
    for i in range(1, levels + 1):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        text += f", &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]"
    return text + "]"


# ---------------------------------------------------------------- A1: co-design grids counted first

RECIPE = {
    "version": 1, "name": "tiny", "seed": 0, "model": "lenet5",
    "data": {"dataset": "synthetic:1,32,32,10,60", "batch_size": 20, "validation_fraction": 0.25},
    "stages": [{"name": "sparse", "epochs": 1, "optimizer": {"type": "sgd", "lr": 0.05},
                "activation_penalty": {"type": "tl1", "b": 0.5, "lambda": 0.1}}],
}


def _codesign(folder: Path, training: dict, designs: list, axes: dict | None = None) -> Path:
    (folder / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    spec = {"version": 1, "recipe": "recipe.yaml", "training": training,
            "hardware": {"designs": designs, **({"axes": axes} if axes else {})}}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_codesign_grid_is_counted_before_any_point_is_built(tmp_path):
    from accelsim.codesign.spec import load_codesign_spec
    import accelsim.train.recipe  # noqa: F401 - imports torch: not part of what is timed

    path = _codesign(tmp_path, {"lambda": [i / 1000 for i in range(1000)], "seed": list(range(1000))},
                     [SPARTEN] * 64, {"pe_array.rows": list(range(1, 1001))})
    with pytest.raises(ConfigError) as info:
        _bounded(lambda: load_codesign_spec(path))  # was 136 s and 4.9 GB (or a MemoryError)
    assert str(info.value) == (
        f"{path}: training: 1,000,000 training points x 64,000 hardware points is "
        "64,000,000,000, more than the limit of 100,000; pass --max-points 64000000000 to run "
        "it anyway, or narrow the axes")


def test_codesign_limit_is_the_product_and_the_flag_raises_it(tmp_path, capsys):
    from accelsim.codesign.spec import load_codesign_spec

    path = _codesign(tmp_path, {"lambda": [0.1, 0.2, 0.3]}, [SPARTEN], {"pe_array.rows": [8, 16]})
    with pytest.raises(ConfigError, match="3 training points x 2 hardware points is 6, more than "
                                          "the limit of 5; pass --max-points 6"):
        load_codesign_spec(path, max_points=5)
    spec = load_codesign_spec(path, max_points=6)
    assert len(spec.points) * len(spec.designs) == 6
    assert main(["codesign", str(path), "-o", str(tmp_path / "out"), "--max-points", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: training: 3 training points") and err.count("\n") == 1


# ---------------------------------------------------------------- A2: local workers capped


@pytest.fixture
def two_cores(monkeypatch):
    import accelsim.sweep.evaluate as evaluate

    monkeypatch.setattr(evaluate, "usable_cores", lambda: 2)


def test_local_scheduler_and_worker_counts_are_capped(two_cores, tmp_path, capsys):
    from accelsim.codesign.run import run_codesign
    from accelsim.sweep.cluster import parse_scheduler
    from accelsim.sweep.run import run_sweep

    with pytest.raises(AccelsimError, match=r"--scheduler local:N: 100,000 local workers is more "
                                            r"than the limit of 8 \(4 per usable CPU core, 2 here\)"):
        parse_scheduler("local:100000")
    assert parse_scheduler("local:8") == 8 and parse_scheduler("tcp://host:8786") is None
    with pytest.raises(AccelsimError, match="--workers: 9 local workers is more than the limit of 8"):
        run_sweep(None, tmp_path / "sweep", workers=9)  # refused before the spec is looked at
    with pytest.raises(AccelsimError, match="--train-jobs: 100,000 local workers"):
        run_codesign(None, tmp_path / "codesign", train_jobs=100_000)
    with pytest.raises(AccelsimError, match="--threads: 64 threads is more than the limit of 8"):
        run_codesign(None, tmp_path / "codesign", threads=64)
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "codesign").exists()

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"version": 1, "base": SPARTEN, "traces": [str(BASELINE_TRACE)],
                                    "axes": {"pe_array.rows": [8, 16]}}))
    start = time.perf_counter()
    assert main(["sweep", str(spec), "-o", str(tmp_path / "out"), "--scheduler", "local:100000"]) == 2
    assert time.perf_counter() - start < 30
    err = capsys.readouterr().err
    assert err.startswith("error: --scheduler local:N: 100,000 local workers") and err.count("\n") == 1


# ---------------------------------------------------------------- A3: prompt files


def _fifo_with_late_writer(path: Path, delay: float = 5.0) -> threading.Thread:
    """A FIFO whose writer appears after ``delay`` s (so a reader that blocks in open() ends)."""
    os.mkfifo(path)

    def write() -> None:
        time.sleep(delay)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # nobody is reading: the prompt reader refused the FIFO, as it should
            return
        os.write(fd, b"a prompt\n")
        os.close(fd)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(60)
def test_prompt_files_are_regular_and_bounded(tmp_path):
    from accelsim.trace.llm import MAX_PROMPT_BYTES, prompts_from_ids, prompts_from_text

    fifo = tmp_path / "prompts.fifo"
    _fifo_with_late_writer(fifo)
    start = time.perf_counter()
    for read in (lambda p: prompts_from_text(p, 1, None), lambda p: prompts_from_ids(p, 1, None)):
        with pytest.raises(ConfigError, match=f"{fifo}: is a FIFO, expected a regular"):
            read(fifo)
        with pytest.raises(ConfigError, match="/dev/zero: is a device"):
            read("/dev/zero")
    assert time.perf_counter() - start < 4  # no read blocked until the writer came
    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:  # sparse: takes no disk
        fh.truncate(MAX_PROMPT_BYTES + 1)
    with pytest.raises(ConfigError, match=f"{big}: the prompt file is larger than the "
                                          f"{MAX_PROMPT_BYTES:,}-byte limit"):
        prompts_from_text(big, 1, None)
    ok = tmp_path / "ok.txt"
    ok.write_text("hello\n\nworld\n")
    assert prompts_from_text(ok, 2, 3).tolist() == [list(b"hel"), list(b"wor")]
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt: the prompt file is not UTF-8 text \(byte 0xe9"):
        prompts_from_text(latin, 1, None)


@pytest.mark.timeout(60)
def test_teal_calibration_reads_the_prompt_file_bounded_too(tmp_path, monkeypatch):
    """``--teal`` reads the prompt text a second time: the same checks apply there."""
    import torch

    from accelsim.trace import llm

    fifo = tmp_path / "prompts.fifo"
    _fifo_with_late_writer(fifo)
    model = SimpleNamespace(config=SimpleNamespace(vocab_size=256))
    monkeypatch.setattr(llm, "load_decoder", lambda spec, seed=0: (model, None))
    # the first read of the file (prompts) is checked above; here the file is swapped for a
    # FIFO between the two reads
    monkeypatch.setattr(llm, "prompts_from_text", lambda *a, **k: torch.zeros((1, 4), dtype=torch.long))
    args = SimpleNamespace(model="llama_tiny", checkpoint=None, prompt_file=str(fifo), prompt_ids=None,
                           teal=0.5, decode_tokens=1, seed=0, samples=1, prompt_tokens=None,
                           act_bits=8, weight_bits=8, quantize_acts=False, quantize_weights=False,
                           threshold=0.0, output=str(tmp_path / "t.trace"), no_compress=False)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="is a FIFO"):
        llm.cli_capture(args)
    assert time.perf_counter() - start < 4


# ---------------------------------------------------------------- A4: CIFAR batches


def _int_op(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def _py2_cifar_batch(data: np.ndarray, labels: list[int], filenames: list[bytes]) -> bytes:
    """A batch laid out as Python 2's cPickle wrote the published files (protocol 2, byte
    strings as (SHORT_)BINSTRING, lists appended 1,000 items per APPENDS)."""
    out = bytearray(b"\x80\x02}q\x01(")
    memo = [2]

    def put() -> None:
        out.extend(b"q" + bytes([memo[0] % 256]) if memo[0] < 256 else b"r" + struct.pack("<I", memo[0]))
        memo[0] += 1

    def string(value: bytes) -> None:
        out.extend((b"U" + bytes([len(value)]) if len(value) < 256
                    else b"T" + struct.pack("<i", len(value))) + value)
        put()

    def int_list(values, item) -> None:
        out.extend(b"]")
        put()
        for i in range(0, len(values), 1000):
            out.extend(b"(")
            for v in values[i:i + 1000]:
                item(v)
            out.extend(b"e")

    string(b"data")
    out.extend(b"cnumpy.core.multiarray\n_reconstruct\n")
    put()
    out.extend(b"cnumpy\nndarray\n")
    put()
    out.extend(b"K\x00\x85U\x01b\x87R")
    put()
    out.extend(b"(K\x01" + _int_op(data.shape[0]) + _int_op(data.shape[1]) + b"\x86cnumpy\ndtype\n")
    put()
    out.extend(b"U\x02u1K\x00K\x01\x87R")
    put()
    out.extend(b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89")
    string(data.tobytes())
    out.extend(b"tb")
    string(b"labels")
    int_list(labels, lambda v: out.extend(_int_op(v)))
    string(b"batch_label")
    string(b"testing batch 1 of 1")
    string(b"filenames")
    int_list(filenames, string)
    out.extend(b"u.")
    return bytes(out)


def test_cifar_batch_as_python2_wrote_it(tmp_path):
    from accelsim.datasets import load_dataset, read_cifar_batch

    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (1200, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, 1200)]
    names = [f"image_{i:05d}.png".encode() for i in range(1200)]
    blob = _py2_cifar_batch(data, labels, names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy.core is deprecated in NumPy 2
        reference = pickle.loads(blob, encoding="bytes")  # the layout is a valid pickle
    assert np.array_equal(reference[b"data"], data) and reference[b"labels"] == labels
    (tmp_path / "test_batch").write_bytes(blob)
    batch = read_cifar_batch(tmp_path / "test_batch")
    assert sorted(batch) == ["batch_label", "data", "filenames", "labels"]
    assert np.array_equal(batch["data"], data) and batch["data"].flags.writeable
    assert batch["labels"] == labels and batch["filenames"] == names
    assert batch["batch_label"] == b"testing batch 1 of 1"
    ds = load_dataset(f"cifar10:{tmp_path}")
    assert len(ds) == 1200 and ds[5][1] == labels[5]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_batches_of_every_python3_protocol_read_as_pickle_reads_them(tmp_path, protocol):
    from accelsim.datasets import read_cifar_batch

    data = np.arange(3 * 3072, dtype=np.uint8).reshape(3, 3072) % 253
    value = {"batch_label": "x", b"data": data, "labels": [1, 2, 300], "filenames": [b"a", "b"],
             "nested": {"t": (1, -7, 2 ** 40, None, True, 1.0 == 1.0), "f": np.asfortranarray(
                 np.arange(6, dtype="<i4").reshape(2, 3))}}
    (tmp_path / "b").write_bytes(pickle.dumps(value, protocol=protocol))
    batch = read_cifar_batch(tmp_path / "b")
    assert np.array_equal(batch["data"], data) and batch["labels"] == [1, 2, 300]
    assert batch["filenames"] == [b"a", "b"] and batch["batch_label"] == "x"
    assert batch["nested"]["t"] == (1, -7, 2 ** 40, None, True, True)
    assert np.array_equal(batch["nested"]["f"], np.arange(6).reshape(2, 3))


_RECONSTRUCT = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"
_DTYPE_U1 = b"cnumpy\ndtype\nX\x02\x00\x00\x00u1\x89\x88\x87R(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"


@pytest.mark.parametrize("name,payload", [
    # a byte string declaring 5.8 GB in a 22-byte file
    ("bytes8", b"\x80\x04\x8e" + struct.pack("<Q", 5_800_000_000) + b"x" * 10 + b"."),
    # numpy's _frombuffer given an int: bytes(2e9) allocated zeros
    ("frombuffer", b"\x80\x02cnumpy.core.numeric\n_frombuffer\n(\x8a\x05" + (2_000_000_000).to_bytes(5, "little")
     + b"cnumpy\ndtype\n(X\x02\x00\x00\x00u1\x89\x88tRK\x01\x85X\x01\x00\x00\x00CtR."),
    # an ndarray declaring 10**12 x 3072 elements over 10 bytes
    ("shape", b"\x80\x02}X\x04\x00\x00\x00data" + _RECONSTRUCT + b"(K\x01\x8a\x05"
     + (10 ** 12).to_bytes(5, "little") + b"M\x00\x0c\x86" + _DTYPE_U1 + b"\x89C\x0a" + b"0" * 10
     + b"tbs."),
])
def test_cifar_declared_sizes_are_refused_before_allocation(tmp_path, name, payload):
    from accelsim.datasets import load_dataset

    (tmp_path / "test_batch").write_bytes(payload)
    with pytest.raises(DataError, match="test_batch: not a CIFAR python batch") as info:
        _bounded(lambda: load_dataset(f"cifar10:{tmp_path}"), megabytes=20)
    assert "\n" not in str(info.value) and len(str(info.value)) < 500


def test_cifar_repeated_references_cannot_multiply_memory(tmp_path):
    from accelsim.datasets import read_cifar_batch

    big = "\xff" * 1_000_000  # 2 MB in the file (UTF-8), 1 MB as text
    # the text once, then 300 latin1 encodings of it: 300 MB from a 2 MB file
    head = (b"\x80\x02}(X\x04\x00\x00\x00dataX" + struct.pack("<I", 2_000_000) + big.encode("utf-8")
            + b"q\x01X\x06\x00\x00\x00latin1q\x02c_codecs\nencode\nq\x03]q\x04(")
    blob = head + b"h\x03h\x01h\x02\x86R" * 300 + b"eu."
    (tmp_path / "b").write_bytes(blob)
    with pytest.raises(DataError, match="more memory than 3x the file's size"):
        _bounded(lambda: read_cifar_batch(tmp_path / "b"), seconds=5, megabytes=40)
    # one 1 MB array referenced 500 times is one array, not 500 copies
    array = np.zeros((1000, 1000), np.uint8)
    blob = pickle.dumps({"data": array, "labels": [array] * 500}, protocol=4)
    (tmp_path / "c").write_bytes(blob)
    batch = _bounded(lambda: read_cifar_batch(tmp_path / "c"), seconds=5, megabytes=40)
    assert len(batch["labels"]) == 500 and all(a is batch["data"] for a in batch["labels"])


@pytest.mark.timeout(60)
def test_cifar_batch_must_be_a_regular_file(tmp_path):
    from accelsim.datasets import load_dataset, read_cifar_batch

    _fifo_with_late_writer(tmp_path / "test_batch")
    start = time.perf_counter()
    with pytest.raises(DataError, match="test_batch: is a FIFO, expected a regular CIFAR batch"):
        read_cifar_batch(tmp_path / "test_batch")
    with pytest.raises(DataError, match="test_batch: missing CIFAR batch file"):
        load_dataset(f"cifar10:{tmp_path}")
    assert time.perf_counter() - start < 4


# ---------------------------------------------------------------- A5: mapper budget


def test_mapping_search_size_is_bounded(minimal_hw):
    from accelsim.hw import load_hw_dict

    # 16 x 256 candidates: 0.75-3.9 s CPU per layer on Timeloop's exercises; 100,000 took minutes
    hw = load_hw_dict(dict(minimal_hw, mapping={"search_size": 256}), source="x.yaml")
    assert hw.mapping.search_size == 256
    with pytest.raises(ConfigError, match=r"x.yaml: mapping.search_size: expected an integer from 1 "
                                          r"to 256, got 100000"):
        load_hw_dict(dict(minimal_hw, mapping={"search_size": 100_000}), source="x.yaml")


# ---------------------------------------------------------------- B: one line, not a traceback


def _base_recipe(tmp_path: Path, **changes) -> Path:
    recipe = dict(RECIPE, **changes)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("changes,field,words", [
    ({"model_kwargs": {"num_classes": -5}}, "model_kwargs.num_classes",
     "expected an integer from 1 to 100,000, got -5"),
    ({"model_kwargs": {"num_classes": 2 ** 31 - 1}}, "model_kwargs.num_classes", "from 1 to 100,000"),
    ({"model_kwargs": {"in_channels": 0}}, "model_kwargs.in_channels", "from 1 to 4,096"),
    ({"seed": 10 ** 59}, "seed", "expected an integer from 0 to 4,294,967,295, got 1000"),
    ({"data": {"dataset": "digits", "validation_seed": 2 ** 40}}, "data.validation_seed", "to 4,294,967,295"),
    ({"data": {"dataset": "digits", "batch_size": 10 ** 12}}, "data.batch_size", "from 1 to 1,048,576"),
    ({"stages": [{"name": "d", "epochs": 1, "optimizer": {"lr": 1e300}}]}, "stages[0].optimizer.lr",
     "expected a number <= 1000"),
    ({"stages": [{"name": "d", "epochs": 10 ** 12}]}, "stages[0].epochs", "from 1 to 100,000"),
    ({"stages": [{"name": "d", "epochs": 2, "lr_schedule": {"type": "step", "gamma": 1e300}}]},
     "stages[0].lr_schedule.gamma", "expected a number <= 1"),
    ({"stages": [{"name": "d", "epochs": 1, "weight_l1": 1e300}]}, "stages[0].weight_l1", "<= 1e+06"),
    ({"stages": [{"name": "d", "epochs": 1, "activation_penalty": {"type": "l1", "lambda": 1e300}}]},
     "stages[0].activation_penalty.lambda", "<= 1e+06"),
])
def test_recipe_numbers_out_of_range_are_one_line(tmp_path, capsys, changes, field, words):
    from accelsim.train.recipe import load_recipe

    path = _base_recipe(tmp_path, **changes)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}: {field}: ") and words in str(info.value)
    assert main(["train", str(path), "-o", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {info.value}\n" and len(err) < 400


def test_seed_flags_and_axes_are_range_checked(tmp_path, capsys):
    path = _base_recipe(tmp_path)
    assert main(["train", str(path), "-o", str(tmp_path / "run"), "--seed", str(10 ** 60), "-q"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --seed: expected an integer from 0 to 4,294,967,295, got a larger one\n"
    from accelsim.codesign.spec import load_codesign_spec

    spec = _codesign(tmp_path, {"seed": [0, 2 ** 40]}, [SPARTEN])
    with pytest.raises(ConfigError, match=r"training.seed\[1\]: expected an integer from 0 to 4294967295"):
        load_codesign_spec(spec)


@pytest.mark.parametrize("step", [float("nan"), float("inf"), 1.5, -3, "2", True, 10 ** 9])
def test_decode_step_that_is_not_a_step_is_one_line(step):
    """Layers in memory (captured, or read by any reader) with a damaged step tag."""
    from accelsim.sim.decode import phase_groups
    from accelsim.trace.llm import layer_phase

    layer = SimpleNamespace(name="decode1/fc", stats={"phase": "decode", "step": step})
    with pytest.raises(TraceError, match=r"layer 'decode1/fc': stats.step: expected the decode step "
                                         r"as an integer from 0 to 8,192, got ") as info:
        phase_groups([layer])  # NaN: int(nan) raised ValueError; 1.5 was taken as step 1
    assert "\n" not in str(info.value)
    for good, expected in ((2, 2), (2.0, 2), (None, None)):
        layer.stats["step"] = good
        assert layer_phase(layer) == ("decode", expected)


@pytest.mark.parametrize("literal", [".nan", ".NaN", ".inf", "-.Inf", "1e999", "-1e400"])
def test_non_finite_numbers_are_refused_by_the_yaml_loader(tmp_path, minimal_hw, literal):
    from accelsim.hw import load_hw
    from accelsim.sweep.spec import load_sweep_spec
    from accelsim.train.recipe import load_recipe

    (tmp_path / "base.yaml").write_text(yaml.safe_dump(minimal_hw))
    cases = {
        "hw.yaml": (yaml.safe_dump(minimal_hw).replace("clock_mhz: 500", f"clock_mhz: {literal}"), load_hw),
        "recipe.yaml": (yaml.safe_dump(RECIPE).replace("lr: 0.05", f"lr: {literal}"), load_recipe),
        "sweep.yaml": ("version: 1\nbase: base.yaml\ntraces: [t.trace]\n"
                       f"axes: {{pe_array.rows: [4]}}\nconstraints: {{max_pes: {literal}}}\n",
                       load_sweep_spec),
    }
    (tmp_path / "t.trace").write_bytes(b"")
    for name, (text, load) in cases.items():
        assert literal in text
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=rf"{name}: YAML at line \d+, column \d+: "
                                              rf"'{literal}' is not a finite number"):
            load(tmp_path / name)


@pytest.mark.parametrize("argv", [["trace", "info"], ["trace", "from-trace", "-o", "x.trace"]])
def test_trace_provenance_that_is_not_a_mapping_is_one_line(tmp_path, capsys, monkeypatch, argv):
    from trace_helpers import rewrite

    def edit(meta):
        meta["provenance"] = "not a mapping"

    path = rewrite(BASELINE_TRACE, tmp_path / "p.trace", meta=edit)
    monkeypatch.chdir(tmp_path)
    assert main(argv[:2] + [str(path)] + argv[2:]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and "provenance" in err and err.count("\n") == 1


def test_statistical_density_model_that_is_not_a_mapping_is_one_line(tmp_path, capsys):
    from trace_helpers import rewrite

    from accelsim.trace.statistical import statistical_from_model

    statistical_from_model("lenet5", None, 0.5, 0.5, output=tmp_path / "s.trace")

    def edit(meta):
        meta["layers"][0]["density_model"]["act"] = "uniform"

    path = rewrite(tmp_path / "s.trace", tmp_path / "bad.trace", meta=edit)
    assert main(["simulate", "--trace", str(path), "--hw", SPARTEN, "--samples", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and "density_model.act" in err and err.count("\n") == 1


# ---------------------------------------------------------------- C: error lines capped


def test_brief_is_bounded_whatever_the_value():
    from accelsim.errors import brief

    nested = [[[[list(range(1000))] * 1000] * 1000]]
    assert len(brief(nested)) <= 200 and brief(nested).startswith("[[[[")
    assert "..." in brief("x" * 10_000) and len(brief("x" * 10_000)) <= 200
    assert brief(10 ** 5000) == "<an integer of about 5,001 digits>"
    assert brief({"a": [1, 2]}) == "{'a': [1, 2]}" and brief(0.5) == "0.5" and brief(None) == "None"


@pytest.mark.parametrize("kind", ["sweep", "codesign", "hw"])
def test_alias_expanded_values_are_not_quoted_whole(tmp_path, minimal_hw, capsys, kind):
    bomb = _alias_bomb()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(minimal_hw))
    (tmp_path / "t.trace").write_bytes(b"")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    text, argv = {
        "sweep": (f"version: 1\nbase: base.yaml\ntraces: [t.trace]\naxes: {bomb}\n",
                  ["sweep", "{}", "-o", str(tmp_path / "o")]),
        "codesign": (f"version: 1\nrecipe: recipe.yaml\ntraining: {{penalty: {{x: {bomb}}}}}\n"
                     f"hardware: {{designs: [base.yaml]}}\n", ["codesign", "{}", "-o", str(tmp_path / "o")]),
        "hw": (yaml.safe_dump(minimal_hw).replace("rows: 4", f"rows: {bomb}"), ["hw", "show", "{}"]),
    }[kind]
    assert len(text) < 1000
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text)
    start = time.perf_counter()
    assert main([str(path) if a == "{}" else a for a in argv]) == 2  # was a 3.7 MB line
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1 and len(err) < 600


def test_cli_caps_the_error_line_it_prints(monkeypatch, capsys, tmp_path):
    import accelsim.hw.load as hw_load

    MAX_ERROR_LINE = 2000  # accelsim.cli.MAX_ERROR_LINE

    def huge(*args, **kwargs):
        raise AccelsimError("x" * 100_000 + "\nsecond line")

    monkeypatch.setattr(hw_load, "load_hw", huge)
    assert main(["hw", "show", str(tmp_path / "any.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) <= MAX_ERROR_LINE + 10
    assert err.rstrip().endswith("more characters)")


# ---------------------------------------------------------------- D: read-only install


def test_numba_cache_folder_choice():
    from accelsim.numba_config import choose_cache_dir

    pkg = Path("/opt/pkg/accelsim")
    home = {"HOME": "/home/u"}
    none = lambda folder: False  # noqa: E731
    only = lambda *ok: (lambda folder: any(str(folder).startswith(o) for o in ok))  # noqa: E731
    never = lambda folder: False  # noqa: E731
    # writable package: Numba's own __pycache__ next to the kernels
    assert choose_cache_dir(home, pkg, only("/opt/pkg"), never) == (None, True)
    # the user's NUMBA_CACHE_DIR is kept
    assert choose_cache_dir({"NUMBA_CACHE_DIR": "/c", **home}, pkg, none, never) == (None, True)
    # read-only package: XDG_CACHE_HOME (absolute only), then ~/.cache, then a private temp folder
    assert choose_cache_dir({"XDG_CACHE_HOME": "/x", **home}, pkg, only("/x", "/home"), never) == (
        "/x/accelsim/numba", True)
    assert choose_cache_dir({"XDG_CACHE_HOME": "rel", **home}, pkg, only("rel", "/home"), never) == (
        "/home/u/.cache/accelsim/numba", True)
    folder, cache = choose_cache_dir(home, pkg, none, lambda folder: True)
    assert cache and Path(folder).name == f"accelsim-numba-{os.getuid()}"
    # nothing writable: no cache at all rather than "no locator available" for every kernel
    assert choose_cache_dir(home, pkg, none, never) == (None, False)


def test_numba_private_temp_folder_refuses_a_planted_one(tmp_path):
    from accelsim.numba_config import _private_temp_folder

    mine = tmp_path / "mine"
    assert _private_temp_folder(mine) and (mine.stat().st_mode & 0o777) == 0o700
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    assert not _private_temp_folder(planted)  # others may write there: never load code from it
    (tmp_path / "link").symlink_to(mine)
    assert not _private_temp_folder(tmp_path / "link")


_SIMULATE = """
import os, sys
import numba
from accelsim.hw import load_hw
from accelsim.sim.simulate import simulate
from accelsim.trace.reader import open_trace
import accelsim, accelsim.map.sparse
assert accelsim.__file__.startswith(sys.argv[1]), accelsim.__file__
ran = sys.argv[4] == "simulate" and simulate(open_trace(sys.argv[2]), load_hw(sys.argv[3]), samples=1)
print(os.environ.get("NUMBA_CACHE_DIR"), numba.core.config.CACHE_DIR, bool(ran and ran.totals["cycles"] > 0))
"""


def _read_only_run(tmp_path: Path, home: Path, tmpdir: Path, what: str) -> subprocess.CompletedProcess:
    """Import the kernels (``what="import"``) or also run a small simulate (``"simulate"``)
    with the package in a read-only bind mount (in a user namespace)."""
    root = tmp_path / "ro"
    shutil.copytree(REPO / "accelsim", root / "pkg" / "accelsim",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "home").mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_CACHE_HOME", "NUMBA_CACHE_DIR", "PYTHONPATH")}
    env.update(HOME=str(home), TMPDIR=str(tmpdir), PYTHONPATH=str(root / "pkg"))
    script = (f"mount --bind {root} {root} && mount -o remount,bind,ro {root} && "
              f'exec "$0" -c "$1" {root / "pkg"} {BASELINE_TRACE} {SPARTEN} {what}')
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, sys.executable, _SIMULATE],
                          capture_output=True, text=True, env=env, cwd=root, timeout=300)


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", 'mount --bind "$0" "$0"', "/tmp"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not shutil.which("unshare") or not _unshare_works(),
                    reason="needs unshare -rm (user and mount namespaces) for a read-only mount")
def test_simulate_from_a_read_only_install(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    # a home inside the read-only mount (a service account): Numba's own fallback fails too
    done = _read_only_run(tmp_path, tmp_path / "ro" / "home", tmpdir, "simulate")
    assert done.returncode == 0, done.stderr[-2000:]  # was: "cannot cache function ... no locator"
    folder = tmpdir / f"accelsim-numba-{0}"  # uid 0 inside the namespace
    assert done.stdout.split() == [str(folder), str(folder), "True"]
    assert list(folder.rglob("*.nbi")), "the kernels were not cached in the fallback folder"
    # a writable home: its cache folder (the kernels only imported: no compiling again)
    shutil.rmtree(tmp_path / "ro")
    home = tmp_path / "home"
    done = _read_only_run(tmp_path, home, tmpdir, "import")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(home / ".cache" / "accelsim" / "numba")] * 2 + ["False"]


def test_trace_metadata_with_nan_is_one_line(tmp_path, capsys):
    from trace_helpers import rewrite

    def edit(meta):
        meta["layers"][0]["output_density"] = float("nan")

    path = rewrite(BASELINE_TRACE, tmp_path / "n.trace", meta=edit)
    assert main(["trace", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and "NaN" in err and err.count("\n") == 1


@pytest.mark.parametrize("kwargs", [{"num_classes": -5}, {"num_classes": 10 ** 9},
                                    {"in_channels": 0}])
def test_checkpoint_model_kwargs_are_range_checked(tmp_path, capsys, kwargs):
    from accelsim.train.checkpoint import load_checkpoint, save_checkpoint

    state, masks, meta = load_checkpoint("models/lenet5_digits_baseline.pt")
    path = tmp_path / "k.pt"
    save_checkpoint(path, state, dict(meta, model_kwargs=kwargs), masks)
    assert main(["trace", "capture", "--checkpoint", str(path), "--samples", "1",
                 "--data", "random:1,28,28", "-o", str(tmp_path / "t.trace")]) == 2
    err = capsys.readouterr().err
    key = next(iter(kwargs))
    assert f"model_kwargs.{key}: expected an integer from" in err and err.count("\n") == 1
