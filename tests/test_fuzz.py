"""Fuzzing: arbitrary and mutated frames never raise out of the protocol cores or the validator."""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.endpoint.core import EndpointSession, Reply
from emulator.findings import RuleId
from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_request, connect_response
from emulator.protocol.session import Acknowledged, CloseRequested, CommandRequested, MasterSession, Violation
from emulator.scenario import ScenarioError, Timeline, load, parse
from emulator.schemas import default_schemas

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
KEYS = ["version", "id", "type", "subType", "timeStamp", "payload", "token", "valid", "uri", "method", "headers", "data", "object", "jobId"]
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from(["1.0", "2.0", 1]) | json_values,
        "id": st.sampled_from(["8E909940-AD50-4543-8AEA-B52003818925", ""]) | json_values,
        "type": st.sampled_from(["CONNECT", "COMMAND", "NOTIFICATION", "PING"]) | json_values,
        "subType": st.sampled_from(["REQUEST", "RESPONSE"]) | json_values,
        "timeStamp": st.integers() | json_values,
        "payload": json_values,
    },
)
CAPTURES = [t.message for t in Timeline(load("smoke")).messages()]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def opened_master() -> MasterSession:
    session = MasterSession("t", clock=lambda: 0.0, rng=random.Random(1))
    connect = json.loads(session.connect())
    session.receive(encode(connect_response(connect["id"], 1, True)).decode())
    session.send(CAPTURES[0])
    return session


def mutate(data: st.DataObject) -> object:
    message = json.loads(json.dumps(data.draw(st.sampled_from(CAPTURES))))
    node: object = message
    for _ in range(data.draw(st.integers(0, 4))):
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
            if data.draw(st.booleans()):
                node[key] = data.draw(json_values)
                break
            node = node[key]
        elif isinstance(node, list) and node:
            node = node[data.draw(st.integers(0, len(node) - 1))]
    if isinstance(node, dict) and data.draw(st.booleans()):
        node[data.draw(st.sampled_from(KEYS))] = data.draw(json_values)
    return message


@FUZZ
@given(frame=st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_frames_to_the_master_are_findings(frame, figures) -> None:
    events = opened_master().receive(frame)
    figures.fuzz["master session: arbitrary text and binary frames"] += 1
    assert all(isinstance(e, (Violation, CloseRequested, Acknowledged, CommandRequested)) for e in events)


@FUZZ
@given(message=envelopes | json_values)
def test_arbitrary_json_to_the_master_and_the_validator(message, figures) -> None:
    findings = default_schemas().validate(message)
    assert all(f.pointer == "" or f.pointer.startswith("/") for f in findings)
    opened_master().receive(json.dumps(message))
    figures.fuzz["master session and validator: arbitrary JSON"] += 1


@FUZZ
@given(data=st.data())
def test_mutated_captures_get_the_same_verdict_from_both_validators(data, figures) -> None:
    message = mutate(data)
    schemas = default_schemas()
    assert bool(schemas.validate(message)) == bool(schemas.validate_reference(message))
    opened_master().receive(json.dumps(message))
    figures.fuzz["both validators and the master: mutated notifications"] += 1


@FUZZ
@given(frames=st.lists(envelopes | json_values, max_size=4), text=st.text(max_size=100))
def test_arbitrary_frames_to_the_endpoint_core(frames, text, figures) -> None:
    """Whatever a master sends, the reference endpoint answers only with valid messages, and records what it could not take."""
    schemas = default_schemas()
    session = EndpointSession("token", rng=random.Random(1), clock=lambda: 1_700_000_000.0)
    assert session.receive(encode(connect_request("C0FFEE00-0000-4000-8000-000000000000", 1, "token")).decode())[0].message["payload"][
        "valid"
    ]
    acks = 0
    for frame in [*map(json.dumps, frames), text, text.encode()]:
        findings_before = len(session.findings)
        replies = session.receive(frame)
        for reply in replies:
            assert isinstance(reply, Reply) and reply.kind == "ack", reply  # open already: no second CONNECT answer, no close
            request = json.loads(frame)
            assert reply.message["id"] == request["id"]  # echoed as sent, even an id the schemas refuse
            assert schemas.validate({**reply.message, "id": "8E909940-AD50-4543-8AEA-B52003818925"}) == []
            acks += 1
        if isinstance(frame, bytes):
            assert replies == [] and [f.rule for f in session.findings[findings_before:]] == [RuleId.FRAMES_JSON]
        elif not replies:  # not acknowledged: the endpoint says why
            assert len(session.findings) > findings_before, frame
    assert len(session.notifications) == acks
    figures.fuzz["reference endpoint core: arbitrary frames"] += 1


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300))
def test_arbitrary_scenario_text_is_a_scenario_error_at_worst(text, figures) -> None:
    message = None
    try:
        parse(text, "fuzz.yaml")
    except ScenarioError as error:
        message = str(error)
    assert message is None or (message.startswith("fuzz.yaml") and "\n" not in message)
    figures.fuzz["scenario loader: arbitrary text"] += 1
