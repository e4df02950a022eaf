"""NetBackup's value lists, read from ``schemas/netbackup.json`` (their one source of truth).

Each list there has the values known to us (``x-known``, each with the source
that confirms it) and marks those no source confirms (``x-unconfirmed``); a
value outside the list is "unknown to us", not impossible.
"""

from __future__ import annotations

from functools import cache

from emulator.schemas import default_schemas


@cache
def values(name: str) -> tuple[str, ...]:
    """The known values of one ``$defs`` entry of ``netbackup.json``, e.g. ``jobType``."""
    definition = default_schemas().documents["netbackup.json"]["$defs"][name]
    return tuple(definition["x-known"])


@cache
def unconfirmed(name: str) -> tuple[str, ...]:
    """The known values of one list that no source confirms (our inference)."""
    definition = default_schemas().documents["netbackup.json"]["$defs"][name]
    return tuple(definition.get("x-unconfirmed", ()))


#: Scenario schedule words and the NBWSS scheduleType each stands for (NetBackup's own names).
SCHEDULE_TYPES = {
    "full": "ST_FULL",
    "incremental": "ST_DINC",
    "cumulative": "ST_CINC",
    "user": "ST_UBACKUP",
    "archive": "ST_UARCHIVE",
}
