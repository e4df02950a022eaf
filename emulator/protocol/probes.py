"""Robustness probes without I/O: the catalogue, what each probe sends, and the judgement of what came of it.

A probe is what real masters do that an endpoint must survive (a duplicate after a
reconnect, a burst, a newer NetBackup's unknown members...). :func:`plan` says, for
one probe, which connections to open and what to send on each, with messages made
from the scenario's own notifications and fresh ids; :func:`judge` turns what each
connection did (:class:`ConnectionOutcome`, filled by the driver) into a
:class:`ProbeResult`. Neither opens a socket or reads a clock: the asyncio driver
(:mod:`emulator.contract.probes`) runs the connections.

The messages are deliberately not held to the schemas (unknown members, skewed
clocks are the point): the driver sends them unchecked.
"""

from __future__ import annotations

import copy
import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from emulator.exceptions import ScenarioError
from emulator.protocol.messages import new_id
from emulator.protocol.run import Duplicate


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    description: str


PROBES: tuple[Probe, ...] = (
    Probe("duplicate", "a notification sent again with the same id after its acknowledgement, as after a reconnect"),
    Probe("burst", "500 notifications at once, without waiting for acknowledgements"),
    Probe("out-of-order", "a job's DONE before its ACTIVE, as NetBackup's polling can report them"),
    Probe("unknown-fields", "unknown members in the envelope, the groups and the items (a newer NetBackup)"),
    Probe("clock-skew", "envelope and data times a day apart (the master's clock is off)"),
    Probe("large-batch", "one message batching 2,000 items (about 800 KB)"),
    Probe("reconnect-storm", "50 masters connecting at once, one notification each"),
)
PROBE_NAMES = tuple(p.name for p in PROBES)

BURST = 500  # notifications in the burst, the window as wide
LARGE_BATCH_ITEMS = 2000
STORM = 50  # masters connecting at once
SAMPLE = 20  # notifications altered by unknown-fields and clock-skew
SKEW = 86_400  # seconds: a day


HANDLED, BROKE_IT, NOT_RUN = "handled", "broke it", "not run"


@dataclass(slots=True)
class ProbeResult:
    """What came of a probe. ``ran`` False: it could not be tried (no connection, nothing sent); then it neither broke
    the endpoint nor kept a connection, and is not handled either (a verdict cannot claim what was not tried)."""

    probe: Probe
    handled: bool
    sent: int
    acknowledged: int
    kept_connection: bool
    detail: str
    ran: bool = True

    @property
    def status(self) -> str:
        """handled, broke it, or not run."""
        return NOT_RUN if not self.ran else HANDLED if self.handled else BROKE_IT

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.probe.name,
            "description": self.probe.description,
            "status": self.status,
            "handled": self.handled,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "kept_connection": self.kept_connection if self.ran else None,
            "detail": self.detail,
        }


def not_run(probe: Probe, why: str) -> ProbeResult:
    """A probe that could not be tried, and why (e.g. the run's CONNECT failed)."""
    return ProbeResult(probe, False, 0, 0, False, why, ran=False)


Step = dict[str, Any] | Duplicate  # a NOTIFICATION REQUEST to send, or a duplicate of an acknowledged one


class Tally(enum.Enum):
    """How a probe's outcome is counted."""

    EACH = "each"  # every notification acknowledged (once or more), the connection kept
    DUPLICATE = "duplicate"  # the duplicate acknowledged like its original
    PER_CONNECTION = "per-connection"  # every connection made, kept, and its notifications acknowledged


@dataclass(frozen=True, slots=True)
class ConnectionPlan:
    """One connection of a probe: what to send on it, in order."""

    steps: tuple[Step, ...]
    seed: int  # the connection's own randomness (the CONNECT id and the like), drawn from the plan's
    window: int | None = None  # pending notifications at most; None: the run's window


@dataclass(frozen=True, slots=True)
class ProbePlan:
    """A probe's connections; ``concurrent``: opened all at once, else one after the other."""

    probe: Probe
    connections: tuple[ConnectionPlan, ...]
    tally: Tally = Tally.EACH
    concurrent: bool = False

    @property
    def sent(self) -> int:
        """How many notifications the probe sends, duplicates included."""
        return sum(len(c.steps) for c in self.connections)


