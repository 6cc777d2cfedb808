"""The on-disk mapping store (accelsim.map.store): a hit is the cold result, entries are data.

Each test points ``ACCELSIM_CACHE_DIR`` at its own folder and starts from empty in-process
caches (``fresh()``: what a new process sees), counting the searches that really run.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from accelsim.map import store
from accelsim.map.nest import DIMS
from accelsim.sim import loopnest
from accelsim.sim.engine import simulate_layer
from sim_helpers import make_hw, random_layer

REPO = Path(__file__).resolve().parents[1]
HIERARCHY = [
    {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "size_bytes": 16384, "word_bits": 64,
     "read_words_per_cycle": 8},
    {"name": "spad", "instances": "per_pe", "keeps": ["weights", "inputs", "outputs"],
     "size_bytes": 128, "word_bits": 16},
]


def design(dataflow="row_stationary", hierarchy=None, **kw):
    return make_hw(pe_array={"rows": 4, "cols": 4, "dataflow": dataflow},
                   memory_hierarchy=hierarchy or HIERARCHY, **kw)


SMALL = dict(C=3, H=6, W=6, K=4)      # P = Q = 4: a search of ~40 ms


def layer_of(seed=0, **geometry):
    geo = dict(C=6, H=9, W=9, K=10, R=3, S=3)
    geo.update(geometry)
    return random_layer("l", seed=seed, density_a=0.4, density_w=0.6, **geo)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private store folder, the store on, and a counter of the searches that run."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("ACCELSIM_CACHE_DIR", str(folder))
    monkeypatch.delenv("ACCELSIM_MAPPING_CACHE", raising=False)
    store._reset_for_tests()
    calls = []
    real = loopnest.search

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(loopnest, "search", counted)

    def fresh():
        monkeypatch.setattr(loopnest, "_MAPPINGS", {})
        monkeypatch.setattr(loopnest, "_SEARCHES", {})
        store._reset_for_tests()

    fresh()
    yield folder / "mappings", calls, fresh
    store._reset_for_tests()


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/*.json")) if folder.is_dir() else []


def assert_same(a, b) -> None:
    """Two MapResults equal field by field (the access-count arrays element by element)."""
    assert a.mapping == b.mapping
    assert a.candidates == b.candidates
    assert a.cost == b.cost
    for name in a.counts.__dataclass_fields__:
        x, y = getattr(a.counts, name), getattr(b.counts, name)
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y), name
        else:
            assert x == y, name


def covers(levels: list, bounds: dict) -> bool:
    """From first principles: each dimension's factors, outermost first over the levels (each
    level's temporal loops then its spatial loops), multiply to its bound, or the outermost
    one is the ceiling of the bound over the product of the others."""
    for dim, bound in bounds.items():
        factors = [f for lv in levels for d, f, *_ in lv["temporal"] + lv["spatial"]
                   if d == dim and f > 1]
        total = 1
        for f in factors:
            total *= f
        if total == bound:
            continue
        inner = total // factors[0] if factors else 1
        if not factors or inner >= bound or factors[0] != -(-bound // inner):
            return False
    return True


def test_a_hit_is_the_cold_result_with_the_same_rows(env, capsys):
    folder, calls, fresh = env
    hw, layer = design(), layer_of()
    cold = loopnest.map_layer(layer, hw)
    cold_row = simulate_layer(layer, hw, samples=2)
    assert len(calls) == 1
    (path,) = entries(folder)
    raw = json.loads(path.read_text())
    assert raw["key"] == path.stem and path.parent.name == path.stem[:2]
    assert [lv["level"] for lv in raw["levels"]] == ["DRAM", "glb", "spad"]
    g = layer.geometry
    assert covers(raw["levels"], dict(zip(DIMS, (1, 1, g.K, g.C, g.P, g.Q, g.R, g.S))))
    fresh()                                  # a new process: only the store is left
    warm = loopnest.map_layer(layer, hw)
    warm_row = simulate_layer(layer, hw, samples=2)
    assert len(calls) == 1                   # no search ran
    assert_same(cold, warm)
    assert warm_row == cold_row
    assert capsys.readouterr().err == ""


def test_fields_the_search_reads_miss_and_the_others_hit(env):
    folder, calls, fresh = env
    layer = layer_of(**SMALL)
    loopnest.map_layer(layer, design())
    assert len(calls) == 1
    hits = [design(name="renamed", vector_unit={"lanes": 64}),          # not read
            design(residency={"batch": 1})]
    for hw in hits:
        fresh()
        loopnest.map_layer(layer, hw)
        assert len(calls) == 1, hw.name
    glb = [dict(HIERARCHY[0], size_bytes=8192), HIERARCHY[1]]
    read_pj = [HIERARCHY[0], dict(HIERARCHY[1], read_pj=3.0)]
    misses = [design(hierarchy=glb),                                     # a capacity
              design(hierarchy=read_pj),                                 # an energy
              design(dataflow="output_stationary"),                      # the dataflow
              design(mapping={"objective": "latency"}),                  # the objective
              design(mapping={"search_size": 8}),                        # the budget
              design(dram={"ideal": False, "bandwidth_gb_per_s": 4.0}),  # latency ranks by it
              design(sparsity={"skip_zero_activations": True})]          # the sparse model
    for n, hw in enumerate(misses, start=2):
        fresh()
        loopnest.map_layer(layer, hw)
        assert len(calls) == n, n
    fresh()
    loopnest.map_layer(layer_of(seed=1, **dict(SMALL, K=5)), design())                 # another shape
    assert len(calls) == len(misses) + 2
    assert len(entries(folder)) == len(misses) + 2


def _valid_entry(env):
    folder, calls, fresh = env
    hw, layer = design(), layer_of(**SMALL)
    cold = loopnest.map_layer(layer, hw)
    (path,) = entries(folder)
    return hw, layer, cold, path, json.loads(path.read_text())


def _bad_factor(raw):
    lv = next(lv for lv in raw["levels"] if any(f > 1 for _, f in lv["temporal"]))
    i = next(i for i, (_, f) in enumerate(lv["temporal"]) if f > 1)
    lv["temporal"][i][1] += 1                  # no longer multiplies to the bound
    return raw


def _too_wide(raw):
    """K and P (4 each) both spread along the 4 columns (factors still cover the bounds)."""
    for lv in raw["levels"]:
        lv["temporal"] = [l for l in lv["temporal"] if l[0] not in ("K", "P")]
        lv["spatial"] = [l for l in lv["spatial"] if l[0] not in ("K", "P")]
    raw["levels"][1]["spatial"] += [["K", 4, "X"], ["P", 4, "X"]]
    return raw


def _set(path, value):
    def edit(raw):
        node = raw
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
        return raw
    return edit


CORRUPT = {
    "truncated": lambda text: text[: len(text) // 2],
    "not json": lambda text: "\x00\xff garbage",
    "empty": lambda text: "",
    "a list": lambda text: "[1, 2]",
    "deep": lambda text: "[" * 100000 + "]" * 100000,
}
EDITS = {
    "factor as text": lambda raw: _set(["levels", 0, "temporal"], [["K", "10"]])(raw),
    "factor true": lambda raw: _set(["levels", 0, "temporal"], [["K", True]])(raw),
    "factor zero": lambda raw: _set(["levels", 0, "temporal"], [["K", 0]])(raw),
    "factor float": lambda raw: _set(["levels", 0, "temporal"], [["K", 10.0]])(raw),
    "unknown dim": lambda raw: _set(["levels", 0, "temporal"], [["Z", 2]])(raw),
    "bad axis": lambda raw: _set(["levels", 1, "spatial"], [["K", 2, "Z"]])(raw),
    "level renamed": lambda raw: _set(["levels", 1, "level"], "other")(raw),
    "level missing": lambda raw: _set(["levels"], raw["levels"][:2])(raw),
    "extra field": lambda raw: _set(["extra"], 1)(raw),
    "other key": lambda raw: _set(["key"], "0" * 64)(raw),
    "store version": lambda raw: _set(["store"], 99)(raw),
    "candidates negative": lambda raw: _set(["candidates"], -1)(raw),
    "factors off the bounds": _bad_factor,
    "array overflow": _too_wide,
}


@pytest.mark.parametrize("kind", sorted(CORRUPT) + sorted(EDITS))
def test_a_bad_entry_is_recomputed_with_one_warning(env, capsys, kind):
    folder, calls, fresh = env
    hw, layer, cold, path, raw = _valid_entry(env)
    text = path.read_text()
    path.write_text(CORRUPT[kind](text) if kind in CORRUPT else json.dumps(EDITS[kind](raw)))
    fresh()
    got = loopnest.map_layer(layer, hw)
    assert_same(got, cold)
    assert len(calls) == 2                   # searched again
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: mapping store: ")
    assert str(path) in err and "Traceback" not in err
    assert path.read_text() == text          # rewritten with the valid entry
    fresh()
    assert_same(loopnest.map_layer(layer, hw), cold)
    assert len(calls) == 2 and capsys.readouterr().err == ""


def test_bad_entries_warn_once_per_process(env, capsys):
    folder, calls, fresh = env
    hw = design()
    layers = [layer_of(seed=s, **dict(SMALL, K=4 + s)) for s in range(3)]
    for layer in layers:
        loopnest.map_layer(layer, hw)
    for path in entries(folder):
        path.write_text("{")
    loopnest._MAPPINGS.clear()
    loopnest._SEARCHES.clear()               # the same process: its warning already printed?
    store._reset_for_tests()
    for layer in layers:
        loopnest.map_layer(layer, hw)
    assert len(calls) == 6
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo"])
def test_a_link_folder_or_fifo_in_place_of_an_entry_is_left_alone(env, capsys, tmp_path, kind):
    folder, calls, fresh = env
    hw, layer, cold, path, raw = _valid_entry(env)
    text = path.read_text()
    path.unlink()
    if kind == "symlink":
        target = tmp_path / "elsewhere.json"
        target.write_text(text)                # even a valid entry is not read through a link
        path.symlink_to(target)
    elif kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    fresh()
    assert_same(loopnest.map_layer(layer, hw), cold)
    assert len(calls) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "not a regular file" in err
    mode = os.lstat(path).st_mode
    assert {"symlink": stat.S_ISLNK, "directory": stat.S_ISDIR, "fifo": stat.S_ISFIFO}[kind](mode)
    if kind == "symlink":
        assert (tmp_path / "elsewhere.json").read_text() == text


def _check_disabled(env, capsys, where: str):
    folder, calls, fresh = env
    hw = design()
    first = loopnest.map_layer(layer_of(**SMALL), hw)
    loopnest.map_layer(layer_of(seed=1, **dict(SMALL, K=5)), hw)
    assert len(calls) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: mapping store: ")
    assert where in err and "Traceback" not in err
    return first


def test_a_cache_folder_that_is_a_file_disables_the_store(env, capsys, tmp_path, monkeypatch):
    folder, calls, fresh = env
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("ACCELSIM_CACHE_DIR", str(blocker))
    got = _check_disabled(env, capsys, str(blocker))
    assert blocker.read_text() == "x"
    monkeypatch.setenv("ACCELSIM_MAPPING_CACHE", "0")
    fresh()
    assert_same(loopnest.map_layer(layer_of(**SMALL), design()), got)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_write_errors_disable_the_store(env, capsys, monkeypatch, code):
    folder, calls, fresh = env
    tried = []

    def failing(path, text, what="output"):
        tried.append(path)
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(store, "atomic_write_text", failing)
    _check_disabled(env, capsys, os.strerror(code))
    assert len(tried) == 1                   # off after the first error
    assert entries(folder) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_read_only_store_disables_writes(env, capsys):
    folder, calls, fresh = env
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:
        _check_disabled(env, capsys, str(folder))
    finally:
        folder.chmod(0o755)
    assert entries(folder) == []


def test_disabled_by_the_environment_writes_nothing(env, monkeypatch, capsys):
    folder, calls, fresh = env
    monkeypatch.setenv("ACCELSIM_MAPPING_CACHE", "0")
    hw, layer = design(), layer_of(**SMALL)
    loopnest.map_layer(layer, hw)
    fresh()
    loopnest.map_layer(layer, hw)
    assert len(calls) == 2
    assert not folder.parent.exists()
    assert capsys.readouterr().err == ""


def test_store_location(tmp_path):
    assert store.store_dir({"ACCELSIM_CACHE_DIR": "/x/c", "XDG_CACHE_HOME": "/y"}) == \
        Path("/x/c/mappings")
    assert store.store_dir({"XDG_CACHE_HOME": "/y", "HOME": "/h"}) == Path("/y/accelsim/mappings")
    assert store.store_dir({"XDG_CACHE_HOME": "rel", "HOME": "/h"}) == \
        Path("/h/.cache/accelsim/mappings")
    for off in ("0", "false", "off", " NO "):
        assert store.store_dir({"ACCELSIM_MAPPING_CACHE": off, "ACCELSIM_CACHE_DIR": "/x"}) is None
    assert store.store_dir({"ACCELSIM_MAPPING_CACHE": "1", "ACCELSIM_CACHE_DIR": "/x"}) == \
        Path("/x/mappings")


def test_a_fan_out_folder_keeps_the_most_recently_used_entries(env, monkeypatch):
    folder, calls, fresh = env
    hw, layer, cold, path, raw = _valid_entry(env)
    monkeypatch.setattr(store, "PER_FOLDER", 3)
    sub = folder / "ab"
    sub.mkdir()
    names = [f"ab{i:062x}" for i in range(5)]
    for i, key in enumerate(names[:4]):
        (sub / f"{key}.json").write_text("{}")
        os.utime(sub / f"{key}.json", (1000 + i, 1000 + i))
    stale = sub / f".{names[0]}.json.0123abcd.tmp"
    stale.write_text("")
    os.utime(stale, (1, 1))
    store.save(folder, names[4], cold)       # 5 entries: the 2 oldest go, and the stale temp
    assert sorted(p.stem for p in sub.glob("*.json")) == names[2:]
    assert not stale.exists()


_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from accelsim.map import store
    from accelsim.sim import loopnest
    from test_map_store import SMALL, design, layer_of
    result = loopnest.map_layer(layer_of(**SMALL), design())
    key = next(iter(p.stem for p in Path({folder!r}).glob("*/*.json")))
    for _ in range(200):
        store.save(Path({folder!r}), key, result)
    print(key)
""")


