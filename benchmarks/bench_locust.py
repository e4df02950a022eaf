"""Locust users (one worker) against nbwss-emu load and against a plain Locust user: ratios of their rates.

Run: python benchmarks/bench_locust.py [--masters N] [--windows 1,16] [--seconds S] [--rounds R] [--page PATH]

The same N masters, each its own connection with the same window of outstanding
notifications, for S seconds, against the bare acknowledging endpoint in a
process of its own, three ways:

* ``nbwss-emu load --masters N --window W``;
* the emulator's Locust users (``emulator.locust``: a domain per user, generated
  and checked in the worker's generator process, one sample per notification and
  its acknowledgement), run as Locust's master and one worker process;
* a plain Locust user in the same setup: pre-built frames sent over websockets'
  sync client within the same window, one sample per acknowledgement, nothing
  checked: what Locust and websockets cost without the emulator.

Rates count acknowledgements (load: over its report's elapsed time; Locust: over
the whole seconds after its last user connected). Rounds alternate the clients;
each ratio is the median of per-round ratios, with its spread.

On a machine with few cores the worker shares them with the endpoint, Locust's
master and its generator process, so rates also say who got the cores. The CPU
each Locust worker (and its generator process) spent per acknowledgement in the
same steady seconds, sampled from /proc, says what a user costs: a plain user's
CPU per ack over the emulator user's is the rate a worker reaches against a
plain user's when each has a core (and the generator one of its own). The page
``docs/benchmarks/locust.md`` is written from the figures of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import HERE, ack_endpoint, frames

ROOT = HERE.parent
LOCUSTFILE = ROOT / "emulator" / "locustfile.py"

#: The plain user: what Locust and websockets' sync client cost with no emulator in between.
PLAIN_USER = """
import itertools, json, os, time
from collections import deque

import gevent
from locust import User, constant, events, task
from websockets.sync.client import connect

FRAMES = [bytes.fromhex(line) for line in open(os.environ["PLAIN_FRAMES"])]
WINDOW = int(os.environ["PLAIN_WINDOW"])
STEPS = 32  # acknowledgements per task, as the emulator's user does


class Plain(User):
    wait_time = constant(0)

    def on_start(self):
        self.ws = connect(self.host, compression=None, proxy=None).__enter__()
        self.ws.send('{"version":"1.0","id":"8E909940-AD50-4543-8AEA-B52003818925","type":"CONNECT",'
                     '"subType":"REQUEST","timeStamp":0,"payload":{"token":"t"}}')
        self.ws.recv()
        self.environment.events.request.fire(request_type="CONNECT", name="CONNECT", response_time=0, response_length=0,
                                             response=None, context={}, exception=None)
        self.frames = itertools.cycle(FRAMES)
        self.sent = deque()

    @task
    def notify(self):
        ws, sent, fire = self.ws, self.sent, self.environment.events.request.fire
        for _ in range(STEPS):
            while len(sent) < WINDOW:
                sent.append(time.perf_counter())
                ws.send(next(self.frames), text=True)
            ws.recv()
            fire(request_type="NBWSS", name="NOTIFICATION", response_time=(time.perf_counter() - sent.popleft()) * 1000,
                 response_length=0, response=None, context={}, exception=None)

    def on_stop(self):
        self.ws.close()