@dataclass(slots=True)
class ConnectionOutcome:
    """What one connection of a probe did, as the driver saw it (from the master's report)."""

    acknowledged: list[str] = field(default_factory=list)  # ids, once per acknowledgement received
    duplicates_sent: list[str] = field(default_factory=list)  # ids sent again by Duplicate steps
    duplicates_acked: list[str] = field(default_factory=list)  # of those, acknowledged by their own acknowledgement
    drops: int = 0  # connections lost without the master closing them
    close_codes: list[int] = field(default_factory=list)
    error: str | None = None  # what went wrong during the run, if anything
    failure: str | None = None  # the connection could not be made (or CONNECT failed): why (then nothing else counts)


def plan(probe: Probe | str, pool: Sequence[dict[str, Any]], rng: random.Random) -> ProbePlan:
    """What ``probe`` sends, made from ``pool`` (the scenario's NOTIFICATION REQUESTs), ids and seeds from ``rng``.

    The pool is not changed. Raises :class:`ScenarioError` when the pool lacks what the
    probe is made of (no notifications at all; no job reported both ACTIVE and DONE; no job).
    """
    chosen = probe if isinstance(probe, Probe) else _probe(probe)
    if not pool:
        raise ScenarioError(f"probe {chosen.name}: the scenario sent no notification to make it of")
    return _PLANNERS[chosen.name](chosen, pool, rng)


def judge(plan: ProbePlan, outcomes: Sequence[ConnectionOutcome]) -> ProbeResult:
    """The probe's result from what each of its connections did (``outcomes`` in the plan's order, one each)."""
    if len(outcomes) != len(plan.connections):
        raise ValueError(f"probe {plan.probe.name}: {len(outcomes)} outcomes for {len(plan.connections)} connections")
    if plan.tally is Tally.PER_CONNECTION:
        return _judge_per_connection(plan, outcomes)
    failed = next((o.failure for o in outcomes if o.failure is not None), None)
    if failed is not None:
        return not_run(plan.probe, f"no connection: {failed}")
    if plan.tally is Tally.DUPLICATE:
        return _judge_duplicate(plan, outcomes)
    acked = len({message_id for o in outcomes for message_id in o.acknowledged})
    kept = all(o.drops == 0 for o in outcomes)
    detail = f"{acked} of {plan.sent} acknowledged"
    codes = [code for o in outcomes for code in o.close_codes]
    if not kept:
        detail += f"; connection dropped (close codes {', '.join(map(str, codes))})"
    for error in (o.error for o in outcomes if o.error):
        detail += f"; {error}"
    return _result(plan, acked, kept, detail)


def _judge_duplicate(plan: ProbePlan, outcomes: Sequence[ConnectionOutcome]) -> ProbeResult:
    # The original's acknowledgement and the duplicate's own, both counted against the duplicated id.
    acked = sum(1 for o in outcomes for message_id in o.acknowledged if message_id in o.duplicates_sent)
    acked += sum(1 for o in outcomes for message_id in o.duplicates_acked if message_id in o.duplicates_sent)
    kept = all(o.drops == 0 for o in outcomes)
    detail = "the duplicate was acknowledged" if acked == plan.sent else "the duplicate was not acknowledged"
    return _result(plan, acked, kept, detail)


def _judge_per_connection(plan: ProbePlan, outcomes: Sequence[ConnectionOutcome]) -> ProbeResult:
    total = len(plan.connections)
    failures = [o.failure for o in outcomes if o.failure is not None]
    made = [o for o in outcomes if o.failure is None]
    if not made:  # none connected: the storm was not what failed (a CONNECT that fails once fails 50 times)
        return not_run(plan.probe, f"no connection: {failures[0]}")
    acked = sum(len(o.acknowledged) for o in made)
    kept = not failures and all(o.drops == 0 for o in made)
    detail = f"{len(made)} of {total} connected, {acked} acknowledged"
    if failures:
        detail += f"; {failures[0]}"
    return _result(plan, acked, kept, detail)


def _result(plan: ProbePlan, acked: int, kept: bool, detail: str) -> ProbeResult:
    return ProbeResult(plan.probe, acked == plan.sent and kept, plan.sent, acked, kept, detail)


# -- the plans ----------------------------------------------------------------------------