def test_processes_writing_the_same_key_leave_a_valid_entry(env, capsys):
    folder, calls, fresh = env
    hw, layer, cold, path, raw = _valid_entry(env)
    code = _WRITER.format(tests=str(REPO / "tests"), folder=str(folder))
    env_vars = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env_vars, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and err == "", err
        assert out.strip() == path.stem
    assert entries(folder) == [path]
    assert list(path.parent.iterdir()) == [path]            # no temporary file left
    fresh()
    assert_same(loopnest.map_layer(layer, hw), cold)
    assert len(calls) == 1 and capsys.readouterr().err == ""


def test_a_sweep_keeps_mappings_in_its_own_cache_folder(env, tmp_path):
    from accelsim.sweep.run import run_sweep
    from accelsim.sweep.spec import load_sweep_spec
    from test_sweep_run import tiny_trace, write_spec

    folder, calls, fresh = env
    tiny_trace(tmp_path / "tiny.trace")
    spec = load_sweep_spec(write_spec(tmp_path, {"vector_unit.lanes": [16, 32]}))
    run_sweep(spec, tmp_path / "out", workers=1, progress=False)
    stored = entries(tmp_path / "out" / "cache" / "mappings")
    assert len(stored) == len(calls) > 0     # every search of the sweep, stored there
    assert not folder.exists()
    assert os.environ["ACCELSIM_CACHE_DIR"] == str(folder.parent)     # restored


