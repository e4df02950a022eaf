"""Verdicts on endpoints written the way cloud teams write them: what a cross-stack check found wrong, fixed.

Each test reproduces one defect over loopback, with the reference endpoint (and one of
its faults) or a small websockets endpoint of its own.
"""

from __future__ import annotations

import asyncio
import json
import random
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from rich.console import Console
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from emulator.cli import main
from emulator.contract import ContractOptions, ContractResult, run_scenario
from emulator.contract.probes import run_probes
from emulator.contract.report import print_summary
from emulator.contract.rules import RunFacts, evaluate
from emulator.endpoint import Fault, ReferenceEndpoint
from emulator.findings import RuleId
from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_response, new_id, notification_response
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Report, Settings, Target
from emulator.scenario import Timeline, load
from emulator.wire.tls import TlsOptions

FAST = NbwssProperties(connection_period=0.5, resend_interval=0.3, send_timeout=0.2)
LOGIN = json.dumps({"domainType": "vx", "domainName": "nbu", "userName": "cloud", "password": "secret"})
FAST_ARGS = ["--resend-interval", "0.3", "--ack-timeout", "0.2", "--reconnect-period", "0.5"]


def settings() -> Settings:
    return Settings(properties=FAST, drain_timeout=1.0, connect_timeout=3.0)


def against(fault: Fault | None, **options: Any) -> Any:
    async def scenario() -> Any:
        async with ReferenceEndpoint(fault=fault, probe_commands=True) as endpoint:
            chosen = ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings(), **options)
            return await run_scenario(load("smoke"), chosen)

    return asyncio.run(scenario())


def printed(result: Any) -> str:
    console = Console(record=True, width=300)
    print_summary(result, console)
    return console.export_text()


# -- D11: the deliberate duplicate is not a notification sent ---------------------------------


def test_the_deliberate_duplicate_is_counted_apart_from_the_notifications_sent() -> None:
    result = against(Fault.DROP_DUPLICATES)  # a de-duplicating endpoint: it never answers the duplicate
    stats = result.stats()
    rules = {r.rule.id: r for r in result.results}
    # The smoke primary's 22 notifications (a resend after the reconnect may be one the endpoint saw before: lost).
    assert stats["sent"] == stats["acknowledged"] + stats["lost"] == 22
    assert result.report.duplicates_sent[0] not in result.report.lost  # the duplicate is not a notification lost
    assert (stats["duplicates_sent"], stats["duplicates_acknowledged"]) == (1, 0)
    assert rules[RuleId.ACK_DUPLICATE_ACCEPTED].status == "failed"
    text = printed(result)
    assert f"22 sent, {stats['acknowledged']} acknowledged" in text
    assert "deliberate duplicates (an acknowledged id sent again): 1 sent, 0 acknowledged" in text


# -- D10: probes that could not run say so ----------------------------------------------------


def test_probes_after_a_failed_connect_are_not_run_never_broke_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    code, out, err = cli(capsys, "run", "--fault", "connect-not-boolean", "--probe", "all", "--json", str(path), *FAST_ARGS)
    assert code == 1, out + err
    probes = json.loads(path.read_text())["probes"]
    assert len(probes) == 7
    assert {p["status"] for p in probes} == {"not run"}, probes
    assert all(p["kept_connection"] is None and p["sent"] == 0 for p in probes)
    assert "broke it" not in out and "not run" in out


def test_a_probe_whose_own_connect_fails_is_not_run() -> None:
    async def scenario() -> Any:
        async with ReferenceEndpoint(fault=Fault.CONNECT_NOT_BOOLEAN) as endpoint:
            pool = [t.message for t in Timeline(load("smoke")).messages()]
            target = Target(endpoint.url, endpoint.token)
            return await run_probes(["burst", "reconnect-storm"], [target], settings(), TlsOptions(), pool)

    results = asyncio.run(scenario())
    assert [(r.status, r.sent) for r in results] == [("not run", 0), ("not run", 0)], [r.detail for r in results]
    assert all("CONNECT answered wrongly" in r.detail for r in results)


# -- D12: the deliberate reconnect answers what the endpoint asked before it --------------------


def login_endpoint(api: str, answered: list[dict[str, Any]], asked: list[str]) -> Any:
    """A handler as a Node ws endpoint has it: CONNECT answered, then at once a login COMMAND through the master in ``api``."""

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            message = json.loads(frame)
            if message["type"] == "CONNECT":
                valid = message["payload"]["token"] == "t"
                await ws.send(encode(connect_response(message["id"], 1, valid)).decode())
                if not valid:
                    continue
                login = new_id(random.Random())
                asked.append(login)
                headers = {"Content-Type": f"application/vnd.netbackup+json;version={api}"}
                payload = {"uri": "/netbackup/login", "method": "POST", "headers": headers, "parameters": LOGIN}
                request = {"version": "1.0", "id": login, "type": "COMMAND", "subType": "REQUEST", "timeStamp": 1, "payload": payload}
                await ws.send(json.dumps(request))
            elif message["type"] == "COMMAND":
                answered.append(message)
            elif message["type"] == "NOTIFICATION":
                await ws.send(encode(notification_response(message["id"], 1)).decode())

    return handler


