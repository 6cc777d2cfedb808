"""Per-point result cache: keys, atomic writes, corrupt entries."""
from __future__ import annotations

import json

from accelsim.sweep.cache import ResultCache, point_identity, point_key


def test_key_depends_on_every_identity_field():
    base = point_identity("h" * 64, "t" * 64, "fast", None, version="1.0")
    keys = {point_key(base)}
    for change in ({"hw_hash": "x"}, {"trace_hash": "y"}, {"fidelity": "cycle"}, {"samples": 4},
                   {"accelsim_version": "1.1"}):
        keys.add(point_key({**base, **change}))
    assert len(keys) == 6
    assert point_key(dict(reversed(list(base.items())))) == point_key(base)


def test_put_get_round_trip_and_counters(tmp_path):
    cache = ResultCache(tmp_path / "cache")
    identity = point_identity("a", "b", "fast", 2)
    key = point_key(identity)
    assert cache.get(key) is None and cache.misses == 1
    record = {"key": key, "identity": identity, "status": "ok", "error": None,
              "totals": {"cycles": 10, "energy_pj": 1.5}}
    cache.put(key, record)
    assert key in cache and len(cache) == 1
    assert cache.get(key) == record and cache.hits == 1
    assert not list(cache.directory.rglob("*.tmp"))


def test_corrupt_or_mismatched_entries_are_misses(tmp_path):
    cache = ResultCache(tmp_path)
    identity = point_identity("a", "b", "fast", None)
    key = point_key(identity)
    path = cache.path(key)
    path.parent.mkdir(parents=True)
    path.write_text('{"key": "' + key + '", "ident')          # truncated
    assert cache.get(key) is None and cache.corrupt == 1
    path.write_text(json.dumps({"key": key, "identity": point_identity("z", "b", "fast", None)}))
    assert cache.get(key) is None and cache.corrupt == 2
    cache.put(key, {"key": key, "identity": identity, "status": "ok", "totals": {}})
    assert cache.get(key)["status"] == "ok"
