"""nbwss-emu load: many masters against one endpoint, thresholds deciding the exit code."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html as htmllib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import cli as run

from emulator import state
from emulator.diffstate import diff
from emulator.endpoint.server import Fault, ReferenceEndpoint
from emulator.harness import EndpointHandle, LoopThread
from emulator.load.generator import Feed
from emulator.load.html import series
from emulator.load.metrics import FOLD_PER_ACK, LoadMetrics
from emulator.load.runner import FREEZE_INTERVAL, LoadConfig, LoadResult, _freeze_while_connecting, master_settings, run_load
from emulator.load.streams import MasterStream, feed_sizes
from emulator.load.thresholds import parse
from emulator.protocol.run import NOT_YET, Prepared, Target
from emulator.scenario import load as scenario
from emulator.state import AckRecorder


@pytest.mark.slow
def test_closed_model_against_the_reference_endpoint_in_its_own_process(capsys, tmp_path: Path) -> None:
    report = tmp_path / "load.json"
    code, out, err = run(
        capsys, "load", "--masters", "5", "--duration", "1.5", "--json", str(report),
        "--threshold", "lost==0", "--threshold", "findings==0",
    )  # fmt: skip
    assert code == 0, out + err
    figures = json.loads(report.read_text())
    assert figures["masters"] == 5 and figures["model"] == "closed, window 64"
    # notifications come from a generator process as the run goes, and it says what it used
    generation = figures["generation"]
    assert generation["cpu"] > 0 and generation["rss_peak_mib"] > 0 and generation["first_sent_s"] is not None
    assert generation["processes"] == min(5, os.cpu_count() or 1)  # one per core, at most one per master
    assert "notifications generated in " in out
    # the senders' own use, so that a saturated generator is not taken for a slow endpoint
    assert figures["generator_cpu"] > 0 and "load generator:" in out
    memory = figures["generator_memory"]
    assert memory["rss_peak_mib"] >= memory["rss_at_start_mib"] > 0
    assert memory["per_master_connection_kib"] is None  # five masters are too few to tell
    assert figures["connections_opened"] == 5 and figures["connections_dropped"] == 0
    assert figures["sent"] == figures["acknowledged"] > 100 and figures["lost"] == 0
    assert figures["ack_latency_ms"]["p99"] >= figures["ack_latency_ms"]["p50"] > 0
    assert sum(s["acknowledged"] for s in figures["per_second"]) == figures["acknowledged"]
    assert [t["met"] for t in figures["thresholds"]] == [True, True]
    assert "acked" in err and "p99" in err  # progress lines, one a second


def test_prepare_has_each_master_generate_that_many_before_the_clock_starts() -> None:
    """--prepare N: the clock starts with N notifications per master buffered, beyond what --buffer keeps ahead."""

    async def go() -> LoadResult:
        return await run_load(LoadConfig(scenario("smoke"), masters=2, duration=0.3, buffer=40, prepare=500))

    result = asyncio.run(go())
    assert result.generated >= 2 * 500  # without it, the buffer's 40 and what was sent
    assert result.metrics.sent > 0 and result.metrics.lost == 0


def test_the_masters_of_a_load_run_share_the_memory_of_acknowledged_ids() -> None:
    """65,536 remembered ids for each of 5,000 masters grew a run by 160 bytes a notification: they share them."""
    assert master_settings(LoadConfig(scenario("smoke"), masters=1)).ack_memory == 65_536
    assert master_settings(LoadConfig(scenario("smoke"), masters=1000)).ack_memory == 65
    assert master_settings(LoadConfig(scenario("smoke"), masters=5000)).ack_memory == 16  # at least
    assert master_settings(LoadConfig(scenario("smoke"), masters=2)).record_acks is False


def test_memory_is_bounded_by_the_buffer_not_the_duration() -> None:
    """The generator runs no further ahead of the senders than the buffer: a long run holds no more than a short one."""

    async def load_for(seconds: float) -> tuple[int, int]:
        config = LoadConfig(scenario("smoke"), masters=4, duration=seconds, buffer=400)
        result = await run_load(config)
        generated = result.generated
        return result.metrics.sent, generated

    sent, generated = asyncio.run(load_for(1.5))
    low, chunk = feed_sizes(4, 64, None, 400)
    assert sent > 1_000
    assert generated - sent <= 4 * (low + chunk)  # what was generated and not sent: the buffers' worth at most


@pytest.mark.slow
def test_open_model_keeps_its_rate_and_an_unmet_threshold_is_exit_1(capsys, tmp_path: Path) -> None:
    report = tmp_path / "load.json"
    code, out, _ = run(
        capsys, "load", "--masters", "4", "--rate", "400", "--duration", "1.5", "--json", str(report),
        "--threshold", "rate>=100000", "--quiet",
    )  # fmt: skip
    assert code == 1
    assert "threshold rate>=100000: NOT MET (measured " in out and "acknowledged/s; limit rate >= 100,000.0 acknowledged/s)" in out
    figures = json.loads(report.read_text())
    assert figures["model"] == "open, 400/s"
    assert 500 <= figures["sent"] <= 620  # 1.5 s at 400/s, whatever the endpoint does
    assert figures["lost"] == 0 and not figures["findings"]
    # every second of the run is there, the drain marked as such
    assert [s["second"] for s in figures["per_second"]] == list(range(len(figures["per_second"])))
    assert all(s["phase"] == "sending" for s in figures["per_second"][:2])
    assert all(s["phase"] == "drain" for s in figures["per_second"][2:])


@pytest.fixture
def endpoint() -> Iterator[EndpointHandle]:
    loop = LoopThread()
    handle = EndpointHandle(loop, probe_commands=True, late_ack_delay=0.4)
    try:
        yield handle
    finally:
        handle.close()
        loop.stop()


def test_a_faulty_endpoint_shows_in_the_figures_and_fails_without_thresholds(capsys, endpoint: EndpointHandle) -> None:
    endpoint.fault = "no-ack"
    code, out, _ = run(
        capsys, "load", "--masters", "2", "--duration", "0.5", "--endpoint", endpoint.url, f"--token={endpoint.token}",
        "--resend-interval", "0.2", "--ack-timeout", "0.2", "--window", "4", "--quiet",
    )  # fmt: skip
    assert code == 1  # lost notifications are a finding: no threshold needed
    assert "8 lost" in out and "finding ack.every-notification: 8" in out  # two masters, a window of 4 each


def test_refused_masters_are_findings_and_thresholds_do_not_hide_them(capsys) -> None:
    loop = LoopThread()
    endpoint = EndpointHandle(loop)
    try:
        code, out, _ = run(
            capsys, "load", "--masters", "3", "--duration", "0.5", "--endpoint", endpoint.url, "--token=wrong-token",
            "--threshold", "lost==0", "--threshold", "findings==0", "--quiet",
        )  # fmt: skip
    finally:
        endpoint.close()
        loop.stop()
    assert code == 1, out
    assert "0 sent" in out and "3 of 3 masters refused" in out
    assert "finding connect.accepts-token: 3" in out
    assert "threshold findings==0: NOT MET (measured 3 findings" in out


def test_no_master_connecting_at_all_is_exit_2(capsys) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    code, _, err = run(
        capsys, "load", "--masters", "2", "--duration", "0.5", "--endpoint", f"ws://127.0.0.1:{port}/nbwss", "--token=t", "--quiet"
    )
    assert code == 2
    assert "no connection: connection refused" in err and "Traceback" not in err


def test_late_acknowledgements_are_findings_as_in_run(capsys, endpoint: EndpointHandle) -> None:
    endpoint.fault = "late-ack"  # each ack 0.4 s after its notification
    code, out, _ = run(
        capsys, "load", "--masters", "1", "--duration", "0.3", "--window", "2", "--endpoint", endpoint.url, f"--token={endpoint.token}",
        "--ack-timeout", "0.1", "--resend-interval", "5", "--quiet",
    )  # fmt: skip
    assert code == 1
    assert "finding ack.within-timeout:" in out and " 0 late" not in out


def test_every_late_acknowledgement_is_counted_not_only_those_kept_as_evidence(capsys, tmp_path: Path, endpoint: EndpointHandle) -> None:
    """A master keeps 100 late acknowledgements as evidence; late and the finding count all of them."""
    endpoint.fault = "late-ack"  # each ack 0.4 s after its notification, all beyond the 0.1 s limit
    report = tmp_path / "load.json"
    code, out, _ = run(
        capsys, "load", "smoke", "--masters", "1", "--duration", "0.3", "--window", "200", "--endpoint", endpoint.url,
        f"--token={endpoint.token}", "--ack-timeout", "0.1", "--resend-interval", "5", "--json", str(report), "--quiet",
    )  # fmt: skip
    assert code == 1
    figures = json.loads(report.read_text())
    assert figures["late"] == figures["acknowledged"] == figures["sent"] > 100, out
    assert figures["findings"] == {"ack.within-timeout": figures["late"]}
    assert f"{figures['late']} late" in out and f"finding ack.within-timeout: {figures['late']}" in out


def test_findings_carry_evidence_in_the_json_and_the_first_example_of_each_is_printed(
    capsys, tmp_path: Path, endpoint: EndpointHandle
) -> None:
    """As run's evidence: the quoted frame that broke a rule (here the CONNECT answer), and each late ack's id and latency."""
    endpoint.fault = "connect-not-boolean"  # CONNECT answered {"valid": "true"}
    report = tmp_path / "load.json"
    argv = ["load", "smoke", "--masters", "2", "--duration", "0.3", "--endpoint", endpoint.url, f"--token={endpoint.token}"]
    page = tmp_path / "load.html"
    code, out, _ = run(capsys, *argv, "--json", str(report), "--html", str(page), "--quiet")
    assert code == 1
    evidence = json.loads(report.read_text())["evidence"]
    assert set(evidence) == {"connect.answered", "frames.schema"}
    assert all(len(examples) == 2 and '"payload":{"valid":"true"}' in examples[0] for examples in evidence.values())
    assert f"finding connect.answered: 2\n  e.g. {evidence['connect.answered'][0]}\n" in out
    assert f"<td>{htmllib.escape(evidence['connect.answered'][0])}</td>" in page.read_text()  # the findings table too

    endpoint.fault = "late-ack"  # each ack 0.4 s after its notification
    more = ["--ack-timeout", "0.1", "--resend-interval", "5", "--window", "8", "--json", str(report), "--quiet"]
    code, out, _ = run(capsys, *argv, *more)
    late = json.loads(report.read_text())["evidence"]["ack.within-timeout"]
    assert len(late) == 5  # a few, however many were late
    assert all(re.fullmatch(r"notification [0-9A-F-]{36} acknowledged \d+ ms after its first send \(.* is 100 ms\)", e) for e in late)
    assert f"  e.g. {late[0]}\n" in out


def test_load_answers_the_endpoints_command_requests(capsys, tmp_path: Path, endpoint: EndpointHandle) -> None:
    """The endpoint logs in and reads the jobs after each CONNECT: load answers from each master's domain."""
    report = tmp_path / "load.json"
    code, out, _ = run(
        capsys, "load", "--masters", "2", "--duration", "1", "--endpoint", endpoint.url, f"--token={endpoint.token}",
        "--json", str(report), "--quiet",
    )  # fmt: skip
    assert code == 0, out
    figures = json.loads(report.read_text())
    # login and jobs, per master (the reference endpoint sends its jobs request on the connection it saw last, so
    # with two masters one may carry the other's login token and be answered 401, as a real master would)
    assert figures["commands"]["answered"] == 4
    assert "COMMAND requests answered: 4" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["load", "--threshold", "p99<<3"], "expected metric, operator and number"),
        (["load", "--threshold", "speed>3"], "unknown metric 'speed'"),
        (["load", "--threshold", "lost==0ms"], "lost takes no unit"),
        (["load", "--duration", "soon"], "not a duration"),
        (["load", "--masters", "0"], "must be at least 1"),
        (["load", "--endpoint", "ws://127.0.0.1:1/x"], "--endpoint needs --token"),
    ],
)
def test_bad_load_input_is_one_line_and_exit_2(capsys, argv, expected) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and expected in err, err


