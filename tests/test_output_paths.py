"""Outputs never destroy what they land on: an output replaces nothing but a regular file.

Every writer refuses, in one line naming the path, an existing destination that is a FIFO,
socket, device, directory or symbolic link; the node (or a link's victim) is left as it
was and no temporary file is left behind. Every node here is made in ``tmp_path``; no test
touches /dev/null or any other system path.
"""
from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from accelsim.atomic import atomic_write, atomic_write_text, check_output_path, open_output_fd
from accelsim.cli import main
from accelsim.errors import AccelsimError
from accelsim.sweep.lock import LOCK_NAME, FolderLock

REPO = Path(__file__).resolve().parents[1]
TRACE = str(REPO / "traces" / "lenet5_digits_dual.trace")
HW = REPO / "hw_configs"
VICTIM_TEXT = "precious\n"


# --------------------------------------------------------------------------- nodes
def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _socket(path: Path) -> Path:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
    except OSError as exc:  # e.g. a tmp_path longer than sun_path allows
        pytest.skip(f"cannot bind a unix socket here: {exc}")
    finally:
        sock.close()  # the socket file stays in the folder
    return path


def _device(path: Path) -> Path:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # a private "null" device node
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    (path / "inside.txt").write_text(VICTIM_TEXT)
    return path


