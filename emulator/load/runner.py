"""A load run: N emulated masters, each its own domain and connection, against one endpoint.

Two models. Open (``rate``): notifications are due at a fixed total rate whatever
the endpoint does, and latency is measured from when each was *due*, so a slow
endpoint shows as latency and backlog, not as a quietly lower rate (coordinated
omission accounted for). Closed (no rate): each connection keeps ``window``
notifications outstanding and sends the next as soon as one is acknowledged.
Without a target the reference endpoint runs in a separate process, so that the
figures include what serving costs. Notifications come from a generator process
(:mod:`emulator.load.generator`) a bounded buffer ahead of the senders, so the
run starts at once, its memory does not grow with its duration, and the senders
never pay for generating.

Refused masters, lost notifications, late acknowledgements and the endpoint's
protocol violations are findings; COMMAND requests are answered from each
master's domain, as ``run`` does, and counted.

With ``expect_state``, each master folds the notifications the endpoint
acknowledged into its expected state as the acknowledgements come (a JSON
decode per acknowledgement), and :meth:`LoadResult.expected_state` gives them,
by each master's host name, for ``diff-state``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import itertools
import os
import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from emulator.contract.rules import EVIDENCE
from emulator.findings import RuleId
from emulator.load import children
from emulator.load.children import Child
from emulator.load.generator import Generators, processes_for
from emulator.load.metrics import LoadMetrics
from emulator.load.streams import MasterStream, feed_sizes
from emulator.protocol.run import Report, Settings, Target
from emulator.protocol.session import Acknowledged, Violation
from emulator.responders import DEFAULT_PROFILE, CommandResponder, DomainResponder
from emulator.scenario.model import Scenario
from emulator.state import AckRecorder, document, unique_names
from emulator.wire.master import CloseTogether, ConnectError, EmulatedMaster
from emulator.wire.tls import TlsOptions

#: Masters below which the per-master memory figure is not shown: a few masters' growth is lost in
#: the allocator's and the buffers' noise (it swung from 89 KiB to 40 MB on runs of 5-20 masters).
PER_MASTER_MEMORY_FROM = 200


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
    buffer: int | None = None  # notifications generated ahead of the senders at most, all masters; None: streams.BUFFER
    prepare: int = 0  # notifications each master has generated before the clock starts (peak rates the generator cannot keep)
    profile: str = DEFAULT_PROFILE  # the NetBackup version COMMAND answers speak for
    generators: int | None = None  # generator processes; None: one per core (at most one per master)
    progress: Callable[[dict[str, Any]], None] | None = None  # called about once a second
    stop: asyncio.Event | None = None
    expect_state: bool = False  # fold what was acknowledged into each master's expected state (a decode per ack)
    token_for: Callable[[str], str] | None = None  # the token of a master's own registration, by its host name; None: the targets'


@dataclass(slots=True)
class LoadResult:
    """What a load run measured: its metrics, each master's report, and what the generator cost; :meth:`figures` as a dict."""

    config: LoadConfig
    metrics: LoadMetrics
    reports: list[Report]
    elapsed: float
    endpoint: str
    interrupted: bool = False
    first_sent_s: float | None = None  # from the start of run_load to the first notification handed to a master
    first_sent_at: float | None = None  # time.monotonic() when the first notification was handed to a master
    setup_s: float = 0.0  # from the start of run_load to the clock's start (endpoint and generator processes started)
    generation_cpu_s: float = 0.0  # CPU time of the generator processes
    generation_processes: int = 1
    generation_rss_peak: int | None = None  # its peak resident bytes
    starved: int = 0  # times a master waited for the generator
    starved_share: float = 0.0  # the share of the masters' time spent so (0 to 1)
    all_started_s: float = 0.0  # when the last master started sending, seconds after the clock started
    generated: int = 0  # notifications that came from the generator (sent, or still in the buffers at the end)
    cpu_seconds: float = 0.0  # CPU time of the senders' process while the clock ran: near elapsed, it was the limit
    rss_at_start: int | None = None  # bytes resident when the clock started; None: unknown here
    rss_peak: int | None = None  # the most seen while it ran (sampled each second and at the end)
    hostnames: list[str | None] = field(default_factory=list)  # each master's, in the masters' order (None: never heard)
    recorders: list[AckRecorder] = field(default_factory=list)  # with expect_state: each master's, in the same order
    evidence: dict[str, list[str]] = field(default_factory=dict)  # the first few examples of each finding, by rule

    def expected_state(self) -> dict[str, Any]:
        """What the endpoint was told, as jobs and images per master (``schemas/expected-state.json``).

        Masters are keyed by their host names; where two load masters have the same
        one, the first (in the masters' order: seed, seed + 1, ...) keeps it and the
        next ones are ``name#2``, ``name#3`` (:func:`emulator.state.unique_names`).
        ValueError unless the run had ``LoadConfig.expect_state``.
        """
        if not self.config.expect_state:
            raise ValueError("expected_state needs a load run with LoadConfig(expect_state=True)")
        names = unique_names(hostname or "master" for hostname in self.hostnames)
        return document({name: recorder.state for name, recorder in zip(names, self.recorders, strict=True)})

    def figures(self) -> dict[str, Any]:
        figures = self.metrics.as_dict(self.elapsed, self.config.duration)
        commands = [exchange for report in self.reports for exchange in report.commands]
        figures.update(
            {
                "scenario": self.config.scenario.name,
                "masters": self.config.masters,
                "duration_s": self.config.duration,
                "ramp_up_s": self.config.ramp_up,
                "model": f"open, {self.config.rate:g}/s" if self.config.rate else f"closed, window {self.config.settings.window}",
                "endpoint": self.endpoint,
                "interrupted": self.interrupted,
                "masters_connected": sum(1 for r in self.reports if r.established),
                "masters_refused": sum(1 for r in self.reports if r.refused),
                "commands": {"answered": len(commands), "failed": sum(1 for c in commands if c.status >= 400)},
                "late": sum(r.late for r in self.reports),  # all of them: late_acks keeps only the first hundred per master
                "evidence": self.evidence,
                "generation": {
                    "first_sent_s": round(self.first_sent_s, 3) if self.first_sent_s is not None else None,
                    "first_sent_at": self.first_sent_at,  # time.monotonic() then: the system's clock, comparable across processes
                    "setup_s": round(self.setup_s, 3),
                    "processes": self.generation_processes,
                    "cpu": round(self.generation_cpu_s / self.elapsed, 2) if self.elapsed > 0 else 0.0,
                    "rss_peak_mib": round(self.generation_rss_peak / 2**20, 1) if self.generation_rss_peak else None,
                    "starved": self.starved,
                    "starved_share": round(self.starved_share, 4),
                    "all_started_s": round(self.all_started_s, 3),
                    "generated": self.generated,
                },
                "prepare_s": round(self.setup_s, 3),  # before the clock started: the endpoint and generator processes starting
                "generator_cpu": round(self.cpu_seconds / self.elapsed, 2) if self.elapsed > 0 else 0.0,
                "generator_memory": self._memory(),
            }
        )
        return figures

    def _memory(self) -> dict[str, float | None] | None:
        if self.rss_at_start is None or self.rss_peak is None:
            return None
        grown = max(0, self.rss_peak - self.rss_at_start)
        per_master = round(grown / 1024 / self.config.masters, 1) if self.config.masters >= PER_MASTER_MEMORY_FROM else None
        return {
            "rss_at_start_mib": round(self.rss_at_start / 2**20, 1),
            "rss_peak_mib": round(self.rss_peak / 2**20, 1),
            "per_master_connection_kib": per_master,  # what connecting and running added; None: too few masters to tell
        }


