"""Thresholds that decide a load run's exit code: ``p99<250ms``, ``lost==0``, ``rate>=5000``."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

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
            return cast("float | None", figures["ack_latency_ms"][self.metric])
        if self.metric == "findings":
            return float(sum(figures["findings"].values()))
        if self.metric == "dropped":
            return float(figures["connections_dropped"])
        return float(figures[self.metric])

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
