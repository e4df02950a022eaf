"""NBWSS tunables: the documented ``nbwss.properties`` keys, their defaults, and our decisions.

Units follow NetBackup's documentation of the file: every key is in seconds except
``notification.sendTimeout``, which is in **milliseconds** (default ``2000``). In
Python (:class:`NbwssProperties`) and on the command line everything is in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from emulator.exceptions import UsageError


class PropertiesError(UsageError, ValueError):
    """A properties file or value that cannot be used; the message names file and line."""


@dataclass(frozen=True, slots=True)
class NbwssProperties:
    """The master's timing, in seconds throughout (the file's ``sendTimeout`` is in milliseconds, as documented)."""

    connection_period: float = 60.0  # connectionInfo.period: (re)connect attempts when not connected
    resend_interval: float = 5.0  # notification.scheduledRate: resend an unacknowledged notification
    send_timeout: float = 2.0  # notification.sendTimeout (ms in the file): how long an acknowledgement may take
    keepalive_interval: float = 30.0  # keepAlive.scheduledRate: WebSocket ping period
    max_pong_miss: int = 3  # keepAlive.maxPongMissAllowed: not documented; 3 is our decision
    ignore_decoder: bool = False  # exception.ignoreDecoder: keep the connection on an undecodable frame

    @classmethod
    def from_file(cls, path: str | Path) -> NbwssProperties:
        """Read ``key=value`` lines (``#`` and ``!`` start comments); unknown keys are an error."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise PropertiesError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
        values: dict[str, Any] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line[0] in "#!":
                continue
            key, sep, value = line.partition("=")
            if not sep:
                key, sep, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if not sep or key not in _KEYS:
                known = ", ".join(_KEYS)
                raise PropertiesError(f"{path}:{number}: unknown property {key!r} (known: {known})")
            name, convert = _KEYS[key]
            try:
                values[name] = convert(value)
            except ValueError as error:
                raise PropertiesError(f"{path}:{number}: {key}: {error} (unit: {UNITS[key]})") from None
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> NbwssProperties:
        """A copy with the given fields changed; None leaves a field as it is."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise PropertiesError(f"unknown properties: {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def warnings(self) -> list[str]:
        """One line for each value that is valid but almost certainly not meant (a unit mistaken)."""
        found = []
        if self.send_timeout < MIN_SEND_TIMEOUT:
            found.append(
                f"notification.sendTimeout is {self.send_timeout * 1000:g} ms: under {MIN_SEND_TIMEOUT * 1000:g} ms every "
                "acknowledgement will be late (in nbwss.properties it is in milliseconds, e.g. 2000; --ack-timeout is in seconds)"
            )
        if self.resend_interval < self.send_timeout:
            found.append(
                f"notification.scheduledRate (--resend-interval) is {self.resend_interval:g} s, shorter than "
                f"notification.sendTimeout (--ack-timeout, {self.send_timeout * 1000:g} ms): notifications are resent before "
                f"their acknowledgement is due: an acknowledgement after the resend is late (ack.within-timeout) even within "
                "sendTimeout (NetBackup's defaults are 5 s and 2000 ms)"
            )
        return found


#: Below this (seconds) an acknowledgement time-out is a unit mistaken, not a wish: warned about.
MIN_SEND_TIMEOUT = 0.05

#: The unit of each key in an nbwss.properties file, as NetBackup documents it.
UNITS = {
    "connectionInfo.period": "s",
    "notification.scheduledRate": "s",
    "notification.sendTimeout": "ms",
    "keepAlive.scheduledRate": "s",
    "keepAlive.maxPongMissAllowed": "count",
    "exception.ignoreDecoder": "true/false",
}


def _seconds(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(f"must be positive, not {value}")
    return number


def _milliseconds(value: str) -> float:
    return _seconds(value) / 1000


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be at least 1, not {value}")
    return number


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"must be true or false, not {value!r}")
    return lowered == "true"


_KEYS = {
    "connectionInfo.period": ("connection_period", _seconds),
    "notification.scheduledRate": ("resend_interval", _seconds),
    "notification.sendTimeout": ("send_timeout", _milliseconds),
    "keepAlive.scheduledRate": ("keepalive_interval", _seconds),
    "keepAlive.maxPongMissAllowed": ("max_pong_miss", _count),
    "exception.ignoreDecoder": ("ignore_decoder", _boolean),
}
