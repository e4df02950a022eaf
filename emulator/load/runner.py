"""A load run: N emulated masters, each its own domain and connection, against one endpoint.

Two models. Open (``rate``): notifications are due at a fixed total rate whatever
the endpoint does, and latency is measured from when each was *due*, so a slow
endpoint shows as latency and backlog, not as a quietly lower rate (coordinated
omission accounted for). Closed (no rate): each connection keeps ``window``
notifications outstanding and sends the next as soon as one is acknowledged.
Without a target the reference endpoint runs in a separate process, so that the
figures include what serving costs. Notifications are prepared before the clock
starts (:mod:`emulator.load.streams`), so that the run measures the endpoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import itertools
import os
import random
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from emulator.load.metrics import LoadMetrics
from emulator.load.streams import MasterStream, auto_count, prepare
from emulator.protocol.session import Acknowledged
from emulator.scenario.model import Scenario
from emulator.wire.master import CloseTogether, ConnectError, EmulatedMaster, Paced, Report, Settings, Target
from emulator.wire.tls import TlsOptions


@dataclass(slots=True)
class LoadConfig:
    """What :func:`run_load` runs: the scenario, how many masters, for how long, at what rate, against which endpoint."""

    scenario: Scenario
    masters: int = 10
    duration: float = 10.0  # seconds of sending, ramp-up included
    rate: float | None = None  # notifications per second, all masters together (open model)
    ramp_up: float = 0.0  # masters start evenly over this time
    targets: list[Target] = field(default_factory=list)  # none: the reference endpoint in its own process
    settings: Settings = field(default_factory=Settings)
    tls: TlsOptions = field(default_factory=TlsOptions)
    seed: int = 0
    prepare: int | None = None  # notifications prepared before the clock starts, all masters; None: auto_count()
    progress: Callable[[dict[str, Any]], None] | None = None  # called about once a second
    on_prepare: Callable[[int, int], None] | None = None  # (prepared so far, to prepare), about once a second
    stop: asyncio.Event | None = None


@dataclass(slots=True)
class LoadResult:
    """What a load run measured: its metrics, each master's report, and what the generator cost; :meth:`figures` as a dict."""

    config: LoadConfig
    metrics: LoadMetrics
    reports: list[Report]
    elapsed: float
    endpoint: str
    interrupted: bool = False
    prepared: int = 0
    generated_live: int = 0  # notifications the run outlasted the prepared ones by, generated while it ran
    prepare_seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process while the clock ran: near elapsed, the generator was the limit
    rss_at_start: int | None = None  # bytes resident when the clock started (domains and prepared frames in); None: unknown here
    rss_peak: int | None = None  # the most seen while it ran (sampled each second and at the end)

    def figures(self) -> dict[str, Any]:
        figures = self.metrics.as_dict(self.elapsed)
        figures.update(
            {
                "scenario": self.config.scenario.name,
                "masters": self.config.masters,
                "model": f"open, {self.config.rate:g}/s" if self.config.rate else f"closed, window {self.config.settings.window}",
                "endpoint": self.endpoint,
                "interrupted": self.interrupted,
                "prepared": self.prepared,
                "generated_during_run": self.generated_live,
                "prepare_s": round(self.prepare_seconds, 3),
                "generator_cpu": round(self.cpu_seconds / self.elapsed, 2) if self.elapsed > 0 else 0.0,
                "generator_memory": self._memory(),
            }
        )
        return figures

    def _memory(self) -> dict[str, float] | None:
        if self.rss_at_start is None or self.rss_peak is None:
            return None
        grown = max(0, self.rss_peak - self.rss_at_start)
        return {
            "rss_at_start_mib": round(self.rss_at_start / 2**20, 1),
            "rss_peak_mib": round(self.rss_peak / 2**20, 1),
            "per_master_connection_kib": round(grown / 1024 / self.config.masters, 1),  # what connecting and running added
        }


