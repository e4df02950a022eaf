"""Real NBWSS sessions over loopback: the reference endpoint in each fault mode, TLS, connection errors.

Each fault must be reported by the rule that should catch it, and a correct
endpoint must pass. NBWSS timings are compressed so that resends and
reconnections happen in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import ssl
import time
import warnings
from pathlib import Path

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State as WsState
from websockets.uri import parse_uri

from emulator.contract import ContractOptions, run_scenario
from emulator.contract.probes import PROBE_NAMES
from emulator.contract.rules import FAILED, PASSED, SKIPPED, WARNING
from emulator.endpoint import Fault, ReferenceEndpoint
from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_response, notification_response
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Paced, Settings, Target
from emulator.protocol.session import Acknowledged, MasterSession
from emulator.responders import CommandResponder
from emulator.scenario import Timeline, load
from emulator.wire.master import CloseTogether, ConnectError, EmulatedMaster, MasterConnection
from emulator.wire.tls import TlsOptions, server_context

FAST = NbwssProperties(connection_period=0.5, resend_interval=0.3, send_timeout=0.2)


def settings(**kwargs) -> Settings:
    return Settings(properties=FAST, drain_timeout=1.0, connect_timeout=3.0, **kwargs)


def contract(endpoint: ReferenceEndpoint, scenario: str = "smoke", **kwargs):
    options = ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings(), **kwargs)
    return run_scenario(load(scenario), options)


def statuses(result) -> dict[str, str]:
    return {r.rule.id: r.status for r in result.results}


def failures(result) -> list[tuple[str, str, object]]:
    """What failed, for an assertion's message: the rule, its summary and evidence."""
    return [(r.rule.id, r.summary, r.evidence) for r in result.results if r.status == FAILED]


def test_a_correct_endpoint_passes_every_rule() -> None:
    async def scenario():
        async with ReferenceEndpoint(probe_commands=True) as endpoint:
            result = await contract(endpoint)
            return result, endpoint.unique_notifications(), endpoint.notifications

    result, unique, received = asyncio.run(scenario())
    status = statuses(result)
    assert result.passed, failures(result)
    assert status["transport.wss"] == WARNING  # ws:// to a non-embedded endpoint is warned about
    assert status["reconnect.accepted"] == PASSED and status["ack.duplicate-accepted"] == PASSED
    assert status["command.well-formed"] == PASSED  # the endpoint logged in and read jobs
    stats = result.stats()
    assert stats["lost"] == 0
    assert stats["acknowledged"] == stats["sent"] == len(unique)  # distinct notifications ...
    assert stats["duplicates_sent"] == stats["duplicates_acknowledged"] == 1  # ... and the deliberate duplicate apart
    assert len(unique) < len(received) <= stats["sent"] + stats["resent"] + 1  # resends after the reconnect arrived too
    assert stats["ack_latency_ms"]["p99"] >= stats["ack_latency_ms"]["p50"] > 0


EXPECTED = {
    Fault.NO_ACK: ["ack.every-notification"],
    Fault.LATE_ACK: ["ack.within-timeout"],
    Fault.WRONG_ID: ["ack.known-id", "ack.every-notification"],
    Fault.WRONG_SUBTYPE: ["frames.direction", "frames.schema", "ack.every-notification"],
    Fault.MALFORMED_JSON: ["frames.json"],
    Fault.DUPLICATE_ACK: ["ack.once"],
    Fault.REFUSE: ["connect.accepts-token"],
    Fault.CLOSE_MID_STREAM: ["connection.kept"],
    Fault.OVERSIZED_FRAME: ["frames.size", "connection.kept"],
    Fault.BINARY_FRAME: ["frames.json"],
    Fault.ACCEPT_ANY_TOKEN: ["connect.refuses-wrong-token"],
}


