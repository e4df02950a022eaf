"""The AsyncAPI 3.0 document of NBWSS: generated from schemas/, shipped, valid against the specification's JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from emulator import asyncapi
from emulator.cli import main

#: The AsyncAPI 3.0.0 JSON Schema from the AsyncAPI Initiative's @asyncapi/specs package (Apache-2.0; LICENSE and NOTICE beside it).
SPEC = Path(__file__).parents[1] / "data" / "asyncapi" / "asyncapi-3.0.0.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SPEC.read_text(encoding="utf-8")))


def test_the_shipped_document_is_the_generated_one() -> None:
    """After a schema change, `python -m emulator.asyncapi` writes it again; this catches forgetting to."""
    assert asyncapi.document() == asyncapi.generate()


def test_it_is_valid_asyncapi_3(validator: jsonschema.Draft7Validator) -> None:
    document = asyncapi.document()
    assert [e.message for e in validator.iter_errors(document)] == []
    broken = {**document, "operations": {**document["operations"], "notify": {**document["operations"]["notify"], "action": "push"}}}
    assert list(validator.iter_errors(broken))  # the check can fail


def test_every_message_both_ways_and_every_operation_with_its_reply() -> None:
    document = asyncapi.document()
    messages = document["components"]["messages"]
    assert set(messages) == {f"{kind}{sub}" for kind in ("connect", "notification", "command") for sub in ("Request", "Response")}
    assert all(m["correlationId"] == {"$ref": "#/components/correlationIds/messageId"} for m in messages.values())
    assert document["components"]["correlationIds"]["messageId"]["location"] == "$message.payload#/id"
    operations = document["operations"]
    assert {name: op["action"] for name, op in operations.items()} == {"connect": "send", "notify": "send", "command": "receive"}
    for name, stem in (("connect", "connect"), ("notify", "notification"), ("command", "command")):
        assert operations[name]["messages"] == [{"$ref": f"#/channels/nbwss/messages/{stem}Request"}]
        assert operations[name]["reply"]["messages"] == [{"$ref": f"#/channels/nbwss/messages/{stem}Response"}]


def test_every_reference_resolves_and_the_schemas_still_validate_messages(captures: list[dict[str, Any]]) -> None:
    """The bundled schemas are the project's, references rewritten: the real captures are valid against them."""
    document = asyncapi.document()

    def resolve(pointer: str) -> Any:
        node: Any = document
        for part in pointer.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    for ref in refs(document):
        resolve(ref)
    schemas = document["components"]["schemas"]
    for capture in captures:
        message = capture.get("message", capture)
        if not isinstance(message, dict) or "type" not in message:
            continue
        name = f"{message['type'].lower()}{message['subType'].title()}"
        assert name in schemas
        ref_root = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
        assert list(jsonschema.Draft202012Validator(ref_root).iter_errors(message)) == [], message["id"]
        broken = {**message, "id": "not-a-uuid"}
        assert list(jsonschema.Draft202012Validator(ref_root).iter_errors(broken))


def test_the_command_prints_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["asyncapi"]) == 0
    assert json.loads(capsys.readouterr().out) == asyncapi.document()
    out = tmp_path / "nbwss.json"
    assert main(["asyncapi", "--output", str(out)]) == 0
    assert json.loads(out.read_text()) == asyncapi.document()