def run_against(handler: Any, **options: Any) -> Any:
    async def scenario() -> Any:
        async with serve(handler, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/nbwss"
            return await run_scenario(load("smoke"), ContractOptions(targets=[Target(url, "t")], settings=settings(), **options))

    return asyncio.run(scenario())


def test_the_deliberate_reconnect_answers_a_login_sent_right_after_connect() -> None:
    """As a Node ws endpoint does: CONNECT answered, then at once a login COMMAND through the master."""
    answered: list[dict[str, Any]] = []
    asked: list[str] = []
    result = run_against(login_endpoint("1.0", answered, asked))
    assert result.report.deliberate_drops == 1 and result.report.established == 2
    assert result.report.unanswered == []
    assert asked[0] in [m["id"] for m in answered]  # the login sent on the first connection, before the master closed it
    assert result.passed, [(r.rule.id, r.evidence) for r in result.results if r.status == "failed"]


# -- D13: a COMMAND refused for its API version says which --nbu-version serves it ---------------


def test_a_command_refused_for_its_api_version_is_a_warning_with_the_nbu_version_hint() -> None:
    answered: list[dict[str, Any]] = []
    result = run_against(login_endpoint("12.0", answered, []))  # NetBackup 10.5's API; the default profile is 8.1
    assert {m["payload"]["statusCode"] for m in answered} == {415}
    well_formed = next(r for r in result.results if r.rule.id is RuleId.COMMAND_WELL_FORMED)
    assert well_formed.status == "warning", (well_formed.status, well_formed.evidence)
    assert "API version 12.0 is not served by NetBackup 8.1" in well_formed.evidence[0]
    assert "hint: --nbu-version 10.5" in well_formed.evidence[0]
    assert result.passed  # a warning: the endpoint may well be right for a newer master
    assert "--nbu-version 10.5" in printed(result)

    served: list[dict[str, Any]] = []
    newer = run_against(login_endpoint("12.0", served, []), profile="10.5")
    assert {m["payload"]["statusCode"] for m in served} == {201}
    assert next(r for r in newer.results if r.rule.id is RuleId.COMMAND_WELL_FORMED).status == "passed"


def test_unanswered_commands_are_printed() -> None:
    report = Report(url="ws://127.0.0.1:1/nbwss", established=1)
    report.unanswered.append(
        {"id": "C705F14D", "type": "COMMAND", "subType": "REQUEST", "payload": {"method": "POST", "uri": "/netbackup/login"}}
    )
    result = ContractResult("smoke", 1, report.url, False, evaluate(RunFacts(report)), report)
    assert "COMMAND requests not answered (they arrived while the connection was closing): POST /netbackup/login (C705F14D)" in printed(
        result
    )


# -- D14: --probe with --expect-state -------------------------------------------------------------


def test_probes_with_expect_state_are_warned_about(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    state = tmp_path / "expected.json"
    code, _, err = cli(capsys, "run", "--quiet", "--probe", "duplicate", "--expect-state", str(state), *FAST_ARGS)
    assert code == 0 and state.exists()
    assert f"warning: --expect-state {state} holds what the scenario told the endpoint, not what the probes send" in err
    code, _, err = cli(capsys, "run", "--quiet", "--expect-state", str(state), *FAST_ARGS)
    assert code == 0 and "probes" not in err


# -- D15: an HTTP 400 on the upgrade names the path -----------------------------------------------


def test_an_http_400_on_the_upgrade_suggests_checking_the_path(capsys: pytest.CaptureFixture[str]) -> None:
    """Node's ws (WebSocketServer with a path) answers 400 to an upgrade on any other path."""

    def wrong_path(connection: ServerConnection, request: Request) -> Response | None:
        if request.path != "/nbwss":
            return connection.respond(HTTPStatus.BAD_REQUEST, "Bad Request\n")
        return None

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async def scenario() -> int:
        async with serve(handler, "127.0.0.1", 0, process_request=wrong_path) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/websocket"
            return await asyncio.to_thread(main, ["run", "--endpoint", url, "--token", "t", "--no-probes"])

    code = asyncio.run(scenario())
    err = capsys.readouterr().err
    assert code == 2
    assert "answered HTTP 400 instead of upgrading to WebSocket (is /websocket the path the endpoint serves its WebSocket on?" in err


# -- D18: frames that arrived were checked ----------------------------------------------------------


def test_frame_rules_count_the_frames_that_arrived_even_without_a_connection() -> None:
    result = against(Fault.CONNECT_NOT_BOOLEAN, probes=False)  # one frame came: the wrong CONNECT answer
    rules = {r.rule.id: r for r in result.results}
    assert rules[RuleId.FRAMES_SCHEMA].status == "failed"
    for rule in (RuleId.FRAMES_JSON, RuleId.FRAMES_DIRECTION, RuleId.FRAMES_SIZE):
        assert (rules[rule].status, rules[rule].checked) == ("passed", 1), (rule, rules[rule].status, rules[rule].summary)
