"""Every contract rule is shown to fail: a fault of the reference endpoint (or of the input) that breaks it,
seen by a real run over loopback with the evidence quoted; and the reference endpoint drops the sockets it should."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from emulator.contract import ContractOptions, ContractResult, replay, run_scenario
from emulator.contract.rules import FAILED, WARNING
from emulator.endpoint import Fault, ReferenceEndpoint
from emulator.findings import RuleId
from emulator.protocol.messages import connect_request, new_id
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Settings, Target
from emulator.scenario import Timeline, load

FAST = NbwssProperties(connection_period=0.5, resend_interval=0.3, send_timeout=0.2)


def settings() -> Settings:
    return Settings(properties=FAST, drain_timeout=1.0, connect_timeout=3.0)


async def against(fault: Fault | None, speed: float | None = None) -> ContractResult:
    async with ReferenceEndpoint(fault=fault, late_ack_delay=0.4, probe_commands=True) as endpoint:
        options = ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings(), speed=speed)
        return await run_scenario(load("smoke"), options)


async def invalid_notification() -> ContractResult:
    """The master's own frame broken: a notification the schemas refuse, sent as recorded."""
    message = next(iter(Timeline(load("smoke"), seed=1, start=1_700_000_000.0).notifications()))
    message = {**message, "payload": [{**message["payload"][0], "object": 42}]}
    async with ReferenceEndpoint() as endpoint:
        return await replay([message], ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings()))


def fault(f: Fault) -> Callable[[], Awaitable[ContractResult]]:
    return lambda: against(f)


#: Each rule, what breaks it, and words its evidence must quote.
BREAKERS: dict[RuleId, tuple[Callable[[], Awaitable[ContractResult]], str]] = {
    RuleId.CONNECT_ANSWERED: (fault(Fault.CONNECT_NOT_BOOLEAN), '/payload/valid: "true" is not of type "boolean"'),
    RuleId.CONNECT_ACCEPTS_TOKEN: (fault(Fault.REFUSE), "valid: false"),
    RuleId.CONNECT_REFUSES_WRONG_TOKEN: (fault(Fault.ACCEPT_ANY_TOKEN), "valid: true"),
    RuleId.ACK_EVERY_NOTIFICATION: (fault(Fault.NO_ACK), "never acknowledged"),
    RuleId.ACK_WITHIN_TIMEOUT: (fault(Fault.LATE_ACK), "after its first send (notification.sendTimeout is"),
    RuleId.ACK_ONCE: (fault(Fault.DUPLICATE_ACK), "acknowledged again"),
    RuleId.ACK_KNOWN_ID: (fault(Fault.WRONG_ID), "which the master never sent"),
    RuleId.ACK_DUPLICATE_ACCEPTED: (fault(Fault.DROP_DUPLICATES), "not acknowledged"),
    RuleId.ACK_PAYLOAD: (fault(Fault.ACK_EMPTY_PAYLOAD), '/payload: [] is not of type "object"'),
    RuleId.FRAMES_JSON: (fault(Fault.MALFORMED_JSON), "/"),
    RuleId.FRAMES_SCHEMA: (fault(Fault.WRONG_SUBTYPE), '/payload: {} is not of type "array"'),
    RuleId.FRAMES_DIRECTION: (fault(Fault.WRONG_SUBTYPE), "never sends NOTIFICATION REQUEST"),
    RuleId.FRAMES_SIZE: (fault(Fault.OVERSIZED_FRAME), "the master closed (1009)"),
    RuleId.CONNECTION_KEPT: (fault(Fault.CLOSE_MID_STREAM), "1011"),
    RuleId.RECONNECT_ACCEPTED: (fault(Fault.REFUSE_RECONNECT), "valid: false"),
    RuleId.COMMAND_AFTER_CONNECT: (fault(Fault.COMMAND_BEFORE_CONNECT), "COMMAND REQUEST before the connection was established"),
    # In scenario time (its 1.7 hours in about a second), so that the endpoint's login and jobs request come before the end.
    RuleId.COMMAND_WELL_FORMED: (lambda: against(Fault.BEARER_AUTHORIZATION, speed=5000), "without 'Bearer '"),
    RuleId.MASTER_FRAMES_VALID: (invalid_notification, "/payload/0/object"),
    RuleId.TRANSPORT_WSS: (fault(None), "ws://"),
}


def test_every_rule_has_a_breaker() -> None:
    assert set(BREAKERS) == set(RuleId)


@pytest.mark.parametrize("rule", list(RuleId), ids=[r.value for r in RuleId])
def test_every_rule_is_shown_to_fail_with_its_evidence(rule: RuleId) -> None:
    breaker, quoted = BREAKERS[rule]
    result = asyncio.run(breaker())
    verdict = next(r for r in result.results if r.rule.id is rule)
    assert verdict.status == (WARNING if rule.warning_only else FAILED), (verdict.status, verdict.summary)
    assert verdict.failures >= 1 and verdict.checked >= verdict.failures
    assert any(quoted in text for text in verdict.evidence), verdict.evidence
    assert result.passed is rule.warning_only  # a warning alone never fails a run


def test_drop_duplicates_breaks_the_duplicate_rule_and_loses_nothing_else() -> None:
    """The most common real endpoint bug: a de-duplicating store that never acknowledges a resent id."""
    result = asyncio.run(against(Fault.DROP_DUPLICATES))
    failed = {r.rule.id for r in result.results if r.status == FAILED}
    assert RuleId.ACK_DUPLICATE_ACCEPTED in failed
    assert failed <= {RuleId.ACK_DUPLICATE_ACCEPTED, RuleId.ACK_EVERY_NOTIFICATION}  # resends after the reconnect, if any


def test_the_reference_endpoint_closes_a_websocket_that_never_sends_connect() -> None:
    async def scenario() -> tuple[int | None, float]:
        async with ReferenceEndpoint(connect_timeout=0.3) as endpoint, connect(endpoint.url) as ws:
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            return ws.close_code, time.monotonic() - started

    code, waited = asyncio.run(scenario())
    assert code == 1008 and waited < 3


def test_the_reference_endpoint_closes_a_refused_master_at_once() -> None:
    async def scenario() -> tuple[dict[str, object], int | None]:
        async with ReferenceEndpoint() as endpoint, connect(endpoint.url) as ws:
            await ws.send(json.dumps(connect_request(new_id(random.Random()), int(time.time()), "not-the-token")))
            answer = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)  # closed by the endpoint, well before the connect time-out
            return answer, ws.close_code

    answer, code = asyncio.run(scenario())
    assert answer["payload"] == {"valid": False}
    assert code == 1008


def test_the_docs_list_every_rule_with_its_basis_and_every_fault() -> None:
    page = (Path(__file__).parents[2] / "docs" / "verdicts.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in page.splitlines() if line.startswith("| `")}
    for rule in RuleId:
        assert rule.value in rows, rule
        basis = rows[rule.value].split("|")[3]
        assert rule.info.basis.value in basis and ("warning only" in basis) is rule.warning_only, rule
    for f in Fault:
        assert f"`{f.value}`" in page, f
