"""The emulated master over a real WebSocket: a thin asyncio layer over :class:`MasterSession`.

It opens the connection (TLS verified unless asked otherwise), performs the
CONNECT handshake, streams notifications within a window of pending
acknowledgements (or at a rate, or in scenario time), answers COMMAND requests,
and when the connection drops it reconnects with back-off, repeats CONNECT and
resends what is unacknowledged. At the end every notification is either
acknowledged or reported lost. All protocol decisions are the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator
from typing import Any, cast
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus, InvalidURI, WebSocketException
from websockets.frames import Frame, Opcode
from websockets.protocol import State as WsState

from emulator.exceptions import ConnectionFailed
from emulator.findings import Finding, RuleId
from emulator.protocol.run import NOT_YET, Duplicate, Paced, Prepared, PullSource, Raw, Reconnect, Report, Settings, Target
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
)
from emulator.responders import CommandResponder
from emulator.wire.tls import TlsOptions, client_context
from emulator.wire.transcript import FrameRecorder

#: Bytes written but not yet taken by the peer beyond which the master stops sending (and
#: keeps frames pending) rather than wait: an endpoint that stops reading must not hang a run.
BACKLOG_LIMIT = 1024 * 1024
WRITE_LIMIT = 4 * BACKLOG_LIMIT
#: Late acknowledgements kept as evidence when acknowledgements are counted, not recorded (Settings.record_acks).
MAX_LATE_KEPT = 100
#: The highest latency a report's histogram holds, microseconds (an hour); longer ones are counted as this.
HIGHEST_LATENCY_US = 3_600_000_000
#: Notifications written to the socket together at most (~0.2 MiB of frames; see EmulatedMaster._flush).
MAX_BURST = 128
#: Data frames (a message's last frame) that go to ``recv`` when the master does not take them as they are parsed.
_MESSAGE_ENDS = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
#: The shortest sleep of the sender, seconds, where it polls: for a connection without the
#: acknowledgement fast path (a transcript is kept), and while the endpoint is not reading.
PACE_GRAIN = 0.0002


class MasterConnection(ClientConnection):
    """websockets' client connection, offering each complete text frame to the master as it is parsed.

    ``take_text`` (when set) sees the frame's UTF-8 bytes in the same call that
    parsed them and says whether it took the frame: an acknowledgement is settled
    there, with no queue, future and task switch per frame (a third of the cost of
    an ack in the open model). What it does not take goes the usual way, to ``recv``.
    ``received_at`` is when the bytes being parsed were read (``time.monotonic``).
    ``wake_receiver`` (when set) is called when a message is queued for ``recv`` and
    when the connection is lost: the master reads only then (see EmulatedMaster._receive).
    """

    # Slots: websockets' own attributes are 26; with these in the instance's attribute dict too, past the 30 an
    # instance may share the keys of, each connection had a dict of its own (1.5 KiB more per connection).
    __slots__ = ("received_at", "take_text", "unread", "wake_receiver")

    take_text: Callable[[bytes | bytearray | memoryview], bool] | None
    wake_receiver: Callable[[], None] | None
    received_at: float
    unread: int  # messages parsed and queued for recv, not yet handled by the master (see EmulatedMaster._settle)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.take_text = None
        self.wake_receiver = None
        self.received_at = 0.0
        self.unread = 0
        super().__init__(*args, **kwargs)

    def data_received(self, data: bytes) -> None:
        self.received_at = time.monotonic()
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        take = self.take_text
        if (
            take is not None and type(event) is Frame and event.opcode is Opcode.TEXT and event.fin and take(cast("bytes", event.data))
        ):  # a parsed frame holds bytes
            return
        if type(event) is Frame and event.fin and event.opcode in _MESSAGE_ENDS:
            self.unread += 1
            super().process_event(event)
            if self.wake_receiver is not None:
                self.wake_receiver()  # queued for recv now
            return
        super().process_event(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.wake_receiver is not None:
            self.wake_receiver()  # recv now says how it ended


class Signal:
    """A wake-up flag to wait for: asyncio.Event's ``set``, ``clear``, ``is_set`` and ``wait``, made small.

    An Event keeps a deque of waiters (760 bytes even when empty) and waits in a coroutine
    of its own; a master's wake-up and its feed's have one waiter at a time. ``wait``
    hands out one future, made when needed (nothing to wait for when the flag is set).
    For one waiter at a time: waiters at once would share it, and cancelling one would
    cancel the others' wait. A wait cancelled loses no wake-up: the next makes a new future.
    """

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    def wait(self) -> Awaitable[None]:
        """Until the flag is set (at once if it is)."""
        if self._set:
            return _AT_ONCE
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter


class _AtOnce:
    """An awaitable that is done when awaited."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # a generator that ends at once


_AT_ONCE = _AtOnce()


class ConnectError(ConnectionFailed):
    """The endpoint could not be reached; the message is one line saying why."""


