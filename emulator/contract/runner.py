"""A contract run: a scenario against an endpoint, probes included, judged by the rules."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from emulator.contract.probes import ProbeResult, connected_first, not_run_probes, run_probes, try_wrong_token
from emulator.contract.rules import FAILED, RuleResult, RunFacts, evaluate
from emulator.domain.clock import Scheduler
from emulator.domain.master import MasterServer
from emulator.endpoint.server import Fault, ReferenceEndpoint
from emulator.protocol.run import Duplicate, Paced, Reconnect, Report, Settings, Target
from emulator.protocol.session import Acknowledged
from emulator.protocol.soak import limited, repeated
from emulator.responders import DEFAULT_PROFILE, CommandResponder
from emulator.scenario import Timeline
from emulator.scenario.model import Scenario
from emulator.state import expected_state
from emulator.wire.master import EmulatedMaster
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
    start: float | None = None  # scenario start (epoch seconds); None: so that the run ends by the wall clock's now
    keep_sent: bool = False  # keep the notifications sent, for ContractResult.expected_state()
    token_for: Callable[[str], str] | None = None  # the token of a master's own registration (by host name), if each has one
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
    master: str = ""  # the emulated master's host name
    sent_messages: list[dict[str, Any]] = field(default_factory=list)  # with ContractOptions.keep_sent
    elapsed: float = 0.0  # the whole verdict: the scenario, the wrong-token CONNECT and the probes

    def expected_state(self) -> dict[str, Any]:
        """What the endpoint was told: the acknowledged notifications as jobs and images (:mod:`emulator.state`)."""
        return expected_state(self.master, self.sent_messages, (message_id for message_id, _, _ in self.report.acks))

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
            "sent": report.sent,  # distinct notifications; the deliberate duplicates are apart
            "acknowledged": report.acknowledged,
            "resent": report.resent,
            "lost": len(report.lost),
            "duplicate_acks": report.duplicate_acks,
            "connections": report.established,
            "dropped": report.drops,
            "commands": len(report.commands),
            "acks_of_resent_copies": report.copy_acks,  # a copy's ack after the first: allowed, one per copy
            "duplicates_sent": len(report.duplicates_sent),  # deliberate: an acknowledged id again (ack.duplicate-accepted)
            "duplicates_acknowledged": len(report.duplicates_acked),
            "unanswered_commands": [_request_line(request) for request in report.unanswered],
            "elapsed_s": round(max(self.elapsed, report.elapsed), 3),
            "ack_latency_ms": report.latency_ms(),
        }


def _request_line(request: dict[str, Any]) -> str:
    payload = request.get("payload")
    if not isinstance(payload, dict):
        return str(request.get("id"))
    return f"{payload.get('method')} {payload.get('uri')} ({request.get('id')})"


def live_start(scenario: Scenario, seed: int | None, now: float) -> float:
    """The start that puts a scenario's last message at or before ``now`` (whole seconds).

    A live run must never tell of a job ending after the wall clock's now; the
    scenario's span comes from a dry run of the same timeline (cheap: the
    bundled datacenter-day takes well under a second), and it is the same
    whatever the start, so the live run sends exactly those messages.
    """
    dry = Timeline(scenario, seed=seed, start=0.0, ids="seeded")
    span = 0.0
    for timed in dry.messages():
        span = timed.at
    return float(math.floor(now - span))


async def run_masters(scenario: Scenario, options: ContractOptions) -> list[ContractResult]:
    """Run ``scenario`` with every master on its own NBWSS connection (and registration), side by side.

    One timeline feeds one stream per master (:meth:`Timeline.streams`), so an AIR
    target sends its IMPORT jobs and CREATEs as a DR master does. The first master
    runs the probes; each master gets its own result, named after it. Without
    targets, all connect to one embedded reference endpoint.
    """
    if options.count is not None or options.duration is not None:
        return [await run_scenario(scenario, options)]  # a soak: the first master's stream, repeated
    started = time.monotonic()  # the verdict's time: building the timeline included
    start = options.start if options.start is not None else live_start(scenario, options.seed, time.time())
    timeline = Timeline(scenario, seed=options.seed, start=start)
    endpoint: ReferenceEndpoint | None = None
    if not options.targets:
        endpoint = await _embedded(options)
    try:
        streams = timeline.streams()
        runs = []
        for index, spec in enumerate(scenario.masters):
            master = timeline.masters[spec.key]
            mine = (
                options
                if index == 0
                else dataclasses.replace(options, probes=False, probe_names=[], transcript=_beside(options.transcript, spec.key))
            )
            if options.token_for is not None and options.targets:
                mine = dataclasses.replace(mine, targets=[Target(t.url, options.token_for(master.hostname)) for t in options.targets])
            responder = CommandResponder(master, profile=options.profile, rng=random.Random(timeline.seed + index))
            source = _source((t for t in streams[spec.key]), start, options.speed)
            name = scenario.name if len(scenario.masters) == 1 else f"{scenario.name} master {spec.key} ({master.hostname})"
            pool: Callable[[], list[dict[str, Any]]] = lambda: _pool(scenario, timeline.seed)  # noqa: E731 - built only if probes run
            runs.append(_run(name, timeline.seed, source, responder, mine, pool, master.hostname, shared=endpoint, started=started))
        tasks = [asyncio.ensure_future(run) for run in runs]
        try:
            return list(await asyncio.gather(*tasks))
        except asyncio.CancelledError:
            # Stopped (a signal): each run catches its cancellation and still reports; collect those reports.
            ended = await asyncio.gather(*tasks, return_exceptions=True)
            results = [result for result in ended if isinstance(result, ContractResult)]
            if len(results) != len(tasks):
                raise
            return results
    finally:
        if endpoint is not None:
            await endpoint.stop()


def _source(messages: Iterable[Any], start: float, speed: float | None) -> Iterable[Any]:
    if speed:
        return (Paced((t.at - start) / speed, t.message) for t in messages)
    return (t.message for t in messages)


def _beside(transcript: str | FrameRecorder | None, key: str) -> str | FrameRecorder | None:
    """Another master's transcript: beside the given file (``run.jsonl`` -> ``run.dr.jsonl``); none for a recorder."""
    if isinstance(transcript, str):
        stem, dot, suffix = transcript.rpartition(".")
        return f"{stem}.{key}.{suffix}" if dot and "/" not in suffix else f"{transcript}.{key}"
    return None