async def run_load(config: LoadConfig) -> LoadResult:
    """Run the load and return its figures; ConnectError when no master could connect at all."""
    began = time.monotonic()
    server = generator = None
    targets = config.targets
    try:
        window = config.settings.window
        sizes = feed_sizes(config.masters, window, config.rate, config.buffer)
        seeds = [config.seed + index for index in range(config.masters)]
        scenario_start = float(int(time.time()))
        try:
            processes = config.generators if config.generators is not None else processes_for(config.masters)
            starting = [Generators.start(config.scenario, seeds, scenario_start, [sizes] * config.masters, processes)]
            if not targets:
                endpoint_started = asyncio.ensure_future(_start_endpoint(config.masters))
                generator = await starting[0]
                server, targets = await endpoint_started
            else:
                generator = await starting[0]
            await generator.ready.wait()  # the clock starts with notifications to send: a short run is not spent waiting
            if config.prepare:
                for feed in generator.feeds:
                    feed.prepare(config.prepare)
                await asyncio.gather(*(feed.filled(config.prepare) for feed in generator.feeds))
        except asyncio.CancelledError:  # interrupted before the clock started: nothing was sent
            return LoadResult(config, LoadMetrics(time.monotonic()), [], 0.0, targets[0].url if targets else "", interrupted=True)
        memory = ResidentMemory.now()
        start, cpu_start = time.monotonic(), time.process_time()
        metrics = LoadMetrics(start)
        stop_at = start + config.duration
        streams = [
            MasterStream(feed, metrics, began=start, stop_at=stop_at, window=window, rate=config.rate, masters=config.masters)
            for feed in generator.feeds
        ]
        close_together = CloseTogether(config.masters)
        recorders = [AckRecorder() for _ in range(config.masters)] if config.expect_state else []
        # One generator of CONNECT ids and back-off jitter for all: a Random is 2.5 KiB, a tenth of a master's connection.
        rng = random.Random(config.seed)
        settings = master_settings(config)  # one for all: the masters only read it
        masters = [
            _master(
                config, settings, index, targets, metrics, close_together, streams[index], scenario_start, rng,
                recorders[index] if recorders else None,
            )
            for index in range(config.masters)
        ]  # fmt: skip
        progress = asyncio.ensure_future(_every_second(config, metrics, masters, start, memory, generator))
        freezer = asyncio.ensure_future(_freeze_while_connecting(start + config.ramp_up + CONNECTING_GRACE))
        runs = [asyncio.ensure_future(_run_one(config, index, master, streams[index])) for index, master in enumerate(masters)]
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
        elapsed, cpu = time.monotonic() - start, time.process_time() - cpu_start
        generator.sample()
        reports = [r for r in results if isinstance(r, Report)]
        errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        if not reports and errors:
            raise ConnectError(str(errors[0]))
        interrupted = interrupted or any(r.interrupted for r in reports)
        evidence = _count(metrics, reports, errors, generator)
        first = generator.first_at
        return LoadResult(
            config, metrics, reports, elapsed, targets[0].url, interrupted,
            first_sent_s=max(first, start) - began if first is not None and metrics.sent else None,
            first_sent_at=max(first, start) if first is not None and metrics.sent else None,
            setup_s=start - began, generation_cpu_s=generator.cpu_seconds, generation_processes=len(generator.parts), generation_rss_peak=generator.rss_peak,
            all_started_s=max((s.began for s in streams), default=start) - start, starved=sum(s.starved for s in streams), starved_share=sum(s.starved_s for s in streams) / max(1e-9, elapsed * len(streams)), generated=sum(f.taken + len(f.buffer) for f in generator.feeds), cpu_seconds=cpu, rss_at_start=memory.start, rss_peak=memory.peak,
            hostnames=[feed.hostname for feed in generator.feeds], recorders=recorders, evidence=evidence,
        )  # fmt: skip
    finally:
        gc.unfreeze()
        await asyncio.gather(*([generator.close()] if generator is not None else []), *([_stop(server)] if server is not None else []))


