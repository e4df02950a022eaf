"""Expected state, the reference endpoint's store and diff-state: what the endpoint was told versus what it stored."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from emulator import state
from emulator.cli import main
from emulator.diffstate import diff
from emulator.endpoint.store import EndpointStore, StoreBug
from emulator.exceptions import SchemaError
from emulator.harness import EndpointHandle, MasterHandle
from emulator.protocol.codec import encode
from emulator.scenario import Timeline, load


def smoke_messages() -> tuple[str, list[dict[str, Any]]]:
    timeline = Timeline(load("smoke"), seed=7, start=1_764_489_600.0)
    primary = timeline.scenario.masters[0].key
    return timeline.masters[primary].hostname, list(timeline.notifications())


def test_the_expected_state_is_the_last_word_on_each_job_and_image() -> None:
    """Jobs end as their last notification said; images know whether they exist and whether a local copy is left."""
    master, messages = smoke_messages()
    document = state.check(state.expected_state(master, messages))
    jobs, images = document["masters"][master]["jobs"], document["masters"][master]["images"]
    assert jobs and all(job["state"] == "DONE" for job in jobs.values())
    assert any(job["status"] == 58 for job in jobs.values())  # the smoke scenario's failed backup
    deleted = [i for i in images.values() if not i["exists"]]
    replicas_only = [i for i in images.values() if i["exists"] and not i["localCopy"]]
    assert len(deleted) == 1 and deleted[0]["lastOperation"] == "DELETE"
    assert len(replicas_only) == 1 and replicas_only[0]["lastOperation"] == "NO_LOCAL_COPY_AVAILABLE"


def test_a_message_counts_once_and_only_acknowledged_ones_count() -> None:
    master, messages = smoke_messages()
    once = state.expected_state(master, messages)
    assert state.expected_state(master, messages + messages[:3]) == once
    first_only = state.expected_state(master, messages, acknowledged=[messages[0]["id"]])
    items = [item for part in messages[0]["payload"] if part["object"] == "JOB" for item in part["data"]]  # a cycle's events come batched
    assert first_only["masters"][master]["jobs"] == {str(item["jobId"]): item for item in items}


def test_the_ack_recorder_folds_frames_as_the_expected_state_does() -> None:
    """Frames folded as acknowledged (bytes or text, any order of acks) give what expected_state gives in that order."""
    master, messages = smoke_messages()
    recorder = state.AckRecorder()
    for message in messages:
        recorder.fold(encode(message))
    assert state.document({master: recorder.state}) == state.expected_state(master, messages)
    text = state.AckRecorder()
    for message in reversed(messages):  # an endpoint that acknowledges out of order: the last acknowledged counts
        text.fold(encode(message).decode())
    assert state.document({master: text.state}) == state.expected_state(master, list(reversed(messages)))
    assert text.state.as_dict() != recorder.state.as_dict()
    with pytest.raises(SchemaError):
        recorder.fold(b"{not json")


def test_masters_of_one_host_name_are_told_apart_and_parts_merge() -> None:
    assert state.unique_names(["a", "b", "a", "a#2", "a"]) == ["a", "b", "a#2", "a#2#2", "a#3"]
    part = {"masters": {"nbu-a": {"jobs": {"1": {"jobId": 1}}, "images": {}}, "nbu-b": {"jobs": {}, "images": {}}}}
    other = {"masters": {"nbu-a": {"jobs": {"2": {"jobId": 2}}, "images": {}}}}
    merged = state.check(state.merge([part, other]))
    assert list(merged["masters"]) == ["nbu-a", "nbu-a#2", "nbu-b"]
    assert merged["masters"]["nbu-a"]["jobs"] == {"1": {"jobId": 1}} and merged["masters"]["nbu-a#2"]["jobs"] == {"2": {"jobId": 2}}
    assert state.merge([]) == {"format": state.FORMAT, "masters": {}}


def test_the_schema_rejects_what_is_not_a_state() -> None:
    with pytest.raises(SchemaError, match="/masters/m/images/x: 'exists' is a required"):
        state.check({"masters": {"m": {"jobs": {}, "images": {"x": {"backupId": "x", "localCopy": True}}}}})


def test_the_correct_store_equals_the_truth_and_each_bug_does_not() -> None:
    """Fed the same messages, the store without bugs is the expected state; each seeded bug differs on its own case."""
    master, messages = smoke_messages()
    truth = state.expected_state(master, messages)
    store = EndpointStore()
    for message in messages:
        store.store(message)
    assert diff(truth, store.export()) == []
    # A resent id: ignored, unless the store treats it as new (then the job goes back to its first state).
    store.store(messages[0])
    assert diff(truth, store.export()) == []
    store.store(messages[0], StoreBug.RESENT_AS_NEW)
    first_jobs = sum(len(part["data"]) for part in messages[0]["payload"] if part["object"] == "JOB")  # a cycle's events come batched
    assert [d.field for d in diff(truth, store.export())] == ["state"] * first_jobs
    # AIR's pair: the store that loses NO_LOCAL_COPY_AVAILABLE keeps a local copy that is gone.
    buggy = EndpointStore()
    for message in messages:
        buggy.store(message, StoreBug.LOSES_NO_LOCAL_COPY)
    assert {d.field for d in diff(truth, buggy.export())} == {"localCopy", "lastOperation"}
    # CREATE and UPDATE in one message: the early UPDATE is dropped.
    create = {
        "clientType": "STANDARD",
        "clientName": "c1",
        "backupTime": 10,
        "createdTime": 20,
        "operationId": "CREATE",
        "backupId": "c1_10",
    }
    update = {**create, "createdTime": 30, "operationId": "UPDATE"}
    merged = {**messages[0], "id": "merged", "payload": [{"notificationType": "INFO", "object": "IMAGE", "data": [create, update]}]}
    early, right = EndpointStore(), EndpointStore()
    early.store(merged, StoreBug.EARLY_UPDATE)
    right.store(merged)
    assert diff(state.expected_state(master, [merged]), right.export()) == []
    assert [d.field for d in diff(state.expected_state(master, [merged]), early.export())] == ["createdTime", "lastOperation"]


def test_diff_names_what_is_missing_extra_and_different_and_follows_a_mapping() -> None:
    expected = {"masters": {"nbu": {"jobs": {"1": {"jobId": 1, "state": "DONE"}, "2": {"jobId": 2}}, "images": {}}}}
    theirs = {"masters": {"x": {"jobRecords": [{"id": "1", "jobState": "ACTIVE"}, {"id": "3"}], "images": []}}}
    mapping = {"collections": {"jobs": "jobRecords"}, "fields": {"jobs": {"jobId": "id", "state": "jobState"}}}
    found = [str(d) for d in diff(expected, theirs, mapping)]
    assert found == ['nbu: job 1: state: expected "DONE", stored "ACTIVE"', "nbu: job 2: missing", "nbu: job 3: extra"]
    ignore_state = {**mapping, "fields": {"jobs": {"jobId": "id", "state": None}}}
    assert [d.what for d in diff(expected, theirs, ignore_state)] == ["missing", "extra"]


def test_diff_state_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    master, messages = smoke_messages()
    expected = tmp_path / "expected.json"
    state.write(state.expected_state(master, messages), expected)
    stored = tmp_path / "stored.json"
    state.write(state.expected_state(master, messages[:-1]), stored)
    assert main(["diff-state", str(expected), str(expected)]) == 0
    assert "the states are equal" in capsys.readouterr().out
    assert main(["diff-state", str(expected), str(stored), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["equal"] is False and report["differences"]
    (tmp_path / "bad.json").write_text("[1]")
    assert main(["diff-state", str(expected), str(tmp_path / "bad.json")]) == 2
    assert main(["diff-state", str(expected), str(tmp_path / "absent.json")]) == 2
    assert main(["diff-state", str(expected), str(expected), "--mapping", str(expected)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("nbwss-emu: error:") == 3


def test_run_expect_state_writes_a_checked_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "expected.json"
    assert main(["run", "smoke", "--quiet", "--expect-state", str(path), "--resend-interval", "0.5"]) == 0
    document = state.read(path)
    primary, dr = document["masters"].values()  # smoke's two masters, each on its own connection
    assert len(primary["jobs"]) > 5 and len(primary["images"]) > 3
    assert dr["jobs"] and dr["images"]  # the DR master's IMPORT jobs and replicated images


def test_the_reference_store_matches_a_contract_run_and_operations(nbwss_master: MasterHandle, nbwss_endpoint: EndpointHandle) -> None:
    """Over loopback: a whole run (its duplicate probe included), then single operations, stored as told."""
    result = nbwss_master.run("smoke")
    result.assert_endpoint_state(nbwss_endpoint.state)
    nbwss_endpoint.clear()
    nbwss_master.backup(policy_type="STANDARD")
    nbwss_master.replicate(to="dr")
    last = nbwss_master.expire(copies="local")
    last.assert_endpoint_state(nbwss_endpoint.state)
    assert last.expected_state() == nbwss_master.expected_state()


def test_assert_endpoint_state_fails_on_a_store_bug(nbwss_master: MasterHandle, nbwss_endpoint: EndpointHandle) -> None:
    nbwss_endpoint.fault = "store-resent-as-new"
    result = nbwss_master.run("smoke")  # its duplicate probe resends the first acknowledged notification
    with pytest.raises(AssertionError, match=r"state differs from what it was told .*\n.*\n.*: state: expected \"DONE\""):
        result.assert_endpoint_state(nbwss_endpoint.state)


def test_the_store_is_exported_over_http_with_the_token(nbwss_master: MasterHandle, nbwss_endpoint: EndpointHandle) -> None:
    nbwss_master.backup(policy_type="STANDARD")
    request = urllib.request.Request(nbwss_endpoint.state_url, headers={"Authorization": f"Bearer {nbwss_endpoint.token}"})
    deadline = time.monotonic() + 5
    with urllib.request.urlopen(request, timeout=deadline - time.monotonic()) as response:
        assert json.loads(response.read()) == nbwss_endpoint.state()
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(nbwss_endpoint.state_url, timeout=5)


def test_masters_sharing_a_registration_are_one_store_and_an_air_image_may_be_either_masters(
    nbwss_endpoint: EndpointHandle, tmp_path: Path
) -> None:
    """smoke's two masters, one token: the image both report (AIR's source and target) is stored as the last told it."""
    path = tmp_path / "expected.json"
    run = ["run", "smoke", "--endpoint", nbwss_endpoint.url, "--token", nbwss_endpoint.token, "--quiet", "--resend-interval", "0.5"]
    assert main([*run, "--expect-state", str(path)]) == 0
    expected = state.read(path)
    both = [set(master["images"]) for master in expected["masters"].values()]
    assert len(both) == 2 and both[0] & both[1]  # the replicated image, each master's version of it
    stored = tmp_path / "stored.json"
    stored.write_text(json.dumps(nbwss_endpoint.state()))
    assert main(["diff-state", str(path), str(stored)]) == 0


def test_a_record_several_masters_reported_is_right_as_any_of_them_and_wrong_as_none() -> None:
    source = {"backupId": "c_1", "exists": True, "localCopy": False, "lastOperation": "NO_LOCAL_COPY_AVAILABLE", "createdTime": 2}
    target = {"backupId": "c_1", "exists": True, "localCopy": True, "lastOperation": "CREATE", "createdTime": 1}
    expected = {"masters": {"src": {"jobs": {}, "images": {"c_1": source}}, "dr": {"jobs": {}, "images": {"c_1": target}}}}
    for version in (source, target):
        assert diff(expected, {"masters": {"one": {"images": [version]}}}) == []
    neither = {**target, "createdTime": 3}
    assert [str(d) for d in diff(expected, {"masters": {"one": {"images": [neither]}}})] == [
        "dr + src: image c_1: createdTime: expected 1, stored 3"  # the nearest version's difference
    ]
    # Told apart (each master on its own registration), each must hold its own version.
    apart = {"masters": {"src": {"images": [target]}, "dr": {"images": [target]}}}
    assert {(d.master, d.field) for d in diff(expected, apart)} == {("src", "localCopy"), ("src", "lastOperation"), ("src", "createdTime")}


def test_a_master_with_nothing_is_no_difference_where_the_store_has_nothing_for_it() -> None:
    empty = {"jobs": {}, "images": {}}
    job = {"jobs": {"1": {"jobId": 1}}, "images": {}}
    assert diff({"masters": {"nbu": empty}}, {"masters": {}}) == []
    assert diff({"masters": {"a": job, "b": empty}}, {"masters": {"a": job, "c": {"jobs": []}}}) == []
    assert [(d.master, d.what) for d in diff({"masters": {"nbu": job}}, {"masters": {}})] == [("nbu", "missing")]
    assert [(d.master, d.what) for d in diff({"masters": {"a": job, "b": empty}}, {"masters": {"a": job, "c": job}})] == [("c", "extra")]
