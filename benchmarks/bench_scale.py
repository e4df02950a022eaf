"""5,000 emulated masters in one process: all connected and acknowledged, and the memory each connection takes.

Run: python benchmarks/bench_scale.py [--masters N] [--seconds S]

Each side runs in a fresh process of its own (resident memory measured within one
process that did other work first says more about the allocator than the client):

* bare: N websockets clients (no compression), each sends CONNECT and one
  notification and waits for its acknowledgement; resident memory before
  connecting and with all N open;
* load: ``nbwss-emu load smoke --masters N`` in the open model (each master a
  domain of its own and a connection), ramped up, every notification validated;
  its JSON report gives resident memory when its clock started (domains built,
  notifications prepared) and at its peak with all N connected.

Both against the bare acknowledging endpoint in a third process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ack_endpoint, frames, page_of

from emulator.load.runner import resident_bytes
from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_request


def _raise_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def bare_clients(url: str, count: int) -> dict[str, float]:
    """Run in a child process: ``count`` bare clients connected and acknowledged; resident memory before and after."""
    from websockets.asyncio.client import connect  # noqa: PLC0415 - the child imports what it needs, once

    sample = frames(16)
    before = resident_bytes() or 0
    slots = asyncio.Semaphore(200)  # handshakes at a time, as the load's ramp-up spreads them
    connections = []

    async def one(index: int) -> None:
        async with slots:
            ws = await connect(url, compression=None, proxy=None, open_timeout=60)
            await ws.send(encode(connect_request(f"{index:08X}-0000-4000-8000-000000000000", 0, "t")), text=True)
            await ws.recv()
            await ws.send(sample[index % len(sample)], text=True)
            await ws.recv()
            connections.append(ws)

    await asyncio.gather(*(one(index) for index in range(count)))
    after = resident_bytes() or 0
    await asyncio.gather(*(ws.close() for ws in connections))
    return {"connected": len(connections), "before_mib": before / 2**20, "after_mib": after / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masters", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=30.0, help="the load run, ramp-up (a third of it) included")
    parser.add_argument("--bare-child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    _raise_file_limit()
    if args.bare_child:
        print(json.dumps(asyncio.run(bare_clients(args.bare_child, args.masters))))
        return

    with ack_endpoint() as (url, token, _), tempfile.TemporaryDirectory() as directory:
        bare = json.loads(
            subprocess.run(
                [sys.executable, __file__, "--bare-child", url, "--masters", str(args.masters)], capture_output=True, text=True, check=True
            ).stdout
        )
        report = Path(directory, "load.json")
        rate = args.masters / 2  # a notification every other second from each master
        command = [
            sys.executable, "-m", "emulator", "load", "smoke", "--masters", str(args.masters), "--rate", f"{rate:g}",
            "--duration", f"{args.seconds:g}s", "--ramp-up", f"{args.seconds / 3:g}s", "--endpoint", url, f"--token={token}",
            "--json", str(report), "--quiet", "--threshold", "lost==0", "--threshold", "findings==0",
        ]  # fmt: skip
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        if finished.returncode not in (0, 1):
            sys.exit(f"load failed: {finished.stderr.strip()}")
        figures = json.loads(report.read_text())

    memory = figures["generator_memory"]
    bare_per = (bare["after_mib"] - bare["before_mib"]) * 1024 / args.masters
    load_per = memory["per_master_connection_kib"]
    print(f"{args.masters} connections in one process each, bare acknowledging endpoint in a third")
    print(f"  {'client':<34}{'connected':>10}{'resident MiB':>22}{'KiB per connection':>20}")
    print(f"  {'bare websockets':<34}{bare['connected']:>10}{bare['before_mib']:>10.0f} -> {bare['after_mib']:<8.0f}{bare_per:>20.1f}")
    print(
        f"  {'nbwss-emu load (smoke, open model)':<34}{figures['connections_opened']:>10}"
        f"{memory['rss_at_start_mib']:>10.0f} -> {memory['rss_peak_mib']:<8.0f}{load_per:>20.1f}"
    )
    print(f"  load/bare memory per connection: {load_per / bare_per:.2f} (target: under 30 KiB per connection)")
    print(
        f"  load: {figures['sent']} sent, {figures['acknowledged']} acknowledged, {figures['lost']} lost, "
        f"{sum(figures['findings'].values())} findings, {figures['connections_dropped']} dropped; "
        f"p99 {figures['ack_latency_ms']['p99']} ms; its domains and prepared notifications: {memory['rss_at_start_mib']:.0f} MiB "
        f"({memory['rss_at_start_mib'] * 1024 / args.masters:.0f} KiB per master), prepared in {figures['prepare_s']:.0f} s"
    )


if __name__ == "__main__":
    if "--bare-child" in sys.argv:  # the baseline's own process: it prints JSON for its parent, no page
        main()
    else:
        with page_of("scale", "Many masters in one process: memory per master connection"):
            main()
