"""Speed of the loop-nest model's DRAM access stream (``dram_stream.layer_dram``): this tree's
implementation against the committed one (``git show HEAD:...``) in the same process.

Simulates ``--samples`` samples of a trace on a design with ``dram.access_stream: true``,
recording every ``layer_dram`` call, then replays the calls in order through HEAD's modules
(``dram_stream``, ``dram_lengths``, ``dram.coalesce``, ``dram.model``, ``dram.kernel``
loaded from git into temporary modules) and through this tree's, alternately, ``--repeat``
times; reports the best CPU seconds of each, their ratio, and checks that every call returns
the same figures (time, energy, row fields) bit for bit. Kernels compile in a first replay,
outside the timed ones.

    python benchmarks/bench_layer_dram.py --trace /tmp/r50.trace --samples 8
    python benchmarks/bench_layer_dram.py --trace /tmp/r50.trace --hw hw_configs/eyeriss_v1.yaml \\
        --set dram.device=LPDDR4X-4266 --set dram.access_stream=true --json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: module name here -> (path in the repository, imports to point at the other HEAD modules)
_HEAD = {
    "_head_kernel": ("accelsim/dram/kernel.py", ()),
    "_head_coalesce": ("accelsim/dram/coalesce.py", ()),
    "_head_model": ("accelsim/dram/model.py",
                    (("from accelsim.dram import kernel as K", "import _head_kernel as K"),)),
    "_head_dram_lengths": ("accelsim/sim/dram_lengths.py", ()),
    "_head_dram_stream": ("accelsim/sim/dram_stream.py", (
        ("from accelsim.sim.dram_lengths import", "from _head_dram_lengths import"),
        ("from accelsim.dram.coalesce import", "from _head_coalesce import"),
        ("from accelsim.dram.model import", "from _head_model import"))),
}


def head_layer_dram(rev: str = "HEAD", repo: Path = REPO):
    """``layer_dram`` of revision ``rev`` of the git repository ``repo``, its modules loaded
    from git into a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="accelsim-head-"))
    sys.path.insert(0, str(folder))
    for name, (path, swaps) in _HEAD.items():
        text = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, check=True,
                              capture_output=True, text=True).stdout
        for old, new in swaps:
            text = text.replace(old, new)
        (folder / f"{name}.py").write_text(text)
    for name in _HEAD:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["_head_dram_stream"].layer_dram


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace", required=True)
    ap.add_argument("--hw", default=str(REPO / "hw_configs" / "sparten_like.yaml"))
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="hardware override (YAML value), repeatable")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rev", default="HEAD", help="the revision to compare with")
    ap.add_argument("--repo", default=str(REPO), help="the git repository holding --rev")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import yaml

    from accelsim.hw.load import load_hw
    from accelsim.sim import dram_stream
    from accelsim.sim.simulate import simulate
    from accelsim.trace.reader import open_trace

    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    hw = load_hw(args.hw, overrides or None)
    trace = open_trace(args.trace)
    calls = []
    mine = dram_stream.layer_dram

    def record(*a, **k):
        calls.append((a, k))
        return mine(*a, **k)

    dram_stream.layer_dram = record
    try:
        simulate(trace, hw, samples=args.samples)
    finally:
        dram_stream.layer_dram = mine
    head = head_layer_dram(args.rev, Path(args.repo))

    def replay(fn):
        return [fn(*a, **k) for a, k in calls]

    def clear():
        for module in (dram_stream, sys.modules["_head_dram_stream"]):
            for cache in ("_BLOCKS", "_CODES", "_LAYOUTS"):
                getattr(module, cache, {}).clear()

    clear()
    same = replay(head) == replay(mine)     # compiles both; every figure equal
    best = {"head": float("inf"), "this": float("inf")}
    for _ in range(args.repeat):
        for name, fn in (("head", head), ("this", mine)):
            clear()
            t = time.process_time()
            replay(fn)
            best[name] = min(best[name], time.process_time() - t)
    out = {"calls": len(calls), "head_s": best["head"], "this_s": best["this"],
           "speedup": best["head"] / best["this"], "identical": same, "rev": args.rev,
           "trace": args.trace, "hw": args.hw, "overrides": overrides, "samples": args.samples}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"{Path(args.hw).name} {overrides or ''} on {Path(args.trace).name}, "
              f"{args.samples} samples: layer_dram x{len(calls)}: {args.rev} {best['head']:.2f} s, "
              f"this tree {best['this']:.2f} s, {out['speedup']:.2f}x; results "
              f"{'identical' if same else 'DIFFER'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
