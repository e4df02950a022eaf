"""The expected state of a NetBackup domain: what an endpoint was told, folded into jobs and images.

An endpoint that stores NBWSS notifications should end up with one record per job
(its attributes as the last notification stated them) and one per image (whether it
still exists, whether a local copy is still available, the last operation reported).
:class:`StateBuilder` folds NOTIFICATION REQUEST messages into that picture, each
message id once, in the order given; the master feeds it the notifications it sent
and had acknowledged, so the result is exactly what the endpoint was told.

The document (``schemas/expected-state.json``)::

    {"format": "nbwss-expected-state/1",
     "masters": {"nbu-master-1": {
         "jobs":   {"1042": {"jobId": 1042, "state": "DONE", "status": 0, ...}},
         "images": {"client1_1764489600": {"backupId": "client1_1764489600", "exists": true,
                                           "localCopy": true, "lastOperation": "CREATE", ...}}}}}

NBWSS image items carry no list of copies: the copy facts visible on the wire are
whether the image exists (DELETE ends it) and whether a local copy is still available
(NO_LOCAL_COPY_AVAILABLE says the local copies are gone while AIR replicas remain).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.exceptions import SchemaError, UsageError
from emulator.findings import json_pointer
from emulator.protocol.codec import decode
from emulator.schemas import default_schemas

if TYPE_CHECKING:
    from emulator.protocol.session import Acknowledged

FORMAT = "nbwss-expected-state/1"
SCHEMA = "expected-state.json"

#: Image item members that describe the image (operationId says what happened to it).
_IMAGE_ATTRIBUTES = ("backupId", "clientName", "clientType", "backupTime", "createdTime")


@dataclass(slots=True)
class MasterState:
    """One master's jobs (by job id, as text) and images (by backup id)."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply_item(self, object_: str, item: dict[str, Any]) -> None:
        """Fold one data item in: a JOB replaces its job's record, an IMAGE item changes its image's."""
        if object_ == "JOB" and "jobId" in item:
            self.jobs[str(item["jobId"])] = dict(item)  # JOB items are flat: their members are numbers and text
        elif object_ == "IMAGE" and "backupId" in item:
            self.apply_image(item)

    def apply_image(self, item: dict[str, Any]) -> None:
        backup_id = str(item["backupId"])
        operation = item.get("operationId")
        record = self.images.get(backup_id)
        if record is None or operation == "CREATE":
            record = {"exists": True, "localCopy": True}
        record.update({name: item[name] for name in _IMAGE_ATTRIBUTES if name in item})
        record["lastOperation"] = operation
        if operation == "DELETE":
            record["exists"] = False
            record["localCopy"] = False
        elif operation == "NO_LOCAL_COPY_AVAILABLE":
            record["localCopy"] = False
        self.images[backup_id] = record

    def as_dict(self) -> dict[str, Any]:
        return {"jobs": dict(sorted(self.jobs.items(), key=_key)), "images": dict(sorted(self.images.items()))}


def _key(entry: tuple[str, Any]) -> tuple[int, str]:
    name = entry[0]
    return (int(name), name) if name.isdigit() else (1 << 62, name)


class StateBuilder:
    """Folds NOTIFICATION REQUEST messages into the state of each master; each message id counts once."""

    def __init__(self) -> None:
        self.masters: dict[str, MasterState] = {}
        self._seen: set[str] = set()

    def master(self, name: str) -> MasterState:
        return self.masters.setdefault(name, MasterState())

    def apply(self, master: str, message: dict[str, Any]) -> bool:
        """Fold ``message`` into ``master``'s state; False (and nothing changes) when its id was already applied."""
        message_id = message.get("id")
        if isinstance(message_id, str):
            if message_id in self._seen:
                return False
            self._seen.add(message_id)
        apply_payload(self.master(master), message.get("payload"))
        return True

    def document(self) -> dict[str, Any]:
        """The expected-state document (see the module's docstring)."""
        return document(self.masters)


