"""nbwss-emu load against a bare websockets client: throughput over ws:// and wss://, and p99 at half the maximum rate.

Run: python benchmarks/bench_load.py [--seconds S] [--window W] [--rounds R]

Everything is measured in this one run and printed as ratios. The endpoint is the
bare acknowledging endpoint (ack_endpoint.py) in a separate process, so that the
clients, not the endpoint, set the pace. The two clients take turns, round after
round, so that drifts of a shared machine hit both alike:

* bare: a websockets client sending pre-built frames with a window, counting acks;
* load: ``run_load`` with one master, the same window, every frame validated both
  ways, acks correlated by id into HDR histograms; its notifications prepared
  before its clock starts, as the tool does by default.

Then, at half of the bare client's rate, both send in the open model (each frame
due at its time, latency counted from then) and their p99 ack latencies are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from common import ack_endpoint, bare_paced, bare_rate, frames

from emulator.load.runner import LoadConfig, LoadResult, run_load
from emulator.scenario import load
from emulator.wire.master import Settings, Target
from emulator.wire.tls import TlsOptions


async def load_run(url: str, token: str, cafile: str | None, seconds: float, window: int, rate: float | None = None) -> LoadResult:
    settings = Settings(window=window if rate is None else 100_000)  # open model: the rate decides, as the CLI does
    config = LoadConfig(
        load("datacenter-day"),
        masters=1,
        duration=seconds,
        rate=rate,
        targets=[Target(url, token)],
        settings=settings,
        tls=TlsOptions(cafile),
    )
    result = await run_load(config)
    figures = result.figures()
    assert figures["lost"] == 0 and not figures["findings"], f"the load run must be clean: {figures}"
    return result


def throughput(args: argparse.Namespace, tls: bool, sample: list[bytes]) -> tuple[list[float], list[float], int]:
    """(bare rates, load rates, notifications load generated during its runs) over ws:// or wss://."""
    bares, loads, generated = [], [], 0
    with ack_endpoint(tls=tls) as (url, token, cafile):
        for _ in range(args.rounds):
            bares.append(asyncio.run(bare_rate(url, token, sample, args.window, args.seconds, cafile)))
            result = asyncio.run(load_run(url, token, cafile, args.seconds, args.window))
            loads.append(result.metrics.acknowledged / result.elapsed)
            generated += result.generated_live
    return bares, loads, generated


def show_throughput(title: str, bares: list[float], loads: list[float], generated: int) -> None:
    paired = statistics.median(m / b for m, b in zip(loads, bares, strict=True))
    print(title)
    print(f"  {'client':<44}{'median/s':>10}{'best/s':>10}")
    print(f"  {'bare websockets (pre-built frames)':<44}{statistics.median(bares):>10,.0f}{max(bares):>10,.0f}")
    print(f"  {'nbwss-emu load (1 master, validating)':<44}{statistics.median(loads):>10,.0f}{max(loads):>10,.0f}")
    print(f"  ratio load/bare: median of rounds {paired:.2f}, best/best {max(loads) / max(bares):.2f}")
    if generated:
        print(f"  (load outran its prepared notifications: {generated} generated during its runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sample = frames(20_000)
    print(
        f"bare acknowledging endpoint in a separate process; window {args.window}; {args.rounds} alternating rounds of {args.seconds:g} s\n"
    )

    ws = throughput(args, False, sample)
    show_throughput("throughput over ws://", *ws)
    wss = throughput(args, True, sample)
    show_throughput("throughput over wss:// (TLS)", *wss)
    print(
        f"  TLS costs the bare client {1 - statistics.median(wss[0]) / statistics.median(ws[0]):.0%}, load {1 - statistics.median(wss[1]) / statistics.median(ws[1]):.0%}"
    )

    rate = statistics.median(ws[0]) / 2
    bare_p99, load_p99 = [], []
    with ack_endpoint() as (url, token, _):
        for _ in range(args.rounds):
            latencies = asyncio.run(bare_paced(url, token, sample, rate, args.seconds))
            bare_p99.append(statistics.quantiles(latencies, n=100)[98] * 1000)
            result = asyncio.run(load_run(url, token, None, args.seconds, args.window, rate))
            load_p99.append(result.metrics.percentiles_ms()["p99"])
    difference = statistics.median(m - b for m, b in zip(load_p99, bare_p99, strict=True))
    print(f"\np99 ack latency at half the bare client's rate ({rate:,.0f}/s, open model, latency from when each was due)")
    print(f"  bare websockets         median p99 {statistics.median(bare_p99):6.2f} ms   rounds {', '.join(f'{v:.2f}' for v in bare_p99)}")
    print(f"  nbwss-emu load          median p99 {statistics.median(load_p99):6.2f} ms   rounds {', '.join(f'{v:.2f}' for v in load_p99)}")
    print(f"  load - bare: median of rounds {difference:+.2f} ms (target: within 1 ms)")


if __name__ == "__main__":
    main()
