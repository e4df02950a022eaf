"""What a master's run is made of, whatever drives it: its endpoints, settings, the steps of its stream, its report.

These are plain data shared by every driver (the asyncio master of ``run``, ``load``
and the pytest plugin; the blocking master of the Locust user) and by what judges
a run (:mod:`emulator.contract.rules`), so they live below all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from hdrh.histogram import HdrHistogram

from emulator.protocol.properties import NbwssProperties
from emulator.protocol.session import Violation
from emulator.responders import CommandExchange


@dataclass(frozen=True, slots=True)
class Target:
    """An endpoint as registered with NetBackup."""

    url: str
    token: str
    group: str = "default"
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Reconnect:
    """A step in a message stream: drop the connection now (as a network would) and carry on.

    ``settle``: close as a master closing on purpose would rather than at once: first
    ping the endpoint (once the pong is in, what it sent before has arrived, the
    time-out at most notification.sendTimeout) and answer every COMMAND request read
    by then, so that a cloud application's login is not cut off by the test itself.
    """

    settle: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """A step in a message stream: a notification encoded and checked beforehand, sent as it is."""

    message_id: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class Paced:
    """A step in a message stream: send ``message`` no earlier than ``at`` seconds after the run started.

    Its acknowledgement's ``since_due`` counts from that time, however late it left.
    """

    at: float
    message: dict[str, Any] | Prepared


@dataclass(frozen=True, slots=True)
class Raw:
    """A step in a message stream: send this text frame as it is, untracked (for malformed-input tests)."""

    frame: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A step in a message stream: send an already acknowledged notification again, same id."""


@dataclass(slots=True)
class Settings:
    """How a run sends; the NBWSS timings come from ``properties``."""

    properties: NbwssProperties = field(default_factory=NbwssProperties)
    window: int = 64  # pending notifications at most
    rate: float | None = None  # notifications per second (open model); None: as fast as the window allows
    ack_timeout: float | None = None  # an ack later than this is a finding; default notification.sendTimeout
    connect_timeout: float = 10.0  # for the WebSocket opening handshake and for the CONNECT answer
    drain_timeout: float | None = None  # wait for the last acks; default ack timeout + 2 resend cycles
    stall_timeout: float | None = None  # give up when nothing is acknowledged for this long; default ack timeout + 3 cycles
    command_grace: float = 0.5  # at the end, wait until the endpoint sent no COMMAND for this long (with a responder) ...
    command_grace_cap: float = 5.0  # ... but no longer than this after the last acknowledgement
    reconnect_attempts: int = 8  # consecutive failed attempts before the run gives up
    max_size: int = 1024 * 1024
    validate: bool = True
    record_acks: bool = True  # each acknowledgement in Report.acks; a long run keeps counters and a histogram instead
    # Acknowledged ids remembered, so that a second acknowledgement is ack.once and not an unknown id (ack.known-id):
    # some 200 bytes each. A load run of many masters shares 65,536 among them.
    ack_memory: int = 65_536
    ack_histogram: bool = False  # the latencies in Report.latency (an HDR histogram; a soak run, where acks are not recorded)
    # "deflate": offer permessage-deflate (RFC 7692). Off by default: NetBackup does not document offering
    # it, so an endpoint must work without; on, it tests the endpoint's compressed path.
    compression: str | None = None

    def ack_limit(self) -> float:
        return self.ack_timeout if self.ack_timeout is not None else self.properties.send_timeout


