"""Trace benchmarks: capture overhead, trace size per activation element, lazy reads.

Run from the repository root::

    .venv/bin/python benchmarks/bench_trace.py [--repeats 5] [--r50-samples 4] [--json]

1. Capture overhead: ``capture_trace`` time / plain ``model(x)`` time, ResNet-18
   (CIFAR size), batch 16, CPU, both measured in this run (median of repeats).
2. Trace size per captured activation element, in bits: the packed activation
   members (with and without deflate) and the whole file.
3. Lazy reads: a ResNet-50 (ImageNet size) capture; fresh processes open it and
   read one layer, or every layer; bytes read from disk (``/proc/self/io`` rchar)
   and peak RSS are compared with a process that only opens the trace.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from accelsim.trace import CaptureOptions, capture_trace, open_trace, write_trace  # noqa: E402
from accelsim.zoo import get_model  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_overhead(repeats: int, device: str = "cpu", batch: int = 16) -> dict:
    torch.manual_seed(0)
    model = get_model("resnet18_cifar").eval().to(device)
    x = torch.relu(torch.randn(batch, 3, 32, 32)).to(device)
    options = CaptureOptions(samples=batch)

    def plain():
        with torch.no_grad():
            model(x)
        _sync(device)

    def capture():
        capture_trace(model, [x], options)
        _sync(device)

    # Interleave to share any drift in machine load between the two.
    t_plain, t_capture = [], []
    plain(), capture()
    for _ in range(repeats):
        t_plain.append(_median_time(plain, 1))
        t_capture.append(_median_time(capture, 1))
    plain_s, capture_s = statistics.median(t_plain), statistics.median(t_capture)
    return {"model": "resnet18_cifar", "batch": batch, "device": device,
            "threads": torch.get_num_threads(),
            "plain_forward_s": plain_s, "capture_s": capture_s, "ratio": capture_s / plain_s}


def _act_member_bits(path: Path) -> tuple[int, int]:
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if i.filename.endswith("act_mask.npy")]
        return sum(i.compress_size for i in infos) * 8, sum(i.file_size for i in infos) * 8


def bench_size(tmp: Path) -> dict:
    torch.manual_seed(0)
    model = get_model("resnet18_cifar").eval()
    out = {}
    for label, threshold in (("relu", 0.0), ("threshold_0.5", 0.5)):
        data = capture_trace(model, [torch.relu(torch.randn(16, 3, 32, 32))],
                             CaptureOptions(samples=16, threshold=threshold))
        elements = sum(l.geometry.N * l.geometry.C * l.geometry.H * l.geometry.W for l in data.layers)
        density = sum(l.stats["act_density"] * l.geometry.N * l.geometry.C * l.geometry.H
                      * l.geometry.W for l in data.layers) / elements
        row = {"act_elements": elements, "act_density": density}
        for compress in (False, True):
            path = tmp / f"size_{label}_{compress}.trace"
            write_trace(path, data, compress=compress)
            stored, raw = _act_member_bits(path)
            key = "deflate" if compress else "stored"
            row[f"act_bits_per_element_{key}"] = stored / elements
            row[f"file_bits_per_element_{key}"] = path.stat().st_size * 8 / elements
        out[label] = row
    return out


_PROBE = r"""
import json, sys
sys.path.insert(0, {root!r})
from accelsim.trace import open_trace
trace = open_trace({path!r})
mode = {mode!r}
if mode == "one":
    layer = trace.layer({index})
    a, w = layer.act_mask(), layer.weight_mask()
elif mode == "all":
    for layer in trace:
        a, w = layer.act_mask(), layer.weight_mask()
        del a, w
io = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())
# VmHWM (peak RSS of this process image); ru_maxrss would include the parent's peak
# from before exec.
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({{"rchar": int(io["rchar"]), "maxrss_kib": int(status["VmHWM"].split()[0]),
                   "torch_imported": "torch" in sys.modules}}))