# -- random cases ---------------------------------------------------------------------------
DATAFLOWS = ("row_stationary", "output_stationary", "weight_stationary", "input_stationary")


def random_case(seed: int):
    """A random small layer (odd sizes, stride, dilation, padding, groups) on a random small
    design (one PE to 4 x 5, one or two levels, skipping or not), batch of one or two."""
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 1, 2, 3]))
    geo = dict(C=groups * int(rng.integers(1, 6)), K=groups * int(rng.integers(1, 7)),
               H=int(rng.integers(3, 12)), W=int(rng.integers(3, 12)), R=int(rng.choice([1, 2, 3])),
               S=int(rng.choice([1, 3])), groups=groups, stride_h=int(rng.choice([1, 2])),
               stride_w=int(rng.choice([1, 2])), pad_h=int(rng.integers(0, 2)),
               pad_w=int(rng.integers(0, 2)), dil_h=int(rng.choice([1, 1, 2])))
    geo["H"] = max(geo["H"], (geo["R"] - 1) * geo["dil_h"] + 1)
    layer = random_layer("l", seed=seed, density_a=float(rng.uniform(0.1, 1.0)),
                         density_w=float(rng.uniform(0.1, 1.0)), **geo)
    rows, cols = (1, 1) if rng.random() < 0.2 else (int(rng.integers(1, 5)), int(rng.integers(1, 6)))
    glb = {"name": "glb", "keeps": ["weights", "inputs", "outputs"], "word_bits": 16,
           "size_bytes": int(rng.choice([4096, 16384, 65536])), "read_words_per_cycle": 4}
    spad = {"name": "spad", "instances": "per_pe", "keeps": ["weights", "inputs", "outputs"],
            "size_bytes": int(rng.choice([64, 256, 1024])), "word_bits": 16}
    levels = [glb, spad] if rng.random() < 0.8 else [glb]
    sparsity = {"skip_zero_activations": bool(rng.random() < 0.5)}
    hw = make_hw(pe_array={"rows": rows, "cols": cols, "dataflow": str(rng.choice(DATAFLOWS))},
                 memory_hierarchy=levels, sparsity=sparsity,
                 residency={"batch": int(rng.choice([1, 2]))})
    return layer, hw, rng


