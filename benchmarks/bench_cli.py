"""Start-up time of the ``accelsim`` command against ``python -c pass`` in the same run.

Each command runs ``--repeats`` times as a fresh process (output discarded); the table
gives the median and the fastest wall time, and the median minus the interpreter's own
start-up. ``--check`` exits 1 when a command's median exceeds ``--limit`` seconds.

    python benchmarks/bench_cli.py                 # from the checkout, in the virtualenv
    python benchmarks/bench_cli.py --repeats 15 --check --limit 0.3
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (
    ("--help",),
    ("hw", "validate", "hw_configs/sparten_like.yaml"),
    ("hw", "show", "hw_configs/sparten_like.yaml"),
    ("trace", "info", "traces/lenet5_digits_dual.trace"),
)


def accelsim_command() -> list[str]:
    """The installed ``accelsim`` script of this interpreter, else ``python -m accelsim.cli``."""
    script = Path(sys.executable).with_name("accelsim")
    if script.is_file():
        return [str(script)]
    found = shutil.which("accelsim")
    return [found] if found else [sys.executable, "-m", "accelsim.cli"]


def wall_times(argv: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0,):
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: "
                             f"{done.stderr.decode(errors='replace').strip()[-300:]}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="runs per command (default 9)")
    parser.add_argument("--limit", type=float, default=0.3, help="seconds (default 0.3)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a median exceeds --limit")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats: expected a positive integer")
    base = accelsim_command()
    rows = [("python -c pass", wall_times([sys.executable, "-c", "pass"], args.repeats))]
    for command in COMMANDS:
        rows.append(("accelsim " + " ".join(command), wall_times(base + list(command), args.repeats)))
    floor = statistics.median(rows[0][1])
    print(f"{'command':<52} {'median s':>9} {'min s':>7} {'- python':>9}")
    over = []
    for name, times in rows:
        median = statistics.median(times)
        print(f"{name:<52} {median:>9.3f} {min(times):>7.3f} {median - floor:>9.3f}")
        if name != "python -c pass" and median > args.limit:
            over.append(name)
    print(f"({args.repeats} runs each, {base[0] if len(base) == 1 else ' '.join(base)}; "
          f"limit {args.limit} s: {'all within' if not over else 'over: ' + ', '.join(over)})")
    return 1 if (args.check and over) else 0


if __name__ == "__main__":
    sys.exit(main())
