"""Verdicts you can trust: the rule vocabulary, a wrong CONNECT answer, fail-over with probes, honest counts,
messages that say what to do, the NetBackup version profile, and warnings where the documentation is silent."""

from __future__ import annotations

import asyncio
import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, free_port
from rich.console import Console
from websockets.asyncio.server import ServerConnection, serve

from emulator.contract import ContractOptions, run_scenario
from emulator.contract.report import print_summary
from emulator.contract.rules import FAILED, JUDGES, NOT_EXERCISED, PASSED, RULES, WARNING, RunFacts, evaluate
from emulator.endpoint import Fault, ReferenceEndpoint
from emulator.findings import Basis, Finding, RuleId
from emulator.harness import EndpointHandle, LoopThread
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Report, Settings, Target
from emulator.protocol.session import Violation
from emulator.scenario import load
from emulator.wire.tls import server_context

FAST = NbwssProperties(connection_period=0.5, resend_interval=0.3, send_timeout=0.2)
FAST_ARGS = ["--resend-interval", "0.2", "--ack-timeout", "0.2", "--reconnect-period", "0.5"]
ROOT = Path(__file__).parents[2]


def settings(connect_timeout: float = 3.0) -> Settings:
    return Settings(properties=FAST, drain_timeout=1.0, connect_timeout=connect_timeout)


def verdicts(result: Any) -> dict[RuleId, Any]:
    return {r.rule.id: r for r in result.results}


# -- the vocabulary ------------------------------------------------------------------------


def test_every_rule_is_judged_and_described() -> None:
    assert set(JUDGES) == set(RuleId) == {rule.id for rule in RULES}
    for rule_id in RuleId:
        assert rule_id.info.description and rule_id.info.checks and isinstance(rule_id.info.basis, Basis)


def test_a_misspelt_rule_id_is_an_error_not_a_rule_that_cannot_fail() -> None:
    with pytest.raises(ValueError, match=r"unknown contract rule 'ack\.onse'"):
        RuleId.of("ack.onse")
    report = Report(url="ws://127.0.0.1:1/x", established=1)
    report.violations.append(Violation("ack.onse", Finding("/id", "ack.onse", "acknowledged again"), "{}"))
    with pytest.raises(ValueError, match=r"ack\.onse"):
        evaluate(RunFacts(report))


def test_no_module_of_ours_spells_a_rule_id_as_a_loose_string() -> None:
    ids = "|".join(re.escape(r.value) for r in RuleId)
    loose = re.compile(rf"""["']({ids})["']""")
    others = {Path("emulator/findings.py")}  # where they are defined
    offenders = [
        f"{path}:{number}"
        for path in sorted((ROOT / "emulator").rglob("*.py"))
        if path.relative_to(ROOT) not in others
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if loose.search(line)
    ]
    assert not offenders


# -- a wrong answer to CONNECT (item 1) -------------------------------------------------------


def wrong_connect_answers() -> dict[str, tuple[Any, str]]:
    """How to answer a CONNECT REQUEST wrongly, and the evidence each must quote."""

    def answer(**changes: Any) -> Any:
        def make(request: dict[str, Any]) -> dict[str, Any]:
            message = {"version": "1.0", "id": request["id"], "type": "CONNECT", "subType": "RESPONSE", "timeStamp": 1_700_000_000}
            message["payload"] = {"valid": True}
            message.update(changes)
            return message

        return make

    return {
        "valid-a-string": (answer(payload={"valid": "true"}), '/payload/valid: "true" is not of type "boolean"'),
        "another-id": (
            answer(id="0C0FFEE0-0000-4000-8000-000000000000"),
            "CONNECT RESPONSE id 0C0FFEE0-0000-4000-8000-000000000000 answers no CONNECT REQUEST",
        ),
        "notification-response": (answer(type="NOTIFICATION", payload={}), "CONNECT answered by a NOTIFICATION RESPONSE"),
        "payload-not-an-object": (answer(payload=[True]), '/payload: [true] is not of type "object"'),
    }


WRONG = wrong_connect_answers()


@pytest.mark.parametrize("how", list(WRONG))
def test_a_wrong_connect_answer_fails_connect_answered_at_once_with_the_evidence(how: str) -> None:
    make, quoted = WRONG[how]

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            await ws.send(json.dumps(make(json.loads(frame))))

    async def scenario() -> Any:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            options = ContractOptions(targets=[Target(f"ws://127.0.0.1:{port}/nbwss", "t")], settings=settings(connect_timeout=10.0))
            started = time.monotonic()
            return await run_scenario(load("smoke"), options), time.monotonic() - started

    result, took = asyncio.run(scenario())
    rules = verdicts(result)
    assert rules[RuleId.CONNECT_ANSWERED].status == FAILED
    assert any(quoted in text for text in rules[RuleId.CONNECT_ANSWERED].evidence), rules[RuleId.CONNECT_ANSWERED].evidence
    assert rules[RuleId.CONNECT_ACCEPTS_TOKEN].status == FAILED
    assert took < 5  # as soon as the answer came, not after the 10 s connect time-out
    assert not result.passed


