"""nbwss-emu load measured against a bare websockets client, and its memory per connection.

Run: python benchmarks/bench_load.py [--seconds S] [--window W]

Measured in this one run, against the reference endpoint in a separate process,
printed as a ratio: the load runner (one master, every frame validated, latencies
in HDR histograms, notifications generated on the fly from the scenario) against
a bare websockets client sending pre-built frames with the same window, for the
same time. (Memory per connection at 5,000 masters is still to be measured, each
side in a fresh process: RSS deltas in one process are skewed by the allocator.)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools

from common import bare_rate, reference_endpoint

from emulator.load.runner import LoadConfig, run_load
from emulator.protocol.codec import encode
from emulator.scenario import Timeline, load
from emulator.wire.master import Settings, Target


async def load_rate(url: str, token: str, window: int, seconds: float) -> float:
    config = LoadConfig(load("datacenter-day"), masters=1, duration=seconds, targets=[Target(url, token)], settings=Settings(window=window))
    result = await run_load(config)
    return result.metrics.acknowledged / result.elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=64)
    args = parser.parse_args()
    frames = [encode(t.message) for t in itertools.islice(Timeline(load("datacenter-day"), seed=1).messages(repeat=True), 20_000)]
    with reference_endpoint("--keep", "0") as (url, token):
        bare = asyncio.run(bare_rate(url, token, frames, args.window, args.seconds))
        loaded = asyncio.run(load_rate(url, token, args.window, args.seconds))
    print(f"throughput, window {args.window}, {args.seconds:g} s each, reference endpoint in a separate process")
    print(f"  bare websockets (pre-built frames)   {bare:>10,.0f}/s   1.00")
    print(f"  nbwss-emu load (1 master)            {loaded:>10,.0f}/s   {loaded / bare:.2f}")


if __name__ == "__main__":
    main()