def test_thresholds_parse_units() -> None:
    assert parse("p99<250ms").value == 250
    assert parse("p99.9 <= 1.5s").value == 1500
    assert parse("rate>=5000").holds({"rate": 6000.0})
    assert not parse("max<10").holds({"ack_latency_ms": {"max": None}})


def test_what_masters_build_while_connecting_is_out_of_the_collectors_sight() -> None:
    """Objects made before and during the ramp-up are frozen every FREEZE_INTERVAL, so a full collection skips them."""

    async def connecting() -> tuple[int, int]:
        freezer = asyncio.ensure_future(_freeze_while_connecting(time.monotonic() + 3 * FREEZE_INTERVAL))
        before = gc.get_freeze_count()
        built = [{"connection": index} for index in range(5_000)]  # tracked containers, as a connection's objects are
        await freezer
        frozen = gc.get_freeze_count()
        del built
        return before, frozen

    gc.unfreeze()
    try:
        before, after = asyncio.run(connecting())
    finally:
        gc.unfreeze()
    assert after >= before + 5_000


def test_cyclic_garbage_of_the_ramp_up_is_collected_not_frozen() -> None:
    """What connecting left as garbage in cycles (handshake futures, errors) is freed, not kept frozen until the end."""

    class Node:
        pass

    async def connecting() -> weakref.ref[Node]:
        freezer = asyncio.ensure_future(_freeze_while_connecting(time.monotonic() + 2 * FREEZE_INTERVAL))
        cycle = Node()
        cycle.self = cycle  # type: ignore[attr-defined]  # garbage only a collection finds
        gone = weakref.ref(cycle)
        del cycle
        await freezer
        return gone

    gc.unfreeze()
    try:
        gone = asyncio.run(connecting())
        assert gone() is None
    finally:
        gc.unfreeze()