def test_cli_a_wrong_connect_answer_is_exit_1_with_every_report_written(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    paths = tmp_path / "r.json", tmp_path / "r.xml"
    code, out, err = cli(capsys, "run", "--fault", "connect-not-boolean", "--json", str(paths[0]), "--junit", str(paths[1]), *FAST_ARGS)
    assert code == 1, out + err
    report = json.loads(paths[0].read_text())
    answered = next(r for r in report["rules"] if r["id"] == "connect.answered")
    assert answered["status"] == "failed"
    assert any('/payload/valid: "true" is not of type "boolean"' in text for text in answered["evidence"])
    assert next(r for r in report["rules"] if r["id"] == "frames.schema")["status"] == "failed"
    case = next(c for c in ET.parse(paths[1]).getroot().iter("testcase") if c.get("name") == "connect.answered")
    assert case.find("failure") is not None


def test_cli_a_websocket_that_never_answers_connect_is_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    code, out, err = cli(capsys, "run", "--fault", "no-connect-answer", "--connect-timeout", "0.5", "--json", str(path), *FAST_ARGS)
    assert code == 1, out + err
    answered = next(r for r in json.loads(path.read_text())["rules"] if r["id"] == "connect.answered")
    assert answered["status"] == "failed" and "no CONNECT RESPONSE within 0.5s" in answered["evidence"][0]


def test_cli_what_prevented_testing_stays_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", "--endpoint", f"ws://127.0.0.1:{free_port()}/nbwss", "--token", "t")
    assert code == 2
    assert "connection refused" in err


# -- fail-over with probes (item 7) -----------------------------------------------------------


def test_probes_go_to_the_endpoint_the_group_is_connected_to_when_the_preferred_one_is_dead() -> None:
    async def scenario() -> Any:
        async with ReferenceEndpoint() as live:
            dead = Target(f"ws://127.0.0.1:{free_port()}/nbwss", live.token, priority=0)
            options = ContractOptions(
                targets=[dead, Target(live.url, live.token, priority=1)], settings=settings(), probe_names=["duplicate", "burst"]
            )
            return await run_scenario(load("smoke"), options), live.refused

    result, refused = asyncio.run(scenario())
    rules = verdicts(result)
    assert rules[RuleId.CONNECT_REFUSES_WRONG_TOKEN].status == PASSED and refused == 1  # the wrong token went to the live one
    assert [p.handled for p in result.probes] == [True, True], [p.detail for p in result.probes]
    assert result.passed


# -- counts that do not lie (item 8) ----------------------------------------------------------


def test_counts_never_lie() -> None:
    async def scenario(fault: Fault | None, **options: Any) -> Any:
        async with ReferenceEndpoint(fault=fault) as endpoint:
            return await run_scenario(
                load("smoke"), ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings(), **options)
            )

    refused = asyncio.run(scenario(Fault.REFUSE))
    for result in [refused, asyncio.run(scenario(Fault.DUPLICATE_ACK))]:
        assert all(r.checked >= r.failures for r in result.results), [(r.rule.id, r.checked, r.failures) for r in result.results]
    # Nothing was sent: not "passed" with 0 checked.
    assert verdicts(refused)[RuleId.ACK_EVERY_NOTIFICATION].status == NOT_EXERCISED

    started = time.monotonic()
    probed = asyncio.run(scenario(None, probe_names=["burst", "reconnect-storm"]))
    wall = time.monotonic() - started
    assert probed.stats()["elapsed_s"] >= 0.8 * wall > probed.report.elapsed  # the verdict's time includes the probes


def test_duplicate_acks_are_all_counted() -> None:
    async def scenario() -> tuple[Any, int]:
        async with ReferenceEndpoint(fault=Fault.DUPLICATE_ACK) as endpoint:
            options = ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings(), probes=False)
            result = await run_scenario(load("smoke"), options)
            return result, 2 * len(endpoint.notifications)  # the endpoint acknowledges every copy twice

    result, acks_sent = asyncio.run(scenario())
    once = verdicts(result)[RuleId.ACK_ONCE]
    assert once.failures == result.stats()["duplicate_acks"] == acks_sent - len(result.report.acks)


def test_a_message_is_never_printed_twice() -> None:
    async def scenario() -> Any:
        async with ReferenceEndpoint(fault=Fault.REFUSE) as endpoint:
            options = ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings())
            return await run_scenario(load("smoke"), options)

    console = Console(record=True, width=400)
    print_summary(asyncio.run(scenario()), console)
    text = console.export_text()
    assert text.count("CONNECT answered valid: false") == 1, text


# -- messages that say what to do (item 9) ----------------------------------------------------