class CloseTogether:
    """Masters that keep their connections open until the last of them is done, then close, ``at_once`` at a time.

    Masters of one load run end within the same second or two: closing as each is done
    would put thousands of closing handshakes among the acknowledgements still coming.
    Afterwards, a few hundred at a time: thousands of closing handshakes at once would
    hold all their frames and futures together (1.6 KiB a connection more at the peak).
    """

    def __init__(self, masters: int, at_once: int = 256) -> None:
        self._left = masters
        self._all_done = asyncio.Event()
        self.closing = asyncio.Semaphore(at_once)

    def done(self) -> None:
        """One master is done (or gave up, or was interrupted)."""
        self._left -= 1
        if self._left <= 0:
            self._all_done.set()

    async def wait(self) -> None:
        await self._all_done.wait()


class EmulatedMaster:
    """One NetBackup master's NBWSS client for one endpoint group."""

    # Slots: past 30 attributes an instance no longer shares its class's keys, and each master had an attribute dict of
    # its own (1.5 KiB; a load run has thousands of masters).
    __slots__ = (
        "_closing", "_current", "_duplicates_wanted", "_filling", "_finished", "_first_acked", "_held", "_not_due", "_over",
        "_pacer", "_receiver", "_record_acks", "_session", "_settling", "_source", "_source_waits", "_start", "_timer", "_wake",
        "_ws", "close_together", "on_ack", "policy", "report", "responder", "rng", "settings", "stop", "targets", "tls",
        "transcript",
    )  # fmt: skip

    def __init__(
        self,
        targets: Iterable[Target],
        settings: Settings | None = None,
        *,
        tls: TlsOptions | None = None,
        responder: CommandResponder | None = None,
        transcript: FrameRecorder | None = None,
        rng: random.Random | None = None,
        on_ack: Callable[[Acknowledged], None] | None = None,
        stop: asyncio.Event | None = None,
        close_together: CloseTogether | None = None,
    ) -> None:
        self.targets = sorted(targets, key=lambda t: t.priority)
        if not self.targets:
            raise ValueError("no endpoint to connect to")
        self.settings = settings or Settings()
        self.tls = tls or TlsOptions()
        self.responder = responder
        self.transcript = transcript
        self.rng = rng or random.Random()
        self.on_ack = on_ack
        self.stop = stop  # set (with the task cancelled) to end the run early, reporting what happened
        self.close_together = close_together  # when given, the connection stays open until all its masters are done
        self.report = Report(url=self.targets[0].url)
        if self.settings.ack_histogram:
            self.report.latency = HdrHistogram(1, HIGHEST_LATENCY_US, 3)
        self._ws: ClientConnection | None = None
        self._wake = Signal()
        self._session: MasterSession | None = None
        # The first acknowledged notification, what a Duplicate step sends again. Only it: keeping a few (16) held
        # ~10 KiB of frames per master of a load run, a third of its connection's memory.
        self._first_acked: tuple[str, bytes] | None = None
        self._current: Target = self.targets[0]
        self._closing = False  # the master itself is closing the current connection
        self._duplicates_wanted = 0  # Duplicate steps waiting for a first acknowledgement
        self._held: Any = None  # a Paced message waiting for its time, or a step left to the sender
        self._filling = False  # the sender is in _fill (the pacer then leaves sending to it)
        self._settling = False  # the sender waits for the receiver to handle what was read, before a deliberate close
        self._not_due = False  # the last look found the next notification not due yet (see _take_ready)
        self._source_waits = False  # the last look found the source with nothing for now: it wakes the sender itself
        self._pacer: asyncio.TimerHandle | None = None  # sends the next paced notification when due (see _pace)
        self._timer: asyncio.TimerHandle | None = None  # ends the sender's sleep at its deadline (see _sleep)
        self._source: _Source | None = None
        self._finished = False  # the run is over (its report made); the connection may still be closing
        # The connection's reader: while the run goes on, on a MasterConnection, only while there is something to read
        # (acknowledgements are taken as they are parsed; a task per master waiting in recv was 2 KiB of its memory);
        # at the end, the last connection's, kept until it closes.
        self._receiver: asyncio.Future[None] | None = None
        self._over = False  # the current connection has ended, and its reader has handled everything it read
        self._start = 0.0
        self.policy = self._policy()  # when notifications leave, when the run ends: decided without I/O
        self._record_acks = self.settings.record_acks  # looked at for every acknowledgement

    # -- one-off CONNECT (the wrong-token probe) ------------------------------------------

    async def try_token(self, token: str) -> tuple[bool | None, str]:
        """Connect with ``token`` and close. (valid, how): valid is None when no CONNECT RESPONSE came."""
        target = self.targets[0]
        ws = await self._open(target)
        session = MasterSession(token, clock=time.monotonic, rng=self.rng)

        async def answer() -> tuple[bool | None, str]:
            await ws.send(session.connect(), text=True)
            async for frame in ws:
                for event in session.receive(frame):
                    if isinstance(event, Established):
                        return True, "CONNECT answered valid: true"
                    if isinstance(event, Refused):
                        return False, "CONNECT answered valid: false"
            return False, f"connection closed ({ws.close_code}) without a CONNECT RESPONSE"

        try:
            return await asyncio.wait_for(answer(), self.settings.connect_timeout)
        except TimeoutError:
            return None, f"no CONNECT RESPONSE within {self.settings.connect_timeout:g}s"
        except ConnectionClosed as closed:
            return False, f"connection closed ({_close_code(closed)}) without valid: true"
        finally:
            await ws.close()

    # -- the run --------------------------------------------------------------------------

    async def run(self, messages: Iterable[Any] | AsyncIterable[Any] | PullSource) -> Report:
        """Send ``messages`` (NOTIFICATION REQUEST dicts, or Paced/Reconnect/Duplicate steps); returns the report.

        An asynchronous iterable keeps the connection open until it ends, so a caller
        can feed notifications while the endpoint sends COMMAND requests.

        Raises :class:`ConnectError` when the first connection cannot be made.
        """
        settings, props = self.settings, self.settings.properties
        self._start = time.monotonic()
        session = MasterSession(
            self._current.token,
            clock=time.monotonic,
            resend_interval=props.resend_interval,
            ignore_decoder=props.ignore_decoder,
            validate_outgoing=settings.validate,
            rng=self.rng,
            ack_memory=settings.ack_memory,
        )
        self._session = session
        self._source = _Source(messages, self._wake)
        self.policy = policy = self._policy()
        policy.start(self._start)  # the stall clock runs from the start: a run that never gets an ack ends
        try:
            return await self._connections(session)
        except asyncio.CancelledError:
            # Interrupted (Ctrl-C, SIGTERM): what happened so far is the report; pending notifications are lost.
            self.report.interrupted = True
            return self._finish(session)
        finally:
            self._source.close()
            together, quick = self.close_together, self.report.interrupted
            if together is None:
                await self._close(quick=quick)
            else:
                together.done()
                try:
                    if not quick:
                        await together.wait()
                    async with together.closing:
                        await self._close(quick=quick)
                except asyncio.CancelledError:  # interrupted while the others finish: the report stands
                    await self._close(quick=True)

    async def _connections(self, session: MasterSession) -> Report:
        """Connect, stream, and reconnect until the messages are all acknowledged or the run gives up."""
        policy = self.policy
        while True:
            if self.stop is not None and self.stop.is_set():
                raise asyncio.CancelledError
            ws = await self._establish(session, first=self.report.established == 0 and not self.report.drops)
            if ws is None:
                break
            self._over = False
            if isinstance(ws, MasterConnection):
                if self.transcript is None:  # a transcript keeps frames in one ordered path
                    ws.take_text = self._ack_taker(ws, session)
                ws.wake_receiver = functools.partial(self._wake_receiver, ws, session)
                if ws.unread or ws.protocol.state is WsState.CLOSED:  # what came with the CONNECT RESPONSE, or its end
                    self._wake_receiver(ws, session)
            else:
                self._receiver = asyncio.ensure_future(self._receive(ws, session))
            try:
                for frame in session.resend_all():
                    await self._send(ws, session, frame)
                while not self._over:
                    if self.stop is not None and self.stop.is_set():
                        raise asyncio.CancelledError  # a cancellation that asyncio.wait_for swallowed (Python < 3.12)
                    self._wake.clear()  # before looking, so that no wake-up between look and sleep is lost
                    await self._fill(ws, session)
                    if self._duplicates_wanted and self._first_acked is not None and session.state is State.OPEN:
                        self._duplicates_wanted -= 1
                        await self._send_duplicate(ws, session)
                    now = time.monotonic()
                    pending = len(session.pending)
                    if policy.drained(now, pending):
                        duplicate_waits = pending == 0 and self._duplicates_wanted and self._first_acked is not None
                        if not duplicate_waits or policy.drained(now, 1):  # drained(now, 1): the drain time is up
                            self._finished = True
                            return self._finish(session)
                    if policy.stalled(now, pending):
                        self.report.error = f"no acknowledgement for {policy.stall_timeout:g}s; gave up"
                        self._finished = True
                        return self._finish(session)
                    for frame in session.resend_due():
                        await self._send(ws, session, frame)
                    paced = (policy.paced or self._held is not None) and not policy.exhausted
                    if paced and isinstance(ws, MasterConnection):
                        paced = not self._arm_pacer(ws, session)  # the pacer sends at the slot: no wake-up for it
                    wake = policy.wake_at(policy.next_slot if paced else None, policy.stall_deadline(len(session.pending)))
                    try:
                        await self._sleep(session, wake)
                    finally:
                        if self._timer is not None:
                            self._timer.cancel()
                            self._timer = None
            finally:
                # the run is over, the connection not yet: COMMANDs are answered until it closes
                lingers = self._finished and not self._over
                if isinstance(ws, MasterConnection):
                    ws.take_text = None  # what arrives while the connection closes is no longer counted
                    if not lingers:
                        ws.wake_receiver = None
                if self._pacer is not None:
                    self._pacer.cancel()
                    self._pacer = None
                if not lingers:
                    receiver, self._receiver = self._receiver, None
                    if receiver is not None:
                        if not receiver.done():
                            receiver.cancel()
                        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                            await receiver
            if session.state is State.REFUSED:
                break
            session.connection_lost()
            if policy.stalled(time.monotonic(), len(session.pending)):
                self.report.error = f"no acknowledgement for {policy.stall_timeout:g}s across reconnections; gave up"
                break
        return self._finish(session)

    async def _fill(self, ws: ClientConnection, session: MasterSession) -> None:
        """Send notifications while the window has room and they are due.

        The sender task sends: acknowledgements are read as they arrive and wake it when
        it may be waiting for them, and the window's worth leaves in one burst, written to
        the socket at once. (Sending one frame per acknowledgement costs a system call and
        a wake-up of the endpoint each: against a fast endpoint, half the throughput.) The
        exception is paced notifications: they leave as they fall due, from the pacer
        (:meth:`_pace`), while the sender sleeps.
        """
        burst: list[bytes] = []
        self._filling = True
        try:
            while True:
                item = self._take_ready(ws, session, burst)
                if item is _STOP:
                    return
                self._flush(ws, session, burst)  # what follows may wait: the notifications before it leave first
                if item is None:
                    self._source_ended()
                    return
                if isinstance(item, Reconnect):
                    if item.settle:
                        await self._settle(ws, session)
                        if ws.state is not WsState.OPEN:
                            return  # the endpoint closed it meanwhile: its drop (connection.kept), not the master's
                    self.report.deliberate_drops += 1
                    self._closing = True
                    await ws.close(1001, "master reconnecting")
                    return
                if isinstance(item, Duplicate):
                    self._duplicates_wanted += 1
                elif isinstance(item, Raw):
                    await self._send(ws, session, item.frame.encode())
                else:
                    await self._send(ws, session, session.send(item))
        finally:
            self._filling = False
            self._flush(ws, session, burst)

    async def _settle(self, ws: ClientConnection, session: MasterSession) -> None:
        """Before a deliberate close: let the exchange in flight finish, and answer the COMMANDs the endpoint sent.

        A pong comes after everything the endpoint sent before it read the ping, the
        acknowledgements of what is pending after everything it sent before it handled
        those notifications; the receiver then handles (answers) every message read,
        until none is left unread. Once the master sends its Close it may send nothing
        more, not even an answer. At most notification.sendTimeout for the pong, and as
        long again for the rest: a slow endpoint's notifications stay pending (resent
        after the reconnect).
        """
        limit = self.policy.ack_limit
        try:
            await asyncio.wait_for(await ws.ping(), limit)
        except (ConnectionClosed, TimeoutError):
            return  # gone, or not answering pings: close as it is
        if not isinstance(ws, MasterConnection):
            return
        deadline = time.monotonic() + limit
        self._settling = True
        try:
            while (ws.unread > 0 or session.pending) and ws.state is WsState.OPEN and time.monotonic() < deadline:
                self._wake.clear()
                timer = asyncio.get_running_loop().call_at(deadline, self._wake.set)
                try:
                    await self._wake.wait()  # the receiver wakes the sender once it has handled every message read
                finally:
                    timer.cancel()
        finally:
            self._settling = False

    def _take_ready(self, ws: ClientConnection, session: MasterSession, burst: list[bytes]) -> Any:
        """Register the notifications that may leave now into ``burst``; what stopped it.

        That is _STOP (the window is full, the endpoint is not reading, the connection
        is closing, the next one is not due yet, the source is waiting) or the next item
        when it is not a notification: the end (None) or a step for :meth:`_fill`. It
        never waits, so that the pacer can call it too (see :meth:`_pace`).
        """
        policy = self.policy
        transport = ws.transport
        self._not_due = self._source_waits = False
        while policy.window_open(len(session.pending)) and session.state is State.OPEN:
            if len(burst) >= MAX_BURST:
                self._flush(ws, session, burst)
            if transport.get_write_buffer_size() > BACKLOG_LIMIT:
                self.report.backpressure += 1
                return _STOP  # wait for the endpoint to read (or for the keep-alive to give up on it)
            if ws.state is not WsState.OPEN:
                return _STOP  # closing: a send would wait for the closing handshake; what is pending stays
            if policy.interval is not None and not policy.take_slot(time.monotonic()):
                self._not_due = True
                return _STOP
            item = self._held if self._held is not None else cast("_Source", self._source).next()  # set before sending starts
            self._held = None
            kind = type(item)
            if kind is Prepared or kind is dict:  # the common cases first
                burst.append(_register(session, item))
                continue
            if kind is Paced:
                due = self._start + item.at
                if due > time.monotonic():
                    self._held, self._not_due = item, True  # scenario time: not yet
                    policy.hold_until(due)
                    return _STOP
                burst.append(_register(session, item.message, due))
                continue
            if item is _NOT_YET:
                self._source_waits = True
                return _STOP  # an asynchronous source has nothing for now; it wakes the sender
            return item
        return _STOP

    async def _establish(self, session: MasterSession, *, first: bool) -> ClientConnection | None:
        """Open a connection (fail-over by priority, back-off between rounds) and complete CONNECT."""
        props = self.settings.properties
        rounds = Reconnection(self.targets, attempts=self.settings.reconnect_attempts, period=props.connection_period, rng=self.rng)
        while True:
            errors = []
            answered_wrongly = False
            for target in rounds.order():
                try:
                    ws = await self._open(target)
                except ConnectError as error:
                    errors.append(str(error))
                    continue
                self._current, self._ws, self._closing = target, ws, False
                self.report.url = target.url
                extensions = ws.protocol.extensions
                self.report.compression = extensions[0].name if extensions else None
                session.token = target.token
                outcome = await self._handshake(ws, session)
                if outcome == "open":
                    return ws
                if outcome == "refused":
                    await self._close()
                    return None
                errors.append(outcome)
                answered_wrongly = answered_wrongly or isinstance(outcome, _ContractFailure)
                await self._close()
            if first and answered_wrongly:
                # A WebSocket opened and CONNECT went wrong: the endpoint's failure, judged and reported, not a usage error.
                self.report.error = errors[0] if len(errors) == 1 else "; ".join(errors)
                return None
            if first:
                raise ConnectError(errors[0] if len(errors) == 1 else "; ".join(errors))
            self.report.reconnect_failures.extend(errors)
            delay = rounds.failed_round()
            if delay is None:
                return None
            await asyncio.sleep(delay)

    async def _handshake(self, ws: ClientConnection, session: MasterSession) -> str:
        """Send CONNECT and wait for its answer: "open", "refused", or why the connection is useless.

        A wrong answer (not a CONNECT RESPONSE to this CONNECT with a boolean valid) ends
        the wait at once, as a :class:`_ContractFailure` quoting the evidence; so does the
        connect time-out. COMMAND requests that come early are findings, and the wait goes on.
        """
        await self._send(ws, session, session.connect())

        async def answer() -> str:
            while True:
                frame = await ws.recv()
                if isinstance(ws, MasterConnection):
                    ws.unread -= 1
                self._record("in", session, frame)
                violations: list[Violation] = []
                for event in session.receive(frame):
                    if isinstance(event, Established):
                        self.report.established += 1
                        self.report.connect_latencies.append(event.latency)
                        return "open"
                    if isinstance(event, Refused):
                        self.report.refused = True
                        self.report.connect_latencies.append(event.latency)
                        return "refused"
                    if isinstance(event, Violation):
                        self.report.violations.append(event)
                        violations.append(event)
                wrong = _wrong_answer(violations, frame)
                if wrong is not None:
                    if wrong not in violations:
                        self.report.violations.append(wrong)
                    return _ContractFailure(f"CONNECT answered wrongly: {wrong.finding.pointer or '/'}: {wrong.finding.message}")

        try:
            return await asyncio.wait_for(answer(), self.settings.connect_timeout)
        except TimeoutError:
            why = f"no CONNECT RESPONSE within {self.settings.connect_timeout:g}s"
            self.report.violations.append(session.violation(RuleId.CONNECT_ANSWERED, "", why, ""))
            return _ContractFailure(why)
        except ConnectionClosed as closed:
            self.report.close_codes.append(_close_code(closed))
            return _ContractFailure(f"connection closed during CONNECT ({_close_code(closed)})")

    def _wake_receiver(self, ws: MasterConnection, session: MasterSession) -> None:
        """Something to read on ``ws`` (a message queued, or the connection's end): start its reader unless it runs."""
        receiver = self._receiver
        if receiver is None or receiver.done():
            self._receiver = asyncio.ensure_future(self._receive(ws, session, on_demand=True))

    async def _receive(self, ws: ClientConnection, session: MasterSession, *, on_demand: bool = False) -> None:
        """Read frames until the connection ends; wake the sender when it has something to do.

        ``on_demand`` (a MasterConnection, which wakes its reader): return as soon as
        nothing is left to read, the connection still open; the next message queued for
        ``recv``, or the connection's end, starts the reader again.
        """
        drained = False
        try:
            while True:
                if on_demand and not cast(MasterConnection, ws).unread and ws.protocol.state is not WsState.CLOSED:
                    drained = True
                    return
                try:
                    frame = await ws.recv()
                except ConnectionClosedOK:  # the end, as ``async for`` over the connection takes it
                    break
                if self.transcript is not None:
                    self.transcript.record("in", session.connection, frame)
                acks_only = True
                for event in session.receive(frame):
                    if self._finished and not isinstance(event, CommandRequested):
                        continue  # the report is made: only the endpoint's requests still get an answer
                    if isinstance(event, Acknowledged):
                        self._acked(event)
                        continue
                    acks_only = False
                    if isinstance(event, Violation):
                        self.report.violations.append(event)
                    elif isinstance(event, CommandRequested):
                        self.policy.command_seen(time.monotonic())
                        await self._answer(ws, session, event.message)
                    elif isinstance(event, CloseRequested):
                        self._closing = True
                        await ws.close(event.code, event.reason)
                if isinstance(ws, MasterConnection):
                    ws.unread -= 1
                    if not ws.unread and self._settling:
                        acks_only = False  # the sender waits for this before its deliberate close (see _settle)
                if not acks_only or self._sender_waits_for_acks(session):
                    self._wake.set()
        except ConnectionClosed as closed:
            if not self._finished:  # the master's own close at the end is no news for the report
                self._closed(closed)
        else:
            if not self._finished:
                self._closed(None)
        finally:
            if not drained:  # the connection's end (or the reader's failure): the sender's to see
                self._over = True
                self._wake.set()

    def _ack_taker(self, ws: MasterConnection, session: MasterSession) -> Callable[[bytes | bytearray | memoryview], bool]:
        """What takes acknowledgements off a :class:`MasterConnection` as they are parsed.

        Each is timed from when the bytes carrying it were read: acknowledgements read
        together wait for the master to settle those before them, and that wait is the
        master's, not the endpoint's (after a pause of the master's process, one read may
        hold a hundred). It sends nothing itself: paced notifications are the pacer's
        (:meth:`_pace`). (Sending from here, each send's system call would hold up the
        acks behind it in the same read, and cost more CPU at 15,000/s than one timer per
        notification.)
        """

        def take(data: bytes | bytearray | memoryview) -> bool:
            event = session.take_ack(data, ws.received_at)
            if event is None:
                return False  # anything else: the receiver task's
            self._acked(event)
            if self._sender_waits_for_acks(session):
                self._wake.set()
            return True

        return take

    def _pace(self, ws: MasterConnection, session: MasterSession) -> None:
        """Send what fell due: a callback of the event loop at a slot, so that paced notifications leave on time.

        A bare client awaits a sleep per frame; the sender task would be woken per slot
        the same way, which at 15,000/s cost about a tenth of a core more than this
        callback. What is not a notification (a step, the end) is left to the sender.
        """
        self._pacer = None
        if self._filling or ws.take_text is None:
            return  # the sender is at it, or the connection is over
        burst: list[bytes] = []
        item = self._take_ready(ws, session, burst)
        self._flush(ws, session, burst)
        if item is None:
            self._source_ended()
            self._wake.set()
        elif item is not _STOP:
            self._held = item
            self._wake.set()
        elif not self._arm_pacer(ws, session) and not self._source_waits:
            self._wake.set()  # stopped by the window, the endpoint not reading or a close: the sender's to see

    def _arm_pacer(self, ws: MasterConnection, session: MasterSession) -> bool:
        """Have :meth:`_pace` called at the next slot, if the last look found it not due yet; whether it will be."""
        if self._pacer is None and self._not_due and ws.take_text is not None:
            self._pacer = asyncio.get_running_loop().call_at(self.policy.next_slot, self._pace, ws, session)
        return self._pacer is not None

    def _source_ended(self) -> None:
        self.policy.source_ended(time.monotonic())

    def _sender_waits_for_acks(self, session: MasterSession) -> bool:
        # An acknowledgement wakes the sender only when it may be waiting for it: the window
        # was full, the run is draining, a duplicate waits for a first ack, a deliberate close waits. (In the open model,
        # a wake-up per ack would cost as much as the send itself.)
        return self.policy.wants_ack_wakeup(len(session.pending)) or bool(self._duplicates_wanted) or self._settling

    def _closed(self, closed: ConnectionClosed | None) -> None:
        code = _close_code(closed) if closed is not None else (self._ws.close_code if self._ws is not None else None)
        self.report.close_codes.append(code if code is not None else 1006)
        if closed is not None and closed.sent is not None and closed.sent.code == 1009 and self._session is not None:
            limit = f"{self.settings.max_size} bytes"
            self.report.violations.append(
                self._session.violation(RuleId.FRAMES_SIZE, "", f"the endpoint sent a frame over {limit}; the master closed (1009)", "")
            )
        if not self._closing:
            self.report.drops += 1  # the endpoint or the network ended it, not the master

    def _acked(self, event: Acknowledged) -> None:
        policy = self.policy
        policy.acknowledged(event.received_at)  # the read's time: no second look at the clock per ack
        report = self.report
        if event.duplicate:  # a deliberate duplicate's own acknowledgement: shown apart from the notifications'
            report.duplicates_acked.append(event.message_id)
            if policy.is_late(event.latency, event.overdue):
                report.late += 1
                report.late_acks.append((event.message_id, event.latency))
            if self.on_ack is not None:
                self.on_ack(event)  # Acknowledged.duplicate tells it apart
            return
        if self._record_acks:
            report.acks.append((event.message_id, event.latency, event.attempts))
        histogram = report.latency
        if histogram is not None:
            histogram.record_value(min(HIGHEST_LATENCY_US, max(1, int(event.latency * 1_000_000))))
        if policy.is_late(event.latency, event.overdue):
            # An acknowledgement that came only after a resend was late, whenever the resend's came.
            report.late += 1
            if self._record_acks or len(report.late_acks) < MAX_LATE_KEPT:
                report.late_acks.append((event.message_id, event.latency))
        if self._first_acked is None:
            self._first_acked = (event.message_id, event.frame)
        if self.on_ack is not None:
            self.on_ack(event)

    async def _answer(self, ws: ClientConnection, session: MasterSession, message: dict[str, Any]) -> None:
        if self.responder is None:
            return
        response = self.responder.answer(message)
        exchange = self.responder.exchanges[-1]
        if await self._send(ws, session, session.send_frame(response)):
            self.report.commands.append(exchange)  # only what was sent counts as answered
        else:
            self.report.unanswered.append(message)

    async def _send_duplicate(self, ws: ClientConnection, session: MasterSession) -> None:
        """Send the first acknowledged notification again, as a master does after a reconnect."""
        message_id, frame = cast("tuple[str, bytes]", self._first_acked)  # sent only once there is one
        self.report.duplicates_sent.append(message_id)
        await self._send(ws, session, session.send_duplicate(message_id, frame))

    async def _send(self, ws: ClientConnection, session: MasterSession, frame: bytes) -> bool:
        """Write ``frame`` if it may go; whether it was written."""
        if ws.state is not WsState.OPEN:
            return False  # closing: a send would wait for the closing handshake; the frame stays pending
        if ws.transport.get_write_buffer_size() > BACKLOG_LIMIT:
            self.report.backpressure += 1  # the endpoint is not reading: never block; the frame stays pending
            return False
        return await self._write(ws, session, frame)

    async def _write(self, ws: ClientConnection, session: MasterSession, frame: bytes) -> bool:
        """Write a frame that may go (the connection open, the endpoint reading); whether it was written."""
        if self.transcript is not None:
            self.transcript.record("out", session.connection, frame)
        try:
            await ws.send(frame, text=True)
        except ConnectionClosed:
            return False  # the receiver sees the close and the run reconnects; the frame stays pending
        return True

    def _flush(self, ws: ClientConnection, session: MasterSession, burst: list[bytes]) -> None:
        """Write a burst of notification frames with one system call, and empty it.

        Frames go through the connection's sans-I/O protocol (which masks and frames
        them, as ``send`` would) and leave together: one write per burst rather than one
        per frame, and no per-frame coroutine. Nothing here waits, so nothing can come
        between; on a connection that is no longer open the frames stay pending.
        """
        if not burst:
            return
        if self.transcript is not None:
            for frame in burst:
                self.transcript.record("out", session.connection, frame)
        protocol = ws.protocol
        if protocol.state is WsState.OPEN:
            send_text = protocol.send_text
            for frame in burst:
                send_text(frame)
            ws.transport.writelines(protocol.data_to_send())
        burst.clear()

    def _sleep(self, session: MasterSession, *deadlines_given: float | None) -> Awaitable[None]:
        """What to await for a wake-up or the earliest deadline (the caller cancels ``_timer`` after).

        A timer sets the wake-up: no task per sleep, as asyncio.wait_for would make, and no
        cancellation lost in it (it can swallow one before Python 3.12). The wake-up's own
        future is awaited, not a coroutine: a sleeping master holds no frame for it.
        """
        deadlines = [d for d in (session.next_resend(), *deadlines_given) if d is not None]
        if deadlines:
            # At least PACE_GRAIN: where the sender polls (see PACE_GRAIN), a wake-up per slot would cost more
            # than the sends; those that fell due meanwhile leave together, late by less than the grain.
            delay = max(PACE_GRAIN, min(deadlines) - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._wake.set)
        return self._wake.wait()

    def _policy(self) -> SendPolicy:
        settings = self.settings
        return SendPolicy(
            window=settings.window,
            rate=settings.rate,
            ack_limit=settings.ack_limit(),
            resend_interval=settings.properties.resend_interval,
            stall_timeout=settings.stall_timeout,
            drain_timeout=settings.drain_timeout,
            command_grace=settings.command_grace if self.responder is not None else 0.0,  # no COMMAND is answered anyway
            command_grace_cap=settings.command_grace_cap,
        )

    def _finish(self, session: MasterSession) -> Report:
        report = self.report
        report.lost = session.lost()
        report.sent = session.counters.sent
        report.acknowledged = session.counters.acknowledged
        report.resent = session.counters.resent
        report.duplicate_acks = session.counters.duplicate_acks
        report.copy_acks = session.counters.copy_acks
        report.ack_limit = self.policy.ack_limit
        report.resend_interval = self.settings.properties.resend_interval
        report.frames_in = session.counters.frames_in
        report.violations.extend(session.outgoing_violations)
        session.outgoing_violations.clear()
        report.elapsed = time.monotonic() - self._start
        return report

    async def _close(self, *, quick: bool = False) -> None:
        """Close the connection; ``quick`` (when interrupted) gives the closing handshake half a second."""
        self._closing = True
        if self._ws is None:
            return
        ws, self._ws = self._ws, None
        closing = asyncio.ensure_future(ws.close(1001 if quick else 1000))
        done, _ = await asyncio.wait({closing}, timeout=0.5 if quick else None)
        if not done or closing.exception() is not None:  # best effort: a dead peer must not stop the master
            closing.cancel()
            ws.transport.abort()
        if isinstance(ws, MasterConnection):
            ws.wake_receiver = None  # an aborted connection is lost later: no reader for it then
        receiver, self._receiver = self._receiver, None
        if receiver is not None:  # it ends with the connection; what it read meanwhile is in the report
            if not receiver.done():
                await asyncio.wait({receiver}, timeout=0.5)
                receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await receiver

    def _record(self, direction: str, session: MasterSession, frame: str | bytes) -> None:
        if self.transcript is not None:
            self.transcript.record(direction, session.connection, frame)

    # -- opening a connection -------------------------------------------------------------

    async def _open(self, target: Target) -> ClientConnection:
        """A WebSocket connection to ``target``, or :class:`ConnectError` saying in one line why not."""
        settings, props = self.settings, self.settings.properties
        url = target.url
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConnectError(f"not a WebSocket URL (ws:// or wss://): {url}")
        host = parts.hostname
        context = client_context(self.tls) if parts.scheme == "wss" else None
        try:
            ws = await connect(
                url,
                ssl=context,
                open_timeout=settings.connect_timeout,
                ping_interval=props.keepalive_interval,
                ping_timeout=props.keepalive_interval * props.max_pong_miss,
                close_timeout=min(2.0, props.send_timeout),  # a peer that cannot close within sendTimeout is gone
                max_size=settings.max_size,
                write_limit=WRITE_LIMIT,  # above BACKLOG_LIMIT, so that a send never waits for the peer to read
                compression=settings.compression,  # None unless asked: see Settings.compression
                proxy=None,
                create_connection=MasterConnection,
                user_agent_header="NetBackup-NBWSS-emulator",
            )
        except ssl.SSLCertVerificationError as error:
            raise ConnectError(
                f"TLS certificate verification failed for {host}: {error.verify_message} (use --cafile for a private CA)"
            ) from None
        except ssl.SSLError as error:
            raise ConnectError(f"TLS handshake with {host} failed: {error.reason or error}") from None
        except InvalidStatus as error:
            raise ConnectError(f"{url} answered HTTP {error.response.status_code} instead of upgrading to WebSocket") from None
        except InvalidURI:
            raise ConnectError(f"not a valid WebSocket URL: {url}") from None
        except socket.gaierror:
            raise ConnectError(f"cannot resolve host {host}") from None
        except ConnectionResetError:
            if parts.scheme == "wss":
                raise ConnectError(f"TLS handshake with {host} failed: connection reset (does it offer TLS 1.2 or later?)") from None
            raise ConnectError(f"connection reset by {host} during the WebSocket handshake") from None
        except ConnectionRefusedError:
            raise ConnectError(f"connection refused by {host}:{parts.port or (443 if parts.scheme == 'wss' else 80)}") from None
        except TimeoutError:
            raise ConnectError(f"no WebSocket handshake with {url} within {settings.connect_timeout:g}s") from None
        except (OSError, WebSocketException) as error:
            raise ConnectError(f"cannot connect to {url}: {error}") from None
        # websockets keeps the opening handshake's request and response for inspection; nothing here reads them
        # after it (what was negotiated is in ws.protocol): some 1.5 KiB a connection, of thousands in a load run.
        ws.request = None
        if ws.response is not None:
            ws.response.headers.clear()
        return ws