def test_a_past_second_is_folded_a_few_values_per_acknowledgement() -> None:
    metrics = LoadMetrics(start=0.0)
    for micros in range(1, 1001):  # second 0: a thousand distinct latencies
        metrics.on_ack(0.5, (micros + 0.5) / 1e6)
    first = metrics.seconds[0]
    assert len(first.counts) == 1000
    metrics.on_ack(1.5, 0.002)  # second 1 begins: second 0 is folded bit by bit, not all at once
    assert len(first.counts) == 1000 - FOLD_PER_ACK
    assert metrics.percentiles_ms(first.latency)["max"] == pytest.approx(1.0, rel=0.01)  # asked for: folded whole
    assert not first.counts and first.latency.get_total_count() == 1000
    assert metrics.percentiles_ms()["max"] == pytest.approx(2.0, rel=0.01)  # the total has second 1's too
    assert metrics.latency.get_total_count() == 1001


@contextlib.contextmanager
def running(argv: list[str], when: str) -> Iterator[subprocess.Popen[str]]:
    """``nbwss-emu`` with ``argv``, once a stderr line says ``when``; on exit, its process group is killed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so that its endpoint process, which holds the pipes, goes too
    )
    try:
        for line in process.stderr:  # progress lines may come first (preparing notifications) on a slow machine
            if when in line:
                break
        else:
            raise AssertionError(f"nbwss-emu {' '.join(argv)} ended without saying {when!r}")
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def interrupt(argv: list[str], when: str) -> tuple[int, str, float]:
    """Run ``nbwss-emu`` with ``argv``, SIGINT it once a stderr line says ``when``: (exit code, stderr, seconds to stop)."""
    with running(argv, when) as process:
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        stopped_in = time.monotonic() - sent
    return process.returncode, stderr, stopped_in


@pytest.mark.slow
def test_a_long_run_starts_at_once() -> None:
    """However long the run, the first notification leaves within seconds: nothing is prepared for the whole duration."""
    with running(["load", "--masters", "3", "--duration", "3600"], "acked") as process:
        assert process.poll() is None  # the first progress line came: notifications went out


@pytest.mark.slow
def test_a_signal_stops_load_and_still_reports(tmp_path: Path, timing: float) -> None:
    report = tmp_path / "load.json"
    argv = ["load", "--masters", "3", "--duration", "60", "--json", str(report)]
    code, stderr, stopped_in = interrupt(argv, "acked")  # the first progress line: it is running
    assert code == 130, stderr
    assert stopped_in < 1.5 * timing
    figures = json.loads(report.read_text())
    assert figures["interrupted"] is True and figures["acknowledged"] > 0
    assert figures["acknowledged"] + figures["lost"] <= figures["sent"]


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="watches the endpoint process through a pidfd (Linux)")
@pytest.mark.slow
def test_a_killed_load_leaves_no_endpoint_behind() -> None:
    argv = ["load", "--masters", "1", "--duration", "60"]
    with running(argv, "acked") as load_:  # running, against its endpoint process
        children = Path(f"/proc/{load_.pid}/task/{load_.pid}/children").read_text().split()
        assert len(children) == 2  # the endpoint and the generator (one master: one generator)
        watches = [os.pidfd_open(int(pid)) for pid in children]
        load_.kill()  # no chance to stop its children itself
        load_.wait()
        for watch in watches:
            ended, _, _ = select.select([watch], [], [], 10)  # readable once the process has ended
            os.close(watch)
            assert ended, "a child process outlived the load process that started it"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium)")
@pytest.mark.slow
def test_the_html_report_renders_in_headless_chromium_and_plots_the_jsons_series(capsys, tmp_path: Path) -> None:
    page, report = tmp_path / "load.html", tmp_path / "load.json"
    code, _, _ = run(
        capsys, "load", "--masters", "3", "--rate", "300", "--duration", "2", "--html", str(page), "--json", str(report),
        "--threshold", "lost==0", "--quiet",
    )  # fmt: skip
    assert code == 0
    assert "<script src=" not in page.read_text()  # self-contained: the library is inlined, nothing is fetched
    profile = str(tmp_path / "profile")
    dom = subprocess.run(
        [CHROMIUM, *HEADLESS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "nbwss-emulator load: datacenter-day, 3 masters" in dom
    assert "lost==0" in dom and "PASSED" in dom
    plotted = json.loads(htmllib.unescape(re.search(r'<pre id="plotted">(.*?)</pre>', dom, re.S).group(1)))
    figures = json.loads(report.read_text())
    expected = series(figures)
    for chart, traces in expected.items():  # what the browser drew is what the JSON says, trace by trace
        assert plotted[chart] == traces, chart
    xs = plotted["throughput"][0]["x"]
    assert xs == [s["second"] for s in figures["per_second"]] and xs[:2] == [0, 1] and xs[-1] <= 2  # no "second 6" for a 2 s run
    assert "generator" in plotted  # the generator's CPU and memory
    assert dom.count('class="main-svg"') >= 8  # Plotly drew every chart (two layers each)


@pytest.mark.slow
def test_on_a_terminal_progress_is_a_live_table(tmp_path: Path) -> None:
    """Run under a pseudo-terminal, as a person would: the live table appears and is refreshed."""
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "load", "--masters", "2", "--duration", "2.5"],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True, env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )  # fmt: skip
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break  # the process closed the terminal
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert process.wait(timeout=30) == 0
    text = screen.decode("utf-8", "replace")
    assert "nbwss-emu load: 2 masters, closed model" in text
    assert "acked/s" in text and "outstanding" in text
    assert "2 masters, closed, window 64" in text  # the summary after the live view


def test_every_second_is_in_the_series_idle_ones_as_zeros_and_the_drain_marked() -> None:
    metrics = LoadMetrics(start=0.0)
    metrics.on_sent(0.2)
    metrics.on_ack(0.3, 0.001)
    metrics.on_sent(3.5)  # seconds 1 and 2: nothing happened
    metrics.on_ack(5.2, 0.002)  # second 5: the drain of a 5 s run
    seconds = metrics.as_dict(5.3, duration=5.0)["per_second"]
    assert [s["second"] for s in seconds] == [0, 1, 2, 3, 4, 5]
    assert [(s["sent"], s["acknowledged"]) for s in seconds] == [(1, 1), (0, 0), (0, 0), (1, 0), (0, 0), (0, 1)]
    assert seconds[1]["ack_latency_ms"]["p50"] is None  # no latency in an idle second: a gap, not a zero
    assert [s["phase"] for s in seconds] == ["sending"] * 5 + ["drain"]


def test_the_live_rate_is_counted_over_the_time_that_passed(tmp_path: Path) -> None:
    """The first look comes 1.5 s in: its rate is what was acknowledged over those 1.5 s, not all of it as one second's."""
    snapshots: list[dict[str, float]] = []

    def progress(snapshot: dict[str, float]) -> None:
        snapshots.append({**snapshot, "acknowledged": totals.acknowledged})

    async def go() -> None:
        config = LoadConfig(scenario("smoke"), masters=2, duration=2.0, rate=400, progress=progress)
        await run_load(config)

    totals = LoadMetrics(0.0)
    real_on_ack = LoadMetrics.on_ack

    def counting(self: LoadMetrics, now: float, latency: float) -> None:
        totals.acknowledged += 1
        real_on_ack(self, now, latency)

    LoadMetrics.on_ack = counting  # type: ignore[method-assign]
    try:
        asyncio.run(go())
    finally:
        LoadMetrics.on_ack = real_on_ack  # type: ignore[method-assign]
    first = snapshots[0]
    assert first["acked_per_s"] == round(first["acknowledged"] / first["elapsed"])
    assert first["acked_per_s"] < 480  # 400/s in the open model: not 1.5 times that


