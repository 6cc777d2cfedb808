"""LLM decode with TEAL sparsity on LPDDR5 and HBM3, two weight layouts, row locality counted.

Offline, like ``benchmarks/llm_decode.py``: the zoo ``llama_tiny`` (random initialisation,
briefly fine-tuned on a synthetic text), TEAL thresholds calibrated per target sparsity 0-90%,
one prompt prefilled and ``--decode-tokens`` tokens decoded with the KV cache. Each decode step
is simulated on ``hw_configs/edge_npu_lpddr.yaml`` with its DRAM replaced by

- ``LPDDR5-6400`` (one x16 channel, 12.8 GB/s), and
- ``HBM3`` (``--hbm-channels`` pseudo-channels of 25.6 GB/s; default 2, 51 GB/s, so that the
  dense step stays bound by DRAM on this NPU, whose one busy PE column consumes 205 GB/s of
  8-bit weights, and the two devices are compared where memory decides),

each with the linear layers' weights stored ``input_major`` (one input's weights contiguous,
as TEAL/Deja Vu store them) and ``output_major`` (PyTorch's row-major (out, in)), every
DRAM transfer timed and priced by the layer's access stream through the device model
(``dram.access_stream: true``; a zero input's weight bursts are not read). The shared
buffer's port is widened to ``--glb-words`` words per cycle (default 256: weights stream
through it, a fill and a read per byte) so that DRAM, not the buffer port, binds the step;
with the shipped 32 words the port binds at 12.8 GB/s of weights. Each design runs against
its dense twin. The figure shows the speed-up per token against the ideal bound
1/(1 - s f) and the row-buffer hit rate of the decode streams.

    python benchmarks/llm_dram.py                          # runs/llm_dram/: llm_dram.png + .md
    python benchmarks/llm_dram.py --targets 0 0.5 --decode-tokens 2 --out /tmp/x.png
    python benchmarks/llm_dram.py --out docs/llm_dram.png --update-docs
        # the shipped figure, and the table of docs/validation.md section 12 rewritten in place

Progress goes to stderr: a line as each phase of each target starts and ends, with the time
elapsed and an estimate of the time left.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from llm_decode import Progress, fine_tuned_decoder, study_arguments, torch_setup  # noqa: E402

#: Where the figure and its table go unless ``--out`` says otherwise (a run folder, never docs/).
DEFAULT_OUT = Path("runs") / "llm_dram" / "llm_dram.png"
DOCS = REPO / "docs" / "validation.md"
BEGIN, END = "<!-- llm_dram table: begin -->", "<!-- llm_dram table: end -->"
LAYOUTS = ("input_major", "output_major")


def build_parser() -> argparse.ArgumentParser:
    ap = study_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    ap.add_argument("--hbm-channels", type=int, default=2,
                    help="HBM3 pseudo-channels (25.6 GB/s each; default 2)")
    ap.add_argument("--glb-words", type=float, default=256.0,
                    help="read port of the shared buffer 'glb', words per cycle (default 256)")
    ap.add_argument("--out", default=str(DEFAULT_OUT),
                    help=f"figure file; the table goes next to it as .md (default {DEFAULT_OUT})")
    ap.add_argument("--update-docs", action="store_true",
                    help=f"also rewrite the table between the markers of {DOCS.relative_to(REPO)}")
    return ap


def designs(hw, hbm_channels: int, glb_words: float | None = None) -> list:
    """The four (device x layout) variants of ``hw``, each timing DRAM by its access stream,
    its level ``glb``'s read port set to ``glb_words`` words per cycle when given."""
    from accelsim.dram.presets import get_device

    if glb_words is not None:
        if not any(lv.name == "glb" for lv in hw.memory_hierarchy):
            raise SystemExit(f"{hw.name}: no memory_hierarchy level named 'glb' to widen")
        hw = dataclasses.replace(hw, memory_hierarchy=tuple(
            dataclasses.replace(lv, read_words_per_cycle=float(glb_words)) if lv.name == "glb"
            else lv for lv in hw.memory_hierarchy))
    out = []
    for device, channels in (("LPDDR5-6400", None), ("HBM3", hbm_channels)):
        dev = get_device(device)
        for layout in LAYOUTS:
            dram = dataclasses.replace(hw.dram, device=device, channels=channels,
                                       bandwidth_gb_per_s=None, burst_bytes=dev.burst_bytes,
                                       weight_layout=layout, access_stream=True)
            tag = f"{device}{'' if channels is None else f' x{channels}'}, {layout.replace('_', '-')}"
            out.append((tag, dataclasses.replace(hw, name=f"{hw.name} [{tag}]", dram=dram)))
    return out


