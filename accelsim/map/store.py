"""Mapper results stored on disk, shared by processes (``accelsim simulate`` runs, sweep workers).

A search (:func:`accelsim.map.mapper.search`) is a pure function of its inputs: the layer's
loop nest (bounds, strides, dilations), the :class:`~accelsim.map.arch.Arch` it maps onto
(levels, capacities, ports, energies, array, lanes, precisions), the dataflow, objective,
budget (``mapping.search_size``), seed and the :class:`~accelsim.map.cost.SparseModel` it ranks
by (which holds everything the layer's densities change). The entry key is the SHA-256 of a
canonical text of all of them plus :data:`~accelsim.map.mapper.MAPPER_VERSION` (bumped when the
search changes), this file's :data:`STORE_VERSION` and :func:`code_fingerprint` (the package
version and the source of the modules the search runs: an edit there misses instead of reusing
a pick the new code might not make); design fields the search does not read
(DRAM bandwidth, vector unit, names, ...) do not enter it, so such designs share entries.

The value is the mapping only, as JSON (per level: temporal loops outer to inner as ``[dim,
factor]``, spatial loops as ``[dim, factor, axis]``) and the search's candidate count. A hit is
data from disk: it is parsed with :mod:`json`, every field's type and range checked, and the
mapping re-validated and recounted against the nest and arch by
:func:`accelsim.map.fixed.fixed_result` (factors multiply to the bounds, spatial loops where the
design spreads, tiles and metadata fit), never unpickled nor built by name. A missing entry is a
miss; an invalid, truncated or mismatching one (or a link, folder or FIFO in its place) is
ignored and recomputed (rewritten when the path holds a regular file or nothing), with one
warning line per process. Writes are atomic (:mod:`accelsim.atomic`) and never replace anything
but a regular file; an OS error (read-only folder, full disk, permissions) disables the store
for the process with one warning line; the simulation goes on without it.

Layout: ``<dir>/<key[:2]>/<key>.json``; after a write, a fan-out folder keeps its
:data:`PER_FOLDER` most recently used entries (a hit refreshes an entry's time), so the store
holds at most ``256 x PER_FOLDER`` entries (a few hundred bytes each).

Location (:func:`store_dir`): ``$ACCELSIM_CACHE_DIR/mappings`` if that is set, else
``$XDG_CACHE_HOME/accelsim/mappings`` (an absolute path only), else
``~/.cache/accelsim/mappings``; ``ACCELSIM_MAPPING_CACHE=0`` turns the store off.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from accelsim.atomic import atomic_write_text, is_temp_name
from accelsim.errors import AccelsimError, MappingError

#: Format of an entry (bump when the JSON layout changes).
STORE_VERSION = 1
#: Entries kept per fan-out folder (256 folders).
PER_FOLDER = 64
#: Largest entry read (bytes); a bigger file is not an entry this module wrote.
MAX_ENTRY_BYTES = 1 << 20
#: Most levels, and loops per level, an entry may list.
MAX_ITEMS = 64
ENV_DIR = "ACCELSIM_CACHE_DIR"
ENV_ENABLE = "ACCELSIM_MAPPING_CACHE"
_OFF = ("0", "false", "no", "off")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_STALE_TEMP_S = 3600.0

_warned: set[str] = set()        # kinds of warning already printed by this process
_disabled: set[str] = set()      # store folders an OS error turned off in this process


def store_dir(environ=None) -> Path | None:
    """The folder of the mapping store, or None when ``ACCELSIM_MAPPING_CACHE=0`` (or no
    cache folder can be named)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_ENABLE, "1").strip().lower() in _OFF:
        return None
    base = env.get(ENV_DIR, "")
    if base:
        return Path(os.path.abspath(base)) / "mappings"
    xdg = env.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "accelsim" / "mappings"
    home = env.get("HOME") or os.path.expanduser("~")
    if home and os.path.isabs(home):
        return Path(home) / ".cache" / "accelsim" / "mappings"
    return None


def _warn(kind: str, message: str) -> None:
    """One line on stderr, at most once per process per ``kind``."""
    if kind in _warned:
        return
    _warned.add(kind)
    print(f"warning: mapping store: {message}", file=sys.stderr, flush=True)


