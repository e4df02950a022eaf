"""Compare an expected state with what an endpoint stored: missing, extra and different, by job and image.

Both sides are expected-state documents (``schemas/expected-state.json``). An
endpoint's export may use its own names: a mapping says which of its fields (and
collections) stand for ours, and a field mapped to ``null`` is not compared::

    {"collections": {"jobs": "jobRecords", "images": "backups"},
     "fields": {"jobs": {"jobId": "id", "state": "jobState", "startTime": null},
                "images": {"backupId": "id", "exists": "present"}}}

Records of the endpoint may come as an object keyed by anything or as a list: they
are matched by ``jobId`` and ``backupId`` (after mapping). Masters are matched by
name, or, when the endpoint exports exactly one, it holds them all whatever their
names (an endpoint may not know the master's name: NBWSS messages do not carry it,
and masters that share a registration are one to it). Compared so, a job or image
that several masters reported (an AIR image: the source's and the target's) may be
stored as any one of them told it, whichever came last to the endpoint. A master
with no jobs and no images is no difference where the other side has nothing for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.exceptions import SchemaError, UsageError

_KEYS = {"jobs": "jobId", "images": "backupId"}
_KINDS = {"jobs": "job", "images": "image"}


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference: ``what`` is missing (expected, not stored), extra (stored, not expected) or different."""

    master: str
    kind: str  # "job", "image" or "master"
    key: str
    what: str
    field: str = ""
    expected: Any = None
    actual: Any = None

    def __str__(self) -> str:
        where = f"{self.kind} {self.key}" if self.kind != "master" else "master"
        if self.what == "different":
            return f"{self.master}: {where}: {self.field}: expected {_show(self.expected)}, stored {_show(self.actual)}"
        return f"{self.master}: {where}: {self.what}"


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value)


_ABSENT: Any = object()


def diff(expected: dict[str, Any], actual: dict[str, Any], mapping: dict[str, Any] | None = None) -> list[Difference]:
    """The differences between an expected state and an endpoint's export (mapped with ``mapping``)."""
    expected_masters = _masters(expected, "expected")
    actual_masters = _masters(actual, "actual")
    pairs: list[tuple[str, Versions | None, dict[str, Any] | None]] = []
    if len(actual_masters) == 1 and len(expected_masters) >= 1:
        # An endpoint that does not tell masters apart (one token for all) exports one master: it holds them all.
        (_, only_theirs) = next(iter(actual_masters.items()))
        name = next(iter(expected_masters)) if len(expected_masters) == 1 else " + ".join(sorted(expected_masters))
        pairs.append((name, _versions(expected_masters.values()), only_theirs))
    else:
        for name in sorted(set(expected_masters) | set(actual_masters)):
            mine = expected_masters.get(name)
            pairs.append((name, None if mine is None else _versions([mine]), actual_masters.get(name)))
    differences: list[Difference] = []
    for name, mine, theirs in pairs:
        if mine is None or theirs is None:
            # A master one side has nothing for is no difference when the other holds nothing for it either.
            if mine is not None and any(mine.values()):
                differences.append(Difference(name, "master", "", "missing"))
            elif theirs is not None and any(_records(theirs, collection, mapping) for collection in _KEYS):
                differences.append(Difference(name, "master", "", "extra"))
            continue
        for collection in _KEYS:
            fields = (mapping or {}).get("fields", {}).get(collection, {})
            skipped = {ours for ours, their_name in fields.items() if their_name is None}
            differences.extend(_compare(name, collection, mine[collection], _records(theirs, collection, mapping), skipped))
    return differences


#: One side's masters as compared: per collection, every version of each record (one per master that reported it).
Versions = dict[str, dict[str, list[dict[str, Any]]]]


def _versions(masters: Iterable[dict[str, Any]]) -> Versions:
    """The jobs and images of one master, or of several as one (their keys are the jobs' and images' own ids)."""
    versions: Versions = {collection: {} for collection in _KEYS}
    for master in masters:
        for collection in _KEYS:
            for key, record in _records(master, collection, None).items():
                versions[collection].setdefault(key, []).append(record)
    return versions


def _masters(document: Any, side: str) -> dict[str, dict[str, Any]]:
    masters = document.get("masters") if isinstance(document, dict) else None
    if not isinstance(masters, dict) or not all(isinstance(m, dict) for m in masters.values()):
        raise SchemaError(f"{side}: not a state document: it needs 'masters', an object of masters")
    return masters


