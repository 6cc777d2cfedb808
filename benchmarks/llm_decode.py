"""Decode speed-up and energy saving per token against TEAL sparsity on the zoo decoder.

Offline: ``llama_tiny`` (random initialisation, briefly fine-tuned on a synthetic text so
perplexity means something), TEAL thresholds calibrated per target sparsity 0-90%, one
prompt prefilled and ``--decode-tokens`` tokens decoded with the KV cache, simulated on
``hw_configs/edge_npu_lpddr.yaml`` (8.5 GB/s LPDDR4x) and on the same design with
``--fast-dram`` times the bandwidth, each against its dense twin. The plot draws the ideal
bound 1/(1 - s*f) beside the curves (f: dense per-token DRAM share of sparsified weights).

    python benchmarks/llm_decode.py                 # runs/llm_decode/: llm_decode.png + .md table
    python benchmarks/llm_decode.py --targets 0 0.5 --out /tmp/x.png
    python benchmarks/llm_decode.py --out docs/llm_decode.png   # the shipped figure, when asked

Progress goes to stderr: a line as each phase of each target starts and ends, with the time
elapsed and an estimate of the time left (plain lines, also in a redirected log).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: Where the figure and its table go unless ``--out`` says otherwise (a run folder, never docs/).
DEFAULT_OUT = Path("runs") / "llm_decode" / "llm_decode.png"


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Plain progress lines on stderr: what starts, what finished in how long, the time elapsed
    and, once one target is done, an estimate of the time left (mean time per target so far)."""

    def __init__(self, targets: int, stream=None):
        self.start = time.monotonic()
        self.targets = targets
        self.done = 0
        self.loop_start: float | None = None
        self.stream = stream if stream is not None else sys.stderr

    def say(self, text: str) -> None:
        print(f"[{_clock(time.monotonic() - self.start)}] {text}", file=self.stream, flush=True)

    def left(self) -> str:
        """``about 12:30 left`` (targets still to run x mean time per finished target)."""
        if not self.done or self.loop_start is None:
            return "time left: known after the first target"
        per = (time.monotonic() - self.loop_start) / self.done
        return f"about {_clock(per * (self.targets - self.done))} left"

    def phase(self, text: str):
        """Context manager: a line when ``text`` starts and one with its duration when it ends."""
        progress = self

        class _Phase:
            def __enter__(self):
                self.began = time.monotonic()
                progress.say(f"{text} ...")
                return self

            def __exit__(self, *exc):
                if exc[0] is None:
                    progress.say(f"{text}: {time.monotonic() - self.began:.0f} s")
                return False

        return _Phase()


