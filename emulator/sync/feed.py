"""Notifications for blocking masters (Locust users), generated in a child process a bounded buffer ahead.

A notification costs some 40-150 µs to generate, encode and check: in a Locust
worker that is on the senders' path, and one core does both. So, as ``load``
does (:mod:`emulator.load.generator`), one child process per process of users
(:mod:`emulator.load.generation`'s loop) runs every master's domain and sends
encoded, checked frames in chunks, as the masters ask for them: memory is
bounded by each feed's buffer, and a master's first notification leaves as soon
as its first chunk is in.

This is the blocking side of the same protocol: a reader thread and a lock for
writes, which become a greenlet and a greenlet lock under gevent's monkey
patching (Locust), as ``subprocess``'s pipes become cooperative. Masters arrive
one by one (:meth:`FeedGenerator.add` registers each one's seed with the child);
each gets a :class:`Feed`, an iterator of :class:`~emulator.sync.PreparedNotification`
that waits only when its buffer is empty. The child is a new interpreter reading
its stdin: it ends when :meth:`FeedGenerator.close` closes that, or when this
process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

from emulator.load.generation import LENGTH, NamedReply, frame
from emulator.protocol.session import Violation
from emulator.scenario.model import Scenario
from emulator.sync.master import PreparedNotification

#: A feed's low-water mark and chunk by default: below this many buffered or on their way, it asks for as many more.
#: Small enough for a thousand users a process (~700 bytes a notification), ahead by a second or so at a user's rate.
LOW = 128
#: Seconds the child may take to end once its stdin is closed, before it is killed.
CLOSE_TIMEOUT = 2.0


class Feed(Iterator[PreparedNotification]):
    """One master's notifications from the generator: an iterator that waits only when nothing is buffered.

    It ends (StopIteration) when the generator is gone and the buffer is empty.
    Below ``low`` notifications buffered or asked for, it asks for ``chunk`` more.
    Only one thread (greenlet) takes from a feed; the generator's reader fills it.
    """

    def __init__(self, index: int, low: int, chunk: int, generator: FeedGenerator) -> None:
        self.index = index
        self.low = low
        self.chunk = chunk
        self.generator = generator
        self.buffer: deque[PreparedNotification] = deque()
        self.asked = 0  # notifications asked for (written by the taker only)
        self.arrived = 0  # notifications that came (written by the reader only)
        self.taken = 0  # notifications handed out
        self.ended = False
        self.hostname: str | None = None  # the emulated master's, with its first notifications
        self.violations: list[Violation] = []  # what the generator found in this master's frames, not yet taken (see found)
        self.changed = threading.Condition()  # the reader notifies under it when notifications (or the end) came

    def prepare(self, count: int) -> None:
        """Ask for ``count`` notifications beyond what is buffered or on its way (see :meth:`filled`)."""
        if count > 0 and not self.ended:
            self.asked += count
            self.generator.ask(self.index, count)

    def filled(self, count: int, timeout: float | None = None) -> bool:
        """Wait until ``count`` notifications are buffered, or the feed ended; whether they are."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.buffer) >= count or self.ended, timeout)
        return len(self.buffer) >= count

    def found(self) -> list[Violation]:
        """The violations found in this master's frames since the last call (each once)."""
        with self.changed:
            found, self.violations = self.violations, []
        return found

    def __iter__(self) -> Feed:
        return self

    def __next__(self) -> PreparedNotification:
        buffer = self.buffer
        if len(buffer) + self.asked - self.arrived < self.low and not self.ended:
            self.asked += self.chunk
            self.generator.ask(self.index, self.chunk)
        if not buffer:
            with self.changed:
                while not buffer and not self.ended:
                    self.changed.wait()
            if not buffer:
                raise StopIteration
        self.taken += 1
        return buffer.popleft()


