"""Builders for the six NBWSS messages. Each returns a plain dict, members in the documented order."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from typing import Any

from emulator.domain.notifications import Notification

VERSION = "1.0"


def new_id(rng: random.Random) -> str:
    """A request id: an upper-case UUID, as in the captures, drawn from ``rng`` for reproducibility."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()


def envelope(message_id: str, type_: str, sub_type: str, time_stamp: int, payload: Any) -> dict[str, Any]:
    """An NBWSS message."""
    return {
        "version": VERSION,
        "id": message_id,
        "type": type_,
        "subType": sub_type,
        "timeStamp": time_stamp,
        "payload": payload,
    }


def connect_request(message_id: str, time_stamp: int, token: str) -> dict[str, Any]:
    return envelope(message_id, "CONNECT", "REQUEST", time_stamp, {"token": token})


def connect_response(message_id: str, time_stamp: int, valid: bool) -> dict[str, Any]:
    return envelope(message_id, "CONNECT", "RESPONSE", time_stamp, {"valid": valid})


def notification_response(message_id: str, time_stamp: int) -> dict[str, Any]:
    return envelope(message_id, "NOTIFICATION", "RESPONSE", time_stamp, {})


def notification_request(message_id: str, time_stamp: int, notifications: Iterable[Notification]) -> dict[str, Any]:
    """A NOTIFICATION REQUEST carrying ``notifications``: one INFO group per object kind, in order of first appearance."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for notification in notifications:
        groups.setdefault(notification.object, []).extend(notification.items)
    payload = [{"notificationType": "INFO", "object": obj, "data": data} for obj, data in groups.items()]
    return envelope(message_id, "NOTIFICATION", "REQUEST", time_stamp, payload)