def _mutate(raw: dict, rng) -> dict:
    """One random edit of an entry: a factor, a dim, an axis, a level name, a loop moved."""
    levels = raw["levels"]
    lv = levels[int(rng.integers(len(levels)))]
    loops = [(part, i) for part in ("temporal", "spatial") for i in range(len(lv[part]))]
    kind = int(rng.integers(5))
    if not loops or kind == 4:
        lv["level"] = lv["level"] + "x"
        return raw
    part, i = loops[int(rng.integers(len(loops)))]
    loop = lv[part][i]
    if kind == 0:
        loop[1] = int(max(1, loop[1] + int(rng.choice([-1, 1, 2]))))
    elif kind == 1:
        loop[0] = str(rng.choice(DIMS))
    elif kind == 2 and part == "spatial":
        loop[2] = "Y" if loop[2] == "X" else "X"
    else:                                       # move the loop to another level
        other = levels[int(rng.integers(len(levels)))]
        lv[part].pop(i)
        other[part].append(loop)
    return raw


def check_random_case(seed: int, env, capsys) -> str:
    """Cold == stored; a random edit of the entry is rejected or a valid mapping; returns
    which (``"none"`` when no mapping fits)."""
    folder, calls, fresh = env
    layer, hw, rng = random_case(seed)
    try:
        cold = loopnest.map_layer(layer, hw, batch=hw.residency.batch)
    except Exception as exc:            # a layer no mapping fits: nothing stored
        assert type(exc).__name__ == "MappingError"
        assert entries(folder) == []
        return "none"
    (path,) = entries(folder)
    text = path.read_text()
    raw = json.loads(text)
    g = layer.geometry
    bounds = dict(zip(DIMS, (hw.residency.batch, g.groups, g.K // g.groups, g.C // g.groups,
                             g.P, g.Q, g.R, g.S)))
    assert covers(raw["levels"], bounds)
    fresh()
    assert_same(loopnest.map_layer(layer, hw, batch=hw.residency.batch), cold)
    assert len(calls) == 1 and capsys.readouterr().err == ""
    # a random edit: rejected (recomputed, one warning) or a valid mapping of the layer
    edited = _mutate(json.loads(text), rng)
    path.write_text(json.dumps(edited))
    fresh()
    got = loopnest.map_layer(layer, hw, batch=hw.residency.batch)
    err = capsys.readouterr().err
    if err:
        assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err
        assert_same(got, cold)
        assert path.read_text() == text
        return "rejected"
    else:
        assert covers(edited["levels"], bounds)     # accepted only if it covers the layer
        fan = next(lv for lv in edited["levels"] if lv["level"] == "glb")   # spreads over PEs
        for axis, size in (("X", hw.pe_array.cols), ("Y", hw.pe_array.rows)):
            used = 1
            for d, f, a in fan["spatial"]:
                used *= f if a == axis else 1
            assert used <= size
        assert [[lv.level, [[l.dim, l.factor] for l in lv.temporal],
                 [[l.dim, l.factor, l.axis] for l in lv.spatial]] for lv in got.mapping.levels] == \
            [[lv["level"], lv["temporal"], lv["spatial"]] for lv in edited["levels"]]
        return "accepted"


@pytest.mark.parametrize("seed", range(6))
def test_random_cases(env, capsys, seed):
    check_random_case(seed, env, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6, 306))
def test_random_cases_slow(env, capsys, seed):
    check_random_case(seed, env, capsys)


def test_the_key_follows_the_mapper_version_and_its_code(env, tmp_path, monkeypatch):
    from accelsim.map import mapper

    folder, calls, fresh = env
    hw, layer = design(), layer_of(**SMALL)
    loopnest.map_layer(layer, hw)
    fresh()
    monkeypatch.setattr(mapper, "MAPPER_VERSION", mapper.MAPPER_VERSION + 1)
    loopnest.map_layer(layer, hw)
    assert len(calls) == 2                   # a new version: searched again
    # the fingerprint reads the modules' source: an edit changes it
    module = tmp_path / "fp_probe_mod.py"
    module.write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(store, "FINGERPRINT_MODULES", ("fp_probe_mod",))
    store.code_fingerprint.cache_clear()
    before = store.code_fingerprint()
    module.write_text("X = 2\n")
    store.code_fingerprint.cache_clear()
    assert store.code_fingerprint() != before
    store.code_fingerprint.cache_clear()    # recomputed from the real modules after the test