def test_threshold_lines_say_units_and_what_was_measured() -> None:
    assert parse("p99<250ms").limit() == "p99 < 250.00 ms"
    assert parse("p99<250ms").describe(12.3) == "12.30 ms"
    assert parse("rate>=5000").describe(6000.0) == "6,000.0 acknowledged/s"
    assert parse("max<10").describe(None) == "not measured: no acknowledgement"
    assert parse("lost==0").describe(3.0) == "3 lost"


async def pull(stream: MasterStream, most: int) -> list[Any]:
    """Take up to ``most`` steps from ``stream`` as a master does: on NOT_YET, until the stream wakes it; to its end."""
    woken = asyncio.Event()
    stream.bind(woken.set)
    items: list[Any] = []
    while len(items) < most:
        item = stream.take()
        if item is None:
            break
        if item is NOT_YET:
            woken.clear()
            await woken.wait()
            continue
        items.append(item)
    return items


async def arrive_late(feed: Feed, delay: float) -> None:
    """Two notifications from a generator that took ``delay`` seconds (a stand-in for a slow one)."""
    await asyncio.sleep(delay)
    feed.buffer.extend(Prepared(f"id-{n}", b"{}") for n in range(2))
    feed.arrived.set()
    if feed.on_arrival is not None:
        feed.on_arrival()