def table(rows: list, tags: list[str], seconds: float, hw_name: str) -> list[str]:
    """Markdown lines: per target, reached sparsity, bound and each design's speed-up and hit rate."""
    head = "| target s | reached s | f | bound 1/(1-sf) | " + " | ".join(
        f"{t}: speed-up / row hits" for t in tags) + " |"
    lines = [head, "|" + "---|" * (4 + len(tags))]
    for points in rows:
        p = points[0]
        cells = [f"{q.speedup:.3f} / {100 * (q.row_hit_rate or 0.0):.1f}%"
                 + ("" if q.dram_bound else " (not DRAM bound)") for q in points]
        lines.append(f"| {p.target:.1f} | {p.reached:.3f} | {p.f:.3f} | {p.bound:.3f} | "
                     + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Each cell: speed-up per token against the design's dense twin / row-buffer hit rate "
                 "of the decode steps' DRAM streams; every step DRAM bound (DRAM the bottleneck of "
                 "most of its cycles) unless marked.")
    lines.append("")
    dense = "; ".join(f"{t}: {q.dense_latency_s * 1e6:.1f} us, {q.dense_energy_uj:.1f} uJ, "
                      f"row hits {100 * (q.dense_row_hit_rate or 0.0):.1f}%"
                      for t, q in zip(tags, rows[0]))
    lines.append(f"Dense twin per token on {hw_name} ({dense}). {seconds:.0f} s on this machine.")
    return lines


def update_docs(lines: list[str], path: Path = DOCS) -> None:
    """Replace the block between the section's markers by ``lines`` (atomically)."""
    from accelsim.atomic import atomic_write_text

    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(path, head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)


def plot(rows: list, tags: list[str], hw_name: str, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from accelsim.atomic import atomic_write

    s = [pts[0].reached for pts in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    bounds = sorted((pts[0].reached, pts[0].bound) for pts in rows)
    ax1.plot([b[0] for b in bounds], [b[1] for b in bounds], "k--", label="ideal 1/(1 - s f)")
    marks = ("o-", "o--", "s-", "s--")
    for j, tag in enumerate(tags):
        ax1.plot(s, [pts[j].speedup for pts in rows], marks[j], label=tag)
        ax2.plot(s, [100 * (pts[j].row_hit_rate or 0.0) for pts in rows], marks[j], label=tag)
    ax1.set_xlabel("activation sparsity s (decode inputs of the sparsified layers)")
    ax1.set_ylabel("decode speed-up per token vs dense twin (x)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("activation sparsity s")
    ax2.set_ylabel("DRAM row-buffer hit rate, decode (%)")
    ax2.set_ylim(0, 100)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"llama_tiny decode (TEAL) on {hw_name} (buffer port widened): LPDDR5 vs HBM3, "
                 "input- vs output-major weights")
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110, format=out.suffix.lstrip(".")))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    from accelsim.atomic import atomic_write_text
    from accelsim.hw import load_hw
    from accelsim.sparsify.study import capture_point, simulate_point

    threads = torch_setup(args.threads)
    start = time.time()
    out = Path(args.out)
    hw = load_hw(args.hw)
    variants = designs(hw, args.hbm_channels, args.glb_words)
    tags = [t for t, _ in variants]
    progress = Progress(len(args.targets))
    progress.say(f"llm_dram: {len(args.targets)} target sparsities x {len(variants)} designs, "
                 f"{args.decode_tokens} decode tokens; {threads}; writing {out}")
    model, train, _, prompts = fine_tuned_decoder(args.train_steps, args.prompt_tokens, progress)
    rows = []
    progress.loop_start = time.monotonic()
    for i, target in enumerate(args.targets):
        tag = f"s={target:.2f} [{i + 1}/{len(args.targets)}]"
        with progress.phase(f"{tag} calibrate TEAL, capture"):
            captured = capture_point(model, prompts, args.decode_tokens, target, train, None)
        points = []
        for name, design in variants:
            with progress.phase(f"{tag} simulate on {name} and its dense twin"):
                points.append(simulate_point(captured, design))
        rows.append(points)
        progress.done += 1
        progress.say(f"{tag} done; {progress.left()}")
    lines = table(rows, tags, time.time() - start, hw.name)
    print("\n".join(lines))
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    plot(rows, tags, hw.name, out)
    if args.update_docs:
        update_docs(lines)
    progress.say(f"wrote {out} and {out.with_suffix('.md')}"
                 f"{' and ' + str(DOCS.relative_to(REPO)) if args.update_docs else ''} "
                 f"({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
