"""Scenario files: the bundled ones, their timelines, and errors that say file, line and field."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from emulator.protocol.codec import encode
from emulator.scenario import ScenarioError, Timeline, bundled, load, parse
from emulator.schemas import validate

REQUIRED = {
    "smoke",
    "vmware-backup",
    "standard-backup",
    "restore",
    "image-expiry",
    "air-replication",
    "failures",
    "batched",
    "datacenter-day",
}


def items(name: str, **kwargs):
    timeline = Timeline(load(name), **kwargs)
    return [(t.master, g["object"], item) for t in timeline.messages() for g in t.message["payload"] for item in g["data"]]


def test_the_required_scenarios_are_bundled() -> None:
    assert set(bundled()) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_bundled_scenario_produces_valid_messages_in_time_order(name) -> None:
    timeline = Timeline(load(name))
    messages = list(timeline.messages())
    assert messages, name
    assert [m.at for m in messages] == sorted(m.at for m in messages)
    for timed in messages:
        assert validate(timed.message) == [], timed.message
    assert timeline.notes == [], timeline.notes  # every step found something to work on


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    def text(seed):
        return b"".join(encode(t.message) for t in Timeline(load("datacenter-day"), seed=seed).messages())

    assert text(5) == text(5)
    assert text(5) != text(6)


def test_smoke_has_one_of_everything() -> None:
    seen = items("smoke")
    job_types = {i["jobType"] for _, o, i in seen if o == "JOB"}
    operations = {i["operationId"] for _, o, i in seen if o == "IMAGE"}
    assert {"BACKUP", "RESTORE", "REPLICATE", "IMPORT"} <= job_types
    assert operations == {"CREATE", "UPDATE", "DELETE", "NO_LOCAL_COPY_AVAILABLE"}
    assert {i["policyType"] for _, o, i in seen if o == "JOB"} >= {"STANDARD", "VMWARE"}
    assert any(o == "JOB" and i["status"] == 58 for _, o, i in seen)
    assert {m for m, _, _ in seen} == {"primary", "dr"}


def test_vmware_backup_scenario_is_parent_child() -> None:
    jobs = [i for _, o, i in items("vmware-backup") if o == "JOB"]
    parents = {i["jobId"] for i in jobs if i["jobId"] == i["parentJobId"]}
    children = {i["jobId"] for i in jobs if i["jobId"] != i["parentJobId"]}
    assert len(parents) == 2 and len(children) == 16
    assert {i["scheduleType"] for i in jobs} == {"ST_FULL", "ST_DINC"}


def test_failures_scenario_uses_real_status_codes() -> None:
    statuses = {i["status"] for _, o, i in items("failures") if o == "JOB" and i["state"] == "DONE"}
    assert {1, 13, 58, 96, 156, 196, 5} <= statuses


def test_batched_scenario_batches_like_the_capture() -> None:
    timeline = Timeline(load("batched"))
    messages = [t.message for t in timeline.messages()]
    assert any(len(m["payload"]) == 2 for m in messages), "a JOB group and an IMAGE group in one message"
    assert max(sum(len(g["data"]) for g in m["payload"]) for m in messages) > 1
    assert all(sum(len(g["data"]) for g in m["payload"]) <= 25 for m in messages)
    starts = [i["startTime"] for m in messages for g in m["payload"] if g["object"] == "JOB" for i in g["data"]]
    start = int(timeline.scenario.start)
    assert min(starts) == start + 5 * 3600  # the master's clock runs 5 hours ahead, as in the captures


def test_datacenter_day_spans_a_day_across_hundreds_of_clients() -> None:
    timeline = Timeline(load("datacenter-day"))
    messages = list(timeline.messages())
    span = messages[-1].at - messages[0].at
    assert 20 * 3600 < span < 40 * 3600
    clients = {i["clientName"] for t in messages for g in t.message["payload"] for i in g["data"]}
    assert len(clients) > 250
    kinds = Counter(i.get("jobType") or i["operationId"] for t in messages for g in t.message["payload"] for i in g["data"])
    assert kinds["BACKUP"] > 1000 and kinds["RESTORE"] and kinds["REPLICATE"] and kinds["IMPORT"] and kinds["DELETE"]


def test_repeat_carries_state_and_job_ids_on() -> None:
    timeline = Timeline(load("restore"))
    stream = timeline.messages(repeat=True)
    first = [next(stream) for _ in range(300)]
    job_ids = [i["jobId"] for t in first for g in t.message["payload"] if g["object"] == "JOB" for i in g["data"] if i["state"] == "QUEUED"]
    assert job_ids == sorted(job_ids) and len(set(job_ids)) == len(job_ids)


def test_steps_repeat_wait_and_spacing() -> None:
    scenario = parse(
        """