def _victim(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir(exist_ok=True)
    victim = folder / "victim.txt"
    victim.write_text(VICTIM_TEXT)
    return victim


def _link_to_file(path: Path) -> Path:
    path.symlink_to(_victim(path.parent))
    return path


def _link_to_fifo(path: Path) -> Path:
    target = path.parent / "elsewhere"
    target.mkdir(exist_ok=True)
    path.symlink_to(_fifo(target / "pipe"))
    return path


def _dangling_link(path: Path) -> Path:
    path.symlink_to(path.parent / "not-there-yet.txt")
    return path


NODES = {
    "fifo": (_fifo, "a FIFO"),
    "socket": (_socket, "a socket"),
    "device": (_device, "a device"),
    "directory": (_directory, "a directory"),
    "link-to-file": (_link_to_file, "a symbolic link"),
    "link-to-fifo": (_link_to_fifo, "a symbolic link"),
    "dangling-link": (_dangling_link, "a symbolic link"),
}


def _snapshot(path: Path) -> tuple:
    """What must not change: the node's type and identity, and what a link points at."""
    info = os.lstat(path)
    extra = None
    if stat.S_ISLNK(info.st_mode):
        extra = os.readlink(path)
    elif stat.S_ISCHR(info.st_mode):
        extra = info.st_rdev
    elif stat.S_ISDIR(info.st_mode):
        extra = sorted(os.listdir(path))
    return stat.S_IFMT(info.st_mode), info.st_ino, extra


def _assert_untouched(tmp_path: Path, path: Path, before: tuple) -> None:
    assert _snapshot(path) == before
    victim = tmp_path / "elsewhere" / "victim.txt"
    if victim.exists():
        assert victim.read_text() == VICTIM_TEXT
    if (tmp_path / "elsewhere" / "pipe").exists():
        assert stat.S_ISFIFO(os.lstat(tmp_path / "elsewhere" / "pipe").st_mode)
    if path.is_dir() and not path.is_symlink():
        assert (path / "inside.txt").read_text() == VICTIM_TEXT


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def _one_line(message: str, path: Path, kind: str) -> None:
    assert "\n" not in message.strip(), message
    assert str(path) in message and kind in message, message


@pytest.fixture(params=sorted(NODES))
def node(request, tmp_path):
    make, kind = NODES[request.param]
    return make, kind


# --------------------------------------------------------------------------- the atomic writer
def test_atomic_writer_refuses_every_non_regular_destination(tmp_path, node):
    make, kind = node
    path = make(tmp_path / "out.csv")
    before = _snapshot(path)
    called = []
    with pytest.raises(AccelsimError) as info:
        atomic_write(path, lambda tmp: called.append(Path(tmp).write_text("new")))
    _one_line(str(info.value), path, kind)
    assert "regular file" in str(info.value)
    assert not called  # refused before anything was written
    _assert_untouched(tmp_path, path, before)
    assert _temps(tmp_path) == []


def test_check_output_path_accepts_missing_and_regular_files(tmp_path):
    assert check_output_path(tmp_path / "new.csv") == tmp_path / "new.csv"
    assert check_output_path(tmp_path / "no" / "such" / "dir.csv") == tmp_path / "no/such/dir.csv"
    regular = tmp_path / "old.csv"
    regular.write_text("old")
    assert check_output_path(regular) == regular
    atomic_write_text(regular, "new")
    assert regular.read_text() == "new" and _temps(tmp_path) == []


def test_a_path_with_a_newline_is_refused_on_one_line(tmp_path):
    path = _fifo(tmp_path / "evil\nname.csv")
    with pytest.raises(AccelsimError) as info:
        atomic_write_text(path, "x")
    assert "\n" not in str(info.value) and "evil\\nname.csv" in str(info.value)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_destination_swapped_during_the_write_is_refused_before_the_move(tmp_path):
    path = tmp_path / "out.csv"

    def write(tmp: str) -> None:
        Path(tmp).write_text("new")
        os.mkfifo(path)  # an attacker plants a FIFO while the output is being written

    with pytest.raises(AccelsimError) as info:
        atomic_write(path, write)
    _one_line(str(info.value), path, "a FIFO")
    assert stat.S_ISFIFO(os.lstat(path).st_mode)
    assert _temps(tmp_path) == []


def test_temporary_file_swapped_for_a_link_is_not_moved(tmp_path):
    victim = _victim(tmp_path)
    path = tmp_path / "out.csv"

    def write(tmp: str) -> None:
        os.unlink(tmp)
        os.symlink(victim, tmp)

    with pytest.raises(AccelsimError):
        atomic_write(path, write)
    assert not path.exists() and not path.is_symlink()
    assert victim.read_text() == VICTIM_TEXT
    assert _temps(tmp_path) == []


def test_temporary_file_is_created_without_following_a_planted_link(tmp_path, monkeypatch):
    """The temporary name is opened O_CREAT|O_EXCL|O_NOFOLLOW: a link planted at the name it
    picks is neither followed nor replaced; another name is tried."""
    import accelsim.atomic as atomic

    victim = _victim(tmp_path)
    names = iter(["aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: next(names))
    planted = tmp_path / ".out.csv.aaaaaaaa.tmp"
    planted.symlink_to(victim)
    atomic_write_text(tmp_path / "out.csv", "new")
    assert (tmp_path / "out.csv").read_text() == "new"
    assert planted.is_symlink() and victim.read_text() == VICTIM_TEXT


# --------------------------------------------------------------------------- files written in place
def test_open_output_fd_refuses_non_regular_files_and_hard_links(tmp_path, node):
    make, kind = node
    path = make(tmp_path / "log.jsonl")
    before = _snapshot(path)
    with pytest.raises(AccelsimError) as info:
        open_output_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "metrics log")
    _one_line(str(info.value), path, kind)
    _assert_untouched(tmp_path, path, before)


def test_open_output_fd_refuses_a_file_with_other_hard_links(tmp_path):
    victim = _victim(tmp_path)
    path = tmp_path / "log.jsonl"
    os.link(victim, path)
    with pytest.raises(AccelsimError) as info:
        open_output_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "metrics log")
    assert "hard links" in str(info.value) and str(path) in str(info.value)
    assert victim.read_text() == VICTIM_TEXT


def test_sweep_lock_refuses_non_regular_lock_files(tmp_path, node):
    make, kind = node
    out = tmp_path / "out"
    out.mkdir()
    path = make(out / LOCK_NAME)
    before = _snapshot(path)
    with pytest.raises(AccelsimError) as info:
        with FolderLock(out):
            pass
    _one_line(str(info.value), path, kind)
    _assert_untouched(tmp_path, path, before)


def test_sweep_lock_symlink_does_not_truncate_its_target(tmp_path):
    victim = _victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(victim)
    with pytest.raises(AccelsimError) as info:
        FolderLock(out).acquire()
    assert "symbolic link" in str(info.value)
    assert victim.read_text() == VICTIM_TEXT


def test_sweep_lock_hard_link_does_not_truncate_its_target(tmp_path):
    victim = _victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    os.link(victim, out / LOCK_NAME)
    with pytest.raises(AccelsimError) as info:
        FolderLock(out).acquire()
    assert "hard links" in str(info.value)
    assert victim.read_text() == VICTIM_TEXT


def test_sweep_lock_still_works_on_a_fresh_or_stale_regular_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
    (out / LOCK_NAME).write_text("999999999\n")  # left by a dead owner
    with FolderLock(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())


def test_sweep_cli_refuses_a_planted_lock(tmp_path, capsys):
    from test_sweep_run import tiny_trace, write_spec

    tiny_trace(tmp_path / "tiny.trace")
    spec_path = write_spec(tmp_path, {"pe_array.rows": [2]})
    out = tmp_path / "out"
    out.mkdir()
    lock = _fifo(out / LOCK_NAME)
    assert main(["sweep", str(spec_path), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and str(lock) in err, err
    assert stat.S_ISFIFO(os.lstat(lock).st_mode)
    assert not (out / "cache").exists()


# --------------------------------------------------------------------------- CLI verbs end to end
def _cli_refuses(argv: list[str], path: Path, kind: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    _one_line(err, path, kind)


@pytest.mark.parametrize("name", ["fifo", "device", "link-to-file"])
def test_simulate_output_refuses_non_regular_files(tmp_path, capsys, name):
    make, kind = NODES[name]
    path = make(tmp_path / "results.csv")
    before = _snapshot(path)
    _cli_refuses(["simulate", "--trace", TRACE, "--hw", str(HW / "eyeriss_v1.yaml"),
                  "--samples", "2", "-o", str(path)], path, kind, capsys)
    _assert_untouched(tmp_path, path, before)
    assert not (tmp_path / "results.csv.json").exists()  # nothing half-written beside it
    assert _temps(tmp_path) == []


def test_simulate_output_refuses_a_planted_sidecar_before_writing_the_table(tmp_path, capsys):
    path = tmp_path / "results.csv"
    side = _fifo(tmp_path / "results.csv.json")
    _cli_refuses(["simulate", "--trace", TRACE, "--hw", str(HW / "eyeriss_v1.yaml"),
                  "--samples", "2", "-o", str(path)], side, "a FIFO", capsys)
    assert not path.exists() and stat.S_ISFIFO(os.lstat(side).st_mode)
    assert _temps(tmp_path) == []


def test_simulate_output_still_replaces_a_regular_file(tmp_path, capsys):
    path = tmp_path / "results.csv"
    path.write_text("old\n")
    assert main(["simulate", "--trace", TRACE, "--hw", str(HW / "eyeriss_v1.yaml"),
                 "--samples", "2", "-o", str(path)]) == 0
    assert path.read_text().startswith("hw_name") or "layer" in path.read_text().splitlines()[0]
    assert json.loads((tmp_path / "results.csv.json").read_text())["meta"]
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("name", ["fifo", "socket", "device", "link-to-file", "directory"])
def test_map_save_mappings_refuses_non_regular_files(tmp_path, capsys, name):
    make, kind = NODES[name]
    path = make(tmp_path / "mappings.yaml")
    before = _snapshot(path)
    _cli_refuses(["map", "--trace", TRACE, "--hw", str(HW / "eyeriss_v1.yaml"),
                  "--layer", "conv2", "--save-mappings", str(path)], path, kind, capsys)
    _assert_untouched(tmp_path, path, before)
    assert _temps(tmp_path) == []


def test_map_save_mappings_still_writes_a_regular_file(tmp_path, capsys):
    path = tmp_path / "mappings.yaml"
    path.write_text("old\n")
    assert main(["map", "--trace", TRACE, "--hw", str(HW / "eyeriss_v1.yaml"),
                 "--layer", "conv2", "--save-mappings", str(path)]) == 0
    assert "conv2" in path.read_text() and _temps(tmp_path) == []


# --------------------------------------------------------------------------- the training log
TINY_RECIPE = {
    "version": 1, "name": "tiny", "seed": 3, "model": "lenet5",
    "data": {"dataset": "synthetic:1,32,32,10,64", "batch_size": 32},
    "stages": [{"name": "dense", "epochs": 2, "optimizer": {"type": "sgd", "lr": 0.05}}],
}


def test_new_training_run_refuses_a_planted_metrics_log(tmp_path):
    from accelsim.train import parse_recipe, run_recipe
    from accelsim.train.run import METRICS_FILE

    out = tmp_path / "run"
    out.mkdir()
    path = _fifo(out / METRICS_FILE)
    with pytest.raises(AccelsimError) as info:
        run_recipe(parse_recipe(TINY_RECIPE), out, progress=False)
    _one_line(str(info.value), path, "a FIFO")
    assert stat.S_ISFIFO(os.lstat(path).st_mode) and _temps(tmp_path) == []


def test_metrics_log_append_does_not_follow_a_link_planted_mid_run(tmp_path):
    """metrics.jsonl is appended through open_output_fd: a link planted between epochs is refused."""
    from accelsim.train import parse_recipe, run_recipe
    from accelsim.train.run import METRICS_FILE

    victim = _victim(tmp_path)
    out = tmp_path / "run"
    path = out / METRICS_FILE

    def plant(stage, epoch, line):
        if epoch == 1:
            path.unlink()
            path.symlink_to(victim)

    with pytest.raises(AccelsimError) as info:
        run_recipe(parse_recipe(TINY_RECIPE), out, progress=False, on_epoch_end=plant)
    _one_line(str(info.value), path, "a symbolic link")
    assert victim.read_text() == VICTIM_TEXT and path.is_symlink()
