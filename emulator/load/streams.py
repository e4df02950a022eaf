"""Each master's notifications in a load run: what its feed brings, paced by the model, a bounded way ahead.

The master takes notifications from its stream without waiting (a
:class:`~emulator.protocol.run.PullSource`): no task and no timer per notification,
one wake-up of the master when the generator brings what it waited for. The stream
hands out no more than the master can use now: in the closed model, what its window
takes; in the open model, the next notification, which the master holds until it is
due. So memory stays bounded, a notification is counted as sent when it is due, and
a run ends on time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from emulator.load.generator import Feed
from emulator.load.metrics import LoadMetrics
from emulator.protocol.run import NOT_YET, Paced

#: Notifications buffered ahead of the senders at most, all masters together (~600 bytes each).
BUFFER = 50_000


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
    """One master's notifications for the duration, taken by the master as it can send them."""

    __slots__ = (
        "_blocked", "_ended", "_waiting_since", "_wake", "ahead", "began", "feed", "handed", "interval", "metrics",
        "outstanding", "slid", "starved", "starved_s", "stop_at",
    )  # fmt: skip

    def __init__(
        self, feed: Feed, metrics: LoadMetrics, *, began: float, stop_at: float, window: int, rate: float | None, masters: int
    ) -> None:
        self.feed = feed
        self.metrics = metrics
        self.began = began
        self.stop_at = stop_at
        self.ahead = 2 * window  # closed model: handed out and not yet acknowledged, at most
        self.interval = masters / rate if rate else None  # open model: this master's share of the rate
        self.handed = 0
        self.outstanding = 0
        self.starved = 0  # times the master had to wait for the generator
        self.starved_s = 0.0  # and for how long in all (seconds)
        self.slid = 0.0  # open model: how far its schedule slid for want of notifications (seconds)
        self._wake: Callable[[], None] | None = None
        self._blocked = False  # closed model: handed out ``ahead``: the next acknowledgement wakes the master
        self._waiting_since: float | None = None  # when the master began to wait for the generator
        self._ended = False

    def bind(self, wake: Callable[[], None]) -> None:
        """The master's wake-up: called when what it waits for comes (notifications, room, the end)."""
        self._wake = wake
        self.feed.on_arrival = self._arrived
        if self.interval is None:  # the closed model ends at stop_at, whatever the master waits for
            asyncio.get_running_loop().call_at(self.stop_at, wake)

    def acknowledged(self) -> None:
        self.outstanding -= 1
        if self._blocked and self._wake is not None:
            self._blocked = False
            self._wake()

    def take(self) -> Any:
        """The next notification (open model: as a Paced step), None at the end, NOT_YET while there is none."""
        if self._ended:
            return None
        interval, now = self.interval, time.monotonic()
        due = at = 0.0
        if interval is not None:
            at = self.handed * interval + self.slid
            due = self.began + at
            if due >= self.stop_at:
                return self._end()
        else:
            if now >= self.stop_at:
                return self._end()
            if self.outstanding >= self.ahead:
                self._blocked = True
                return NOT_YET
        feed = self.feed
        item = feed.take()
        if item is None:
            if feed.ended:
                return self._end()
            if self._waiting_since is None:
                self.starved += 1
                self._waiting_since = now
            return NOT_YET
        if self._waiting_since is not None:
            self.starved_s += now - self._waiting_since
            self._waiting_since = None
            if interval is not None and now > due:
                # Late for want of a notification: the generator's delay, not the endpoint's. This master's
                # schedule slides by it, so its latency stays the endpoint's (its rate shows the loss).
                late = now - due
                self.slid += late
                at, due = at + late, due + late
                if due >= self.stop_at:
                    return self._end()  # it came after the run's end: not sent (the buffer's, not the endpoint's, to account for)
        self.handed += 1
        if interval is not None:
            self.metrics.on_sent(due)
            return Paced(at, item)
        self.outstanding += 1
        self.metrics.on_sent(now)
        return item

    def _arrived(self) -> None:
        if self._waiting_since is not None and self._wake is not None:
            self._wake()

    def _end(self) -> None:
        """None, the end: nothing more is handed out."""
        self._ended = True
        self.feed.on_arrival = None
