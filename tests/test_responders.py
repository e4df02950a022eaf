"""COMMAND answers come from the emulated master's state, as the NetBackup REST API gives them."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest

from emulator.responders import CommandResponder
from emulator.scenario import Timeline, load
from emulator.schemas import validate


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


def call(responder: CommandResponder, *args, **kwargs) -> tuple[int, Any]:
    request = command(*args, **kwargs)
    response = responder.answer(request)
    assert response["id"] == request["id"]
    assert validate(response) == [], response
    return response["payload"]["statusCode"], response["payload"].get("body")


def login(responder: CommandResponder) -> dict[str, str]:
    status, body = call(
        responder, "/netbackup/login", "POST", body={"domainType": "unixpwd", "domainName": "m", "userName": "u", "password": "p"}
    )
    assert status == 201
    assert body["tokenType"] == "BEARER" and body["token"].count(".") == 2  # JWT-shaped
    return {"Authorization": body["token"]}


def test_everything_but_login_needs_a_token(responder) -> None:
    assert call(responder, "/netbackup/admin/jobs")[0] == 401
    assert call(responder, "/netbackup/admin/jobs", headers={"Authorization": "forged"})[0] == 401
    assert call(responder, "/netbackup/admin/jobs", headers=login(responder))[0] == 200


def test_login_needs_credentials(responder) -> None:
    assert call(responder, "/netbackup/login", "POST", body={"userName": "u"})[0] == 400
    assert call(responder, "/netbackup/login", "POST", body="{not json")[0] == 400


def test_jobs_are_the_masters_jobs_with_paging_and_filters(responder, master) -> None:
    auth = login(responder)
    status, body = call(responder, "/netbackup/admin/jobs?page[limit]=3", headers=auth)
    assert status == 200
    assert len(body["data"]) == 3 and body["meta"]["pagination"]["count"] == len(master.jobs)
    assert "next" in body["links"]
    status, body = call(responder, "/netbackup/admin/jobs?filter=jobType eq 'RESTORE'&page[limit]=100", headers=auth)
    restores = [j for j in master.jobs.values() if j.job_type == "RESTORE"]
    assert {d["attributes"]["jobId"] for d in body["data"]} == {j.job_id for j in restores}
    assert all(d["attributes"]["policyName"] == "" for d in body["data"])
    one = restores[0]
    status, body = call(responder, f"/netbackup/admin/jobs/{one.job_id}", headers=auth)
    assert status == 200 and body["data"]["attributes"]["state"] == one.state == "DONE"
    assert call(responder, "/netbackup/admin/jobs/999999999", headers=auth)[0] == 404
    assert call(responder, "/netbackup/admin/jobs?filter=jobType like 'B%'", headers=auth)[0] == 400
    assert call(responder, "/netbackup/admin/jobs?filter=colour eq 'red'", headers=auth)[0] == 400
    assert call(responder, "/netbackup/admin/jobs?page[limit]=1000", headers=auth)[0] == 400
    assert call(responder, "/netbackup/admin/jobs", "DELETE", headers=auth)[0] == 405
    assert call(responder, "/netbackup/nothing/here", headers=auth)[0] == 404


def test_images_and_their_expiry(responder, master) -> None:
    auth = login(responder)
    status, body = call(responder, "/netbackup/catalog/images?page[limit]=100", headers=auth)
    assert {d["id"] for d in body["data"]} == {i.backup_id for i in master.live_images()}
    image = master.live_images()[0]
    status, body = call(responder, f"/netbackup/catalog/images/{image.backup_id}", headers=auth)
    assert status == 200 and body["data"]["attributes"]["clientName"] == image.client_name
    master.drain()
    assert call(responder, f"/netbackup/catalog/images/{image.backup_id}/expire", "POST", headers=auth)[0] == 204
    (notification,) = master.drain()
    assert notification.items[0]["operationId"] == "DELETE"
    assert call(responder, f"/netbackup/catalog/images/{image.backup_id}", headers=auth)[0] == 404


def test_vmservers_are_registered_and_read_back(responder) -> None:
    auth = login(responder)
    server = {
        "serverName": "vc01.example.test",
        "proxyServerName": "",
        "vmType": "VMWARE_VIRTUAL_CENTER_SERVER",
        "userId": "svc",
        "password": "pw",
        "port": 0,
    }
    assert call(responder, "/netbackup/config/servers/vmservers", "POST", headers=auth, body=server)[0] == 201
    assert call(responder, "/netbackup/config/servers/vmservers", "POST", headers=auth, body=server)[0] == 409
    status, body = call(responder, "/netbackup/config/servers/vmservers/vc01.example.test", headers=auth)
    assert status == 200 and body["data"]["attributes"]["userId"] == "svc"
    assert "password" not in body["data"]["attributes"]
    assert call(responder, "/netbackup/config/servers/vmservers", "POST", headers=auth, body={"port": 1})[0] == 400
    assert call(responder, "/netbackup/config/servers/vmservers", "POST", headers=auth, body="not json")[0] == 400
    assert call(responder, "/netbackup/config/servers/vmservers/nope", headers=auth)[0] == 404
    assert len(call(responder, "/netbackup/config/servers/vmservers", headers=auth)[1]["data"]) == 1


def test_a_recovery_command_starts_a_restore_whose_notifications_follow(responder, master) -> None:
    auth = login(responder)
    image = master.restorable_images()[-1]
    body = {"data": {"type": "recoveryRequest", "attributes": {"recoveryPoint": {"client": image.client_name}}}}
    status, answer = call(responder, "/netbackup/recovery/workloads/vmware/scenarios/full-vm/recover", "POST", headers=auth, body=body)
    assert status == 201
    job = master.jobs[int(answer["data"]["id"])]
    assert (job.job_type, job.backup_id, job.state) == ("RESTORE", image.backup_id, "ACTIVE")
    master.scheduler.run_while(lambda: True)
    states = [i["state"] for n in master.drain() for i in n.items if i["jobId"] == job.job_id]
    assert states == ["ACTIVE", "DONE"]
    bad = {"data": {"attributes": {}}}
    assert call(responder, "/netbackup/recovery/workloads/vmware/scenarios/full-vm/recover", "POST", headers=auth, body=bad)[0] == 400


def test_version_profiles_set_the_content_type(master) -> None:
    assert (
        CommandResponder(master, profile="8.0").answer(command("/netbackup/login", "POST", body={}))["payload"]["headers"]["content-type"]
        == "application/json"
    )
    assert "vnd.netbackup+json" in CommandResponder(master, profile="9.0").content_type
    with pytest.raises(ValueError, match="unknown NetBackup version profile"):
        CommandResponder(master, profile="7.7")