def test_open_model_a_late_generator_slides_the_schedule_instead_of_counting_as_latency() -> None:
    """A notification that came from the generator after it was due is due when it came: the delay is not the endpoint's."""

    class Asks:
        def ask(self, index: int, count: int) -> None:
            pass

    async def go() -> list[float]:
        feed = Feed(0, 4, 4, Asks())  # type: ignore[arg-type]
        began = time.monotonic()
        stream = MasterStream(feed, LoadMetrics(began), began=began, stop_at=began + 10, window=64, rate=10.0, masters=1)
        arriving = asyncio.ensure_future(arrive_late(feed, 0.3))
        first, second = await pull(stream, 2)
        await arriving
        return [first.at, second.at]

    first, second = asyncio.run(go())
    assert first >= 0.25  # due at 0 but here only after 0.3 s: due when it came
    assert second == pytest.approx(first + 0.1)  # the rest of the schedule slid with it


def test_children_are_forked_only_from_a_process_with_one_thread() -> None:
    """A fork copies one thread: with others running, the generator and endpoint are new interpreters instead."""
    import threading  # noqa: PLC0415

    from emulator.load.children import can_fork  # noqa: PLC0415

    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not can_fork()
    finally:
        release.set()
        other.join()
    assert can_fork() == (threading.active_count() == 1)


