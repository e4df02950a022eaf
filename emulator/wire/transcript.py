"""A transcript: every frame of a run, both ways, as JSON Lines, secrets redacted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO, Any

from emulator.protocol.codec import DecodeError, decode, encode
from emulator.redact import redact_message


class Transcript:
    """Writes ``{"t": seconds, "conn": n, "dir": "out"|"in", "frame": {...}}`` per frame.

    Frames that are not JSON are kept as ``"text"`` (binary ones as ``"binary"``, their length).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[bytes] = self.path.open("wb")
        self._start = time.perf_counter()
        self.frames = 0

    def record(self, direction: str, connection: int, data: str | bytes, message: Any = None) -> None:
        entry: dict[str, Any] = {"t": round(time.perf_counter() - self._start, 6), "conn": connection, "dir": direction}
        if message is None and isinstance(data, (str, bytes)) and not (isinstance(data, bytes) and direction == "in"):
            try:
                message = decode(data)
            except DecodeError:
                message = None
        if message is not None:
            entry["frame"] = redact_message(message)
        elif isinstance(data, bytes) and direction == "in":
            entry["binary"] = len(data)
        else:
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            entry["text"] = text[:4096]
        self._file.write(encode(entry) + b"\n")
        self.frames += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def read_sent_notifications(path: str | Path) -> list[dict[str, Any]]:
    """The NOTIFICATION REQUESTs the master sent in a transcript, first sends only, in order."""
    seen: set[str] = set()
    messages = []
    with Path(path).open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = decode(line)
            except DecodeError as error:
                raise ValueError(f"{path}:{number}: not a transcript line: {error}") from None
            if not isinstance(entry, dict) or "dir" not in entry:
                raise ValueError(f"{path}:{number}: not a transcript line (no 'dir')")
            frame = entry.get("frame")
            notification = isinstance(frame, dict) and (frame.get("type"), frame.get("subType")) == ("NOTIFICATION", "REQUEST")
            if entry["dir"] == "out" and notification and frame["id"] not in seen:
                seen.add(frame["id"])
                messages.append(frame)
    return messages
