"""OData ``filter`` expressions as NetBackup's REST API takes them, evaluated over answers.

Parsing is odata-query's (the OData 4 grammar: ``and``/``or``/``not``, parentheses,
``eq ne gt ge lt le``, ``contains``/``startswith``/``endswith``, quoted strings, numbers,
ISO 8601 date-times and durations); this module checks an expression against what one
NetBackup path lets clients filter on (attribute, type, operators, per the OpenAPI files)
and turns it into a test of one resource's attributes. Anything else is NetBackup's 400.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Attributes = Mapping[str, Any]
Test = Callable[[Attributes], bool]

COMPARE = frozenset({"eq", "ne", "lt", "gt", "le", "ge"})
EQUALITY = frozenset({"eq", "ne"})
TEXT = frozenset({"contains", "startswith", "endswith"})


@dataclass(frozen=True, slots=True)
class Field:
    """One attribute a path can be filtered on: its type and the operators allowed on it."""

    kind: str  # "integer", "number", "string", "date-time", "duration" or "boolean"
    operators: frozenset[str]


@dataclass(frozen=True, slots=True)
class Filter:
    """A checked filter expression: ``test`` one resource's attributes; which attributes it bounds."""

    test: Test
    bounds: frozenset[tuple[str, str]]  # (attribute, operator) of every comparison in it

    def bounded(self, name: str, *operators: str) -> bool:
        """Whether some comparison of ``name`` uses one of ``operators``."""
        return any((name, op) in self.bounds for op in operators)


def parse_filter(expression: str, fields: Mapping[str, Field]) -> Filter:
    """Check ``expression`` against ``fields``; raise NetBackup's 400 for what it cannot take."""
    # odata-query builds its grammar's tables when imported (a few hundred ms): only when a filter comes
    from emulator.rest.odata_compile import compile_filter  # noqa: PLC0415

    bounds: set[tuple[str, str]] = set()
    test = compile_filter(expression, fields, bounds)
    return Filter(test, frozenset(bounds))


def iso_epoch(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 date-time (``Z`` or an offset; naive means UTC)."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def duration_seconds(text: str) -> float:
    """Seconds of an ISO 8601 day-time duration such as ``PT5M46S``."""
    match = _DURATION.match(text.strip())
    if match is None or text.strip() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    seconds = sum(float(match[k] or 0) * f for k, f in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)))
    return -seconds if match["sign"] else seconds
