"""NetBackup status codes the emulator uses, what they mean and how a job meets them.

Texts are from NetBackup's Status Codes Reference Guide. The rates are a typical
site's mix (about 95 % of backup jobs end in 0, most of the rest in 1), our
estimate for realistic traffic, not NetBackup's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Phase(Enum):
    """How far a failing job gets before it ends."""

    QUEUED = "queued"  # never goes active (e.g. the backup window closed)
    START = "start"  # goes active, fails at once (e.g. cannot reach the client)
    MIDWAY = "midway"  # fails part-way through the data
    END = "end"  # runs to the end (success, partial success)


@dataclass(frozen=True, slots=True)
class StatusCode:
    """One NetBackup exit status and its behaviour in the emulator."""

    code: int
    text: str
    phase: Phase
    makes_image: bool
    backup_rate: float = 0.0  # share of backup jobs ending with this code
    vmware_only: bool = False


STATUS_CODES: dict[int, StatusCode] = {
    s.code: s
    for s in (
        StatusCode(0, "the requested operation was successfully completed", Phase.END, True),
        StatusCode(1, "the requested operation was partially successful", Phase.END, True, 0.030),
        StatusCode(5, "the restore failed to recover the requested files", Phase.MIDWAY, False),
        StatusCode(13, "file read failed", Phase.MIDWAY, False, 0.004),
        StatusCode(24, "socket write failed", Phase.MIDWAY, False, 0.002),
        StatusCode(41, "network connection timed out", Phase.MIDWAY, False, 0.003),
        StatusCode(50, "client process aborted", Phase.MIDWAY, False, 0.002),
        StatusCode(58, "can't connect to client", Phase.START, False, 0.006),
        StatusCode(84, "media write error", Phase.MIDWAY, False, 0.001),
        StatusCode(96, "unable to allocate new media for backup, storage unit has none available", Phase.START, False, 0.002),
        StatusCode(150, "termination requested by administrator", Phase.MIDWAY, False, 0.001),
        StatusCode(156, "snapshot error encountered", Phase.START, False, 0.008, vmware_only=True),
        StatusCode(196, "client backup was not attempted because backup window closed", Phase.QUEUED, False, 0.004),
        StatusCode(2074, "disk volume is down", Phase.START, False, 0.001),
    )
}

#: Codes a backup can end with when the scenario does not force one.
REALISTIC_FAILURE_RATE = sum(s.backup_rate for s in STATUS_CODES.values())


def describe(code: int) -> StatusCode:
    """The behaviour of ``code``; unknown codes fail part-way without an image."""
    known = STATUS_CODES.get(code)
    if known is not None:
        return known
    return StatusCode(code, f"NetBackup status {code}", Phase.MIDWAY, False)


def worst(codes: list[int]) -> int:
    """The status a parent job ends with: any failure beats 1, 1 beats 0; the highest failure wins."""
    failures = [c for c in codes if c > 1]
    if failures:
        return max(failures)
    return max(codes, default=0)
