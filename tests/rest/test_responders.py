"""COMMAND answers come from the emulated master's state, as the NetBackup REST API gives them."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest

from emulator.responders import VERSION_PROFILES, CommandResponder
from emulator.rest.odata import iso_epoch
from emulator.scenario import Timeline, load
from emulator.schemas import validate

V12 = "application/vnd.netbackup+json;version=12.0"
EVERYTHING = "backupTime ge 1970-01-01T00:00:00Z"


@pytest.fixture
def master():
    timeline = Timeline(load("restore"))
    list(timeline.messages())
    return timeline.masters["primary"]


@pytest.fixture
def responder(master) -> CommandResponder:
    return CommandResponder(master, rng=random.Random(3))


def command(uri: str, method: str = "GET", headers: dict[str, str] | None = None, body: Any = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "uri": uri,
        "method": method,
        "headers": {"Content-Type": "application/vnd.netbackup+json;version=1.0", **(headers or {})},
    }
    if body is not None:
        payload["parameters"] = body if isinstance(body, str) else json.dumps(body)
    return {
        "version": "1.0",
        "id": str(uuid.UUID(int=random.getrandbits(128))).upper(),
        "type": "COMMAND",
        "subType": "REQUEST",
        "timeStamp": 1,
        "payload": payload,
    }


def exchange(responder: CommandResponder, *args, **kwargs) -> dict[str, Any]:
    request = command(*args, **kwargs)
    response = responder.answer(request)
    assert response["id"] == request["id"]
    assert validate(response) == [], response
    return response["payload"]


def call(responder: CommandResponder, *args, **kwargs) -> tuple[int, Any]:
    payload = exchange(responder, *args, **kwargs)
    return payload["statusCode"], payload.get("body")


def login(responder: CommandResponder, **headers: str) -> dict[str, str]:
    status, body = call(
        responder,
        "/netbackup/login",
        "POST",
        headers=headers,
        body={"domainType": "unixpwd", "domainName": "m", "userName": "u", "password": "p"},
    )
    assert status == 201
    assert body["tokenType"] == "BEARER" and body["token"].count(".") == 2  # JWT-shaped
    return {"Authorization": body["token"], **headers}


def test_everything_but_login_needs_a_token(responder) -> None:
    status, body = call(responder, "/netbackup/admin/jobs")
    assert status == 401 and body["errorCode"] != 401 and body["errorMessage"]
    assert call(responder, "/netbackup/admin/jobs", headers={"Authorization": "forged"})[0] == 401
    assert call(responder, "/netbackup/admin/jobs", headers=login(responder))[0] == 200


def test_login_needs_credentials_and_checks_configured_ones(master) -> None:
    responder = CommandResponder(master, credentials={"admin": "s3cret"})
    assert call(responder, "/netbackup/login", "POST", body={"userName": "u"})[0] == 400
    assert call(responder, "/netbackup/login", "POST", body="{not json")[0] == 400
    status, body = call(responder, "/netbackup/login", "POST", body={"userName": "admin", "password": "wrong"})
    assert status == 401 and body["errorCode"] == 46
    assert call(responder, "/netbackup/login", "POST", body={"userName": "admin", "password": "s3cret"})[0] == 201


def test_jobs_are_the_masters_jobs_with_offset_paging_and_filters(responder, master) -> None:
    auth = login(responder)
    status, body = call(responder, "/netbackup/admin/jobs?page[limit]=3", headers=auth)
    assert status == 200
    assert len(body["data"]) == 3
    assert body["meta"]["pagination"] == {
        "first": 0,
        "last": (len(master.jobs) - 1) // 3 * 3,
        "count": len(master.jobs),
        "offset": 0,
        "limit": 3,
        "next": 3,
    }
    assert "next" in body["links"]
    status, body = call(responder, "/netbackup/admin/jobs?filter=jobType eq 'RESTORE'&page[limit]=100", headers=auth)
    restores = [j for j in master.jobs.values() if j.job_type == "RESTORE"]
    assert {d["attributes"]["jobId"] for d in body["data"]} == {j.job_id for j in restores}
    assert all(d["attributes"]["policyName"] == "" for d in body["data"])
    one = restores[0]
    status, body = call(responder, f"/netbackup/admin/jobs/{one.job_id}", headers=auth)
    assert status == 200 and body["data"]["attributes"]["state"] == one.state == "DONE"
    assert call(responder, "/netbackup/admin/jobs/999999999", headers=auth)[0] == 404
    status, body = call(responder, "/netbackup/admin/jobs?filter=jobType like 'B%'", headers=auth)
    assert status == 400 and body["errorCode"] == 20 and body["errorDetails"]
    assert call(responder, "/netbackup/admin/jobs?filter=colour eq 'red'", headers=auth)[0] == 400
    assert call(responder, "/netbackup/admin/jobs?page[limit]=1000", headers=auth)[0] == 400
    assert call(responder, "/netbackup/admin/jobs", "DELETE", headers=auth)[0] == 405
    assert call(responder, "/netbackup/nothing/here", headers=auth)[0] == 404


def test_job_attributes_are_netbackups_and_consistent(master) -> None:
    responder_12 = CommandResponder(master, profile="10.5", rng=random.Random(1))
    auth = login(responder_12, Accept=V12)
    status, body = call(responder_12, "/netbackup/admin/jobs?page[limit]=100&filter=jobType eq 'BACKUP' and state eq 'DONE'", headers=auth)
    assert status == 200 and body["data"]
    for resource in body["data"]:
        a = resource["attributes"]
        job = master.jobs[a["jobId"]]
        assert a["scheduleType"] in ("FULL_BACKUP", "DIFFERENTIAL_INCREMENTAL_BACKUP", "CUMULATIVE_INCREMENTAL_BACKUP", "USER_BACKUP")
        assert a["policyType"] in ("STANDARD", "WINDOWS", "VMWARE", "SQL_SERVER", "OBACKUP", "GENERIC")
        assert not a["policyType"].startswith("MS_")
        assert len(a) >= 75
        if job.backup_id and job.status == 0:
            image = master.images[job.backup_id]
            assert a["kilobytesTransferred"] == image.size_kb and a["percentComplete"] == 100
            assert a["numberOfFiles"] >= 1 and a["scheduleName"]
        assert iso_epoch(a["endTime"]) - iso_epoch(a["startTime"]) == pytest.approx(job.end_time - job.start_time, abs=1)
        assert a["elapsedTime"].startswith("PT")


def test_images_default_to_the_last_day_and_expire_as_documented(responder, master) -> None:
    auth = login(responder)
    now = master.now()
    recent = {i.backup_id for i in master.live_images() if i.backup_time >= now - 86400}
    status, body = call(responder, "/netbackup/catalog/images?page[limit]=100", headers=auth)
    assert {d["id"] for d in body["data"]} == recent
    status, body = call(responder, f"/netbackup/catalog/images?page[limit]=100&filter={EVERYTHING}", headers=auth)
    assert {d["id"] for d in body["data"]} == {i.backup_id for i in master.live_images()}
    image = master.live_images()[0]
    status, body = call(responder, f"/netbackup/catalog/images/{image.backup_id}", headers=auth)
    attributes = body["data"]["attributes"]
    assert status == 200 and attributes["clientName"] == image.client_name
    assert (attributes["kbytes"], attributes["numCopies"]) == (image.size_kb, len(image.copies))
    assert attributes["scheduleType"] in ("FULL", "DIFFERENTIAL_INCREMENTAL", "CUMULATIVE_INCREMENTAL", "USER_BACKUP")
    assert call(responder, f"/netbackup/catalog/images/{image.backup_id}/expire", "POST", headers=auth)[0] == 404  # not NetBackup's
    master.drain()
    expire = {"data": {"type": "byBackupId", "attributes": {"backupId": image.backup_id, "date": "1970-01-01T00:00:00.000Z"}}}
    assert call(responder, "/netbackup/catalog/images/update-expiration-date", "POST", headers=auth, body=expire)[0] == 204
    (notification,) = master.drain()
    assert notification.items[0]["operationId"] == "DELETE"
    assert call(responder, f"/netbackup/catalog/images/{image.backup_id}", headers=auth)[0] == 404
    assert call(responder, "/netbackup/catalog/images/update-expiration-date", "POST", headers=auth, body=expire)[0] == 404
    other = master.live_images()[0]
    later = {"data": {"type": "byBackupId", "attributes": {"backupId": other.backup_id, "date": "2099-01-01T00:00:00.000Z"}}}
    assert call(responder, "/netbackup/catalog/images/update-expiration-date", "POST", headers=auth, body=later)[0] == 204
    status, body = call(responder, f"/netbackup/catalog/images/{other.backup_id}", headers=auth)
    assert body["data"]["attributes"]["expiration"] == "2099-01-01T00:00:00.000Z"
    assert (
        call(responder, "/netbackup/catalog/expire-images", "POST", headers=auth, body=[{"backupId": other.backup_id, "copyNumber": 1}])[0]
        == 204
    )
    assert master.images[other.backup_id].deleted
    assert call(responder, "/netbackup/catalog/expire-images", "POST", headers=auth, body=[{"backupId": "nope_1"}])[0] == 400


def test_vmservers_are_registered_read_back_and_deleted(responder) -> None:
    auth = login(responder)
    server = {"serverName": "vc01.example.test", "vmType": "VMWARE_VIRTUAL_CENTER_SERVER", "userId": "svc", "password": "pw", "port": 0}
    assert call(responder, "/netbackup/config/servers/vmservers", "POST", headers=auth, body=server)[0] == 201
    assert call(responder, "/netbackup/config/servers/vmservers", "POST", headers=auth, body=server)[0] == 400  # duplicate
    status, body = call(responder, "/netbackup/config/servers/vmservers/vc01.example.test", headers=auth)
    assert status == 200 and body["data"]["attributes"]["vmServer"]["userId"] == "svc"
    assert body["data"]["attributes"]["vmServer"]["password"] == ""
    status, body = call(responder, "/netbackup/config/servers/vmservers", "POST", headers=auth, body={"serverName": "x", "port": 1})
    assert status == 400 and len(body["errorDetails"]) == 3  # vmType, userId, password
    assert call(responder, "/netbackup/config/servers/vmservers", "POST", headers=auth, body="not json")[0] == 400
    assert call(responder, "/netbackup/config/servers/vmservers/nope", headers=auth)[0] == 404
    assert len(call(responder, "/netbackup/config/servers/vmservers?filter=startswith(serverName,'vc')", headers=auth)[1]["data"]) == 1
    assert call(responder, "/netbackup/config/servers/vmservers/vc01.example.test", "DELETE", headers=auth)[0] == 204
    assert call(responder, "/netbackup/config/servers/vmservers/vc01.example.test", "DELETE", headers=auth)[0] == 404


def test_a_recovery_starts_a_restore_whose_notifications_follow(responder, master) -> None:
    auth = login(responder)
    image = master.restorable_images()[-1]
    body = {"data": {"type": "recoveryRequest", "attributes": {"recoveryPoint": {"client": image.client_name}}}}
    status, answer = call(responder, "/netbackup/recovery/workloads/vmware/scenarios/full-vm/recover", "POST", headers=auth, body=body)
    assert status == 201
    job_id = answer["data"]["id"]
    assert isinstance(job_id, int) and answer["relationships"]["recoveryJob"]["data"] == {"type": "job", "id": job_id}
    job = master.jobs[job_id]
    assert (job.job_type, job.backup_id, job.state) == ("RESTORE", image.backup_id, "ACTIVE")
    master.scheduler.run_while(lambda: True)
    states = [i["state"] for n in master.drain() for i in n.items if i["jobId"] == job.job_id]
    assert states == ["ACTIVE", "DONE"]
    bad = {"data": {"type": "recoveryRequest", "attributes": {}}}
    assert call(responder, "/netbackup/recovery/workloads/vmware/scenarios/full-vm/recover", "POST", headers=auth, body=bad)[0] == 400
    undocumented = "/netbackup/recovery/workloads/standard/scenarios/file/recover"
    assert call(responder, undocumented, "POST", headers=auth, body=body)[0] == 404


def test_the_release_sets_versions_and_answers_406_and_415(master) -> None:
    old = CommandResponder(master, profile="8.0")
    assert exchange(old, "/netbackup/login", "POST", body={})["headers"]["content-type"] == "application/json"
    new = CommandResponder(master, profile="10.5")
    payload = exchange(new, "/netbackup/login", "POST", headers={"Content-Type": V12}, body={"userName": "u", "password": "p"})
    assert payload["headers"]["content-type"] == V12
    auth = {"Authorization": payload["body"]["token"]}
    for version in ("1.0", "8.0", "12.0"):
        accept = f"application/vnd.netbackup+json;version={version}"
        assert exchange(new, "/netbackup/admin/jobs", headers={**auth, "Accept": accept})["headers"]["content-type"] == accept
    assert (
        exchange(new, "/netbackup/admin/jobs", headers={**auth, "Accept": "application/vnd.netbackup+json;version=13.0"})["statusCode"]
        == 406
    )
    assert exchange(new, "/netbackup/admin/jobs", headers={**auth, "Accept": "text/html"})["statusCode"] == 406
    too_new = {"Content-Type": "application/vnd.netbackup+json;version=13.0"}
    assert exchange(new, "/netbackup/login", "POST", headers=too_new, body={"userName": "u", "password": "p"})["statusCode"] == 415
    assert (
        exchange(new, "/netbackup/login", "POST", headers={"Content-Type": "text/plain"}, body={"userName": "u", "password": "p"})[
            "statusCode"
        ]
        == 415
    )
    middle = CommandResponder(master, profile="9.0")
    assert (
        exchange(middle, "/netbackup/login", "POST", headers={"Content-Type": V12}, body={"userName": "u", "password": "p"})["statusCode"]
        == 415
    )
    assert VERSION_PROFILES["10.5"] == V12 and VERSION_PROFILES["9.0"].endswith("version=5.0")
    with pytest.raises(ValueError, match="unknown NetBackup version profile"):
        CommandResponder(master, profile="7.7")


def follow(responder: CommandResponder, uri: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Read every page by following ``links.next`` as a client does."""
    seen: list[dict[str, Any]] = []
    for _ in range(1000):
        status, body = call(responder, uri, headers=headers)
        assert status == 200, body
        seen.extend(body["data"])
        if "next" not in body["links"]:
            return seen
        uri = body["links"]["next"]["href"]
    raise AssertionError("no last page")


