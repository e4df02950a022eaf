"""Secrets never leave the process: tokens, JWTs and passwords are shown as ``tok…(32)``."""

from __future__ import annotations

import copy
from typing import Any


def redact(secret: str) -> str:
    """The first three characters and the length: enough to tell two tokens apart, not to use one."""
    if not isinstance(secret, str):
        return "…"
    return f"{secret[:3]}…({len(secret)})"


def redact_message(message: Any) -> Any:
    """A copy of an NBWSS message with its secrets redacted (the message itself is left alone)."""
    if not isinstance(message, dict) or not isinstance(message.get("payload"), dict):
        return message
    kind = (message.get("type"), message.get("subType"))
    payload = message["payload"]
    if kind == ("CONNECT", "REQUEST") and "token" in payload:
        clean = copy.copy(message)
        clean["payload"] = {**payload, "token": redact(payload["token"])}
        return clean
    if kind == ("COMMAND", "REQUEST"):
        clean = copy.deepcopy(message)
        headers = clean["payload"].get("headers")
        if isinstance(headers, dict):
            for name in headers:
                if name.lower() == "authorization":
                    headers[name] = redact(headers[name])
        if isinstance(clean["payload"].get("parameters"), str) and "password" in clean["payload"]["parameters"]:
            clean["payload"]["parameters"] = redact(clean["payload"]["parameters"])
        return clean
    if kind == ("COMMAND", "RESPONSE") and isinstance(payload.get("body"), dict) and "token" in payload["body"]:
        clean = copy.deepcopy(message)
        clean["payload"]["body"]["token"] = redact(payload["body"]["token"])
        return clean
    return message
