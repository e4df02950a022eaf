"""Load figures: counts, and ack latency as HDR histograms in total and per second."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

MICROS = 1_000_000
HIGHEST = 600 * MICROS  # ten minutes, in microseconds
SIGNIFICANT = 1 << 11  # latencies (µs) from here on are counted at 11 significant bits
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
#: Latency values folded into the histograms per acknowledgement while a past second has some left.
#: A second holds thousands of distinct values and recording one costs ~3 µs: folded at once, they
#: would stop the event loop for ~12 ms each second, a pause that every ack in flight then shows.
FOLD_PER_ACK = 1


def _histogram(digits: int) -> HdrHistogram:
    return HdrHistogram(1, HIGHEST, digits)


@dataclass(slots=True)
class Second:
    """What happened in one second of the run."""

    sent: int = 0
    acknowledged: int = 0
    latency: HdrHistogram = field(default_factory=lambda: _histogram(2))
    # latency (µs) -> acks, not yet in the histograms: a dict is counted into for a fraction of what recording costs
    counts: dict[int, int] = field(default_factory=dict)


@dataclass
class LoadMetrics:
    """Everything a load run counts; latencies in microseconds."""

    start: float
    sent: int = 0
    acknowledged: int = 0
    retried: int = 0
    lost: int = 0
    connections_opened: int = 0
    connections_dropped: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    seconds: dict[int, Second] = field(default_factory=dict)
    _total: HdrHistogram = field(default_factory=lambda: _histogram(3))
    _counting: Second | None = None  # the second whose acknowledgements are being counted
    _counting_until: float = float("-inf")  # when that second ends
    _unfolded: deque[Second] = field(default_factory=deque)  # past seconds with counts still to fold, oldest first

    @property
    def latency(self) -> HdrHistogram:
        """Every acknowledgement's latency so far."""
        self._fold()
        return self._total

    def _second(self, now: float) -> Second:
        index = int(now - self.start)
        second = self.seconds.get(index)
        if second is None:
            second = self.seconds[index] = Second()
        return second

    def on_sent(self, now: float) -> None:
        self.sent += 1
        self._second(now).sent += 1

    def not_sent(self, count: int) -> None:
        """``count`` notifications counted as sent never left (a refused master, an interrupted run): the latest counted go."""
        self.sent -= count
        for index in sorted(self.seconds, reverse=True):
            if count <= 0:
                break
            second = self.seconds[index]
            taken = min(second.sent, count)
            second.sent -= taken
            count -= taken

    def on_ack(self, now: float, latency: float) -> None:
        micros = int(latency * MICROS)
        if micros < 1:
            micros = 1
        elif micros >= SIGNIFICANT:  # keep 11 significant bits, finer than the histograms' 3 digits: few distinct values
            micros = min(micros, HIGHEST)
            shift = micros.bit_length() - 11
            micros = micros >> shift << shift
        self.acknowledged += 1
        second = self._counting
        if second is None or not self._counting_until - 1.0 <= now < self._counting_until:
            second = self._count_second_of(now)
        second.acknowledged += 1
        counts = second.counts
        counts[micros] = counts.get(micros, 0) + 1
        if self._unfolded:
            self._fold_past(FOLD_PER_ACK)

    def _count_second_of(self, now: float) -> Second:
        """Acknowledgements at ``now`` count into its second; the one before is complete, to be folded bit by bit."""
        second = self._second(now)
        if self._counting is not None and second is not self._counting:
            self._unfolded.append(self._counting)
        self._counting = second
        self._counting_until = self.start + int(now - self.start) + 1
        return second

    def _fold_past(self, budget: int | None) -> None:
        """Record up to ``budget`` (None: all) counted values of past seconds into the histograms."""
        unfolded = self._unfolded
        while unfolded and budget != 0:
            budget = self._fold_second(unfolded[0], budget)
            if not unfolded[0].counts:
                unfolded.popleft()

    def _fold(self) -> None:
        """Record everything counted so far into the histograms (the current second's counts too)."""
        self._fold_past(None)
        if self._counting is not None:
            self._fold_second(self._counting, None)

    def _fold_second(self, second: Second, budget: int | None) -> int | None:
        """Record up to ``budget`` (None: all) of ``second``'s counted values; what is left of the budget."""
        counts, histogram, total = second.counts, second.latency, self._total
        while counts and budget != 0:
            micros, count = counts.popitem()
            histogram.record_value(micros, count)
            total.record_value(micros, count)
            if budget is not None:
                budget -= 1
        return budget

    def percentiles_ms(self, histogram: HdrHistogram | None = None) -> dict[str, float | None]:
        """p50, p90, p99, p99.9 and max of ``histogram`` (the total by default), in milliseconds.

        A past second's histogram is complete once the seconds before the current one are
        folded; only the total needs the current second's counts too.
        """
        if histogram is None:
            self._fold()
        else:
            self._fold_past(None)
        histogram = histogram or self._total
        if histogram.get_total_count() == 0:
            return {"p50": None, "p90": None, "p99": None, "p99.9": None, "max": None}
        values: dict[str, float | None] = {f"p{p:g}": histogram.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
        values["max"] = histogram.get_max_value() / 1000
        return values

    def percentile_distribution_ms(self) -> list[dict[str, float]]:
        """Latency at percentiles spaced as an HDR percentile plot reads them (ever closer to 100%), in milliseconds.

        Each point has ``percentile`` and ``ms``; ``ticks`` is ``1 / (1 - percentile/100)``, the
        log-scaled x of such a plot (2 at 50%, 10 at 90%, 100 at 99%), the last point the maximum
        at one over the count.
        """
        histogram = self.latency
        count = histogram.get_total_count()
        if count == 0:
            return []
        points = []
        for nines in range(0, 7):
            for step in (1.0, 2.0, 5.0) if nines else (2.0, 5.0):
                ticks = step * 10**nines
                if ticks >= count:
                    break
                percentile = 100.0 * (1 - 1 / ticks)
                points.append(
                    {"percentile": round(percentile, 6), "ticks": ticks, "ms": histogram.get_value_at_percentile(percentile) / 1000}
                )
        points.append({"percentile": 100.0, "ticks": float(count), "ms": histogram.get_max_value() / 1000})
        return points

    def as_dict(self, elapsed: float, duration: float | None = None) -> dict[str, Any]:
        """The figures; ``per_second`` has every second from the first to the last, zeros included.

        Seconds from ``duration`` on are the drain (``"phase": "drain"``): only the
        acknowledgements of what was sent before, no new notifications.
        """
        self._fold()
        last = max(max(self.seconds, default=-1), 0, int(elapsed - 1e-9))
        empty = Second()
        per_second = []
        for index in range(last + 1):
            second = self.seconds.get(index, empty)
            per_second.append(
                {
                    "second": index,
                    "phase": "drain" if duration is not None and index >= duration else "sending",
                    "sent": second.sent,
                    "acknowledged": second.acknowledged,
                    "ack_latency_ms": self.percentiles_ms(second.latency),
                }
            )
        return {
            "elapsed_s": round(elapsed, 3),
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "retried": self.retried,
            "lost": self.lost,
            "rate": round(self.acknowledged / elapsed, 1) if elapsed > 0 else 0.0,
            "connections_opened": self.connections_opened,
            "connections_dropped": self.connections_dropped,
            "findings": dict(self.findings),
            "ack_latency_ms": self.percentiles_ms(),
            "latency_percentiles_ms": self.percentile_distribution_ms(),
            "per_second": per_second,
        }
