"""A transcript: every frame of a run, both ways, as JSON Lines, secrets redacted."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from emulator.protocol.codec import DecodeError, decode, encode
from emulator.redact import redact_message


class FrameRecorder:
    """Records every frame of a run: ``{"t": seconds, "conn": n, "dir": "out"|"in", "frame": {...}}``.

    Frames that are not JSON are kept as ``"text"`` (binary ones as ``"binary"``, their length).
    Secrets are redacted before anything is kept.
    """

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self.frames = 0

    def record(self, direction: str, connection: int, data: str | bytes) -> None:
        self._emit(entry(direction, connection, data, time.perf_counter() - self._start))
        self.frames += 1

    def _emit(self, item: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the recorder holds (a file)."""


class Transcript(FrameRecorder):
    """A transcript file: JSON Lines, one frame each."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._file: IO[bytes] = self.path.open("wb")

    def _emit(self, item: dict[str, Any]) -> None:
        self._file.write(encode(item) + b"\n")

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class RecentFrames(FrameRecorder):
    """A transcript kept in memory: the last ``size`` frames, for failure messages."""

    def __init__(self, size: int = 200) -> None:
        super().__init__()
        self.recent: deque[dict[str, Any]] = deque(maxlen=size)

    def _emit(self, item: dict[str, Any]) -> None:
        self.recent.append(item)

    def excerpt(self, count: int = 12) -> str:
        """The last ``count`` frames, a line each."""
        lines = []
        for item in list(self.recent)[-count:]:
            frame = item.get("frame")
            if isinstance(frame, dict):
                what = f"{frame.get('type')} {frame.get('subType')} {frame.get('id')}"
                payload = encode(frame.get("payload")).decode()
                what += f" {payload[:120]}{'…' if len(payload) > 120 else ''}"
            else:
                what = f"{'binary ' + str(item['binary']) + ' bytes' if 'binary' in item else repr(item.get('text', ''))[:140]}"
            lines.append(f"  {item['t']:8.3f}s conn {item['conn']} {item['dir']:>3}: {what}")
        return "\n".join(lines) if lines else "  (no frames)"


def entry(direction: str, connection: int, data: str | bytes, elapsed: float) -> dict[str, Any]:
    """One transcript line: the frame decoded and redacted when it is JSON."""
    item: dict[str, Any] = {"t": round(elapsed, 6), "conn": connection, "dir": direction}
    message = None
    if not (isinstance(data, bytes) and direction == "in"):
        try:
            message = decode(data)
        except DecodeError:
            message = None
    if message is not None:
        item["frame"] = redact_message(message)
    elif isinstance(data, bytes) and direction == "in":
        item["binary"] = len(data)
    else:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        item["text"] = text[:4096]
    return item


def transcript_entries(path: str | Path) -> Iterator[dict[str, Any]]:
    """The entries of a transcript file, in order; a line that is not one is a ValueError naming file and line."""
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
            yield entry


def read_sent_notifications(path: str | Path) -> list[dict[str, Any]]:
    """The NOTIFICATION REQUESTs the master sent in a transcript, first sends only, in order."""
    seen: set[str] = set()
    messages: list[dict[str, Any]] = []
    for entry in transcript_entries(path):
        frame = entry.get("frame")
        if not isinstance(frame, dict):
            continue
        notification = (frame.get("type"), frame.get("subType")) == ("NOTIFICATION", "REQUEST")
        if entry["dir"] == "out" and notification and frame["id"] not in seen:
            seen.add(frame["id"])
            messages.append(frame)
    return messages
