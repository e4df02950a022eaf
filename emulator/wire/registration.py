"""Endpoint registration files, as an administrator gives them to NetBackup.

JSON: one endpoint object or a list of them, each with ``url``, ``token``,
``groupId`` (or ``group``) and ``priority`` (lower is tried first); ``hostName``
is accepted and unused. One connection per group: its endpoints are tried in
priority order and the first that accepts the CONNECT is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emulator.exceptions import UsageError
from emulator.protocol.run import Target


class RegistrationError(UsageError, ValueError):
    """A registration file that cannot be used; the message names file and entry."""


def registration_groups(path: str | Path) -> list[list[Target]]:
    """The endpoints of a registration file, grouped, each group sorted by priority."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise RegistrationError(f"{path}: cannot read: {error.strerror or error}") from None
    except ValueError as error:
        raise RegistrationError(f"{path}: not JSON: {error}") from None
    entries = document if isinstance(document, list) else [document]
    if not entries:
        raise RegistrationError(f"{path}: no endpoints")
    groups: dict[str, list[Target]] = {}
    for index, entry in enumerate(entries):
        target = _target(entry, f"{path}: endpoint {index + 1}")
        groups.setdefault(target.group, []).append(target)
    return [sorted(group, key=lambda t: t.priority) for group in groups.values()]


def _target(entry: Any, where: str) -> Target:
    if not isinstance(entry, dict):
        raise RegistrationError(f"{where}: must be an object with url and token")
    url, token = entry.get("url"), entry.get("token")
    if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
        raise RegistrationError(f"{where}: url must be a ws:// or wss:// URL")
    if not isinstance(token, str) or not token:
        raise RegistrationError(f"{where}: token must be a non-empty string")
    group = entry.get("groupId", entry.get("group", "default"))
    priority = entry.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise RegistrationError(f"{where}: priority must be a whole number")
    return Target(url, token, str(group), priority)