@pytest.mark.parametrize("fault", list(EXPECTED), ids=[f.value for f in EXPECTED])
def test_each_fault_is_caught_by_its_rule(fault: Fault, figures) -> None:
    async def scenario():
        async with ReferenceEndpoint(fault=fault, late_ack_delay=0.4) as endpoint:
            return await contract(endpoint)

    result = asyncio.run(scenario())
    figures.fault(fault.value, result.report)
    status = statuses(result)
    assert not result.passed
    for rule in EXPECTED[fault]:
        assert status[rule] == FAILED, (rule, status)
    failing = next(r for r in result.results if r.rule.id == EXPECTED[fault][0])
    assert failing.evidence, "a failure carries its evidence"
    if fault in (Fault.CLOSE_MID_STREAM, Fault.OVERSIZED_FRAME):
        # The master survives: it reconnects, resends, and loses nothing.
        assert status["reconnect.accepted"] == PASSED
        assert result.stats()["lost"] == 0
    if fault is Fault.REFUSE:
        assert result.stats()["sent"] == 0  # nothing before valid: true


def test_a_half_open_endpoint_is_dropped_after_the_missed_pongs_and_the_master_reconnects(figures) -> None:
    """keepAlive.scheduledRate pings; after keepAlive.maxPongMissAllowed missed pongs the connection goes."""
    keepalive = NbwssProperties(connection_period=0.5, resend_interval=0.3, send_timeout=0.2, keepalive_interval=0.1, max_pong_miss=2)

    async def scenario():
        async with ReferenceEndpoint(fault=Fault.NO_PONG) as endpoint:
            options = ContractOptions(
                targets=[Target(endpoint.url, endpoint.token)], settings=Settings(properties=keepalive, drain_timeout=2.0), probes=False
            )
            return await run_scenario(load("smoke"), options)

    result = asyncio.run(scenario())
    report = result.report
    figures.fault("no-pong (half-open)", report)
    assert report.drops == 1 and 1011 in report.close_codes  # websockets' keepalive timeout
    assert report.established == 2
    assert report.lost == []  # everything resent on the second connection
    assert statuses(result)["connection.kept"] == FAILED


def test_commands_over_the_socket_are_answered_from_the_masters_state() -> None:
    """The endpoint logs in, reads a job it was notified of, and starts a restore whose notifications arrive."""

    async def scenario():
        async with ReferenceEndpoint() as endpoint:
            timeline = Timeline(load("restore"))
            master = timeline.masters["primary"]
            done = asyncio.Event()

            async def notifications():
                for timed in timeline.messages():
                    yield timed.message
                await done.wait()  # keep the connection while the endpoint sends commands
                for timed in timeline.settle():
                    yield timed.message  # what the commands started

            emulated = EmulatedMaster([Target(endpoint.url, endpoint.token)], settings(), responder=CommandResponder(master))
            run = asyncio.ensure_future(emulated.run(notifications()))
            while len(endpoint.items("IMAGE")) < 3:
                await asyncio.sleep(0.01)
            headers = {"Content-Type": "application/vnd.netbackup+json;version=1.0"}
            login = await endpoint.command("/netbackup/login", "POST", body={"userName": "u", "password": "p"}, headers=headers)
            headers["Authorization"] = login["payload"]["body"]["token"]
            job_id = endpoint.items("JOB")[0]["jobId"]
            job = await endpoint.command(f"/netbackup/admin/jobs/{job_id}", headers=headers)
            unauthorised = await endpoint.command("/netbackup/admin/jobs", headers={"Content-Type": headers["Content-Type"]})
            client = endpoint.items("IMAGE")[0]["clientName"]
            recover = await endpoint.command(
                "/netbackup/recovery/workloads/vmware/scenarios/full-vm/recover",
                "POST",
                body={"data": {"type": "recoveryRequest", "attributes": {"recoveryPoint": {"client": client}}}},
                headers=headers,
            )
            done.set()
            report = await run
            return job, unauthorised, recover, report, endpoint.items("JOB")

    job, unauthorised, recover, result, jobs = asyncio.run(scenario())
    assert job["payload"]["statusCode"] == 200 and job["type"] == "COMMAND" and job["subType"] == "RESPONSE"
    assert unauthorised["payload"]["statusCode"] == 401
    assert recover["payload"]["statusCode"] == 201
    restored = int(recover["payload"]["body"]["data"]["id"])
    assert [j["state"] for j in jobs if j["jobId"] == restored] == ["ACTIVE", "DONE"]
    assert [c.status for c in result.commands] == [201, 200, 401, 201]
    assert result.lost == []


