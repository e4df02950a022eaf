"""The blocking emulated master (emulator.sync), against the reference endpoint on loopback."""

from __future__ import annotations

import itertools
import json
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from emulator.endpoint.server import Fault, ReferenceEndpoint
from emulator.harness import LoopThread
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Settings, Target
from emulator.protocol.sender import Reconnection, SendPolicy
from emulator.responders import CommandResponder
from emulator.scenario import Timeline, load
from emulator.sync import ConnectError, GaveUp, Sample, SyncMaster, TokenRefused, prepare
from emulator.wire.tls import TlsOptions, server_context

QUICK = NbwssProperties(resend_interval=0.2, connection_period=0.2)


@pytest.fixture
def endpoint(loop: LoopThread) -> Iterator[ReferenceEndpoint]:
    server = ReferenceEndpoint(keep=None)
    loop.call(server.start(), timeout=10)
    yield server
    loop.call(server.stop(), timeout=10)


def notifications(count: int | None = None, seed: int = 1) -> list[dict[str, Any]] | Iterator[dict[str, Any]]:
    messages = Timeline(load("restore"), seed=seed).notifications(repeat=True)
    return messages if count is None else list(itertools.islice(messages, count))


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (state of another thread, no event to await) until it holds."""
    limit = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < limit, "timed out"
        time.sleep(0.01)


def ids(endpoint: ReferenceEndpoint) -> list[str]:
    return [message["id"] for message in endpoint.notifications]


def master(endpoint: ReferenceEndpoint, samples: list[Sample], *, token: str | None = None, **settings: Any) -> SyncMaster:
    options = {"properties": QUICK, "window": 8, **settings}
    return SyncMaster([Target(endpoint.url, token or endpoint.token)], Settings(**options), on_sample=samples.append)


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    return thread, result


# -- the policy helpers (pure) ---------------------------------------------------------------


def test_the_sync_master_decides_with_the_same_policy_core_as_the_asyncio_one() -> None:
    """Back-off, fail-over order, lateness and giving up come from emulator.protocol.sender, not a copy of it."""
    properties = NbwssProperties(resend_interval=5.0, connection_period=0.3, send_timeout=2.0)
    targets = [Target("ws://127.0.0.1:9/a", "t", priority=1), Target("ws://127.0.0.1:9/b", "t", priority=2)]
    master = SyncMaster(targets, Settings(properties=properties, reconnect_attempts=5), rng=random.Random(7))
    assert isinstance(master.policy, SendPolicy) and isinstance(master.reconnection, Reconnection)
    assert [t.url for t in master.reconnection.order()] == ["ws://127.0.0.1:9/a", "ws://127.0.0.1:9/b"]
    assert master.policy.stall_timeout == master.settings.ack_limit() + 3 * 5.0  # three resend cycles, not one copy acknowledged
    assert master.policy.is_late(0.1, True) and not master.policy.is_late(0.1, False)
    pauses = [master.reconnection.failed_round() for _ in range(5)]
    assert pauses[-1] is None  # five failed rounds: the master gives up
    bases = [0.05, 0.1, 0.2, 0.3]
    assert all(0.5 * base <= pause <= 1.5 * base for pause, base in zip(pauses, bases, strict=False) if pause is not None)


# -- over sockets -----------------------------------------------------------------------------


def test_sends_everything_within_a_window_and_reports_one_sample_per_acknowledgement(endpoint: ReferenceEndpoint) -> None:
    samples: list[Sample] = []
    messages = notifications(300)
    report = master(endpoint, samples).run(messages)
    assert report.established == 1 and not report.lost and not report.violations
    assert ids(endpoint) == [m["id"] for m in messages]
    acks = [s for s in samples if s.kind == "NBWSS"]
    assert len(acks) == 300 and all(s.error is None and s.name.startswith("NOTIFICATION ") for s in acks)
    assert [s.name for s in samples if s.kind == "CONNECT"] == ["CONNECT"]


def test_keeps_the_window_outstanding_and_resends_unacknowledged_ones_with_the_same_ids(endpoint: ReferenceEndpoint) -> None:
    endpoint.fault = Fault.NO_ACK
    samples: list[Sample] = []
    sync = master(endpoint, samples, window=4)
    source = iter(notifications(20))
    sync.step(source)  # connect, fill the window, wait for a frame (none: no acks) until the resend is due
    wait_for(lambda: len(ids(endpoint)) >= 4)
    assert len(sync.session.pending) == 4  # the window, and no more
    while len(ids(endpoint)) < 8:
        sync.step(source)
    first, again = ids(endpoint)[:4], ids(endpoint)[4:8]
    assert sorted(again) == sorted(first)  # resent per notification.scheduledRate, same ids
    endpoint.fault = None
    while sync.step(source):
        pass
    sync.close()
    assert not sync.report.lost and sync.report.resent >= 4
    late = [s for s in samples if s.error is not None]
    assert late and all(s.error.startswith("[ack.within-timeout]") for s in late if s.error)  # resent: acknowledged late
    assert "ack.within-timeout" in sync.findings()


def test_reconnects_with_backoff_and_resends_what_was_pending_when_the_endpoint_restarts(
    loop: LoopThread, endpoint: ReferenceEndpoint
) -> None:
    endpoint.fault = Fault.NO_ACK  # so that a full window is pending when the endpoint goes away
    samples: list[Sample] = []
    sync = master(endpoint, samples, window=4, properties=NbwssProperties(resend_interval=30, connection_period=0.2))
    messages = notifications(40)
    thread, result = in_thread(lambda: sync.run(messages))
    wait_for(lambda: len(ids(endpoint)) >= 4)
    pending = ids(endpoint)[:4]
    loop.call(endpoint.stop())
    endpoint.fault = None
    loop.call(endpoint.start())
    thread.join(30)
    report = result[0]
    assert report.established == 2 and report.drops == 1 and not report.lost
    assert all(ids(endpoint).count(message_id) == 2 for message_id in pending)  # resent after the new CONNECT
    assert sorted(set(ids(endpoint))) == sorted(m["id"] for m in messages)
    acks = [s for s in samples if s.kind == "NBWSS"]
    assert len(acks) == 40 and all(s.error is None for s in acks)  # the outage is not the endpoint's lateness
    connects = [s for s in samples if s.kind == "CONNECT"]
    assert connects[0].error is None and connects[-1].error is None
    assert all("connection refused" in s.error for s in connects[1:-1] if s.error)  # tried while it was down


def test_answers_the_endpoints_command_requests_from_the_masters_domain(loop: LoopThread, endpoint: ReferenceEndpoint) -> None:
    timeline = Timeline(load("restore"), seed=1)
    responder = CommandResponder(timeline.masters[timeline.scenario.masters[0].key], rng=random.Random(1))
    done = threading.Event()
    sync = SyncMaster([Target(endpoint.url, endpoint.token)], Settings(properties=QUICK, window=2), responder=responder)

    def source() -> Iterator[dict[str, Any]]:
        for message in timeline.notifications(repeat=True):
            if done.is_set():
                return
            yield message

    thread, _ = in_thread(lambda: sync.run(source()))
    wait_for(lambda: len(ids(endpoint)) >= 2)
    body = {"domainType": "unixpwd", "domainName": "nbu", "userName": "cloudapp", "password": "secret"}
    answer = loop.call(endpoint.command("/netbackup/login", "POST", body=body), timeout=10)
    done.set()
    thread.join(30)
    assert answer["payload"]["statusCode"] == 201 and answer["payload"]["body"]["token"]
    assert [exchange.status for exchange in sync.report.commands] == [201]


def test_reports_the_same_findings_as_run_by_rule_id_and_a_failed_sample_for_each(endpoint: ReferenceEndpoint) -> None:
    endpoint.fault = Fault.DUPLICATE_ACK
    samples: list[Sample] = []
    sync = master(endpoint, samples)
    sync.run(notifications(10))
    found = [s for s in samples if s.name == "FINDING ack.once"]
    assert sync.findings() == {"ack.once": len(found)}  # the last duplicate may come after the run ended
    assert len(found) >= 9 and all(s.error and s.error.startswith("[ack.once] /id: notification ") for s in found)


def test_notifications_never_acknowledged_are_reported_lost(endpoint: ReferenceEndpoint) -> None:
    endpoint.fault = Fault.NO_ACK
    samples: list[Sample] = []
    sync = master(endpoint, samples, window=3, ack_timeout=0.1, properties=NbwssProperties(resend_interval=0.1))
    report = sync.run(notifications(3))
    assert len(report.lost) == 3 and sync.findings()["ack.every-notification"] == 3
    assert [s.error.split(" ")[0] for s in samples if s.kind == "NBWSS" and s.error] == ["[ack.every-notification]"] * 3


def test_a_refused_token_is_a_failed_connect_sample_and_stops_the_master(endpoint: ReferenceEndpoint) -> None:
    samples: list[Sample] = []
    with pytest.raises(TokenRefused, match="valid: false"):
        master(endpoint, samples, token="wrong").run(notifications(3))
    assert samples == [
        Sample("CONNECT", "CONNECT", samples[0].elapsed, samples[0].length, "[connect.accepts-token] CONNECT answered valid: false")
    ]


@pytest.mark.parametrize(
    ("answer", "evidence", "rule"),
    [
        ({"payload": {"valid": "true"}}, '[frames.schema] /payload/valid: "true" is not of type', "frames.schema"),
        ({"id": "00000000-0000-4000-8000-000000000000", "payload": {"valid": True}}, "answers no CONNECT REQUEST", "connect.answered"),
    ],
)
def test_a_connect_answered_wrongly_fails_at_once_with_the_evidence(
    loop: LoopThread, answer: dict[str, Any], evidence: str, rule: str
) -> None:
    async def answer_wrongly(ws: ServerConnection) -> None:
        request = json.loads(await ws.recv())
        await ws.send(json.dumps({**request, "subType": "RESPONSE", **answer}))
        await ws.wait_closed()

    async def start() -> Any:
        return await serve(answer_wrongly, "127.0.0.1", 0)

    server = loop.call(start())
    url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/nbwss"
    samples: list[Sample] = []
    started = time.monotonic()
    sync = SyncMaster([Target(url, "t")], Settings(connect_timeout=10, reconnect_attempts=1), on_sample=samples.append)
    with pytest.raises(GaveUp, match=re.escape(evidence)):
        sync.step(iter(notifications(1)))
    assert time.monotonic() - started < 5  # as soon as the answer came, not after the time-out
    assert samples[0].kind == "CONNECT" and samples[0].error and evidence in samples[0].error
    findings = sync.findings()
    assert findings["connect.answered"] == 1 and rule in findings
    server.close()


def test_an_endpoint_that_cannot_be_reached_is_a_connect_error_for_run_and_failed_samples_for_steps() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{probe.getsockname()[1]}/nbwss"
    samples: list[Sample] = []
    with pytest.raises(ConnectError, match=r"connection refused by 127\.0\.0\.1"):
        SyncMaster([Target(url, "t")], on_sample=samples.append).run(notifications(1))
    sync = SyncMaster([Target(url, "t")], Settings(properties=QUICK, reconnect_attempts=3), on_sample=samples.append)
    with pytest.raises(GaveUp, match="no connection in 3 attempts"):
        sync.step(iter(notifications(1)))
    assert len(samples) == 4 and all(s.kind == "CONNECT" and s.error and "connection refused" in s.error for s in samples)


def test_works_under_gevent_monkey_patching(endpoint: ReferenceEndpoint, tmp_path: Path) -> None:
    # In a process of its own: patching this one would break every asyncio test after it.
    script = tmp_path / "greenlets.py"
    script.write_text(
        "from gevent import monkey; monkey.patch_all()\n"
        "import itertools, sys, gevent\n"
        "from emulator.scenario import Timeline, load\n"
        "from emulator.sync import SyncMaster\n"
        "from emulator.protocol.run import Settings, Target\n"
        "def one(seed):\n"
        "    messages = list(itertools.islice(Timeline(load('restore'), seed=seed).notifications(repeat=True), 200))\n"
        "    report = SyncMaster([Target(sys.argv[1], sys.argv[2])], Settings(window=8)).run(messages)\n"
        "    return report.established, len(report.lost), report.sent\n"
        "jobs = [gevent.spawn(one, seed) for seed in range(5)]\n"
        "gevent.joinall(jobs, timeout=60)\n"
        "print([job.value for job in jobs])\n"
    )
    done = subprocess.run(
        [sys.executable, str(script), endpoint.url, endpoint.token], capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str([(1, 0, 200)] * 5)
    assert len(set(ids(endpoint))) == 1000


def test_prepared_notifications_go_as_they_were_checked_and_a_bad_one_is_a_finding_on_the_master(
    endpoint: ReferenceEndpoint,
) -> None:
    messages = notifications(6)
    assert isinstance(messages, list)
    prepared, problems = prepare(iter(messages[:5]), 5)
    assert not problems and [p.message_id for p in prepared] == [m["id"] for m in messages[:5]]
    samples: list[Sample] = []
    sync = master(endpoint, samples)
    report = sync.run(itertools.chain(prepared, [messages[5]]))  # prepared, then generated: one stream
    assert not report.lost and ids(endpoint) == [m["id"] for m in messages]
    assert [s.name for s in samples if s.kind == "NBWSS"][:5] == [p.name for p in prepared]
    _, problems = prepare(iter([{**messages[0], "version": 2}]), 1)
    sync.record(problems)
    assert set(sync.findings()) == {"master.frames-valid"}


def test_drain_waits_for_what_is_in_flight_and_reports_the_rest_lost_without_waiting_on_a_dead_endpoint(
    loop: LoopThread, endpoint: ReferenceEndpoint
) -> None:
    samples: list[Sample] = []
    sync = master(endpoint, samples, window=4, ack_timeout=10, properties=NbwssProperties(resend_interval=0.2))
    source = iter(notifications(100))
    sync.step(source)
    endpoint.fault = Fault.NO_ACK
    while len(sync.session.pending) < 4:
        sync.step(source)  # each waits for a frame until the next resend is due
    loop.call(endpoint.stop())  # gone, with four pending: a drain must not wait out a reconnection's back-off
    started = time.monotonic()
    sync.drain(timeout=20)
    sync.close()
    assert time.monotonic() - started < 5
    lost = [s for s in samples if s.error and "before the master stopped" in s.error]
    assert len(lost) == 4 == len(sync.report.lost) and sync.findings()["ack.every-notification"] == 4


def test_late_acknowledgements_are_counted_in_the_findings_as_run_counts_them(endpoint: ReferenceEndpoint) -> None:
    """Each acknowledgement beyond the limit is one ack.within-timeout failure (the Locust summary prints these counts)."""
    endpoint.fault, endpoint.late_ack_delay = Fault.LATE_ACK, 0.3
    samples: list[Sample] = []
    sync = master(endpoint, samples, window=3, ack_timeout=0.1, properties=NbwssProperties(resend_interval=5))
    report = sync.run(notifications(3))
    assert not report.lost and report.late == 3
    assert sync.findings() == {"ack.within-timeout": 3}
    assert [s.error.split(" ")[0] for s in samples if s.kind == "NBWSS" and s.error] == ["[ack.within-timeout]"] * 3


def test_wss_is_verified_against_the_given_ca_and_an_unknown_one_refused(loop: LoopThread, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    authority, stranger = trustme.CA(), trustme.CA()
    authority.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    authority.cert_pem.write_to_path(tmp_path / "ca.pem")
    stranger.cert_pem.write_to_path(tmp_path / "other.pem")
    server = ReferenceEndpoint(keep=None, ssl_context=server_context(str(tmp_path / "server.pem")))
    loop.call(server.start(), timeout=10)
    try:
        assert server.url.startswith("wss://")
        samples: list[Sample] = []
        trusted = SyncMaster([Target(server.url, server.token)], Settings(properties=QUICK), tls=TlsOptions(cafile=str(tmp_path / "ca.pem")),
                             on_sample=samples.append)  # fmt: skip
        report = trusted.run(notifications(20))
        assert report.acknowledged == 20 and not report.lost and trusted.findings() == {}
        assert len([s for s in samples if s.kind == "NBWSS" and s.error is None]) == 20
        wait_for(lambda: len(server.notifications) == 20)
        untrusted = SyncMaster([Target(server.url, server.token)], tls=TlsOptions(cafile=str(tmp_path / "other.pem")))
        with pytest.raises(ConnectError, match=re.escape("TLS certificate verification failed for 127.0.0.1")):
            untrusted.run(notifications(1))
    finally:
        loop.call(server.stop(), timeout=10)
