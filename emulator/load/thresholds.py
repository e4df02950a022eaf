"""Thresholds that decide a load run's exit code: ``p99<250ms``, ``lost==0``, ``rate>=5000``."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_EXPRESSION = re.compile(r"^\s*(?P<metric>[a-z0-9.]+)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s)?\s*$")
LATENCIES = ("p50", "p90", "p99", "p99.9", "max")
COUNTS = ("lost", "findings", "rate", "sent", "acknowledged", "retried", "dropped")


@dataclass(frozen=True, slots=True)
class Threshold:
    text: str
    metric: str
    op: str
    value: float  # milliseconds for latencies

    def actual(self, figures: dict[str, Any]) -> float | None:
        if self.metric in LATENCIES:
            value = figures["ack_latency_ms"][self.metric]
            return None if value is None else float(value)
        if self.metric == "findings":
            return float(sum(figures["findings"].values()))
        if self.metric == "dropped":
            return float(figures["connections_dropped"])
        return float(figures[self.metric])

    def describe(self, value: float | None) -> str:
        """A measured value of this metric with its unit: ``12.30 ms``, ``5,210/s``, ``3 lost``."""
        if value is None:
            return "not measured: no acknowledgement" if self.metric in LATENCIES else "not measured"
        if self.metric in LATENCIES:
            return f"{value:,.2f} ms"
        if self.metric == "rate":
            return f"{value:,.1f} acknowledged/s"
        noun = {"dropped": "connections dropped", "findings": "findings"}.get(self.metric, self.metric)
        return f"{value:,.0f} {noun}"

    def limit(self) -> str:
        """The threshold with its unit: ``p99 < 250 ms``, ``rate >= 5,000 acknowledged/s``."""
        return f"{self.metric} {self.op} {self.describe(self.value)}"

    def holds(self, figures: dict[str, Any]) -> bool:
        actual = self.actual(figures)
        return actual is not None and _OPERATORS[self.op](actual, self.value)


def parse(text: str) -> Threshold:
    """A threshold from ``metric op value[unit]``; ValueError says what is wrong."""
    match = _EXPRESSION.match(text)
    if match is None:
        raise ValueError(f"threshold {text!r}: expected metric, operator and number, e.g. p99<250ms, lost==0, rate>=5000")
    metric, op, value, unit = match.group("metric", "op", "value", "unit")
    if metric not in LATENCIES + COUNTS:
        raise ValueError(f"threshold {text!r}: unknown metric {metric!r}; known: {', '.join(LATENCIES + COUNTS)}")
    number = float(value)
    if metric in LATENCIES:
        number = number * 1000 if unit == "s" else number  # milliseconds (the default unit)
    elif unit is not None:
        raise ValueError(f"threshold {text!r}: {metric} takes no unit")
    return Threshold(text.strip(), metric, op, number)
