"""NBWSS's notification cycle: what leaves together, and when."""

from __future__ import annotations

import random

import pytest

from emulator.domain import Notification
from emulator.protocol.batching import Outbox
from emulator.schemas import validate


def job(at: float, job_id: int) -> Notification:
    item = {"scheduleType": "ST_FULL", "clientName": "c", "status": 0, "startTime": int(at), "state": "ACTIVE",
            "policyName": "p", "parentJobId": job_id, "jobId": job_id, "policyType": "STANDARD", "jobType": "BACKUP"}  # fmt: skip
    return Notification(at, "JOB", (item,))


def image(at: float, *operations: str) -> Notification:
    items = tuple(
        {"clientType": "STANDARD", "clientName": "c", "backupTime": 100, "createdTime": int(at), "operationId": op, "backupId": "c_100"}
        for op in operations
    )
    return Notification(at, "IMAGE", items)


def test_events_are_sent_at_the_next_cycle() -> None:
    outbox = Outbox(random.Random(1), cycle=5)
    assert [outbox.tick(t) for t in (100, 100.5, 104.9, 105, 105.1)] == [100, 105, 105, 105, 110]
    outbox.add([job(101, 1), job(106, 2)])
    messages = outbox.take()
    assert [(at, m["timeStamp"]) for at, m in messages] == [(105, 105), (110, 110)]


def test_one_notification_per_message_by_default_but_pairs_stay_together() -> None:
    outbox = Outbox(random.Random(1), cycle=5, max_items=1)
    outbox.add([job(101, 1), job(102, 2), image(103, "UPDATE", "NO_LOCAL_COPY_AVAILABLE")])
    messages = [m for _, m in outbox.take()]
    assert len(messages) == 3
    assert [len(g["data"]) for g in messages[2]["payload"]] == [2]
    assert all(validate(m) == [] for m in messages)


def test_a_cycle_batches_groups_by_object_up_to_max_items() -> None:
    """As in the seed capture: a JOB group and an IMAGE group in one message."""
    outbox = Outbox(random.Random(1), cycle=5, max_items=3)
    outbox.add([job(101, 1), image(102, "CREATE"), job(103, 2), job(104, 3), job(111, 4)])
    messages = [m for _, m in outbox.take()]
    assert [[(g["object"], len(g["data"])) for g in m["payload"]] for m in messages] == [
        [("JOB", 2), ("IMAGE", 1)],
        [("JOB", 1)],
        [("JOB", 1)],
    ]
    assert len({m["id"] for m in messages}) == 3


def test_take_keeps_cycles_that_may_still_grow() -> None:
    outbox = Outbox(random.Random(1), cycle=5, max_items=10)
    outbox.add([job(101, 1), job(107, 2)])
    assert [at for at, _ in outbox.take(before=110)] == [105]
    assert len(outbox) == 1
    outbox.add([job(108, 3)])
    (only,) = outbox.take()
    assert len(only[1]["payload"][0]["data"]) == 2


def test_no_cycle_sends_at_once() -> None:
    outbox = Outbox(random.Random(1), cycle=0)
    outbox.add([job(101.5, 1)])
    assert outbox.take()[0][0] == 101.5


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_items"):
        Outbox(random.Random(1), max_items=0)
