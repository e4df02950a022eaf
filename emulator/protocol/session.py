"""The master's side of one NBWSS connection, without I/O.

A driver feeds :meth:`MasterSession.receive` with each frame the endpoint sent
and writes out the frames the session returns; the session does the rest, the
same for every driver (asyncio, gevent, a test):

* the CONNECT handshake, and nothing else before ``valid: true``;
* correlation by ``id``: every NOTIFICATION REQUEST stays *pending* until its
  RESPONSE arrives, is sent again with the same ``id`` every
  ``resend_interval``, and survives a lost connection (it is resent after the
  next CONNECT);
* a notification sent N times may be acknowledged up to N times (once per
  copy: a slow endpoint answers the original and the resend); only more is a
  duplicate. Latency and lateness count from the *first* send;
* a deliberate duplicate (:meth:`MasterSession.send_duplicate`, the same id sent
  again after its acknowledgement) is settled by its *own* acknowledgement: the
  acknowledgements still owed to the original's copies come first, and it is
  counted apart from the notifications sent;
* checking every frame both ways against the schemas, and the rules of
  direction and correlation; what is wrong becomes a :class:`Violation`, never
  an exception.

Time comes from the ``clock`` callable, so tests drive it by hand.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from emulator.findings import Finding, RuleId
from emulator.protocol.codec import DecodeError, decode, encode
from emulator.protocol.messages import connect_request, new_id
from emulator.schemas import SchemaSet, default_schemas, fast_is_valid

#: How many acknowledged ids are remembered (the last half of them at least) to tell a duplicate ack (or the ack
#: of a resent copy) from an unknown one.
ACKED_MEMORY = 65_536
#: How much of an offending frame a violation quotes.
MAX_FRAME_TEXT = 2_000


def excerpt(data: str | bytes, limit: int = MAX_FRAME_TEXT) -> str:
    """A frame as a violation quotes it: text as it is, bytes as their repr, cut at ``limit`` characters."""
    text = data if isinstance(data, str) else repr(data[:limit])
    return text if len(text) <= limit else text[:limit] + f"…({len(text)} characters)"


class State(Enum):
    """Where the connection stands."""

    IDLE = "idle"  # transport not open yet
    CONNECTING = "connecting"  # CONNECT sent, no answer yet
    OPEN = "open"  # CONNECT answered valid: true
    REFUSED = "refused"  # CONNECT answered valid: false
    CLOSED = "closed"  # transport lost or closed


@dataclass(slots=True)
class Established:
    """The endpoint accepted the token."""

    latency: float


@dataclass(slots=True)
class Refused:
    """The endpoint answered CONNECT with ``valid: false``; the master closes, as NetBackup does."""

    latency: float


@dataclass(slots=True)
class Acknowledged:
    """A NOTIFICATION RESPONSE for a pending notification."""

    message_id: str
    latency: float  # since the notification's first send: a resend does not restart the clock
    attempts: int  # how many times the notification was sent
    frame: bytes  # what was sent, for a deliberate duplicate later
    overdue: bool = False  # it had to be resent for want of an acknowledgement
    since_due: float = 0.0  # since it was due to be sent (open model: includes any delay in sending it)
    received_at: float = 0.0  # when it was read (session clock): what the latencies count to
    duplicate: bool = False  # the acknowledgement of a deliberate duplicate, not of a notification


@dataclass(slots=True)
class CommandRequested:
    """The endpoint asks the master to run a REST call."""

    message: dict[str, Any]


@dataclass(slots=True)
class Violation:
    """A frame that breaks a rule; ``frame`` is the offending text (or a prefix of it)."""

    rule: str
    finding: Finding
    frame: str


@dataclass(slots=True)
class CloseRequested:
    """The master must close the connection (an undecodable frame, a refused token)."""

    code: int
    reason: str


# Events are plain slotted dataclasses, not frozen ones: one is built per acknowledgement on the hot path.
Event = Established | Refused | Acknowledged | CommandRequested | Violation | CloseRequested


@dataclass(slots=True)
class Pending:
    """A notification sent and not yet acknowledged."""

    message_id: str
    frame: bytes
    first_sent: float
    last_sent: float
    due: float  # when it should have left: its first send, or its slot in an open-model schedule
    attempts: int = 1
    overdue: bool = False  # resent because no acknowledgement came in time (not because of a reconnect)
    here: int = 1  # copies sent on the current connection (those on a lost one are never answered)
    earlier: int = 0  # acknowledgements still owed to earlier copies of the same id, which come before this one's
    duplicate: bool = False  # a deliberate duplicate of an acknowledged notification (Counters.duplicates)


@dataclass(slots=True)
class Counters:
    """What went over this session, for reports."""

    sent: int = 0  # notifications sent the first time (distinct ones: deliberate duplicates are apart)
    resent: int = 0  # sends of the same id again
    acknowledged: int = 0
    duplicate_acks: int = 0  # acknowledgements beyond one per copy sent (ack.once)
    copy_acks: int = 0  # acknowledgements of a resent copy after the first one: allowed, counted
    duplicates: int = 0  # deliberate duplicates sent (an acknowledged id again; not in sent)
    duplicates_acked: int = 0  # of those, acknowledged by their own acknowledgement (not in acknowledged)
    connects: int = 0
    frames_in: int = 0
    frames_out: int = 0


class MasterSession:
    """The NBWSS master's protocol state for a run, across reconnections."""

    def __init__(
        self,
        token: str,
        *,
        clock: Callable[[], float],
        resend_interval: float = 5.0,
        ignore_decoder: bool = False,
        validate_outgoing: bool = True,
        schemas: SchemaSet | None = None,
        rng: random.Random | None = None,
        max_frame_text: int = MAX_FRAME_TEXT,
        ack_memory: int = ACKED_MEMORY,
    ) -> None:
        self.token = token
        self.ack_memory = ack_memory  # acknowledged ids remembered (to tell a second acknowledgement from an unknown id)
        self.clock = clock
        self.resend_interval = resend_interval
        self.ignore_decoder = ignore_decoder
        self.validate_outgoing = validate_outgoing
        self.schemas = schemas or default_schemas()
        self.rng = rng or random.Random()
        self.max_frame_text = max_frame_text
        self.state = State.IDLE
        self.connection = 0
        # Both in order of the last send (or ack), oldest first, and taken from the front: an OrderedDict,
        # because a plain dict emptied from the front has to skip its deleted slots on every look at
        # its first item (33 µs per acknowledgement once 65,536 are remembered, against 0.6).
        self.pending: OrderedDict[str, Pending] = OrderedDict()
        self.counters = Counters()
        self.outgoing_violations: list[Violation] = []  # the master's own frames that break the schemas
        # id -> copies sent and not yet acknowledged, in two generations of ack_memory / 2: a full one is
        # dropped whole. (One dict emptied from the front as it is filled, or an OrderedDict, left the
        # allocator with tables it did not give back: a soak's memory rose by 10% between 100,000 and 500,000.)
        self._acked: dict[str, int] = {}
        self._acked_before: dict[str, int] = {}
        # id -> copies sent on this connection and not yet acknowledged, of acknowledged notifications: what a
        # deliberate duplicate's acknowledgement comes after. Only resent ones are here (few); emptied on a reconnect.
        self._owed_here: dict[str, int] = {}
        self._ack_schema = self.schemas.fast_validator("notification-response.json")
        self._notification_schema = self.schemas.fast_validator("notification-request.json")
        self._connect_id: str | None = None
        self._connect_sent = 0.0

    # -- connection life -------------------------------------------------------------

    def connect(self) -> bytes:
        """The CONNECT REQUEST to write first on a newly opened transport."""
        self.connection += 1
        self.counters.connects += 1
        self.state = State.CONNECTING
        self._connect_id = new_id(self.rng)
        self._connect_sent = self.clock()
        return self._outgoing(connect_request(self._connect_id, int(self._wall()), self.token))

    def connection_lost(self) -> None:
        """The transport is gone; pending notifications wait for the next connection."""
        self.state = State.CLOSED
        self._connect_id = None
        self._owed_here.clear()  # what was sent on the lost connection is never answered now
        for pending in self.pending.values():
            pending.earlier = 0

    def resend_all(self) -> list[bytes]:
        """After a new CONNECT succeeded: every pending notification again, same ids."""
        frames = [self._resend(pending) for pending in list(self.pending.values())]
        for pending in self.pending.values():
            pending.here = 1
        return frames

    # -- sending -----------------------------------------------------------------------

    def can_send(self) -> bool:
        return self.state is State.OPEN

    def send(self, message: dict[str, Any], *, due: float | None = None) -> bytes:
        """Register a NOTIFICATION REQUEST as pending and return its frame.

        ``due`` is when it should have been sent (on the session clock), for a sender
        that keeps a schedule: latency counted from then accounts for coordinated omission.
        """
        frame = self.send_prepared(message["id"], encode(message), due=due)
        if self.validate_outgoing and not fast_is_valid(self._notification_schema, message):
            self._record_outgoing(message, frame)
        return frame

    def send_prepared(self, message_id: str, frame: bytes, *, due: float | None = None) -> bytes:
        """:meth:`send` for a notification encoded and checked beforehand (see :mod:`emulator.load.streams`).

        A load run prepares its notifications before its clock starts, so that what it
        measures is the endpoint: the frame is the one that was checked, byte for byte.
        """
        if self.state is not State.OPEN:
            raise RuntimeError(f"cannot send a notification while {self.state.value}")
        self.counters.frames_out += 1
        now = self.clock()
        self.pending[message_id] = Pending(message_id, frame, now, now, now if due is None else min(due, now))
        self.counters.sent += 1
        return frame

    def send_duplicate(self, message_id: str, frame: bytes) -> bytes:
        """Register a deliberate duplicate of the acknowledged ``message_id`` (its ``frame``, again) and return it.

        The acknowledgements still owed to the original's copies (a slow endpoint
        answers every copy it received) are expected first: only the one after them
        settles the duplicate, so that an endpoint that never answers the duplicate is
        not taken for one that did, and the copies' answers are no ``ack.once``.
        """
        if self.state is not State.OPEN:
            raise RuntimeError(f"cannot send a notification while {self.state.value}")
        self._acked.pop(message_id, None)  # the duplicate's own pending entry counts its copies from now
        self._acked_before.pop(message_id, None)
        owed = self._owed_here.pop(message_id, 0)
        self.counters.frames_out += 1
        self.counters.duplicates += 1
        now = self.clock()
        self.pending[message_id] = Pending(message_id, frame, now, now, now, earlier=owed, duplicate=True)
        return frame

    def lost(self) -> list[str]:
        """The notifications still unacknowledged (deliberate duplicates are not notifications lost)."""
        return [message_id for message_id, pending in self.pending.items() if not pending.duplicate]

    def send_frame(self, message: dict[str, Any]) -> bytes:
        """Any other message the master sends (a COMMAND RESPONSE): checked and encoded."""
        return self._outgoing(message)

    def next_resend(self) -> float | None:
        """When the earliest pending notification is due to be sent again."""
        if not self.pending or self.state is not State.OPEN:
            return None
        return next(iter(self.pending.values())).last_sent + self.resend_interval  # the oldest send is first

    def resend_due(self) -> list[bytes]:
        """Frames of pending notifications unacknowledged for ``resend_interval``."""
        if self.state is not State.OPEN:
            return []
        deadline = self.clock() - self.resend_interval
        due = []
        for pending in self.pending.values():  # oldest send first: stop at the first that is not due
            if pending.last_sent > deadline:
                break
            due.append(pending)
        for pending in due:
            pending.overdue = True
            pending.here += 1
        return [self._resend(p) for p in due]

    def _resend(self, pending: Pending) -> bytes:
        pending.last_sent = self.clock()
        pending.attempts += 1
        self.counters.resent += 1
        self.counters.frames_out += 1
        # Pending notifications stay in the order of their last send, so that the next one due
        # for a resend is the first: a window of thousands costs no more than one of ten.
        self.pending.move_to_end(pending.message_id)
        return pending.frame

    def _outgoing(self, message: dict[str, Any]) -> bytes:
        self.counters.frames_out += 1
        frame = encode(message)
        if self.validate_outgoing:
            self._record_outgoing(message, frame)
        return frame

    def _record_outgoing(self, message: dict[str, Any], frame: bytes) -> None:
        for finding in self.schemas.validate(message):
            self.outgoing_violations.append(Violation("frames.schema.sent", finding, self._excerpt(frame.decode())))

    # -- receiving ---------------------------------------------------------------------

    def receive(self, data: str | bytes) -> list[Event]:
        """Events for one frame from the endpoint (text frames carry JSON; binary frames are a violation)."""
        self.counters.frames_in += 1
        if isinstance(data, bytes):
            return [self.violation("frames.text", "", "the endpoint sent a binary frame; NBWSS uses text frames", data)]
        try:
            message = decode(data)
        except DecodeError as error:
            events: list[Event] = [Violation(RuleId.FRAMES_JSON, error.finding, self._excerpt(data))]
            if not self.ignore_decoder:
                events.append(CloseRequested(1003, "undecodable message"))  # NBWSS closes on a decoder exception
            return events
        if self._is_ack(message):
            return self._acknowledgement(message, data)  # the common case: the same schema, less bookkeeping
        findings = self.schemas.validate(message)
        events = [Violation(RuleId.FRAMES_SCHEMA, finding, self._excerpt(data)) for finding in findings]
        if not isinstance(message, dict):
            return events
        kind = (message.get("type"), message.get("subType"))
        if kind == ("NOTIFICATION", "RESPONSE"):
            events.extend(self._acknowledgement(message, data))
        elif kind == ("CONNECT", "RESPONSE"):
            events.extend(self._connect_response(message, data))
        elif kind == ("COMMAND", "REQUEST"):
            if self.state is not State.OPEN:
                events.append(
                    self.violation(RuleId.COMMAND_AFTER_CONNECT, "", "COMMAND REQUEST before the connection was established", data)
                )
            elif not findings:
                events.append(CommandRequested(message))
        elif isinstance(kind[0], str) and isinstance(kind[1], str):
            events.append(self.violation(RuleId.FRAMES_DIRECTION, "/subType", f"an endpoint never sends {kind[0]} {kind[1]}", data))
        return events

    def take_ack(self, data: bytes | bytearray | memoryview, received_at: float | None = None) -> Acknowledged | None:
        """The acknowledgement in a text frame's UTF-8 ``data``, if that is all the frame is.

        That is: a valid NOTIFICATION RESPONSE for a pending notification, on an open
        connection. For anything else it returns None and leaves the session as it was,
        for :meth:`receive` to make of the frame what it is. A driver that sees frames
        as they are parsed settles the common case here, before any queue.

        ``received_at`` (on the session clock, default now) is when the bytes carrying
        the frame were read: the acknowledgement is timed from then, so that the
        driver's work on the acknowledgements read before it, in the same read, is not
        counted as the endpoint's latency.
        """
        if self.state is not State.OPEN:
            return None
        try:
            message = decode(data)
        except DecodeError:
            return None
        if not self._is_ack(message):
            return None
        pending = self.pending.get(message["id"])
        if pending is None or pending.earlier:
            return None  # a duplicate, an unknown id, an earlier copy's: receive() says which
        del self.pending[message["id"]]
        self.counters.frames_in += 1
        return self._settle(pending, received_at)

    def _is_ack(self, message: Any) -> bool:
        return (
            type(message) is dict
            and message.get("type") == "NOTIFICATION"
            and message.get("subType") == "RESPONSE"
            and fast_is_valid(self._ack_schema, message)
        )

    def _connect_response(self, message: dict[str, Any], data: str) -> list[Event]:
        if self.state is not State.CONNECTING or message.get("id") != self._connect_id:
            return [
                self.violation(RuleId.CONNECT_ANSWERED, "/id", f"CONNECT RESPONSE id {message.get('id')} answers no CONNECT REQUEST", data)
            ]
        valid = message.get("payload", {}).get("valid") if isinstance(message.get("payload"), dict) else None
        if not isinstance(valid, bool):
            return []  # the schema finding already says what is wrong; keep waiting
        latency = self.clock() - self._connect_sent
        if valid:
            self.state = State.OPEN
            return [Established(latency)]
        self.state = State.REFUSED
        return [Refused(latency), CloseRequested(1000, "token refused")]

    def _acknowledgement(self, message: dict[str, Any], data: str) -> list[Event]:
        message_id = message.get("id")
        if not isinstance(message_id, str):
            return []
        pending = self.pending.get(message_id)
        if pending is not None:
            if pending.earlier:  # owed to a copy sent before the deliberate duplicate: not the duplicate's
                pending.earlier -= 1
                self.counters.copy_acks += 1
                return []
            del self.pending[message_id]
            return [self._settle(pending)]
        generation = self._acked if message_id in self._acked else self._acked_before
        copies = generation.get(message_id)
        if copies:  # the ack of a copy (a resend) after the first: the endpoint answers what it received
            generation[message_id] = copies - 1
            self.counters.copy_acks += 1
            owed = self._owed_here.pop(message_id, 0)
            if owed > 1:
                self._owed_here[message_id] = owed - 1
            return []
        if copies is not None:
            self.counters.duplicate_acks += 1
            return [
                self.violation(
                    RuleId.ACK_ONCE, "/id", f"notification {message_id} acknowledged again (more acknowledgements than copies sent)", data
                )
            ]
        text = f"acknowledgement of {message_id}, which the master never sent"
        if self.counters.acknowledged > self.ack_memory // 2:
            text += f" (or acknowledged before the last {self.ack_memory // 2:,} it remembers)"
        return [self.violation(RuleId.ACK_KNOWN_ID, "/id", text, data)]

    def _settle(self, pending: Pending, received_at: float | None = None) -> Acknowledged:
        """``pending`` has its acknowledgement, received at ``received_at`` or now (and is out of ``self.pending``)."""
        if pending.duplicate:
            self.counters.duplicates_acked += 1
        else:
            self.counters.acknowledged += 1
        self._remember_ack(pending.message_id, pending.attempts - 1)
        if pending.here > 1:
            owed = self._owed_here
            if len(owed) >= ACKED_MEMORY:  # copies never answered: forget them rather than grow (a duplicate then waits less)
                owed.clear()
            owed[pending.message_id] = pending.here - 1
        now = self.clock() if received_at is None else received_at
        return Acknowledged(
            pending.message_id,
            now - pending.first_sent,
            pending.attempts,
            pending.frame,
            pending.overdue,
            now - pending.due,
            now,
            pending.duplicate,
        )

    def _remember_ack(self, message_id: str, copies: int) -> None:
        acked = self._acked
        acked[message_id] = copies
        if len(acked) >= self.ack_memory // 2:
            self._acked_before, self._acked = acked, {}

    # -- helpers -----------------------------------------------------------------------

    def violation(self, rule: str, pointer: str, text: str, data: str | bytes) -> Violation:
        """A violation of ``rule`` located at ``pointer``, with an excerpt of the frame."""
        return Violation(rule, Finding(pointer, rule, text), self._excerpt(data))

    def _excerpt(self, data: str | bytes) -> str:
        return excerpt(data, self.max_frame_text)

    @staticmethod
    def _wall() -> float:
        return time.time()  # envelope timestamps are wall-clock time even when the session clock is simulated
