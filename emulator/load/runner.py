"""A load run: N emulated masters, each its own domain and connection, against one endpoint.

Two models. Open (``rate``): notifications are due at a fixed total rate whatever
the endpoint does, and latency is measured from when each was *due*, so a slow
endpoint shows as latency and backlog, not as a quietly lower rate (coordinated
omission accounted for). Closed (no rate): each connection keeps ``window``
notifications outstanding and sends the next as soon as one is acknowledged.
Without a target the reference endpoint runs in a separate process, so that the
figures include what serving costs.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from emulator.load.metrics import LoadMetrics
from emulator.protocol.session import Acknowledged
from emulator.scenario import Timeline
from emulator.scenario.model import Scenario
from emulator.wire.master import ConnectError, EmulatedMaster, Paced, Report, Settings, Target
from emulator.wire.tls import TlsOptions


@dataclass(slots=True)
class LoadConfig:
    scenario: Scenario
    masters: int = 10
    duration: float = 10.0  # seconds of sending, ramp-up included
    rate: float | None = None  # notifications per second, all masters together (open model)
    ramp_up: float = 0.0  # masters start evenly over this time
    targets: list[Target] = field(default_factory=list)  # none: the reference endpoint in its own process
    settings: Settings = field(default_factory=Settings)
    tls: TlsOptions = field(default_factory=TlsOptions)
    seed: int = 0
    progress: Callable[[dict[str, Any]], None] | None = None  # called about once a second
    stop: asyncio.Event | None = None


@dataclass(slots=True)
class LoadResult:
    config: LoadConfig
    metrics: LoadMetrics
    reports: list[Report]
    elapsed: float
    endpoint: str
    interrupted: bool = False

    def figures(self) -> dict[str, Any]:
        figures = self.metrics.as_dict(self.elapsed)
        figures.update(
            {
                "scenario": self.config.scenario.name,
                "masters": self.config.masters,
                "model": f"open, {self.config.rate:g}/s" if self.config.rate else f"closed, window {self.config.settings.window}",
                "endpoint": self.endpoint,
                "interrupted": self.interrupted,
            }
        )
        return figures


async def run_load(config: LoadConfig) -> LoadResult:
    """Run the load and return its figures; ConnectError when no master could connect at all."""
    server = None
    targets = config.targets
    if not targets:
        server, targets = await _start_endpoint(config.masters)
    start = time.monotonic()
    metrics = LoadMetrics(start)
    due: dict[str, float] = {}  # message id -> when it was due (open model)
    stop_at = start + config.duration
    try:
        masters = [_master(config, index, targets, metrics, due) for index in range(config.masters)]
        progress = asyncio.ensure_future(_progress(config, metrics, masters, start)) if config.progress else None
        runs = [
            asyncio.ensure_future(_run_one(config, index, master, metrics, due, start, stop_at)) for index, master in enumerate(masters)
        ]
        interrupted = False
        try:
            results = await asyncio.gather(*runs, return_exceptions=True)
        except asyncio.CancelledError:
            interrupted = True
            results = await asyncio.gather(*runs, return_exceptions=True)
        if progress is not None:
            progress.cancel()
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
            for violation in report.violations:
                metrics.findings[violation.rule] = metrics.findings.get(violation.rule, 0) + 1
        if errors:
            metrics.findings["connect"] = len(errors)
        return LoadResult(config, metrics, reports, time.monotonic() - start, targets[0].url, interrupted)
    finally:
        if server is not None:
            server.terminate()
            try:  # its connections are already closed: half a second is plenty, then it goes
                await asyncio.wait_for(server.wait(), 0.5)
            except TimeoutError:
                server.kill()
                await server.wait()


def _master(config: LoadConfig, index: int, targets: list[Target], metrics: LoadMetrics, due: dict[str, float]) -> EmulatedMaster:
    def acknowledged(event: Acknowledged) -> None:
        now = time.monotonic()
        since = due.pop(event.message_id, None)
        metrics.on_ack(now, now - since if since is not None else event.latency)

    return EmulatedMaster(
        targets, config.settings, tls=config.tls, rng=random.Random(config.seed + index), on_ack=acknowledged, stop=config.stop
    )


async def _run_one(
    config: LoadConfig, index: int, master: EmulatedMaster, metrics: LoadMetrics, due: dict[str, float], start: float, stop_at: float
) -> Report:
    delay = config.ramp_up * index / config.masters if config.masters > 1 else 0.0
    if delay:
        await asyncio.sleep(delay)
    began = time.monotonic()
    return await master.run(_notifications(config, index, metrics, due, began, stop_at))


def _notifications(
    config: LoadConfig, index: int, metrics: LoadMetrics, due: dict[str, float], began: float, stop_at: float
) -> Iterator[Any]:
    """One master's stream: its own domain (seed + index), until the duration is over."""
    timeline = Timeline(config.scenario, seed=config.seed + index, start=float(int(time.time())))
    primary = config.scenario.masters[0].key
    messages = (t.message for t in timeline.messages(repeat=True) if t.master == primary)
    if config.rate:
        interval = config.masters / config.rate  # each master takes its share of the total rate
        for count, message in enumerate(messages):
            at = count * interval
            if began + at >= stop_at:
                return
            due[message["id"]] = began + at
            metrics.on_sent(began + at)
            yield Paced(at, message)
    else:
        for message in messages:
            now = time.monotonic()
            if now >= stop_at:
                return
            metrics.on_sent(now)
            yield message


async def _progress(config: LoadConfig, metrics: LoadMetrics, masters: list[EmulatedMaster], start: float) -> None:
    assert config.progress is not None
    last_sent = last_acked = 0
    while True:
        await asyncio.sleep(1.0)
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
    ]  # = : a token may start with "-"
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = (await process.stdout.readline()).decode()
    if "listening on" not in line:
        process.kill()
        raise ConnectError(f"the reference endpoint did not start: {line.strip() or 'no output'}")
    return process, [Target(line.split()[-1], token)]