async def _stop(server: Child) -> None:
    """End the endpoint process: its connections are already closed, so a fifth of a second is plenty, then it goes."""
    server.terminate()
    await server.wait(0.2)


def _count(metrics: LoadMetrics, reports: list[Report], errors: list[BaseException], generator: Generators) -> dict[str, list[str]]:
    """Fold the masters' reports into the figures: what was lost, refused, late or broken is a finding.

    Returns the evidence: for each rule found, its first examples (at most
    :data:`~emulator.contract.rules.EVIDENCE`), worded as ``run`` words them.
    """
    findings = metrics.findings
    evidence: dict[str, list[str]] = {}

    def add(rule: str, count: int, examples: Iterable[str] = ()) -> None:
        if count:
            findings[rule] = findings.get(rule, 0) + count
            kept = evidence.setdefault(rule, [])
            kept.extend(itertools.islice(examples, max(0, EVIDENCE - len(kept))))

    left = sum(report.sent for report in reports)
    if metrics.sent > left:  # handed to masters that never sent them: refused, or stopped first
        metrics.not_sent(metrics.sent - left)
    for report in reports:
        metrics.lost += len(report.lost)
        metrics.retried += report.resent
        metrics.connections_opened += report.established
        metrics.connections_dropped += report.drops
        # a refused master sent nothing: never a pass
        add(RuleId.CONNECT_ACCEPTS_TOKEN, 1 if report.refused else 0, [f"CONNECT to {report.url} answered valid: false"])
        lost = (f"notification {message_id} never acknowledged" for message_id in report.lost)
        add(RuleId.ACK_EVERY_NOTIFICATION, len(report.lost), itertools.chain([report.error] if report.error else [], lost))
        # late as run counts it: beyond notification.sendTimeout (all of them; late_acks keeps the first hundred)
        add(RuleId.ACK_WITHIN_TIMEOUT, report.late, (report.late_text(i, latency) for i, latency in report.late_acks))
    # what the endpoint broke, and what the generator found in the masters' own frames
    for violation in itertools.chain(*(r.violations for r in reports), *(f.violations for f in generator.feeds)):
        add(violation.rule, 1, [_quoted(violation)])
    add(RuleId.CONNECT_ANSWERED, len(errors), (str(error) for error in errors))  # masters that could not connect while others could
    return evidence


