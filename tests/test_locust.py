"""The same scenarios as Locust users, distributed: one Locust master and two workers on loopback."""

from __future__ import annotations

import csv
import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.harness import EndpointHandle, LoopThread

# Only subprocesses run Locust: importing it here would let gevent monkey-patch this
# process and break every asyncio test after it.
if importlib.util.find_spec("locust") is None:
    pytest.skip("locust is not installed", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def endpoint():
    loop = LoopThread()
    handle = EndpointHandle(loop, keep=None)
    yield handle
    handle.close()
    loop.stop()


@pytest.mark.slow
def test_headless_locust_master_with_two_workers(endpoint: EndpointHandle, tmp_path: Path, timing: float) -> None:
    locustfile = subprocess.run([sys.executable, "-m", "emulator", "locustfile"], capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    locust = [sys.executable, "-m", "locust", "-f", locustfile]
    workers = [
        subprocess.Popen(
            [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        master = subprocess.run(
            [*locust, "--headless", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
             "--expect-workers", "2", "--expect-workers-max-wait", "30", "-u", "4", "-r", "4", "-t", f"{round(2 * timing)}s",
             "--host", endpoint.url, "--nbwss-token", endpoint.token, "--nbwss-scenario", "restore",
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
    with (tmp_path / "run_stats.csv").open() as stats:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(stats)}
    assert int(rows[("CONNECT", "CONNECT")]["Request Count"]) == 4  # one per user: each user is a master
    notifications = {name: row for (kind, name), row in rows.items() if kind == "NBWSS"}
    assert notifications and all(name.startswith("NOTIFICATION ") for name in notifications)
    total = sum(int(row["Request Count"]) for row in notifications.values())
    assert total > 50 and all(row["Failure Count"] == "0" for row in notifications.values())
    assert len(endpoint.received) >= total  # one sample per notification and its acknowledgement
