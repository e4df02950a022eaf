"""The schemas accept the real captures and name the JSON pointer of every fault."""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

import pytest

from emulator.domain import vocabulary
from emulator.scenario import Timeline, load
from emulator.schemas import MESSAGE_SCHEMAS, SCHEMA_BASE, SchemaSet, default_schemas, schema_name, validate


def test_schema_files_are_valid_draft_2020_12_with_ids() -> None:
    """Every schema passes the meta-schema and has an $id ending in its file name."""
    schemas = default_schemas()
    assert schemas.check_schemas() == []
    assert set(schemas.documents) >= {"envelope.json", "netbackup.json", "scenario.json", *MESSAGE_SCHEMAS.values()}
    for name, doc in schemas.documents.items():
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert doc["$id"] == SCHEMA_BASE + name


def test_a_broken_schema_is_reported(tmp_path) -> None:
    """check_schemas names a schema file that breaks the meta-schema."""
    (tmp_path / "bad.json").write_text(json.dumps({"$id": SCHEMA_BASE + "bad.json", "type": 5}))
    assert any(p.startswith("bad.json:") for p in SchemaSet(tmp_path).check_schemas())


def test_every_capture_validates(captures) -> None:
    """The seed's real messages are valid, with both validators."""
    assert len(captures) == 4
    for message in captures:
        assert validate(message) == []
        assert default_schemas().validate_reference(message) == []


def test_schema_is_chosen_by_type_and_subtype() -> None:
    assert schema_name({"type": "CONNECT", "subType": "REQUEST"}) == "connect-request.json"
    assert schema_name({"type": "NOTIFICATION", "subType": "RESPONSE"}) == "notification-response.json"
    assert schema_name({"type": "BOGUS", "subType": "REQUEST"}) == "envelope.json"
    assert schema_name([1, 2]) == "envelope.json"


def _mutated(message: dict[str, Any], change) -> dict[str, Any]:
    clone = copy.deepcopy(message)
    change(clone)
    return clone


