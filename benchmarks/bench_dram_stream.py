"""Cost of the DRAM access-stream model in ``simulate`` (issue 24 item 3).

Simulates one trace on a mapped design twice in one process, with DRAM priced per bit
(``dram.access_stream: false``) and with its layers' access streams through ``--device``
(``dram.access_stream: true``, under the design's own ``dram.layout``), and reports CPU seconds of each ``simulate`` call, their ratio (target
<= 2x), and, for the device run, the CPU seconds spent in the stream model (range generation
plus the DRAM kernel). The Numba kernels (schedule and DRAM) are compiled before the timed
region; each design maps its layers inside its own timed run (both pay the mapper).

    accelsim trace capture --model resnet50 --data random:3,224,224 --samples 4 \\
        --batch-size 4 -o /tmp/r50.trace
    python benchmarks/bench_dram_stream.py --trace /tmp/r50.trace
    python benchmarks/bench_dram_stream.py --trace /tmp/r50.trace --device HBM3 --json
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace", required=True)
    ap.add_argument("--hw", default=str(REPO / "hw_configs" / "eyeriss_v1.yaml"))
    ap.add_argument("--device", default="LPDDR4X-4266")
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import numpy as np

    from accelsim.dram.model import simulate_ranges
    from accelsim.hw.load import load_hw
    from accelsim.sim import dram_stream
    from accelsim.sim.simulate import simulate
    from accelsim.trace.reader import open_trace

    trace = open_trace(args.trace)
    # the baseline prices DRAM per bit (no stream); the other run streams under the design's
    # own dram.layout (shipped designs: tile-major) through --device
    plain = load_hw(args.hw, {"dram.device": args.device, "dram.access_stream": False})
    device = load_hw(args.hw, {"dram.device": args.device, "dram.access_stream": True})
    # compile outside the timed region: the DRAM kernel and the layer kernels (one layer)
    simulate_ranges(args.device, np.array([0]), np.array([64]))
    first = next(iter(trace))
    simulate([first], plain, samples=1)
    simulate([first], device, samples=1)

    spent = [0.0]
    inner = dram_stream.layer_dram

    def timed(*a, **k):
        t = time.process_time()
        try:
            return inner(*a, **k)
        finally:
            spent[0] += time.process_time() - t

    dram_stream.layer_dram = timed
    out = {}
    for name, hw in (("without_device", plain), ("with_device", device)):
        spent[0] = 0.0
        t = time.process_time()
        res = simulate(trace, hw, samples=args.samples)
        out[name] = time.process_time() - t
        if name == "with_device":
            out["stream_model_s"] = spent[0]
            out["row_hit_rate"] = res.totals.get("dram_row_hit_rate")
            out["dram_cycles"] = res.totals.get("dram_cycles")
    dram_stream.layer_dram = inner
    out["ratio"] = out["with_device"] / out["without_device"]
    out.update(trace=args.trace, hw=args.hw, device=args.device,
               samples=int(res.layers["samples"].iloc[0]))
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"{Path(args.hw).name} on {Path(args.trace).name}: without the access stream "
              f"{out['without_device']:.2f} s, with {args.device} {out['with_device']:.2f} s "
              f"(stream model {out['stream_model_s']:.2f} s), ratio {out['ratio']:.2f}x; "
              f"row-hit rate {out['row_hit_rate']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