class _ContractFailure(str):
    """Why a handshake failed, when it is the endpoint's failure to judge (a wrong or missing answer to CONNECT)."""


def _wrong_answer(violations: list[Violation], frame: str | bytes) -> Violation | None:
    """The connect.answered violation for a frame that came instead of the CONNECT RESPONSE; None for an early COMMAND."""
    for violation in violations:
        if violation.rule == RuleId.CONNECT_ANSWERED:
            return violation
    if not violations or all(v.rule == RuleId.COMMAND_AFTER_CONNECT for v in violations):
        return None
    first, text = violations[0].finding, violations[0].frame
    kind = _kind(frame)
    if kind is not None and kind != ("CONNECT", "RESPONSE"):
        return Violation(
            RuleId.CONNECT_ANSWERED, Finding("/type", RuleId.CONNECT_ANSWERED, f"CONNECT answered by a {kind[0]} {kind[1]}"), text
        )
    return Violation(RuleId.CONNECT_ANSWERED, Finding(first.pointer, RuleId.CONNECT_ANSWERED, first.message), text)


def _kind(frame: str | bytes) -> tuple[str, str] | None:
    """(type, subType) of a frame, when it is a JSON object that has them."""
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    if isinstance(message, dict) and isinstance(message.get("type"), str) and isinstance(message.get("subType"), str):
        return message["type"], message["subType"]
    return None