MUTATIONS = {
    "impossible jobType": (
        lambda m: m["payload"][0]["data"][0].__setitem__("jobType", "tele port"),
        "/payload/0/data/0/jobType",
        "pattern",
    ),
    "impossible state": (lambda m: m["payload"][0]["data"][0].__setitem__("state", "running"), "/payload/0/data/0/state", "pattern"),
    "impossible scheduleType": (
        lambda m: m["payload"][0]["data"][0].__setitem__("scheduleType", "FULL"),  # the REST spelling, never NBWSS's ST_ names
        "/payload/0/data/0/scheduleType",
        "pattern",
    ),
    "impossible policyType": (
        lambda m: m["payload"][0]["data"][0].__setitem__("policyType", "VMware-6"),
        "/payload/0/data/0/policyType",
        "pattern",
    ),
    "non-string policyType": (lambda m: m["payload"][0]["data"][0].__setitem__("policyType", 40), "/payload/0/data/0/policyType", "type"),
    "impossible object": (lambda m: m["payload"][0].__setitem__("object", "policy"), "/payload/0/object", "pattern"),
    "impossible notificationType": (
        lambda m: m["payload"][0].__setitem__("notificationType", ""),
        "/payload/0/notificationType",
        "pattern",
    ),
    "missing id": (lambda m: m.pop("id"), "/id", "required"),
    "object payload on a NOTIFICATION REQUEST": (lambda m: m.__setitem__("payload", {"jobs": []}), "/payload", "type"),
    "non-integer timeStamp": (lambda m: m.__setitem__("timeStamp", "1459812309"), "/timeStamp", "type"),
    "float timeStamp": (lambda m: m.__setitem__("timeStamp", 1459812309.5), "/timeStamp", "type"),
    "wrong version": (lambda m: m.__setitem__("version", "2.0"), "/version", "const"),
    "id not a UUID": (lambda m: m.__setitem__("id", "42"), "/id", "pattern"),
    "string jobId": (lambda m: m["payload"][0]["data"][0].__setitem__("jobId", "147"), "/payload/0/data/0/jobId", "type"),
    "missing clientName": (lambda m: m["payload"][0]["data"][0].pop("clientName"), "/payload/0/data/0/clientName", "required"),
    "extra member in a job": (
        lambda m: m["payload"][0]["data"][0].__setitem__("kilobytes", 1),
        "/payload/0/data/0/kilobytes",
        "additionalProperties",
    ),
    "empty payload": (lambda m: m.__setitem__("payload", []), "/payload", "minItems"),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_a_mutated_capture_fails_with_the_pointer_of_the_fault(captures, mutation) -> None:
    """Each fault is a finding at its JSON pointer, from the fast and the reference validator."""
    change, pointer, rule = MUTATIONS[mutation]
    message = _mutated(captures[0], change)
    for findings in (validate(message), default_schemas().validate_reference(message)):
        assert (pointer, rule) in {(f.pointer, f.rule) for f in findings}, findings


UNKNOWN = {
    "jobType": (lambda m: m["payload"][0]["data"][0].__setitem__("jobType", "TELEPORT"), "/payload/0/data/0/jobType"),
    "state": (lambda m: m["payload"][0]["data"][0].__setitem__("state", "RUNNING"), "/payload/0/data/0/state"),
    "scheduleType": (lambda m: m["payload"][0]["data"][0].__setitem__("scheduleType", "ST_SYNTH"), "/payload/0/data/0/scheduleType"),
    "policyType": (lambda m: m["payload"][0]["data"][0].__setitem__("policyType", "VMWARE6"), "/payload/0/data/0/policyType"),
    "notificationType": (lambda m: m["payload"][0].__setitem__("notificationType", "WARN"), "/payload/0/notificationType"),
}


@pytest.mark.parametrize("field", UNKNOWN, ids=list(UNKNOWN))
def test_a_value_unknown_to_us_is_a_warning_not_an_error(captures, field) -> None:
    """Real traffic is never rejected for a value we did not list: valid, with one warning at its pointer."""
    change, pointer = UNKNOWN[field]
    message = _mutated(captures[0], change)
    assert validate(message) == [] and default_schemas().validate_reference(message) == []
    assert [(f.pointer, f.rule) for f in default_schemas().unknown_values(message)] == [(pointer, "x-known")]


def test_captures_and_generated_messages_use_only_known_values(captures) -> None:
    for message in [*captures, *_generated_messages()]:
        assert default_schemas().unknown_values(message) == []


def test_every_value_list_says_where_each_value_comes_from() -> None:
    """Confirmed values name their source; the rest are listed as unconfirmed (our inference)."""
    definitions = default_schemas().documents["netbackup.json"]["$defs"]
    lists = {name: d for name, d in definitions.items() if "x-known" in d}
    assert set(lists) == {"jobType", "jobState", "policyType", "scheduleType", "notificationType", "object", "operationId"}
    for name, definition in lists.items():
        unconfirmed = set(definition["x-unconfirmed"])
        assert unconfirmed <= set(definition["x-known"]), name
        for value, source in definition["x-known"].items():
            assert (source is None) == (value in unconfirmed), (name, value)
            assert re.fullmatch(definition["pattern"], value), (name, value)
    assert vocabulary.values("scheduleType") == ("ST_FULL", "ST_DINC", "ST_CINC", "ST_UBACKUP", "ST_UARCHIVE")
    assert vocabulary.unconfirmed("scheduleType") == ()
    assert "MS_WINDOWS" in vocabulary.unconfirmed("policyType") and "STANDARD" not in vocabulary.unconfirmed("policyType")


def test_image_mutations_are_located(captures) -> None:
    """IMAGE items are checked as images: an unknown operationId and a bad backupTime are found."""
    deletion = captures[1]
    message = _mutated(deletion, lambda m: m["payload"][0]["data"][0].update(operationId="expire", backupTime=-1))
    pointers = {f.pointer for f in validate(message)}
    assert pointers == {"/payload/0/data/0/operationId", "/payload/0/data/0/backupTime"}


def test_unknown_type_is_checked_against_the_envelope() -> None:
    findings = validate(
        {
            "version": "1.0",
            "id": "8E909940-AD50-4543-8AEA-B52003818925",
            "type": "PING",
            "subType": "REQUEST",
            "timeStamp": 1,
            "payload": {},
        }
    )
    assert [(f.pointer, f.rule) for f in findings] == [("/type", "enum")]


def test_a_non_object_message_is_a_finding() -> None:
    for value in ([], "text", 3, None):
        assert [f.pointer for f in validate(value)] == [""]


def test_other_message_kinds() -> None:
    """CONNECT, COMMAND and acknowledgement shapes, valid and invalid."""
    base = {"version": "1.0", "id": "C0FFEE01-2222-4333-8444-555566667777", "timeStamp": 1700000100}
    ok = [
        {**base, "type": "CONNECT", "subType": "REQUEST", "payload": {"token": "t"}},
        {**base, "type": "CONNECT", "subType": "RESPONSE", "payload": {"valid": False}},
        {**base, "type": "NOTIFICATION", "subType": "RESPONSE", "payload": {}},
        {**base, "type": "COMMAND", "subType": "REQUEST", "payload": {"uri": "/netbackup/admin/jobs", "method": "GET", "headers": {}}},
        {**base, "type": "COMMAND", "subType": "RESPONSE", "payload": {"statusCode": 200, "headers": {"date": "x"}, "body": {"data": []}}},
    ]
    for message in ok:
        assert validate(message) == [], message
    bad = [
        ({**base, "type": "CONNECT", "subType": "RESPONSE", "payload": {"valid": "yes"}}, "/payload/valid"),
        ({**base, "type": "CONNECT", "subType": "REQUEST", "payload": {"token": ""}}, "/payload/token"),
        ({**base, "type": "NOTIFICATION", "subType": "RESPONSE", "payload": []}, "/payload"),
        (
            {**base, "type": "COMMAND", "subType": "REQUEST", "payload": {"uri": "/etc/passwd", "method": "GET", "headers": {}}},
            "/payload/uri",
        ),
        (
            {**base, "type": "COMMAND", "subType": "REQUEST", "payload": {"uri": "/netbackup/x", "method": "TRACE", "headers": {}}},
            "/payload/method",
        ),
        (
            {**base, "type": "COMMAND", "subType": "RESPONSE", "payload": {"statusCode": 200, "headers": {"Date": "x"}}},
            "/payload/headers",
        ),  # a bad member name is located at its object
    ]
    for message, pointer in bad:
        assert pointer in {f.pointer for f in validate(message)}, message


def test_enumerations_live_in_the_schema() -> None:
    """The domain's value lists are read from netbackup.json, not copied."""
    assert {"BACKUP", "RESTORE", "REPLICATE", "IMPORT"} <= set(vocabulary.values("jobType"))
    assert vocabulary.values("operationId") == ("CREATE", "UPDATE", "DELETE", "NO_LOCAL_COPY_AVAILABLE")
    assert set(vocabulary.SCHEDULE_TYPES.values()) == set(vocabulary.values("scheduleType"))


# -- the fast path against the reference ------------------------------------------------


def _generated_messages() -> list[dict[str, Any]]:
    messages = []
    for name in ("smoke", "batched", "failures", "air-replication"):
        messages.extend(t.message for t in Timeline(load(name)).messages())
    return messages


def _mutate(message: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A random structural or value change somewhere in the message."""
    clone = copy.deepcopy(message)
    containers: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, (dict, list)):
            containers.append(value)
            for child in value.values() if isinstance(value, dict) else value:
                walk(child)

    walk(clone)
    target = rng.choice(containers)
    replacement = rng.choice([None, True, -1, 2.5, "", "X", [], {}, 10**12, "DONE"])
    if isinstance(target, dict) and target:
        key = rng.choice(sorted(target))
        action = rng.random()
        if action < 0.3:
            del target[key]
        elif action < 0.4:
            target["unexpected" + key] = replacement
        else:
            target[key] = replacement
    elif isinstance(target, list) and target:
        index = rng.randrange(len(target))
        if rng.random() < 0.3:
            del target[index]
        else:
            target[index] = replacement
    return clone


def test_fast_and_reference_validators_agree_on_hundreds_of_messages() -> None:
    """Generated valid messages and random mutations get the same verdict and pointers from both."""
    schemas = default_schemas()
    rng = random.Random(2026)
    valid = _generated_messages()
    mutated = [_mutate(rng.choice(valid), rng) for _ in range(400)]
    assert len(valid) >= 150
    invalid_seen = 0
    for message in valid + mutated:
        fast, reference = schemas.validate(message), schemas.validate_reference(message)
        assert bool(fast) == bool(reference), (message, fast, reference)
        assert {f.pointer for f in fast} == {f.pointer for f in reference}, (message, fast, reference)
        invalid_seen += bool(fast)
    assert invalid_seen > 250  # the mutations really do break messages