async def _embedded(options: ContractOptions) -> ReferenceEndpoint:
    return await ReferenceEndpoint(
        probe_commands=True,
        fault=options.fault,
        late_ack_delay=options.settings.ack_limit() * 1.5,
        profile=options.profile,
        connect_timeout=options.settings.connect_timeout,
    ).start()


async def run_scenario(scenario: Scenario, options: ContractOptions) -> ContractResult:
    """Run ``scenario`` as the master of its first domain and judge the endpoint (:func:`run_masters` runs them all)."""
    started = time.monotonic()  # the verdict's time: building the timeline included
    start = options.start if options.start is not None else live_start(scenario, options.seed, time.time())
    timeline = Timeline(scenario, seed=options.seed, start=start)
    primary = scenario.masters[0].key
    responder = CommandResponder(timeline.masters[primary], profile=options.profile, rng=random.Random(timeline.seed))
    messages = (t for t in timeline.messages() if t.master == primary)
    pool: Callable[[], list[dict[str, Any]]] = lambda: _pool(scenario, timeline.seed)  # noqa: E731 - built only if probes run
    start = timeline.start
    if options.count is not None or options.duration is not None:  # a soak: fresh passes, generated as they are sent

        def cycle(number: int) -> Iterator[dict[str, Any]]:
            again = (
                timeline
                if number == 0
                else Timeline(scenario, seed=timeline.seed + number, start=live_start(scenario, timeline.seed + number, time.time()))
            )
            return (t.message for t in again.messages() if t.master == primary)

        soak = limited(repeated(cycle), count=options.count, duration=options.duration)
        return await _run(scenario.name, timeline.seed, soak, responder, options, pool, timeline.masters[primary].hostname, started=started)
    if options.speed:
        source: Iterable[Any] = (Paced((t.at - start) / options.speed, t.message) for t in messages)
    else:
        source = (t.message for t in messages)
    return await _run(scenario.name, timeline.seed, source, responder, options, pool, timeline.masters[primary].hostname, started=started)


async def replay(messages: list[dict[str, Any]], options: ContractOptions, name: str = "replay") -> ContractResult:
    """Send recorded notifications again, as their master did (no probes unless asked)."""
    master = MasterServer("replayed-master", Scheduler(time.time()), random.Random(0))
    responder = CommandResponder(master, profile=options.profile)
    return await _run(name, None, iter(messages), responder, options, lambda: [m for m in messages if isinstance(m, dict)], master.hostname)


