"""NetBackup's value lists, read from ``schemas/netbackup.json`` (their one source of truth)."""

from __future__ import annotations

from functools import cache

from emulator.schemas import default_schemas


@cache
def values(name: str) -> tuple[str, ...]:
    """The enumerated values of one ``$defs`` entry of ``netbackup.json``, e.g. ``jobType``."""
    definition = default_schemas().documents["netbackup.json"]["$defs"][name]
    return tuple(definition["enum"])


#: Scenario schedule words and the NBWSS scheduleType each stands for.
SCHEDULE_TYPES = {
    "full": "ST_FULL",
    "incremental": "ST_INCR",
    "cumulative": "ST_CINC",
    "user": "ST_UBAK",
}
