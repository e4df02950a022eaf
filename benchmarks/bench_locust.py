"""The same notifications through Locust users (one worker) and through nbwss-emu load: the ratio of their rates.

Run: python benchmarks/bench_locust.py [--masters N] [--seconds S] [--rounds R]

A Locust user sends one notification and waits for its acknowledgement (one
sample per pair), so load runs with a window of 1 to do the same work: N masters
of the same scenario, each its own domain and connection, for S seconds, against
the bare acknowledging endpoint in another process. Locust runs as a master and
one worker (its distributed mode, one worker wide); both sides generate their
notifications the way they do by default (Locust users on the fly, load before
its clock starts). Rounds alternate; the figure is the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import csv
import json
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ack_endpoint


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load_rate(url: str, token: str, masters: int, seconds: float, directory: str) -> float:
    report = Path(directory, "load.json")
    subprocess.run(
        [sys.executable, "-m", "emulator", "load", "--masters", str(masters), "--window", "1", "--duration", f"{seconds:g}s",
         "--endpoint", url, f"--token={token}", "--json", str(report), "--quiet"],
        check=True, capture_output=True,
    )  # fmt: skip
    figures = json.loads(report.read_text())
    assert figures["lost"] == 0 and not figures["findings"], figures
    return figures["acknowledged"] / figures["elapsed_s"]


def locust_rate(url: str, token: str, masters: int, seconds: float, directory: str) -> float:
    locustfile = subprocess.run([sys.executable, "-m", "emulator", "locustfile"], capture_output=True, text=True, check=True).stdout.strip()
    port = _free_port()
    locust = [sys.executable, "-m", "locust", "-f", locustfile]
    worker = subprocess.Popen(
        [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    prefix = str(Path(directory, "locust"))
    try:
        subprocess.run(
            [*locust, "--headless", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
             "--expect-workers", "1", "-u", str(masters), "-r", str(masters), "-t", f"{seconds:g}s",
             "--host", url, "--nbwss-token", token, "--csv", prefix, "--only-summary"],
            check=True, capture_output=True, timeout=seconds + 120,
        )  # fmt: skip
    finally:
        worker.wait(timeout=30)
    with open(f"{prefix}_stats.csv", encoding="utf-8") as stats:
        rows = [row for row in csv.DictReader(stats) if row["Type"] == "NBWSS"]
    assert rows and all(row["Failure Count"] == "0" for row in rows), rows
    return sum(int(row["Request Count"]) for row in rows) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masters", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    loads, locusts = [], []
    with ack_endpoint() as (url, token, _), tempfile.TemporaryDirectory() as directory:
        for _ in range(args.rounds):
            locusts.append(locust_rate(url, token, args.masters, args.seconds, directory))
            loads.append(load_rate(url, token, args.masters, args.seconds, directory))
    median = statistics.median
    print(f"{args.masters} masters, one notification outstanding each, {args.seconds:g} s, {args.rounds} alternating rounds")
    print(f"  {'client':<46}{'median acks/s':>14}{'rounds':>28}")
    for name, rates in (("nbwss-emu load --window 1", loads), ("Locust, master + 1 worker (emulator.locust)", locusts)):
        print(f"  {name:<46}{median(rates):>14,.0f}{', '.join(f'{r:,.0f}' for r in rates):>28}")
    print(f"  Locust/load: {median(c / m for c, m in zip(locusts, loads, strict=True)):.2f}")


if __name__ == "__main__":
    main()
