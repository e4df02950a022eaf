"""The emulated master: NetBackup's order of events, and invariants that hold for any sequence of operations."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.data import DataPools, build_policies
from emulator.domain import Client, MasterServer, Notification, Policy, Schedule, Scheduler
from emulator.domain.master import _PURPOSES
from emulator.domain.status import STATUS_CODES, describe, worst
from emulator.protocol.messages import new_id, notification_request
from emulator.scenario import Timeline, load
from emulator.schemas import validate

START = 1_767_643_200.0
SCHEDULES = {
    "full": Schedule("Full", "ST_FULL", 28 * 86400),
    "incremental": Schedule("Incr", "ST_DINC", 14 * 86400),
    "cumulative": Schedule("Cinc", "ST_CINC", 14 * 86400),
}


def make_master(hostname="master1.corp", scheduler=None, *, failures=0.0, offset=0, seed=1) -> MasterServer:
    scheduler = scheduler or Scheduler(START)
    master = MasterServer(hostname, scheduler, random.Random(seed), failures=failures, clock_offset_hours=offset, first_job_id=100)
    master.add_policy(Policy("std", "STANDARD", [Client("web01", "STANDARD", 10.0)], dict(SCHEDULES)))
    master.add_policy(Policy("vip", "VMWARE", [Client(f"vm{i}", "VMWARE", 20.0) for i in range(5)], dict(SCHEDULES), max_jobs=2))
    return master


def run(master: MasterServer) -> list[Notification]:
    master.scheduler.run_while(lambda: True)
    return master.drain()


def flat(notifications: list[Notification]) -> list[tuple[str, dict]]:
    return [(n.object, item) for n in notifications for item in n.items]


def job_states(notifications, job_id):
    return [item["state"] for obj, item in flat(notifications) if obj == "JOB" and item["jobId"] == job_id]


def test_standard_backup_is_queued_active_image_done() -> None:
    """QUEUED, ACTIVE, image CREATE, then DONE; backupId is client_backupTime and backupTime the job's start."""
    master = make_master()
    operation = master.backup("std")
    events = flat(run(master))
    assert [(o, i.get("state") or i.get("operationId")) for o, i in events] == [
        ("JOB", "QUEUED"),
        ("JOB", "ACTIVE"),
        ("IMAGE", "CREATE"),
        ("JOB", "DONE"),
    ]
    job, image = events[0][1], events[2][1]
    assert job["parentJobId"] == job["jobId"] == 100
    assert (job["policyName"], job["policyType"], job["jobType"], job["scheduleType"]) == ("std", "STANDARD", "BACKUP", "ST_FULL")
    assert image["backupId"] == f"web01_{image['backupTime']}"
    assert image["backupTime"] == job["startTime"] == int(START)
    assert image["clientType"] == "STANDARD"
    assert operation.finished and operation.end_time > START


def test_vmware_policy_runs_parent_then_one_child_per_vm_then_parent_done() -> None:
    """The discovery job is ACTIVE first; children carry its id; the parent ends last with the worst status."""
    master = make_master(failures=30.0, seed=4)  # a high failure scale gives a mix of child statuses
    master.backup("vip")
    notifications = run(master)
    events = flat(notifications)
    parent = events[0][1]
    assert (parent["state"], parent["clientName"], parent["parentJobId"]) == ("ACTIVE", "master1.corp", parent["jobId"])
    children = {i["jobId"]: i for o, i in events if o == "JOB" and i["parentJobId"] == parent["jobId"] and i["jobId"] != parent["jobId"]}
    assert sorted(i["clientName"] for i in children.values()) == [f"vm{i}" for i in range(5)]
    final = events[-1][1]
    assert (final["jobId"], final["state"]) == (parent["jobId"], "DONE")
    child_status = [master.jobs[j].status for j in children]
    assert final["status"] == worst(child_status)
    assert any(child_status), "the seed should give at least one failing child"
    images = {i["clientName"] for o, i in events if o == "IMAGE"}
    assert images == {master.jobs[j].client_name for j in children if describe(master.jobs[j].status).makes_image}