def _quoted(violation: Violation) -> str:
    """A violation as ``run``'s evidence words it: where in the frame, what is wrong, and the frame (its start)."""
    text = f"{violation.finding.pointer or '/'}: {violation.finding.message}"
    return f"{text} in {violation.frame[:300]}" if violation.frame else text


#: Acknowledged ids remembered by all masters of a run together, and by each at least (see Settings.ack_memory).
ACK_MEMORY = 65_536
ACK_MEMORY_LEAST = 16

#: How often, while masters connect, what they built is frozen (seconds); and how long after the
#: ramp-up they may still be connecting. See _freeze_while_connecting.
FREEZE_INTERVAL = 0.1
CONNECTING_GRACE = 2.0


async def _freeze_while_connecting(until: float) -> None:
    """Keep what the connecting masters build out of the collector's sight, as the prepared frames are.

    Each connection is a few hundred long-lived objects, and a full collection walks
    every object not frozen: with 5,000 masters ramping up, it stopped the event loop
    for 75-380 ms each second, in every master's ack latency. Frozen every 100 ms, a
    collection walks only the newest connections. What is cyclic garbage when frozen
    would stay until the run ends, so the young generations (only what the last 100 ms
    made: a millisecond or two) are collected first.
    """
    while time.monotonic() < until:
        await asyncio.sleep(FREEZE_INTERVAL)
        gc.collect(1)
        gc.freeze()


