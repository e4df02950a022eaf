"""What the benchmarks share: the reference endpoint in its own process, and the bare client baseline."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from websockets.asyncio.client import connect

from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_request


@contextmanager
def reference_endpoint(*extra: str) -> Iterator[tuple[str, str]]:
    """``nbwss-emu serve`` on a free loopback port, as (url, token); stopped on exit."""
    token = secrets.token_urlsafe(24)
    # --token=...: a generated token may begin with a dash
    server = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", f"--token={token}", *extra], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().split()[-1], token
    finally:
        server.terminate()
        server.communicate()


async def bare_rate(url: str, token: str, frames: list[bytes], window: int, seconds: float | None = None) -> float:
    """Acknowledgements per second of a bare websockets client: pre-built frames, a window, acks counted, nothing parsed.

    Without ``seconds`` it sends every frame once and waits for every acknowledgement;
    with it, it cycles through the frames for that long.
    """
    async with connect(url, compression=None, proxy=None) as ws:
        await ws.send(encode(connect_request("8E909940-AD50-4543-8AEA-B52003818925", 0, token)), text=True)
        await ws.recv()
        slots = asyncio.Semaphore(window)
        done = asyncio.Event()
        acked = 0

        async def reader() -> None:
            nonlocal acked
            async for _ in ws:
                acked += 1
                slots.release()
                if seconds is None and acked == len(frames):
                    done.set()

        task = asyncio.ensure_future(reader())
        start = time.perf_counter()
        for frame in frames if seconds is None else itertools.cycle(frames):
            if seconds is not None and time.perf_counter() - start >= seconds:
                break
            await slots.acquire()
            await ws.send(frame, text=True)
        if seconds is None:
            await done.wait()
        elapsed = time.perf_counter() - start
        count = acked
        task.cancel()
    return count / elapsed