def _fresh(message: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of ``message`` with an id of its own: the pool stays as it was, the endpoint sees a new notification."""
    clone = copy.deepcopy(message)
    clone["id"] = new_id(rng)
    return clone


def _one(probe: Probe, steps: list[Step], rng: random.Random, *, window: int | None = None) -> ProbePlan:
    return ProbePlan(probe, (ConnectionPlan(tuple(steps), rng.getrandbits(32), window),))


def _duplicate(probe: Probe, pool: Sequence[dict[str, Any]], rng: random.Random) -> ProbePlan:
    return ProbePlan(probe, (ConnectionPlan((_fresh(pool[0], rng), Duplicate()), rng.getrandbits(32)),), Tally.DUPLICATE)


def _burst(probe: Probe, pool: Sequence[dict[str, Any]], rng: random.Random) -> ProbePlan:
    return _one(probe, [_fresh(pool[i % len(pool)], rng) for i in range(BURST)], rng, window=BURST)


def _out_of_order(probe: Probe, pool: Sequence[dict[str, Any]], rng: random.Random) -> ProbePlan:
    done, active = _job_pair(pool)
    return _one(probe, [_fresh(done, rng), _fresh(active, rng)], rng)


def _unknown_fields(probe: Probe, pool: Sequence[dict[str, Any]], rng: random.Random) -> ProbePlan:
    messages: list[Step] = []
    for message in pool[:SAMPLE]:
        clone = _fresh(message, rng)
        clone["futureEnvelopeMember"] = {"since": "11.x"}
        for group in clone["payload"]:
            group["futureGroupMember"] = True
            for item in group["data"]:
                item["futureItemMember"] = 1
        messages.append(clone)
    return _one(probe, messages, rng)


def _clock_skew(probe: Probe, pool: Sequence[dict[str, Any]], rng: random.Random) -> ProbePlan:
    messages: list[Step] = []
    for index, message in enumerate(pool[:SAMPLE]):
        clone = _fresh(message, rng)
        clone["timeStamp"] += SKEW if index % 2 else -SKEW  # a day ahead, a day behind, in turn
        messages.append(clone)
    return _one(probe, messages, rng)


def _large_batch(probe: Probe, pool: Sequence[dict[str, Any]], rng: random.Random) -> ProbePlan:
    jobs = [item for message in pool for group in message["payload"] if group["object"] == "JOB" for item in group["data"]]
    if not jobs:
        raise ScenarioError(f"probe {probe.name}: the scenario reports no job to batch")
    big = _fresh(pool[0], rng)
    big["payload"] = [
        {"notificationType": "INFO", "object": "JOB", "data": [copy.deepcopy(jobs[i % len(jobs)]) for i in range(LARGE_BATCH_ITEMS)]}
    ]
    return _one(probe, [big], rng)


def _reconnect_storm(probe: Probe, pool: Sequence[dict[str, Any]], rng: random.Random) -> ProbePlan:
    messages = [_fresh(pool[i % len(pool)], rng) for i in range(STORM)]
    connections = tuple(ConnectionPlan((message,), rng.getrandbits(32)) for message in messages)
    return ProbePlan(probe, connections, Tally.PER_CONNECTION, concurrent=True)


def _job_pair(pool: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A DONE notification and the ACTIVE one of the same job, from the pool."""
    states: dict[int, dict[str, dict[str, Any]]] = {}
    for message in pool:
        for group in message["payload"]:
            if group["object"] == "JOB" and len(group["data"]) == 1:
                item = group["data"][0]
                states.setdefault(item["jobId"], {})[item["state"]] = message
    for by_state in states.values():
        if "DONE" in by_state and "ACTIVE" in by_state:
            return by_state["DONE"], by_state["ACTIVE"]
    raise ScenarioError("probe out-of-order: the scenario has no job reported both ACTIVE and DONE")


def _probe(name: str) -> Probe:
    for probe in PROBES:
        if probe.name == name:
            return probe
    raise ValueError(f"unknown probe {name!r}; known: {', '.join(PROBE_NAMES)}")


_PLANNERS: dict[str, Callable[[Probe, Sequence[dict[str, Any]], random.Random], ProbePlan]] = {
    "duplicate": _duplicate,
    "burst": _burst,
    "out-of-order": _out_of_order,
    "unknown-fields": _unknown_fields,
    "clock-skew": _clock_skew,
    "large-batch": _large_batch,
    "reconnect-storm": _reconnect_storm,
}