def test_incremental_and_cumulative_schedules() -> None:
    master = make_master()
    master.backup("std", "incremental")
    master.backup("std", "cumulative")
    kinds = {i["scheduleType"] for o, i in flat(run(master)) if o == "JOB"}
    assert kinds == {"ST_DINC", "ST_CINC"}


def test_multiple_streams_make_a_parent_and_a_child_and_image_per_stream() -> None:
    master = make_master()
    master.backup("std", streams=3)
    events = flat(run(master))
    jobs = [i for o, i in events if o == "JOB"]
    parent_id = jobs[0]["jobId"]
    child_ids = {i["jobId"] for i in jobs if i["parentJobId"] == parent_id and i["jobId"] != parent_id}
    assert len(child_ids) == 3
    backup_ids = [i["backupId"] for o, i in events if o == "IMAGE"]
    assert len(backup_ids) == len(set(backup_ids)) == 3
    assert jobs[-1]["jobId"] == parent_id and jobs[-1]["state"] == "DONE"


def test_failures_follow_their_status_code() -> None:
    """196 never goes active; 58 goes active and fails without an image; 1 keeps its image."""
    for status, states, image in (
        (196, ["QUEUED", "DONE"], False),
        (58, ["QUEUED", "ACTIVE", "DONE"], False),
        (1, ["QUEUED", "ACTIVE", "DONE"], True),
    ):
        master = make_master()
        operation = master.backup("std", status=status)
        notifications = run(master)
        assert job_states(notifications, operation.jobs[0].job_id) == states
        assert any(o == "IMAGE" for o, _ in flat(notifications)) is image
        assert flat(notifications)[-1][1]["status"] == status


def test_realistic_failure_mix() -> None:
    """About 95 % of backups succeed, most of the rest partially; VMware-only codes stay on VMware."""
    master = make_master(failures=1.0, seed=11)
    draws = [master._draw_status("STANDARD") for _ in range(20000)]
    assert 0.90 < draws.count(0) / len(draws) < 0.97
    assert draws.count(1) > sum(1 for d in draws if d > 1)
    assert 156 not in draws
    assert all(code in STATUS_CODES for code in draws)


def test_restore_job_has_an_empty_policy_name() -> None:
    master = make_master()
    master.backup("std")
    run(master)
    image = master.restorable_images()[0]
    operation = master.restore(image)
    events = flat(run(master))
    assert [i["state"] for _, i in events] == ["ACTIVE", "DONE"]
    job = events[-1][1]
    assert (job["jobType"], job["policyName"], job["clientName"], job["status"]) == ("RESTORE", "", "web01", 0)
    assert operation.jobs[0].backup_id == image.backup_id


def test_restore_of_a_deleted_image_is_skipped() -> None:
    master = make_master()
    master.backup("std")
    run(master)
    image = master.live_images()[0]
    master.expire(image)
    assert master.restore(image).skipped
    assert master.restore(None).skipped


def test_expiry_deletes_the_image() -> None:
    master = make_master()
    master.backup("std")
    run(master)
    image = master.live_images()[0]
    master.expire(image)
    (notification,) = master.drain()
    assert [i["operationId"] for i in notification.items] == ["DELETE"]
    assert image.deleted and master.live_images() == []


