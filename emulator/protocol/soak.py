"""A soak: a scenario's notifications again and again, for a count or a duration, without I/O.

A long run must not grow with its length: each pass of the scenario is a fresh
one (its own seed, its own domain), so that nothing of the earlier passes is
kept; the stream is generated as it is sent, never listed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def repeated(cycle: Callable[[int], Iterable[T]]) -> Iterator[T]:
    """``cycle(0)``, then ``cycle(1)``, ... for ever; stops if a pass yields nothing (it would loop for ever)."""
    for number in itertools.count():
        empty = True
        for item in cycle(number):
            empty = False
            yield item
        if empty:
            return


def limited(
    items: Iterable[T], *, count: int | None = None, duration: float | None = None, clock: Callable[[], float] = time.monotonic
) -> Iterator[T]:
    """``items`` until ``count`` of them, or until ``duration`` seconds after the first was taken, whichever first.

    The duration is looked at as each item is taken: what is taken then still goes.
    """
    if count is not None and count < 1:
        return
    deadline = None
    for taken, item in enumerate(items, start=1):
        if duration is not None:
            now = clock()
            if deadline is None:
                deadline = now + duration
            elif now >= deadline:
                return
        yield item
        if count is not None and taken >= count:
            return
