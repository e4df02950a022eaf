"""run, replay, serve and rules as a user calls them: real sockets on loopback, real files."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import cli as run
from helpers import free_port

from emulator.contract.rules import RULES

FAST = ["--resend-interval", "0.2", "--ack-timeout", "0.2", "--reconnect-period", "0.5"]


def test_run_with_no_endpoint_passes_against_the_embedded_one_and_writes_reports(capsys, tmp_path: Path) -> None:
    paths = {name: tmp_path / f"r.{name}" for name in ("json", "xml", "jsonl")}
    code, out, err = run(capsys, "run", "--json", str(paths["json"]), "--junit", str(paths["xml"]), "--transcript", str(paths["jsonl"]))
    assert code == 0, out + err
    assert "verdict: PASS" in out and "ack.every-notification" in out and "p99" in out
    report = json.loads(paths["json"].read_text())
    assert report["verdict"] == "pass" and report["embedded_endpoint"] is True
    assert {r["id"] for r in report["rules"]} == {r.id for r in RULES}
    assert report["stats"]["lost"] == 0 and report["stats"]["acknowledged"] == report["stats"]["sent"] > 0
    suite = ET.parse(paths["xml"]).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == str(len(RULES)) and suite.get("failures") == "0"
    assert len(paths["jsonl"].read_text().splitlines()) > 2 * report["stats"]["sent"]
    assert "eyJ…(" in paths["jsonl"].read_text()  # the endpoint logged in: its JWT went by, redacted
    for text in [out, err, *(p.read_text() for p in paths.values())]:
        assert not re.search(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", text)  # no JWT in any output


def test_run_reports_a_faulty_endpoint_with_exit_1_and_evidence(capsys, tmp_path: Path) -> None:
    junit = tmp_path / "j.xml"
    code, out, _ = run(capsys, "run", "--fault", "no-ack", *FAST, "--junit", str(junit), "--no-probes")
    assert code == 1
    assert "verdict: FAIL" in out
    case = next(c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == "ack.every-notification")
    failure = case.find("failure")
    assert failure is not None and "never acknowledged" in (failure.text or "")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["run", "--endpoint", "ws://127.0.0.1:{port}/nbwss", "--token", "t", "--connect-timeout", "2"],
            "no connection: connection refused by 127.0.0.1:",
        ),
        (["run", "--endpoint", "ws://127.0.0.1:1/x"], "--endpoint needs --token"),
        (["run", "--token", "t"], "--token needs --endpoint"),
        (["run", "--fault", "gremlins"], "unknown fault 'gremlins'"),
        (["run", "--fault", "no-ack", "--endpoint", "ws://h/x", "--token", "t"], "cannot be used with --endpoint"),
        (["run", "--window", "0"], "--window: must be at least 1"),
        (["run", "--rate", "-5"], "--rate: must be more than 0"),
        (["run", "--cafile", "/no/such/ca.pem"], "--cafile /no/such/ca.pem: no such file"),
        (["run", "--nbu-version", "7.5"], "invalid choice: '7.5'"),
        (["run", "nope"], "unknown scenario 'nope'"),
        (["replay", "/no/such/transcript.jsonl"], "cannot read"),
        (["serve", "--port", "70000"], "not a port number"),
        (["serve", "--keyfile", "k.pem"], "--keyfile needs --certfile"),
        (["serve", "--fault", "gremlins"], "unknown fault"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expected) -> None:
    argv = [a.replace("{port}", str(free_port())) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2, out + err
    assert err.count("\n") == 1 and err.startswith("nbwss-emu: error: ") and expected in err, err


def test_a_bad_properties_file_names_its_line(capsys, tmp_path: Path) -> None:
    path = tmp_path / "nbwss.properties"
    path.write_text("# tuned\nnotification.scheduledRate=5\nkeepAlive.scheduledRate=often\n")
    code, _, err = run(capsys, "run", "--properties", str(path))
    assert code == 2
    assert f"{path}:3: keepAlive.scheduledRate:" in err
    path.write_text("colour=blue\n")
    assert "unknown property 'colour'" in run(capsys, "run", "--properties", str(path))[2]


def test_a_properties_file_sets_the_timings(capsys, tmp_path: Path) -> None:
    path = tmp_path / "nbwss.properties"
    path.write_text("notification.scheduledRate=0.2\nnotification.sendTimeout=200\nexception.ignoreDecoder=true\n")
    code, out, _ = run(capsys, "run", "--properties", str(path), "--fault", "malformed-json", "--no-probes", "--quiet")
    assert code == 1  # frames.json fails, but with ignoreDecoder the master keeps its one connection
    assert "FAIL" in out


def test_a_bad_registration_file_is_bad_input(capsys, tmp_path: Path) -> None:
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps([{"url": "http://x", "token": "t"}]))
    code, _, err = run(capsys, "run", "--endpoints", str(path))
    assert code == 2 and "endpoint 1: url must be a ws:// or wss:// URL" in err


def test_rules_lists_every_rule(capsys) -> None:
    code, out, _ = run(capsys, "rules")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [r.id for r in RULES]


def test_replay_sends_a_transcripts_notifications_again(capsys, tmp_path: Path) -> None:
    transcript = tmp_path / "t.jsonl"
    assert run(capsys, "run", "restore", "--no-probes", "--transcript", str(transcript), "--json", str(tmp_path / "first.json"))[0] == 0
    first = json.loads((tmp_path / "first.json").read_text())
    code, out, _ = run(capsys, "replay", str(transcript), "--json", str(tmp_path / "again.json"))
    assert code == 0, out
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["stats"]["sent"] == first["stats"]["sent"] and again["stats"]["lost"] == 0
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"t": 0, "conn": 1, "dir": "in", "text": "x"}\n')
    assert "no NOTIFICATION REQUEST" in run(capsys, "replay", str(empty))[2]


@pytest.fixture
def served(tmp_path: Path):
    """`nbwss-emu serve` in its own process, on a free port, with a known token."""
    token = "serve-token-" + os.urandom(8).hex()
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--token", token],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()  # blocks until the server is listening
    assert line.startswith("reference endpoint listening on ws://127.0.0.1:"), line + process.stderr.read()
    yield line.split()[-1], token, process
    if process.poll() is None:
        process.kill()
    process.communicate()  # reaps it and closes the pipes


@pytest.mark.slow
def test_serve_then_run_against_it_over_the_network(capsys, served, tmp_path: Path) -> None:
    url, token, process = served
    outputs = [tmp_path / "r.json", tmp_path / "r.xml", tmp_path / "t.jsonl"]
    code, out, err = run(
        capsys,
        "run",
        "--endpoint",
        url,
        "--token",
        token,
        "--json",
        str(outputs[0]),
        "--junit",
        str(outputs[1]),
        "--transcript",
        str(outputs[2]),
    )
    assert code == 0, out + err
    assert "transport.wss" in out and "warning" in out  # ws:// is not what a real master accepts
    for text in [out, err, *(p.read_text() for p in outputs)]:
        assert token not in text  # the token never leaves the process
        assert not re.search(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", text)  # nor the JWT from /netbackup/login
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "stopped;" in stdout and "notifications received" in stdout


@pytest.mark.slow
def test_run_with_a_registration_file_fails_over_within_the_group(capsys, served, tmp_path: Path) -> None:
    url, token, _ = served
    path = tmp_path / "endpoints.json"
    dead = f"ws://127.0.0.1:{free_port()}/nbwss"
    path.write_text(json.dumps([
        {"url": dead, "token": token, "groupId": "eu", "priority": 1, "hostName": "a"},
        {"url": url, "token": token, "groupId": "eu", "priority": 2, "hostName": "b"},
    ]))  # fmt: skip
    code, out, _ = run(capsys, "run", "--endpoints", str(path), "--quiet", "--no-probes")
    assert code == 0
    assert f"against {url}: PASS" in out


def test_insecure_is_warned_about(capsys) -> None:
    code, _, err = run(capsys, "run", "--insecure", "--quiet", "--no-probes")
    assert code == 0
    assert "warning: --insecure" in err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.slow
def test_a_signal_stops_run_within_a_second_and_reports_what_happened(tmp_path: Path, signum: int, code: int, timing: float) -> None:
    outputs = {name: tmp_path / name for name in ("r.json", "r.xml", "t.jsonl")}
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "run", "datacenter-day", "--speed", "600",
         "--json", str(outputs["r.json"]), "--junit", str(outputs["r.xml"]), "--transcript", str(outputs["t.jsonl"])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        line = process.stderr.readline()  # printed at the first acknowledgement
        assert "streaming datacenter-day" in line, line
        sent = time.monotonic()
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=10)
        stopped_in = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == code, stdout + stderr
    assert stopped_in < 1.5 * timing
    assert "Traceback" not in stderr and f"interrupted by {signal.Signals(signum).name}" in stderr
    assert "INTERRUPTED" in stdout
    report = json.loads(outputs["r.json"].read_text())
    assert report["verdict"] == "interrupted"
    assert report["stats"]["acknowledged"] > 0
    assert report["stats"]["acknowledged"] + report["stats"]["lost"] == report["stats"]["sent"]
    assert ET.parse(outputs["r.xml"]).getroot().find("testsuite") is not None
    assert len(outputs["t.jsonl"].read_text().splitlines()) > 2


def test_run_with_probes_reports_them_everywhere(capsys, tmp_path: Path) -> None:
    code, out, _ = run(
        capsys, "run", "--probe", "burst", "--probe", "out-of-order", "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml")
    )
    assert code == 0
    assert "robustness probes" in out and "burst" in out and "handled" in out
    assert [p["name"] for p in json.loads((tmp_path / "r.json").read_text())["probes"]] == ["burst", "out-of-order"]
    cases = [c.get("name") for c in ET.parse(tmp_path / "r.xml").getroot().iter("testcase") if c.get("classname") == "nbwss.probe"]
    assert cases == ["burst", "out-of-order"]
    assert "unknown probe 'sideways'" in run(capsys, "run", "--probe", "sideways")[2]


def test_serve_on_a_port_in_use_is_one_line_and_exit_2(capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, err = run(capsys, "serve", "--port", str(busy.getsockname()[1]))
    assert code == 2
    assert err.count("\n") == 1 and "cannot listen on 127.0.0.1:" in err and "in use" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--endpoint", "http://127.0.0.1:1/x", "--token", "t"], "no connection: not a WebSocket URL"),
        (["run", "--endpoint", "ws://nbwss-test.invalid/x", "--token", "t"], "no connection: cannot resolve host nbwss-test.invalid"),
        (["run", "{bad_yaml}"], "not valid YAML"),
        (["run", "{directory}"], "no such scenario file"),
        (["replay", "{garbage}"], "not a transcript line"),
        (["serve", "--certfile", "/no/such/cert.pem"], "cannot load the certificate"),
        (["run", "--properties", "{directory}"], "cannot read"),
        (["run", "--endpoints", "{garbage}"], "not JSON"),
        (["validate", "{directory}"], "cannot read"),
        (["generate", "{bad_yaml}"], "not valid YAML"),
        (["scenarios", "show", "{bad_yaml}"], "not valid YAML"),
    ],
)
def test_every_verb_turns_bad_files_and_urls_into_one_line(capsys, tmp_path: Path, argv, expected) -> None:
    (tmp_path / "bad.yaml").write_text("description: x\nsteps: [\n")
    (tmp_path / "garbage.txt").write_text("this is not\n{json\n")
    values = {"{bad_yaml}": str(tmp_path / "bad.yaml"), "{directory}": str(tmp_path), "{garbage}": str(tmp_path / "garbage.txt")}
    code, out, err = run(capsys, *(values.get(a, a) for a in argv))
    assert code == 2, out + err
    assert err.count("\n") == 1 and expected in err, err
