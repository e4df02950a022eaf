"""The emulator for test suites: handles that work from synchronous and asynchronous code alike.

The asyncio parts (the reference endpoint, the emulated master) run on an event
loop in a thread of their own (:class:`LoopThread`), so a plain synchronous test
just calls ``master.backup()``; an async test awaits ``master.abackup()`` and
keeps its own loop free, e.g. for an endpoint it serves itself. The pytest
plugin is a thin layer of fixtures over these classes; they work without pytest.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from emulator.contract.hints import connection_hint
from emulator.contract.rules import FAILED, RuleResult
from emulator.contract.runner import ContractOptions, ContractResult, run_masters
from emulator.diffstate import diff, summary
from emulator.endpoint.server import Fault, ReferenceEndpoint
from emulator.findings import RuleId
from emulator.protocol.codec import encode
from emulator.protocol.run import Raw, Report, Settings, Target
from emulator.protocol.session import Acknowledged, Violation
from emulator.responders import DEFAULT_PROFILE, CommandExchange, CommandResponder
from emulator.scenario import ScenarioError, Timeline, load, parse
from emulator.scenario.model import Scenario
from emulator.state import expected_state
from emulator.wire.master import ConnectError, EmulatedMaster
from emulator.wire.tls import TlsOptions
from emulator.wire.transcript import RecentFrames

T = TypeVar("T")
CONTENT_TYPE = "application/vnd.netbackup+json;version=1.0"
OPERATIONS_LAG = 86_400.0  # seconds the single operations' scenario time runs behind the wall clock


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self, name: str = "nbwss-emulator") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def call(self, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``work`` on the loop and wait for its result here."""
        return self.submit(work).result(timeout)

    async def acall(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop; await it from another loop without blocking that one."""
        return await asyncio.wrap_future(self.submit(work))

    def stop(self) -> None:
        """Cancel what still runs, stop the loop and join the thread."""
        if not self.loop.is_running():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(cancel_all(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# -- results you assert on -----------------------------------------------------------------


@dataclass
class Result:
    """What came of an operation or a run: acknowledgements, findings, COMMAND exchanges.

    The ``assert_*`` methods fail with a message that says what was expected, what
    came, and the last frames of the connection.
    """

    name: str
    sent: list[str] = field(default_factory=list)  # notification ids, in order
    acks: dict[str, float] = field(default_factory=dict)  # id -> latency in seconds
    violations: list[Violation] = field(default_factory=list)
    commands: list[CommandExchange] = field(default_factory=list)
    rules: list[RuleResult] | None = None  # for contract runs
    excerpt: str = ""
    waited: float = 0.0
    masters: list[Result] = field(default_factory=list)  # a run's result per master, each on its own connection
    truth: list[tuple[str, list[dict[str, Any]], list[str]]] | None = None  # per master: (master, notifications sent, ids acknowledged)

    def expected_state(self) -> dict[str, Any]:
        """What the endpoint was told so far, as jobs and images per master (the ``run --expect-state`` document)."""
        if self.masters:  # a run with every master on its own connection: each master's jobs and images
            return _merged([result.expected_state() for result in self.masters])
        if self.truth is None:
            raise ValueError("expected_state needs the result of an operation or a run of an emulated master")
        return _merged([expected_state(*truth) for truth in self.truth])

    def assert_endpoint_state(self, fetch: Callable[[], dict[str, Any]], mapping: dict[str, Any] | None = None) -> None:
        """The endpoint's state (``fetch()``: its export, in the expected-state shape or as ``mapping`` says) equals the truth."""
        differences = diff(self.expected_state(), fetch(), mapping)
        if differences:
            self._fail(
                f"the endpoint's state differs from what it was told ({summary(differences)})",
                "every job and image as the acknowledged notifications stated them",
                "\n    ".join(str(d) for d in differences[:12]) + ("\n    …" if len(differences) > 12 else ""),
            )

    @property
    def unacknowledged(self) -> list[str]:
        return [message_id for message_id in self.sent if message_id not in self.acks]

    @property
    def findings(self) -> list[str]:
        return [f"[{v.rule}] {v.finding.pointer or '/'}: {v.finding.message}" for v in self.violations]

    def latency(self, percent: float) -> float | None:
        """An ack latency percentile, in seconds."""
        values = sorted(self.acks.values())
        if not values:
            return None
        return values[min(len(values) - 1, max(0, round(percent / 100 * len(values) + 0.5) - 1))]

    def assert_all_acknowledged(self) -> None:
        missing = self.unacknowledged
        if missing:
            self._fail(
                f"{len(missing)} of {len(self.sent)} notifications were not acknowledged within {self.waited:.1f} s",
                "a NOTIFICATION RESPONSE with the same id for each",
                "nothing for " + ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""),
            )

    def assert_no_findings(self) -> None:
        if self.violations:
            self._fail(f"{len(self.violations)} finding(s)", "no rule broken", "\n    ".join(self.findings[:10]))

    def assert_rule(self, rule_id: RuleId | str) -> None:
        """A contract run's rule did not fail; ValueError for an id that names no rule."""
        if self.rules is None:
            raise ValueError("assert_rule needs the result of a contract run (run())")
        rule_id = RuleId.of(rule_id)
        result = next((r for r in self.rules if r.rule.id is rule_id), None)
        if result is None:
            raise ValueError(f"no contract rule {rule_id!r}")
        if result.status == FAILED:
            self._fail(
                f"rule {rule_id} failed: {result.summary}", result.rule.description, "\n    ".join(result.evidence) or result.summary
            )

    def assert_passed(self) -> None:
        """Every contract rule held."""
        failed = [r for r in self.rules or [] if r.status == FAILED]
        if failed:
            came = "\n    ".join(f"{r.rule.id}: {r.summary}: {r.evidence[0] if r.evidence else ''}" for r in failed)
            self._fail(f"{len(failed)} contract rule(s) failed", "every rule to hold", came)

    def _fail(self, what: str, expected: str, came: str) -> None:
        raise AssertionError(f"{self.name}: {what}\n  expected: {expected}\n  came:     {came}\n  last frames:\n{self.excerpt}")


