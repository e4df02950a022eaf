"""Scenario files: the bundled ones, their timelines, and errors that say file, line and field."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        return b"".join(encode(t.message) for t in Timeline(load("datacenter-day"), seed=seed, ids="seeded").messages())

    assert text(5) == text(5)
    assert text(5) != text(6)


def _without_ids(timeline: Timeline) -> list[tuple[str, float, object]]:
    return [(t.master, t.at, t.message["payload"]) for t in timeline.messages()]


def test_message_ids_are_unique_per_run_and_the_rest_reproducible() -> None:
    """Two runs of one scenario and seed share no id (a de-duplicating endpoint would drop them) but nothing else differs."""
    first, second = Timeline(load("smoke")), Timeline(load("smoke"))
    ids_first = [t.message["id"] for t in first.messages()]
    ids_second = [t.message["id"] for t in second.messages()]
    assert len(set(ids_first)) == len(ids_first) and not set(ids_first) & set(ids_second)
    assert _without_ids(Timeline(load("smoke"))) == _without_ids(Timeline(load("smoke")))


def test_seeded_ids_replay_exactly() -> None:
    ids = [[t.message["id"] for t in Timeline(load("smoke"), ids="seeded").messages()] for _ in range(2)]
    assert ids[0] == ids[1]
    with pytest.raises(ValueError, match="ids must be one of"):
        Timeline(load("smoke"), ids="sometimes")


def test_two_scenarios_with_one_seed_share_no_job_ids_or_host_names() -> None:
    def seen(name: str) -> tuple[set[int], set[str]]:
        jobs = [i for _, o, i in items(name, seed=7) if o == "JOB"]
        hosts = {m.hostname for m in Timeline(load(name), seed=7).masters.values()}
        return {i["jobId"] for i in jobs}, hosts

    (jobs_a, hosts_a), (jobs_b, hosts_b) = seen("restore"), seen("failures")
    assert not jobs_a & jobs_b
    assert not hosts_a & hosts_b


@pytest.mark.parametrize("name", ["smoke", "datacenter-day"])
def test_the_same_run_whatever_the_start_only_times_shift(name) -> None:
    """Issue 13 item 3: same scenario and seed, any start (even mid-second): same messages, order and batches."""
    base = Timeline(load(name))
    start = base.start

    def unshifted(item: dict[str, object], shift: int) -> dict[str, object]:
        out = {k: (v - shift if k in ("startTime", "createdTime", "backupTime") and isinstance(v, int) else v) for k, v in item.items()}
        if isinstance(item.get("backupId"), str):
            client, _, when = str(item["backupId"]).rpartition("_")
            out["backupId"] = f"{client}_{int(when) - shift}"
        return out

    def shape(timeline: Timeline, shift: int) -> list[object]:
        out = []
        for t in timeline.messages():
            payload = [{**g, "data": [unshifted(i, shift) for i in g["data"]]} for g in t.message["payload"]]
            out.append((t.master, round(t.at - shift, 6), t.message["timeStamp"] - int(shift), payload))
        return out

    expected = shape(base, 0)
    for shift in (1_000_003, 86_400 * 365 + 2):
        assert shape(Timeline(load(name), start=start + shift), shift) == expected


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), shift=st.integers(-(10**9), 10**9), name=st.sampled_from(["smoke", "restore", "vmware-backup"]))
def test_any_seed_any_start_same_batches_fresh_ids(seed, shift, name) -> None:
    """Invariants: for any seed and start, the batches are the same (times shifted), ids never repeat, messages are valid."""
    scenario = load(name)
    first = list(Timeline(scenario, seed=seed).messages())
    moved = list(Timeline(scenario, seed=seed, start=scenario.start + shift).messages())
    assert [(t.master, [(g["object"], len(g["data"])) for g in t.message["payload"]]) for t in first] == [
        (t.master, [(g["object"], len(g["data"])) for g in t.message["payload"]]) for t in moved
    ]
    assert [round(t.at - scenario.start, 3) for t in first] == [round(t.at - scenario.start - shift, 3) for t in moved]
    ids = [t.message["id"] for t in first + moved]
    assert len(set(ids)) == len(ids)
    for timed in first:
        assert validate(timed.message) == []
        for group in timed.message["payload"]:
            for item in group["data"]:
                offset = next(m for m in scenario.masters if m.key == timed.master).clock_offset_hours * 3600
                event = item.get("createdTime", item.get("startTime")) - offset
                assert event <= timed.message["timeStamp"] + 1, "a message never tells of an event after it was sent"


def test_time_stamps_are_not_locked_to_the_cycle() -> None:
    stamps = {t.message["timeStamp"] % 5 for t in Timeline(load("datacenter-day")).messages()}
    assert len(stamps) > 1


def test_streams_give_each_master_its_messages_in_order() -> None:
    together = [(t.master, t.message["payload"]) for t in Timeline(load("smoke"), ids="seeded").messages()]
    streams = Timeline(load("smoke"), ids="seeded").streams()
    assert set(streams) == {"primary", "dr"}
    dr = [t.message["payload"] for t in streams["dr"]]  # read the second master first: the first's are kept
    primary = [t.message["payload"] for t in streams["primary"]]
    assert dr == [p for m, p in together if m == "dr"] and dr
    assert primary == [p for m, p in together if m == "primary"]


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
    assert len(parents) == 3 and len(children) == 16 + 16  # VIP children; protection plan: SNAPSHOT + BACKUP per VM
    assert {i["scheduleType"] for i in jobs} == {"ST_FULL", "ST_DINC"}


def test_a_vmware_child_is_done_then_its_image_updated_as_the_capture_shows() -> None:
    """Capture: one message with the VMware child DONE, then IMAGE UPDATE of its images."""
    messages = [t.message for t in Timeline(load("vmware-backup")).messages()]
    for message in messages:
        objects = [(g["object"], i.get("state") or i.get("operationId")) for g in message["payload"] for i in g["data"]]
        if ("IMAGE", "UPDATE") in objects:
            assert ("JOB", "DONE") in objects, objects
    children_done = [
        i
        for m in messages
        for g in m["payload"]
        if g["object"] == "JOB"
        for i in g["data"]
        if i["state"] == "DONE" and i["jobId"] != i["parentJobId"]
    ]
    updated = {
        i["clientName"] for m in messages for g in m["payload"] if g["object"] == "IMAGE" for i in g["data"] if i["operationId"] == "UPDATE"
    }
    assert {i["clientName"] for i in children_done if i["jobType"] == "BACKUP"} == updated


def test_a_protection_plan_puts_snapshot_jobs_under_the_parent_as_the_api_samples_query_them() -> None:
    """Veritas' sample: parentJobId eq P and jobType eq 'SNAPSHOT'; then parentJobId eq <snapshot> gives the backup job."""
    jobs = [i for _, o, i in items("vmware-backup") if o == "JOB"]
    final = {i["jobId"]: i for i in jobs}  # the last state of each job
    snapshots = [j for j in final.values() if j["jobType"] == "SNAPSHOT"]
    assert len(snapshots) == 8
    (plan_parent,) = {j["parentJobId"] for j in snapshots}
    assert final[plan_parent]["jobType"] == "BACKUP" and final[plan_parent]["parentJobId"] == plan_parent
    for snapshot in snapshots:
        (backup,) = [j for j in final.values() if j["parentJobId"] == snapshot["jobId"] and j["jobId"] != snapshot["jobId"]]
        assert backup["jobType"] == "BACKUP" and backup["clientName"] == snapshot["clientName"] and backup["state"] == "DONE"


