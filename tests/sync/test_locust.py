"""The same scenarios as Locust users: distributed, through an endpoint restart, and with bad options."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port

from emulator import state
from emulator.diffstate import diff
from emulator.endpoint.server import Fault, ReferenceEndpoint
from emulator.harness import EndpointHandle, LoopThread

# Only subprocesses run Locust: importing it here would let gevent monkey-patch this
# process and break every asyncio test after it.
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed", allow_module_level=True)

LOCUSTFILE = str(Path(__file__).resolve().parents[2] / "emulator" / "locustfile.py")
LOCUST = [sys.executable, "-m", "locust", "-f", LOCUSTFILE]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` (the endpoint's state, changed by another process) until it holds."""
    limit = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < limit, "timed out"
        time.sleep(0.02)


def reap(locust: subprocess.Popen[str]) -> None:
    """Kill a Locust process the test is leaving behind (it failed before Locust ended), and wait for it."""
    if locust.poll() is None:
        locust.kill()
        locust.communicate()


def stats(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Locust's final figures (--json-file), by (request type, name)."""
    return {(entry["method"], entry["name"]): entry for entry in json.loads(path.read_text())}


@pytest.fixture
def endpoint(loop: LoopThread) -> Iterator[EndpointHandle]:
    handle = EndpointHandle(loop, keep=None)
    yield handle
    handle.close()


@pytest.mark.slow
def test_headless_locust_master_with_two_workers(endpoint: EndpointHandle, tmp_path: Path, timing: float) -> None:
    locustfile = subprocess.run([sys.executable, "-m", "emulator", "locustfile"], capture_output=True, text=True, check=True).stdout.strip()
    assert locustfile == LOCUSTFILE
    port = free_port()
    workers = [
        subprocess.Popen(
            [*LOCUST, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        master = subprocess.run(
            [*LOCUST, "--headless", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
             "--expect-workers", "2", "--expect-workers-max-wait", "30", "-u", "4", "-r", "4", "-t", f"{round(2 * timing)}s",
             "--host", endpoint.url, "--nbwss-token", endpoint.token, "--nbwss-scenario", "restore", "--nbwss-window", "8",
             "--csv", str(tmp_path / "run"), "--only-summary"],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
    finally:
        for worker in workers:
            try:
                worker.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.communicate()
    assert master.returncode == 0, master.stderr[-2000:]
    with (tmp_path / "run_stats.csv").open() as rows_file:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(rows_file)}
    assert int(rows[("CONNECT", "CONNECT")]["Request Count"]) == 4  # one per user: each user is a master
    notifications = {name: row for (kind, name), row in rows.items() if kind == "NBWSS"}
    assert notifications and all(name.startswith("NOTIFICATION ") for name in notifications), rows
    total = sum(int(row["Request Count"]) for row in notifications.values())
    assert total > 50 and all(row["Failure Count"] == "0" for row in notifications.values()), rows
    assert len(endpoint.received) >= total  # one sample per notification and its acknowledgement


def test_users_reconnect_and_resend_with_the_endpoint_restarted_under_them_nothing_lost(loop: LoopThread, tmp_path: Path) -> None:
    endpoint = ReferenceEndpoint(keep=None)
    loop.call(endpoint.start(), timeout=10)
    properties = tmp_path / "nbwss.properties"
    # No resend for want of an ack during the test (every resend below is a reconnect's), a short back-off.
    properties.write_text("notification.scheduledRate=60\nconnectionInfo.period=0.5\nnotification.sendTimeout=30000\n")
    users, window = 3, 4
    locust = subprocess.Popen(
        [*LOCUST, "--headless", "-u", str(users), "-r", str(users), "-t", "6s", "--host", endpoint.url,
         "--nbwss-token", endpoint.token, "--nbwss-scenario", "restore", "--nbwss-window", str(window),
         "--nbwss-properties", str(properties), "--json-file", str(tmp_path / "run"), "--only-summary"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def received() -> list[str]:
        return [message["id"] for message in endpoint.notifications]

    try:
        wait_for(lambda: endpoint.connects == users and len(received()) > 100)
        endpoint.fault = Fault.NO_ACK  # every user's window fills and stays pending
        connections = list(endpoint.connections)
        before = [len(c.session.notifications) for c in connections]
        wait_for(lambda: all(len(c.session.notifications) >= n + window for c, n in zip(connections, before, strict=True)))
        loop.call(endpoint.stop(), timeout=10)  # the endpoint goes away with the windows pending
        pending = [m["id"] for c, n in zip(connections, before, strict=True) for m in list(c.session.notifications)[n:]]
        endpoint.fault = None
        loop.call(endpoint.start(), timeout=10)  # the same port
        wait_for(lambda: endpoint.connects == 2 * users)
        _, err = locust.communicate(timeout=60)
    finally:
        reap(locust)
        loop.call(endpoint.stop(), timeout=10)
    assert locust.returncode in (0, 1), err[-2000:]  # 1: CONNECT attempts failed while the endpoint was down
    assert "Traceback" not in err
    ids = received()
    assert all(ids.count(message_id) >= 2 for message_id in pending), [ids.count(m) for m in pending]  # resent after the new CONNECT
    figures = stats(tmp_path / "run.json")
    samples = [entry for (kind, _), entry in figures.items() if kind == "NBWSS"]
    assert sum(entry["num_failures"] for entry in samples) == 0, figures  # nothing lost, nothing late
    assert sum(entry["num_requests"] for entry in samples) == len(set(ids))  # each notification acknowledged, once
    assert figures[("CONNECT", "CONNECT")]["num_requests"] - figures[("CONNECT", "CONNECT")]["num_failures"] == 2 * users


def expected_state_of_a_locust_run(endpoint: EndpointHandle, tmp_path: Path, distributed: bool, timing: float) -> dict[str, Any]:
    """A run of one user with --nbwss-expect-state, local or on a worker of a master; the file it wrote."""
    path = tmp_path / "expected.json"
    options = [*LOCUST, "--headless", "-u", "1", "-r", "1", "-t", f"{round(2 * timing)}s", "--host", endpoint.url,
               "--nbwss-token", endpoint.token, "--nbwss-scenario", "restore", "--nbwss-window", "8",
               "--nbwss-expect-state", str(path), "--only-summary"]  # fmt: skip
    worker = None
    if distributed:
        port = free_port()
        options += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--expect-workers", "1"]
        worker = subprocess.Popen(
            [*LOCUST, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    try:
        done = subprocess.run(options, capture_output=True, text=True, timeout=90, check=False)
    finally:
        if worker is not None:
            try:
                worker.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.communicate()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return state.read(path)


@pytest.mark.parametrize("distributed", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["local", "master-and-worker"])
def test_locust_expect_state_is_what_the_reference_store_holds(
    endpoint: EndpointHandle, tmp_path: Path, timing: float, distributed: bool
) -> None:
    expected = expected_state_of_a_locust_run(endpoint, tmp_path, distributed, timing)
    ((name, master),) = expected["masters"].items()  # the user's master, by its host name
    assert re.fullmatch(r"nbu-[a-z]+-primary01\.[a-z.-]+", name), name
    assert len(master["jobs"]) > 5 and master["images"]
    assert diff(expected, endpoint.state()) == []  # the store files the one registration's master under its own name


def test_locust_expect_state_to_an_unwritable_path_is_one_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [*LOCUST, "--headless", "-u", "1", "-r", "1", "-t", "2s", "--host", "ws://127.0.0.1:9/nbwss", "--nbwss-token", "t",
         "--nbwss-expect-state", str(tmp_path / "no" / "x.json")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("nbwss-emulator: ")]
    assert len(errors) == 1 and "--nbwss-expect-state" in errors[0] and "no folder" in errors[0], done.stderr[-2000:]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--nbwss-token", "t", "--nbwss-scenario", "no-such-scenario"], "no-such-scenario"),
        (["--nbwss-scenario", "restore"], "no token: pass --nbwss-token"),
        (["--nbwss-token", "t", "--nbwss-window", "0"], "--nbwss-window must be at least 1"),
    ],
)
def test_bad_options_are_one_clear_error_not_a_traceback_per_user(options: list[str], message: str) -> None:
    done = subprocess.run(
        [*LOCUST, "--headless", "-u", "5", "-r", "5", "-t", "2s", "--host", "ws://127.0.0.1:9/nbwss", *options],
        capture_output=True, text=True, timeout=60, check=False, env={k: v for k, v in os.environ.items() if k != "NBWSS_TOKEN"},
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("nbwss-emulator: ")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]


def test_a_refused_token_is_a_failed_connect_sample_with_the_reason(endpoint: EndpointHandle, tmp_path: Path) -> None:
    done = subprocess.run(
        [*LOCUST, "--headless", "-u", "3", "-r", "3", "-t", "2s", "--host", endpoint.url, "--nbwss-token", "wrong",
         "--nbwss-scenario", "restore", "--only-summary"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 1  # Locust's exit code for failed samples
    errors = [line.split() for line in (done.stdout + done.stderr).splitlines() if "NbwssFinding" in line]
    assert errors == [["3", "CONNECT", "CONNECT:", "NbwssFinding('[connect.accepts-token]", "CONNECT", "answered", "valid:", "false')"]]
    assert not endpoint.received


def generator_of(locust: subprocess.Popen[str]) -> Any:
    """The generator child of a local Locust run (a psutil.Process, as Locust brings psutil), once its first user started it."""
    import psutil  # noqa: PLC0415

    found: list[psutil.Process] = []

    def started() -> bool:
        found[:] = [c for c in psutil.Process(locust.pid).children() if "emulator.load.generation" in " ".join(c.cmdline())]
        return bool(found) or locust.poll() is not None

    wait_for(started)
    assert len(found) == 1, found  # one for all the process's users
    return found[0]


def test_the_users_notifications_come_from_one_generator_process_that_ends_with_the_test(endpoint: EndpointHandle, tmp_path: Path) -> None:
    locust = subprocess.Popen(
        [*LOCUST, "--headless", "-u", "3", "-r", "3", "-t", "3s", "--host", endpoint.url, "--nbwss-token", endpoint.token,
         "--nbwss-scenario", "restore", "--nbwss-window", "4", "--nbwss-prepare", "50", "--json-file", str(tmp_path / "run"),
         "--only-summary"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        child = generator_of(locust)
        _, err = locust.communicate(timeout=60)
    finally:
        reap(locust)
    assert locust.returncode == 0 and "Traceback" not in err, err[-2000:]
    assert not child.is_running()  # closed at the test's stop: it does not outlive Locust
    figures = stats(tmp_path / "run.json")
    samples = {name: entry for (kind, name), entry in figures.items() if kind == "NBWSS"}
    assert samples and all(name.startswith("NOTIFICATION ") for name in samples), samples  # named by the child
    assert sum(entry["num_requests"] for entry in samples.values()) == len({m["id"] for m in endpoint.received}) > 150


def test_a_generator_that_dies_stops_the_users_once_what_they_sent_is_settled(
    endpoint: EndpointHandle, tmp_path: Path, timing: float
) -> None:
    locust = subprocess.Popen(
        [*LOCUST, "--headless", "-u", "2", "-r", "2", "-t", f"{round(6 * timing)}s", "--host", endpoint.url,
         "--nbwss-token", endpoint.token, "--nbwss-scenario", "restore", "--nbwss-window", "4",
         "--json-file", str(tmp_path / "run"), "--only-summary"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        child = generator_of(locust)
        wait_for(lambda: len(endpoint.received) > 50)
        child.kill()
        # The users send what was buffered, settle it, and stop; Locust runs on with none until its time is up.
        _, err = locust.communicate(timeout=60)
    finally:
        reap(locust)
    assert "Traceback" not in err, err[-2000:]
    assert err.count("the notification generator ended (exit -9)") == 1, err[-2000:]  # said once, not once per user
    figures = stats(tmp_path / "run.json")
    samples = [entry for (kind, _), entry in figures.items() if kind == "NBWSS"]
    assert sum(entry["num_failures"] for entry in samples) == 0, figures
    assert sum(entry["num_requests"] for entry in samples) == len({m["id"] for m in endpoint.received})  # each acknowledged
    assert figures[("CONNECT", "CONNECT")]["num_requests"] == 2  # the users stopped: no new ones with a new generator


def test_command_answers_come_from_the_users_domain_as_far_as_it_was_sent(endpoint: EndpointHandle, timing: float) -> None:
    # Prepared well ahead: the generator's domain is hundreds of notifications past what the endpoint was told.
    locust = subprocess.Popen(
        [*LOCUST, "--headless", "-u", "1", "-r", "1", "-t", f"{round(4 * timing)}s", "--host", endpoint.url,
         "--nbwss-token", endpoint.token, "--nbwss-scenario", "restore", "--nbwss-window", "1", "--nbwss-prepare", "400",
         "--only-summary"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: len(endpoint.received) > 10)
        endpoint.login()
        jobs = endpoint.command("/netbackup/admin/jobs?page[limit]=100")
        notified = {item["jobId"] for item in endpoint.items("JOB")}  # what was sent before the answer came first
        _, err = locust.communicate(timeout=60)
    finally:
        reap(locust)
    assert "Traceback" not in err, err[-2000:]
    assert jobs["payload"]["statusCode"] == 200, jobs
    answered = {int(job["id"]) for job in jobs["payload"]["body"]["data"]}
    # The domain replayed to the last notification sent may already hold the jobs of that instant whose notification
    # is the next one (a step ahead), never the hundreds the generator prepared.
    ahead = answered - notified
    assert answered and len(ahead) <= 5 and all(job > max(notified) for job in ahead), (sorted(ahead)[:10], len(notified))
