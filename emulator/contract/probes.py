"""Robustness probes over the network: the asyncio driver of :mod:`emulator.protocol.probes`.

What each probe sends and how its outcome is judged is decided in the sans-I/O core
(:func:`emulator.protocol.probes.plan`, :func:`emulator.protocol.probes.judge`); this
module opens the connections a plan asks for (one after the other, or all at once for
the reconnect storm), sends the planned steps with an :class:`EmulatedMaster`, and
hands what each connection did to the judge. The probe messages are sent unchecked
by the schemas (unknown members, skewed clocks are the point).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

from emulator.protocol.probes import (
    PROBE_NAMES,
    PROBES,
    ConnectionOutcome,
    ConnectionPlan,
    Probe,
    ProbePlan,
    ProbeResult,
    judge,
    not_run,
    plan,
)
from emulator.protocol.run import Report, Settings, Target
from emulator.wire.master import ConnectError, EmulatedMaster
from emulator.wire.tls import TlsOptions

__all__ = ["PROBES", "PROBE_NAMES", "Probe", "ProbeResult", "connected_first", "not_run_probes", "run_probes", "try_wrong_token"]


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
    """Run the named probes one after the other (in catalogue order) with messages made from ``pool``."""
    rng = random.Random(seed)
    unchecked = dataclasses.replace(settings, validate=False)
    results = []
    for probe in PROBES:
        if probe.name in names:
            planned = plan(probe, pool, rng)
            results.append(judge(planned, await _run_plan(planned, targets, unchecked, tls)))
    return results


def not_run_probes(names: list[str], why: str) -> list[ProbeResult]:
    """The named probes, in catalogue order, each "not run" for ``why``."""
    return [not_run(probe, why) for probe in PROBES if probe.name in names]


async def _run_plan(planned: ProbePlan, targets: list[Target], settings: Settings, tls: TlsOptions) -> list[ConnectionOutcome]:
    """What each of the plan's connections did, in the plan's order."""
    if planned.concurrent:
        # As 50 masters would: one failing (refused, reset) does not stop the others; each says what came of it.
        done = await asyncio.gather(*(_connection(c, targets, settings, tls) for c in planned.connections), return_exceptions=True)
        return [o if isinstance(o, ConnectionOutcome) else ConnectionOutcome(failure=str(o) or type(o).__name__) for o in done]
    return [await _connection(c, targets, settings, tls) for c in planned.connections]


async def _connection(connection: ConnectionPlan, targets: list[Target], settings: Settings, tls: TlsOptions) -> ConnectionOutcome:
    """Run one planned connection; a connection that cannot be made is an outcome, never an exception."""
    if connection.window is not None:
        settings = dataclasses.replace(settings, window=connection.window)
    master = EmulatedMaster(targets, settings, tls=tls, rng=random.Random(connection.seed))
    try:
        report = await master.run(connection.steps)
    except ConnectError as error:
        return ConnectionOutcome(failure=str(error))
    if not report.established:  # a WebSocket opened, CONNECT went wrong (answered wrongly, refused): nothing was sent
        return ConnectionOutcome(failure=report.error or ("CONNECT answered valid: false" if report.refused else "no CONNECT accepted"))
    return _outcome(report)


def _outcome(report: Report) -> ConnectionOutcome:
    """The neutral record the judge reads, from a master's report."""
    return ConnectionOutcome(
        acknowledged=[message_id for message_id, _, _ in report.acks],
        duplicates_sent=list(report.duplicates_sent),
        duplicates_acked=list(report.duplicates_acked),
        drops=report.drops,
        close_codes=list(report.close_codes),
        error=report.error,
    )