async def run_load(config: LoadConfig) -> LoadResult:
    """Run the load and return its figures; ConnectError when no master could connect at all."""
    server = None
    targets = config.targets
    if not targets:
        server, targets = await _start_endpoint(config.masters)
    try:
        began = time.monotonic()
        total = auto_count(config.duration, config.rate) if config.prepare is None else config.prepare
        seeds = [config.seed + index for index in range(config.masters)]
        try:
            streams = await prepare(config.scenario, seeds, total, on_progress=config.on_prepare)
        except asyncio.CancelledError:  # interrupted before the clock started: nothing was sent
            return LoadResult(config, LoadMetrics(time.monotonic()), [], 0.0, targets[0].url, interrupted=True)
        prepared, prepare_seconds = sum(len(s.prepared) for s in streams), time.monotonic() - began
        # The prepared frames and the masters' domains are large, long-lived object graphs:
        # out of the collector's sight, so that a full collection is no pause in the figures.
        gc.collect()
        gc.freeze()
        memory = ResidentMemory.now()
        start, cpu_start = time.monotonic(), time.process_time()
        metrics = LoadMetrics(start)
        stop_at = start + config.duration
        close_together = CloseTogether(config.masters)
        masters = [_master(config, index, targets, metrics, close_together) for index in range(config.masters)]
        progress = asyncio.ensure_future(_every_second(config, metrics, masters, start, memory))
        freezer = asyncio.ensure_future(_freeze_while_connecting(start + config.ramp_up + CONNECTING_GRACE))
        runs = [
            asyncio.ensure_future(_run_one(config, index, master, streams[index], metrics, stop_at)) for index, master in enumerate(masters)
        ]
        interrupted = False
        try:
            results = await asyncio.gather(*runs, return_exceptions=True)
        except asyncio.CancelledError:
            interrupted = True
            results = await asyncio.gather(*runs, return_exceptions=True)
        finally:  # however the masters ended (a second Ctrl-C too), progress and freezing end with them
            progress.cancel()
            freezer.cancel()
        memory.sample()
        reports = [r for r in results if isinstance(r, Report)]
        errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        if not reports and errors:
            raise ConnectError(str(errors[0]))
        interrupted = interrupted or any(r.interrupted for r in reports)
        for report in reports:
            metrics.lost += len(report.lost)
            metrics.retried += report.resent
            metrics.connections_opened += report.established
            metrics.connections_dropped += report.drops
        # what the endpoint broke, and what the preparation found in the masters' own frames
        for violation in itertools.chain(*(r.violations for r in reports), *(s.violations for s in streams)):
            metrics.findings[violation.rule] = metrics.findings.get(violation.rule, 0) + 1
        if errors:
            metrics.findings["connect"] = len(errors)
        generated_live = sum(s.generated_live for s in streams)
        elapsed, cpu = time.monotonic() - start, time.process_time() - cpu_start
        return LoadResult(
            config, metrics, reports, elapsed, targets[0].url, interrupted, prepared, generated_live, prepare_seconds, cpu,
            memory.start, memory.peak,
        )  # fmt: skip
    finally:
        gc.unfreeze()
        if server is not None:
            server.terminate()
            try:  # its connections are already closed: half a second is plenty, then it goes
                await asyncio.wait_for(server.wait(), 0.5)
            except TimeoutError:
                server.kill()
                await server.wait()


#: How often, while masters connect, what they built is frozen (seconds); and how long after the
#: ramp-up they may still be connecting. See _freeze_while_connecting.
FREEZE_INTERVAL = 0.1
CONNECTING_GRACE = 2.0


async def _freeze_while_connecting(until: float) -> None:
    """Keep what the connecting masters build out of the collector's sight, as the prepared frames are.

    Each connection is a few hundred long-lived objects, and a full collection walks
    every object not frozen: with 5,000 masters ramping up, it stopped the event loop
    for 75-380 ms each second, in every master's ack latency. Frozen every 100 ms, a
    collection walks only the newest connections. (What is garbage when frozen stays
    until the run ends and unfreezes it: the ramp-up's, not the run's.)
    """
    while time.monotonic() < until:
        await asyncio.sleep(FREEZE_INTERVAL)
        gc.freeze()


