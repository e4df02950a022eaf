"""Notifications for a load run, generated in a process of their own, a bounded buffer ahead of the senders.

A notification costs a step of the domain simulation (some 30 µs), its encoding
and a schema check (some 8 µs): as much as sending it and settling its
acknowledgement. Generated in the senders' process, it would be measured against
the generator rather than the endpoint; generated all before the clock starts,
a short run waits seconds and holds gigabytes. So a child process runs each
master's domain (seed + index) and sends encoded, checked frames in chunks,
only as many as the senders ask for: memory is bounded by the buffer, not by
the duration, and the first notification leaves as soon as the first chunk is in.

The two processes speak length-prefixed pickles over the child's stdin and
stdout (both ends are this package; the child and the format are
:mod:`emulator.load.generation`): first the scenario, seeds and start time,
then requests ``[(master, count), ...]``; back come ``[(master, frames,
violations, ended, hostname), ...]`` (the master's host name in its first reply,
None after). The child ends at its stdin's end, so it never outlives the run,
however the run ends. This is the asyncio parent; Locust's users have a
blocking one (:mod:`emulator.sync.feed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pickle
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from emulator.load import children
from emulator.load.children import Child
from emulator.load.generation import CHUNK, FLUSH_AT, FLUSH_EVERY, Reply, serve
from emulator.load.generation import LENGTH as _LENGTH
from emulator.load.generation import frame as _frame
from emulator.protocol.run import Prepared
from emulator.protocol.session import Violation
from emulator.scenario.model import Scenario
from emulator.wire.master import ConnectError, Signal

__all__ = ["CHUNK", "FLUSH_AT", "FLUSH_EVERY", "Feed", "Generator", "Generators", "Reply", "processes_for", "serve"]

# -- the senders' side -------------------------------------------------------------------


@dataclass(slots=True)
class Feed:
    """One master's notifications as they come from the generator, and what it asks for next.

    ``low`` is the buffer's low-water mark: below it (what is buffered and what is
    on its way together), ``chunk`` more are asked for.
    """

    index: int
    low: int
    chunk: int
    generator: Generator
    buffer: deque[Prepared] = field(default_factory=deque)
    requested: int = 0
    ended: bool = False
    taken: int = 0
    violations: list[Violation] = field(default_factory=list)
    arrived: Signal = field(default_factory=Signal)  # asyncio.Event's interface, without its 760-byte deque
    on_arrival: Callable[[], None] | None = None  # called, as arrived is set, when notifications came (or the feed ended)
    hostname: str | None = None  # the emulated master's, from the generator with its first notifications

    def prepare(self, count: int) -> None:
        """Ask for ``count`` notifications beyond what is buffered or on its way (see :func:`prepared`)."""
        if count > 0 and not self.ended:
            self.requested += count
            self.generator.ask(self.index, count)

    async def filled(self, count: int) -> None:
        """Until ``count`` notifications are buffered, or the domain ended."""
        while len(self.buffer) < count and not self.ended:
            self.arrived.clear()
            await self.arrived.wait()

    def take(self) -> Prepared | None:
        """The next notification, None when none is here (yet: see ``ended``)."""
        buffer = self.buffer
        if len(buffer) + self.requested < self.low and not self.ended:
            self.requested += self.chunk
            self.generator.ask(self.index, self.chunk)
        if buffer:
            self.taken += 1
            return buffer.popleft()
        return None


class Generator:
    """The generator process of one load run, and each master's feed from it."""

    def __init__(self, process: Child, feeds_of: list[tuple[int, int]]) -> None:
        self.process = process
        self.feeds = [Feed(index, low, chunk, self) for index, (low, chunk) in enumerate(feeds_of)]
        self._asks: list[tuple[int, int]] = []
        self._reader = asyncio.ensure_future(self._read())
        self.first_at: float | None = None  # when the first notifications arrived (time.monotonic)
        self.ready = asyncio.Event()  # set then (or when the generator ended without any)
        self.cpu_seconds = 0.0
        self.rss_peak: int | None = None

    @classmethod
    async def start(cls, scenario: Scenario, seeds: list[int], start: float, feeds_of: list[tuple[int, int]]) -> Generator:
        """Start the generator process for masters with these seeds; each feed's (low-water mark, chunk)."""
        process = await children.start(serve, ["emulator.load.generator"])
        generator = cls(process, feeds_of)
        process.stdin.write(_frame({"scenario": scenario, "seeds": seeds, "start": start}))
        for feed in generator.feeds:
            feed.take()  # each asks for its first chunk
        return generator

    def ask(self, index: int, count: int) -> None:
        if not self._asks:
            asyncio.get_running_loop().call_soon(self._send_asks)  # the asks of one turn of the loop go together
        self._asks.append((index, count))

    def _send_asks(self) -> None:
        asks, self._asks = self._asks, []
        stdin = self.process.stdin
        if not stdin.is_closing():
            stdin.write(_frame(asks))

    async def _read(self) -> None:
        stdout = self.process.stdout
        feeds = self.feeds
        try:
            while True:
                (length,) = _LENGTH.unpack(await stdout.readexactly(4))
                replies: list[Reply] = pickle.loads(await stdout.readexactly(length))
                if self.first_at is None:
                    self.first_at = time.monotonic()
                    self.ready.set()
                for index, frames, violations, ended, hostname in replies:
                    feed = feeds[index]
                    if hostname is not None:
                        feed.hostname = hostname
                    feed.requested -= len(frames)
                    feed.buffer.extend([Prepared(message_id, frame) for message_id, frame in frames])
                    if violations:
                        feed.violations.extend(violations)
                    if ended:
                        feed.ended, feed.requested = True, 0
                    feed.arrived.set()
                    if feed.on_arrival is not None:
                        feed.on_arrival()
        except asyncio.IncompleteReadError:
            self.ready.set()
            for feed in feeds:  # the generator is gone: what is buffered is all there is
                feed.ended = True
                feed.arrived.set()
                if feed.on_arrival is not None:
                    feed.on_arrival()
            if self.process.returncode not in (None, 0, -signal.SIGTERM):
                raise ConnectError(f"the notification generator ended ({self.process.returncode})") from None

    def sample(self) -> None:
        """Note the generator's CPU time and peak resident memory (Linux; nothing elsewhere)."""
        pid = self.process.pid
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            self.cpu_seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            with open(f"/proc/{pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        self.rss_peak = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass

    async def close(self) -> None:
        """Stop the generator process (its stdin's end stops it), having noted what it used."""
        self.sample()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectError):
            await self._reader
        await self.process.wait(1.0)  # its stdin's end stops it