_NOT_YET = NOT_YET  # what an asynchronous or pull source gives while it waits
_STOP = object()  # nothing more may leave for now


def _register(session: MasterSession, notification: dict[str, Any] | Prepared, due: float | None = None) -> bytes:
    """The frame of a notification, now pending in ``session``."""
    if isinstance(notification, Prepared):
        return session.send_prepared(notification.message_id, notification.frame, due=due)
    return session.send(notification, due=due)


class _Source:
    """Items of a synchronous or asynchronous iterable, taken without blocking the sender."""

    def __init__(self, items: Iterable[Any] | AsyncIterable[Any] | PullSource, wake: Signal) -> None:
        self._sync: Iterator[Any] | None = None
        self._pull: PullSource | None = None
        self._task: asyncio.Future[None] | None = None
        self._buffer: deque[Any] | None = None  # an asynchronous iterable's items as they come (created then)
        self._ended = False
        if isinstance(items, PullSource):
            self._pull = items
            items.bind(wake.set)
        elif isinstance(items, AsyncIterable):
            self._task = asyncio.ensure_future(self._feed(aiter(items), wake))
        else:
            self._sync = iter(items)

    async def _feed(self, items: AsyncIterator[Any], wake: Signal) -> None:
        try:
            async for item in items:
                if self._buffer is None:
                    self._buffer = deque()
                self._buffer.append(item)
                wake.set()
        finally:
            self._ended = True
            wake.set()

    def next(self) -> Any:
        """The next item, None at the end, or _NOT_YET."""
        if self._pull is not None:
            return self._pull.take()
        if self._sync is not None:
            return next(self._sync, None)
        if self._buffer:
            return self._buffer.popleft()
        if self._task is not None and self._task.done() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]
        return None if self._ended else _NOT_YET

    def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


def _close_code(closed: ConnectionClosed | None) -> int:
    if closed is None:
        return 1006
    frame = closed.rcvd or closed.sent
    return frame.code if frame is not None else 1006
