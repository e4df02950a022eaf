"""The emulated master, blocking: a thin layer over :class:`MasterSession` and a :class:`~emulator.sync.connection.Connection`.

One master, one thread (or one greenlet under gevent's monkey patching, as in
Locust), which reads its own socket when it waits (no reading thread). It
does what the asyncio master does, with the same session core making every
protocol decision: CONNECT; a window of outstanding notifications; resends of
unacknowledged ones every ``notification.scheduledRate``; reconnection with
back-off (:class:`~emulator.protocol.sender.Reconnection`, as the asyncio master) when the endpoint goes away,
CONNECT again and the pending notifications resent; COMMAND requests answered
from the master's domain; and at the end every notification acknowledged or
reported lost. What went over the connection is a
:class:`~emulator.protocol.run.Report`, judged by the same rules as ``run``
(:meth:`SyncMaster.findings`).

A caller drives it one :meth:`SyncMaster.step` at a time (a Locust task), or
hands it all its notifications at once (:meth:`SyncMaster.run`). Each
notification and its acknowledgement, each connection attempt, and each
finding not tied to a notification becomes a :class:`Sample`.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from emulator.contract.rules import FAILED, RunFacts, evaluate
from emulator.exceptions import ConnectionFailed, NbwssError
from emulator.findings import RuleId
from emulator.protocol.codec import DecodeError, decode, encode
from emulator.protocol.run import Report, Settings, Target
from emulator.protocol.sender import Reconnection, SendPolicy
from emulator.protocol.session import (
    Acknowledged,
    CloseRequested,
    CommandRequested,
    Established,
    MasterSession,
    Refused,
    State,
    Violation,
    excerpt,
)
from emulator.responders import CommandResponder
from emulator.schemas import default_schemas, fast_is_valid
from emulator.sync.connection import Connection
from emulator.wire.tls import TlsOptions, client_context

#: Violations kept in the report with their frames; beyond, only counted (a long Locust run must stay small).
MAX_VIOLATIONS = 1000
#: Late acknowledgements kept as evidence when acknowledgements are not recorded; all are counted (Report.late).
MAX_LATE_KEPT = 100


@dataclass(frozen=True, slots=True)
class Sample:
    """One request as a load tool counts it: a CONNECT, or a notification and its acknowledgement.

    ``kind`` is ``CONNECT`` or ``NBWSS``; ``name`` says which (``CONNECT``,
    ``NOTIFICATION JOB+IMAGE``, or ``FINDING <rule>`` for a finding in a frame that
    answers no notification); ``elapsed`` counts seconds from the first send;
    ``error`` is None for a success, else the reason, starting with the rule id.
    """

    kind: str
    name: str
    elapsed: float
    length: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedNotification:
    """A notification encoded and checked beforehand (see :func:`prepare`): sent as it is, named for its sample."""

    message_id: str
    frame: bytes
    name: str


#: What a master sends: a NOTIFICATION REQUEST, as a message or prepared.
Notification = dict[str, Any] | PreparedNotification


def sample_name(message: dict[str, Any]) -> str:
    """A notification's sample name: ``NOTIFICATION`` and its object kinds, e.g. ``NOTIFICATION JOB+IMAGE``."""
    return "NOTIFICATION " + "+".join(group["object"] for group in message["payload"])


def prepare(messages: Iterator[dict[str, Any]], count: int) -> tuple[list[PreparedNotification], list[Violation]]:
    """The next ``count`` of ``messages`` encoded and checked against the schemas, as a load run prepares them.

    Sending them then costs neither generation, encoding nor checking; a message
    the schemas reject is a ``frames.schema.sent`` violation (the master's own
    frames are checked, as ever).
    """
    schemas = default_schemas()
    checker = schemas.fast_validator("notification-request.json")
    prepared: list[PreparedNotification] = []
    violations: list[Violation] = []
    for message in itertools.islice(messages, count):
        frame = encode(message)
        if not fast_is_valid(checker, message):
            text = excerpt(frame.decode())
            violations.extend(Violation("frames.schema.sent", finding, text) for finding in schemas.validate(message))
        prepared.append(PreparedNotification(message["id"], frame, sample_name(message)))
    return prepared, violations


class ConnectError(ConnectionFailed):
    """The endpoint could not be reached or gave no usable CONNECT answer; one line saying why."""


class TokenRefused(NbwssError):
    """The endpoint answered CONNECT with ``valid: false``: the master stops, as NetBackup does."""


class GaveUp(ConnectionFailed):
    """No connection could be made in ``reconnect_attempts`` rounds; what was pending is reported lost."""


