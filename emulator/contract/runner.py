"""A contract run: a scenario against an endpoint, probes included, judged by the rules."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from emulator.contract.probes import ProbeResult, run_probes
from emulator.contract.rules import FAILED, RuleResult, RunFacts, evaluate
from emulator.domain.clock import Scheduler
from emulator.domain.master import MasterServer
from emulator.endpoint.server import Fault, ReferenceEndpoint
from emulator.protocol.session import Acknowledged
from emulator.protocol.soak import limited, repeated
from emulator.responders import DEFAULT_PROFILE, CommandResponder
from emulator.scenario import Timeline
from emulator.scenario.model import Scenario
from emulator.wire.master import Duplicate, EmulatedMaster, Paced, Reconnect, Report, Settings, Target
from emulator.wire.tls import TlsOptions
from emulator.wire.transcript import FrameRecorder, Transcript

RECONNECT_AFTER = 10  # messages before the deliberate reconnect


@dataclass(slots=True)
class ContractOptions:
    """What to run and against what; without targets, the embedded reference endpoint."""

    targets: list[Target] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    tls: TlsOptions = field(default_factory=TlsOptions)
    seed: int | None = None
    speed: float | None = None  # scenario seconds per real second; None: as fast as acknowledged
    profile: str = DEFAULT_PROFILE
    probes: bool = True  # wrong-token CONNECT, deliberate reconnect, duplicate notification
    transcript: str | FrameRecorder | None = None  # a path, or a recorder such as RecentFrames
    fault: Fault | None = None  # of the embedded endpoint, to see a rule catch it
    on_ack: Callable[[Acknowledged], None] | None = None  # progress, e.g. for a live display
    stop: asyncio.Event | None = None  # set it (and cancel the run) to stop early; the run still reports
    probe_names: list[str] = field(default_factory=list)  # robustness probes to run after the scenario
    count: int | None = None  # soak: this many notifications, the scenario repeated (fresh each pass)
    duration: float | None = None  # soak: for this many seconds, the scenario repeated


@dataclass(slots=True)
class ContractResult:
    """The verdict of a run, with what it was based on."""

    name: str
    seed: int | None
    endpoint: str
    embedded: bool
    results: list[RuleResult]
    report: Report
    probes: list[ProbeResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        rules_hold = all(r.status != FAILED for r in self.results)
        return not self.interrupted and rules_hold and all(p.handled for p in self.probes)

    @property
    def interrupted(self) -> bool:
        return self.report.interrupted

    def stats(self) -> dict[str, Any]:
        report = self.report
        return {
            "sent": report.sent,
            "acknowledged": report.acknowledged,
            "resent": report.resent,
            "lost": len(report.lost),
            "duplicate_acks": report.duplicate_acks,
            "connections": report.established,
            "dropped": report.drops,
            "commands": len(report.commands),
            "acks_of_resent_copies": report.copy_acks,  # a copy's ack after the first: allowed, one per copy
            "unanswered_commands": [_request_line(request) for request in report.unanswered],
            "elapsed_s": round(report.elapsed, 3),
            "ack_latency_ms": report.latency_ms(),
        }


def _request_line(request: dict[str, Any]) -> str:
    payload = request.get("payload")
    if not isinstance(payload, dict):
        return str(request.get("id"))
    return f"{payload.get('method')} {payload.get('uri')} ({request.get('id')})"


async def run_scenario(scenario: Scenario, options: ContractOptions) -> ContractResult:
    """Run ``scenario`` as the master of its first domain and judge the endpoint."""
    timeline = Timeline(scenario, seed=options.seed, start=float(int(time.time())))
    primary = scenario.masters[0].key
    responder = CommandResponder(timeline.masters[primary], profile=options.profile, rng=random.Random(timeline.seed))
    messages = (t for t in timeline.messages() if t.master == primary)
    pool: Callable[[], list[dict[str, Any]]] = lambda: _pool(scenario, timeline.seed)  # noqa: E731 - built only if probes run
    start = timeline.scheduler.now()
    if options.count is not None or options.duration is not None:  # a soak: fresh passes, generated as they are sent

        def cycle(number: int) -> Iterator[dict[str, Any]]:
            again = timeline if number == 0 else Timeline(scenario, seed=timeline.seed + number, start=float(int(time.time())))
            return (t.message for t in again.messages() if t.master == primary)

        soak = limited(repeated(cycle), count=options.count, duration=options.duration)
        return await _run(scenario.name, timeline.seed, soak, responder, options, pool)
    if options.speed:
        source: Iterable[Any] = (Paced((t.at - start) / options.speed, t.message) for t in messages)
    else:
        source = (t.message for t in messages)
    return await _run(scenario.name, timeline.seed, source, responder, options, pool)


async def replay(messages: list[dict[str, Any]], options: ContractOptions, name: str = "replay") -> ContractResult:
    """Send recorded notifications again, as their master did (no probes unless asked)."""
    master = MasterServer("replayed-master", Scheduler(time.time()), random.Random(0))
    responder = CommandResponder(master, profile=options.profile)
    return await _run(name, None, iter(messages), responder, options, lambda: messages)


async def _run(
    name: str,
    seed: int | None,
    source: Iterable[Any],
    responder: CommandResponder,
    options: ContractOptions,
    pool: Callable[[], list[dict[str, Any]]],
) -> ContractResult:
    endpoint: ReferenceEndpoint | None = None
    targets = options.targets
    if not targets:
        endpoint = await ReferenceEndpoint(
            probe_commands=True, fault=options.fault, late_ack_delay=options.settings.ack_limit() * 1.5
        ).start()
        targets = [Target(endpoint.url, endpoint.token)]
    transcript = Transcript(options.transcript) if isinstance(options.transcript, str) else options.transcript
    try:
        master = EmulatedMaster(
            targets, options.settings, tls=options.tls, responder=responder, transcript=transcript, on_ack=options.on_ack
        )
        token_probe = None
        try:
            if options.probes:
                token_probe = await master.try_token(_wrong_token(targets[0].token))
                source = _with_probes(iter(source))
            report = await master.run(source)  # returns its report, marked, when interrupted
        except asyncio.CancelledError:
            report = master.report  # interrupted before the run began
            report.interrupted = True
        probes: list[ProbeResult] = []
        if options.probe_names and not report.interrupted:
            try:
                probes = await run_probes(options.probe_names, targets, options.settings, options.tls, pool(), seed or 0)
            except asyncio.CancelledError:
                report.interrupted = True
    finally:
        if transcript is not None:
            transcript.close()
        if endpoint is not None:
            await endpoint.stop()
    facts = RunFacts(report, token_probe=token_probe, embedded=endpoint is not None, profile=options.profile)
    return ContractResult(name, seed, report.url, endpoint is not None, evaluate(facts), report, probes)


def _pool(scenario: Scenario, seed: int) -> list[dict[str, Any]]:
    """Notifications of the scenario (another run of it) for the probes to work with."""
    timeline = Timeline(scenario, seed=seed + 1, start=float(int(time.time())))
    return list(itertools.islice(timeline.notifications(repeat=True), 600))


def _wrong_token(token: str) -> str:
    wrong = secrets.token_urlsafe(max(8, len(token) * 3 // 4))
    return wrong if wrong != token else wrong + "x"


def _with_probes(messages: Iterator[Any]) -> Iterator[Any]:
    """The messages, with a deliberate reconnect and a duplicate after the first few (or at the end)."""
    count = 0
    for message in messages:
        yield message
        count += 1
        if count == RECONNECT_AFTER:
            yield Reconnect()
            yield Duplicate()
    if count < RECONNECT_AFTER:
        yield Reconnect()
        yield Duplicate()