def _master(config: LoadConfig, index: int, targets: list[Target], metrics: LoadMetrics, close_together: CloseTogether) -> EmulatedMaster:
    def acknowledged(event: Acknowledged) -> None:
        # since it was due: in the open model, a notification that left late waited too
        metrics.on_ack(event.received_at, event.since_due)  # in the second it was read

    settings = dataclasses.replace(config.settings, record_acks=False)  # the metrics keep histograms
    return EmulatedMaster(
        targets, settings, tls=config.tls, rng=random.Random(config.seed + index), on_ack=acknowledged, stop=config.stop,
        close_together=close_together,
    )  # fmt: skip


async def _run_one(
    config: LoadConfig, index: int, master: EmulatedMaster, stream: MasterStream, metrics: LoadMetrics, stop_at: float
) -> Report:
    delay = config.ramp_up * index / config.masters if config.masters > 1 else 0.0
    if delay:
        await asyncio.sleep(delay)
    return await master.run(_notifications(config, stream, metrics, time.monotonic(), stop_at))


def _notifications(config: LoadConfig, stream: MasterStream, metrics: LoadMetrics, began: float, stop_at: float) -> Iterator[Any]:
    """One master's notifications until the duration is over; in the open model, each at its slot."""
    if config.rate:
        interval = config.masters / config.rate  # each master takes its share of the total rate
        for count in itertools.count():
            at = count * interval
            message = stream.next() if began + at < stop_at else None
            if message is None:
                return
            metrics.on_sent(began + at)
            yield Paced(at, message)
    else:
        while True:
            now = time.monotonic()
            message = stream.next() if now < stop_at else None
            if message is None:
                return
            metrics.on_sent(now)
            yield message


def resident_bytes() -> int | None:
    """This process's resident memory (Linux); None where /proc is not there to tell."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass(slots=True)
class ResidentMemory:
    """Resident bytes when the clock started and the most seen since (None: unknown here)."""

    start: int | None
    peak: int | None

    @classmethod
    def now(cls) -> ResidentMemory:
        resident = resident_bytes()
        return cls(resident, resident)

    def sample(self) -> None:
        resident = resident_bytes()
        if resident is not None and self.peak is not None:
            self.peak = max(self.peak, resident)


async def _every_second(
    config: LoadConfig, metrics: LoadMetrics, masters: list[EmulatedMaster], start: float, memory: ResidentMemory
) -> None:
    """Sample memory, and tell the progress callback how the last second went.

    It looks half-way into each second: the second before is complete by then, and
    its latencies folded into its histogram by the acknowledgements since.
    """
    last_sent = last_acked = 0
    for tick in itertools.count(1):
        await asyncio.sleep(max(0.0, start + tick + 0.5 - time.monotonic()))
        memory.sample()
        if config.progress is None:
            continue
        now = time.monotonic()
        outstanding = sum(len(m._session.pending) for m in masters if m._session is not None)
        second = metrics.seconds.get(int(now - start) - 1)
        config.progress(
            {
                "elapsed": now - start,
                "sent_per_s": metrics.sent - last_sent,
                "acked_per_s": metrics.acknowledged - last_acked,
                "outstanding": outstanding,
                "latency_ms": metrics.percentiles_ms(second.latency) if second is not None else metrics.percentiles_ms(),
                "errors": sum(len(m.report.violations) for m in masters) + sum(m.report.drops for m in masters),
            }
        )
        last_sent, last_acked = metrics.sent, metrics.acknowledged


async def _start_endpoint(masters: int) -> tuple[asyncio.subprocess.Process, list[Target]]:
    """The reference endpoint in a process of its own, on a free loopback port."""
    token = secrets.token_urlsafe(24)
    command = [
        sys.executable,
        "-m",
        "emulator",
        "serve",
        "--port",
        "0",
        f"--token={token}",
        "--max-connections",
        str(masters + 16),
        "--keep",
        "0",
        "--stop-on-stdin-eof",  # this process's end, however it comes, ends the endpoint's too
    ]  # = : a token may start with "-"
    process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = (await process.stdout.readline()).decode()
    if "listening on" not in line:
        process.kill()
        raise ConnectError(f"the reference endpoint did not start: {line.strip() or 'no output'}")
    return process, [Target(line.split()[-1], token)]
