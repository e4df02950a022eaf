"""The NBWSS contract as JSON Schema, and the one function that checks a message.

Two validators share the same schema files:

* the hot path uses ``jsonschema-rs`` (compiled, about a microsecond per
  notification), and only builds findings when a message is invalid;
* ``jsonschema`` (pure Python) serves where its meta-schema checks and rich
  errors are worth their cost: checking the schema files themselves and
  scenario files, and as the reference the fast path is tested against.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, cast

import jsonschema
import jsonschema_rs
import referencing
from referencing.jsonschema import DRAFT202012

from emulator.findings import Finding, json_pointer
from emulator.resources import schemas_dir

SCHEMA_BASE = "https://nbwss-emulator.example/schemas/"

#: The schema of each (type, subType) pair; anything else is checked against
#: the bare envelope, which names what is wrong with type or subType.
MESSAGE_SCHEMAS: Mapping[tuple[str, str], str] = {
    ("CONNECT", "REQUEST"): "connect-request.json",
    ("CONNECT", "RESPONSE"): "connect-response.json",
    ("COMMAND", "REQUEST"): "command-request.json",
    ("COMMAND", "RESPONSE"): "command-response.json",
    ("NOTIFICATION", "REQUEST"): "notification-request.json",
    ("NOTIFICATION", "RESPONSE"): "notification-response.json",
}
ENVELOPE = "envelope.json"

_NOT_AN_OBJECT = (Finding("", "type", "a message must be a JSON object"),)


def schema_name(message: Any) -> str:
    """The schema file that applies to ``message``, chosen by type and subType."""
    if isinstance(message, dict):
        type_, sub_type = message.get("type"), message.get("subType")
        if isinstance(type_, str) and isinstance(sub_type, str):
            return MESSAGE_SCHEMAS.get((type_, sub_type), ENVELOPE)
    return ENVELOPE


def fast_is_valid(validator: Any, message: Any) -> bool:
    """A compiled validator's verdict; False for values it cannot take, which :meth:`SchemaSet.validate` then explains."""
    try:
        return bool(validator.is_valid(message))
    except (ValueError, OverflowError):
        return False