@dataclass(slots=True)
class Report:
    """What happened in one run of one master connection group."""

    url: str = ""
    established: int = 0  # CONNECTs answered valid: true
    refused: bool = False
    drops: int = 0  # connections lost without the master closing them
    deliberate_drops: int = 0
    connect_latencies: list[float] = field(default_factory=list)
    acks: list[tuple[str, float, int]] = field(default_factory=list)  # (id, latency since the first send, attempts) if recorded
    acknowledged: int = 0  # notifications acknowledged (counted always, recorded in acks or not)
    latency: HdrHistogram | None = None  # acknowledgement latencies in microseconds, with Settings.ack_histogram
    late_acks: list[tuple[str, float]] = field(default_factory=list)  # (id, latency since the first send); MAX_LATE_KEPT if unrecorded
    late: int = 0  # late acknowledgements, all of them
    lost: list[str] = field(default_factory=list)
    sent: int = 0
    resent: int = 0
    duplicates_sent: list[str] = field(default_factory=list)
    duplicates_acked: list[str] = field(default_factory=list)  # of duplicates_sent, those acknowledged again
    duplicate_acks: int = 0  # acknowledgements beyond one per copy sent
    copy_acks: int = 0  # acknowledgements of resent copies after the first (allowed: one per copy)
    ack_limit: float = 0.0  # notification.sendTimeout, seconds: an acknowledgement later than this is late
    frames_in: int = 0  # frames received from the endpoint, all of them (what the frames.* rules checked)
    resend_interval: float = 0.0  # notification.scheduledRate, seconds (0: not said): a resend also makes an ack late
    violations: list[Violation] = field(default_factory=list)
    commands: list[CommandExchange] = field(default_factory=list)  # COMMAND requests answered (the answer was sent)
    unanswered: list[dict[str, Any]] = field(default_factory=list)  # COMMAND requests received, no answer sent (closing)
    close_codes: list[int] = field(default_factory=list)
    backpressure: int = 0  # sends held back because the endpoint was not reading
    reconnect_failures: list[str] = field(default_factory=list)
    error: str | None = None
    compression: str | None = None  # the extension the endpoint accepted (permessage-deflate), if offered and accepted
    interrupted: bool = False  # stopped by a signal before the end
    elapsed: float = 0.0

    def latency_ms(self) -> dict[str, float | None]:
        """p50, p90, p99 and max of the acknowledgement latencies, milliseconds (from the histogram or the records)."""
        if self.latency is not None:
            if not self.latency.get_total_count():
                return {"p50": None, "p90": None, "p99": None, "max": None}
            values = {f"p{p}": self.latency.get_value_at_percentile(p) / 1000 for p in (50, 90, 99)}
            return {**values, "max": self.latency.get_max_value() / 1000}
        latencies = sorted(latency for _, latency, _ in self.acks)
        if not latencies:
            return {"p50": None, "p90": None, "p99": None, "max": None}

        def pick(percent: float) -> float:
            return round(latencies[min(len(latencies) - 1, max(0, round(percent / 100 * len(latencies) + 0.5) - 1))] * 1000, 3)

        return {"p50": pick(50), "p90": pick(90), "p99": pick(99), "max": round(latencies[-1] * 1000, 3)}

    def late_text(self, message_id: str, latency: float) -> str:
        """A late acknowledgement in words, with the limit and its unit (evidence of ack.within-timeout)."""
        timeout = f"{self.ack_limit * 1000:g} ms"
        if latency <= self.ack_limit:  # within sendTimeout, but only after a resend: the resend interval is shorter than it
            resend = f" ({self.resend_interval * 1000:g} ms)" if self.resend_interval else ""
            return (
                f"notification {message_id} acknowledged {latency * 1000:.0f} ms after its first send, only after the master "
                f"had resent it: notification.scheduledRate{resend} is shorter than notification.sendTimeout ({timeout}), and "
                "the master waits no longer than that for an acknowledgement"
            )
        return (
            f"notification {message_id} acknowledged {latency * 1000:.0f} ms after its first send (notification.sendTimeout is {timeout})"
        )


class _NotYet:
    def __repr__(self) -> str:
        return "NOT_YET"


#: What a :class:`PullSource` gives while it has nothing for now (it calls its wake-up when it has).
NOT_YET: Any = _NotYet()


@runtime_checkable
class PullSource(Protocol):
    """A stream of steps the sender takes from without waiting: no task, no wake-up per step.

    ``take()`` gives the next step, None at the end, or :data:`NOT_YET`; after a NOT_YET
    the source calls the function given to ``bind()`` once it has something (or ended).
    A load run's masters are fed so (one wake-up per notification cost as much as sending it).
    """

    def bind(self, wake: Callable[[], None]) -> None: ...

    def take(self) -> Any: ...
