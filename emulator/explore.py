"""Stateful exploration: hypothesis drives the master until the endpoint breaks, then shrinks what broke it.

A :class:`hypothesis.stateful.RuleBasedStateMachine` runs operations on the
emulated master's domain (backups of every kind, restores, expiries, AIR
replication, failures), which queue the notifications NetBackup would send, and
interleaves transport events within the protocol: sending what is queued in
batches of a drawn size, in one burst, with a reconnect while notifications are
pending, while the master reads slowly, and resending an acknowledged id. After
each step it checks that everything sent was acknowledged (a resent id again),
that the endpoint kept the connection, that every frame was valid, and (given a
state fetch) that the endpoint's state equals the truth: the expected state of
the acknowledged notifications (:mod:`emulator.state`). A wrong answer to
CONNECT is a failure too, found at the first connection.

A failure is shrunk by hypothesis to the shortest sequence, run once more, and
that run's transcript is saved: ``nbwss-emu replay`` sends the same frames, ids
included (:func:`read_replay_steps` turns the transcript back into steps).

The budget holds within hypothesis' runs: every wait for acknowledgements ends
at it, and so does shrinking, ``shrink_time`` past it at most (a tenth of it, 30 s
at most, by default); what was found by then (the shortest failing sequence so
far) is the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import pickle
import random
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import hypothesis.core
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from emulator.diffstate import diff
from emulator.endpoint.server import Fault, ReferenceEndpoint
from emulator.exceptions import ConnectionFailed, NbwssError, UsageError
from emulator.findings import RuleId
from emulator.harness import _step
from emulator.protocol.codec import encode
from emulator.protocol.messages import new_id
from emulator.protocol.run import Duplicate, Reconnect, Settings, Target
from emulator.protocol.session import Acknowledged, Violation
from emulator.responders import CommandResponder
from emulator.scenario import Timeline, load
from emulator.state import expected_state
from emulator.wire.master import ConnectError, EmulatedMaster
from emulator.wire.tls import TlsOptions
from emulator.wire.transcript import FrameRecorder, transcript_entries

StateFetch = Callable[[], dict[str, Any]]
T = TypeVar("T")

#: Backups of every kind the domain runs: (label, fields of the scenario step).
BACKUPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("standard full", {"policy_type": "STANDARD"}),
    ("standard incremental", {"policy_type": "STANDARD", "schedule": "incremental"}),
    ("standard cumulative", {"policy_type": "STANDARD", "schedule": "cumulative"}),
    ("multistream", {"policy_type": "STANDARD", "streams": 3}),
    ("vmware", {"policy_type": "VMWARE"}),
)
#: How a batch of queued notifications is sent.
DELIVERIES = ("steady", "burst", "reconnect", "slow-read")
FAILURE_CODES = (13, 58, 96, 156, 196)


@dataclass(slots=True)
class ExploreOptions:
    """What to explore and for how long; without targets, the embedded reference endpoint (its store is the state fetch)."""

    targets: list[Target] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    tls: TlsOptions = field(default_factory=TlsOptions)
    budget: float = 300.0  # seconds of exploration, shrinking included (see shrink_time)
    shrink_time: float | None = None  # shrinking may go on past the budget this long at most; default a tenth of it, 30 s at most
    seed: int | None = None
    steps: int = 12  # steps of one example at most
    examples_per_round: int = 40  # a round is one hypothesis run (about 0.2 s of its own); rounds go on until the budget is spent
    transcript: str | None = None  # where a failure's shrunk run is saved
    fault: Fault | None = None  # of the embedded endpoint
    state: StateFetch | None = None  # reads the endpoint's state; None with targets: no state check
    domain: str = "smoke"


@dataclass(slots=True)
class ExploreResult:
    """How exploration ended: ``passed`` when the budget ran out with nothing broken."""

    passed: bool
    examples: int
    rounds: int
    seed: int
    elapsed: float
    failure: str = ""  # what broke, when something did
    steps: list[str] = field(default_factory=list)  # the shrunk sequence
    transcript: str | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)  # the shrunk run's transcript lines

    def assert_passed(self) -> None:
        """Nothing broke; otherwise an AssertionError with what broke and the shortest sequence that breaks it."""
        if not self.passed:
            steps = "\n".join(f"  {number}. {step}" for number, step in enumerate(self.steps, start=1))
            saved = f"\ntranscript: {self.transcript}" if self.transcript else ""
            raise AssertionError(f"exploration (seed {self.seed}) broke the endpoint: {self.failure}\nshortest sequence:\n{steps}{saved}")


class Broken(AssertionError):
    """An invariant that did not hold after a step."""


class OutOfTime(KeyboardInterrupt):
    """The budget is spent: ends hypothesis' run at once.

    Hypothesis stops on a KeyboardInterrupt without recording the example (any other
    exception is a failure to shrink, or breaks its record of what was drawn);
    :func:`explore` catches this one around each run.
    """


class StateUnavailable(ConnectionFailed):
    """The endpoint's state cannot be read at all: testing cannot start (exit 2)."""


