"""The same REST face over HTTPS: a real HTTPS client over loopback, as Veritas' samples call it."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from emulator.cli import main
from emulator.rest import CommandResponder
from emulator.rest.https import RestServer
from emulator.scenario import Timeline, load

V12 = "application/vnd.netbackup+json;version=12.0"

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def master():
    timeline = Timeline(load("restore"))
    list(timeline.messages())
    return timeline.masters["primary"]


def fetch(
    context: ssl.SSLContext, url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            raw = response.read()
            return response.status, dict(response.headers.items()), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, dict(error.headers.items()), json.loads(raw) if raw else None


def test_the_samples_flow_login_filter_and_follow_next(master) -> None:
    with RestServer(CommandResponder(master, profile="10.5", credentials={"admin": "s3cret"}), port=0) as server:
        context = ssl.create_default_context(cadata=server.ca_pem.decode())
        assert server.url.startswith("https://127.0.0.1:") and server.port != 0
        status, _, body = fetch(context, server.url + "/login", "POST", {"userName": "admin", "password": "bad"}, {"Content-Type": V12})
        assert status == 401 and body["errorCode"] == 46
        login = {"domainType": "vx", "domainName": "mydomain", "userName": "admin", "password": "s3cret"}
        status, headers, body = fetch(context, server.url + "/login", "POST", login, {"content-type": V12})
        assert status == 201 and headers["content-type"] == V12
        auth = {"Authorization": body["token"], "Accept": V12}
        url = (
            server.url
            + "/admin/jobs?page%5Blimit%5D=3&filter="
            + urllib.request.quote("(status eq 0 or status eq 1) and jobType eq 'BACKUP'")
        )
        seen = []
        while url:
            status, headers, body = fetch(context, url, headers=auth)
            assert status == 200 and headers["content-type"] == V12
            seen.extend(d["attributes"]["jobId"] for d in body["data"])
            url = body["links"].get("next", {}).get("href")
            assert url is None or url.startswith(server.url)
        expected = {j.job_id for j in master.jobs.values() if j.job_type == "BACKUP" and j.status in (0, 1)}
        assert set(seen) == expected and len(seen) == len(expected)
        status, _, body = fetch(context, server.url + "/admin/jobs", headers={"Accept": V12})
        assert status == 401 and set(body) >= {"errorCode", "errorMessage"}
        status, _, _ = fetch(context, server.url + "/admin/jobs", "DELETE", headers=auth)
        assert status == 405


def test_a_given_certificate_and_the_shared_state(master, tmp_path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "master.pem"))
    responder = CommandResponder(master, profile="10.5")
    with RestServer(responder, port=0, certfile=str(tmp_path / "master.pem")) as server:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        status, _, body = fetch(context, server.url + "/login", "POST", {"userName": "u", "password": "p"}, {"Content-Type": V12})
        assert status == 201
        server_vm = {"serverName": "vc01", "vmType": "VMWARE_VIRTUAL_CENTER_SERVER", "userId": "svc", "password": "pw"}
        status, _, answer = fetch(
            context, server.url + "/config/servers/vmservers", "POST", server_vm, {"Authorization": body["token"], "Content-Type": V12}
        )
        assert status == 201 and answer is None
        assert "vc01" in master.vm_servers  # one state: what HTTPS changes, the COMMAND face sees
        untrusting = ssl.create_default_context()
        with pytest.raises(urllib.error.URLError):
            fetch(untrusting, server.url + "/login", "POST", {"userName": "u", "password": "p"})
    master.vm_servers.pop("vc01", None)


def test_the_master_command_serves_a_scenarios_master_until_interrupted(tmp_path) -> None:
    cafile = tmp_path / "ca.pem"
    command = [
        sys.executable,
        "-m",
        "emulator",
        "master",
        "restore",
        "--port",
        "0",
        "--cafile-out",
        str(cafile),
        "--user",
        "admin",
        "--password",
        "pw",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        assert "serving https://127.0.0.1:" in first, first + process.stderr.read()
        url = first.split("serving ")[1].strip()
        process.stdout.readline()
        context = ssl.create_default_context(cafile=str(cafile))
        status, _, body = fetch(context, url + "/login", "POST", {"userName": "admin", "password": "pw"}, {"Content-Type": V12})
        assert status == 201
        status, _, jobs = fetch(context, url + "/admin/jobs?page%5Blimit%5D=100", headers={"Authorization": body["token"], "Accept": V12})
        assert status == 200 and {j["attributes"]["jobType"] for j in jobs["data"]} >= {"BACKUP", "RESTORE"}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 128 + signal.SIGTERM
        process.stdout.close()
        process.stderr.close()


def test_the_master_command_refuses_bad_input() -> None:
    assert main(["master", "nope-no-such-scenario", "--port", "0"]) == 2
    assert main(["master", "--user", "admin", "--port", "0"]) == 2
    assert main(["master", "--nbu-version", "7.5", "--port", "0"]) == 2


def test_the_pytest_fixture_serves_the_masters_state(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from emulator.protocol.properties import NbwssProperties

        @pytest.fixture(scope="session")
        def nbwss_properties():
            return NbwssProperties(resend_interval=0.2, send_timeout=0.3, connection_period=0.5)
        """
    )
    pytester.makepyfile(
        test_rest="""
        import json
        import urllib.request

        V12 = "application/vnd.netbackup+json;version=12.0"

        def call(server, path, body=None, **headers):
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(server.url + path, data=data, headers={"Content-Type": V12, **headers})
            with urllib.request.urlopen(request, context=server.client_context(), timeout=10) as response:
                return json.loads(response.read())

        def test_rest_clients_read_what_the_operations_did(nbwss_master, nbwss_rest_master):
            nbwss_master.backup(policy_type="STANDARD").assert_all_acknowledged()
            token = call(nbwss_rest_master, "/login", {"userName": "u", "password": "p"})["token"]
            jobs = call(nbwss_rest_master, "/admin/jobs?page%5Blimit%5D=100", Authorization=token, Accept=V12)
            assert {j["attributes"]["jobId"] for j in jobs["data"]} == set(nbwss_master.master.jobs)
            assert jobs["data"] and "next" not in jobs["meta"]["pagination"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1)


def test_a_bug_of_ours_is_netbackups_500_and_the_server_goes_on(master, monkeypatch) -> None:
    responder = CommandResponder(master, profile="10.5")
    with RestServer(responder, port=0) as server:
        context = server.client_context()

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(responder, "handle", broken)
        status, _, body = fetch(context, server.url + "/admin/jobs")
        assert status == 500 and body["errorCode"] == 9999 and "boom" in body["errorDetails"][0]
        monkeypatch.undo()
        status, _, _ = fetch(context, server.url + "/admin/jobs")
        assert status == 401
