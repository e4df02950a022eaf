"""nbwss-emu load against a bare websockets client: throughput over ws:// and wss://, and p99 at half the maximum rate.

Run: python benchmarks/bench_load.py [--seconds S] [--window W] [--rounds R] [--p99-rate R]

Everything is measured in this one run and printed as ratios. The endpoint is the
bare acknowledging endpoint (ack_endpoint.py) in a separate process, so that the
clients, not the endpoint, set the pace. The two clients take turns, round after
round, so that drifts of a shared machine hit both alike:

* bare: a websockets client sending pre-built frames with a window, counting acks;
* load, prepared: ``run_load`` with one master, the same window, every frame
  validated both ways, acks correlated by id into HDR histograms, its notifications
  generated before its clock starts (``--prepare``, a round's worth): the sending
  path alone, what the bare client's pre-built frames are compared with;
* load, live: the same generating as it goes (the default), where one master's
  domain in one generator process shares the two cores with the rest.

Then, at half of the bare client's rate (or --p99-rate), both send in the open model
(each frame due at its time, latency counted from then) and their p99 ack latencies
are compared: of whole rounds, of whole seconds, the best tenth of the seconds (their
10th percentile), and of the quiet seconds, those in which the hypervisor took (steal)
at most 1% of the machine's CPU time. On a shared VM the tails of both clients come from
steal; rounds go on (up to --p99-max-rounds) until each client has --quiet-seconds of them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from dataclasses import dataclass, field

from common import StealWatch, ack_endpoint, bare_paced, bare_rate, frames, page_of

from emulator.load.runner import LoadConfig, LoadResult, run_load
from emulator.protocol.run import Settings, Target
from emulator.scenario import load
from emulator.wire.tls import TlsOptions


async def load_run(
    url: str, token: str, cafile: str | None, seconds: float, window: int, rate: float | None = None, prepare: int = 0
) -> LoadResult:
    settings = Settings(window=window if rate is None else 100_000)  # open model: the rate decides, as the CLI does
    config = LoadConfig(
        load("datacenter-day"),
        masters=1,
        duration=seconds,
        rate=rate,
        targets=[Target(url, token)],
        settings=settings,
        tls=TlsOptions(cafile),
        prepare=prepare,
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
    live: list[float] = field(default_factory=list)
    bare_cpu: list[float] = field(default_factory=list)
    load_cpu: list[float] = field(default_factory=list)
    live_cpu: list[float] = field(default_factory=list)
    starved: int = 0


def throughput(args: argparse.Namespace, tls: bool, sample: list[bytes]) -> Rounds:
    rounds = Rounds()
    with ack_endpoint(tls=tls) as (url, token, cafile):
        for _ in range(args.rounds):
            rate, cpu = asyncio.run(bare_rate(url, token, sample, args.window, args.seconds, cafile))
            rounds.bare.append(rate)
            rounds.bare_cpu.append(cpu)
            result = asyncio.run(load_run(url, token, cafile, args.seconds, args.window, prepare=int(1.5 * rate * args.seconds)))
            rounds.load.append(result.metrics.acknowledged / result.elapsed)
            rounds.load_cpu.append(result.cpu_seconds / result.metrics.acknowledged * 1e6)
            result = asyncio.run(load_run(url, token, cafile, args.seconds, args.window))
            rounds.live.append(result.metrics.acknowledged / result.elapsed)
            rounds.live_cpu.append(result.cpu_seconds / result.metrics.acknowledged * 1e6)
            rounds.starved += result.starved
    return rounds


def show_throughput(title: str, rounds: Rounds) -> None:
    median = statistics.median
    print(title)
    print(f"  {'client':<42}{'median/s':>10}{'best/s':>10}{'CPU µs/ack':>12}")
    for name, rates, cpu in (
        ("bare websockets (pre-built frames)", rounds.bare, rounds.bare_cpu),
        ("nbwss-emu load (1 master, validating)", rounds.load, rounds.load_cpu),
        ("  the same, generating live", rounds.live, rounds.live_cpu),
    ):
        print(f"  {name:<42}{median(rates):>10,.0f}{max(rates):>10,.0f}{median(cpu):>12.1f}")
    paired = median(m / b for m, b in zip(rounds.load, rounds.bare, strict=True))
    print(f"  throughput load/bare: median of rounds {paired:.2f}, best/best {max(rounds.load) / max(rounds.bare):.2f}")
    print(f"  CPU per acknowledgement bare/load (the ratio with a core each): {median(rounds.bare_cpu) / median(rounds.load_cpu):.2f}")
    live = median(m / b for m, b in zip(rounds.live, rounds.bare, strict=True))
    print(
        f"  generating live, load/bare: median of rounds {live:.2f} (one master's domain is one generator process, "
        f"on {os.cpu_count()} cores with the endpoint; it waited for its generator {rounds.starved} times)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--p99-rounds", type=int, default=9, help="rounds of the p99 comparison at least")
    parser.add_argument("--p99-max-rounds", type=int, default=30, help="rounds at most, while quiet seconds are too few")
    parser.add_argument("--quiet-seconds", type=int, default=15, help="quiet seconds wanted of each client (see QUIET)")
    parser.add_argument("--p99-rate", type=float, help="notifications/s of the p99 comparison (default: half the bare client's median)")
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

    latency(args, args.p99_rate or median(ws.bare) / 2, sample)


#: Seconds in which the hypervisor took at most this share of the machine's CPU time count as quiet.
QUIET = 0.01


@dataclass
class Latencies:
    """One client's p99 ack latency (ms): of each round, and of each whole second with the steal in it."""

    rounds: list[float] = field(default_factory=list)
    seconds: list[tuple[float, float | None]] = field(default_factory=list)  # (p99, steal share or None: unknown)

    def quiet(self) -> list[float]:
        return [p for p, steal in self.seconds if steal is not None and steal <= QUIET]

    def best_tenth(self) -> float:
        """The 10th percentile of the seconds' p99: steal only ever adds latency, so the low end is the client's own."""
        return statistics.quantiles([p for p, _ in self.seconds], n=10)[0]