def test_open_model_a_notification_that_slid_past_the_end_of_the_run_is_not_sent() -> None:
    """A master whose notifications came after the run's end sends none of them (sent then, they were lost at the close)."""

    class Asks:
        def ask(self, index: int, count: int) -> None:
            pass

    async def go() -> tuple[list[object], int]:
        feed = Feed(0, 4, 4, Asks())  # type: ignore[arg-type]
        began = time.monotonic()
        metrics = LoadMetrics(began)
        stream = MasterStream(feed, metrics, began=began, stop_at=began + 0.2, window=64, rate=10.0, masters=1)
        arriving = asyncio.ensure_future(arrive_late(feed, 0.3))
        items = await pull(stream, 10)
        await arriving
        return items, metrics.sent

    items, sent = asyncio.run(go())
    assert items == [] and sent == 0


def load_against_the_reference_store(fault: Fault | None, seconds: float = 1.0) -> tuple[LoadResult, dict[str, Any]]:
    """A short load run of three masters, each on its own registration, against an in-process reference endpoint and its store."""

    async def go() -> tuple[LoadResult, dict[str, Any]]:
        async with ReferenceEndpoint(fault=fault, keep=1) as endpoint:
            config = LoadConfig(
                scenario("smoke"), masters=3, duration=seconds, targets=[Target(endpoint.url, endpoint.token)],
                token_for=endpoint.token_for, expect_state=True, seed=3,
            )  # fmt: skip
            return await run_load(config), endpoint.store.export()

    return asyncio.run(go())


