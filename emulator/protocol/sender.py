"""The master's sending policy, without I/O: when a notification may leave, when a run ends, how it reconnects.

:class:`MasterSession` decides what a frame means; this module decides *when*:

* :class:`SendPolicy`: the window of pending notifications, the pacing slots of an
  open-model rate, the deadlines of a run (stall: nothing acknowledged for too
  long; drain: the last acknowledgements after the source ended), and which
  acknowledgement is late;
* :func:`backoff`: the delays between reconnection rounds (jittered, exponential,
  capped at ``connectionInfo.period``), a generator as websockets' own;
* :class:`Reconnection`: the fail-over order of a group's endpoints and when to give up.

A driver (asyncio, a test with a number for a clock) keeps time and moves bytes; it
asks these objects and does what they say. The per-frame questions
(:meth:`SendPolicy.window_open`, :meth:`SendPolicy.take_slot`, :meth:`SendPolicy.acknowledged`)
take and return plain numbers and allocate nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

#: The first delay between reconnection rounds, seconds (then doubled up to connectionInfo.period).
FIRST_BACKOFF = 0.05
#: How far behind its schedule a paced sender may catch up, seconds: after a pause, at most a second's worth leaves at once.
MAX_CATCH_UP = 1.0


class SendPolicy:
    """Window, pacing, deadlines and lateness for one run of one master (across its reconnections).

    ``now`` is always given by the caller, on one monotonic clock.
    """

    __slots__ = (
        "ack_limit",
        "command_grace",
        "command_grace_cap",
        "drain_deadline",
        "drain_timeout",
        "ended_at",
        "exhausted",
        "interval",
        "last_command",
        "last_progress",
        "next_slot",
        "settled_at",
        "stall_timeout",
        "window",
    )

    def __init__(
        self,
        *,
        window: int,
        rate: float | None,
        ack_limit: float,
        resend_interval: float,
        stall_timeout: float | None = None,
        drain_timeout: float | None = None,
        command_grace: float = 0.5,
        command_grace_cap: float = 5.0,
    ) -> None:
        if window < 1:
            raise ValueError("the window must hold at least one notification")
        self.window = window
        self.interval = None if rate is None else 1.0 / rate  # seconds between pacing slots
        self.ack_limit = ack_limit
        # Defaults: an ack may take ack_limit, and each resend cycle gives it another chance.
        self.stall_timeout = stall_timeout if stall_timeout is not None else ack_limit + 3 * resend_interval
        self.drain_timeout = drain_timeout if drain_timeout is not None else ack_limit + 2 * resend_interval
        # The endpoint's own flow (log in, then read jobs) is not cut off: once everything is
        # acknowledged the run ends when no COMMAND came for command_grace, command_grace_cap at most.
        # (Its first COMMAND may well come after the last acknowledgement: the grace is always given.)
        self.command_grace = command_grace
        self.command_grace_cap = command_grace_cap
        self.last_command: float | None = None
        self.settled_at: float | None = None  # when the notifications were done with, waiting for the COMMAND flow
        self.ended_at = 0.0
        self.next_slot = 0.0
        self.last_progress = 0.0
        self.drain_deadline: float | None = None
        self.exhausted = False

    @property
    def paced(self) -> bool:
        """Whether notifications leave at a rate (open model) rather than as the window allows."""
        return self.interval is not None

    def start(self, now: float) -> None:
        """The run starts: the first slot is now, and the stall clock runs from now."""
        self.next_slot = now
        self.last_progress = now
        self.drain_deadline = None
        self.exhausted = False
        self.last_command = None
        self.settled_at = None

    # -- per frame -------------------------------------------------------------------------

    def window_open(self, pending: int) -> bool:
        """Whether one more notification may be pending."""
        return pending < self.window and not self.exhausted

    def take_slot(self, now: float) -> bool:
        """Whether a paced notification may leave now; if so the slot is taken and the next one set.

        Unpaced, every call may go. Behind schedule (a pause), the slots catch up at
        most :data:`MAX_CATCH_UP` seconds' worth at once.
        """
        interval = self.interval
        if interval is None:
            return True
        if now < self.next_slot:
            return False
        slot = self.next_slot + interval
        self.next_slot = slot if slot > now - MAX_CATCH_UP else now - MAX_CATCH_UP
        return True

    def hold_until(self, due: float) -> None:
        """The next notification is scheduled for ``due`` (scenario time): the next slot is then."""
        self.next_slot = due

    def acknowledged(self, received_at: float) -> None:
        """An acknowledgement was read at ``received_at``: the run makes progress."""
        self.last_progress = received_at

    def is_late(self, latency: float, overdue: bool) -> bool:
        """Whether an acknowledgement ``latency`` seconds after the first send (``overdue``: after a resend) is late."""
        return overdue or latency > self.ack_limit

    def wants_ack_wakeup(self, pending: int) -> bool:
        """Whether an acknowledgement should wake the sender: it may be waiting for one (a full window, the drain)."""
        return pending >= self.window - 1 or self.exhausted

    # -- the run's end ---------------------------------------------------------------------

    def source_ended(self, now: float) -> None:
        """Nothing more will be sent: the last acknowledgements have ``drain_timeout`` to come."""
        self.exhausted = True
        self.ended_at = now
        self.drain_deadline = now + self.drain_timeout

    def command_seen(self, now: float) -> None:
        """The endpoint sent a COMMAND REQUEST: its flow may go on, the run's end waits for it to be quiet."""
        self.last_command = now

    def commands_quiet_at(self) -> float | None:
        """When the endpoint's COMMAND flow counts as over (quiet for the grace, or out of it); None before the end."""
        settled = self.settled_at
        if settled is None:
            return None
        last = self.last_command if self.last_command is not None and self.last_command > settled else settled
        return min(last + self.command_grace, settled + self.command_grace_cap)

    def stall_deadline(self, pending: int) -> float | None:
        """When the run gives up for want of any acknowledgement, if anything is pending."""
        return self.last_progress + self.stall_timeout if pending else None

    def stalled(self, now: float, pending: int) -> bool:
        return pending > 0 and now >= self.last_progress + self.stall_timeout

    def drained(self, now: float, pending: int) -> bool:
        """Whether the run is over.

        The source ended; everything was acknowledged, or the drain time is up; and then
        the endpoint sent no COMMAND for ``command_grace`` (``command_grace_cap`` at most).
        The first call that finds the notifications done starts the grace.
        """
        if not self.exhausted:
            return False
        if pending and (self.drain_deadline is None or now < self.drain_deadline):
            return False
        if self.command_grace <= 0:
            return True
        if self.settled_at is None:
            self.settled_at = now
        quiet = self.commands_quiet_at()
        return quiet is not None and now >= quiet

    def wake_at(self, *deadlines: float | None) -> float | None:
        """The earliest of ``deadlines`` and the run's own (stall is the caller's, with its pending count)."""
        earliest = self.drain_deadline
        quiet = self.commands_quiet_at()
        if quiet is not None and (earliest is None or quiet < earliest):
            earliest = quiet
        for deadline in deadlines:
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest


