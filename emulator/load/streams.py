"""Each master's notifications in a load run, generated, encoded and checked before the clock starts.

A notification costs a step of the domain simulation (some 30 µs) and a schema
check (some 8 µs); an endpoint that acknowledges 40,000 a second would otherwise
be measured against the generator rather than itself. So a load run first
prepares each master's notifications (its own domain, seed + index): generated,
encoded, and checked against the schemas, a violation kept as a finding. Then
the clock starts and the very frames that were checked go out. A run that
outlasts what was prepared carries on with the same domain, generating (and
checking) on the fly, and says how many it had to.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from emulator.protocol.codec import encode
from emulator.protocol.session import Violation, excerpt
from emulator.scenario import Timeline
from emulator.scenario.model import Scenario
from emulator.schemas import default_schemas, fast_is_valid
from emulator.wire.master import Prepared

#: Closed model: the run's duration at this rate is prepared (above what one load process sends on 2 cores).
CLOSED_MODEL_RATE = 60_000
#: At most this many notifications prepared in all (~550 bytes each): beyond, they are generated during the run.
MAX_PREPARED = 400_000


def auto_count(duration: float, rate: float | None) -> int:
    """How many notifications a run prepares by default, all masters together."""
    return min(MAX_PREPARED, math.ceil((rate or CLOSED_MODEL_RATE) * duration))


@dataclass(slots=True)
class MasterStream:
    """One master's notifications: frames prepared beforehand, then its domain going on."""

    prepared: deque[Prepared]
    live: Iterator[dict[str, Any]]
    violations: list[Violation]  # found in the prepared frames
    generated_live: int = 0

    def next(self) -> Prepared | dict[str, Any] | None:
        """The next notification: a prepared frame while there are any, then a new message; None at the end."""
        if self.prepared:
            return self.prepared.popleft()  # popped, so that memory is given back as the run goes
        message = next(self.live, None)
        if message is not None:
            self.generated_live += 1
        return message


async def prepare(
    scenario: Scenario,
    seeds: list[int],
    total: int,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[MasterStream]:
    """Streams for masters with these seeds, ``total`` notifications prepared among them.

    The event loop runs between chunks, so a signal stops a long preparation.
    """
    schemas = default_schemas()
    checker = schemas.fast_validator("notification-request.json")
    streams = []
    share, extra = divmod(total, len(seeds)) if seeds else (0, 0)
    done = 0
    last_report = time.monotonic()
    for index, seed in enumerate(seeds):
        live = Timeline(scenario, seed=seed, start=float(int(time.time()))).notifications(repeat=True)
        prepared: deque[Prepared] = deque()
        violations: list[Violation] = []
        for _ in range(share + (1 if index < extra else 0)):
            message = next(live, None)
            if message is None:
                break
            frame = encode(message)
            if not fast_is_valid(checker, message):
                text = excerpt(frame.decode())
                violations.extend(Violation("frames.schema.sent", finding, text) for finding in schemas.validate(message))
            prepared.append(Prepared(message["id"], frame))
            done += 1
            if done % 1024 == 0:
                await asyncio.sleep(0)
                if on_progress is not None and time.monotonic() - last_report >= 1.0:
                    last_report = time.monotonic()
                    on_progress(done, total)
        streams.append(MasterStream(prepared, live, violations))
    return streams