def test_load_expected_state_is_what_the_reference_store_holds_for_every_master() -> None:
    result, stored = load_against_the_reference_store(None)
    assert result.metrics.acknowledged == result.metrics.sent > 100 and result.metrics.lost == 0
    expected = state.check(result.expected_state())
    # each master by its host name (the generator's), on its own registration: the store files them apart
    assert list(expected["masters"]) == sorted(h for h in result.hostnames if h is not None) and len(expected["masters"]) == 3
    assert sorted(stored["masters"]) == sorted(expected["masters"])
    assert all(master["jobs"] and master["images"] for master in expected["masters"].values())
    assert diff(expected, stored) == []


def test_load_expected_state_shows_a_store_that_drops_early_updates() -> None:
    result, stored = load_against_the_reference_store(Fault.STORE_EARLY_UPDATE)
    differences = diff(result.expected_state(), stored)
    assert differences and {d.field for d in differences} >= {"lastOperation"}, differences[:5]


def test_load_expected_state_is_asked_for() -> None:
    config = LoadConfig(scenario("smoke"), masters=1)
    with pytest.raises(ValueError, match="expect_state=True"):
        LoadResult(config, LoadMetrics(0.0), [], 0.0, "").expected_state()


def test_load_masters_of_one_host_name_are_told_apart_in_their_order() -> None:
    config = LoadConfig(scenario("smoke"), masters=3, expect_state=True)
    result = LoadResult(config, LoadMetrics(0.0), [], 0.0, "", hostnames=["nbu-a", "nbu-b", "nbu-a"])
    result.recorders = [AckRecorder() for _ in range(3)]
    result.recorders[2].state.jobs["7"] = {"jobId": 7}
    masters = result.expected_state()["masters"]
    assert list(masters) == ["nbu-a", "nbu-a#2", "nbu-b"] and masters["nbu-a#2"]["jobs"] == {"7": {"jobId": 7}}


def test_load_expect_state_writes_the_document(capsys, tmp_path: Path) -> None:
    path = tmp_path / "expected.json"
    code, out, _ = run(capsys, "load", "--masters", "2", "--duration", "0.5", "--expect-state", str(path), "--quiet")
    assert code == 0, out
    document = state.read(path)
    assert len(document["masters"]) == 2 and all(m["jobs"] for m in document["masters"].values())
    assert f"expected state: 2 masters, written to {path}" in out


def test_load_expect_state_to_an_unwritable_path_is_one_line_before_the_run(capsys, tmp_path: Path) -> None:
    code, out, err = run(capsys, "load", "--masters", "1", "--duration", "5", "--expect-state", str(tmp_path / "no" / "x.json"))
    assert code == 2 and not out
    assert err.count("\n") == 1 and "--expect-state" in err and "no folder" in err, err
