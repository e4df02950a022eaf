"""What the benchmarks share: endpoints in their own processes, the bare client baseline, notifications."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

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


async def bare_paced(
    url: str, token: str, frames: list[bytes], rate: float, seconds: float, cafile: str | None = None
) -> dict[float, list[float]]:
    """Ack latencies (s) of a bare client sending at ``rate`` (open model), each counted from when its frame was due.

    Grouped by the whole second of the run in which each acknowledgement arrived, as
    load's per-second figures are, and keyed by when that second began (``time.monotonic``).
    Acknowledgements are matched to sends by order, which holds for an endpoint that
    answers in order (the bare ack endpoint does): no parsing, as little work as can be.
    """
    async with _connected(url, token, cafile) as ws:
        total = int(rate * seconds)
        by_second: dict[int, list[float]] = {}
        start = time.monotonic()
        due = [start + index / rate for index in range(total)]
        all_acked = asyncio.Event()
        acked = 0

        async def reader() -> None:
            nonlocal acked
            async for _ in ws:
                now = time.monotonic()
                by_second.setdefault(int(now - start), []).append(now - due[acked])
                acked += 1
                if acked == total:
                    all_acked.set()

        task = asyncio.ensure_future(reader())
        source = itertools.cycle(frames)
        for at in due:
            wait = at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await ws.send(next(source), text=True)
        await all_acked.wait()
        task.cancel()
    return {start + second: latencies for second, latencies in by_second.items()}


class StealWatch:
    """CPU time the hypervisor took from this machine (steal), sampled from /proc/stat in a thread.

    On a shared VM, seconds in which steal is high are where both clients' tails come
    from; a latency comparison can then be made on the seconds without it. Where
    /proc/stat is not there (not Linux), nothing is known and :meth:`share` is None.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._samples: list[tuple[float, int]] = []  # (monotonic time, steal jiffies since boot)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._capacity = os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)  # jiffies of CPU time per second

    def __enter__(self) -> StealWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        try:
            stat = os.open("/proc/stat", os.O_RDONLY)
        except OSError:  # not Linux: nothing known
            return
        try:
            while not self._stop.is_set():
                # pread each time: a buffered file would answer from its buffer, not the kernel
                self._samples.append((time.monotonic(), int(os.pread(stat, 256, 0).split()[8])))
                self._stop.wait(self.interval)
        except IndexError:  # a kernel too old to count steal: nothing known
            self._samples.clear()
        finally:
            os.close(stat)

    def share(self, start: float, end: float) -> float | None:
        """The fraction of the machine's CPU time stolen between monotonic times ``start`` and ``end``."""
        inside = [jiffies for at, jiffies in self._samples if start <= at <= end]
        if len(inside) < 2:
            return None
        return (inside[-1] - inside[0]) / (self._capacity * (end - start))


DOCS = HERE.parent / "docs" / "benchmarks"


def write_page(name: str, title: str, lines: list[str]) -> Path:
    """Write ``docs/benchmarks/<name>.md``: a benchmark's figures as it printed them, with when and where they were measured."""
    import platform  # noqa: PLC0415

    DOCS.mkdir(parents=True, exist_ok=True)
    page = DOCS / f"{name}.md"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"
    command = " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    body = "\n".join(lines)
    page.write_text(
        f"# {title}\n\nWritten by `{command}` on {when} ({machine}). Figures of one run, ratios against a baseline "
        f"measured in the same run; on a shared machine they vary from run to run.\n\n```\n{body}\n```\n",
        encoding="utf-8",
    )
    return page


@contextmanager
def page_of(name: str, title: str) -> Iterator[None]:
    """Print as usual, and write what was printed to ``docs/benchmarks/<name>.md`` when the benchmark ends well."""

    class Tee(io.TextIOBase):
        def __init__(self, out: Any) -> None:
            self.out, self.lines = out, io.StringIO()

        def write(self, text: str) -> int:
            self.lines.write(text)
            return int(self.out.write(text))

        def flush(self) -> None:
            self.out.flush()

    tee = Tee(sys.stdout)
    with redirect_stdout(tee):
        yield
    page = write_page(name, title, tee.lines.getvalue().rstrip("\n").splitlines())
    print(f"figures written to {page}")