def backoff(
    initial: float = FIRST_BACKOFF, maximum: float = 60.0, factor: float = 2.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Delays between reconnection rounds: exponential from ``initial`` up to ``maximum``, each jittered by ±50%.

    Jitter keeps a fleet of masters that lost an endpoint together from all coming back at once.
    """
    rng = rng or random.Random()
    delay = min(initial, maximum)
    while True:
        yield delay * (0.5 + rng.random())
        delay = min(delay * factor, maximum)


class Reconnection(Generic[T]):
    """Fail-over and back-off for one group of endpoints.

    Each round tries the group's endpoints in :meth:`order` (preferred first); a
    round in which none accepted calls :meth:`failed_round`, which says how long to
    wait before the next, or None after ``attempts`` rounds: the master gives up.
    A connection that succeeded calls :meth:`connected`, which starts the count again.
    """

    def __init__(self, targets: Sequence[T], *, attempts: int, period: float, rng: random.Random | None = None) -> None:
        if not targets:
            raise ValueError("no endpoint to connect to")
        self.targets = list(targets)
        self.attempts = attempts
        self.period = period
        self.rng = rng or random.Random()
        self.failures = 0
        self._delays = backoff(min(FIRST_BACKOFF, period), period, rng=self.rng)

    def order(self) -> list[T]:
        """The endpoints to try this round, in order: as registered by priority, the preferred first."""
        return list(self.targets)

    def failed_round(self) -> float | None:
        """No endpoint accepted this round: the delay before the next one, or None to give up."""
        self.failures += 1
        if self.failures >= self.attempts:
            return None
        return next(self._delays)

    def connected(self) -> None:
        """A connection was established: later failures count from zero, and back-off starts small again."""
        self.failures = 0
        self._delays = backoff(min(FIRST_BACKOFF, self.period), self.period, rng=self.rng)