gevent.get_hub().loop.update_now()  # --run-time counts from now, not from before the imports
"""


#: Failed NBWSS samples of each Locust run, in the order run (late acknowledgements on a starved machine).
FAILED: list[int] = []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load_rate(url: str, token: str, masters: int, window: int, seconds: float, directory: str) -> float:
    report = Path(directory, "load.json")
    subprocess.run(
        [sys.executable, "-m", "emulator", "load", "--masters", str(masters), "--window", str(window),
         "--duration", f"{seconds:g}s", "--endpoint", url, f"--token={token}", "--json", str(report), "--quiet"],
        check=True, capture_output=True,
    )  # fmt: skip
    figures = json.loads(report.read_text())
    assert figures["lost"] == 0 and not figures["findings"], figures
    return float(figures["acknowledged"] / figures["elapsed_s"])


def _cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system), from /proc; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


class CpuSampler:
    """The CPU time of a process and of its children (a Locust worker and its generator process), sampled over time."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (wall time, the process's CPU s, its children's CPU s)
        self._pid, self._every = pid, every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self._every):
            children = sum(_cpu_seconds(child) for child in _children(self._pid))
            self.samples.append((time.time(), _cpu_seconds(self._pid), children))

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def between(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds (the process's, its children's) spent from wall time ``start`` to ``end`` (nearest samples)."""
        inside = [sample for sample in self.samples if start <= sample[0] <= end]
        assert len(inside) >= 2, "too few CPU samples in the steady seconds"
        first, last = inside[0], inside[-1]
        scale = (end - start) / (last[0] - first[0])  # the samples bracket a little less than the window
        return (last[1] - first[1]) * scale, (last[2] - first[2]) * scale


@dataclass
class Run:
    """One Locust run's steady state: acknowledgements per second, and CPU µs per acknowledgement of its worker and of the
    worker's generator process."""

    rate: float
    worker_cpu: float
    generator_cpu: float


def locust_rate(locustfile: Path, options: list[str], url: str, masters: int, seconds: float, directory: str) -> Run:
    """Locust users' steady rate and CPU per acknowledgement: master and one worker process, from the master's final stats."""
    port = _free_port()
    locust = [sys.executable, "-m", "locust", "-f", str(locustfile)]
    worker = subprocess.Popen(
        [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sampler = CpuSampler(worker.pid)
    prefix = Path(directory, "locust")
    try:
        subprocess.run(
            [
                *locust,
                "--headless",
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(port),
                "--expect-workers",
                "1",
                "-u",
                str(masters),
                "-r",
                str(masters),
                "-t",
                f"{seconds:g}s",
                "--host",
                url,
                *options,
                "--json-file",
                str(prefix),
                "--only-summary",
            ],
            check=False,
            capture_output=True,
            timeout=seconds + 120,
        )  # fmt: skip  (exit 1: some samples failed; counted below)
    finally:
        worker.wait(timeout=30)
        sampler.stop()
    rate, first, end = steady_rate(json.loads(prefix.with_suffix(".json").read_text()))
    worker_cpu, generator_cpu = sampler.between(first, end)
    acks = rate * (end - first)
    return Run(rate, worker_cpu / acks * 1e6, generator_cpu / acks * 1e6)


def steady_rate(stats: list[dict[str, Any]]) -> tuple[float, int, int]:
    """Acknowledgements per second over the whole seconds after the last user connected, from Locust's stats, and those
    seconds (the first, and the end of the last: epoch seconds).

    Users connect one after another as each one's first notifications (or prepared ones, if
    asked) come from the generator: counting from the first request would measure the ramp, not the users.
    """
    entries = [e for e in stats if e["method"] == "NBWSS"]
    assert entries, "no notification was acknowledged"
    FAILED.append(sum(e["num_failures"] for e in entries))
    connected = max(e["last_request_timestamp"] for e in stats if e["method"] == "CONNECT")
    per_second: dict[int, int] = {}
    for entry in entries:
        for second, count in entry["num_reqs_per_sec"].items():
            per_second[int(second)] = per_second.get(int(second), 0) + count
    seconds = [s for s in per_second if int(connected) < s < max(per_second)]  # whole seconds, the last one partial
    assert len(seconds) >= 3, f"only {len(seconds)} s after the last user connected: run longer (--seconds)"
    seconds = list(range(min(seconds), max(seconds) + 1))  # every second of the window, one without a sample included
    return sum(per_second.get(s, 0) for s in seconds) / len(seconds), seconds[0], seconds[-1] + 1


@dataclass
class Rates:
    load: list[float] = field(default_factory=list)
    emulator: list[float] = field(default_factory=list)  # the generator process a buffer ahead
    prepared: list[float] = field(default_factory=list)  # --nbwss-prepare: that many buffered before connecting
    plain: list[float] = field(default_factory=list)
    cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # Locust runs' (worker, generator) CPU µs per ack


def measure(url: str, token: str, masters: int, window: int, seconds: float, rounds: int, prepare: int, directory: str) -> Rates:
    frames_file = Path(directory, "frames.hex")
    frames_file.write_text("\n".join(frame.hex() for frame in frames(2000)))
    plain = Path(directory, "plain_locustfile.py")
    plain.write_text(PLAIN_USER)
    os.environ["PLAIN_FRAMES"], os.environ["PLAIN_WINDOW"] = str(frames_file), str(window)
    emulator = ["--nbwss-token", token, "--nbwss-window", str(window)]
    prepared = [*emulator, "--nbwss-prepare", str(prepare)]
    rates = Rates()

    def locust(name: str, locustfile: Path, options: list[str]) -> Callable[[], float]:
        def run() -> float:
            result = locust_rate(locustfile, options, url, masters, seconds, directory)
            rates.cpu.setdefault(name, []).append((result.worker_cpu, result.generator_cpu))
            return result.rate

        return run

    clients: list[tuple[list[float], Callable[[], float]]] = [
        (rates.emulator, locust("emulator", LOCUSTFILE, emulator)),
        (rates.load, lambda: load_rate(url, token, masters, window, seconds, directory)),
        (rates.plain, locust("plain", plain, [])),
    ]
    if prepare:
        clients.append((rates.prepared, locust("prepared", LOCUSTFILE, prepared)))
    for round_ in range(rounds):
        turn = round_ % len(clients)
        for figures, run in clients[turn:] + clients[:turn]:  # alternate who goes first
            figures.append(run())
    return rates


def ratio(numerators: list[float], denominators: list[float]) -> tuple[float, float, float]:
    """(median, lowest, highest) of the per-round ratios."""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masters", type=int, default=50)
    parser.add_argument("--windows", default="1,16", help="comma-separated windows to measure")
    parser.add_argument("--seconds", type=float, default=20.0, help="each run's length (users take seconds to build their domains)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prepare", type=int, default=0, help="also run Locust users with this --nbwss-prepare (0: not)")
    parser.add_argument("--page", type=Path, default=ROOT / "docs" / "benchmarks" / "locust.md")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    results: dict[int, Rates] = {}
    with ack_endpoint() as (url, token, _), tempfile.TemporaryDirectory() as directory:
        for window in windows:
            results[window] = measure(url, token, args.masters, window, args.seconds, args.rounds, args.prepare, directory)
    lines = [
        f"{args.masters} masters, {args.seconds:g} s, {args.rounds} alternating rounds per window, "
        f"against the bare acknowledging endpoint (benchmarks/ack_endpoint.py)",
        "",
        "| window | load | Locust, emulator | Locust, plain | emulator/load (min–max) | emulator/plain (min–max) |"
        + (" Locust, prepared | prepared/load | prepared/plain |" if args.prepare else ""),
        "|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if args.prepare else ""),
    ]
    median = statistics.median

    def spread(numerators: list[float], denominators: list[float]) -> str:
        middle, low, high = ratio(numerators, denominators)
        return f"{middle:.2f} ({low:.2f}–{high:.2f})"

    for window, rates in results.items():
        row = (
            f"| {window} | {median(rates.load):,.0f} | {median(rates.emulator):,.0f} | {median(rates.plain):,.0f} "
            f"| {spread(rates.emulator, rates.load)} | {spread(rates.emulator, rates.plain)} |"
        )
        if args.prepare:
            row += f" {median(rates.prepared):,.0f} | {spread(rates.prepared, rates.load)} | {spread(rates.prepared, rates.plain)} |"
        lines.append(row)
    lines += [
        "",
        "CPU per acknowledgement in the same steady seconds (µs, medians): the Locust worker process, and the generator "
        "process beside it. plain/emulator is the rate a worker's user reaches against a plain user's when each has "
        "its core (and the generator one of its own):",
        "",
        "| window | worker, emulator | worker, plain | plain/emulator (min–max) | generator, emulator |"
        + (" worker, prepared | plain/prepared |" if args.prepare else ""),
        "|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.prepare else ""),
    ]
    for window, rates in results.items():
        worker = {name: [cpu for cpu, _ in runs] for name, runs in rates.cpu.items()}
        generator = {name: [cpu for _, cpu in runs] for name, runs in rates.cpu.items()}
        row = (
            f"| {window} | {median(worker['emulator']):.1f} | {median(worker['plain']):.1f} "
            f"| {spread(worker['plain'], worker['emulator'])} | {median(generator['emulator']):.1f} |"
        )
        if args.prepare:
            row += f" {median(worker['prepared']):.1f} | {spread(worker['plain'], worker['prepared'])} |"
        lines.append(row)
    lines += ["", "Rounds (acks/s, in the order run):", ""]
    for window, rates in results.items():
        named = (
            ("load", rates.load),
            ("Locust, emulator", rates.emulator),
            ("Locust, plain", rates.plain),
            ("Locust, emulator prepared", rates.prepared),
        )
        for name, figures in named[: 4 if args.prepare else 3]:
            lines.append(f"- window {window}, {name}: {', '.join(f'{r:,.0f}' for r in figures)}")
    lines.append(f"- failed NBWSS samples per Locust run (late or lost): {', '.join(str(n) for n in FAILED)}")
    print("\n".join(lines))
    page = [
        "# Benchmark: Locust users",
        "",
        "Written by `python benchmarks/bench_locust.py` "
        f"({time.strftime('%Y-%m-%d', time.gmtime())}, Python {platform.python_version()}, {platform.machine()}). "
        "Targets: Locust/load at least 0.6, Locust/plain at least 0.8, with the same masters and window.",
        "",
        "- *load*: `nbwss-emu load --masters N --window W` (one process).",
        "- *Locust, emulator*: the ready locustfile (`emulator.locust`), Locust master and one worker process; "
        "each user's notifications are generated and checked in the worker's generator process, a buffer ahead.",
        *(
            [
                f"- *Locust, prepared*: the same with `--nbwss-prepare {args.prepare}`: each user waits until the generator "
                "has made that many for it before it connects, as `load` prepares before its clock starts."
            ]
            if args.prepare
            else []
        ),
        "- *Locust, plain*: a Locust user sending pre-built frames over websockets' sync client with the same window, "
        "nothing checked, one sample per acknowledgement; master and one worker process.",
        "",
        "Rates are acknowledgements per second: load's over its run, Locust's over the whole seconds after "
        "the last user connected (users connect one after another as their first notifications come). "
        "CPU per acknowledgement is the worker process's (and its generator process's) in the same seconds, "
        "sampled from /proc: on this 2-core machine the endpoint, Locust's master, the worker and the generator "
        "share the cores, so the rates also say who got them, and the CPU says what each user costs.",
        "",
        *lines,
        "",
    ]
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text("\n".join(page), encoding="utf-8")
    print(f"\nwrote {args.page}")


if __name__ == "__main__":
    main()