description: spacing
failures: none
masters: {m: {clients: {STANDARD: 1}}}
steps:
  - repeat:
      times: 3
      every: 1h
      steps:
        - backup: {count: 2, every: 10m, wait: false}
  - wait: 1d
  - expire: {count: 6, rate: 1/m}
"""
    )
    messages = list(Timeline(scenario).messages())
    start = scenario.start
    queued = [t.at - start for t in messages for g in t.message["payload"] for i in g["data"] if i.get("state") == "QUEUED"]
    assert queued == [0, 600, 3600, 4200, 7200, 7800]
    deletes = [t.at - start for t in messages if t.message["payload"][0]["data"][0].get("operationId") == "DELETE"]
    assert deletes == [27 * 3600 + 60 * k for k in range(6)]


def test_a_step_with_nothing_to_work_on_is_noted() -> None:
    timeline = Timeline(parse("description: x\nmasters: {m: {clients: {STANDARD: 1}}}\nsteps:\n  - restore: {}\n"))
    assert list(timeline.messages()) == []
    assert len(timeline.notes) == 1 and "<scenario>:4: steps[0].restore: no restorable image" in timeline.notes[0]


# -- errors ----------------------------------------------------------------------------

BAD = {
    "malformed YAML": ("description: x\nsteps: [\n  - backup: {}\n", ":3: not valid YAML"),
    "not a mapping": ("- backup: {}\n", ":1: a scenario must be a YAML mapping"),
    "unknown step": ("description: x\nsteps:\n  - backup: {}\n  - bakup: {count: 1}\n", ":4: steps[1].bakup: unknown step 'bakup'"),
    "negative count": (
        "description: x\nsteps:\n  - backup:\n      count: -1\n",
        ":4: steps[0].backup.count: -1 is less than the minimum of 1",
    ),
    "unknown field": ("description: x\nsteps:\n  - restore: {colour: red}\n", ":3: steps[0].restore.colour: unknown field 'colour'"),
    "missing description": ("steps:\n  - backup: {}\n", ":1: (top level): 'description' is a required property"),
    "bad duration": ("description: x\nsteps:\n  - wait: 10 minutes\n", ":3: steps[0].wait:"),
    "two spacings": (
        "description: x\nsteps:\n  - backup: {count: 2, every: 1m, rate: 1/s}\n",
        ":3: steps[0].backup: give only one of every, rate and over",
    ),
    "unknown master": ("description: x\nsteps:\n  - backup: {master: nope}\n", ":3: steps[0].backup.master: no master 'nope'"),
    "replicate to self": ("description: x\nmasters:\n  a:\n    replicate_to: a\nsteps:\n  - backup: {}\n", ":4: masters.a.replicate_to"),
    "unknown policy type": (
        "description: x\nsteps:\n  - backup: {policy_type: AMIGA}\n",
        ":3: steps[0].backup.policy_type: 'AMIGA' is not one of",
    ),
    "nested error": (
        "description: x\nsteps:\n  - repeat:\n      times: 2\n      steps:\n        - wait: -5\n",
        ":6: steps[0].repeat.steps[0].wait",
    ),
    "fail without status": ("description: x\nsteps:\n  - fail: {count: 1}\n", ":3: steps[0].fail: 'status' is a required property"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_scenarios_name_file_line_and_field(case) -> None:
    text, expected = BAD[case]
    with pytest.raises(ScenarioError) as raised:
        parse(text, "bad.yaml")
    message = str(raised.value)
    assert message.startswith("bad.yaml:"), message
    assert expected in message, message
    assert "\n" not in message


def test_unknown_policy_name_is_reported_at_run_time_with_its_line() -> None:
    timeline = Timeline(parse("description: x\nsteps:\n  - backup: {policy: NoSuchPolicy}\n", "p.yaml"))
    with pytest.raises(ScenarioError, match=r"p.yaml:3: steps\[0\].backup.policy: .* has no policy 'NoSuchPolicy'"):
        list(timeline.messages())


def test_load_by_path_and_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("description: mine\nsteps:\n  - wait: 1s\n")
    assert load(str(path)).name == "mine"
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        load("nope")
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load(str(tmp_path / "missing.yaml"))
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ScenarioError, match="cannot read"):
        load(str(tmp_path / "binary.yaml"))


def test_generating_messages_never_calls_faker(monkeypatch) -> None:
    """Faker fills the name pools once per domain; the message stream itself uses only the seeded generator."""
    timeline = Timeline(load("datacenter-day"))

    class NoFaker:
        def __init__(self, *args, **kwargs) -> None:
            raise AssertionError("Faker used while generating messages")

    monkeypatch.setattr("emulator.data.Faker", NoFaker)
    assert sum(1 for _ in timeline.messages()) > 1000