def test_failover_to_the_next_priority_of_the_group() -> None:
    async def scenario():
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            dead = f"ws://127.0.0.1:{unused.getsockname()[1]}/nbwss"
        async with ReferenceEndpoint() as endpoint:
            targets = [Target(endpoint.url, endpoint.token, "g", priority=2), Target(dead, "x", "g", priority=1)]
            master = EmulatedMaster(targets, settings())
            report = await master.run([])
            return report, endpoint.url

    report, url = asyncio.run(scenario())
    assert report.established == 1 and report.url == url


def test_connection_errors_are_one_line_each() -> None:
    async def attempt(url: str, **tls) -> str:
        master = EmulatedMaster([Target(url, "t")], settings(), tls=TlsOptions(**tls))
        with pytest.raises(ConnectError) as raised:
            await master.run([])
        message = str(raised.value)
        assert "\n" not in message
        return message

    async def http_server(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario():
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        refused = await attempt(f"ws://127.0.0.1:{port}/")
        server = await asyncio.start_server(http_server, "127.0.0.1", 0)
        http_port = server.sockets[0].getsockname()[1]
        status = await attempt(f"ws://127.0.0.1:{http_port}/nbwss")
        server.close()
        dns = await attempt("wss://nbwss-test.invalid/nbwss")
        scheme = await attempt("https://example.test/")
        return refused, status, dns, scheme

    refused, status, dns, scheme = asyncio.run(scenario())
    assert refused.startswith("connection refused by 127.0.0.1:")
    assert "answered HTTP 404 instead of upgrading" in status
    assert dns == "cannot resolve host nbwss-test.invalid"
    assert scheme.startswith("not a WebSocket URL")


@pytest.fixture(scope="module")
def ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


def test_tls_is_verified_against_the_given_ca(ca, tmp_path, timing: float) -> None:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    context = server_context(str(tmp_path / "server.pem"))

    async def scenario():
        async with ReferenceEndpoint(ssl_context=context) as endpoint:
            assert endpoint.url.startswith("wss://")
            verified = await run_scenario(
                load("smoke"),
                ContractOptions(
                    targets=[Target(endpoint.url, endpoint.token)],
                    # this test is about TLS, not deadlines: a correct endpoint's acks are not judged against
                    # FAST's 200 ms, which a loaded CI machine missed once with and once without coverage
                    settings=Settings(
                        properties=FAST.with_overrides(send_timeout=2.0 * timing, resend_interval=3.0 * timing),
                        drain_timeout=1.0 * timing,
                        connect_timeout=3.0 * timing,
                    ),
                    tls=TlsOptions(cafile=str(tmp_path / "ca.pem")),
                ),
            )
            with pytest.raises(ConnectError, match=r"TLS certificate verification failed for 127\.0\.0\.1"):
                await EmulatedMaster([Target(endpoint.url, endpoint.token)], settings()).run([])
            insecure = await EmulatedMaster([Target(endpoint.url, endpoint.token)], settings(), tls=TlsOptions(insecure=True)).run([])
            return verified, insecure

    verified, insecure = asyncio.run(scenario())
    assert verified.passed, failures(verified)
    assert statuses(verified)["transport.wss"] == PASSED
    assert insecure.established == 1


def test_tls_checks_the_host_name(ca, tmp_path) -> None:
    ca.issue_cert("other.example").private_key_and_cert_chain_pem.write_to_path(tmp_path / "other.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")

    async def scenario():
        async with ReferenceEndpoint(ssl_context=server_context(str(tmp_path / "other.pem"))) as endpoint:
            master = EmulatedMaster([Target(endpoint.url, endpoint.token)], settings(), tls=TlsOptions(cafile=str(tmp_path / "ca.pem")))
            with pytest.raises(ConnectError, match=r"verification failed.*(mismatch|match)"):
                await master.run([])

    asyncio.run(scenario())


def test_old_tls_versions_are_refused(ca, tmp_path) -> None:
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(tmp_path / "s.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    old.load_cert_chain(str(tmp_path / "s.pem"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # configuring TLS 1.1 is deprecated, which is the point
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1

    async def scenario():
        async with ReferenceEndpoint(ssl_context=old) as endpoint:
            master = EmulatedMaster([Target(endpoint.url, endpoint.token)], settings(), tls=TlsOptions(cafile=str(tmp_path / "ca.pem")))
            with pytest.raises(ConnectError, match="TLS"):
                await master.run([])

    asyncio.run(scenario())


def test_rate_and_scenario_time_pacing() -> None:
    """At 50 notifications/s, 10 take about 0.2 s; in scenario time at high speed, the order holds."""

    async def scenario():
        async with ReferenceEndpoint() as endpoint:
            messages = [{**m} for m in _smoke()[:10]]
            master = EmulatedMaster([Target(endpoint.url, endpoint.token)], settings(rate=50.0))
            report = await master.run(messages)
            paced = await run_scenario(
                load("smoke"), ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings(), speed=1e6, probes=False)
            )
            return report, paced

    report, paced = asyncio.run(scenario())
    assert len(report.acks) == 10
    assert report.elapsed >= 9 / 50 * 0.9
    assert paced.passed, failures(paced)
    assert paced.stats()["lost"] == 0


async def _sleep_until_woken(self, session, *deadlines) -> None:
    await self._wake.wait()


def test_paced_notifications_leave_at_their_slot_between_acknowledgements(monkeypatch) -> None:
    """With the sender asleep with no timer and the first ack a second away, the pacer sends each at its time."""
    monkeypatch.setattr(EmulatedMaster, "_sleep", _sleep_until_woken)
    first, *others = _smoke()[:4]
    stream = [first, *(Paced(0.05 * (index + 1), message) for index, message in enumerate(others))]
    received_at_first_ack: list[int] = []

    async def scenario():
        async with ReferenceEndpoint(fault=Fault.LATE_ACK, late_ack_delay=1.0) as endpoint:

            def on_ack(event) -> None:
                if not received_at_first_ack:
                    received_at_first_ack.append(len(endpoint.notifications))

            master = EmulatedMaster([Target(endpoint.url, endpoint.token)], settings(), on_ack=on_ack)
            return await asyncio.wait_for(master.run(stream), 10)

    report = asyncio.run(scenario())
    assert not report.lost and [message_id for message_id, _, _ in report.acks] == [m["id"] for m in [first, *others]]
    assert received_at_first_ack == [4]  # all had left, at 0.05-0.15 s, before the first ack came (at 1 s)


def test_masters_that_close_together_keep_their_connections_until_the_last_is_done() -> None:
    """The first master is done at once, the second 0.3 s later: the first is still connected then."""
    first, second = _smoke()[:2]
    open_at_the_last_ack: list[int] = []

    async def scenario():
        async with ReferenceEndpoint() as endpoint:
            together = CloseTogether(2)
            targets = [Target(endpoint.url, endpoint.token)]
            early = EmulatedMaster(targets, settings(), close_together=together)
            late = EmulatedMaster(
                targets, settings(), close_together=together, on_ack=lambda event: open_at_the_last_ack.append(endpoint.open_connections)
            )
            return await asyncio.wait_for(asyncio.gather(early.run([first]), late.run([Paced(0.3, second)])), 10)

    early_report, late_report = asyncio.run(scenario())
    assert open_at_the_last_ack == [2]
    assert len(early_report.acks) == len(late_report.acks) == 1 and not early_report.lost and not late_report.lost


def test_acknowledgements_read_together_are_timed_from_the_read() -> None:
    """Two acks in one read: the master's time on the first (50 ms here) is not the second's latency."""
    acknowledged: list[Acknowledged] = []

    async def scenario() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        both = asyncio.Event()
        with socket.create_server(("127.0.0.1", 0)) as listener:
            master_side = socket.create_connection(listener.getsockname())
            endpoint_side, _ = listener.accept()
        with endpoint_side:
            protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=WsState.OPEN)  # past the opening handshake
            _, ws = await loop.create_connection(lambda: MasterConnection(protocol), sock=master_side)
            session = MasterSession("token", clock=time.monotonic)
            connect = json.loads(session.connect())
            session.receive(encode(connect_response(connect["id"], 1, True)).decode())
            for message in _smoke()[:2]:
                session.send(message)
            sent_at = {message_id: pending.last_sent for message_id, pending in session.pending.items()}

            def on_ack(event: Acknowledged) -> None:
                acknowledged.append(event)
                if len(acknowledged) == 1:
                    time.sleep(0.05)  # stands for the master settling many acks before the next
                else:
                    both.set()

            master = EmulatedMaster([Target("ws://127.0.0.1:1", "token")], on_ack=on_ack)
            ws.take_text = master._ack_taker(ws, session)
            acks = [Frame(Opcode.TEXT, encode(notification_response(i, 1))).serialize(mask=False) for i in sent_at]
            endpoint_side.sendall(b"".join(acks))  # one write: one read on the master's side
            await asyncio.wait_for(both.wait(), 10)
            ws.transport.abort()
        return sent_at

    sent_at = asyncio.run(scenario())
    first, second = (event.latency + sent_at[event.message_id] for event in acknowledged)
    assert second == pytest.approx(first, abs=1e-6)  # both timed at the read (without it: 50 ms apart)