class SchemaSet:
    """The schema files of one folder, loaded once, with both validators built."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or schemas_dir()
        self.documents: dict[str, dict[str, Any]] = {}
        for path in sorted(self.directory.glob("*.json")):
            with path.open(encoding="utf-8") as handle:
                self.documents[path.name] = json.load(handle)
        resources = [(doc["$id"], doc) for doc in self.documents.values()]
        self._fast_registry = jsonschema_rs.Registry(resources)
        self._reference_registry: referencing.Registry[Any] = referencing.Registry().with_resources(
            (uri, DRAFT202012.create_resource(doc)) for uri, doc in resources
        )
        self._fast: dict[str, Any] = {}
        self._reference: dict[str, jsonschema.Draft202012Validator] = {}
        self._known: dict[str, tuple[frozenset[str], re.Pattern[str]]] | None = None  # value lists for unknown_values, built on first use
        self._by_kind: dict[tuple[object, object], Any] = {
            kind: self.fast_validator(name) for kind, name in MESSAGE_SCHEMAS.items() if name in self.documents
        }

    # -- building -------------------------------------------------------------

    def fast_validator(self, name: str) -> Any:
        """The compiled ``jsonschema-rs`` validator of one schema file."""
        validator = self._fast.get(name)
        if validator is None:
            validator = jsonschema_rs.validator_for(self.documents[name], registry=self._fast_registry)
            self._fast[name] = validator
        return validator

    def reference_validator(self, name: str) -> jsonschema.Draft202012Validator:
        """The ``jsonschema`` validator of one schema file (rich errors, slow)."""
        validator = self._reference.get(name)
        if validator is None:
            validator = jsonschema.Draft202012Validator(self.documents[name], registry=self._reference_registry)
            self._reference[name] = validator
        return validator

    def check_schemas(self) -> list[str]:
        """Problems with the schema files themselves, checked against the meta-schema."""
        problems = []
        for name, doc in self.documents.items():
            try:
                jsonschema.Draft202012Validator.check_schema(doc)
            except jsonschema.SchemaError as error:
                problems.append(f"{name}: {error.message}")
            if not doc.get("$id", "").endswith("/" + name):
                problems.append(f"{name}: $id does not end with its file name")
        return problems

    # -- validating -----------------------------------------------------------

    def validate(self, message: Any) -> list[Finding]:
        """Findings for one decoded message; an empty list when it is valid.

        This is the hot path: a valid message costs one compiled ``is_valid``.
        """
        if not isinstance(message, dict):
            return list(_NOT_AN_OBJECT)
        try:
            validator = self._by_kind[(message.get("type"), message.get("subType"))]
        except (KeyError, TypeError):  # an unknown or unhashable type/subType: the envelope says what is wrong
            validator = self.fast_validator(ENVELOPE)
        try:
            if validator.is_valid(message):
                return []
            return sorted(set(_fast_findings(validator.iter_errors(message))), key=_order)
        except (ValueError, OverflowError):  # values the compiled validator cannot take (older releases: ints over 64 bits)
            return self.validate_reference(message)

    def unknown_values(self, message: Any) -> list[Finding]:
        """Warnings for a NOTIFICATION REQUEST's values that are possible but unknown to us.

        The schema says what is impossible (an error, from :meth:`validate`);
        a value of the right shape missing from ``netbackup.json``'s ``x-known``
        list may be real NetBackup traffic we did not list, so it is a warning.
        """
        if not isinstance(message, dict) or (message.get("type"), message.get("subType")) != ("NOTIFICATION", "REQUEST"):
            return []
        payload = message.get("payload")
        if not isinstance(payload, list):
            return []
        known = self._known_values()
        findings: list[Finding] = []
        for g, group in enumerate(payload):
            if not isinstance(group, dict):
                continue
            findings.extend(_unknown(known, group, _GROUP_FIELDS, ["payload", g]))
            kind = group.get("object")
            fields = _ITEM_FIELDS.get(kind) if isinstance(kind, str) else None
            data = group.get("data")
            if fields is None or not isinstance(data, list):
                continue
            for i, item in enumerate(data):
                if isinstance(item, dict):
                    findings.extend(_unknown(known, item, fields, ["payload", g, "data", i]))
        return findings

    def _known_values(self) -> dict[str, tuple[frozenset[str], re.Pattern[str]]]:
        if self._known is None:
            definitions = self.documents.get("netbackup.json", {}).get("$defs", {})
            self._known = {
                name: (frozenset(d["x-known"]), re.compile(d.get("pattern", ""))) for name, d in definitions.items() if "x-known" in d
            }
        return self._known

    def validate_reference(self, message: Any) -> list[Finding]:
        """The same verdict as :meth:`validate`, from the pure-Python validator."""
        if not isinstance(message, dict):
            return list(_NOT_AN_OBJECT)
        validator = self.reference_validator(schema_name(message))
        return sorted(set(_reference_findings(validator.iter_errors(message))), key=_order)


#: Members of a notification group and of its data items, and the value list each is read against.
_GROUP_FIELDS = {"notificationType": "notificationType", "object": "object"}
_ITEM_FIELDS: dict[str, dict[str, str]] = {
    "JOB": {"scheduleType": "scheduleType", "state": "jobState", "policyType": "policyType", "jobType": "jobType"},
    "IMAGE": {"clientType": "policyType", "operationId": "operationId"},
}
UNKNOWN_VALUE = "x-known"


def _unknown(
    known: dict[str, tuple[frozenset[str], re.Pattern[str]]], item: dict[str, Any], fields: dict[str, str], path: list[str | int]
) -> Iterator[Finding]:
    for member, list_name in fields.items():
        value = item.get(member)
        if not isinstance(value, str) or list_name not in known:
            continue
        values, possible = known[list_name]
        if value not in values and possible.search(value):  # an impossible value is the schema's error, not a warning
            yield Finding(
                json_pointer([*path, member]),
                UNKNOWN_VALUE,
                f"{value!r} is unknown to us (not in netbackup.json's {list_name} list); accepted",
            )


def _order(finding: Finding) -> tuple[str, str, str]:
    return (finding.pointer, finding.rule, finding.message)


def _fast_findings(errors: Iterator[Any]) -> Iterator[Finding]:
    for error in errors:
        path = list(error.instance_path)
        rule = _keyword(error.schema_path)
        kind = error.kind
        if rule == "required":
            yield Finding(json_pointer([*path, kind.property]), rule, error.message)
        elif rule == "additionalProperties":
            for name in kind.unexpected:
                yield Finding(json_pointer([*path, name]), rule, f"unexpected member {name!r}")
        else:
            yield Finding(json_pointer(path), rule, error.message)


def _reference_findings(errors: Iterator[jsonschema.ValidationError]) -> Iterator[Finding]:
    for error in errors:
        path = list(error.absolute_path)
        rule = str(error.validator)
        if rule == "required":
            for name in cast("list[str]", error.validator_value):
                if isinstance(error.instance, dict) and name not in error.instance:
                    yield Finding(json_pointer([*path, name]), rule, f"{name!r} is a required property")
        elif rule == "additionalProperties" and isinstance(error.instance, dict):
            known = cast("dict[str, Any]", error.schema).get("properties", {})
            for name in error.instance:
                if name not in known:
                    yield Finding(json_pointer([*path, name]), rule, f"unexpected member {name!r}")
        else:
            yield Finding(json_pointer(path), rule, error.message)


def _keyword(schema_path: Any) -> str:
    for part in reversed(list(schema_path)):
        if isinstance(part, str):
            return part
    return "schema"


@cache
def default_schemas() -> SchemaSet:
    """The schema set shipped with the emulator, loaded on first use."""
    return SchemaSet()


def validate(message: Any) -> list[Finding]:
    """Findings for one decoded NBWSS message, its schema chosen by ``type``/``subType``."""
    return default_schemas().validate(message)
