"""Robustness probes: what real masters do that an endpoint must survive.

Each probe runs on connections of its own after the scenario and says whether
the endpoint handled it (acknowledged everything, kept the connection) or what
broke. The probe messages are made from the scenario's own notifications, with
fresh ids, and are deliberately not held to the schemas (unknown members, skewed
clocks are the point).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from emulator.protocol.messages import new_id
from emulator.wire.master import ConnectError, Duplicate, EmulatedMaster, Report, Settings, Target
from emulator.wire.tls import TlsOptions


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


@dataclass(slots=True)
class ProbeResult:
    probe: Probe
    handled: bool
    sent: int
    acknowledged: int
    kept_connection: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.probe.name,
            "description": self.probe.description,
            "handled": self.handled,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "kept_connection": self.kept_connection,
            "detail": self.detail,
        }


async def try_wrong_token(target: Target, settings: Settings, tls: TlsOptions, token: str) -> tuple[bool | None, str]:
    """CONNECT to ``target`` with a wrong ``token``: (valid, how); a connection that cannot be made says so, never raises."""
    try:
        return await EmulatedMaster([target], settings, tls=tls).try_token(token)
    except ConnectError as error:
        return None, f"no connection for the wrong-token CONNECT: {error}"


def connected_first(targets: list[Target], connected: Target) -> list[Target]:
    """``targets`` with ``connected`` preferred: probes go where the run was, and fail over from there."""
    first = min((t.priority for t in targets), default=0) - 1
    return [dataclasses.replace(t, priority=first) if t == connected else t for t in targets]


async def run_probes(
    names: list[str],
    targets: list[Target],
    settings: Settings,
    tls: TlsOptions,
    pool: list[dict[str, Any]],
    seed: int = 0,
) -> list[ProbeResult]:
    """Run the named probes one after the other with messages made from ``pool``."""
    rng = random.Random(seed)
    unchecked = dataclasses.replace(settings, validate=False)

    def fresh(message: dict[str, Any]) -> dict[str, Any]:
        clone = copy.deepcopy(message)
        clone["id"] = new_id(rng)
        return clone

    async def one(messages: list[Any], window: int | None = None) -> Report:
        return await EmulatedMaster(
            targets,
            unchecked if window is None else dataclasses.replace(unchecked, window=window),
            tls=tls,
            rng=random.Random(rng.getrandbits(32)),
        ).run(messages)

    async def duplicate() -> tuple[int, int, bool, str]:
        report = await one([fresh(pool[0]), Duplicate()])
        acked = sum(1 for message_id, _, _ in report.acks if message_id in report.duplicates_sent)
        return 2, acked, report.drops == 0, "the duplicate was acknowledged" if acked == 2 else "the duplicate was not acknowledged"

    async def burst() -> tuple[int, int, bool, str]:
        messages = [fresh(pool[i % len(pool)]) for i in range(500)]
        return _outcome(await one(messages, window=500), len(messages))

    async def out_of_order() -> tuple[int, int, bool, str]:
        done, active = _job_pair(pool)
        return _outcome(await one([fresh(done), fresh(active)]), 2)

    async def unknown_fields() -> tuple[int, int, bool, str]:
        messages = []
        for message in pool[:20]:
            clone = fresh(message)
            clone["futureEnvelopeMember"] = {"since": "11.x"}
            for group in clone["payload"]:
                group["futureGroupMember"] = True
                for item in group["data"]:
                    item["futureItemMember"] = 1
            messages.append(clone)
        return _outcome(await one(messages), len(messages))

    async def clock_skew() -> tuple[int, int, bool, str]:
        messages = []
        for index, message in enumerate(pool[:20]):
            clone = fresh(message)
            clone["timeStamp"] += 86_400 if index % 2 else -86_400
            messages.append(clone)
        return _outcome(await one(messages), len(messages))

    async def large_batch() -> tuple[int, int, bool, str]:
        jobs = [item for message in pool for group in message["payload"] if group["object"] == "JOB" for item in group["data"]]
        big = fresh(pool[0])
        big["payload"] = [{"notificationType": "INFO", "object": "JOB", "data": [copy.deepcopy(jobs[i % len(jobs)]) for i in range(2000)]}]
        return _outcome(await one([big]), 1)

    async def reconnect_storm() -> tuple[int, int, bool, str]:
        runs = [one([fresh(pool[i % len(pool)])]) for i in range(50)]
        reports = await asyncio.gather(*runs, return_exceptions=True)
        failed = [r for r in reports if not isinstance(r, Report)]
        acked = sum(len(r.acks) for r in reports if isinstance(r, Report))
        kept = not failed and all(r.drops == 0 for r in reports if isinstance(r, Report))
        detail = f"{50 - len(failed)} of 50 connected, {acked} acknowledged"
        if failed:
            detail += f"; {failed[0]}"
        return 50, acked, kept, detail

    builders: dict[str, Callable[[], Coroutine[Any, Any, tuple[int, int, bool, str]]]] = {
        "duplicate": duplicate,
        "burst": burst,
        "out-of-order": out_of_order,
        "unknown-fields": unknown_fields,
        "clock-skew": clock_skew,
        "large-batch": large_batch,
        "reconnect-storm": reconnect_storm,
    }
    results = []
    for probe in PROBES:
        if probe.name not in names:
            continue
        try:
            sent, acked, kept, detail = await builders[probe.name]()
        except ConnectError as error:
            sent, acked, kept, detail = 0, 0, False, f"no connection: {error}"
        results.append(ProbeResult(probe, acked == sent and kept, sent, acked, kept, detail))
    return results


def _outcome(report: Report, sent: int) -> tuple[int, int, bool, str]:
    acked = len({message_id for message_id, _, _ in report.acks})
    kept = report.drops == 0
    detail = f"{acked} of {sent} acknowledged"
    if not kept:
        detail += f"; connection dropped (close codes {', '.join(map(str, report.close_codes))})"
    if report.error:
        detail += f"; {report.error}"
    return sent, acked, kept, detail


def _job_pair(pool: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
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
    raise ValueError("the scenario has no job reported both ACTIVE and DONE")
