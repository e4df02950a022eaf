"""The notification generator's child process, and the wire format between it and its parent.

The child runs each master's domain (its seed, the scenario's start) and sends
encoded, checked frames in chunks, only as many as its parent asks for. Two
parents speak to it: a load run (:mod:`emulator.load.generator`, asyncio) and
the Locust users of one process (:mod:`emulator.sync.feed`, blocking). Nothing
here imports asyncio, so the child and the blocking parent do without it.

Length-prefixed pickles over the child's stdin and stdout (both ends are this
package). First the setup: ``{"scenario", "seeds", "start"}`` and, optionally,
``"names": True`` for each frame's sample name (see below) and ``"ids"`` (the
timelines' message ids: ``"unique"``, the default, or ``"seeded"``). Then requests: a list
``[(master, count), ...]`` asks for ``count`` more notifications of master
``master`` (its index among the seeds); a dict ``{"seeds": [...]}`` adds masters
(the next indexes), for a parent whose masters arrive one by one. Back come
lists of :data:`Reply` ``(master, frames, violations, ended, hostname)``: frames
are ``(message id, frame)`` pairs, or ``(message id, frame, sample name)`` when
the setup asked for names; the master's host name comes in its first reply, None
after. The child ends at its stdin's end, so it never outlives its parent.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import select
import signal
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

from emulator.protocol.codec import encode
from emulator.protocol.session import Violation, excerpt
from emulator.scenario import Timeline
from emulator.scenario.model import Scenario
from emulator.schemas import default_schemas, fast_is_valid

LENGTH = struct.Struct(">I")
#: Notifications the child generates for one master before it turns to the next one asking.
CHUNK = 64
#: The child sends what it has once it holds this many notifications, or after this long (seconds; with many
#: masters each domain takes 10-20 ms to build), or when nobody else is waiting.
FLUSH_AT = 512
FLUSH_EVERY = 0.05

#: (message id, frame) pairs of one master, the violations found in them, whether its domain ended, and the
#: emulated master's host name (in its first reply only; None after).
Reply = tuple[int, list[tuple[str, bytes]], list[Violation], bool, str | None]
#: A reply to a setup that asked for names: (message id, frame, sample name) triples.
NamedReply = tuple[int, list[tuple[str, bytes, str]], list[Violation], bool, str | None]


def frame(payload: Any) -> bytes:
    """``payload`` as one length-prefixed pickle."""
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return LENGTH.pack(len(data)) + data


class _Requests:
    """Length-prefixed pickles read from a file descriptor, without blocking unless asked to."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self.ended = False

    def read(self, *, block: bool) -> list[Any]:
        ready, _, _ = select.select([self._fd], [], [], None if block else 0)
        if ready:
            data = os.read(self._fd, 1 << 16)
            if not data:
                self.ended = True
            self._buffer += data
        return list(self._complete())

    def _complete(self) -> Iterator[Any]:
        buffer = self._buffer
        while len(buffer) >= 4:
            (length,) = LENGTH.unpack_from(buffer)
            if len(buffer) < 4 + length:
                return
            yield pickle.loads(bytes(buffer[4 : 4 + length]))
            del buffer[: 4 + length]


#: The child's garbage collector thresholds. A domain allocates containers at every step, most of them dying young;
#: collected every 700 allocations (Python's default), with the domains' growing heap traversed again and again, they
#: took half the generation time (about 50 µs a notification of datacenter-day with 50 masters, 30 with these).
GC_THRESHOLDS = (50_000, 20, 100)


def serve(fd_in: int = 0, fd_out: int = 1) -> None:
    """The child's loop: answer requests for notifications until the requests end."""
    gc.freeze()  # what the process holds already (its imports; a forked parent's heap) is never garbage: not traversed again
    gc.set_threshold(*GC_THRESHOLDS)
    requests = _Requests(fd_in)
    while not requests.ended:
        first = requests.read(block=True)
        if first:
            break
    else:
        return
    setup = first.pop(0)
    scenario: Scenario = setup["scenario"]
    seeds: list[int] = list(setup["seeds"])
    start: float = setup["start"]
    ids: str = setup.get("ids", "unique")
    named: Callable[[dict[str, Any]], str] | None = None
    if setup.get("names"):
        from emulator.sync.master import sample_name  # noqa: PLC0415 - only a parent that asks for names pays for the import

        named = sample_name
    schemas = default_schemas()
    checker = schemas.fast_validator("notification-request.json")
    domains: dict[int, Iterator[dict[str, Any]]] = {}
    demand: dict[int, int] = {}  # master -> notifications asked for and not yet sent, oldest ask first
    out: list[tuple[int, list[Any], list[Violation], bool, str | None]] = []
    pending = 0
    flushed = time.monotonic()
    backlog = first
    with os.fdopen(fd_out, "wb", buffering=0, closefd=False) as sink:
        while True:
            for request in backlog:
                if type(request) is dict:  # masters arriving later
                    seeds.extend(request["seeds"])
                    continue
                for master, count in request:
                    demand[master] = demand.get(master, 0) + count
            if requests.ended:
                return
            if not demand:
                if out:
                    sink.write(frame(out))
                    out, pending = [], 0
                backlog = requests.read(block=True)
                continue
            master, wanted = next(iter(demand.items()))
            del demand[master]
            domain = domains.get(master)
            hostname = None
            if domain is None:
                timeline = Timeline(scenario, seed=seeds[master], start=start, ids=ids)
                domain = domains[master] = timeline.notifications(repeat=True)
                hostname = timeline.masters[scenario.masters[0].key].hostname  # the master these notifications are of
            frames: list[Any] = []
            violations: list[Violation] = []
            ended = False
            for _ in range(min(wanted, CHUNK)):
                message = next(domain, None)
                if message is None:
                    ended = True
                    break
                encoded = encode(message)
                if not fast_is_valid(checker, message):
                    text = excerpt(encoded.decode())
                    violations.extend(Violation("frames.schema.sent", finding, text) for finding in schemas.validate(message))
                if named is None:
                    frames.append((message["id"], encoded))
                else:
                    frames.append((message["id"], encoded, named(message)))
            if not ended and wanted > len(frames):
                demand[master] = wanted - len(frames)  # to the back: every master asking gets its turn
            out.append((master, frames, violations, ended, hostname))
            pending += len(frames)
            if pending >= FLUSH_AT or not demand or time.monotonic() >= flushed + FLUSH_EVERY:
                sink.write(frame(out))
                out, pending, flushed = [], 0, time.monotonic()
            backlog = requests.read(block=False)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends us through stdin
    with contextlib.suppress(BrokenPipeError):  # the parent ended first: nothing to say
        serve()
