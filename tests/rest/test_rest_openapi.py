"""Every answer of the emulated master validates against Veritas' NetBackup 10.5 OpenAPI files.

The files are read from ``../shared/reference/netbackup-api-10.5/`` beside the checkout (CI has
them there); the test skips where they are absent. Validation is openapi-core's: the answer's
status, Content-Type and body against the response of its path and method. The published
folder lacks ``common.yaml`` (the shared error responses the files point to) and the
``UpdateExpDate_*.json`` request schemas: stand-ins are written beside copies of the files,
the error responses as the error body the same files spell out inline (``errorCode`` and
``errorMessage`` required); request schemas are not needed to validate answers.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from emulator.rest import CommandResponder
from emulator.rest.responder import Answer
from emulator.scenario import Timeline, load

openapi_core = pytest.importorskip("openapi_core", reason="openapi-core is in the test extra")
from jsonschema_path import SchemaPath  # noqa: E402
from openapi_core import Config, OpenAPI  # noqa: E402
from openapi_core.testing import MockRequest, MockResponse  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "netbackup-api-10.5"
FILES = ("gateway.yaml", "admin.yaml", "catalog.yaml", "config.yaml", "recovery.yaml")
MEDIA_TYPE = "application/vnd.netbackup+json"
V12 = f"{MEDIA_TYPE};version=12.0"
SERVER = "https://<masterserver>:1556"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["errorCode", "errorMessage"],
    "properties": {
        "errorCode": {"type": "integer", "format": "int64"},
        "errorMessage": {"type": "string"},
        "attributeErrors": {"type": "object"},
        "errorDetails": {"type": "array", "items": {"type": "string"}},
        "fileUploadErrors": {"type": "array", "items": {"type": "object"}},
    },
}
ERROR_RESPONSES = ("errorBadRequest", "errorUnauthorized", "errorNotFound", "errorUnacceptable", "errorUnsupportedMediaType")

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"the NetBackup OpenAPI files are not at {REFERENCE}")


def _json(value: bytes, **_parameters: str) -> Any:
    return json.loads(value)


def _stand_ins(folder: Path) -> None:
    error = {"description": "error", "content": {V12: {"schema": {"$ref": "#/components/schemas/errorResponse"}}}}
    common = {
        "openapi": "3.0.0",
        "info": {"title": "stand-in for the unpublished common.yaml", "version": "12.0"},
        "paths": {},
        "components": {
            "schemas": {"errorResponse": ERROR_SCHEMA},
            "responses": {name: error for name in (*ERROR_RESPONSES, "errorInternalServerError", "errorServiceUnavailable")},
        },
    }
    (folder / "common.yaml").write_text(yaml.safe_dump(common))
    for name in ("ByBackupId", "ByMediaId", "ByRecalculating", "ByServerName", "ByServerType"):
        key = name[0].lower() + name[1:]
        (folder / f"UpdateExpDate_{name}.json").write_text(json.dumps({"components": {"schemas": {key: {"type": "object"}}}}))
    (folder / "UpdatePrimaryCopy.json").write_text(json.dumps({"components": {"schemas": {}}}))


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, OpenAPI]:
    folder = tmp_path_factory.mktemp("netbackup-api")
    _stand_ins(folder)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loaded = {}
    for name in FILES:
        shutil.copy(REFERENCE / name, folder / name)
        with (folder / name).open() as stream:
            document = yaml.load(stream, Loader=loader)
        path = SchemaPath.from_dict(document, base_uri=(folder / name).as_uri())
        config = Config(spec_validator_cls=None, extra_media_type_deserializers={MEDIA_TYPE: _json})
        loaded[name] = OpenAPI(path, config=config)
    return loaded


@pytest.fixture(scope="module")
def master():
    timeline = Timeline(load("restore"))
    list(timeline.messages())
    return timeline.masters["primary"]


class Recorder:
    """Sends requests to the emulated master and keeps each answer to validate."""

    def __init__(self, responder: CommandResponder) -> None:
        self.responder = responder
        self.token = ""
        self.answers: list[tuple[str, str, str, Answer]] = []

    def __call__(self, spec: str, method: str, target: str, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
        sent = {"Accept": V12, "Content-Type": V12, **({"Authorization": self.token} if self.token else {}), **(headers or {})}
        raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = self.responder.handle(method, target, sent, raw)
        self.answers.append((spec, method, target, answer))
        return answer


def exercise(recorder: Recorder, master) -> None:
    """Every answered path, with its successes and errors."""
    r = recorder
    r("gateway.yaml", "POST", "/netbackup/login", {"userName": "u"})  # 400
    r("gateway.yaml", "POST", "/netbackup/login", {"userName": "admin", "password": "wrong"})  # 401
    r(
        "gateway.yaml",
        "POST",
        "/netbackup/login",
        {"userName": "u", "password": "p"},
        {"Content-Type": "application/vnd.netbackup+json;version=99.0"},
    )
    r(
        "gateway.yaml",
        "POST",
        "/netbackup/login",
        {"userName": "u", "password": "p"},
        {"Accept": "application/vnd.netbackup+json;version=99.0"},
    )
    r("admin.yaml", "GET", "/netbackup/admin/jobs")  # 401, before the login
    login = r("gateway.yaml", "POST", "/netbackup/login", {"domainType": "vx", "userName": "admin", "password": "s3cret"})
    r.token = login.body["token"]
    first = r("admin.yaml", "GET", "/netbackup/admin/jobs?page[limit]=3")
    r("admin.yaml", "GET", "/netbackup/" + first.body["links"]["next"]["href"].split("/netbackup/", 1)[1])
    r(
        "admin.yaml",
        "GET",
        "/netbackup/admin/jobs?filter=(status eq 0 or status eq 1) and endTime gt 2020-01-01T00:00:00.000Z&sort=-startTime",
    )
    r("admin.yaml", "GET", "/netbackup/admin/jobs?filter=colour eq 'red'")  # 400
    r("admin.yaml", "GET", "/netbackup/admin/jobs", headers={"Accept": "application/vnd.netbackup+json;version=99.0"})  # 406
    r("admin.yaml", "DELETE", "/netbackup/admin/jobs")  # 405
    job = next(iter(master.jobs))
    r("admin.yaml", "GET", f"/netbackup/admin/jobs/{job}")
    r("admin.yaml", "GET", "/netbackup/admin/jobs/999999999")  # 404
    r("admin.yaml", "GET", f"/netbackup/admin/jobs/{job}", headers={"Accept": "application/vnd.netbackup+json;version=99.0"})  # 406
    r("catalog.yaml", "GET", "/netbackup/catalog/images?page[limit]=2&filter=backupTime ge 2000-01-01T00:00:00Z")
    r("catalog.yaml", "GET", "/netbackup/catalog/images")
    r("catalog.yaml", "GET", "/netbackup/catalog/images?filter=status eq 0")  # 400
    image, other, third = (i.backup_id for i in master.live_images()[:3])
    r("catalog.yaml", "GET", f"/netbackup/catalog/images/{image}")
    r("catalog.yaml", "GET", "/netbackup/catalog/images/nothing_1")  # 404
    later = {"data": {"type": "byBackupId", "attributes": {"backupId": image, "date": "2099-01-01T00:00:00.000Z"}}}
    r("catalog.yaml", "POST", "/netbackup/catalog/images/update-expiration-date", later)  # 204
    r("catalog.yaml", "POST", "/netbackup/catalog/images/update-expiration-date", {"data": {}})  # 400
    gone = {"data": {"type": "byBackupId", "attributes": {"backupId": "nothing_1", "date": "2099-01-01T00:00:00.000Z"}}}
    r("catalog.yaml", "POST", "/netbackup/catalog/images/update-expiration-date", gone)  # 404
    r("catalog.yaml", "POST", "/netbackup/catalog/images/update-expiration-date", later, {"Content-Type": "text/plain"})  # 415
    r("catalog.yaml", "POST", "/netbackup/catalog/expire-images", [{"backupId": other, "copyNumber": 1}])  # 204
    r("catalog.yaml", "POST", "/netbackup/catalog/expire-images", [{"copyNumber": 1}])  # 400
    server = {"serverName": "vc01.example.test", "vmType": "VMWARE_VIRTUAL_CENTER_SERVER", "userId": "svc", "password": "pw", "port": 443}
    r("config.yaml", "POST", "/netbackup/config/servers/vmservers", server)  # 201
    r("config.yaml", "POST", "/netbackup/config/servers/vmservers", server)  # 400 duplicate
    r("config.yaml", "GET", "/netbackup/config/servers/vmservers")
    r("config.yaml", "GET", "/netbackup/config/servers/vmservers", headers={"Accept": "text/html"})  # 406
    r("config.yaml", "GET", "/netbackup/config/servers/vmservers/vc01.example.test")
    r("config.yaml", "GET", "/netbackup/config/servers/vmservers/nope")  # 404
    r("config.yaml", "DELETE", "/netbackup/config/servers/vmservers/vc01.example.test")  # 204
    r("config.yaml", "DELETE", "/netbackup/config/servers/vmservers/vc01.example.test")  # 404
    client = master.images[third].client_name
    for workload in ("vmware", "ahv", "rhv"):
        point = {"data": {"type": "recoveryRequest", "attributes": {"recoveryPoint": {"client": client}}}}
        r("recovery.yaml", "POST", f"/netbackup/recovery/workloads/{workload}/scenarios/full-vm/recover", point)  # 201
    by_id = {"data": {"type": "recoveryRequest", "attributes": {"recoveryPoint": {"backupId": third}}}}
    r("recovery.yaml", "POST", "/netbackup/recovery/workloads/hyperv/scenarios/full-vm/recover", by_id)  # 201
    r("recovery.yaml", "POST", "/netbackup/recovery/workloads/vmware/scenarios/full-vm/recover", {"data": {}})  # 400
    none = {"data": {"type": "recoveryRequest", "attributes": {"recoveryPoint": {"client": "nobody"}}}}
    r("recovery.yaml", "POST", "/netbackup/recovery/workloads/vmware/scenarios/full-vm/recover", none)  # 404
    r("recovery.yaml", "GET", "/netbackup/recovery/workloads/vmware/scenarios/full-vm/recover")  # 405
    r.token = "forged"
    r("recovery.yaml", "POST", "/netbackup/recovery/workloads/vmware/scenarios/full-vm/recover", by_id)  # 401


def validate(spec: OpenAPI, method: str, target: str, answer: Answer) -> str:
    """Validate one answer; returns how (``spec``, or ``error body`` where the spec lists no such status)."""
    path = target.partition("?")[0]
    request = MockRequest(SERVER, method.lower(), path, args={}, headers={})
    data = b"" if answer.body is None else json.dumps(answer.body).encode()
    content_type = answer.headers["content-type"] if answer.body is not None else ""
    response = MockResponse(data, status_code=answer.status, headers={}, content_type=content_type)
    try:
        spec.validate_response(request, response)
    except Exception as error:  # openapi-core's errors share no base more precise than this
        if not any(kind in f"{type(error).__name__} {error.__cause__!r}" for kind in ("ResponseNotFound", "OperationNotFound")):
            raise AssertionError(
                f"{method} {target} -> {answer.status}: {error!r} {getattr(error, '__cause__', None)!r}\n{answer.body}"
            ) from error
        # the spec lists no such status or method for the path (e.g. 401 on GET /admin/jobs):
        # NetBackup's error body still holds
        jsonschema.validate(answer.body, ERROR_SCHEMA)
        return "error body"
    return "spec"


def test_every_answer_validates_against_the_openapi_files(specs, master) -> None:
    responder = CommandResponder(master, profile="10.5", credentials={"admin": "s3cret"}, rng=random.Random(5))
    recorder = Recorder(responder)
    exercise(recorder, master)
    how = {}
    for spec, method, target, answer in recorder.answers:
        how[(method, target.split("?")[0], answer.status)] = validate(specs[spec], method, target, answer)
    statuses = {status for (_, _, status) in how}
    assert statuses >= {200, 201, 204, 400, 401, 404, 405, 406, 415}
    assert sum(1 for v in how.values() if v == "spec") >= 30, how


def test_an_invented_attribute_fails_validation(specs, master) -> None:
    """The validation can fail: an answer with today's inventions is refused."""
    responder = CommandResponder(master, profile="10.5", rng=random.Random(5))
    recorder = Recorder(responder)
    recorder.token = recorder("gateway.yaml", "POST", "/netbackup/login", {"userName": "u", "password": "p"}).body["token"]
    answer = recorder("admin.yaml", "GET", f"/netbackup/admin/jobs/{next(iter(master.jobs))}")
    answer.body["data"]["attributes"]["scheduleType"] = "ST_FULL"
    with pytest.raises(AssertionError, match=r"ST_FULL"):
        validate(specs["admin.yaml"], "GET", "/netbackup/admin/jobs/1", answer)