# -- the transcript of one example ----------------------------------------------------------


class ExampleRecorder(FrameRecorder):
    """Every frame of one example, and a ``{"dir": "step", "step": "reconnect"}`` line where the master reconnected on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []
        self.reconnects_wanted = 0

    def _emit(self, item: dict[str, Any]) -> None:
        frame = item.get("frame")
        if item["dir"] == "out" and isinstance(frame, dict) and frame.get("type") == "CONNECT" and self.reconnects_wanted:
            self.reconnects_wanted -= 1
            self.lines.append({"t": item["t"], "conn": item["conn"], "dir": "step", "step": "reconnect"})
        self.lines.append(item)

    def write(self, path: str | Path) -> None:
        try:
            Path(path).write_bytes(b"".join(encode(line) + b"\n" for line in self.lines))
        except OSError as error:
            raise UsageError(f"{path}: cannot write the transcript: {error.strerror or error}") from None


def read_replay_steps(path: str | Path) -> list[Any]:
    """A transcript as the steps that send it again: notifications (first sends), reconnects, resends of acknowledged ids.

    A notification sent again after its acknowledgement was a deliberate resend (a
    :class:`Duplicate` step: the master resends its first acknowledged notification);
    a ``step`` line of ``reconnect`` was a deliberate reconnect. Other resends (of what
    was pending when a connection dropped) happen again by themselves.
    """
    steps: list[Any] = []
    sent: set[str] = set()
    acked: set[str] = set()
    for entry in transcript_entries(path):
        if entry["dir"] == "step":
            if entry.get("step") == "reconnect":
                steps.append(Reconnect())
            continue
        frame = entry.get("frame")
        if not isinstance(frame, dict) or frame.get("type") != "NOTIFICATION" or not isinstance(frame.get("id"), str):
            continue
        message_id = frame["id"]
        if entry["dir"] == "in" and frame.get("subType") == "RESPONSE":
            acked.add(message_id)
        elif entry["dir"] == "out" and frame.get("subType") == "REQUEST":
            if message_id not in sent:
                sent.add(message_id)
                steps.append(frame)
            elif message_id in acked:
                steps.append(Duplicate())
    return steps


# -- the master of one example, driven from hypothesis' thread ----------------------------------


class InlineLoop:
    """An event loop run by the caller's thread, a step at a time: between steps nothing runs on it.

    Hypothesis drives the steps synchronously; with the loop in a thread of its own, every step
    would wait for thread switches (most of an example's time). Between steps the master has
    nothing to send and the endpoint nothing to answer, so nothing is lost by pausing the loop.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def call(self, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(work, timeout))

    def stop(self) -> None:
        tasks = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


class Driver:
    """An emulated master fed step by step: its domain, the queue of notifications not sent yet, the truth."""

    def __init__(self, loop: InlineLoop, targets: list[Target], options: ExploreOptions, domain_seed: int = 0) -> None:
        self.loop = loop
        self.targets = targets
        self.options = options
        self.scenario = load(options.domain)
        # Every example starts from the same domain (so that hypothesis can shrink: the same steps do the same),
        # unpickled afresh: ten times cheaper than building it again.
        self._pristine = pickle.dumps(Timeline(self.scenario, seed=domain_seed, start=float(int(time.time()))))
        self.rng = random.Random(0)
        self._nonce = secrets.randbits(64)  # this exploration's: mixed into every example's message ids
        self.recorder = ExampleRecorder()
        self.master: EmulatedMaster | None = None
        self._run: asyncio.Future[Any] | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self._acked_event: asyncio.Event | None = None
        self.timeline: Timeline | None = None
        self.primary = ""
        self.hostname = ""
        self.outbox: list[dict[str, Any]] = []  # notifications the domain produced, not sent yet
        self.sent: list[dict[str, Any]] = []  # in the order sent (each id once)
        self.awaited: list[str] = []  # ids sent whose acknowledgement is due
        self.acks: Counter[str] = Counter()
        self.first_acked: str | None = None  # the first id acknowledged: the one a Duplicate step resends
        self.duplicates: dict[str, int] = {}  # ids resent on purpose: how many acknowledgements each must have
        self.log: list[str] = []
        self.deadline = math.inf  # no wait goes past it (monotonic time): OutOfTime then
        self.best: tuple[str, list[str], ExampleRecorder] | None = None  # the shortest failing example so far
        self._steps: dict[str, Any] = {}

    # -- life of an example ---------------------------------------------------------------

    def start(self, seed: int) -> None:
        # Message ids: new in every example and every exploration, as a real master's (a store that de-duplicates
        # by id must never see an id of an earlier example, or of an earlier exploration at the same seed, again).
        self.rng = random.Random((self._nonce << 32) ^ seed)
        self.timeline = pickle.loads(self._pristine)
        self.primary = self.scenario.masters[0].key
        self.hostname = self.timeline.masters[self.primary].hostname
        self.recorder = ExampleRecorder()
        self.outbox, self.sent, self.awaited, self.acks, self.log = [], [], [], Counter(), []
        self.first_acked, self.duplicates = None, {}
        self.check_time()
        self.loop.call(self._open(seed), timeout=self.options.settings.connect_timeout + 5)

    async def _open(self, seed: int) -> None:
        assert self.timeline is not None
        self._queue = asyncio.Queue()
        self._acked_event = asyncio.Event()
        responder = CommandResponder(self.timeline.masters[self.primary], rng=random.Random(seed))
        self.master = EmulatedMaster(
            self.targets,
            # An example ends when its steps are done: no grace for a COMMAND flow (thousands of examples would wait it out).
            dataclasses.replace(self.options.settings, command_grace=0.0),
            tls=self.options.tls,
            responder=responder,
            transcript=self.recorder,
            rng=random.Random(seed),
            on_ack=self._on_ack,
        )
        self._run = asyncio.ensure_future(self.master.run(self._items()))
        while self.master.report.established == 0 and not self._run.done():
            await asyncio.sleep(0.002)
        if self._run.done():
            error = self._run.exception()
            if error is not None:
                raise error
            report = self.master.report
            wrong = [v for v in report.violations if v.rule == RuleId.CONNECT_ANSWERED]
            if wrong:  # the endpoint's failure, as run judges it: a verdict, not a setup error
                self.log.append("connect")
                self.failed(_violation_texts(wrong))
            if report.refused:
                raise ConnectError("the endpoint answered CONNECT with valid: false (is the token right?)")
            raise ConnectError(report.error or "the endpoint did not accept the CONNECT")

    def stop(self) -> None:
        if self._run is not None:
            self.loop.call(self._close(), timeout=30)
        self._run = None

    async def _close(self) -> None:
        assert self._queue is not None and self._run is not None
        self._queue.put_nowait(None)
        if self._settled():
            with contextlib.suppress(asyncio.TimeoutError, NbwssError):  # asyncio's: not yet TimeoutError on Python 3.10
                await asyncio.wait_for(asyncio.shield(self._run), self._wait_limit() + 5)
        if not self._run.done():
            # Something is still unacknowledged (the example failed, or ran out of time): the master would wait for
            # it as long again before it closes; nothing it could still learn counts.
            self._run.cancel()
            await asyncio.wait({self._run}, timeout=5)

    def _settled(self) -> bool:
        """Every notification sent was acknowledged, and every resend of an acknowledged id acknowledged again."""
        return all(self.acks[i] for i in self.awaited) and all(self.acks[i] >= n for i, n in self.duplicates.items())

    async def _items(self) -> AsyncIterator[Any]:
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    def _on_ack(self, event: Acknowledged) -> None:
        self.acks[event.message_id] += 1
        if self.first_acked is None:
            self.first_acked = event.message_id  # in the order the master saw them, as its Duplicate step picks
        if self._acked_event is not None:
            self._acked_event.set()

    def _wait_limit(self) -> float:
        settings = self.options.settings
        return settings.ack_limit() + 2 * settings.properties.resend_interval

    # -- domain operations: they queue notifications ----------------------------------------

    def operate(self, kind: str, fields: dict[str, Any], label: str) -> None:
        assert self.timeline is not None
        key = json.dumps([kind, fields], sort_keys=True)
        step = self._steps.get(key)
        if step is None:  # checked against the scenario schema once: a few milliseconds each time otherwise
            step = self._steps[key] = _step(kind, fields, [m.key for m in self.scenario.masters])
        before = len(self.outbox)
        self.outbox.extend({**t.message, "id": new_id(self.rng)} for t in self.timeline.perform(step) if t.master == self.primary)
        self.log.append(f"{label} ({len(self.outbox) - before} notification(s) queued)")

    def can(self, purpose: str) -> bool:
        """Whether the primary master has an image fit for ``purpose``: restore, expire, expire-local, replicate."""
        assert self.timeline is not None
        master = self.timeline.masters[self.primary]
        if purpose == "restore":
            return bool(master.restorable_images())
        if purpose == "expire":
            return bool(master.live_images())
        if purpose == "expire-local":
            return bool(master.expirable_images(local_only=True))
        return any(master.replicable_images(target) for target in master.replication_targets.values())

    # -- transport events ---------------------------------------------------------------------

    def deliver(self, batch: int, how: str) -> None:
        """Send what is queued, ``batch`` notifications to a message, in the manner ``how`` (one of DELIVERIES)."""
        if not self.outbox:
            self.log.append(f"send {how}, batches of {batch}: nothing queued")
            return
        messages = [self._merge(self.outbox[i : i + batch]) for i in range(0, len(self.outbox), batch)]
        self.outbox = []
        self.sent.extend(messages)
        ids = [m["id"] for m in messages]
        self.awaited.extend(ids)
        self.log.append(f"send {how}, batches of {batch}: {len(messages)} message(s)")
        if not self.loop.call(self._deliver(messages, how), timeout=self._wait_limit() * 2 + 10):
            raise OutOfTime

    def _merge(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """One NOTIFICATION REQUEST carrying the items of ``messages`` (one group per object kind, in order), a new id."""
        if len(messages) == 1:
            return messages[0]
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for message in messages:
            for group in message["payload"]:
                groups.setdefault((group["notificationType"], group["object"]), []).extend(group["data"])
        payload = [{"notificationType": kind, "object": obj, "data": data} for (kind, obj), data in groups.items()]
        return {**messages[-1], "id": new_id(self.rng), "payload": payload}

    async def _deliver(self, messages: list[dict[str, Any]], how: str) -> bool:
        assert self._queue is not None and self.master is not None
        transport = self.master._ws.transport if how == "slow-read" and self.master._ws is not None else None
        if transport is not None:
            transport.pause_reading()  # the master reads its acknowledgements late: they pile up at the endpoint
        for message in messages:
            self._queue.put_nowait(message)
        if how == "reconnect":
            self.recorder.reconnects_wanted += 1
            self._queue.put_nowait(Reconnect())  # the connection closes with the batch still unacknowledged
        if transport is not None:
            await asyncio.sleep(0.02)
            transport.resume_reading()
        return await self._await_acks()

    def resend(self) -> None:
        """Resend the first acknowledged notification, same id (as a master does after a restart); it must be acknowledged again."""
        first = self.first_acked
        if first is None:
            self.log.append("resend an acknowledged id: none acknowledged yet")
            return
        self.log.append(f"resend acknowledged {first}")
        wanted = self.duplicates[first] = self.acks[first] + 1
        if not self.loop.call(self._resend(first, wanted), timeout=self._wait_limit() * 2 + 10):
            raise OutOfTime

    async def _resend(self, message_id: str, wanted: int) -> bool:
        assert self._queue is not None
        self._queue.put_nowait(Duplicate())
        return await self._await_acks(lambda: self.acks[message_id] >= wanted)

    async def _await_acks(self, done: Callable[[], bool] | None = None) -> bool:
        """Wait until ``done`` (by default: everything sent acknowledged) or the acknowledgement time is up; False
        when the budget's deadline came first."""
        assert self._acked_event is not None and self._run is not None
        condition = done or (lambda: all(self.acks[i] for i in self.awaited))
        limit = time.monotonic() + self._wait_limit()
        deadline = min(limit, self.deadline)
        while not condition() and not self._run.done():
            self._acked_event.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._acked_event.wait(), remaining)
            except asyncio.TimeoutError:  # not yet TimeoutError on Python 3.10
                break
        return condition() or self._run.done() or deadline == limit

    def _sends(self, ids: list[str]) -> Counter[str]:
        """How often the master sent each of ``ids`` (resent after a reconnect, or after the resend interval)."""
        wanted = set(ids)
        return Counter(
            frame["id"]
            for line in self.recorder.lines
            if line["dir"] == "out" and isinstance(frame := line.get("frame"), dict) and frame.get("id") in wanted
        )

    def check_time(self) -> None:
        """OutOfTime when the deadline has passed."""
        if time.monotonic() >= self.deadline:
            raise OutOfTime

    def failed(self, problems: list[str]) -> None:
        """Broken with ``problems``; the example is kept when it is the shortest failing one so far."""
        what = "; ".join(problems)
        if self.best is None or len(self.log) <= len(self.best[1]):  # shrinking tries shorter ones: the later the better
            self.best = (what, list(self.log), self.recorder)
        raise Broken(what)

    # -- the invariants --------------------------------------------------------------------------

    def problems(self, fetch: StateFetch | None) -> list[str]:
        """What does not hold now: acknowledgements, the connection, frames, the endpoint's state."""
        assert self.master is not None
        report = self.master.report
        found = []
        missing = [i for i in self.awaited if not self.acks[i]]
        if missing:
            sends = self._sends(missing[:3])
            named = ", ".join(i + (f" (sent {sends[i]} times)" if sends[i] > 1 else "") for i in missing[:3])
            found.append(f"{len(missing)} notification(s) not acknowledged within {self._wait_limit():g}s: {named}")
        unanswered = [i for i, wanted in self.duplicates.items() if self.acks[i] < wanted]
        if unanswered:
            found.append(
                f"[{RuleId.ACK_DUPLICATE_ACCEPTED.value}] {', '.join(unanswered[:3])}: sent again with the same id (as after a reconnect),"
                f" not acknowledged again within {self._wait_limit():g}s"
            )
        if report.drops:
            found.append(f"the endpoint dropped the connection {report.drops} time(s) (close codes {report.close_codes})")
        if report.violations:
            found.extend(_violation_texts(report.violations[:3]))
        if fetch is not None and not found:
            acked = [i for i in self.acks if self.acks[i]]
            truth = expected_state(self.hostname, self.sent, acked)
            try:
                stored = fetch()
            except Exception as error:  # whatever the team's fetch raises is a finding, not a crash
                return [f"the state fetch failed: {type(error).__name__}: {error}"]
            differences = diff(truth, stored)
            if self.options.targets:
                # An endpoint under test keeps what earlier sequences (earlier masters) told it: only what this one
                # was told must be there and right.
                differences = [d for d in differences if d.what != "extra"]
            if differences:
                found.append(f"the endpoint's state differs from the truth ({len(differences)}): " + "; ".join(map(str, differences[:4])))
        return found


# -- the state machine ------------------------------------------------------------------------------


def machine_class(driver: Driver, fetch: StateFetch | None, seeds: Callable[[], int]) -> type[Any]:
    """A RuleBasedStateMachine over ``driver``: a fresh master (and endpoint state) per example."""

    class NbwssMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            driver.start(seeds())

        @rule(kind=st.sampled_from(BACKUPS))
        def backup(self, kind: tuple[str, dict[str, Any]]) -> None:
            driver.operate("backup", dict(kind[1]), f"backup {kind[0]}")

        @rule(status=st.sampled_from(FAILURE_CODES))
        def fail(self, status: int) -> None:
            policy_type = "VMWARE" if status == 156 else "STANDARD"
            driver.operate("fail", {"policy_type": policy_type, "status": status}, f"failed backup ({status})")

        # Operations that need an image wait until there is one: a step that does nothing is a step lost.
        @precondition(lambda self: driver.can("restore"))
        @rule(pick=st.sampled_from(("newest", "oldest", "random")))
        def restore(self, pick: str) -> None:
            driver.operate("restore", {"pick": pick}, f"restore {pick}")

        @precondition(lambda self: driver.can("expire"))
        @rule(pick=st.sampled_from(("oldest", "newest")))
        def expire(self, pick: str) -> None:
            driver.operate("expire", {"pick": pick}, f"expire {pick}")

        @precondition(lambda self: driver.can("expire-local"))
        @rule()
        def expire_local_copies(self) -> None:
            driver.operate("expire", {"copies": "local"}, "expire local copies")

        @precondition(lambda self: driver.can("replicate"))
        @rule()
        def replicate(self) -> None:
            driver.operate("replicate", {"pick": "newest"}, "replicate (AIR)")

        @precondition(lambda self: bool(driver.outbox))
        @rule(batch=st.sampled_from((1, 2, 4, 16, 64)), how=st.sampled_from(DELIVERIES))
        def send(self, batch: int, how: str) -> None:
            driver.deliver(batch, how)

        @precondition(lambda self: bool(driver.sent))
        @rule()
        def resend_acknowledged(self) -> None:
            driver.resend()

        @invariant()
        def holds(self) -> None:
            problems = driver.problems(fetch)
            if problems:
                driver.failed(problems)

        def teardown(self) -> None:
            driver.stop()

    return NbwssMachine


def explore(options: ExploreOptions) -> ExploreResult:
    """Explore until something breaks (shrunk, its transcript saved) or the budget is spent."""

    seed = options.seed if options.seed is not None else random.randrange(1 << 31)
    loop = InlineLoop()
    endpoint: ReferenceEndpoint | None = None
    started = time.monotonic()
    examples = rounds = 0
    failure: tuple[str, list[str], ExampleRecorder] | None = None
    try:
        targets, fetch = options.targets, options.state
        if not targets:
            endpoint = loop.call(ReferenceEndpoint(fault=options.fault).start(), timeout=10)
            targets = [Target(endpoint.url, endpoint.token)]
            if fetch is None:
                fetch = endpoint.store.export  # read between steps, when every notification is acknowledged
        if options.state is not None:
            _check_fetch(options.state)
        driver = Driver(loop, targets, options, seed)
        driver.deadline = ends = started + options.budget
        example_seeds, round_seeds = random.Random(seed), random.Random(~seed)

        def next_seed() -> int:
            nonlocal examples
            if driver.best is not None:  # shrinking: within the budget, and shrink_time past it at most
                driver.deadline = ends + (options.shrink_time if options.shrink_time is not None else min(30.0, options.budget / 10))
            driver.check_time()
            examples += 1
            if endpoint is not None:
                loop.call(_reset(endpoint, options.fault), timeout=10)
            return example_seeds.randrange(1 << 31)

        machine = machine_class(driver, fetch, next_seed)
        run_settings = hypothesis_settings(
            max_examples=options.examples_per_round,
            stateful_step_count=options.steps,
            deadline=None,
            database=None,
            derandomize=False,  # hypothesis' "ci" profile (CI=true) derandomizes: every round would try the same sequences
            print_blob=False,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        forced = hypothesis.core.global_force_seed  # pytest's --hypothesis-seed, say: put back afterwards
        while time.monotonic() - started < options.budget:
            rounds += 1
            hypothesis.core.global_force_seed = round_seeds.randrange(1 << 31)  # type: ignore[assignment]  # as --hypothesis-seed sets it
            try:
                run_state_machine_as_test(machine, settings=run_settings)
            except OutOfTime:
                # The budget ran out within the run: what was found by then stands (its shortest failing sequence).
                if driver.best is not None:
                    failure = (driver.best[0], driver.best[1], driver.best[2])
                break
            except Exception as error:
                broken = _what_broke(error)
                if broken is None:
                    raise
                # The last run was the shrunk example, run once more by hypothesis: its log and frames are the driver's now.
                failure = (broken, list(driver.log), driver.recorder)
                break
            finally:
                hypothesis.core.global_force_seed = forced
    finally:
        if endpoint is not None:
            loop.call(endpoint.stop(), timeout=15)
        loop.stop()
    elapsed = time.monotonic() - started
    if failure is None:
        return ExploreResult(True, examples, rounds, seed, elapsed)
    message, steps, recorder = failure
    if options.transcript:
        recorder.write(options.transcript)
    return ExploreResult(False, examples, rounds, seed, elapsed, message, steps, options.transcript, recorder.lines)


def _violation_texts(violations: list[Violation]) -> list[str]:
    """Each violation as its rule, where and what, and the frame that broke it (as run's evidence gives them)."""
    texts = []
    for violation in violations:
        rule = getattr(violation.rule, "value", violation.rule)
        frame = f" in {violation.frame[:300]}" if violation.frame else ""
        texts.append(f"[{rule}] {violation.finding.pointer or '/'}: {violation.finding.message}{frame}")
    return texts


def _what_broke(error: BaseException) -> str | None:
    """What broke, from a :class:`Broken` or a group of them (distinct failures); None for any other error."""
    if isinstance(error, Broken):
        return str(error)
    inner = getattr(error, "exceptions", None)  # an ExceptionGroup (a backport before Python 3.11)
    if isinstance(inner, tuple) and inner:
        parts = [_what_broke(e) for e in inner]
        if all(part is not None for part in parts):
            return "; ".join(part for part in parts if part is not None)
    return None


async def _reset(endpoint: ReferenceEndpoint, fault: Fault | None) -> None:
    endpoint.reset()
    endpoint.fault = fault


def _check_fetch(fetch: StateFetch) -> None:
    """StateUnavailable (one line) unless ``fetch`` answers a state document now, before exploring starts.

    A fetch that cannot work at all is a setup error; one that fails later, between
    steps, is a finding about the endpoint.
    """
    try:
        document = fetch()
        diff({"masters": {}}, document)  # its shape: SchemaError when it is not a state
    except NbwssError as error:
        raise StateUnavailable(f"the endpoint's state: {error}") from None
    except Exception as error:  # whatever the team's fetch raises
        raise StateUnavailable(f"the endpoint's state cannot be read: {type(error).__name__}: {error}") from None


def state_from_url(url: str, token: str | None, timeout: float = 10.0) -> StateFetch:
    """A state fetch that GETs ``url`` (JSON in the expected-state shape), with the token as a bearer when given.

    It raises :class:`StateUnavailable` saying in one line why the state could not be read.
    """

    def fetch() -> dict[str, Any]:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                document = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise StateUnavailable(f"{url} answered HTTP {error.code} {error.reason}") from None
        except urllib.error.URLError as error:
            raise StateUnavailable(f"cannot read {url}: {error.reason}") from None
        except (OSError, ValueError) as error:  # a time-out, a reset; not JSON
            raise StateUnavailable(f"cannot read {url}: {error}") from None
        if not isinstance(document, dict):
            raise StateUnavailable(f"{url} did not answer a JSON object")
        return document

    return fetch