class Generators:
    """Generator processes each for a block of the masters, behind the interface of one :class:`Generator`.

    Building a domain takes 10-20 ms and a notification 30-100 µs: where there are cores to
    spare, several processes share the work (and 5,000 masters' domains are built sooner).
    """

    def __init__(self, parts: list[Generator]) -> None:
        self.parts = parts
        self.feeds = [feed for part in parts for feed in part.feeds]  # in the masters' order: the blocks are contiguous
        self.ready = asyncio.Event()
        self._watch = asyncio.ensure_future(self._first())

    @classmethod
    async def start(cls, scenario: Scenario, seeds: list[int], start: float, feeds_of: list[tuple[int, int]], processes: int) -> Generators:
        """Start ``processes`` generator processes (at most one per master) for masters with these seeds."""
        count = max(1, min(processes, len(seeds)))
        bounds = [len(seeds) * part // count for part in range(count + 1)]
        parts = []
        try:
            for first, end in itertools.pairwise(bounds):
                parts.append(await Generator.start(scenario, seeds[first:end], start, feeds_of[first:end]))
        except BaseException:
            await asyncio.gather(*(part.close() for part in parts))
            raise
        return cls(parts)

    async def _first(self) -> None:
        waits = [asyncio.ensure_future(part.ready.wait()) for part in self.parts]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        self.ready.set()

    @property
    def first_at(self) -> float | None:
        times = [part.first_at for part in self.parts if part.first_at is not None]
        return min(times) if times else None

    @property
    def cpu_seconds(self) -> float:
        return sum(part.cpu_seconds for part in self.parts)

    @property
    def rss_peak(self) -> int | None:
        peaks = [part.rss_peak for part in self.parts if part.rss_peak is not None]
        return sum(peaks) if peaks else None

    def sample(self) -> None:
        for part in self.parts:
            part.sample()

    async def close(self) -> None:
        self._watch.cancel()
        await asyncio.gather(*(part.close() for part in self.parts))


def processes_for(masters: int) -> int:
    """How many generator processes a run of ``masters`` gets by default: one per core, at most one per master."""
    return max(1, min(masters, os.cpu_count() or 1))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):  # the run ended first: nothing to say
        serve()
