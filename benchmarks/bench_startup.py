"""How soon ``nbwss-emu load`` starts sending, how long a short run takes, and how much memory it holds.

Run: python benchmarks/bench_startup.py [--masters 20] [--duration 5] [--runs 3] [--many N]

Each run is the command a user types, ``nbwss-emu load smoke --masters 20 --duration 5s``
(closed model, the reference endpoint in its own process), started as a process of its
own. Measured: time from starting the process to its first notification, wall time,
and peak resident memory of the load process and of its generator process. The
baseline, measured in the same run: starting ``nbwss-emu --version`` (the interpreter
and the command line's imports, which no run can beat), and the duration asked for.
Targets (issue 15): first notification within 1 s of the run's start, the whole run
within 7 s of wall time, under 400 MiB peak. ``--many N`` adds a run with N masters
(open model, 2,500/s) for the time to the first notification with many domains.
Writes docs/benchmarks/startup.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_page


def baseline() -> float:
    """Seconds to start ``nbwss-emu --version``: the interpreter and the command line's imports."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "emulator", "--version"], check=True, capture_output=True)
    return time.monotonic() - began


def load_run(masters: int, duration: float, *extra: str) -> dict[str, float]:
    """One ``nbwss-emu load`` process: time to first notification, wall time, peak resident memory (MiB)."""
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory, "load.json")
        command = [sys.executable, "-m", "emulator", "load", "smoke", "--masters", str(masters), "--duration", f"{duration:g}s"]
        began = time.monotonic()  # the system's monotonic clock: the load process reports on the same one
        process = subprocess.run([*command, *extra, "--quiet", "--json", str(report)], capture_output=True, text=True, check=False)
        wall = time.monotonic() - began
        if process.returncode not in (0, 1):  # 1: findings, which the figures say
            raise SystemExit(f"load failed ({process.returncode}): {process.stdout}{process.stderr}")
        figures = json.loads(report.read_text())
    generation = figures["generation"]
    return {
        "first": generation["first_sent_at"] - began,
        "wall": wall,
        "rss": figures["generator_memory"]["rss_peak_mib"],
        "generator_rss": generation["rss_peak_mib"] or 0.0,
        "rate": figures["rate"],
        "starved": generation["starved_share"],
        "all_started": generation["all_started_s"],
        "findings": sum(figures["findings"].values()) + figures["lost"],
        "starved_share": generation["starved_share"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masters", type=int, default=20)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--many", type=int, default=0, help="also a run with this many masters (e.g. 5000)")
    args = parser.parse_args()
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    floors, runs = [], []
    for _ in range(args.runs):  # alternating, so that a busy moment of the machine hits both
        floors.append(baseline())
        runs.append(load_run(args.masters, args.duration))
    median = statistics.median
    floor = median(floors)
    say(f"nbwss-emu load smoke --masters {args.masters} --duration {args.duration:g}s: {args.runs} runs, medians (all runs)")
    say(f"  baseline: starting `nbwss-emu --version` {floor:.2f} s ({', '.join(f'{f:.2f}' for f in floors)})")
    first = [r["first"] for r in runs]
    say(
        f"  first notification after process start: {median(first):.2f} s ({', '.join(f'{f:.2f}' for f in first)}); "
        f"{median(first) - floor:.2f} s beyond the baseline (target: within 1 s of the run's start)"
    )
    wall = [r["wall"] for r in runs]
    say(
        f"  wall time: {median(wall):.2f} s ({', '.join(f'{w:.2f}' for w in wall)}); {median(wall) / args.duration:.2f} x the duration, "
        f"{median(wall) - args.duration - floor:.2f} s beyond duration + baseline (target: within 7 s)"
    )
    rss = [r["rss"] for r in runs]
    generator = [r["generator_rss"] for r in runs]
    say(
        f"  peak resident memory: load process {median(rss):.0f} MiB ({', '.join(f'{m:.0f}' for m in rss)}), "
        f"generator processes {median(generator):.0f} MiB; together {median(rss) + median(generator):.0f} MiB (target: under 400 MiB)"
    )
    say(
        f"  acknowledged {median(r['rate'] for r in runs):,.0f}/s; masters spent {median(r['starved'] for r in runs):.1%} of their time waiting for the generator"
    )
    say("  before (issue 15, same command): 14.5 s of wall time and 1.35 GiB peak, everything prepared before the clock started")
    if args.many:
        many = load_run(args.many, args.duration, "--rate", "2500")
        say(
            f"\n{args.many} masters, open model 2,500/s, {args.duration:g} s: first notification {many['first']:.2f} s after process start, "
            f"every master sending {many['all_started']:.1f} s after the clock started, "
            f"{many['starved_share']:.0%} of the masters' time waiting for the generator, {many['findings']:.0f} findings and lost, wall {many['wall']:.1f} s, peak {many['rss']:.0f} MiB (load) + {many['generator_rss']:.0f} MiB (generators)"
        )
    page = write_page("startup", "Load: time to the first notification, wall time, memory", lines)
    print(f"\nwrote {page}")


if __name__ == "__main__":
    main()
