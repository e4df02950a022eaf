"""The cloud side of NBWSS done right, without I/O: what a correct endpoint answers.

:class:`EndpointSession` takes each frame from the master and returns the
messages to send back: the CONNECT RESPONSE (token checked in constant time),
a NOTIFICATION RESPONSE with the same ``id`` for every notification, and it
correlates the COMMAND RESPONSEs to the COMMAND REQUESTs it made. It keeps
what it received, and it evaluates nothing it receives.
"""

from __future__ import annotations

import hmac
import json
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from emulator.findings import Finding, RuleId
from emulator.protocol.codec import DecodeError, decode
from emulator.protocol.messages import connect_response, envelope, new_id, notification_response
from emulator.schemas import SchemaSet, default_schemas


class EndpointState(Enum):
    AWAITING_CONNECT = "awaiting-connect"
    OPEN = "open"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Reply:
    """A message for the driver to send; ``kind`` lets fault injection pick its targets."""

    kind: str  # "connect", "ack", "command"
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """The endpoint closes the connection (a master that skipped CONNECT, a refused token)."""

    code: int
    reason: str


@dataclass(slots=True)
class EndpointSession:
    """One master connection as the endpoint sees it."""

    token: str
    accept: bool = True  # False answers every CONNECT with valid: false
    accept_any_token: bool = False  # a broken endpoint that does not check the token
    schemas: SchemaSet = field(default_factory=default_schemas)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    state: EndpointState = EndpointState.AWAITING_CONNECT
    notifications: deque[dict[str, Any]] = field(default_factory=deque)  # bounded with maxlen when asked
    findings: list[Finding] = field(default_factory=list)
    command_responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    _commands_sent: set[str] = field(default_factory=set)
    on_notification: Callable[[dict[str, Any]], None] | None = None  # each acknowledged notification (the store)
    master_tokens: Mapping[str, str] = field(default_factory=dict)  # token -> master, a registration per master
    master: str = "master"  # whose registration connected (the store files its notifications under it)

    def receive(self, data: str | bytes) -> list[Reply | Close]:
        """Replies (and perhaps a close) for one frame from the master."""
        if isinstance(data, bytes):
            self.findings.append(Finding("", RuleId.FRAMES_JSON, "binary frame from the master"))
            return []
        try:
            message = decode(data)
        except DecodeError as error:
            self.findings.append(error.finding)
            return []
        self.findings.extend(self.schemas.validate(message))
        if not isinstance(message, dict) or not isinstance(message.get("id"), str):
            return []
        kind = (message.get("type"), message.get("subType"))
        if self.state is EndpointState.AWAITING_CONNECT:
            if kind != ("CONNECT", "REQUEST"):
                return [Close(1008, "CONNECT must come first")]
            return self._connect(message)
        if kind == ("NOTIFICATION", "REQUEST") and self.state is EndpointState.OPEN:
            self.notifications.append(message)
            if self.on_notification is not None:
                self.on_notification(message)
            return [Reply("ack", notification_response(message["id"], int(self.clock())))]
        if kind == ("COMMAND", "RESPONSE") and message["id"] in self._commands_sent:
            self._commands_sent.discard(message["id"])
            self.command_responses[message["id"]] = message
            return []
        self.findings.append(Finding("/type", RuleId.FRAMES_DIRECTION, f"unexpected {kind[0]} {kind[1]} from the master"))
        return []

    def _connect(self, message: dict[str, Any]) -> list[Reply | Close]:
        payload = message.get("payload")
        offered = payload.get("token") if isinstance(payload, dict) else None
        matches = isinstance(offered, str) and hmac.compare_digest(offered.encode(), self.token.encode())
        if isinstance(offered, str) and not matches:
            for token, master in self.master_tokens.items():  # a master's own registration
                if hmac.compare_digest(offered.encode(), token.encode()):
                    matches, self.master = True, master
        valid = self.accept and (matches or self.accept_any_token)
        self.state = EndpointState.OPEN if valid else EndpointState.REFUSED
        reply = Reply("connect", connect_response(message["id"], int(self.clock()), valid))
        if not valid:
            return [reply, Close(1008, "token refused")]  # a refused master has nothing more to say: close at once
        return [reply]

    def command(self, uri: str, method: str = "GET", headers: dict[str, str] | None = None, body: Any = None) -> Reply:
        """A COMMAND REQUEST to send; its response lands in :attr:`command_responses` under its id."""
        payload: dict[str, Any] = {"uri": uri, "method": method, "headers": dict(headers or {})}
        if body is not None:
            payload["parameters"] = body if isinstance(body, str) else json.dumps(body)
        message = envelope(new_id(self.rng), "COMMAND", "REQUEST", int(self.clock()), payload)
        self._commands_sent.add(message["id"])
        return Reply("command", message)