def study_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every TEAL decode study takes: sparsities, tokens, fine-tuning, the design
    and torch threads."""
    ap.add_argument("--targets", type=float, nargs="+",
                    default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    ap.add_argument("--decode-tokens", type=int, default=4)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--hw", default=str(REPO / "hw_configs" / "edge_npu_lpddr.yaml"))
    ap.add_argument("--threads", type=int, default=None, metavar="N",
                    help="torch threads (default: as `accelsim train`, half the usable cores, "
                         "1 to 4, or OMP_NUM_THREADS); more threads than free cores thrash")
    return ap


def build_parser() -> argparse.ArgumentParser:
    ap = study_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    ap.add_argument("--fast-dram", type=float, default=4.0,
                    help="bandwidth multiple of the second design (default 4: 34 GB/s)")
    ap.add_argument("--out", default=str(DEFAULT_OUT),
                    help=f"figure file; the table goes next to it as .md (default {DEFAULT_OUT}, "
                         "under the current folder; docs/llm_decode.png only when asked)")
    return ap


def torch_setup(threads_arg) -> str:
    """Torch threads (as ``accelsim train`` picks them), seed 0, deterministic algorithms; the
    thread count and why, for the first progress line."""
    import torch

    from accelsim.train.cli import pick_threads

    threads, why = pick_threads(threads_arg)
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    return f"torch threads {torch.get_num_threads()} ({why})"


def fine_tuned_decoder(train_steps: int, prompt_tokens: int, progress: Progress):
    """``(model, calibration ids, held-out ids, prompt)``: the zoo ``llama_tiny`` fine-tuned for
    ``train_steps`` on the calibration half of the synthetic text (the halves share no
    sentence), and the first ``prompt_tokens`` held-out tokens as the prompt."""
    import torch

    from accelsim.sparsify.common import train_lm
    from accelsim.sparsify.text import disjoint_halves, synthetic_text
    from accelsim.trace.llm import encode_text, load_decoder

    calibration, held_out = disjoint_halves(synthetic_text(400, seed=0))
    train = torch.tensor(encode_text(calibration))
    held = torch.tensor(encode_text(held_out))
    model, _ = load_decoder("llama_tiny", seed=0)
    with progress.phase(f"fine-tuning llama_tiny ({train_steps} steps)"):
        train_lm(model, train, train_steps, 64, 3e-3, seed=0)
    return model, train, held, held[:prompt_tokens].reshape(1, -1)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    from accelsim.atomic import atomic_write, atomic_write_text
    from accelsim.hw import load_hw
    from accelsim.sparsify.study import capture_point, simulate_point

    threads = torch_setup(args.threads)
    start = time.time()
    out = Path(args.out)
    progress = Progress(len(args.targets))
    progress.say(f"llm_decode: {len(args.targets)} target sparsities x 2 designs, "
                 f"{args.decode_tokens} decode tokens; {threads}; writing {out}")
    model, train, held, prompts = fine_tuned_decoder(args.train_steps, args.prompt_tokens, progress)
    hw = load_hw(args.hw)
    faster = {"bandwidth_gb_per_s": hw.dram.bandwidth_gb_per_s * args.fast_dram}
    if getattr(hw.dram, "device", None):   # a named DRAM: more bandwidth is more channels of it
        faster["channels"] = math.ceil(hw.dram.device_channels * args.fast_dram)
    fast = dataclasses.replace(hw, name=f"{hw.name}-x{args.fast_dram:g}",
                               dram=dataclasses.replace(hw.dram, **faster))
    rows = []
    progress.loop_start = time.monotonic()
    for i, target in enumerate(args.targets):
        tag = f"s={target:.2f} [{i + 1}/{len(args.targets)}]"
        with progress.phase(f"{tag} calibrate TEAL, capture, perplexity"):
            captured = capture_point(model, prompts, args.decode_tokens, target, train, held)
        with progress.phase(f"{tag} simulate on {hw.name} and its dense twin"):
            point = simulate_point(captured, hw)
        with progress.phase(f"{tag} simulate on {fast.name} and its dense twin"):
            rows.append((point, simulate_point(captured, fast)))
        progress.done += 1
        progress.say(f"{tag} done; {progress.left()}")

    head = ("| target s | reached s | ppl | f | bound 1/(1-sf) | speed-up "
            f"({hw.dram.bandwidth_gb_per_s:g} GB/s) | energy saved | DRAM bound | speed-up "
            f"({fast.dram.bandwidth_gb_per_s:g} GB/s) | DRAM bound |")
    lines = [head, "|" + "---|" * 10]
    for p, q in rows:
        lines.append(f"| {p.target:.1f} | {p.reached:.3f} | {p.perplexity:.2f} | {p.f:.3f} | "
                     f"{p.bound:.3f} | {p.speedup:.3f} | {100 * p.energy_saving:.1f}% | "
                     f"{'yes' if p.dram_bound else 'no'} | {q.speedup:.3f} | "
                     f"{'yes' if q.dram_bound else 'no'} |")
    p0 = rows[0][0]
    lines.append("")
    lines.append(f"Dense per token on {hw.name}: {p0.dense_latency_s * 1e6:.1f} us, "
                 f"{p0.dense_energy_uj:.1f} uJ, {p0.dense_dram_bytes / 1024:.1f} KiB DRAM; "
                 f"{time.time() - start:.0f} s on this machine.")
    print("\n".join(lines))
    table = out.with_suffix(".md")
    atomic_write_text(table, "\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [p.reached for p, _ in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    bounds = sorted((p.reached, p.bound) for p, _ in rows)
    ax1.plot([b[0] for b in bounds], [b[1] for b in bounds], "k--", label="ideal 1/(1 - s f)")
    ax1.plot(s, [p.speedup for p, _ in rows], "o-", label=f"{hw.name} ({hw.dram.bandwidth_gb_per_s:g} GB/s)")
    ax1.plot(s, [q.speedup for _, q in rows], "s-",
             label=f"same, {fast.dram.bandwidth_gb_per_s:g} GB/s")
    ax1.axhline(1.53, color="gray", lw=0.5)
    ax1.axhline(1.8, color="gray", lw=0.5)
    ax1.plot([0.4, 0.5], [1.53, 1.8], "x", color="gray", label="TEAL (A100, its kernels)")
    ax1.set_xlabel("activation sparsity s (decode, sparsified layers)")
    ax1.set_ylabel("decode speed-up per token vs dense twin")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.plot(s, [100 * p.energy_saving for p, _ in rows], "o-", label=hw.name)
    ax2.plot(s, [100 * q.energy_saving for _, q in rows], "s-", label=fast.name)
    ax2.plot([b[0] for b in bounds], [100 * (1 - 1 / b[1]) for b in bounds], "k--",
             label="DRAM share saved, s f")
    ax2.set_xlabel("activation sparsity s")
    ax2.set_ylabel("energy saved per token (%)")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle("llama_tiny decode on an edge NPU with LPDDR: TEAL sparsity vs weight traffic")
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110, format=out.suffix.lstrip(".")))
    progress.say(f"wrote {out} and {table} ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