def test_air_replication_and_expiry_of_the_local_copy() -> None:
    """REPLICATE + UPDATE on the source, IMPORT + CREATE on the target; then UPDATE and NO_LOCAL_COPY_AVAILABLE together."""
    scheduler = Scheduler(START)
    source = make_master("src.corp", scheduler)
    target = MasterServer("dr.corp", scheduler, random.Random(9), first_job_id=5000)
    source.backup("std")
    run(source)
    image = source.live_images()[0]
    operation = source.replicate(image, target)
    scheduler.run_while(lambda: True)
    assert operation.finished
    src = flat(source.drain())
    assert [(o, i.get("jobType"), i.get("state") or i.get("operationId")) for o, i in src] == [
        ("JOB", "REPLICATE", "ACTIVE"),
        ("IMAGE", None, "UPDATE"),
        ("JOB", "REPLICATE", "DONE"),
    ]
    dst = flat(target.drain())
    assert [(o, i.get("jobType"), i.get("state") or i.get("operationId")) for o, i in dst] == [
        ("JOB", "IMPORT", "ACTIVE"),
        ("IMAGE", None, "CREATE"),
        ("JOB", "IMPORT", "DONE"),
    ]
    assert dst[0][1]["jobId"] == 5000 and dst[1][1]["backupId"] == image.backup_id
    assert source.replicable_images(target) == []
    source.expire(image, local_only=True)
    (pair,) = source.drain()
    assert [i["operationId"] for i in pair.items] == ["UPDATE", "NO_LOCAL_COPY_AVAILABLE"]
    assert {i["backupId"] for i in pair.items} == {image.backup_id}
    assert not image.deleted and not image.has_local_copy
    assert source.restore(image).skipped  # a replica cannot be restored here
    source.expire(image)
    assert [i["operationId"] for i in source.drain()[0].items] == ["DELETE"]


def test_clock_offset_applies_to_start_and_created_times_only() -> None:
    """As in the captures: startTime and createdTime run whole hours ahead, backupTime does not."""
    master = make_master(offset=5)
    master.backup("std")
    events = flat(run(master))
    job, image = events[0][1], events[2][1]
    assert job["startTime"] == int(START) + 5 * 3600
    assert image["backupTime"] == int(START)
    assert image["createdTime"] - image["backupTime"] > 5 * 3600


def test_worst_status() -> None:
    assert worst([0, 0]) == 0
    assert worst([0, 1, 0]) == 1
    assert worst([1, 58, 13, 0]) == 58
    assert worst([]) == 0


def test_environment_pools_are_reproducible() -> None:
    """Same seed, same names and sizes; another seed, others."""
    counts = {"STANDARD": 5, "VMWARE": 10, "MS_WINDOWS": 3}

    def names(seed):
        return [(p.name, [(c.name, c.full_size_gb) for c in p.clients]) for p in build_policies(DataPools.from_seed(seed), counts)]

    assert names(3) == names(3)
    assert names(3) != names(4)
    policies = build_policies(DataPools.from_seed(3), counts)
    assert sum(len(p.clients) for p in policies) == 18
    assert len({c.name for p in policies for c in p.clients}) == 18
    assert len({p.name for p in policies}) == len(policies)


def test_pools_do_not_depend_on_what_was_built_before_them() -> None:
    """The Faker behind the pools is reused and reseeded: a seed's pools are those of a fresh thread's first."""

    def pools(seed: int) -> tuple:
        built = DataPools.from_seed(seed)
        return built.words, built.sites, built.domain, built.rng.random()

    fresh: list[tuple] = []
    thread = threading.Thread(target=lambda: fresh.append(pools(5)))
    thread.start()
    thread.join()
    pools(6)
    assert pools(5) == fresh[0]


def test_a_vmware_child_is_done_before_its_image_update() -> None:
    master = make_master()
    master.backup("vip")
    events = flat(run(master))
    for vm in (f"vm{i}" for i in range(5)):
        mine = [(o, i.get("state") or i.get("operationId")) for o, i in events if i["clientName"] == vm]
        assert mine[-2:] == [("JOB", "DONE"), ("IMAGE", "UPDATE")], mine
        assert ("IMAGE", "CREATE") in mine


def test_image_cleanup_deletes_what_retention_let_go() -> None:
    master = make_master()
    master.backup("std", "incremental")  # kept 14 days
    master.backup("std")  # kept 28 days
    run(master)
    master.scheduler.run_until(master.now() + 20 * 86400)
    operation = master.image_cleanup()
    events = flat(run(master))
    kinds = [(o, i.get("jobType") or i["operationId"], i.get("state")) for o, i in events]
    assert kinds == [("JOB", "IMAGEDELETE", "ACTIVE"), ("IMAGE", "DELETE", None), ("JOB", "IMAGEDELETE", "DONE")]
    (job,) = operation.jobs
    assert (job.policy_name, job.client_name, job.status) == ("", "master1.corp", 0)
    (left,) = master.live_images()
    assert left.schedule_type == "ST_FULL" and left.expires_at > master.now()


