"""The master's protocol core, driven by hand: no sockets, time is a number."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_response, notification_response
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
from emulator.scenario import Timeline, load


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def notifications() -> list[dict]:
    return [t.message for t in Timeline(load("smoke")).messages()][:5]


def opened(clock: Clock, **kwargs) -> MasterSession:
    session = MasterSession("secret-token", clock=clock, rng=random.Random(1), **kwargs)
    connect = json.loads(session.connect())
    assert connect["type"] == "CONNECT" and connect["payload"] == {"token": "secret-token"}
    clock.now += 0.01
    (event,) = session.receive(encode(connect_response(connect["id"], 1, True)).decode())
    assert isinstance(event, Established) and event.latency == pytest.approx(0.01)
    assert session.state is State.OPEN
    return session


def ack(message_id: str) -> str:
    return encode(notification_response(message_id, 1)).decode()


def test_nothing_is_sent_before_connect_is_accepted(clock, notifications) -> None:
    session = MasterSession("t", clock=clock)
    with pytest.raises(RuntimeError, match="idle"):
        session.send(notifications[0])
    session.connect()
    assert not session.can_send()
    with pytest.raises(RuntimeError, match="connecting"):
        session.send(notifications[0])


def test_refused_connect_asks_to_close(clock) -> None:
    session = MasterSession("t", clock=clock)
    connect = json.loads(session.connect())
    events = session.receive(encode(connect_response(connect["id"], 1, False)).decode())
    assert [type(e) for e in events] == [Refused, CloseRequested]
    assert session.state is State.REFUSED


def test_connect_response_with_another_id_is_a_violation(clock) -> None:
    session = MasterSession("t", clock=clock)
    session.connect()
    (event,) = session.receive(encode(connect_response("8E909940-AD50-4543-8AEA-B52003818925", 1, True)).decode())
    assert isinstance(event, Violation) and event.rule == "connect.answered"
    assert session.state is State.CONNECTING


def test_acknowledgement_is_correlated_and_timed(clock, notifications) -> None:
    session = opened(clock)
    session.send(notifications[0])
    clock.now += 0.25
    (event,) = session.receive(ack(notifications[0]["id"]))
    assert isinstance(event, Acknowledged)
    assert (event.message_id, event.attempts) == (notifications[0]["id"], 1)
    assert event.latency == pytest.approx(0.25)
    assert session.pending == {}


def test_a_notification_sent_late_counts_its_latency_from_when_it_was_due(clock, notifications) -> None:
    """The open model: what a slow endpoint delayed is not hidden by measuring from the late send."""
    session = opened(clock)
    session.send(notifications[0], due=clock.now - 0.5)
    clock.now += 0.25
    (event,) = session.receive(ack(notifications[0]["id"]))
    assert event.latency == pytest.approx(0.25) and event.since_due == pytest.approx(0.75)
    session.send(notifications[1], due=clock.now + 1.0)  # early (a scenario clock ahead): never negative
    clock.now += 0.1
    (event,) = session.receive(ack(notifications[1]["id"]))
    assert event.since_due == pytest.approx(0.1)


def test_a_notification_prepared_beforehand_is_tracked_like_any(clock, notifications) -> None:
    session = opened(clock, resend_interval=5)
    frame = encode(notifications[0])
    assert session.send_prepared(notifications[0]["id"], frame) is frame
    assert list(session.pending) == [notifications[0]["id"]]
    clock.now += 5
    assert session.resend_due() == [frame]
    (event,) = session.receive(ack(notifications[0]["id"]))
    assert isinstance(event, Acknowledged) and event.frame is frame and event.attempts == 2


def test_unacknowledged_notifications_are_resent_with_the_same_id(clock, notifications) -> None:
    session = opened(clock, resend_interval=5)
    frames = [session.send(m) for m in notifications[:2]]
    assert session.next_resend() == pytest.approx(clock.now + 5)
    clock.now += 4.9
    assert session.resend_due() == []
    clock.now += 0.2
    assert session.resend_due() == frames  # byte-identical: same id, same batch
    assert session.counters.resent == 2
    (event,) = session.receive(ack(notifications[0]["id"]))
    assert isinstance(event, Acknowledged) and event.attempts == 2


def test_pending_survive_a_lost_connection_and_are_resent_after_connect(clock, notifications) -> None:
    session = opened(clock)
    frames = [session.send(m) for m in notifications[:3]]
    session.receive(ack(notifications[0]["id"]))
    session.connection_lost()
    assert session.state is State.CLOSED and session.next_resend() is None
    connect = json.loads(session.connect())
    session.receive(encode(connect_response(connect["id"], 1, True)).decode())
    assert session.resend_all() == frames[1:]
    assert session.connection == 2


def test_duplicate_and_unknown_acknowledgements_are_violations(clock, notifications) -> None:
    session = opened(clock)
    session.send(notifications[0])
    session.receive(ack(notifications[0]["id"]))
    (duplicate,) = session.receive(ack(notifications[0]["id"]))
    assert isinstance(duplicate, Violation) and duplicate.rule == "ack.once"
    (unknown,) = session.receive(ack("8E909940-AD50-4543-8AEA-B52003818925"))
    assert isinstance(unknown, Violation) and unknown.rule == "ack.known-id"
    session.send_duplicate(notifications[0]["id"], encode(notifications[0]))  # a deliberate duplicate send
    assert isinstance(session.receive(ack(notifications[0]["id"]))[0], Acknowledged)


def test_the_memory_of_acknowledged_ids_is_bounded_and_says_so(clock, notifications) -> None:
    """With ack_memory 4, the last 2 to 4 acknowledged ids are remembered; a second ack of an older one says it may be that."""
    session = opened(clock, ack_memory=4)
    for message in notifications:
        session.send(message)
        session.receive(ack(message["id"]))
    assert len(session._acked) + len(session._acked_before) <= 4
    (recent,) = session.receive(ack(notifications[-1]["id"]))
    assert recent.rule == "ack.once"
    (old,) = session.receive(ack(notifications[0]["id"]))
    assert old.rule == "ack.known-id" and "or acknowledged before the last 2 it remembers" in old.finding.message


def test_undecodable_frames_close_unless_ignored(clock) -> None:
    strict = opened(clock)
    events = strict.receive("{not json")
    assert [type(e) for e in events] == [Violation, CloseRequested]
    assert events[0].rule == "frames.json" and events[1].code == 1003
    lenient = opened(clock, ignore_decoder=True)
    assert [type(e) for e in lenient.receive("{not json")] == [Violation]


def test_binary_frames_and_wrong_direction_are_violations(clock, notifications) -> None:
    session = opened(clock)
    (binary,) = session.receive(b'{"a": 1}')
    assert binary.rule == "frames.text"
    session.send(notifications[0])
    wrong = json.loads(ack(notifications[0]["id"]))
    wrong["subType"] = "REQUEST"
    rules = {e.rule for e in session.receive(json.dumps(wrong)) if isinstance(e, Violation)}
    assert rules == {"frames.schema", "frames.direction"}
    assert notifications[0]["id"] in session.pending  # not taken for an acknowledgement


def test_schema_violations_are_located(clock) -> None:
    session = opened(clock)
    events = session.receive(
        json.dumps({"version": "2.0", "id": "x", "type": "NOTIFICATION", "subType": "RESPONSE", "timeStamp": 1, "payload": {}})
    )
    pointers = {e.finding.pointer for e in events if isinstance(e, Violation)}
    assert {"/version", "/id"} <= pointers


def test_commands_are_passed_on_only_when_open_and_valid(clock) -> None:
    command = {
        "version": "1.0",
        "id": "A17B2C3D-0001-4E5F-9A8B-7C6D5E4F3A21",
        "type": "COMMAND",
        "subType": "REQUEST",
        "timeStamp": 1,
        "payload": {"uri": "/netbackup/admin/jobs", "method": "GET", "headers": {}},
    }
    early = MasterSession("t", clock=clock)
    early.connect()
    assert [e.rule for e in early.receive(json.dumps(command))] == ["command.after-connect"]
    session = opened(clock)
    (event,) = session.receive(json.dumps(command))
    assert isinstance(event, CommandRequested) and event.message["id"] == command["id"]


def test_the_masters_own_invalid_frames_are_findings(clock, notifications) -> None:
    session = opened(clock)
    broken = {**notifications[0], "payload": []}
    session.send(broken)
    assert [v.finding.pointer for v in session.outgoing_violations] == ["/payload"]


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["send", "ack", "tick", "resend", "reconnect"]), st.integers(0, 50)), max_size=60))
def test_resends_are_found_without_scanning_and_match_a_scan(steps) -> None:
    """Pending notifications are kept in order of last send: the first is the next resend, as a full scan says."""
    clock = Clock()
    session = opened(clock, resend_interval=5)
    messages = (t.message for t in Timeline(load("smoke"), seed=3).messages(repeat=True))
    for action, number in steps:
        if action == "send":
            session.send(next(messages))
        elif action == "ack" and session.pending:
            session.receive(ack(list(session.pending)[number % len(session.pending)]))
        elif action == "tick":
            clock.now += number / 10
        elif action == "resend":
            deadline = clock.now - 5
            expected = {p.message_id for p in session.pending.values() if p.last_sent <= deadline}
            frames = session.resend_due()
            assert len(frames) == len(expected) and all(session.pending[i].last_sent == clock.now for i in expected)
        else:
            session.connection_lost()
            connect = json.loads(session.connect())
            session.receive(encode(connect_response(connect["id"], 1, True)).decode())
            assert len(session.resend_all()) == len(session.pending)
        if session.pending:
            assert session.next_resend() == min(p.last_sent for p in session.pending.values()) + 5


FRAMES = st.sampled_from(["ack", "ack-again", "unknown-id", "invalid-ack", "command", "not-json", "connect-response"])


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(FRAMES, st.integers(0, 50)), max_size=40), closed_at=st.integers(0, 40))
def test_take_ack_settles_what_receive_would_and_leaves_the_rest_untouched(steps, closed_at) -> None:
    """A driver taking acks as frames are parsed (then receive() for the rest) ends where receive() alone does."""
    clock = Clock()
    sessions = [opened(clock), opened(clock)]  # the same rng seed: the same CONNECT ids
    for session in sessions:
        session.send_prepared("00000000-0000-4000-8000-000000000000", b"{}")  # ids made up: take_ack looks at ids only
        for number in range(1, 30):
            session.send_prepared(f"00000000-0000-4000-8000-{number:012d}", b"{}")
    ids = list(sessions[0].pending)
    outcomes: list[list[tuple]] = [[], []]
    for index, (kind, number) in enumerate(steps):
        if index == closed_at:
            for session in sessions:
                session.connection_lost()
        message_id = ids[number % len(ids)]
        frame = {
            "ack": ack(message_id),
            "ack-again": ack(ids[0]),
            "unknown-id": ack("11111111-1111-4111-8111-111111111111"),
            "invalid-ack": ack(message_id).replace('"payload":{}', '"payload":[]'),
            "command": json.dumps({**json.loads(ack(message_id)), "type": "COMMAND", "subType": "REQUEST"}),
            "not-json": "{not json",
            "connect-response": encode(connect_response(message_id, 1, True)).decode(),
        }[kind]
        for session, outcome in zip(sessions, outcomes, strict=True):
            taken = session.take_ack(frame.encode()) if session is sessions[1] else None
            events = [taken] if taken is not None else session.receive(frame)
            outcome.append(tuple((type(e).__name__, getattr(e, "message_id", None), getattr(e, "rule", None)) for e in events))
    assert outcomes[0] == outcomes[1]
    assert list(sessions[0].pending) == list(sessions[1].pending)
    assert sessions[0].counters == sessions[1].counters


def test_take_ack_times_an_acknowledgement_from_when_it_was_read(clock, notifications) -> None:
    session = opened(clock)
    session.send(notifications[0])
    read_at = clock.now + 0.25
    clock.now += 0.5  # settled later than read: the driver was busy with the frames read before it
    event = session.take_ack(ack(notifications[0]["id"]).encode(), read_at)
    assert isinstance(event, Acknowledged)
    assert event.latency == pytest.approx(0.25) and event.since_due == pytest.approx(0.25) and event.received_at == read_at


def test_take_ack_takes_only_a_valid_ack_of_a_pending_notification(clock, notifications) -> None:
    session = opened(clock)
    session.send(notifications[0])
    message_id = notifications[0]["id"]
    assert session.take_ack(b"{not json") is None
    assert session.take_ack(ack(message_id).replace('"payload":{}', '"payload":[]').encode()) is None
    assert message_id in session.pending  # nothing taken, nothing changed
    clock.now += 0.25
    event = session.take_ack(ack(message_id).encode())
    assert isinstance(event, Acknowledged) and event.message_id == message_id and event.latency == pytest.approx(0.25)
    assert session.take_ack(ack(message_id).encode()) is None  # a duplicate is receive()'s to report
    assert [e.rule for e in session.receive(ack(message_id))] == ["ack.once"]