def _smoke() -> list[dict]:
    return [t.message for t in Timeline(load("smoke")).messages()]


def test_transcript_records_every_frame_without_secrets(tmp_path) -> None:
    async def scenario():
        async with ReferenceEndpoint(probe_commands=True) as endpoint:
            options = ContractOptions(
                targets=[Target(endpoint.url, endpoint.token)], settings=settings(), transcript=str(tmp_path / "t.jsonl")
            )
            return await run_scenario(load("smoke"), options), endpoint.token

    result, token = asyncio.run(scenario())
    text = (tmp_path / "t.jsonl").read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    assert token not in text
    assert {e["dir"] for e in entries} == {"in", "out"}
    connects = [e["frame"] for e in entries if e.get("frame", {}).get("type") == "CONNECT" and e["frame"]["subType"] == "REQUEST"]
    assert connects and all("…(" in c["payload"]["token"] for c in connects)
    assert not re.search(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", text)  # no JWT either
    assert "eyJ…(" in text  # the login token was there, redacted
    out = [e for e in entries if e["dir"] == "out" and e.get("frame", {}).get("type") == "NOTIFICATION"]
    assert len(out) == result.stats()["sent"] + result.stats()["resent"] + result.stats()["duplicates_sent"]
    assert [e["t"] for e in entries] == sorted(e["t"] for e in entries)


def test_skipped_probes_are_reported_as_skipped() -> None:
    async def scenario():
        async with ReferenceEndpoint() as endpoint:
            return await contract(endpoint, probes=False)

    status = statuses(asyncio.run(scenario()))
    assert status["connect.refuses-wrong-token"] == SKIPPED
    assert status["reconnect.accepted"] == SKIPPED
    assert status["ack.duplicate-accepted"] == SKIPPED


def test_an_endpoint_that_stops_reading_never_hangs_the_master(figures, timing: float) -> None:
    """TCP backpressure: sends are held back (frames stay pending), the keep-alive gives up, the run ends, all reported lost."""
    properties = NbwssProperties(
        connection_period=0.2 * timing,
        resend_interval=0.3 * timing,
        send_timeout=0.2 * timing,
        keepalive_interval=0.2 * timing,
        max_pong_miss=2,
    )
    messages = [t.message for t in itertools.islice(Timeline(load("datacenter-day"), seed=2).messages(repeat=True), 6000)]

    async def scenario():
        async with ReferenceEndpoint(fault=Fault.STOP_READING) as endpoint:
            master = EmulatedMaster(
                [Target(endpoint.url, endpoint.token)],
                Settings(properties=properties, window=6000, drain_timeout=1.0 * timing, reconnect_attempts=2),
            )
            started = time.monotonic()
            report = await asyncio.wait_for(master.run(messages), 30 * timing)
            return report, time.monotonic() - started

    report, elapsed = asyncio.run(scenario())
    figures.fault("stop-reading (TCP backpressure)", report)
    assert report.backpressure > 0
    assert report.drops >= 1  # the keep-alive dropped the stalled connection
    assert report.lost and len(report.lost) == report.sent  # nothing is silently dropped: what was sent is reported lost
    assert "gave up" in (report.error or "")
    assert report.acks == []
    assert elapsed < 20 * timing


def test_an_endpoint_that_never_acknowledges_a_full_window_ends_the_run(figures) -> None:
    """More notifications than the window and no acks: the master resends, then gives up after the stall time-out."""
    messages = [t.message for t in itertools.islice(Timeline(load("datacenter-day"), seed=3).messages(repeat=True), 100)]

    async def scenario():
        async with ReferenceEndpoint(fault=Fault.NO_ACK) as endpoint:
            master = EmulatedMaster([Target(endpoint.url, endpoint.token)], Settings(properties=FAST, window=8))
            return await asyncio.wait_for(master.run(messages), 30), len(endpoint.notifications)

    report, received = asyncio.run(scenario())
    figures.fault("no-ack with a full window", report)
    assert report.sent == 8 and len(report.lost) == 8  # the window bounds what is outstanding
    assert report.resent >= 8 and received == report.sent + report.resent
    assert report.error is not None and report.error.startswith("no acknowledgement for")


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1011, 1013, 4000])
def test_every_close_code_is_survived(code: int, figures) -> None:
    """Whatever close code the endpoint ends with, the master reports it, reconnects and loses nothing."""

    async def scenario():
        async with ReferenceEndpoint(fault=Fault.CLOSE_MID_STREAM, close_code=code) as endpoint:
            return await contract(endpoint, probes=False)

    result = asyncio.run(scenario())
    report = result.report
    figures.fault(f"close with code {code}", report)
    assert report.close_codes[0] == code
    assert report.drops == 1 and report.established == 2
    assert report.lost == [] and report.resent > 0
    assert statuses(result)["connection.kept"] == FAILED