class SyncMaster:
    """One NetBackup master's NBWSS client for one endpoint group, blocking."""

    def __init__(
        self,
        targets: Iterable[Target],
        settings: Settings | None = None,
        *,
        tls: TlsOptions | None = None,
        responder: CommandResponder | None = None,
        rng: random.Random | None = None,
        on_sample: Callable[[Sample], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_ack: Callable[[Acknowledged], None] | None = None,
    ) -> None:
        self.targets = sorted(targets, key=lambda t: t.priority)
        if not self.targets:
            raise ValueError("no endpoint to connect to")
        self.settings = settings or Settings()
        self.tls = tls or TlsOptions()
        self.responder = responder
        self.rng = rng or random.Random()
        self.on_sample = on_sample
        self.clock = clock
        self.on_ack = on_ack  # called with each notification's acknowledgement, once (as EmulatedMaster's on_ack)
        props = self.settings.properties
        self.session = MasterSession(
            self.targets[0].token,
            clock=clock,
            resend_interval=props.resend_interval,
            ignore_decoder=props.ignore_decoder,
            validate_outgoing=self.settings.validate,
            rng=self.rng,
            ack_memory=self.settings.ack_memory,
        )
        self.report = Report(url=self.targets[0].url)
        # The same policy core as the asyncio master: fail-over order and back-off, lateness, when to give up.
        self.reconnection = Reconnection(
            self.targets, attempts=self.settings.reconnect_attempts, period=props.connection_period, rng=self.rng
        )
        self.overflow: Counter[str] = Counter()  # violations beyond MAX_VIOLATIONS, by rule
        self._ack_limit = self.settings.ack_limit()
        self.policy = SendPolicy(window=self.settings.window, rate=None, ack_limit=self._ack_limit, resend_interval=props.resend_interval)
        self._give_up_after = self.policy.stall_timeout
        self._names: dict[str, str] = {}  # pending notification id -> its sample name
        self._ws: Connection | None = None
        self._closing = False  # the master itself is closing the current connection
        self._connected_at = 0.0
        self._started = clock()
        self._next_attempt = 0.0  # no connection attempt before this (back-off)
        self._exhausted = False

    # -- driving it ---------------------------------------------------------------------------

    def run(self, messages: Iterable[Notification]) -> Report:
        """Send every message, wait for the acknowledgements (reconnecting as needed), close; the report.

        Raises :class:`ConnectError` when the first connection cannot be made (no
        retry: that is what prevents testing) and :class:`TokenRefused` when the token is refused; a run that loses its
        connection for good ends with what was pending reported lost.
        """
        source = iter(messages)
        try:
            self._establish(first=True)
            while self.step(source):
                pass
        except GaveUp as gave_up:
            self.report.error = str(gave_up)
        finally:
            self.close()
        return self.report

    def step(self, source: Iterator[Notification]) -> bool:
        """One turn: connect if need be, fill the window from ``source``, then read one frame or resend what is due.

        Returns False once ``source`` is exhausted and nothing is pending. Raises
        :class:`TokenRefused`, or :class:`GaveUp` after ``reconnect_attempts``
        failed rounds (the pending notifications are then reported lost).
        """
        if self._ws is None:
            self._establish(first=False)
        ws = self._ws
        if ws is None:
            return True  # lost again while resending: the next step reconnects
        session = self.session
        if not self._exhausted:
            self._fill(ws, source)
        if self._exhausted and not session.pending:
            return False
        try:
            frame = ws.recv(timeout=max(0.0, self._deadline() - self.clock()))
        except TimeoutError:
            self._overdue(ws)
            return True
        except ConnectionClosed as closed:
            self._dropped(closed)
            return True
        self._handle(ws, frame)
        # What came with it in the same read is handled too before the window is refilled: one write refills it.
        for frame in ws.received():
            if self._ws is not ws:
                break  # it closed meanwhile
            self._handle(ws, frame)
        return True

    def drain(self, timeout: float | None = None) -> None:
        """Send nothing more; wait up to ``timeout`` (default: ack time-out and two resend cycles) for what is pending.

        What is still pending after that is reported lost. The connection stays
        open (:meth:`close` closes it).
        """
        self._exhausted = True
        limit = self.clock() + (self._ack_limit + 2 * self.settings.properties.resend_interval if timeout is None else timeout)
        while self.session.pending and self.clock() < limit:
            ws = self._ws
            if ws is None:
                break  # not connected: nothing in flight will be answered (and a stop must not wait out a back-off)
            try:
                frame = ws.recv(timeout=max(0.0, min(self._deadline(), limit) - self.clock()))
            except TimeoutError:
                self._overdue(ws)
                continue
            except ConnectionClosed as closed:
                self._dropped(closed)
                continue
            self._handle(ws, frame)
        self._lose(list(self.session.pending), f"no acknowledgement before the master stopped ({len(self.session.pending)} pending)")

    def close(self) -> None:
        """Close the connection (best effort) and complete the report."""
        self._closing = True
        ws, self._ws = self._ws, None
        if ws is not None:
            _close_quietly(ws)
        report, counters = self.report, self.session.counters
        report.lost.extend(self.session.pending)
        for message_id in list(self.session.pending):
            self._names.pop(message_id, None)
        self.session.pending.clear()
        report.sent, report.resent, report.duplicate_acks = counters.sent, counters.resent, counters.duplicate_acks
        report.acknowledged = counters.acknowledged
        report.violations.extend(self.session.outgoing_violations)
        self.session.outgoing_violations.clear()
        report.elapsed = self.clock() - self._started

    def record(self, violations: Iterable[Violation]) -> None:
        """Findings made outside the connection (e.g. in :func:`prepare`): in the report, judged with the rest."""
        for violation in violations:
            self._violation(violation)

    def findings(self) -> dict[str, int]:
        """Failed rules of the run so far and how often each failed: what ``run`` would report, by rule id."""
        report = self.report
        report.sent, report.resent = self.session.counters.sent, self.session.counters.resent
        report.duplicate_acks = self.session.counters.duplicate_acks
        report.acknowledged = self.session.counters.acknowledged
        found: dict[str, int] = {str(result.rule.id): result.failures for result in evaluate(RunFacts(report)) if result.status == FAILED}
        for rule, count in self.overflow.items():
            contract_rule = _CONTRACT_RULE.get(rule, rule)
            found[contract_rule] = found.get(contract_rule, 0) + count
        return found

    # -- connecting ---------------------------------------------------------------------------

    def _establish(self, *, first: bool) -> None:
        """Open a connection and complete CONNECT (fail-over by priority), waiting out the back-off first."""
        while True:
            wait = self._next_attempt - self.clock()
            if wait > 0:
                time.sleep(wait)
            errors = []
            for target in self.reconnection.order():
                outcome = self._attempt(target)
                if outcome is None:
                    self.reconnection.connected()
                    resent = self.session.resend_all()
                    if resent:
                        self._send(*resent)
                    return
                errors.append(outcome)
            why = "; ".join(errors)
            if first:
                raise ConnectError(why)  # as run: what prevents testing is said at once, not retried
            self.report.reconnect_failures.extend(errors)
            pause = self.reconnection.failed_round()
            if pause is None:
                self._lose(list(self.session.pending), f"no connection in {self.reconnection.attempts} attempts: {why}")
                raise GaveUp(f"no connection in {self.reconnection.attempts} attempts: {why}")
            self._next_attempt = self.clock() + pause

    def _attempt(self, target: Target) -> str | None:
        """One CONNECT with ``target``: None when open, else why not (a failed CONNECT sample says the same)."""
        started = self.clock()
        session = self.session
        try:
            ws = self._open(target)
        except ConnectError as error:
            self._sample("CONNECT", "CONNECT", self.clock() - started, 0, str(error))
            return str(error)
        self._ws, self._closing = ws, False
        self.report.url = target.url
        session.token = target.token
        request = session.connect()
        why = self._handshake(ws, request)
        if why is None:
            self._connected_at = self.clock()
            self._sample("CONNECT", "CONNECT", self.clock() - started, len(request), None)
            return None
        self._sample("CONNECT", "CONNECT", self.clock() - started, len(request), why)
        self._ws = None
        self._closing = True
        _close_quietly(ws)
        session.connection_lost()
        if self.report.refused:
            raise TokenRefused(f"{target.url}: {why}")
        return why

    def _handshake(self, ws: Connection, request: bytes) -> str | None:
        """Send CONNECT and read its answer: None when accepted, else the reason."""
        session, report = self.session, self.report
        limit = self.clock() + self.settings.connect_timeout
        try:
            ws.send(request)
            while True:
                frame = ws.recv(timeout=max(0.0, limit - self.clock()))
                answer_problems: list[str] = []
                for event in session.receive(frame):
                    if isinstance(event, Established):
                        report.established += 1
                        report.connect_latencies.append(event.latency)
                        return None
                    if isinstance(event, Refused):
                        report.refused = True
                        report.connect_latencies.append(event.latency)
                        return "[connect.accepts-token] CONNECT answered valid: false"
                    if isinstance(event, Violation):
                        self._violation(event)
                        if _answers_connect(frame):
                            answer_problems.append(f"[{event.rule}] {event.finding.pointer or '/'}: {event.finding.message}")
                    elif isinstance(event, CloseRequested):
                        return f"[frames.json] the master closed the connection: {event.reason}"
                if answer_problems:
                    # A CONNECT RESPONSE that is wrong is the answer: waiting for the time-out would only hide it.
                    if not any(problem.startswith("[connect.answered]") for problem in answer_problems):
                        self._violation(
                            session.violation(RuleId.CONNECT_ANSWERED, "", "the CONNECT RESPONSE is not a usable answer", frame)
                        )
                    return "; ".join(answer_problems)
        except TimeoutError:
            why = f"no CONNECT RESPONSE within {self.settings.connect_timeout:g}s"
            self._violation(session.violation(RuleId.CONNECT_ANSWERED, "", why, ""))
            return f"[connect.answered] {why}"
        except ConnectionClosed as closed:
            code = _close_code(closed)
            report.close_codes.append(code)
            return f"connection closed during CONNECT ({code})"

    def _open(self, target: Target) -> Connection:
        """A WebSocket connection to ``target``, or :class:`ConnectError` saying in one line why not."""
        settings, props = self.settings, self.settings.properties
        url = target.url
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConnectError(f"not a WebSocket URL (ws:// or wss://): {url}")
        host = parts.hostname
        try:
            return Connection.open(
                url,
                ssl_context=client_context(self.tls) if parts.scheme == "wss" else None,
                open_timeout=settings.connect_timeout,
                ping_interval=props.keepalive_interval,
                ping_timeout=props.keepalive_interval * props.max_pong_miss,
                close_timeout=min(2.0, props.send_timeout),
                max_size=settings.max_size,
                user_agent="NetBackup-NBWSS-emulator",
            )
        except ssl.SSLCertVerificationError as error:
            raise ConnectError(f"TLS certificate verification failed for {host}: {error.verify_message}") from None
        except ssl.SSLError as error:
            raise ConnectError(f"TLS handshake with {host} failed: {error.reason or error}") from None
        except InvalidStatus as error:
            raise ConnectError(f"{url} answered HTTP {error.response.status_code} instead of upgrading to WebSocket") from None
        except InvalidURI:
            raise ConnectError(f"not a valid WebSocket URL: {url}") from None
        except socket.gaierror:
            raise ConnectError(f"cannot resolve host {host}") from None
        except ConnectionRefusedError:
            raise ConnectError(f"connection refused by {host}:{parts.port or (443 if parts.scheme == 'wss' else 80)}") from None
        except TimeoutError:
            raise ConnectError(f"no WebSocket handshake with {url} within {settings.connect_timeout:g}s") from None
        except (OSError, WebSocketException) as error:
            raise ConnectError(f"cannot connect to {url}: {error}") from None

    # -- sending ------------------------------------------------------------------------------

    def _fill(self, ws: Connection, source: Iterator[Notification]) -> None:
        """Send notifications while the window has room, in one write."""
        session, names = self.session, self._names
        room = self.settings.window - len(session.pending)
        if room <= 0 or session.state is not State.OPEN:
            return
        frames = []
        for _ in range(room):
            item = next(source, None)
            if item is None:
                self._exhausted = True
                break
            if type(item) is PreparedNotification:
                frames.append(session.send_prepared(item.message_id, item.frame))
                names[item.message_id] = item.name
            else:
                assert isinstance(item, dict)
                frames.append(session.send(item))
                names[item["id"]] = sample_name(item)
        if frames:
            self._send(*frames)

    def _send(self, *frames: bytes) -> bool:
        """Write frames; False when the connection is gone (what was sent stays pending, for after the reconnect)."""
        ws = self._ws
        if ws is None:
            return False
        try:
            ws.send_many(frames)
        except ConnectionClosed as closed:
            self._dropped(closed)
            return False
        return True

    def _deadline(self) -> float:
        """When the next thing falls due on its own: a resend (losses are looked for then too: they come later)."""
        resend = self.session.next_resend()
        return resend if resend is not None else self.clock() + self.settings.properties.resend_interval

    def _overdue(self, ws: Connection) -> None:
        """Nothing came in time: resend what is due, and report lost what waited too long on open connections."""
        session = self.session
        now = self.clock()
        expired = [p.message_id for p in session.pending.values() if now - max(p.first_sent, self._connected_at) >= self._give_up_after]
        if expired:
            self._lose(expired, f"no acknowledgement within {self._give_up_after:g}s")
        due = session.resend_due()
        if due:
            self._send(*due)

    # -- receiving ----------------------------------------------------------------------------

    def _handle(self, ws: Connection, frame: str | bytes) -> None:
        for event in self.session.receive(frame):
            if isinstance(event, Acknowledged):
                self._acknowledged(event)
            elif isinstance(event, Violation):
                self._violation(event)
                self._sample("NBWSS", f"FINDING {event.rule}", 0.0, 0, _reason(event))
            elif isinstance(event, CommandRequested):
                self._answer(event.message)
            elif isinstance(event, CloseRequested):
                self._closing = True
                _close_quietly(ws, event.code, event.reason)
                self._dropped(None)

    def _acknowledged(self, event: Acknowledged) -> None:
        report = self.report
        latency = event.since_due  # from the first send: a resend does not make a slow endpoint look fast
        error = None
        # Late as run judges it: resent for want of an ack, or slow since the last send (a resend after a
        # reconnect restarts the clock: the time without a connection is not the endpoint's to answer for).
        if self.policy.is_late(event.latency, event.overdue):
            report.late += 1  # all of them, for findings(); the evidence only up to MAX_LATE_KEPT in a long (Locust) run
            if self.settings.record_acks or len(report.late_acks) < MAX_LATE_KEPT:
                report.late_acks.append((event.message_id, latency))
            error = (
                f"[ack.within-timeout] acknowledged {latency * 1000:.0f} ms after the first send "
                f"(limit {self._ack_limit * 1000:.0f} ms, {event.attempts} sends)"
            )
        if self.settings.record_acks:
            report.acks.append((event.message_id, latency, event.attempts))
        name = self._names.pop(event.message_id, "NOTIFICATION")
        self._sample("NBWSS", name, latency, len(event.frame), error)
        if self.on_ack is not None:
            self.on_ack(event)

    def _answer(self, message: dict[str, Any]) -> None:
        if self.responder is None:
            return
        response = self.responder.answer(message)
        self.report.commands.append(self.responder.exchanges[-1])
        self._send(self.session.send_frame(response))

    def _violation(self, violation: Violation) -> None:
        if len(self.report.violations) < MAX_VIOLATIONS:
            self.report.violations.append(violation)
        else:
            self.overflow[violation.rule] += 1

    def _dropped(self, closed: ConnectionClosed | None) -> None:
        """The connection ended: pending notifications wait for the next one."""
        if self._ws is None and closed is not None:
            return  # already counted
        ws, self._ws = self._ws, None
        code = _close_code(closed) if closed is not None else (ws.close_code if ws is not None else None)
        self.report.close_codes.append(code if code is not None else 1006)
        if not self._closing:
            self.report.drops += 1  # the endpoint or the network ended it, not the master
        self.session.connection_lost()
        self._next_attempt = self.clock()

    def _lose(self, message_ids: list[str], why: str) -> None:
        """Report these pending notifications lost: out of the session, one failed sample each."""
        for message_id in message_ids:
            pending = self.session.pending.pop(message_id, None)
            if pending is None:
                continue
            self.report.lost.append(message_id)
            name = self._names.pop(message_id, "NOTIFICATION")
            self._sample(
                "NBWSS",
                name,
                self.clock() - pending.first_sent,
                len(pending.frame),
                f"[ack.every-notification] {why}, sent {pending.attempts}×",
            )

    def _sample(self, kind: str, name: str, elapsed: float, length: int, error: str | None) -> None:
        if self.on_sample is not None:
            self.on_sample(Sample(kind, name, elapsed, length, error))


#: Session rule ids that the contract judges under another rule's id.
_CONTRACT_RULE = {"frames.text": RuleId.FRAMES_JSON, "frames.schema.sent": RuleId.MASTER_FRAMES_VALID}


def _answers_connect(frame: str | bytes) -> bool:
    """Whether a frame read during CONNECT is (meant as) the CONNECT RESPONSE."""
    try:
        message = decode(frame)
    except DecodeError:
        return False
    return isinstance(message, dict) and message.get("type") == "CONNECT"


def _reason(violation: Violation) -> str:
    return f"[{violation.rule}] {violation.finding.pointer or '/'}: {violation.finding.message}"


def _close_quietly(ws: Connection, code: int = 1000, reason: str = "") -> None:
    """Close with the closing handshake, best effort: a dead peer must not stop the master."""
    with contextlib.suppress(OSError, WebSocketException):
        ws.close(code, reason)


def _close_code(closed: ConnectionClosed | None) -> int:
    if closed is None:
        return 1006
    frame = closed.rcvd or closed.sent
    return frame.code if frame is not None else 1006
