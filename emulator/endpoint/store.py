"""The reference endpoint's store: what it was told, as jobs and images, and bugs of the kind stores have.

A cloud endpoint keeps what NBWSS tells it: the store folds every acknowledged
NOTIFICATION REQUEST into the same picture as the master's expected state
(:mod:`emulator.state`), so the two compare with ``nbwss-emu diff-state`` and an
empty difference is the proof that the store is right.

Seeded bugs, switched on as reference-endpoint faults, are what exploration
(:mod:`emulator.explore`) must find:

* ``store-early-update``: the items of one message are checked against what was
  stored before the message, so an IMAGE UPDATE whose CREATE came in the same
  message (not stored yet) is dropped;
* ``store-resent-as-new``: a notification resent with an id already stored is
  applied again (a stale job state or a deleted image comes back);
* ``store-loses-no-local-copy``: of AIR's UPDATE + NO_LOCAL_COPY_AVAILABLE pair
  for one image, only the first item is kept.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from emulator.state import FORMAT, MasterState

#: The name the store files its master under: NBWSS messages do not say which master sent them.
MASTER = "master"


class StoreBug(Enum):
    """A seeded store bug (the reference endpoint's faults of the same names)."""

    EARLY_UPDATE = "store-early-update"
    RESENT_AS_NEW = "store-resent-as-new"
    LOSES_NO_LOCAL_COPY = "store-loses-no-local-copy"


class EndpointStore:
    """Jobs and images as the endpoint stored them, from the notifications it acknowledged, per master.

    A master is known by the registration (token) it connected with; masters that share
    one token are filed together under :data:`MASTER`.
    """

    def __init__(self) -> None:
        self.states: dict[str, MasterState] = {}
        self._stored_ids: set[tuple[str, str]] = set()

    @property
    def state(self) -> MasterState:
        """The state of the masters filed under :data:`MASTER` (one registration for all)."""
        return self.states.setdefault(MASTER, MasterState())

    def clear(self) -> None:
        self.states.clear()
        self._stored_ids.clear()

    def store(self, message: dict[str, Any], bug: StoreBug | None = None, master: str = MASTER) -> None:
        """Store one acknowledged NOTIFICATION REQUEST of ``master``; a resent id is ignored (unless ``bug`` says otherwise)."""
        message_id = message.get("id")
        if isinstance(message_id, str):
            if (master, message_id) in self._stored_ids and bug is not StoreBug.RESENT_AS_NEW:
                return
            self._stored_ids.add((master, message_id))
        payload = message.get("payload")
        if not isinstance(payload, list):
            return
        state = self.states.setdefault(master, MasterState())
        stored_before = set(state.images)
        for group in payload:
            if not isinstance(group, dict) or not isinstance(group.get("data"), list):
                continue
            object_ = str(group.get("object"))
            previous: dict[str, Any] | None = None
            for item in group["data"]:
                if not isinstance(item, dict):
                    continue
                if object_ == "IMAGE" and _dropped(item, previous, stored_before, bug):
                    previous = item
                    continue
                previous = item
                state.apply_item(object_, item)

    def export(self) -> dict[str, Any]:
        """The store in the expected-state shape (``schemas/expected-state.json``)."""
        states = self.states or {MASTER: MasterState()}
        return {"format": FORMAT, "masters": {name: state.as_dict() for name, state in states.items()}}


def _dropped(item: dict[str, Any], previous: dict[str, Any] | None, stored_before: set[str], bug: StoreBug | None) -> bool:
    operation = item.get("operationId")
    if bug is StoreBug.EARLY_UPDATE:
        return operation == "UPDATE" and item.get("backupId") not in stored_before
    if bug is StoreBug.LOSES_NO_LOCAL_COPY:
        return (
            operation == "NO_LOCAL_COPY_AVAILABLE"
            and previous is not None
            and previous.get("backupId") == item.get("backupId")
            and previous.get("operationId") == "UPDATE"
        )
    return False
