"""A scenario as plain data, ready for the timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_START = "2026-01-05T20:00:00Z"  # a Monday evening: the backup window opens


@dataclass(frozen=True, slots=True)
class MasterSpec:
    """How to build one emulated master."""

    key: str
    hostname: str | None
    environment: str | None  # None: only the clients listed
    clients: dict[str, int]
    clock_offset_hours: int
    replicate_to: str | None


@dataclass(frozen=True, slots=True)
class Step:
    """One scenario step. ``where`` is ``file:line``, ``label`` the field path, for messages."""

    kind: str
    where: str
    label: str
    options: dict[str, Any]
    steps: tuple[Step, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Scenario:
    """A checked scenario file."""

    name: str
    description: str
    source: str
    seed: int
    start: float
    cycle: float
    max_items: int
    failures: float
    masters: tuple[MasterSpec, ...]
    steps: tuple[Step, ...]
