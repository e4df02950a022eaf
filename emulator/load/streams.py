"""Each master's notifications in a load run: what its feed brings, paced by the model, a bounded way ahead.

The master takes notifications from an asynchronous iterable (one of these), so
that its connection stays open while the generator catches up. The stream hands
out no more than the master can use soon: in the closed model, as many as
``ahead`` beyond what was acknowledged; in the open model, those due within
``LEAD`` seconds. So memory stays bounded, a notification is counted as sent
about when it leaves, and a run ends on time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from emulator.load.generator import Feed
from emulator.load.metrics import LoadMetrics
from emulator.protocol.run import Paced

#: Notifications buffered ahead of the senders at most, all masters together (~600 bytes each).
BUFFER = 50_000
#: Open model: notifications are handed to the master this long before they are due (seconds): the master holds
#: them until then, and a hiccup of the generator shorter than this costs nothing.
LEAD = 1.0


def feed_sizes(masters: int, window: int, rate: float | None, buffer: int | None = None) -> tuple[int, int]:
    """A feed's (low-water mark, chunk): half of two seconds of its share at ``rate`` or of 4,096; within ``buffer``.

    Memory per master is what its feed holds (~700 bytes a notification): 5,000 masters
    at a notification every other second need a few each, not 32.
    """
    budget = max(8, (buffer if buffer is not None else BUFFER) // max(masters, 1))
    # two seconds of its share of the rate, or (a closed model's rate is unknown) plenty
    wanted = max(4, math.ceil(2 * rate / masters)) if rate else max(8 * window, 4096)
    low = max(2, min(wanted, budget) // 2)
    return low, low


class MasterStream:
    """One master's notifications for the duration; the master's on_ack calls :meth:`acknowledged`."""

    def __init__(
        self, feed: Feed, metrics: LoadMetrics, *, began: float, stop_at: float, window: int, rate: float | None, masters: int
    ) -> None:
        self.feed = feed
        self.metrics = metrics
        self.began = began
        self.stop_at = stop_at
        self.ahead = 2 * window  # closed model: handed out and not yet acknowledged, at most
        self.reopen = self.ahead - max(1, window // 2)  # and handed out again from here (the master still has half a window)
        self.interval = masters / rate if rate else None  # open model: this master's share of the rate
        self.handed = 0
        self.outstanding = 0
        self._room = asyncio.Event()
        self.starved = 0  # times the master had to wait for the generator
        self.starved_s = 0.0  # and for how long in all (seconds)
        self.slid = 0.0  # open model: how far its schedule slid for want of notifications (seconds)

    def acknowledged(self) -> None:
        self.outstanding -= 1
        if self.outstanding == self.reopen:  # once per half window of acks, not per ack: one wake-up for many
            self._room.set()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._items()

    async def _items(self) -> AsyncIterator[Any]:
        feed, metrics, interval = self.feed, self.metrics, self.interval
        while True:
            if interval is not None:
                at = self.handed * interval + self.slid
                due = self.began + at
                if due >= self.stop_at:
                    return
                lead = due - LEAD - time.monotonic()
                if lead > 0:
                    await asyncio.sleep(lead)
            else:
                if time.monotonic() >= self.stop_at:
                    return
                while self.outstanding >= self.ahead:
                    self._room.clear()
                    if not await self._wait(self._room):
                        return
            item = feed.take()
            while item is None:
                if feed.ended or (interval is None and time.monotonic() >= self.stop_at):
                    return
                self.starved += 1
                feed.arrived.clear()
                waited = time.monotonic()
                going_on = await self._wait(feed.arrived)
                self.starved_s += time.monotonic() - waited
                if not going_on:
                    return
                item = feed.take()
                if interval is not None and time.monotonic() > due:
                    # Late for want of a notification: the generator's delay, not the endpoint's. This master's
                    # schedule slides by it, so its latency stays the endpoint's (its rate shows the loss).
                    late = time.monotonic() - due
                    self.slid += late
                    at, due = at + late, due + late
                    if due >= self.stop_at:
                        return  # it came after the run's end: not sent (the buffer's, not the endpoint's, to account for)
            self.handed += 1
            if interval is not None:
                metrics.on_sent(due)
                yield Paced(at, item)
            else:
                self.outstanding += 1
                metrics.on_sent(time.monotonic())
                yield item

    async def _wait(self, event: asyncio.Event) -> bool:
        """Wait for ``event``, in the closed model no longer than the run lasts; whether the run goes on."""
        if self.interval is not None:
            await event.wait()
            return True
        timer = asyncio.get_running_loop().call_at(self.stop_at, event.set)  # a timer, not a task per wait
        try:
            await event.wait()
        finally:
            timer.cancel()
        return time.monotonic() < self.stop_at
