"""Answers to COMMAND requests: the NetBackup REST API of the emulated master.

The implementation lives in :mod:`emulator.rest`; this module keeps the names other modules import,
and :class:`DomainResponder`, the answers of a master whose notifications come from elsewhere.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

from emulator.rest import DEFAULT_PROFILE, VERSION_PROFILES, CommandExchange, CommandResponder, HttpError
from emulator.rest.responder import Request
from emulator.scenario import Timeline
from emulator.scenario.model import Scenario

__all__ = [
    "DEFAULT_PROFILE",
    "MAX_REPLAY",
    "VERSION_PROFILES",
    "CommandExchange",
    "CommandResponder",
    "DomainResponder",
    "HttpError",
    "Request",
]

#: A COMMAND's answer comes from the master's domain replayed to where its notifications are; at most this far.
MAX_REPLAY = 5_000


class DomainResponder:
    """A master's COMMAND answers, from its own domain, built when the first COMMAND comes.

    The notifications come from a generator process, so the senders' process has no
    domain until it needs one: then the master's domain (same scenario, seed and
    start) is replayed to where its notifications are (``handed()``: how many were
    handed to the master so far; at most MAX_REPLAY further each time), and answers
    as ``run``'s responder does.
    """

    def __init__(self, scenario: Scenario, seed: int, start: float, profile: str, handed: Callable[[], int]) -> None:
        self._scenario, self._seed, self._start, self._profile, self._handed = scenario, seed, start, profile, handed
        self._responder: CommandResponder | None = None
        self._replayed = 0
        self._domain: Any = None
        self.exchanges: list[CommandExchange] = []

    def answer(self, message: dict[str, Any]) -> dict[str, Any]:
        if self._responder is None:
            timeline = Timeline(self._scenario, seed=self._seed, start=self._start)
            self._domain = timeline.notifications(repeat=True)
            master = timeline.masters[self._scenario.masters[0].key]
            self._responder = CommandResponder(master, profile=self._profile, rng=random.Random(self._seed))
            self._responder.exchanges = self.exchanges
        handed = self._handed()
        behind = min(handed - self._replayed, MAX_REPLAY)
        for _ in itertools.islice(self._domain, max(0, behind)):
            pass
        self._replayed = handed
        return self._responder.answer(message)