def _shown(path) -> str:
    text = os.fspath(path)
    return text if text.isprintable() else repr(text)


# -- key ------------------------------------------------------------------------------------
def _canon(obj, out: list) -> None:
    """Append a canonical, type-tagged text of ``obj`` (floats exact, sets sorted) to ``out``;
    TypeError for anything else than plain data and dataclasses of it."""
    if obj is None or isinstance(obj, bool):
        out.append(repr(obj))
    elif isinstance(obj, int):
        out.append(f"i{int(obj)}")
    elif isinstance(obj, float):
        out.append(f"f{float(obj).hex()}")
    elif isinstance(obj, str):
        out.append(f"s{json.dumps(obj)}")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out.append(f"D{type(obj).__module__}.{type(obj).__qualname__}{{")
        for f in dataclasses.fields(obj):
            out.append(f"{f.name}=")
            _canon(getattr(obj, f.name), out)
            out.append(";")
        out.append("}")
    elif isinstance(obj, (tuple, list)):
        out.append("(")
        for item in obj:
            _canon(item, out)
            out.append(",")
        out.append(")")
    elif isinstance(obj, (frozenset, set)):
        parts = []
        for item in obj:
            sub: list = []
            _canon(item, sub)
            parts.append("".join(sub))
        out.append("{" + ",".join(sorted(parts)) + "}")
    elif isinstance(obj, dict):
        parts = []
        for k, v in obj.items():
            sub: list = []
            _canon(k, sub)
            sub.append(":")
            _canon(v, sub)
            parts.append("".join(sub))
        out.append("<" + ",".join(sorted(parts)) + ">")
    elif hasattr(obj, "dtype") and hasattr(obj, "item") and getattr(obj, "shape", None) == ():
        _canon(obj.item(), out)        # a NumPy scalar
    else:
        raise TypeError(f"not plain data: {type(obj).__name__}")


#: Modules whose code the search runs (the mapper, the access counts, the costs it ranks by and
#: what they call): their source enters every key, so an edit can only miss, never reuse a
#: mapping the changed code would not pick.
FINGERPRINT_MODULES = ("accelsim.map.mapper", "accelsim.map.access", "accelsim.map.cost",
                       "accelsim.map.arch", "accelsim.map.nest", "accelsim.map.mapping",
                       "accelsim.sim.tile_conditions", "accelsim.sim.storage",
                       "accelsim.sim.fibertree", "accelsim.sim.loopnest", "accelsim.sim.design")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 of ``accelsim.__version__`` and the source of :data:`FINGERPRINT_MODULES` (a
    module whose source cannot be read counts by name only; ``MAPPER_VERSION`` still applies)."""
    import importlib.util

    import accelsim

    digest = hashlib.sha256(str(getattr(accelsim, "__version__", "")).encode())
    for name in FINGERPRINT_MODULES:
        digest.update(f"\0{name}\0".encode())
        try:
            spec = importlib.util.find_spec(name)
            origin = spec.origin if spec is not None else None
            if origin:
                digest.update(Path(origin).read_bytes())
        except (OSError, ImportError, ValueError):
            digest.update(b"?")
    return digest.hexdigest()


def search_key(nest, arch, dataflow: str, objective: str, search_size: int, model,
               seed: int = 0) -> str:
    """SHA-256 (hex) of everything :func:`~accelsim.map.mapper.search` depends on (the nest's
    name excluded: it only appears in error messages). TypeError if an input is not plain
    data (then nothing is stored)."""
    from accelsim.map.mapper import MAPPER_VERSION

    plain_nest = (tuple(int(b) for b in nest.bounds), nest.stride_h, nest.stride_w,
                  nest.dil_h, nest.dil_w)
    out: list = []
    _canon(("accelsim-mapping", STORE_VERSION, MAPPER_VERSION, code_fingerprint(), plain_nest,
            arch, dataflow, objective, int(search_size), int(seed), model), out)
    return hashlib.sha256("".join(out).encode()).hexdigest()


def entry_path(folder: Path, key: str) -> Path:
    return folder / key[:2] / f"{key}.json"


# -- reading --------------------------------------------------------------------------------
class _Invalid(Exception):
    """An entry that is not a valid mapping for the key (the message says why)."""


def _read(path: Path) -> bytes | None:
    """The bytes of the regular file at ``path`` (never through a link), None when missing;
    _Invalid for a link, folder, FIFO, device or an oversized file; OSError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            raise exc from None
        if not stat.S_ISREG(mode):      # a link (ELOOP), a folder (EISDIR), ...
            raise _Invalid("not a regular file (left in place)") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Invalid("not a regular file (left in place)")
        if info.st_size > MAX_ENTRY_BYTES:
            raise _Invalid(f"{info.st_size} bytes, more than an entry holds")
        chunks, left = [], MAX_ENTRY_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > MAX_ENTRY_BYTES:
            raise _Invalid("larger than an entry holds")
        if os.utime in os.supports_fd:  # a hit is recently used: pruning keeps it longer
            try:
                os.utime(fd)
            except OSError:
                pass
        return data
    finally:
        os.close(fd)


