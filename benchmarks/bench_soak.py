"""A soak of ``nbwss-emu run``: 1,000,000 notifications, and resident memory that stays flat.

Run: python benchmarks/bench_soak.py [--count N] [--checkpoint N] [--scenario NAME] [--page PATH]

What ``run --count N`` does, in this process: the scenario repeated (each pass fresh),
every frame validated both ways, acknowledgements counted into a histogram rather than
recorded one by one. The endpoint is ``nbwss-emu serve --keep 0`` in another process
(it keeps no notification), so that this process's memory is the master's alone.

Resident memory is read at the checkpoint (100,000 acknowledgements) and at the last
acknowledgement; the target is the end within 10% of the checkpoint. The figures go to
docs/benchmarks/soak.md (or --page).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from pathlib import Path

from common import reference_endpoint

from emulator.contract import ContractOptions, run_scenario
from emulator.protocol.run import Settings, Target
from emulator.protocol.session import Acknowledged
from emulator.scenario import load

PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "soak.md"
TARGET = 1.10  # the end's resident memory at most this times the checkpoint's


def resident_mib() -> float:
    """This process's resident memory now, MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


async def soak(url: str, token: str, scenario: str, count: int, every: int) -> tuple[list[tuple[int, float, float]], dict]:
    samples: list[tuple[int, float, float]] = []  # (acknowledged, seconds, resident MiB)
    acknowledged = 0
    began = time.monotonic()

    def on_ack(_: Acknowledged) -> None:
        nonlocal acknowledged
        acknowledged += 1
        if acknowledged % every == 0 or acknowledged == count:
            samples.append((acknowledged, time.monotonic() - began, resident_mib()))
            print(f"  {acknowledged:>9,} acknowledged  {samples[-1][1]:7.1f} s  {samples[-1][2]:6.1f} MiB", flush=True)

    settings = Settings(record_acks=False, ack_histogram=True)  # what run --count sets
    options = ContractOptions(targets=[Target(url, token)], settings=settings, probes=False, count=count, on_ack=on_ack)
    result = await run_scenario(load(scenario), options)
    return samples, result.stats()


def page(args: argparse.Namespace, samples: list[tuple[int, float, float]], stats: dict, verdict: str) -> str:
    at = {n: (seconds, mib) for n, seconds, mib in samples}
    checkpoint, end = at[args.checkpoint][1], samples[-1][2]
    rows = "\n".join(f"| {n:,} | {seconds:.1f} | {mib:.1f} |" for n, seconds, mib in samples)
    latency = stats["ack_latency_ms"]
    return f"""# Soak: resident memory of a long `run`

Written by `benchmarks/bench_soak.py` (do not edit by hand). Python {platform.python_version()}, {platform.machine()}.

`run --count {args.count:,}` of the `{args.scenario}` scenario (repeated, each pass fresh), every frame
validated both ways, against `nbwss-emu serve --keep 0` in another process.

| | |
|---|---|
| notifications sent | {stats["sent"]:,} |
| acknowledged | {stats["acknowledged"]:,} ({stats["lost"]:,} lost, {stats["resent"]:,} resent) |
| elapsed | {stats["elapsed_s"]:.0f} s ({stats["sent"] / stats["elapsed_s"]:,.0f} notifications/s) |
| ack latency p50 / p99 / max | {latency["p50"]} / {latency["p99"]} / {latency["max"]} ms |
| resident memory at {args.checkpoint:,} | {checkpoint:.1f} MiB |
| resident memory at the end | {end:.1f} MiB ({end / checkpoint:.3f} of the checkpoint; target at most {TARGET:.2f}) |
| verdict | **{verdict}** |

Resident memory as the run went:

| acknowledged | seconds | resident MiB |
|---:|---:|---:|
{rows}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--checkpoint", type=int, default=100_000)
    parser.add_argument("--scenario", default="datacenter-day")
    parser.add_argument("--page", type=Path, default=PAGE, help="where the figures go (default: docs/benchmarks/soak.md)")
    args = parser.parse_args()
    if args.count % args.checkpoint:
        parser.error("--count must be a multiple of --checkpoint")
    print(f"soak: run --count {args.count:,} of {args.scenario} against serve --keep 0", flush=True)
    with reference_endpoint("--keep", "0") as (url, token):
        samples, stats = asyncio.run(soak(url, token, args.scenario, args.count, args.checkpoint))
    if not samples or samples[-1][0] != args.count:
        print(f"soak: the run ended after {samples[-1][0] if samples else 0:,} acknowledgements: {stats}", file=sys.stderr)
        return 1
    checkpoint = next(mib for n, _, mib in samples if n == args.checkpoint)
    end = samples[-1][2]
    verdict = "pass" if end <= TARGET * checkpoint else "FAIL"
    print(
        f"resident memory: {checkpoint:.1f} MiB at {args.checkpoint:,}, {end:.1f} MiB at {args.count:,}: {end / checkpoint:.3f} ({verdict})"
    )
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(page(args, samples, stats, verdict))
    print(f"figures written to {args.page}")
    return 0 if verdict == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
