"""NBWSS's notification cycle: events wait for the next cycle and leave together.

NBWSS looks for new events every ``notification.scheduledRate`` seconds (5 by
default), so an event is sent at the next cycle tick, in one message with what
else happened in that cycle, up to ``max_items`` data items per message.

Ticks count from ``origin`` (the run's start plus a phase), never from the
epoch: a run started at another wall-clock time batches the same events
together, only shifted in time, and its time stamps are not locked to
multiples of the cycle.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

from emulator.domain.notifications import Notification
from emulator.protocol.messages import new_id, notification_request


class Outbox:
    """Notifications of one master waiting for their cycle, turned into messages."""

    def __init__(
        self, rng: random.Random, *, cycle: float = 5.0, max_items: int = 1, origin: float = 0.0, id_rng: random.Random | None = None
    ) -> None:
        """``rng`` draws the message ids unless ``id_rng`` is given (e.g. one seeded from the OS, for ids unique per run)."""
        if cycle < 0 or max_items < 1:
            raise ValueError("cycle must be >= 0 and max_items >= 1")
        self.rng = rng
        self.id_rng = id_rng or rng
        self.cycle = cycle
        self.max_items = max_items
        self.origin = origin
        self._waiting: list[tuple[float, Notification]] = []  # (send tick, notification), in order

    def __len__(self) -> int:
        return len(self._waiting)

    def tick(self, at: float) -> float:
        """When an event that happened at ``at`` is sent."""
        if self.cycle == 0:
            return at
        return self.origin + math.ceil((at - self.origin) / self.cycle) * self.cycle

    def add(self, notifications: Iterable[Notification]) -> None:
        self._waiting.extend((self.tick(n.at), n) for n in notifications)

    def take(self, before: float | None = None) -> list[tuple[float, dict[str, Any]]]:
        """Messages for every cycle earlier than ``before`` (all when None), as (send time, message)."""
        cut = len(self._waiting)
        if before is not None:
            cut = next((i for i, (tick, _) in enumerate(self._waiting) if tick >= before), cut)
        ready, self._waiting = self._waiting[:cut], self._waiting[cut:]
        messages = []
        batch: list[Notification] = []
        batch_tick = 0.0
        size = 0
        for tick, notification in ready:
            items = len(notification.items)
            if batch and (tick != batch_tick or size + items > self.max_items):
                messages.append((batch_tick, self._message(batch_tick, batch)))
                batch, size = [], 0
            batch.append(notification)
            batch_tick = tick
            size += items
        if batch:
            messages.append((batch_tick, self._message(batch_tick, batch)))
        return messages

    def _message(self, tick: float, batch: list[Notification]) -> dict[str, Any]:
        return notification_request(new_id(self.id_rng), int(tick), batch)