def _int(value, lo: int, hi: int, what: str) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise _Invalid(f"{what}: expected an integer in [{lo}, {hi}], got {value!r:.40}")
    return value


def _list(value, what: str) -> list:
    if type(value) is not list or len(value) > MAX_ITEMS:
        raise _Invalid(f"{what}: expected a list of at most {MAX_ITEMS} items")
    return value


def _parse(data: bytes, key: str, arch):
    """``(Mapping, candidates)`` of an entry's bytes; _Invalid unless every field is as
    :func:`save` writes it for ``key`` on ``arch``."""
    from accelsim.map.mapping import AXES, LevelLoops, Loop, Mapping
    from accelsim.map.nest import DIMS

    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Invalid("not valid JSON (truncated or corrupted)") from None
    if type(raw) is not dict or set(raw) != {"store", "key", "candidates", "levels"}:
        raise _Invalid("expected an object with store, key, candidates and levels")
    _int(raw["store"], STORE_VERSION, STORE_VERSION, "store")
    if raw["key"] != key:
        raise _Invalid("its key does not match its file name")
    candidates = _int(raw["candidates"], 0, 1 << 40, "candidates")
    levels = _list(raw["levels"], "levels")
    if len(levels) != len(arch.levels):
        raise _Invalid(f"levels: {len(levels)}, the design has {len(arch.levels)}")
    parsed = []
    for i, (level, lv) in enumerate(zip(levels, arch.levels)):
        where = f"levels[{i}]"
        if type(level) is not dict or set(level) != {"level", "temporal", "spatial"}:
            raise _Invalid(f"{where}: expected an object with level, temporal and spatial")
        if level["level"] != lv.name:
            raise _Invalid(f"{where}.level: expected {lv.name!r}")
        loops = []
        for part, spatial in (("temporal", False), ("spatial", True)):
            items = []
            for j, item in enumerate(_list(level[part], f"{where}.{part}")):
                at = f"{where}.{part}[{j}]"
                if type(item) is not list or len(item) != (3 if spatial else 2):
                    raise _Invalid(f"{at}: expected [dim, factor{', axis' if spatial else ''}]")
                if type(item[0]) is not str or item[0] not in DIMS:
                    raise _Invalid(f"{at}: dimension: expected one of {', '.join(DIMS)}")
                factor = _int(item[1], 1, 1 << 30, f"{at}: factor")
                axis = item[2] if spatial else "X"
                if type(axis) is not str or axis not in AXES:
                    raise _Invalid(f"{at}: axis: expected X or Y")
                items.append(Loop(item[0], factor, spatial, axis))
            loops.append(tuple(items))
        parsed.append(LevelLoops(lv.name, loops[0], loops[1]))
    return Mapping(tuple(parsed)), candidates


def _encode(result, key: str) -> str:
    levels = [{"level": lv.level,
               "temporal": [[l.dim, int(l.factor)] for l in lv.temporal],
               "spatial": [[l.dim, int(l.factor), l.axis] for l in lv.spatial]}
              for lv in result.mapping.levels]
    return json.dumps({"store": STORE_VERSION, "key": key, "candidates": int(result.candidates),
                       "levels": levels}, separators=(",", ":"))