"""


def _probe(path: Path, mode: str, index: int) -> dict:
    code = _PROBE.format(root=str(ROOT), path=str(path), mode=mode, index=index)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_lazy(tmp: Path, samples: int) -> dict:
    torch.manual_seed(0)
    model = get_model("resnet50").eval()
    x = torch.relu(torch.randn(samples, 3, 224, 224))
    start = time.perf_counter()
    data = capture_trace(model, [x], CaptureOptions(samples=samples))
    capture_s = time.perf_counter() - start
    path = write_trace(tmp / "resnet50.trace", data)
    index = 5
    trace = open_trace(path)
    g = trace.geometry(index)
    runs = {mode: _probe(path, mode, index) for mode in ("open", "one", "all")}
    with zipfile.ZipFile(path) as zf:
        layer_bytes = sum(i.compress_size for i in zf.infolist()
                          if i.filename.startswith(f"layers/{index:04d}/"))
    return {
        "model": "resnet50", "samples": samples, "layers": len(trace), "capture_s": capture_s,
        "file_bytes": path.stat().st_size, "layer": trace.layer_names[index],
        "layer_member_bytes": layer_bytes,
        "layer_act_shape": [g.N, g.C, g.H, g.W],
        "rchar_open": runs["open"]["rchar"], "rchar_one_layer": runs["one"]["rchar"],
        "rchar_all_layers": runs["all"]["rchar"],
        "maxrss_kib_open": runs["open"]["maxrss_kib"],
        "maxrss_kib_one_layer": runs["one"]["maxrss_kib"],
        "maxrss_kib_all_layers": runs["all"]["maxrss_kib"],
        "reader_imports_torch": runs["one"]["torch_imported"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--r50-samples", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu",
                        help="also measure capture overhead on this device (e.g. cuda)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        results = {"overhead": bench_overhead(args.repeats), "size": bench_size(Path(tmp)),
                   "lazy": bench_lazy(Path(tmp), args.r50_samples)}
        if args.device != "cpu":
            results["overhead_device"] = [bench_overhead(args.repeats, args.device, b)
                                          for b in (16, 256)]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    o = results["overhead"]
    print(f"capture overhead  resnet18_cifar b16, {o['threads']} threads: plain "
          f"{o['plain_forward_s'] * 1e3:.1f} ms, capture {o['capture_s'] * 1e3:.1f} ms, "
          f"ratio {o['ratio']:.2f}x (target <= 1.5x)")
    for d in results.get("overhead_device", []):
        print(f"capture overhead  resnet18_cifar b{d['batch']} on {d['device']}: plain "
              f"{d['plain_forward_s'] * 1e3:.2f} ms, capture {d['capture_s'] * 1e3:.2f} ms, "
              f"ratio {d['ratio']:.2f}x")
    for label, row in results["size"].items():
        print(f"trace size ({label}, act density {row['act_density']:.3f}): activation members "
              f"{row['act_bits_per_element_stored']:.3f} bits/element stored, "
              f"{row['act_bits_per_element_deflate']:.3f} deflated; whole file "
              f"{row['file_bits_per_element_stored']:.3f} / {row['file_bits_per_element_deflate']:.3f}")
    l = results["lazy"]
    print(f"lazy read  resnet50 224x224, {l['samples']} samples, {l['layers']} layers, file "
          f"{l['file_bytes'] / 2**20:.1f} MiB (capture {l['capture_s']:.1f} s)")
    print(f"  bytes read: open only {l['rchar_open'] / 2**20:.2f} MiB (imports), layer "
          f"{l['layer']!r} {l['rchar_one_layer'] / 2**20:.2f} MiB (its members: "
          f"{l['layer_member_bytes'] / 2**20:.2f} MiB), all layers "
          f"{l['rchar_all_layers'] / 2**20:.2f} MiB")
    print(f"  peak RSS:   open only {l['maxrss_kib_open'] / 1024:.1f} MiB, one layer "
          f"{l['maxrss_kib_one_layer'] / 1024:.1f} MiB, all layers "
          f"{l['maxrss_kib_all_layers'] / 1024:.1f} MiB; reader imports torch: "
          f"{l['reader_imports_torch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