def test_slp_duplication_adds_a_copy_and_the_catalog_backup_makes_an_image() -> None:
    master = make_master()
    master.backup("std")
    run(master)
    (image,) = master.live_images()
    master.duplicate(image)
    events = flat(run(master))
    assert [(o, i.get("state") or i.get("operationId")) for o, i in events] == [
        ("JOB", "QUEUED"),
        ("JOB", "ACTIVE"),
        ("IMAGE", "UPDATE"),
        ("JOB", "DONE"),
    ]
    assert events[0][1]["jobType"] == "DUPLICATE" and events[0][1]["policyName"] == "SLP_std" and len(image.copies) == 2
    assert master.duplicate(image).skipped == "no image to duplicate"  # one SLP copy per image
    master.catalog_backup()
    catalog = flat(run(master))
    jobs = [i for o, i in catalog if o == "JOB"]
    assert {(j["jobType"], j["policyType"], j["clientName"]) for j in jobs} == {("DBBACKUP", "NBU_CATALOG", "master1.corp")}
    assert [i["clientType"] for o, i in catalog if o == "IMAGE"] == ["NBU_CATALOG"]
    assert "CatalogBackup" not in master.policies  # never picked by a scenario's backup step


def test_a_protection_plan_runs_snapshot_then_backup_under_it() -> None:
    master = make_master()
    operation = master.backup("vip", protection_plan=True)
    events = flat(run(master))
    parent = operation.jobs[0]
    snapshots = [master.jobs[c] for c in parent.children]
    assert [j.job_type for j in snapshots] == ["SNAPSHOT"] * 5
    for snapshot in snapshots:
        (backup_id,) = snapshot.children
        backup = master.jobs[backup_id]
        assert backup.job_type == "BACKUP" and backup.backup_id == snapshot.backup_id is not None
        image = master.images[snapshot.backup_id]
        assert len(image.copies) == 2  # the snapshot, and the backup from it
        mine = [(o, i.get("jobType"), i.get("state") or i.get("operationId")) for o, i in events if i["clientName"] == snapshot.client_name]
        assert mine.index(("JOB", "SNAPSHOT", "DONE")) < mine.index(("JOB", "BACKUP", "ACTIVE")) < mine.index(("IMAGE", None, "UPDATE"))
    assert events[-1][1]["jobId"] == parent.job_id and events[-1][1]["state"] == "DONE"