def latency(args: argparse.Namespace, rate: float, sample: list[bytes]) -> None:
    """Both clients in the open model at ``rate``, alternating, until each has enough quiet seconds."""
    median = statistics.median
    full = rate * 0.9  # a second with fewer acks is the run's first or last, partly filled
    bare_latency, load_latency = Latencies(), Latencies()
    with ack_endpoint() as (url, token, _), StealWatch() as steal:
        rounds = 0
        while rounds < args.p99_rounds or (
            rounds < args.p99_max_rounds and min(len(bare_latency.quiet()), len(load_latency.quiet())) < args.quiet_seconds
        ):
            rounds += 1
            by_second = asyncio.run(bare_paced(url, token, sample, rate, args.seconds))
            bare_latency.rounds.append(p99([latency for latencies in by_second.values() for latency in latencies]))
            bare_latency.seconds.extend(
                (p99(latencies), steal.share(begin, begin + 1)) for begin, latencies in by_second.items() if len(latencies) >= full
            )
            prepare = int(1.2 * rate * args.seconds)
            metrics = asyncio.run(load_run(url, token, None, args.seconds, args.window, rate, prepare)).metrics
            load_latency.rounds.append(metrics.percentiles_ms()["p99"])
            load_latency.seconds.extend(
                (metrics.percentiles_ms(second.latency)["p99"], steal.share(metrics.start + index, metrics.start + index + 1))
                for index, second in metrics.seconds.items()
                if second.latency.get_total_count() >= full
            )
    print(f"\np99 ack latency at {rate:,.0f}/s (open model, latency from when each was due; load prepared)")
    print(f"  {'client':<18}{'median of rounds':>18}{'of seconds':>12}{'best tenth':>12}{'of quiet seconds':>18}")
    for name, figures in (("bare websockets", bare_latency), ("nbwss-emu load", load_latency)):
        quiet = figures.quiet()
        print(
            f"  {name:<18}{median(figures.rounds):>15.2f} ms{median(p for p, _ in figures.seconds):>9.2f} ms"
            f"{figures.best_tenth():>9.2f} ms" + (f"{median(quiet):>10.2f} ms ({len(quiet)})" if quiet else f"{'none':>13}")
        )
    shares = [s for _, s in bare_latency.seconds + load_latency.seconds if s is not None]
    if shares:
        print(
            f"  steal (the hypervisor's share of the CPU time) per second: median {median(shares):.1%}, max {max(shares):.1%};"
            f" quiet: at most {QUIET:.0%}"
        )
    print(f"  rounds ({rounds} each), bare: {', '.join(f'{v:.1f}' for v in bare_latency.rounds)}")
    print(f"  rounds ({rounds} each), load: {', '.join(f'{v:.1f}' for v in load_latency.rounds)}")
    differences = {
        "median of rounds": median(load_latency.rounds) - median(bare_latency.rounds),
        "median of seconds": median(p for p, _ in load_latency.seconds) - median(p for p, _ in bare_latency.seconds),
        "best tenth of seconds": load_latency.best_tenth() - bare_latency.best_tenth(),
    }
    if bare_latency.quiet() and load_latency.quiet():
        differences["quiet seconds"] = median(load_latency.quiet()) - median(bare_latency.quiet())
    for label, difference in differences.items():
        print(
            f"  load - bare, {label + ':':<23}{difference:+.2f} ms"
            + ("  (target: within 1 ms)" if label in ("best tenth of seconds", "quiet seconds") else "")
        )


def p99(latencies: list[float]) -> float:
    """The 99th percentile of ``latencies`` (seconds), in milliseconds."""
    return statistics.quantiles(latencies, n=100)[98] * 1000


if __name__ == "__main__":
    with page_of("load", "Load against a bare websockets client: throughput, CPU per acknowledgement, p99"):
        main()
