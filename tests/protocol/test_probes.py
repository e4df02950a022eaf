"""The robustness probes' plans and judgement, without a socket: what each probe sends, and what its outcome means."""

from __future__ import annotations

import copy
import itertools
import random
import re
from typing import Any

import pytest

from emulator.contract import probes as driver
from emulator.exceptions import ScenarioError
from emulator.protocol.probes import (
    PROBE_NAMES,
    PROBES,
    ConnectionOutcome,
    ProbePlan,
    Tally,
    judge,
    plan,
)
from emulator.protocol.run import Duplicate
from emulator.scenario import Timeline, load

UUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")


@pytest.fixture(scope="module")
def pool() -> list[dict[str, Any]]:
    """Notifications of the smoke scenario, as the contract run makes its probes' pool."""
    return list(itertools.islice(Timeline(load("smoke"), seed=1, start=1_700_000_000.0).notifications(repeat=True), 600))


def notifications(planned: ProbePlan) -> list[dict[str, Any]]:
    return [step for c in planned.connections for step in c.steps if isinstance(step, dict)]


def items(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for group in message["payload"] for item in group["data"]]


def job_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for group in message["payload"] if group["object"] == "JOB" for item in group["data"]]


def without(message: dict[str, Any], *members: str) -> dict[str, Any]:
    """``message`` without its id and the given members, at every level (envelope, groups, items)."""
    clone = copy.deepcopy(message)
    clone.pop("id")
    for level in [clone, *clone["payload"], *items(clone)]:
        for member in members:
            level.pop(member, None)
    return clone


# -- the plans -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROBE_NAMES)
def test_every_plan_sends_fresh_unique_ids_and_leaves_the_pool_alone(pool: list[dict[str, Any]], name: str) -> None:
    before = copy.deepcopy(pool)
    planned = plan(name, pool, random.Random(7))
    ids = [m["id"] for m in notifications(planned)]
    assert ids and all(UUID.match(i) for i in ids), ids[:3]
    assert len(set(ids)) == len(ids)  # unique within the probe
    assert not set(ids) & {m["id"] for m in pool}  # fresh: none of the scenario's
    assert pool == before  # the probes alter copies
    assert planned.probe.name == name


def test_a_plan_is_reproducible_from_its_rng_and_differs_with_another(pool: list[dict[str, Any]]) -> None:
    assert plan("burst", pool, random.Random(3)) == plan("burst", pool, random.Random(3))
    assert notifications(plan("burst", pool, random.Random(3)))[0]["id"] != notifications(plan("burst", pool, random.Random(4)))[0]["id"]
    # Probes planned in a row from one rng never share an id.
    rng = random.Random(5)
    ids = [m["id"] for name in PROBE_NAMES for m in notifications(plan(name, pool, rng))]
    assert len(set(ids)) == len(ids)


def test_the_duplicate_sends_a_notification_then_sends_it_again(pool: list[dict[str, Any]]) -> None:
    planned = plan("duplicate", pool, random.Random(1))
    (connection,) = planned.connections
    first, again = connection.steps
    assert isinstance(first, dict) and without(first) == without(pool[0])
    assert isinstance(again, Duplicate)
    assert planned.sent == 2 and planned.tally is Tally.DUPLICATE and not planned.concurrent


def test_the_burst_is_500_notifications_with_a_window_as_wide(pool: list[dict[str, Any]]) -> None:
    planned = plan("burst", pool, random.Random(1))
    (connection,) = planned.connections
    assert len(connection.steps) == planned.sent == 500 and connection.window == 500
    assert [without(m) for m in notifications(planned)][:3] == [without(m) for m in pool[:3]]


def test_out_of_order_is_a_jobs_done_then_its_active(pool: list[dict[str, Any]]) -> None:
    planned = plan("out-of-order", pool, random.Random(1))
    done, active = notifications(planned)
    (done_item,) = job_items(done)
    (active_item,) = job_items(active)
    assert (done_item["state"], active_item["state"]) == ("DONE", "ACTIVE")
    assert done_item["jobId"] == active_item["jobId"]
    assert planned.connections[0].window is None  # the run's window


