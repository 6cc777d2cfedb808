"""DRAM kernel speed: requests (bursts) per CPU second, and the ratio to the Python reference.

For each preset and access pattern (a sequential range and random 64-byte reads/writes) the
Numba kernel (:func:`accelsim.dram.model.stream_ranges`, fed in blocks) serves ``--requests``
bursts; compilation happens before the timed region (one tiny stream per process). The
independent per-request reference (``tests/dram_reference.py``, plain Python, quadratic in
the stream) serves a short prefix (``--ref-requests``) in the same run, and its figures must
equal the kernel's on that prefix. Reported: kernel requests/s, reference requests/s, ratio.

    python benchmarks/bench_dram.py
    python benchmarks/bench_dram.py --presets DDR4-3200 HBM3 --requests 2000000 --json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from accelsim.dram.model import DramState, stream_ranges  # noqa: E402
from accelsim.dram.presets import available_presets, get_device  # noqa: E402


def pattern(device, channels: int, kind: str, requests: int, seed: int = 0) -> np.ndarray:
    """(n, 3) ranges: one sequential read range, or random one-burst reads (30% writes)."""
    bb = device.burst_bytes
    if kind == "sequential":
        return np.array([[0, requests * bb, 0]], dtype=np.int64)
    rng = np.random.default_rng(seed)
    slots = device.capacity_bytes * channels // bb
    starts = rng.integers(0, slots, size=requests, dtype=np.int64) * bb
    return np.column_stack([starts, np.full(requests, bb, dtype=np.int64),
                            (rng.random(requests) < 0.3).astype(np.int64)])


def blocks(ranges: np.ndarray, size: int = 1 << 16):
    for i in range(0, ranges.shape[0], size):
        yield ranges[i:i + size]


def bursts_of(ranges: np.ndarray, bb: int, limit: int) -> np.ndarray:
    """The prefix of ``ranges`` holding ``limit`` bursts (a sequential range is cut)."""
    if ranges.shape[0] == 1:
        return np.array([[ranges[0, 0], limit * bb, ranges[0, 2]]], dtype=np.int64)
    return ranges[:limit]


def measure(name: str, kind: str, requests: int, ref_requests: int) -> dict:
    from tests.dram_reference import Reference
    from accelsim.dram.mapping import parse_scheme

    d = get_device(name)
    ch = d.default_channels
    ranges = pattern(d, ch, kind, requests)
    t0 = time.process_time()
    r = stream_ranges(d, blocks(ranges), ch)
    kernel_s = time.process_time() - t0
    prefix = bursts_of(ranges, d.burst_bytes, ref_requests)
    t0 = time.process_time()
    ref = Reference(d, ch, list(parse_scheme(None))).run([tuple(map(int, row)) for row in prefix])
    ref_s = time.process_time() - t0
    small = stream_ranges(d, [prefix], ch)
    agree = (small.cycles, small.activates, small.row_hits, small.refreshes) == (
        ref.cycles, ref.activates, ref.row_hits, ref.refreshes)
    k_rate = r.requests / kernel_s if kernel_s > 0 else float("inf")
    ref_rate = ref.requests / ref_s if ref_s > 0 else float("inf")
    return {"preset": name, "pattern": kind, "channels": ch, "requests": r.requests,
            "kernel_s": kernel_s, "kernel_requests_per_s": k_rate,
            "reference_requests": ref.requests, "reference_s": ref_s,
            "reference_requests_per_s": ref_rate, "speedup": k_rate / ref_rate,
            "reference_agrees": agree, "row_hit_rate": r.row_hit_rate,
            "bandwidth_gb_per_s": r.bandwidth_gb_per_s, "pj_per_bit": r.pj_per_bit}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=list(available_presets()))
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--ref-requests", type=int, default=400)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    DramState(args.presets[0]).feed([0], [64])    # compile (or load the cache) outside timing
    compile_s = time.perf_counter() - t0
    rows = [measure(n, k, args.requests, args.ref_requests)
            for n in args.presets for k in ("sequential", "random")]
    if args.json:
        print(json.dumps({"compile_or_cache_load_s": compile_s, "rows": rows}, indent=2))
        return 0
    print(f"compile / cache load (untimed): {compile_s:.2f} s")
    print(f"{'preset':<14}{'pattern':<11}{'kernel req/s':>14}{'ref req/s':>11}{'ratio':>9}"
          f"{'agree':>7}{'hit rate':>9}{'GB/s':>9}{'pJ/bit':>8}")
    for row in rows:
        print(f"{row['preset']:<14}{row['pattern']:<11}{row['kernel_requests_per_s']:>14,.0f}"
              f"{row['reference_requests_per_s']:>11,.0f}{row['speedup']:>9,.0f}"
              f"{str(row['reference_agrees']):>7}{row['row_hit_rate']:>9.3f}"
              f"{row['bandwidth_gb_per_s']:>9.1f}{row['pj_per_bit']:>8.2f}")
    return 0 if all(r["reference_agrees"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