def test_a_bad_cafile_or_a_missing_key_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    code, _, err = cli(capsys, "run", "--cafile", str(ca), "--quiet")
    assert code == 2 and f"--cafile {ca}: not a PEM CA certificate" in err and "report" not in err

    trustme = pytest.importorskip("trustme")
    cert = tmp_path / "client.pem"
    trustme.CA().issue_cert("client.example").cert_chain_pems[0].write_to_path(cert)  # a certificate without its key
    code, _, err = cli(capsys, "run", "--certfile", str(cert), "--quiet")
    assert code == 2 and f"--certfile {cert}" in err and "--keyfile" in err and "report" not in err


@pytest.mark.parametrize("option", ["--json", "--junit", "--transcript"])
def test_report_paths_are_checked_before_the_run_and_named(capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str) -> None:
    path = tmp_path / "no-such-folder" / "report"
    code, out, err = cli(capsys, "run", option, str(path))
    assert code == 2
    assert f"{option} {path}" in err
    assert "verdict" not in out  # nothing ran


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    trustme = pytest.importorskip("trustme")
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(folder / "ca.pem")
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(folder / "right.pem")
    ca.issue_cert("other.example").private_key_and_cert_chain_pem.write_to_path(folder / "other.pem")
    return {"ca": folder / "ca.pem", "right": folder / "right.pem", "other": folder / "other.pem"}


def test_the_wrong_scheme_is_suggested(capsys: pytest.CaptureFixture[str], tls_files: dict[str, Path]) -> None:
    loop = LoopThread()
    plain = EndpointHandle(loop)
    secure = EndpointHandle(loop, ssl_context=server_context(str(tls_files["right"])))
    try:
        code, _, err = cli(capsys, "run", "--endpoint", plain.url.replace("ws://", "wss://"), "--token", plain.token)
        assert code == 2 and "use ws://" in err, err
        code, _, err = cli(capsys, "run", "--endpoint", secure.url.replace("wss://", "ws://"), "--token", secure.token)
        assert code == 2 and "use wss://" in err, err
    finally:
        plain.close()
        secure.close()
        loop.stop()


def test_a_host_name_mismatch_does_not_suggest_cafile_when_given(capsys: pytest.CaptureFixture[str], tls_files: dict[str, Path]) -> None:
    loop = LoopThread()
    endpoint = EndpointHandle(loop, ssl_context=server_context(str(tls_files["other"])))
    try:
        code, _, err = cli(capsys, "run", "--endpoint", endpoint.url, "--token", endpoint.token, "--cafile", str(tls_files["ca"]))
    finally:
        endpoint.close()
        loop.stop()
    assert code == 2
    assert "use --cafile" not in err and "another host name" in err, err


def test_an_id_that_differs_only_in_case_gets_a_hint() -> None:
    async def scenario() -> Any:
        async with ReferenceEndpoint(fault=Fault.LOWERCASE_ACK_ID) as endpoint:
            options = ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings(), probes=False)
            return await run_scenario(load("smoke"), options)

    known = verdicts(asyncio.run(scenario()))[RuleId.ACK_KNOWN_ID]
    assert known.status == FAILED
    assert "differs only in letter case" in known.evidence[0]


# -- the NetBackup version profile (item 10) --------------------------------------------------


def test_nbu_version_8_0_passes_against_the_embedded_endpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    # In scenario time (its 1.7 hours in about a second), so that the endpoint's login and jobs request come before the end.
    code, out, err = cli(capsys, "run", "--nbu-version", "8.0", "--speed", "5000", "--json", str(path))
    assert code == 0, out + err
    well_formed = next(r for r in json.loads(path.read_text())["rules"] if r["id"] == "command.well-formed")
    assert well_formed["status"] == "passed"


# -- where the documentation is silent (item 14) ----------------------------------------------


def test_an_acknowledgement_without_an_object_payload_is_a_warning() -> None:
    async def scenario() -> Any:
        async with ReferenceEndpoint(fault=Fault.ACK_EMPTY_PAYLOAD) as endpoint:
            options = ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings())
            return await run_scenario(load("smoke"), options)

    result = asyncio.run(scenario())
    rules = verdicts(result)
    assert rules[RuleId.ACK_PAYLOAD].status == WARNING
    assert rules[RuleId.FRAMES_SCHEMA].status == PASSED
    assert result.passed

    absent = '{"version":"1.0","id":"0C0FFEE0-0000-4000-8000-000000000000","type":"NOTIFICATION","subType":"RESPONSE","timeStamp":1}'
    report = Report(url="ws://127.0.0.1:1/x", established=1)
    report.violations.append(Violation("frames.schema", Finding("/payload", "required", '"payload" is a required property'), absent))
    assert {r.rule.id: r.status for r in evaluate(RunFacts(report))}[RuleId.ACK_PAYLOAD] == WARNING
