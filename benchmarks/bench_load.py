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
from dataclasses import dataclass, field

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


@dataclass
class Rounds:
    """Rates (acks/s) and CPU per acknowledgement (µs) of each client, round by round."""

    bare: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    bare_cpu: list[float] = field(default_factory=list)
    load_cpu: list[float] = field(default_factory=list)
    generated: int = 0


def throughput(args: argparse.Namespace, tls: bool, sample: list[bytes]) -> Rounds:
    rounds = Rounds()
    with ack_endpoint(tls=tls) as (url, token, cafile):
        for _ in range(args.rounds):
            rate, cpu = asyncio.run(bare_rate(url, token, sample, args.window, args.seconds, cafile))
            rounds.bare.append(rate)
            rounds.bare_cpu.append(cpu)
            result = asyncio.run(load_run(url, token, cafile, args.seconds, args.window))
            rounds.load.append(result.metrics.acknowledged / result.elapsed)
            rounds.load_cpu.append(result.cpu_seconds / result.metrics.acknowledged * 1e6)
            rounds.generated += result.generated_live
    return rounds


def show_throughput(title: str, rounds: Rounds) -> None:
    median = statistics.median
    print(title)
    print(f"  {'client':<42}{'median/s':>10}{'best/s':>10}{'CPU µs/ack':>12}")
    for name, rates, cpu in (
        ("bare websockets (pre-built frames)", rounds.bare, rounds.bare_cpu),
        ("nbwss-emu load (1 master, validating)", rounds.load, rounds.load_cpu),
    ):
        print(f"  {name:<42}{median(rates):>10,.0f}{max(rates):>10,.0f}{median(cpu):>12.1f}")
    paired = median(m / b for m, b in zip(rounds.load, rounds.bare, strict=True))
    print(f"  throughput load/bare: median of rounds {paired:.2f}, best/best {max(rounds.load) / max(rounds.bare):.2f}")
    print(f"  CPU per acknowledgement bare/load (the ratio with a core each): {median(rounds.bare_cpu) / median(rounds.load_cpu):.2f}")
    if rounds.generated:
        print(f"  (load outran its prepared notifications: {rounds.generated} generated during its runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--p99-rounds", type=int, default=9, help="rounds of the p99 comparison (this VM's scheduling makes single ones noisy)"
    )
    args = parser.parse_args()
    median = statistics.median
    sample = frames(20_000)
    print(
        f"bare acknowledging endpoint in a separate process; window {args.window}; {args.rounds} alternating rounds of {args.seconds:g} s"
    )

    ws = throughput(args, False, sample)
    show_throughput("\nthroughput over ws://", ws)
    wss = throughput(args, True, sample)
    show_throughput("\nthroughput over wss:// (TLS)", wss)
    cost = {name: 1 - median(getattr(wss, name)) / median(getattr(ws, name)) for name in ("bare", "load")}
    print(f"  TLS costs the bare client {cost['bare']:.0%} of its rate, load {cost['load']:.0%}")

    rate = median(ws.bare) / 2
    bare_p99: list[float] = []
    load_p99: list[float] = []
    bare_seconds: list[float] = []
    load_seconds: list[float] = []
    with ack_endpoint() as (url, token, _):
        for _ in range(args.p99_rounds):
            latencies = asyncio.run(bare_paced(url, token, sample, rate, args.seconds))
            bare_p99.append(p99(latencies))
            per_second = int(rate)  # the bare client's acks come in the order they were due
            bare_seconds.extend(p99(latencies[i : i + per_second]) for i in range(0, len(latencies) - per_second + 1, per_second))
            result = asyncio.run(load_run(url, token, None, args.seconds, args.window, rate))
            load_p99.append(result.metrics.percentiles_ms()["p99"])
            full = [s.latency for s in result.metrics.seconds.values() if s.latency.get_total_count() >= per_second * 0.9]
            load_seconds.extend(result.metrics.percentiles_ms(h)["p99"] for h in full)
    print(f"\np99 ack latency at half the bare client's rate ({rate:,.0f}/s, open model, latency from when each was due)")
    for name, values, seconds in (("bare websockets", bare_p99, bare_seconds), ("nbwss-emu load", load_p99, load_seconds)):
        print(
            f"  {name:<24}median {median(values):7.2f} ms   rounds {', '.join(f'{v:.2f}' for v in values)}"
            f"   (median p99 of its {len(seconds)} whole seconds: {median(seconds):.2f} ms)"
        )
    print(f"  load - bare: {median(load_p99) - median(bare_p99):+.2f} ms (target: within 1 ms)")
    print(f"  per second:  {median(load_seconds) - median(bare_seconds):+.2f} ms")


def p99(latencies: list[float]) -> float:
    """The 99th percentile of ``latencies`` (seconds), in milliseconds."""
    return statistics.quantiles(latencies, n=100)[98] * 1000


if __name__ == "__main__":
    main()
