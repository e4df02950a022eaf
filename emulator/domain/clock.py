"""Simulated time: actions run in time order, as fast as the caller advances them."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class Scheduler:
    """A clock and a queue of actions due at given times (seconds since the epoch).

    Actions due at the same time run in the order they were scheduled, so a
    run is deterministic. Time only moves forward.
    """

    def __init__(self, start: float) -> None:
        self._now = float(start)
        self._queue: list[tuple[float, int, Callable[[], object]]] = []
        self._sequence = itertools.count()

    def now(self) -> float:
        """The current simulated time."""
        return self._now

    def call_at(self, when: float, action: Callable[[], object]) -> None:
        """Run ``action`` when the clock reaches ``when`` (not before now)."""
        heapq.heappush(self._queue, (max(when, self._now), next(self._sequence), action))

    def call_later(self, delay: float, action: Callable[[], object]) -> None:
        """Run ``action`` ``delay`` seconds from now."""
        self.call_at(self._now + delay, action)

    def next_due(self) -> float | None:
        """When the next action is due, or None when nothing is scheduled."""
        return self._queue[0][0] if self._queue else None

    def run_until(self, when: float) -> None:
        """Run every action due up to ``when``, then set the clock to ``when``."""
        while self._queue and self._queue[0][0] <= when:
            self._step()
        self._now = max(self._now, when)

    def run_while(self, condition: Callable[[], bool], *, until: float | None = None) -> None:
        """Run actions one by one while ``condition()`` holds and any are due (up to ``until``)."""
        while self._queue and (until is None or self._queue[0][0] <= until) and condition():
            self._step()

    def _step(self) -> None:
        when, _, action = heapq.heappop(self._queue)
        self._now = when
        action()
