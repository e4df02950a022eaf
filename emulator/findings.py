"""Findings: what the emulator reports instead of raising."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """One broken rule, located in one message.

    ``pointer`` is the RFC 6901 JSON pointer of the faulty value inside the
    message ("" for the whole message); ``rule`` names what was broken (a JSON
    Schema keyword such as ``enum``, or a contract rule id); ``message`` says
    it in words a person reads.
    """

    pointer: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message} [{self.rule}]"


def json_pointer(path: Iterable[str | int]) -> str:
    """The JSON pointer of a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