def document(masters: Mapping[str, MasterState]) -> dict[str, Any]:
    """The expected-state document of these masters' states, by master name."""
    return {"format": FORMAT, "masters": {name: state.as_dict() for name, state in sorted(masters.items())}}


class AckRecorder:
    """One master's expected state, folded from the frames of its acknowledged notifications as they are acknowledged.

    The master's session raises one ``Acknowledged`` per pending notification id, so
    each acknowledged notification is folded once without a set of ids kept (which
    would grow with a long load run). They are folded in the order acknowledged:
    the order an endpoint that acknowledges on storing stored them. Give
    :meth:`acknowledged` (or :meth:`fold` with the frame) as the master's ``on_ack``.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = MasterState()

    def fold(self, frame: str | bytes) -> None:
        """Fold one acknowledged NOTIFICATION REQUEST, as it was sent (its JSON frame)."""
        message = decode(frame)
        if isinstance(message, dict):
            apply_payload(self.state, message.get("payload"))

    def acknowledged(self, event: Acknowledged) -> None:
        """``on_ack`` of a master: fold the frame of the notification ``event`` (an ``Acknowledged``) says was acknowledged."""
        self.fold(event.frame)


def unique_names(names: Iterable[str]) -> list[str]:
    """``names`` in order, each made unique: a name already taken gets ``#2`` (``#3``...: the first free).

    So the first master of a host name keeps it and the next ones of the same name
    are ``name#2``, ``name#3``, in the order given (host names never contain ``#``).
    """
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate, number = name, 1
        while candidate in taken:
            number += 1
            candidate = f"{name}#{number}"
        taken.add(candidate)
        unique.append(candidate)
    return unique


def merge(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Expected-state documents of different masters as one; a master name already taken is made unique (:func:`unique_names`)."""
    entries = [(name, master) for doc in documents for name, master in doc.get("masters", {}).items()]
    names = unique_names(name for name, _ in entries)
    masters = {name: master for name, (_, master) in zip(names, entries, strict=True)}
    return {"format": FORMAT, "masters": dict(sorted(masters.items()))}


def apply_payload(state: MasterState, payload: Any) -> None:
    """Fold the groups of one NOTIFICATION REQUEST payload into ``state``, items in order."""
    if not isinstance(payload, list):
        return
    for group in payload:
        if isinstance(group, dict) and isinstance(group.get("data"), list):
            for item in group["data"]:
                if isinstance(item, dict):
                    state.apply_item(str(group.get("object")), item)


def expected_state(master: str, messages: Iterable[dict[str, Any]], acknowledged: Iterable[str] | None = None) -> dict[str, Any]:
    """The expected-state document of one master from the messages it sent, in order.

    With ``acknowledged``, only messages whose id is in it count: what the endpoint
    confirmed it was told.
    """
    acked = set(acknowledged) if acknowledged is not None else None
    builder = StateBuilder()
    builder.master(master)
    for message in messages:
        if acked is None or message.get("id") in acked:
            builder.apply(master, message)
    return builder.document()


def check(document: Any, source: str = "state") -> dict[str, Any]:
    """``document`` when it is an expected-state document; SchemaError naming the first problem otherwise."""
    if not isinstance(document, dict):
        raise SchemaError(f"{source}: not an expected-state document (a JSON object with 'masters')")
    validator = default_schemas().reference_validator(SCHEMA)
    error = next(iter(sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))), None)
    if error is not None:
        pointer = json_pointer(list(error.absolute_path)) or "/"
        raise SchemaError(f"{source}: {pointer}: {error.message}")
    return document


def read(path: str | Path) -> dict[str, Any]:
    """An expected-state document from a JSON file, checked against its schema."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise UsageError(f"{path}: not JSON: {error}") from None
    return check(document, str(path))


def write(document: dict[str, Any], path: str | Path) -> None:
    try:
        Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: cannot write: {error.strerror or error}") from None
