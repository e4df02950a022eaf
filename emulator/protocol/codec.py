"""Encoding and decoding NBWSS frames: one JSON object per text frame."""

from __future__ import annotations

from typing import Any

import orjson

from emulator.exceptions import SchemaError
from emulator.findings import Finding


class DecodeError(SchemaError):
    """A frame that is not JSON; :attr:`finding` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.finding = Finding("", "json", f"not valid JSON: {reason}")


def encode(message: Any) -> bytes:
    """The UTF-8 JSON text of ``message``, members in their insertion order."""
    return orjson.dumps(message)


def decode(frame: str | bytes | bytearray | memoryview) -> Any:
    """The JSON value of a frame; raises :class:`DecodeError` if it is not JSON."""
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError as error:
        raise DecodeError(str(error)) from None
