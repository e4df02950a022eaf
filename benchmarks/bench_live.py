"""Notifications per second of the emulated master, next to a bare websockets client.

Run: python benchmarks/bench_live.py [--count N] [--window W] [--rounds R]

The reference endpoint runs in a separate process (``nbwss-emu serve``). Both
clients send the same notifications with the same window of unacknowledged
messages to the same endpoint, alternately, in this one run:

* bare: pre-built frames, one ``send`` each, a counter for the window, no parsing;
* emulated master: the full session (every frame both ways validated against the
  schemas, acknowledgements correlated by id and timed, resend timers, transcript off).

The figure that matters is the ratio of the two rates (target: 0.8 or more).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics

from common import bare_rate, page_of, reference_endpoint

from emulator.protocol.codec import encode
from emulator.protocol.run import Settings, Target
from emulator.scenario import Timeline, load
from emulator.wire.master import EmulatedMaster


async def emulated(url: str, token: str, messages: list[dict], window: int) -> float:
    master = EmulatedMaster([Target(url, token)], Settings(window=window))
    report = await master.run(messages)
    assert len(report.acks) == len(messages) and not report.lost and not report.violations, "the run must be clean"
    return len(messages) / report.elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    messages = [t.message for t in itertools.islice(Timeline(load("datacenter-day"), seed=1).messages(repeat=True), args.count)]
    frames = [encode(m) for m in messages]
    with reference_endpoint() as (url, token):
        bares, masters = [], []
        for _ in range(args.rounds):  # alternate, so that drifts of the machine hit both alike
            bares.append(asyncio.run(bare_rate(url, token, frames, args.window))[0])
            masters.append(asyncio.run(emulated(url, token, messages, args.window)))
    best_bare, best_master = max(bares), max(masters)
    paired = statistics.median(m / b for m, b in zip(masters, bares, strict=True))
    print(f"{args.count} notifications, window {args.window}, endpoint in a separate process, {args.rounds} alternating rounds")
    print(f"{'client':<40}{'best notifications/s':>22}{'ratio':>8}")
    print(f"{'bare websockets (baseline)':<40}{best_bare:>22,.0f}{1:>8.2f}")
    print(f"{'emulated master (validating)':<40}{best_master:>22,.0f}{best_master / best_bare:>8.2f}")
    print(f"median of the per-round ratios: {paired:.2f}")


if __name__ == "__main__":
    with page_of("live", "The emulated master against a bare websockets client, one connection"):
        main()