@pytest.mark.slow
def test_endpoint_process_killed_and_restarted_mid_stream(figures, timing: float) -> None:
    """kill -9 of the endpoint's process, a new one on the same port: the master reconnects, resends, and loses nothing."""
    import sys  # noqa: PLC0415 - only this test starts processes

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = "restart-token-0123456789"
    command = [sys.executable, "-m", "emulator", "serve", "--port", str(port), "--token", token]
    messages = [t.message for t in itertools.islice(Timeline(load("datacenter-day"), seed=4).messages(repeat=True), 600)]

    async def start_server() -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
        line = await process.stdout.readline()  # the server is listening once it says so
        assert b"listening on" in line
        return process

    async def scenario():
        server = await start_server()
        halfway = asyncio.Event()
        acked = 0

        def on_ack(_event) -> None:
            nonlocal acked
            acked += 1
            if acked == 150:
                halfway.set()

        settings = Settings(
            properties=NbwssProperties(connection_period=0.5 * timing, resend_interval=0.5 * timing, send_timeout=0.5 * timing),
            rate=400.0,
            reconnect_attempts=40,
            drain_timeout=3.0,
        )
        master = EmulatedMaster([Target(f"ws://127.0.0.1:{port}/nbwss", token)], settings, on_ack=on_ack)
        run = asyncio.ensure_future(master.run(messages))
        await halfway.wait()
        server.kill()
        await server.wait()
        replacement = await start_server()
        try:
            report = await asyncio.wait_for(run, 60 * timing)
        finally:
            replacement.terminate()
            await replacement.communicate()
        return report

    report = asyncio.run(scenario())
    figures.fault("endpoint process killed and restarted", report)
    assert report.drops == 1 and report.established == 2
    assert 1006 in report.close_codes  # an abrupt end: no close frame
    assert report.lost == []
    assert len({message_id for message_id, _, _ in report.acks}) == len(messages)
    assert report.reconnect_failures  # it had to try again until the new process listened
    assert report.resent == sum(attempts - 1 for _, _, attempts in report.acks)  # every resend is accounted for


