"""Resends and their acknowledgements: a slow but correct endpoint is not a wrong one.

NetBackup resends an unacknowledged notification (same id) every
notification.scheduledRate; an endpoint slower than that receives two copies and,
acknowledging what it receives, answers both. One ack per copy is correct; the
latency of the notification counts from its first send.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from emulator.cli import main
from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_response, notification_response
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Duplicate, Paced, Settings, Target
from emulator.protocol.session import Acknowledged, MasterSession, State, Violation
from emulator.scenario import Timeline, load
from emulator.wire.master import EmulatedMaster


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ack(message_id: str) -> str:
    return encode(notification_response(message_id, 1)).decode()


def opened(clock: Clock, **kwargs: Any) -> MasterSession:
    session = MasterSession("t", clock=clock, rng=random.Random(1), resend_interval=5.0, **kwargs)
    connect = json.loads(session.connect())
    session.receive(encode(connect_response(connect["id"], 1, True)).decode())
    assert session.state is State.OPEN
    return session


def notifications(count: int) -> list[dict]:
    return [t.message for t in Timeline(load("smoke")).messages()][:count]


def test_each_copy_may_be_acknowledged_once_and_latency_counts_from_the_first_send() -> None:
    clock = Clock()
    session = opened(clock)
    (message,) = notifications(1)
    session.send(message)
    clock.now += 5.0
    session.resend_due()
    clock.now += 5.0
    session.resend_due()  # three copies sent
    clock.now += 1.0  # the endpoint takes 6 s: the first copy's ack comes 11 s after the first send
    (first,) = session.receive(ack(message["id"]))
    assert isinstance(first, Acknowledged) and first.attempts == 3
    assert first.latency == pytest.approx(11.0)  # from the first send, not the last (1 s)
    assert session.receive(ack(message["id"])) == []  # the second copy's
    assert session.receive(ack(message["id"])) == []  # the third copy's
    assert session.counters.copy_acks == 2 and session.counters.duplicate_acks == 0
    (extra,) = session.receive(ack(message["id"]))  # a fourth ack of three copies is one too many
    assert isinstance(extra, Violation) and extra.rule == "ack.once"
    assert session.counters.duplicate_acks == 1


def test_a_notification_sent_once_and_acknowledged_twice_is_still_a_duplicate() -> None:
    clock = Clock()
    session = opened(clock)
    (message,) = notifications(1)
    session.send(message)
    (first,) = session.receive(ack(message["id"]))
    assert isinstance(first, Acknowledged)
    (again,) = session.receive(ack(message["id"]))
    assert isinstance(again, Violation) and again.rule == "ack.once"


@asynccontextmanager
async def slow_endpoint(delay: float) -> AsyncIterator[tuple[str, list[str]]]:
    """A correct endpoint that acknowledges every copy it receives, ``delay`` seconds after it came."""
    received: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        async def answer_later(message_id: str) -> None:
            await asyncio.sleep(delay)
            await ws.send(ack(message_id))

        tasks = set()
        async for frame in ws:
            message = json.loads(frame)
            if message["type"] == "CONNECT":
                await ws.send(encode(connect_response(message["id"], 1, True)).decode())
            elif message["type"] == "NOTIFICATION":
                received.append(message["id"])
                task = asyncio.ensure_future(answer_later(message["id"]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}", received


def test_an_endpoint_slower_than_the_resend_interval_gets_no_false_duplicate_findings() -> None:
    resend, delay = 0.2, 0.5  # every notification is sent two or three times before its first ack

    async def scenario() -> tuple:
        async with slow_endpoint(delay) as (url, received):
            properties = NbwssProperties(resend_interval=resend, send_timeout=1.0, connection_period=0.5)
            master = EmulatedMaster([Target(url, "t")], Settings(properties=properties, drain_timeout=2.0))
            steps = [Paced(0.25 * i, message) for i, message in enumerate(notifications(6))]
            report = await master.run(steps)
            return report, list(received)

    report, received = asyncio.run(scenario())
    assert not report.lost and len(report.acks) == 6
    assert [(v.rule, v.finding.message) for v in report.violations] == []  # no ack.once for the copies' acks
    assert report.resent > 0 and len(received) == report.sent + report.resent  # the report shows the resends
    assert report.copy_acks > 0  # acks of the copies came while the run went on: counted, not judged
    assert all(latency >= delay for _, latency, _ in report.acks)  # from the first send, not the resend
    assert all(attempts >= 2 for _, _, attempts in report.acks)


def test_acknowledged_ids_are_remembered_for_half_the_memory_at_least() -> None:
    clock = Clock()
    session = opened(clock, ack_memory=8)
    ids = []
    for index in range(20):
        message = dict(notifications(1)[0], id=f"00000000-0000-4000-8000-{index:012d}")
        session.send(message)
        (event,) = session.receive(ack(message["id"]))
        assert isinstance(event, Acknowledged)
        ids.append(message["id"])
    for message_id in ids[-4:]:  # the last half of the memory: a second ack is a duplicate
        (again,) = session.receive(ack(message_id))
        assert again.rule == "ack.once"
    (forgotten,) = session.receive(ack(ids[0]))  # long forgotten: an id the master does not know
    assert forgotten.rule == "ack.known-id"


def test_a_deliberate_duplicate_is_settled_by_its_own_acknowledgement_after_the_copies() -> None:
    clock = Clock()
    session = opened(clock)
    (message,) = notifications(1)
    frame = session.send(message)
    clock.now += 5.0
    session.resend_due()  # two copies out; the slow endpoint will answer both
    clock.now += 1.0
    (first,) = session.receive(ack(message["id"]))  # the first copy's
    assert isinstance(first, Acknowledged) and not first.duplicate
    session.send_duplicate(message["id"], frame)  # the resent copy's ack is still to come
    assert session.receive(ack(message["id"])) == []  # the resent copy's: not the duplicate's, and no ack.once
    assert session.lost() == [] and list(session.pending) == [message["id"]]  # the duplicate still waits for its own
    (own,) = session.receive(ack(message["id"]))
    assert isinstance(own, Acknowledged) and own.duplicate
    assert session.counters.duplicate_acks == 0 and session.counters.copy_acks == 1
    (extra,) = session.receive(ack(message["id"]))  # one more than the three copies sent
    assert isinstance(extra, Violation) and extra.rule == "ack.once"


def test_a_deliberate_duplicate_is_counted_apart_from_the_notifications_sent() -> None:
    clock = Clock()
    session = opened(clock)
    first, second = notifications(2)
    frame = session.send(first)
    session.send(second)
    session.receive(ack(first["id"]))
    session.send_duplicate(first["id"], frame)
    assert session.counters.sent == 2 and session.counters.duplicates == 1
    assert session.lost() == [second["id"]]  # the unanswered duplicate is not a notification lost
    session.receive(ack(second["id"]))
    session.receive(ack(first["id"]))
    assert session.counters.acknowledged == 2 and session.counters.duplicates_acked == 1


def test_a_slow_correct_endpoint_gets_no_false_ack_once_from_the_deliberate_duplicate() -> None:
    resend, delay = 0.2, 0.3  # the notification is sent twice before its first ack; each copy is answered

    async def scenario() -> tuple:
        async with slow_endpoint(delay) as (url, received):
            properties = NbwssProperties(resend_interval=resend, send_timeout=1.0, connection_period=0.5)
            master = EmulatedMaster([Target(url, "t")], Settings(properties=properties, drain_timeout=3.0))
            first, second = notifications(2)
            # The run goes on (the second notification at 0.8 s) while the acknowledgements of the copies come.
            report = await master.run([first, Duplicate(), Paced(0.8, second)])
            return report, list(received)

    report, received = asyncio.run(scenario())
    assert [(v.rule, v.finding.message) for v in report.violations] == []
    assert report.duplicate_acks == 0 and report.duplicates_sent == report.duplicates_acked != []
    assert report.sent == 2 and report.acknowledged == 2 and not report.lost  # the duplicate is apart
    assert len(report.acks) == 2
    assert received.count(report.duplicates_sent[0]) >= 3  # the original, its resend, the duplicate (and its resend)


def test_an_acknowledgement_after_a_resend_within_send_timeout_says_why_it_is_late() -> None:
    async def scenario() -> Any:
        async with slow_endpoint(0.3) as (url, _):
            properties = NbwssProperties(resend_interval=0.2, send_timeout=1.0, connection_period=0.5)
            master = EmulatedMaster([Target(url, "t")], Settings(properties=properties, drain_timeout=2.0))
            return await master.run(notifications(3))

    report = asyncio.run(scenario())  # resent at 0.2 s, answered at 0.3 s: within the 1 s sendTimeout, after the resend
    assert report.late == 3
    text = report.late_text(*report.late_acks[0])
    assert re.fullmatch(
        r"notification \S+ acknowledged \d+ ms after its first send, only after the master had resent it: "
        r"notification.scheduledRate \(200 ms\) is shorter than notification.sendTimeout \(1000 ms\), "
        r"and the master waits no longer than that for an acknowledgement",
        text,
    ), text


def test_a_resend_interval_shorter_than_the_ack_timeout_is_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    (warning,) = NbwssProperties(resend_interval=1.0, send_timeout=2.0).warnings()
    assert "notification.scheduledRate (--resend-interval) is 1 s, shorter than notification.sendTimeout" in warning
    assert NbwssProperties(resend_interval=5.0, send_timeout=2.0).warnings() == []
    code = main(["run", "--no-probes", "--resend-interval", "0.1", "--ack-timeout", "0.5", "--quiet"])
    assert code == 0
    assert "warning: notification.scheduledRate (--resend-interval) is 0.1 s, shorter than" in capsys.readouterr().err