class FeedGenerator:
    """A generator child process and the feeds of the masters registered with it (:meth:`add`)."""

    def __init__(self, process: subprocess.Popen[bytes], start: float) -> None:
        self.process = process
        self.start_time = start  # the scenario's start for every master's domain (a DomainResponder needs it too)
        self.feeds: list[Feed] = []
        self.error: str | None = None  # why the generator ended before it was closed
        self._closing = False
        self._writing = threading.Lock()  # one frame at a time on the child's stdin
        assert process.stdin is not None and process.stdout is not None
        self._stdin: IO[bytes] = process.stdin
        self._stdout: IO[bytes] = process.stdout
        self._reader = threading.Thread(target=self._read, name="nbwss-feed", daemon=True)

    @classmethod
    def start(cls, scenario: Scenario, start: float, *, ids: str = "unique") -> FeedGenerator:
        """Start a generator process for ``scenario``'s masters, their domains starting at ``start`` (epoch seconds).

        ``ids``: the timelines' message ids, ``"unique"`` each run or ``"seeded"`` (see :class:`~emulator.scenario.Timeline`).
        """
        process = subprocess.Popen(  # a new interpreter: forking a process of greenlets and sockets is not safe
            [sys.executable, "-m", "emulator.load.generation"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
        )
        generator = cls(process, start)
        generator._write({"scenario": scenario, "seeds": [], "start": start, "names": True, "ids": ids})
        generator._reader.start()
        return generator

    def add(self, seed: int, *, low: int = LOW, chunk: int | None = None) -> Feed:
        """Register a master whose domain has this seed; its feed, which asks for its first chunk now."""
        with self._writing:  # the index is the child's, given in the order the seeds reach it
            feed = Feed(len(self.feeds), low, chunk if chunk is not None else low, self)
            self.feeds.append(feed)
            if self.error is not None or self._closing:
                feed.ended = True
            self._send({"seeds": [seed]})
        if not feed.ended:
            feed.asked += feed.chunk
            self.ask(feed.index, feed.chunk)
        return feed

    def ask(self, index: int, count: int) -> None:
        """Ask for ``count`` more notifications of master ``index``."""
        self._write([(index, count)])

    def _write(self, payload: Any) -> None:
        with self._writing:
            self._send(payload)

    def _send(self, payload: Any) -> None:
        try:
            self._stdin.write(frame(payload))
            self._stdin.flush()
        except (OSError, ValueError):  # the child is gone (or closed): the reader ends the feeds
            pass

    def _read(self) -> None:
        stdout, feeds = self._stdout, self.feeds
        try:
            while True:
                head = stdout.read(4)
                if len(head) < 4:
                    break
                (length,) = LENGTH.unpack(head)
                data = stdout.read(length)
                if len(data) < length:
                    break
                replies: list[NamedReply] = pickle.loads(data)
                for index, frames, violations, ended, hostname in replies:
                    feed = feeds[index]
                    with feed.changed:
                        if hostname is not None:
                            feed.hostname = hostname
                        feed.buffer.extend([PreparedNotification(*item) for item in frames])
                        feed.arrived += len(frames)
                        if violations:
                            feed.violations.extend(violations)
                        if ended:
                            feed.ended = True
                        feed.changed.notify_all()
        except (OSError, ValueError, pickle.UnpicklingError, EOFError):
            pass
        finally:
            try:
                code = self.process.wait(CLOSE_TIMEOUT)  # its output ended: so does it, unless something went wrong
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
            if not self._closing:
                self.error = f"the notification generator ended (exit {code})"
            for feed in list(feeds):  # the generator is gone: what is buffered is all there is
                with feed.changed:
                    feed.ended = True
                    feed.changed.notify_all()

    @property
    def ended(self) -> bool:
        """Whether the generator process is gone (closed, or it died)."""
        return self._closing or self.error is not None

    def close(self) -> None:
        """End the generator process: its stdin's end stops it (killed if it has not stopped in CLOSE_TIMEOUT)."""
        self._closing = True
        with self._writing, contextlib.suppress(OSError, ValueError):
            self._stdin.close()
        try:
            self.process.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self._reader.is_alive():
            self._reader.join(CLOSE_TIMEOUT)
        with contextlib.suppress(OSError, ValueError):
            self._stdout.close()