def test_the_readme_figures_cover_every_fault() -> None:
    """The reliability page's table is the suite's output: every fault of the reference endpoint has its row."""
    readme = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text(encoding="utf-8")
    section = readme[readme.index("<!-- reliability figures: start -->") : readme.index("<!-- reliability figures: end -->")]
    for fault in EXPECTED:
        assert f"| {fault.value} |" in section, fault
    assert "| stop-reading (TCP backpressure) |" in section and "| fuzzed target | cases |" in section


def test_robustness_probes_say_what_the_endpoint_handled_and_what_broke_it() -> None:
    async def scenario(max_size: int):
        async with ReferenceEndpoint(max_size=max_size) as endpoint:
            return await contract(endpoint, probes=False, probe_names=list(PROBE_NAMES))

    tolerant = asyncio.run(scenario(1024 * 1024))
    assert [p.probe.name for p in tolerant.probes] == list(PROBE_NAMES)
    assert all(p.handled for p in tolerant.probes), [(p.probe.name, p.detail) for p in tolerant.probes]
    storm = next(p for p in tolerant.probes if p.probe.name == "reconnect-storm")
    assert storm.sent == storm.acknowledged == 50

    strict = asyncio.run(scenario(256 * 1024))  # a limit the large batch exceeds
    outcome = {p.probe.name: p for p in strict.probes}
    assert not outcome["large-batch"].handled
    assert "connection dropped (close codes 1009" in outcome["large-batch"].detail
    assert all(p.handled for name, p in outcome.items() if name != "large-batch")
    assert not strict.passed  # asked-for probes that break count in the verdict


def test_the_reference_endpoint_limits_connections_and_binds_loopback() -> None:
    async def scenario():
        async with ReferenceEndpoint(max_connections=2) as endpoint:
            assert endpoint.url.startswith("ws://127.0.0.1:")
            first = EmulatedMaster([Target(endpoint.url, endpoint.token)], settings())
            second = EmulatedMaster([Target(endpoint.url, endpoint.token)], settings())
            held = [await first._open(first.targets[0]), await second._open(second.targets[0])]
            try:
                with pytest.raises(ConnectError, match="answered HTTP 503"):
                    await EmulatedMaster([Target(endpoint.url, endpoint.token)], settings()).run([])
            finally:
                for ws in held:
                    await ws.close()

    asyncio.run(scenario())


def test_a_generated_token_can_be_passed_on_the_command_line() -> None:
    """`serve` prints the token it generated for users to pass as `--token T`: it must never begin with '-'."""
    tokens = {ReferenceEndpoint().token for _ in range(2000)}
    assert len(tokens) == 2000
    assert not [token for token in tokens if token.startswith("-")]