# -- invariants under any sequence of operations -----------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *("std", "vip", "std-streams", "incremental", "restore", "expire", "expire-local", "replicate", "fail"),
                *("vip-plan", "cleanup", "duplicate", "catalog"),
            ]
        ),
        st.one_of(st.integers(min_value=0, max_value=4 * 3600), st.integers(min_value=10 * 86400, max_value=30 * 86400)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(operations=OPERATIONS, seed=st.integers(0, 2**32), failures=st.sampled_from([0.0, 1.0, 20.0]))
def test_invariants_hold_for_any_sequence_of_operations(operations, seed, failures) -> None:
    scheduler = Scheduler(START)
    rng = random.Random(seed)
    source = make_master("src.corp", scheduler, failures=failures, seed=seed)
    target = MasterServer("dr.corp", scheduler, random.Random(seed + 1), first_job_id=7)
    log: dict[str, list[Notification]] = {"src.corp": [], "dr.corp": []}
    for kind, gap in operations:
        scheduler.run_until(scheduler.now() + gap)
        live = source.live_images()
        pick = rng.choice(live) if live else None
        if kind == "std":
            source.backup("std")
        elif kind == "vip":
            source.backup("vip")
        elif kind == "std-streams":
            source.backup("std", streams=2)
        elif kind == "incremental":
            source.backup("vip", "incremental")
        elif kind == "fail":
            source.backup("std", status=rng.choice([13, 58, 96, 196]))
        elif kind == "restore":
            source.restore(pick)
        elif kind == "expire":
            source.expire(pick)
        elif kind == "expire-local":
            source.expire(pick, local_only=True)
        elif kind == "vip-plan":
            source.backup("vip", protection_plan=True)
        elif kind == "cleanup":
            source.image_cleanup()
        elif kind == "duplicate":
            source.duplicate(pick)
        elif kind == "catalog":
            source.catalog_backup()
        else:
            source.replicate(pick, target)
        for master in (source, target):
            log[master.hostname].extend(master.drain())
    scheduler.run_while(lambda: True)
    for master in (source, target):
        log[master.hostname].extend(master.drain())
        check_invariants(master, log[master.hostname])


def check_invariants(master: MasterServer, notifications: list[Notification]) -> None:
    times = [n.at for n in notifications]
    assert times == sorted(times), "notifications come out in time order"
    first_seen: list[int] = []
    states: dict[int, list[str]] = defaultdict(list)
    done_at: dict[int, float] = {}
    image_ops: dict[str, list[str]] = defaultdict(list)
    rank = {"QUEUED": 0, "ACTIVE": 1, "DONE": 2}
    for notification in notifications:
        for item in notification.items:
            if notification.object == "JOB":
                job_id = item["jobId"]
                if job_id not in states:
                    first_seen.append(job_id)
                assert not states[job_id] or states[job_id][-1] != "DONE", "nothing follows DONE"
                states[job_id].append(item["state"])
                if item["state"] == "DONE":
                    done_at[job_id] = notification.at
                assert item["startTime"] <= int(notification.at) + master.clock_offset, "a job does not end before it starts"
            else:
                assert item["backupId"] == f"{item['clientName']}_{item['backupTime']}"
                image_ops[item["backupId"]].append(item["operationId"])
        # every notification is a valid NBWSS message on its own
        assert validate(notification_request(new_id(random.Random(0)), int(notification.at), [notification])) == []
    assert first_seen == sorted(first_seen) and len(set(first_seen)) == len(first_seen), "job ids unique and increasing"
    for job_id, sequence in states.items():
        assert [rank[s] for s in sequence] == sorted(rank[s] for s in sequence), f"job {job_id} went back: {sequence}"
        assert sequence[-1] == "DONE", f"job {job_id} never ended"
    for job in master.jobs.values():
        for child in job.children:
            if job.job_type != "SNAPSHOT":  # a backup from snapshot runs after its SNAPSHOT job; the top parent waits for both
                assert done_at[child] <= done_at[job.job_id], "a child never finishes after its parent"
            if master.jobs[child].job_type == "SNAPSHOT":
                assert job.job_type == "BACKUP" and job.parent_job_id == job.job_id, "SNAPSHOT jobs sit under the parent"
                assert all(master.jobs[g].job_type == "BACKUP" for g in master.jobs[child].children), "a backup job under each SNAPSHOT"
                assert all(done_at[g] <= done_at[job.job_id] for g in master.jobs[child].children), "the parent ends last"
        if job.job_type == "IMAGEDELETE":
            assert job.policy_name == "" and job.parent_job_id == job.job_id
        if job.job_type in ("DUPLICATE", "DBBACKUP") and job.status == 0 and job.backup_id is not None:
            image = master.images[job.backup_id]
            assert job.job_type != "DUPLICATE" or image.deleted or len(image.copies) >= 2, "a duplication adds a copy"
        if job.job_type == "RESTORE":
            image = master.images[job.backup_id]
            # The same instant is allowed: the operations ran in turn, the restore first (it found the image).
            assert image.deleted_time is None or job.start_time <= image.deleted_time, "never restored after deletion"
    for image in master.images.values():
        if image.deleted_by_job:
            assert master.jobs[image.deleted_by_job].job_type == "IMAGEDELETE"
            assert image.deleted_time is not None and image.expires_at <= image.deleted_time, "Image Cleanup deletes only expired images"

    for backup_id, ops in image_ops.items():
        assert ops[0] == "CREATE", f"{backup_id}: first event is {ops[0]}"
        if "DELETE" in ops:
            assert ops.index("DELETE") == len(ops) - 1, f"{backup_id}: events after DELETE"
        for index, op in enumerate(ops):
            if op == "NO_LOCAL_COPY_AVAILABLE":
                assert ops[index - 1] == "UPDATE"


def naive_pick(master: MasterServer, purpose: str, how: str, target: MasterServer) -> object:
    """What pick_image must answer for oldest/newest: the first fit image in catalog order, scanning every image."""
    pool = master.expirable_images(local_only=True) if purpose == "expire-local" else master.live_images()
    ordered = pool if how == "oldest" else list(reversed(pool))
    return next((image for image in ordered if _PURPOSES[purpose](image, target.hostname)), None)


@settings(max_examples=40, deadline=None)
@given(
    operations=st.lists(
        st.tuples(
            st.sampled_from(["std", "vip", "restore", "expire", "expire-local", "replicate", "duplicate", "cleanup"]),
            st.sampled_from(["oldest", "newest"]),
            st.integers(min_value=0, max_value=6 * 3600),
        ),
        min_size=1,
        max_size=40,
    ),
    seed=st.integers(0, 2**32),
)
def test_oldest_and_newest_picks_are_the_first_fit_image_in_catalog_order(operations, seed) -> None:
    """pick_image keeps heaps of candidates instead of scanning: its answers are the scan's, whatever happened before."""
    scheduler = Scheduler(START)
    source = make_master("src.corp", scheduler, seed=seed)
    target = MasterServer("dr.corp", scheduler, random.Random(seed + 1), first_job_id=7)
    rng = random.Random(seed)
    for kind, how, gap in operations:
        scheduler.run_until(scheduler.now() + gap)
        for purpose in ("restore", "expire", "expire-local", "replicate", "duplicate"):
            for direction in ("oldest", "newest"):
                assert source.pick_image(purpose, direction, rng, target) is naive_pick(source, purpose, direction, target), (
                    purpose,
                    direction,
                )
        if kind in ("std", "vip"):
            source.backup(kind)
        elif kind == "cleanup":
            source.image_cleanup()
        elif kind == "replicate":
            source.replicate(source.pick_image("replicate", how, rng, target), target)
        elif kind == "expire-local":
            source.expire(source.pick_image("expire-local", how, rng, target), local_only=True)
        elif kind == "expire":
            source.expire(source.pick_image("expire", how, rng, target))
        elif kind == "restore":
            source.restore(source.pick_image("restore", how, rng, target))
        else:
            source.duplicate(source.pick_image("duplicate", how, rng, target))
        source.drain()
        target.drain()


def _run_days(timeline: Timeline, days: float) -> list[dict[str, Any]]:
    start = timeline.scheduler.now()
    messages = []
    for message in timeline.notifications(repeat=True):
        messages.append(message["payload"])  # the id is random and the timeStamp the wall clock's
        if timeline.scheduler.now() - start > days * 86_400:
            return messages
    return messages


def test_the_job_database_keeps_78_hours_of_finished_jobs_and_the_notifications_do_not_change() -> None:
    kept = Timeline(load("smoke"), seed=5)
    forever = Timeline(load("smoke"), seed=5)
    for master in forever.masters.values():
        master.keep_jobs = float("inf")
    sent = _run_days(kept, 8)
    assert sent == _run_days(forever, 8)  # purging draws nothing and changes no notification
    for key, master in kept.masters.items():
        everything = forever.masters[key]
        horizon = master.now() - 78 * 3600
        assert len(master.jobs) < len(everything.jobs)
        for job_id, job in everything.jobs.items():
            top = everything.jobs[job.parent_job_id]
            purged = top.end_time is not None and top.end_time <= horizon
            assert (job_id not in master.jobs) == purged, job_id
        for backup_id, image in everything.images.items():  # deleted images go a day after the jobs that might show them
            if image.deleted_time is not None and image.deleted_time <= horizon - 86_400:
                assert backup_id not in master.images
            else:
                assert backup_id in master.images
