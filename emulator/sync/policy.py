"""Sending policy the synchronous master needs and the sans-I/O session does not hold yet.

Pure functions of time and counts, no I/O: the asyncio master keeps the same
policy inline (``emulator.wire.master``); once the session core holds it, these
go.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from emulator.protocol.properties import NbwssProperties

#: The first pause between connection attempts, seconds (as the asyncio master's).
FIRST_BACKOFF = 0.05


@dataclass(slots=True)
class Backoff:
    """Jittered exponential back-off between rounds of connection attempts.

    The first pause is at most :data:`FIRST_BACKOFF` seconds, each next one twice
    the last, never more than ``notification.connectionInfo.period``; each is
    scaled by a random factor in [0.5, 1.5) so that masters dropped together do
    not come back together. ``attempts`` failed rounds in a row and the master
    gives up (:attr:`exhausted`); a connection that opens resets it.
    """

    period: float
    attempts: int
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0
    _delay: float = 0.0

    def __post_init__(self) -> None:
        self._delay = min(FIRST_BACKOFF, self.period)

    def failed(self) -> float | None:
        """One more failed round: seconds to wait before the next, or None once :attr:`exhausted`."""
        self.failures += 1
        if self.exhausted:
            return None
        pause = self._delay * (0.5 + self.rng.random())
        self._delay = min(self._delay * 2, self.period)
        return pause

    @property
    def exhausted(self) -> bool:
        return self.failures >= self.attempts

    def reset(self) -> None:
        """A connection opened: the next outage starts over from the first pause."""
        self.failures = 0
        self._delay = min(FIRST_BACKOFF, self.period)


def give_up_after(properties: NbwssProperties, ack_limit: float) -> float:
    """How long a notification may stay unacknowledged on open connections before it is reported lost.

    The asyncio master's stall time-out (ack time-out and three resend cycles): the
    notification was sent at least three times and not one copy was acknowledged.
    """
    return ack_limit + 3 * properties.resend_interval


def is_late(latency: float, overdue: bool, ack_limit: float) -> bool:
    """An acknowledgement is late when it took longer than the ack time-out, or came only after a resend."""
    return overdue or latency > ack_limit
