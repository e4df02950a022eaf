"""What the benchmarks share: endpoints in their own processes, the bare client baseline, notifications."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_request
from emulator.scenario import Timeline, load

HERE = Path(__file__).resolve().parent


def frames(count: int, scenario: str = "datacenter-day", seed: int = 1) -> list[bytes]:
    """``count`` notifications of ``scenario``, encoded: what the bare client sends."""
    return [encode(t.message) for t in itertools.islice(Timeline(load(scenario), seed=seed).messages(repeat=True), count)]


@contextmanager
def _process(command: list[str]) -> Iterator[str]:
    """A server process that prints "listening on URL" first; its URL, and the process stopped on exit."""
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield server.stdout.readline().split()[-1]
    finally:
        server.terminate()
        server.communicate()


@contextmanager
def reference_endpoint(*extra: str) -> Iterator[tuple[str, str]]:
    """``nbwss-emu serve`` on a free loopback port, as (url, token); stopped on exit."""
    token = secrets.token_urlsafe(24)
    # --token=...: a generated token may begin with a dash
    with _process([sys.executable, "-m", "emulator", "serve", "--port", "0", f"--token={token}", *extra]) as url:
        yield url, token


@contextmanager
def ack_endpoint(*, tls: bool = False) -> Iterator[tuple[str, str, str | None]]:
    """The bare acknowledging endpoint (ack_endpoint.py), as (url, token, CA file for wss or None)."""
    with tempfile.TemporaryDirectory() as directory:
        extra: list[str] = []
        cafile = None
        if tls:
            import trustme  # noqa: PLC0415 - only the TLS benchmarks need a CA

            authority = trustme.CA()
            certificate = authority.issue_cert("127.0.0.1")
            cafile, certfile, keyfile = (str(Path(directory, name)) for name in ("ca.pem", "cert.pem", "key.pem"))
            authority.cert_pem.write_to_path(cafile)
            certificate.cert_chain_pems[0].write_to_path(certfile)
            certificate.private_key_pem.write_to_path(keyfile)
            extra = ["--tls", certfile, keyfile]
        with _process([sys.executable, str(HERE / "ack_endpoint.py"), *extra]) as url:
            yield url, "any-token", cafile


@asynccontextmanager
async def _connected(url: str, token: str, cafile: str | None) -> AsyncIterator[ClientConnection]:
    """A bare connection (no compression) past CONNECT, its answer read and not looked at."""
    context = ssl.create_default_context(cafile=cafile) if url.startswith("wss:") else None
    async with connect(url, compression=None, proxy=None, ssl=context) as ws:
        await ws.send(encode(connect_request("8E909940-AD50-4543-8AEA-B52003818925", 0, token)), text=True)
        await ws.recv()
        yield ws


async def bare_rate(
    url: str, token: str, frames: list[bytes], window: int, seconds: float | None = None, cafile: str | None = None
) -> tuple[float, float]:
    """(acknowledgements per second, CPU µs per acknowledgement) of a bare websockets client.

    Pre-built frames, a window, acknowledgements counted, nothing parsed. Without
    ``seconds`` it sends every frame once and waits for every acknowledgement; with
    it, it cycles through the frames for that long.
    """
    async with _connected(url, token, cafile) as ws:
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
        start, cpu = time.perf_counter(), time.process_time()
        for frame in frames if seconds is None else itertools.cycle(frames):
            if seconds is not None and time.perf_counter() - start >= seconds:
                break
            await slots.acquire()
            await ws.send(frame, text=True)
        if seconds is None:
            await done.wait()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        count = acked
        task.cancel()
    return count / elapsed, cpu / count * 1e6


async def bare_paced(url: str, token: str, frames: list[bytes], rate: float, seconds: float, cafile: str | None = None) -> list[float]:
    """Ack latencies (s) of a bare client sending at ``rate`` (open model), each counted from when its frame was due.

    Acknowledgements are matched to sends by order, which holds for an endpoint that
    answers in order (the bare ack endpoint does): no parsing, as little work as can be.
    """
    async with _connected(url, token, cafile) as ws:
        total = int(rate * seconds)
        latencies: list[float] = []
        start = time.perf_counter()
        due = [start + index / rate for index in range(total)]
        all_acked = asyncio.Event()

        async def reader() -> None:
            async for _ in ws:
                latencies.append(time.perf_counter() - due[len(latencies)])
                if len(latencies) == total:
                    all_acked.set()

        task = asyncio.ensure_future(reader())
        source = itertools.cycle(frames)
        for at in due:
            wait = at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            await ws.send(next(source), text=True)
        await all_acked.wait()
        task.cancel()
    return latencies