def _records(master: dict[str, Any], collection: str, mapping: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The records of one collection, keyed by our key, with our field names (fields mapped to null dropped)."""
    name = collection
    fields: dict[str, str | None] = {}
    if mapping:
        name = mapping.get("collections", {}).get(collection, collection)
        fields = mapping.get("fields", {}).get(collection, {})
    raw = master.get(name, {})
    if isinstance(raw, dict):
        records = list(raw.values())
    elif isinstance(raw, list):
        records = raw
    else:
        raise SchemaError(f"'{name}' must be an object or a list of records")
    theirs_to_ours = {theirs: ours for ours, theirs in fields.items() if theirs is not None}
    ignored = {ours for ours, theirs in fields.items() if theirs is None}
    key = _KEYS[collection]
    result: dict[str, dict[str, Any]] = {}
    for record in records:
        if not isinstance(record, dict):
            raise SchemaError(f"'{name}': every record must be an object")
        ours: dict[str, Any] = {theirs_to_ours.get(str(field), str(field)): value for field, value in record.items()}
        for field in ignored:
            ours.pop(field, None)
        if key not in ours:
            raise SchemaError(f"'{name}': a record without {fields.get(key) or key!r}: {json.dumps(record)[:120]}")
        result[str(ours[key])] = ours
    return result


def _compare(
    master: str, collection: str, mine: dict[str, list[dict[str, Any]]], theirs: dict[str, dict[str, Any]], skipped: set[str]
) -> list[Difference]:
    kind = _KINDS[collection]
    differences: list[Difference] = []
    for key in sorted(set(mine) | set(theirs), key=_order):
        if key not in theirs:
            differences.append(Difference(master, kind, key, "missing"))
        elif key not in mine:
            differences.append(Difference(master, kind, key, "extra"))
        else:
            # Stored as any one master told it is right (masters compared as one: whichever came last); when it is
            # none of them, the differences from the nearest version are what is wrong.
            found = [_fields_differing(master, kind, key, version, theirs[key], skipped) for version in mine[key]]
            differences.extend(sorted(found, key=len)[0])
    return differences


def _fields_differing(
    master: str, kind: str, key: str, mine: dict[str, Any], stored: dict[str, Any], skipped: set[str]
) -> list[Difference]:
    differences = []
    for field, value in mine.items():
        if field in skipped:
            continue
        other = stored.get(field, _ABSENT)
        if not _same(value, other):
            differences.append(Difference(master, kind, key, "different", field, value, other))
    return differences


def _order(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (1 << 62, key)


def _same(mine: Any, theirs: Any) -> bool:
    if mine == theirs and type(mine) is type(theirs):
        return True
    # An id or a number the endpoint keeps as text is the same value.
    return isinstance(mine, int) and not isinstance(mine, bool) and isinstance(theirs, str) and theirs == str(mine)


def summary(differences: list[Difference]) -> str:
    """One line: how many of each kind."""
    if not differences:
        return "the states are equal"
    counts = {what: sum(1 for d in differences if d.what == what) for what in ("missing", "extra", "different")}
    return f"{len(differences)} difference(s): " + ", ".join(f"{n} {what}" for what, n in counts.items() if n)


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A mapping file (see the module's docstring), checked."""
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    except ValueError as error:
        raise UsageError(f"{path}: not JSON: {error}") from None
    if not isinstance(mapping, dict) or set(mapping) - {"collections", "fields"}:
        raise UsageError(f"{path}: a mapping is an object with 'collections' and/or 'fields'")
    for part in ("collections", "fields"):
        section = mapping.get(part, {})
        if not isinstance(section, dict) or set(section) - set(_KEYS):
            raise UsageError(f"{path}: '{part}' may name 'jobs' and 'images' only")
    for collection, fields in mapping.get("fields", {}).items():
        if not isinstance(fields, dict) or not all(v is None or isinstance(v, str) for v in fields.values()):
            raise UsageError(f"{path}: fields.{collection}: an object of our field name to theirs (or null to skip it)")
    for collection, name in mapping.get("collections", {}).items():
        if not isinstance(name, str):
            raise UsageError(f"{path}: collections.{collection}: the name of their collection, as text")
    return mapping


def read_document(path: str | Path) -> dict[str, Any]:
    """A state document from a JSON file: ours (checked against the schema when it says it is) or an endpoint's export."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    except ValueError as error:
        raise UsageError(f"{path}: not JSON: {error}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path}: not a state document (a JSON object with 'masters')")
    return document