def test_unknown_members_are_in_the_envelope_the_groups_and_the_items(pool: list[dict[str, Any]]) -> None:
    sent = notifications(plan("unknown-fields", pool, random.Random(1)))
    assert len(sent) == 20
    for message, original in zip(sent, pool[:20], strict=True):
        assert message["futureEnvelopeMember"] == {"since": "11.x"}
        assert all(group["futureGroupMember"] is True for group in message["payload"])
        assert items(message) and all(item["futureItemMember"] == 1 for item in items(message))
        # Otherwise the scenario's own notification.
        assert without(message, "futureEnvelopeMember", "futureGroupMember", "futureItemMember") == without(original)


def test_clock_skew_puts_the_envelope_a_day_behind_and_a_day_ahead_in_turn(pool: list[dict[str, Any]]) -> None:
    sent = notifications(plan("clock-skew", pool, random.Random(1)))
    assert len(sent) == 20
    assert [m["timeStamp"] - o["timeStamp"] for m, o in zip(sent, pool[:20], strict=True)] == [-86_400, 86_400] * 10
    assert [without(m, "timeStamp") for m in sent] == [without(o, "timeStamp") for o in pool[:20]]


def test_the_large_batch_is_one_message_of_2000_job_items(pool: list[dict[str, Any]]) -> None:
    planned = plan("large-batch", pool, random.Random(1))
    (big,) = notifications(planned)
    (group,) = big["payload"]
    assert group["object"] == "JOB" and len(group["data"]) == 2000 and planned.sent == 1
    jobs = {item["jobId"] for message in pool for g in message["payload"] if g["object"] == "JOB" for item in g["data"]}
    assert {item["jobId"] for item in group["data"]} <= jobs


def test_the_storm_is_50_concurrent_connections_of_one_notification_each(pool: list[dict[str, Any]]) -> None:
    planned = plan("reconnect-storm", pool, random.Random(1))
    assert len(planned.connections) == 50 and planned.concurrent and planned.tally is Tally.PER_CONNECTION
    assert all(len(c.steps) == 1 and isinstance(c.steps[0], dict) for c in planned.connections)
    assert len({c.seed for c in planned.connections}) == 50  # each master its own CONNECT ids
    assert planned.sent == 50


def test_a_pool_without_what_a_probe_is_made_of_is_a_clear_error(pool: list[dict[str, Any]]) -> None:
    images = [m for m in pool if all(g["object"] != "JOB" for g in m["payload"])]
    assert images, "the smoke scenario reports images too"
    with pytest.raises(ScenarioError, match="no job reported both ACTIVE and DONE"):
        plan("out-of-order", images, random.Random(1))
    with pytest.raises(ScenarioError, match="no job to batch"):
        plan("large-batch", images, random.Random(1))
    with pytest.raises(ScenarioError, match="no notification"):
        plan("burst", [], random.Random(1))


# -- the judgement -------------------------------------------------------------------------


def ids(planned: ProbePlan) -> list[str]:
    return [m["id"] for m in notifications(planned)]


def test_each_notification_acknowledged_on_a_kept_connection_is_handled(pool: list[dict[str, Any]]) -> None:
    planned = plan("out-of-order", pool, random.Random(1))
    done, active = ids(planned)
    result = judge(planned, [ConnectionOutcome(acknowledged=[done, active, active])])  # a second ack counts once
    assert (result.handled, result.sent, result.acknowledged, result.kept_connection) == (True, 2, 2, True)
    assert result.detail == "2 of 2 acknowledged"

    missing = judge(planned, [ConnectionOutcome(acknowledged=[active])])
    assert (missing.handled, missing.acknowledged, missing.detail) == (False, 1, "1 of 2 acknowledged")


def test_a_dropped_connection_is_not_handled_and_says_its_close_codes_and_error(pool: list[dict[str, Any]]) -> None:
    planned = plan("large-batch", pool, random.Random(1))
    (big,) = ids(planned)
    dropped = ConnectionOutcome(acknowledged=[big], drops=1, close_codes=[1009], error="stalled")
    result = judge(planned, [dropped])
    assert not result.handled and not result.kept_connection and result.acknowledged == 1
    assert result.detail == "1 of 1 acknowledged; connection dropped (close codes 1009); stalled"