@pytest.mark.parametrize(("profile", "cursor"), [("8.1", False), ("10.5", True)])
def test_a_client_following_next_reads_every_job(master, profile, cursor) -> None:
    responder = CommandResponder(master, profile=profile)
    auth = login(responder, **({"Accept": V12} if cursor else {}))
    _status, body = call(responder, "/netbackup/admin/jobs?page[limit]=4", headers=auth)
    assert ("next" in body["meta"]["pagination"] and isinstance(body["meta"]["pagination"]["next"], str)) == cursor
    jobs = follow(responder, "/netbackup/admin/jobs?page[limit]=4", auth)
    ids = [j["attributes"]["jobId"] for j in jobs]
    assert ids == sorted(master.jobs, reverse=True)
    done = follow(responder, "/netbackup/admin/jobs?page[limit]=3&filter=(status eq 0 or status eq 1) and state eq 'DONE'", auth)
    assert {j["attributes"]["jobId"] for j in done} == {j.job_id for j in master.jobs.values() if j.state == "DONE" and j.status in (0, 1)}


def test_cursor_paging_sorts_and_goes_back(master) -> None:
    responder = CommandResponder(master, profile="10.5")
    auth = login(responder, Accept=V12)
    forward = follow(responder, "/netbackup/admin/jobs?page[limit]=5&sort=startTime", auth)
    starts = [j["attributes"]["startTime"] for j in forward]
    assert starts == sorted(starts) and len(forward) == len(master.jobs)
    _, first = call(responder, "/netbackup/admin/jobs?page[limit]=5&sort=jobId", headers=auth)
    _, second = call(responder, first["links"]["next"]["href"], headers=auth)
    _status, back = call(responder, second["links"]["prev"]["href"], headers=auth)
    assert [j["id"] for j in back["data"]] == [j["id"] for j in first["data"]]
    assert "prev" not in back["meta"]["pagination"]
    assert call(responder, "/netbackup/admin/jobs?sort=colour", headers=auth)[0] == 400
    assert call(responder, "/netbackup/admin/jobs?page[after]=garbage!", headers=auth)[0] == 400


def test_images_offset_paging_reads_everything(responder, master) -> None:
    auth = login(responder)
    seen = follow(responder, f"/netbackup/catalog/images?page[limit]=2&filter={EVERYTHING}", auth)
    assert sorted(i["id"] for i in seen) == sorted(i.backup_id for i in master.live_images())