def _merged(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Expected-state documents of several masters as one."""
    for other in documents[1:]:
        documents[0]["masters"].update(other["masters"])
    return documents[0]


def _contract_result(result: ContractResult, recorder: RecentFrames) -> Result:
    report = result.report
    return Result(
        name=f"run {result.name}",
        sent=[message_id for message_id, _, _ in report.acks] + report.lost,
        acks={message_id: latency for message_id, latency, _ in report.acks},
        violations=list(report.violations),
        commands=list(report.commands),
        rules=result.results,
        excerpt=recorder.excerpt(),
        waited=report.elapsed,
        truth=[(result.master, result.sent_messages, [message_id for message_id, _, _ in report.acks])],
    )


def _masters_result(results: list[ContractResult], recorder: RecentFrames) -> Result:
    """One result of a run whose masters each had their own connection: the first's rules, everyone's traffic and findings."""
    first, *others = [_contract_result(r, recorder) for r in results]
    for other in others:
        first.sent += other.sent
        first.acks.update(other.acks)
        first.violations += other.violations
        first.commands += other.commands
        first.rules = [*(first.rules or []), *(r for r in other.rules or [] if r.status == FAILED)]  # assert_passed sees them
    first.masters = [_contract_result(r, recorder) for r in results]
    return first


# -- the reference endpoint ----------------------------------------------------------------


class EndpointHandle:
    """A reference endpoint on loopback, running beside the caller."""

    def __init__(self, loop: LoopThread, **options: Any) -> None:
        self._loop = loop
        self._endpoint = ReferenceEndpoint(**options)
        self._token: str | None = None  # from login(), sent with later commands
        loop.call(self._endpoint.start(), timeout=10)

    @property
    def url(self) -> str:
        return self._endpoint.url

    @property
    def token(self) -> str:
        """The token masters must present in CONNECT."""
        return self._endpoint.token

    def token_for(self, master: str) -> str:
        """The token of ``master``'s own registration: the endpoint's store files its notifications under it."""
        return self._endpoint.token_for(master)

    @property
    def fault(self) -> Fault | None:
        return self._endpoint.fault

    @fault.setter
    def fault(self, fault: Fault | str | None) -> None:
        self._endpoint.fault = Fault.parse(fault) if isinstance(fault, str) else fault

    @property
    def received(self) -> list[dict[str, Any]]:
        """Every NOTIFICATION REQUEST received, duplicates included."""
        return list(self._endpoint.notifications)

    def items(self, object_: str | None = None) -> list[dict[str, Any]]:
        """Data items of the notifications (each id once), optionally of one kind: JOB or IMAGE."""
        return self._endpoint.items(object_)

    def command(
        self, uri: str, method: str = "GET", *, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Send a COMMAND REQUEST to the connected master; the COMMAND RESPONSE message."""
        return self._loop.call(self._command(uri, method, body, headers, timeout), timeout + 1)

    async def acommand(
        self, uri: str, method: str = "GET", *, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        return await self._loop.acall(self._command(uri, method, body, headers, timeout))

    def login(self, user: str = "cloudapp", password: str = "secret") -> str:  # the emulated master accepts any
        """POST /netbackup/login through the master; later commands carry the token."""
        response = self.command(
            "/netbackup/login", "POST", body={"domainType": "unixpwd", "domainName": "nbu", "userName": user, "password": password}
        )
        token = response["payload"].get("body", {}).get("token") if response["payload"]["statusCode"] == 201 else None
        if not token:
            raise AssertionError(f"login failed: {response['payload']}")
        self._token = str(token)
        return self._token

    async def _command(self, uri: str, method: str, body: Any, headers: dict[str, str] | None, timeout: float) -> dict[str, Any]:
        sent = {"Content-Type": CONTENT_TYPE, **(headers or {})}
        if self._token and not any(k.lower() == "authorization" for k in sent):
            sent["Authorization"] = self._token
        return await self._endpoint.command(uri, method, body=body, headers=sent, timeout=timeout)

    def state(self) -> dict[str, Any]:
        """What the endpoint stored from the notifications it acknowledged, in the expected-state shape."""
        return self._loop.call(self._export(), timeout=10)

    async def _export(self) -> dict[str, Any]:
        return self._endpoint.store.export()

    @property
    def state_url(self) -> str:
        """Where the store is exported over HTTP (GET, ``Authorization: Bearer <token>``)."""
        url: str = self._endpoint.state_url
        return url

    def clear(self) -> None:
        """Forget what was received, the login token and any fault: a fresh endpoint for the next test."""
        self._endpoint.reset()
        self._token = None

    def close(self) -> None:
        self._loop.call(self._endpoint.stop(), timeout=15)


# -- the emulated master -------------------------------------------------------------------


class MasterHandle:
    """An emulated master connected to an endpoint, fed one operation at a time (or a whole scenario).

    Operations (``backup``, ``restore``, ``expire``, ``replicate``, ``fail``) take the
    fields of the scenario step of the same name (``policy_type="VMWARE"``,
    ``schedule="incremental"``, ``status=96``, ``count=3``...), act on the master's
    domain (state carries on between calls), send what NetBackup would send, and
    wait for the acknowledgements.
    """

    def __init__(
        self,
        loop: LoopThread,
        targets: list[Target],
        *,
        settings: Settings | None = None,
        tls: TlsOptions | None = None,
        domain: str = "smoke",
        seed: int | None = None,
        profile: str = DEFAULT_PROFILE,
        token_for: Callable[[str], str] | None = None,
    ) -> None:
        self._loop = loop
        self.targets = targets
        self._token_for = token_for  # each master its own registration (the reference endpoint's store tells them apart)
        self.settings = settings or Settings()
        self.tls = tls or TlsOptions()
        self.profile = profile
        self.timeline = Timeline(load(domain), seed=seed, start=float(int(time.time() - OPERATIONS_LAG)))
        self._primary = self.timeline.scenario.masters[0].key
        self._peers: dict[str, MasterHandle] = {}  # the domain's other masters, each on its own connection when it has news
        self.master = self.timeline.masters[self._primary]
        if token_for is not None:
            self.targets = [Target(t.url, token_for(self.master.hostname)) for t in targets]
        self.responder = CommandResponder(self.master, profile=profile)
        self._recorder = RecentFrames()
        self._emulated: EmulatedMaster | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self._run: asyncio.Future[Any] | None = None
        self._acked: dict[str, float] = {}
        self._answered: list[CommandExchange] = []  # COMMANDs answered by this handle's earlier masters (before a new run)
        self._ack_event: asyncio.Event | None = None
        self._history: list[dict[str, Any]] = []  # every notification sent, for expected_state()

    # -- whole scenarios ----------------------------------------------------------------

    def run(
        self, scenario: str | Path | Scenario = "smoke", *, seed: int | None = None, probes: bool = True, speed: float | None = None
    ) -> Result:
        """A contract run of a bundled or file scenario on a connection of its own; judged by every rule."""
        return self._loop.call(self._contract(scenario, seed, probes, speed))

    async def arun(
        self, scenario: str | Path | Scenario = "smoke", *, seed: int | None = None, probes: bool = True, speed: float | None = None
    ) -> Result:
        return await self._loop.acall(self._contract(scenario, seed, probes, speed))

    async def _contract(self, scenario: str | Path | Scenario, seed: int | None, probes: bool, speed: float | None) -> Result:
        loaded = scenario if isinstance(scenario, Scenario) else load(str(scenario))
        recorder = RecentFrames()
        options = ContractOptions(
            targets=self.targets,
            settings=self.settings,
            tls=self.tls,
            seed=seed,
            speed=speed,
            profile=self.profile,
            probes=probes,
            transcript=recorder,
            keep_sent=True,
            token_for=self._token_for,
        )
        results = await run_masters(loaded, options)  # every master on its own connection
        return _masters_result(results, recorder)

    # -- single operations ----------------------------------------------------------------

    def backup(self, **fields: Any) -> Result:
        return self._operation("backup", fields)

    def fail(self, **fields: Any) -> Result:
        return self._operation("fail", fields)

    def restore(self, **fields: Any) -> Result:
        return self._operation("restore", fields)

    def expire(self, **fields: Any) -> Result:
        return self._operation("expire", fields)

    def replicate(self, **fields: Any) -> Result:
        return self._operation("replicate", fields)

    async def abackup(self, **fields: Any) -> Result:
        return await self._loop.acall(self._perform("backup", fields))

    async def afail(self, **fields: Any) -> Result:
        return await self._loop.acall(self._perform("fail", fields))

    async def arestore(self, **fields: Any) -> Result:
        return await self._loop.acall(self._perform("restore", fields))

    async def aexpire(self, **fields: Any) -> Result:
        return await self._loop.acall(self._perform("expire", fields))

    async def areplicate(self, **fields: Any) -> Result:
        return await self._loop.acall(self._perform("replicate", fields))

    def send(self, message: dict[str, Any] | str) -> Result:
        """Send one message as it is: a NOTIFICATION REQUEST dict is tracked like any; text goes out untouched."""
        return self._loop.call(self._send(message))

    async def asend(self, message: dict[str, Any] | str) -> Result:
        return await self._loop.acall(self._send(message))

    @property
    def commands(self) -> list[CommandExchange]:
        """COMMAND requests answered on the operations' connection so far (the answers actually sent)."""
        return [*self._answered, *(self._emulated.report.commands if self._emulated is not None else [])]

    def close(self) -> None:
        """Close the connection (pending notifications are reported lost)."""
        self._loop.call(self._close(), timeout=30)

    async def aclose(self) -> None:
        await self._loop.acall(self._close())

    def _operation(self, kind: str, fields: dict[str, Any]) -> Result:
        return self._loop.call(self._perform(kind, fields))

    async def _perform(self, kind: str, fields: dict[str, Any]) -> Result:
        step = _step(kind, fields, [m.key for m in self.timeline.scenario.masters])
        # Operations run a day behind the wall clock (and keep up with it), so no job ends after now.
        self.timeline.scheduler.run_until(max(self.timeline.scheduler.now(), float(int(time.time() - OPERATIONS_LAG))))
        timed = list(self.timeline.perform(step))
        name = f"{kind}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"
        result = await self._deliver(name, [t.message for t in timed if t.master == self._primary])
        for key in dict.fromkeys(t.master for t in timed if t.master != self._primary):  # e.g. AIR's target: IMPORT, CREATE
            other = await self._peer(key)._deliver(name, [t.message for t in timed if t.master == key])
            result.sent += other.sent
            result.acks.update(other.acks)
            result.violations += other.violations
            result.commands += other.commands
        return result

    def _peer(self, key: str) -> MasterHandle:
        """The handle of another master of the domain: the same timeline, its own connection and registration."""
        peer = self._peers.get(key)
        if peer is None:
            peer = copy.copy(self)
            peer.master = self.timeline.masters[key]
            if self._token_for is not None:
                peer.targets = [Target(t.url, self._token_for(peer.master.hostname)) for t in self.targets]
            peer._history = []
            peer.responder = CommandResponder(peer.master, profile=self.profile)
            peer._recorder, peer._peers, peer._acked, peer._answered = RecentFrames(), {}, {}, []
            peer._emulated = peer._queue = peer._run = peer._ack_event = None
            self._peers[key] = peer
        return peer

    async def _send(self, message: dict[str, Any] | str) -> Result:
        if (
            isinstance(message, dict)
            and isinstance(message.get("id"), str)
            and (message.get("type"), message.get("subType")) == ("NOTIFICATION", "REQUEST")
        ):
            return await self._deliver("send", [message])
        frame = message if isinstance(message, str) else encode(message).decode()
        return await self._deliver("send", [Raw(frame)], tracked=False)

    async def _deliver(self, name: str, items: list[Any], *, tracked: bool = True) -> Result:
        emulated = await self._connect()
        assert self._queue is not None and self._ack_event is not None
        before = len(emulated.report.violations)
        commands_before = len(emulated.report.commands)
        ids = [m["id"] for m in items if isinstance(m, dict)] if tracked else []
        for message_id in ids:
            self._acked.pop(message_id, None)  # a deliberate resend of an id is awaited anew
        for item in items:
            self._queue.put_nowait(item)
        if tracked:
            self._history.extend(m for m in items if isinstance(m, dict))
        props = self.settings.properties
        waited = self.settings.ack_limit() + 2 * props.resend_interval
        deadline = time.monotonic() + waited
        while any(i not in self._acked for i in ids) and time.monotonic() < deadline and not self._run.done():  # type: ignore[union-attr]
            self._ack_event.clear()
            try:
                await asyncio.wait_for(self._ack_event.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        if not tracked:
            await asyncio.sleep(0)  # let the frame leave and an answer, if any, arrive
        return Result(
            name=name,
            sent=ids,
            acks={i: self._acked[i] for i in ids if i in self._acked},
            violations=emulated.report.violations[before:],
            commands=emulated.report.commands[commands_before:],  # what was answered, not what the responder saw
            excerpt=self._recorder.excerpt(),
            waited=waited,
            truth=self._truth(),
        )

    def _truth(self) -> list[tuple[str, list[dict[str, Any]], list[str]]]:
        """(master, notifications sent, ids acknowledged) of this master and of the peers that had news."""
        handles = [self, *self._peers.values()]
        return [(h.master.hostname, list(h._history), list(h._acked)) for h in handles]

    def expected_state(self) -> dict[str, Any]:
        """What the endpoint was told by the domain's operations so far, as jobs and images per master."""
        return _merged([expected_state(*truth) for truth in self._truth()])

    async def _connect(self) -> EmulatedMaster:
        if self._emulated is not None and self._run is not None and not self._run.done():
            return self._emulated
        if self._run is not None and self._run.done() and self._run.exception() is not None:
            raise self._run.exception()  # type: ignore[misc]
        self._queue = asyncio.Queue()
        self._ack_event = asyncio.Event()
        if self._emulated is not None:
            self._answered += self._emulated.report.commands
        emulated = EmulatedMaster(
            self.targets, self.settings, tls=self.tls, responder=self.responder, transcript=self._recorder, on_ack=self._on_ack
        )
        self._emulated = emulated
        self._run = asyncio.ensure_future(emulated.run(self._items()))
        while emulated.report.established == 0 and not self._run.done():
            await asyncio.sleep(0.005)
        if self._run.done():
            error = self._run.exception()
            if isinstance(error, ConnectError):
                raise ConnectError(connection_hint(str(error), self.targets[0].url if len(self.targets) == 1 else "", self.tls))
            if error is not None:
                raise error
            _fail_connect(emulated.report)
        return emulated

    async def _items(self) -> AsyncIterator[Any]:
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    def _on_ack(self, event: Acknowledged) -> None:
        self._acked[event.message_id] = event.latency
        if self._ack_event is not None:
            self._ack_event.set()

    async def _close(self) -> None:
        for peer in self._peers.values():
            await peer._close()
        if self._run is None or self._queue is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._run), self.settings.ack_limit() + 2 * self.settings.properties.resend_interval + 5)
        except (TimeoutError, ConnectError):
            self._run.cancel()
        self._run = None


def _fail_connect(report: Report) -> NoReturn:
    """The AssertionError, naming the rule, for a master whose CONNECT was not accepted."""
    answered = [v for v in report.violations if v.rule == RuleId.CONNECT_ANSWERED]
    if answered:
        finding = answered[0].finding
        came = f"{finding.pointer or '/'}: {finding.message}" + (f" in {answered[0].frame}" if answered[0].frame else "")
        raise AssertionError(f"rule {RuleId.CONNECT_ANSWERED} failed: {RuleId.CONNECT_ANSWERED.description}\n  came:     {came}")
    why = "CONNECT answered valid: false" if report.refused else (report.error or "no CONNECT RESPONSE")
    raise AssertionError(f"rule {RuleId.CONNECT_ACCEPTS_TOKEN} failed: {RuleId.CONNECT_ACCEPTS_TOKEN.description}\n  came:     {why}")


def _step(kind: str, fields: dict[str, Any], masters: list[str]) -> Any:
    """A scenario step checked by the scenario schema, so a wrong field gets the same clear error."""
    document = {"description": "operation", "masters": {key: {} for key in masters}, "steps": [{kind: fields}]}
    try:
        return parse(encode(document).decode(), kind).steps
    except ScenarioError as error:
        # "backup:1: steps[0].backup.colour: ..." says more than the caller wrote; keep the field.
        raise ScenarioError(re.sub(rf"^{kind}:\d+: steps\[0\]\.{kind}\.?", f"{kind}(): ", str(error))) from None