def test_the_duplicate_is_handled_when_acknowledged_like_its_original(pool: list[dict[str, Any]]) -> None:
    planned = plan("duplicate", pool, random.Random(1))
    (original,) = ids(planned)
    both = judge(planned, [ConnectionOutcome(acknowledged=[original, original], duplicates_sent=[original])])
    assert (both.handled, both.sent, both.acknowledged, both.detail) == (True, 2, 2, "the duplicate was acknowledged")
    apart = judge(planned, [ConnectionOutcome(acknowledged=[original], duplicates_sent=[original], duplicates_acked=[original])])
    assert (apart.handled, apart.acknowledged) == (True, 2)  # the duplicate's own acknowledgement, as the master reports it

    once = judge(planned, [ConnectionOutcome(acknowledged=[original], duplicates_sent=[original])])
    assert (once.handled, once.acknowledged, once.detail) == (False, 1, "the duplicate was not acknowledged")
    never_sent_again = judge(planned, [ConnectionOutcome(acknowledged=[original])])  # only acks of the duplicated id count
    assert (never_sent_again.handled, never_sent_again.acknowledged) == (False, 0)
    dropped = judge(planned, [ConnectionOutcome(acknowledged=[original, original], duplicates_sent=[original], drops=1)])
    assert not dropped.handled and not dropped.kept_connection


def test_a_probe_without_a_connection_sent_nothing(pool: list[dict[str, Any]]) -> None:
    result = judge(plan("burst", pool, random.Random(1)), [ConnectionOutcome(failure="connection refused")])
    assert (result.handled, result.sent, result.acknowledged, result.kept_connection) == (False, 0, 0, False)
    assert result.detail == "no connection: connection refused"
    assert result.status == "not run" and result.as_dict()["kept_connection"] is None  # neither "broke it" nor "kept"


def test_a_storm_in_which_no_connection_was_made_was_not_run(pool: list[dict[str, Any]]) -> None:
    planned = plan("reconnect-storm", pool, random.Random(1))
    none = judge(planned, [ConnectionOutcome(failure="CONNECT answered wrongly")] * len(planned.connections))
    assert (none.status, none.handled, none.detail) == ("not run", False, "no connection: CONNECT answered wrongly")
    some = judge(planned, [ConnectionOutcome(failure="connection reset"), *[ConnectionOutcome()] * (len(planned.connections) - 1)])
    assert some.status == "broke it"  # one of 50 refused under the storm: that is the storm's finding


def test_the_storm_counts_connections_and_acknowledgements(pool: list[dict[str, Any]]) -> None:
    planned = plan("reconnect-storm", pool, random.Random(1))
    every = [ConnectionOutcome(acknowledged=[message_id]) for message_id in ids(planned)]
    result = judge(planned, every)
    assert (result.handled, result.sent, result.acknowledged) == (True, 50, 50)
    assert result.detail == "50 of 50 connected, 50 acknowledged"

    refused = [*every[:49], ConnectionOutcome(failure="HTTP 503 on the upgrade")]
    result = judge(planned, refused)
    assert (result.handled, result.kept_connection, result.acknowledged) == (False, False, 49)
    assert result.detail == "49 of 50 connected, 49 acknowledged; HTTP 503 on the upgrade"

    dropped = [*every[:49], ConnectionOutcome(acknowledged=[ids(planned)[49]], drops=1)]
    assert not judge(planned, dropped).handled


def test_judging_wants_one_outcome_per_connection(pool: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="1 outcomes for 50 connections"):
        judge(plan("reconnect-storm", pool, random.Random(1)), [ConnectionOutcome()])


def test_results_keep_their_json_keys_and_the_catalogue_is_where_it_was(pool: list[dict[str, Any]]) -> None:
    result = judge(plan("out-of-order", pool, random.Random(1)), [ConnectionOutcome()])
    assert result.as_dict() == {
        "name": "out-of-order",
        "description": "a job's DONE before its ACTIVE, as NetBackup's polling can report them",
        "status": "broke it",
        "handled": False,
        "sent": 2,
        "acknowledged": 0,
        "kept_connection": True,
        "detail": "0 of 2 acknowledged",
    }
    assert driver.PROBES is PROBES and driver.PROBE_NAMES == PROBE_NAMES
    assert driver.ProbeResult is type(result)