def master_settings(config: LoadConfig) -> Settings:
    """Each master's settings in a load run: acknowledgements counted, not recorded, and a share of the ack memory.

    The metrics keep histograms. The masters share the memory of acknowledged ids (200
    bytes each: 65,536 for each of 5,000 masters grew a run by 160 bytes a notification,
    a gigabyte an hour).
    """
    return dataclasses.replace(config.settings, record_acks=False, ack_memory=max(ACK_MEMORY_LEAST, ACK_MEMORY // config.masters))


def _master(
    config: LoadConfig, settings: Settings, index: int, targets: list[Target], metrics: LoadMetrics, close_together: CloseTogether, stream: MasterStream,
    scenario_start: float, rng: random.Random, recorder: AckRecorder | None = None,
) -> EmulatedMaster:  # fmt: skip
    on_ack, freed = metrics.on_ack, stream.acknowledged

    def acknowledged(event: Acknowledged) -> None:
        # since it was due: in the open model, a notification that left late waited too
        on_ack(event.received_at, event.since_due)  # in the second it was read
        freed()

    responder = DomainResponder(config.scenario, config.seed + index, scenario_start, config.profile, lambda: stream.handed)
    return EmulatedMaster(
        targets, settings, tls=config.tls, rng=rng, stop=config.stop,
        on_ack=acknowledged if recorder is None else _folding(acknowledged, recorder),
        close_together=close_together, responder=cast(CommandResponder, responder),
    )  # fmt: skip


def _folding(acknowledged: Callable[[Acknowledged], None], recorder: AckRecorder) -> Callable[[Acknowledged], None]:
    """``acknowledged``, then the notification folded into ``recorder`` (a closure of its own: without it, no test per ack)."""
    fold = recorder.fold

    def folding(event: Acknowledged) -> None:
        acknowledged(event)
        fold(event.frame)  # what was sent, as the endpoint acknowledged it

    return folding


async def _run_one(config: LoadConfig, index: int, master: EmulatedMaster, stream: MasterStream) -> Report:
    delay = config.ramp_up * index / config.masters if config.masters > 1 else 0.0
    if delay:
        await asyncio.sleep(delay)
    feed = stream.feed
    if not feed.buffer and not feed.ended:
        # Its domain is still being built (10-20 ms each, in turn): the master starts when it has something to send,
        # so that the generator's pace shows as a later start, not as the endpoint's latency in the open model.
        feed.arrived.clear()
        await feed.arrived.wait()
    if config.token_for is not None and feed.hostname is not None:  # its own registration: known now, with its first notifications
        token = config.token_for(feed.hostname)
        master.targets = [dataclasses.replace(target, token=token) for target in master.targets]
    stream.began = time.monotonic()  # the open model's slots count from this master's start
    return await master.run(stream)


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
    config: LoadConfig, metrics: LoadMetrics, masters: list[EmulatedMaster], start: float, memory: ResidentMemory, generator: Generators
) -> None:
    """Sample memory, and tell the progress callback how the last second went.

    It looks half-way into each second: the second before is complete by then, and
    its latencies folded into its histogram by the acknowledgements since. Rates are
    counted over the time that actually passed since the last look (the first look
    comes 1.5 s in: a rate per look would overstate it by half).
    """
    last_sent = last_acked = 0
    last_at = start
    for tick in itertools.count(1):
        await asyncio.sleep(max(0.0, start + tick + 0.5 - time.monotonic()))
        memory.sample()
        if config.progress is None:
            continue
        now = time.monotonic()
        span = max(now - last_at, 1e-3)
        second = metrics.seconds.get(int(now - start) - 1)
        config.progress(
            {
                "elapsed": now - start,
                "sent_per_s": round((metrics.sent - last_sent) / span),
                "acked_per_s": round((metrics.acknowledged - last_acked) / span),
                "outstanding": metrics.sent - metrics.acknowledged,
                "latency_ms": metrics.percentiles_ms(second.latency) if second is not None else metrics.percentiles_ms(),
                "errors": sum(len(m.report.violations) + m.report.drops + m.report.late + m.report.refused for m in masters),
            }
        )
        last_sent, last_acked, last_at = metrics.sent, metrics.acknowledged, now


async def _start_endpoint(masters: int) -> tuple[Child, list[Target]]:
    """The reference endpoint in a process of its own (forked where that is safe), on a free loopback port."""
    token = secrets.token_urlsafe(24)
    connections = masters + 16
    module = ["emulator", "serve", "--port", "0", f"--token={token}", "--max-connections", str(connections), "--keep", "0"]
    module.append("--stop-on-stdin-eof")  # this process's end, however it comes, ends the endpoint's too
    process = await children.start(functools.partial(_serve_endpoint, token, connections), module)  # = : a token may start with "-"
    line = (await process.stdout.readline()).decode()
    if "listening on" not in line:
        process.terminate()
        raise ConnectError(f"the reference endpoint did not start: {line.strip() or 'no output'}")
    return process, [Target(line.split()[-1], token)]


def _serve_endpoint(token: str, connections: int, stdin: int, stdout: int) -> None:
    """The forked endpoint process: serve on a free loopback port, say where, stop at stdin's end."""
    from emulator.endpoint.server import ReferenceEndpoint  # noqa: PLC0415 - the endpoint process's, not the senders'

    async def serve() -> None:
        endpoint = ReferenceEndpoint(token=token, max_connections=connections, keep=0)
        await endpoint.start()
        os.write(stdout, f"reference endpoint listening on {endpoint.url}\n".encode())
        ended = asyncio.Event()

        def readable() -> None:
            if not os.read(stdin, 65536):
                ended.set()

        asyncio.get_running_loop().add_reader(stdin, readable)
        await ended.wait()
        await endpoint.stop()

    asyncio.run(serve())