async def _run(
    name: str,
    seed: int | None,
    source: Iterable[Any],
    responder: CommandResponder,
    options: ContractOptions,
    pool: Callable[[], list[dict[str, Any]]],
    master_name: str = "",
    *,
    shared: ReferenceEndpoint | None = None,
    started: float | None = None,
) -> ContractResult:
    started = time.monotonic() if started is None else started
    endpoint: ReferenceEndpoint | None = shared  # an embedded endpoint several masters' runs share (stopped by their caller)
    sent: list[dict[str, Any]] = []
    if options.keep_sent:
        source = _kept(source, sent)
    targets = options.targets
    if not targets:
        if endpoint is None:
            endpoint = await _embedded(options)
        # Several masters on one embedded endpoint: each its own registration, so the store tells them apart.
        token = endpoint.token_for(master_name) if shared is not None and master_name else endpoint.token
        targets = [Target(endpoint.url, token)]
    transcript = Transcript(options.transcript) if isinstance(options.transcript, str) else options.transcript
    token_probe: tuple[bool | None, str] | None = None
    token_skipped = "the wrong-token probe was not run"
    try:
        master = EmulatedMaster(
            targets, options.settings, tls=options.tls, responder=responder, transcript=transcript, on_ack=options.on_ack
        )
        try:
            if options.probes:
                source = _with_probes(iter(source))
            report = await master.run(source)  # returns its report, marked, when interrupted
        except asyncio.CancelledError:
            report = master.report  # interrupted before the run began
            report.interrupted = True
        # The probes go to the endpoint the run was connected to: with fail-over, not necessarily the first.
        connected = _connected(targets, report.url)
        probes: list[ProbeResult] = []
        if options.probes and not report.interrupted:
            if report.established:
                try:
                    token_probe = await try_wrong_token(connected, options.settings, options.tls, _wrong_token(connected.token))
                except asyncio.CancelledError:
                    report.interrupted = True
            else:
                token_skipped = "no connection was established, so no second one was tried"
        if options.probe_names and not report.interrupted and not report.established:
            # Nothing to probe: the endpoint's CONNECT already failed (the rules say how); "broke it" would be a guess.
            probes = not_run_probes(options.probe_names, "the run established no connection (see connect.accepts-token)")
        elif options.probe_names and not report.interrupted:
            try:
                probes = await run_probes(
                    options.probe_names, connected_first(targets, connected), options.settings, options.tls, pool(), seed or 0
                )
            except asyncio.CancelledError:
                report.interrupted = True
    finally:
        if transcript is not None:
            transcript.close()
        if endpoint is not None and shared is None:
            await endpoint.stop()
    facts = RunFacts(
        report, token_probe=token_probe, token_probe_skipped=token_skipped, embedded=endpoint is not None, profile=options.profile
    )
    result = ContractResult(name, seed, report.url, endpoint is not None, evaluate(facts), report, probes, master_name, sent)
    result.elapsed = time.monotonic() - started
    return result


def _connected(targets: list[Target], url: str) -> Target:
    """The target the run was (last) connected to; the first by priority if none."""
    return next((t for t in targets if t.url == url), min(targets, key=lambda t: t.priority))


def _kept(source: Iterable[Any], sent: list[dict[str, Any]]) -> Iterator[Any]:
    """The items of ``source``, each notification also kept in ``sent`` as it is taken."""
    for item in source:
        message = item.message if isinstance(item, Paced) else item
        if isinstance(message, dict):
            sent.append(message)
        yield item


def _pool(scenario: Scenario, seed: int) -> list[dict[str, Any]]:
    """Notifications of the scenario (another run of it) for the probes to work with, all before the wall clock's now."""
    dry = list(itertools.islice(Timeline(scenario, seed=seed + 1, start=0.0, ids="seeded").messages(repeat=True), 600))
    start = math.floor(time.time() - (dry[-1].at if dry else 0.0))
    return list(itertools.islice(Timeline(scenario, seed=seed + 1, start=start).notifications(repeat=True), 600))


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
            yield Reconnect(settle=True)
            yield Duplicate()
    if count < RECONNECT_AFTER:
        yield Reconnect(settle=True)
        yield Duplicate()