def load(folder: Path, key: str, nest, arch):
    """The stored :class:`~accelsim.map.mapper.MapResult` of ``key`` rebuilt for ``nest`` on
    ``arch`` (accesses recounted), or None: missing, invalid (one warning line per process) or
    unreadable (the store is then off for the process)."""
    from accelsim.map.fixed import fixed_result
    from accelsim.map.mapper import MapResult

    path = entry_path(folder, key)
    try:
        data = _read(path)
        if data is None:
            return None
        mapping, candidates = _parse(data, key, arch)
        if mapping.factor_product("N") != nest.bound("N"):
            raise _Invalid("its batch loops do not cover the batch")
        try:
            got = fixed_result("", mapping, nest, arch)
        except (MappingError, ValueError, IndexError, KeyError, ArithmeticError) as exc:
            detail = str(exc).replace("layer '': fixed mapping: ", "")
            raise _Invalid(f"not a valid mapping of the layer: {detail}") from None
    except _Invalid as exc:
        _warn("invalid", f"{_shown(path)}: {exc}; ignored and recomputed")
        return None
    except OSError as exc:
        _disable(folder, exc)
        return None
    return MapResult(got.mapping, got.counts, got.cost, candidates)


# -- writing --------------------------------------------------------------------------------
def _disable(folder: Path, exc: OSError) -> None:
    _disabled.add(str(folder))
    reason = exc.strerror or type(exc).__name__
    where = exc.filename if exc.filename else folder
    _warn("disabled", f"{_shown(where)}: {reason}; mapper results are not stored by this "
                      f"process (set {ENV_DIR} to a writable folder, or {ENV_ENABLE}=0)")


def save(folder: Path, key: str, result) -> None:
    """Store ``result``'s mapping under ``key`` atomically, then prune its fan-out folder. A
    link, folder or other non-regular file at the entry's path is left as it is (nothing
    stored); an OS error turns the store off for the process."""
    path = entry_path(folder, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, _encode(result, key), what="mapping store entry")
        _prune(path.parent)
    except AccelsimError:
        return      # not a regular file there: already reported when it was read
    except OSError as exc:
        _disable(folder, exc)


def _prune(sub: Path) -> None:
    """Keep the :data:`PER_FOLDER` most recently used entries of ``sub`` (and remove temporary
    files that killed writers left over an hour ago)."""
    entries = []
    now = time.time()
    with os.scandir(sub) as it:
        for entry in it:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if is_temp_name(entry.name):
                if now - mtime > _STALE_TEMP_S:
                    _unlink(entry.path)
            elif entry.name.endswith(".json"):
                entries.append((mtime, entry.name, entry.path))
    if len(entries) <= PER_FOLDER:
        return
    entries.sort()
    for _, _, path in entries[:len(entries) - PER_FOLDER]:
        _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- the search behind the store ------------------------------------------------------------
def cached_search(nest, arch, dataflow: str, objective: str, search_size: int, model,
                  compute: Callable[[], object]):
    """The stored result of this search if valid, else ``compute()`` (stored for next time).

    ``compute`` runs the search (:func:`accelsim.map.mapper.search` with these inputs); its
    errors propagate and nothing is stored for them."""
    folder = store_dir()
    if folder is None or str(folder) in _disabled:
        return compute()
    try:
        key = search_key(nest, arch, dataflow, objective, search_size, model)
    except TypeError:
        return compute()
    got = load(folder, key, nest, arch)
    if got is not None:
        return got
    result = compute()
    if str(folder) not in _disabled:
        save(folder, key, result)
    return result


@contextlib.contextmanager
def folder_for_processes(cache_dir: str | os.PathLike) -> Iterator[None]:
    """Within the block, this process and the processes it starts keep mapper results under
    ``cache_dir/mappings`` (``ACCELSIM_CACHE_DIR`` set, then restored; a sweep's own cache
    folder). ``ACCELSIM_MAPPING_CACHE=0`` still turns the store off."""
    before = os.environ.get(ENV_DIR)
    os.environ[ENV_DIR] = os.path.abspath(os.fspath(cache_dir))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_DIR, None)
        else:
            os.environ[ENV_DIR] = before


def _reset_for_tests() -> None:
    """Forget this process's warnings and disabled folders (tests)."""
    _warned.clear()
    _disabled.clear()