def test_datacenter_day_has_the_job_mix_of_a_real_estate() -> None:
    kinds = Counter(
        (g["object"], i.get("jobType") or i["operationId"])
        for t in Timeline(load("datacenter-day")).messages()
        for g in t.message["payload"]
        for i in g["data"]
    )
    for kind in ("IMAGEDELETE", "DUPLICATE", "DBBACKUP", "SNAPSHOT", "BACKUP", "RESTORE", "REPLICATE", "IMPORT"):
        assert kinds[("JOB", kind)], kind


def test_image_cleanup_deletes_exactly_the_images_past_their_retention() -> None:
    timeline = Timeline(load("image-expiry"))
    messages = list(timeline.messages())
    cleanup = [t for t in messages for g in t.message["payload"] for i in g["data"] if i.get("jobType") == "IMAGEDELETE"]
    assert [i["state"] for t in cleanup for g in t.message["payload"] for i in g["data"] if i.get("jobType") == "IMAGEDELETE"] == [
        "ACTIVE",
        "DONE",
    ]
    begun, ended = cleanup[0].at, cleanup[-1].at
    deleted_then = {
        i["backupId"]
        for t in messages
        if begun <= t.at <= ended
        for g in t.message["payload"]
        for i in g["data"]
        if i.get("operationId") == "DELETE"
    }
    master = timeline.masters["primary"]
    assert deleted_then and all(master.images[b].expires_at <= ended for b in deleted_then)
    assert all(image.expires_at > begun for image in master.live_images())


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
batch: {cycle: 0}
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
        ":3: steps[0].backup.policy_type: unknown policy type 'AMIGA'",
    ),
    "unknown client type": (
        "description: x\nmasters:\n  m:\n    clients: {AMIGA: 2}\nsteps:\n  - backup: {}\n",
        ":4: masters.m.clients.AMIGA: unknown policy type 'AMIGA'",
    ),
    "impossible policy type": (
        "description: x\nsteps:\n  - backup: {policy_type: vmware}\n",
        ":3: steps[0].backup.policy_type: 'vmware' does not match",
    ),
    "protection plan not VMware": (
        "description: x\nsteps:\n  - backup: {policy_type: STANDARD, protection_plan: true}\n",
        ":3: steps[0].backup.protection_plan: only VMware policies",
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
