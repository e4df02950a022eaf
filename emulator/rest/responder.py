"""The emulated master's REST API: one request in, NetBackup's answer out.

Served two ways from the same state: inside NBWSS COMMAND messages (:meth:`CommandResponder.answer`)
and over HTTPS on port 1556 (:mod:`emulator.rest.https`), both through :meth:`CommandResponder.handle`.
Paths (under ``/netbackup``), as Veritas' OpenAPI files describe them:

* ``POST /login``: a JWT (no Authorization needed); 401 for wrong credentials when some are set;
* ``GET /admin/jobs`` (offset-paged before API 9.0, cursor-paged from it) and ``GET /admin/jobs/{jobId}``;
* ``GET /catalog/images`` (the last 24 hours unless the filter says otherwise), ``GET /catalog/images/{backupId}``,
  ``POST /catalog/images/update-expiration-date`` and ``POST /catalog/expire-images``;
* ``GET/POST /config/servers/vmservers``, ``GET/DELETE /config/servers/vmservers/{serverName}``;
* ``POST /recovery/workloads/{vmware,hyperv,ahv,rhv}/scenarios/full-vm/recover``: a restore whose notifications follow.

Everything but login needs ``Authorization`` with an issued token (401); unknown ids give 404,
bad bodies, parameters or filters 400, an unknown path 404, a known path with another method 405,
an API version the release does not speak 406 (``Accept``) or 415 (``Content-Type``). Errors carry
NetBackup's body (:class:`~emulator.rest.errors.HttpError`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from emulator.domain.master import MasterServer
from emulator.domain.model import Image
from emulator.protocol.messages import envelope
from emulator.rest import resources
from emulator.rest.errors import HttpError
from emulator.rest.odata import Filter, iso_epoch, parse_filter
from emulator.rest.paging import cursor_page, offset_page
from emulator.rest.versions import CURSOR_JOBS_FROM, DEFAULT_PROFILE, Release, media_type

API_ROOT = "/netbackup"
#: The recovery paths answered: VM workloads whose recovery point names a client or a backup id.
RECOVERY_WORKLOADS = ("vmware", "hyperv", "ahv", "rhv")
#: ``date`` NetBackup treats as "expire now" in update-expiration-date (bpexpdate 0).
_EXPIRE_NOW = "1970-01-01T00:00:00.000Z"
_DAY = 86_400

Handler = Callable[..., tuple[int, Any]]


@dataclass(slots=True)
class Request:
    """One REST request, parsed: path under ``/netbackup``, query, lower-case headers, body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes
    api: str | None = None  # the negotiated API version (None: plain JSON)
    base: str = API_ROOT  # what links start with

    def json(self) -> Any:
        """The body as JSON (None if empty); a body that is not JSON is NetBackup's 400."""
        if not self.raw_body.strip():
            return None
        try:
            return json.loads(self.raw_body)
        except ValueError as error:
            raise HttpError(400, "the request body is not valid JSON", details=[str(error)]) from None

    @property
    def api_major(self) -> int:
        return 0 if self.api is None else int(self.api.split(".")[0])


@dataclass(slots=True)
class Answer:
    """What the master answers: status, headers (lower-case names) and a JSON body or None."""

    status: int
    headers: dict[str, str]
    body: Any


@dataclass(slots=True)
class CommandExchange:
    """One COMMAND request and the master's answer, for reports."""

    request: dict[str, Any]
    response: dict[str, Any]
    status: int


@dataclass
class CommandResponder:
    """The REST API of one emulated master, answering from its state.

    ``profile`` is the NetBackup release (``--nbu-version``): which API versions it speaks and
    its default. ``credentials`` maps user names to passwords; when empty any non-empty user
    and password log in (the emulator's default), otherwise others get 401.
    """

    master: MasterServer
    profile: str = DEFAULT_PROFILE
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    token_validity: int = 86_400
    credentials: dict[str, str] = field(default_factory=dict)
    exchanges: list[CommandExchange] = field(default_factory=list)
    _tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    _secret: bytes = b""

    def __post_init__(self) -> None:
        self.release = Release.of(self.profile)
        self._secret = self.rng.randbytes(32)
        vm_recover = "|".join(RECOVERY_WORKLOADS)
        self._routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (re.compile(r"/login"), {"POST": self._login}),
            (re.compile(r"/admin/jobs"), {"GET": self._jobs}),
            (re.compile(r"/admin/jobs/(?P<job_id>[^/]+)"), {"GET": self._job}),
            (re.compile(r"/catalog/images"), {"GET": self._images}),
            (re.compile(r"/catalog/images/update-expiration-date"), {"POST": self._update_expiration}),
            (re.compile(r"/catalog/expire-images"), {"POST": self._expire_images}),
            (re.compile(r"/catalog/images/(?P<backup_id>[^/]+)"), {"GET": self._image}),
            (re.compile(r"/config/servers/vmservers"), {"GET": self._vmservers, "POST": self._add_vmserver}),
            (re.compile(r"/config/servers/vmservers/(?P<name>[^/]+)"), {"GET": self._vmserver, "DELETE": self._delete_vmserver}),
            (re.compile(rf"/recovery/workloads/(?P<workload>{vm_recover})/scenarios/full-vm/recover"), {"POST": self._recover}),
        ]

    @property
    def content_type(self) -> str:
        """The Content-Type of answers in the release's default API version."""
        return media_type(None if self.release.newest is None else f"{self.release.newest}.0")

    def issued(self, token: str) -> bool:
        """Whether ``token`` is a login token of this master that has not expired."""
        expiry = self._tokens.get(token)
        return expiry is not None and expiry > self.clock()

    # -- the two faces -----------------------------------------------------------------

    def answer(self, message: dict[str, Any]) -> dict[str, Any]:
        """The COMMAND RESPONSE to a (schema-valid) COMMAND REQUEST."""
        payload = message["payload"]
        parameters = payload.get("parameters")
        raw = b"" if parameters is None else parameters.encode() if isinstance(parameters, str) else json.dumps(parameters).encode()
        result = self.handle(payload["method"], payload["uri"], payload.get("headers", {}), raw)
        response = envelope(
            message["id"],
            "COMMAND",
            "RESPONSE",
            int(time.time()),
            {"statusCode": result.status, "headers": result.headers, "body": result.body},
        )
        self.exchanges.append(CommandExchange(message, response, result.status))
        return response

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes = b"", *, base: str = API_ROOT) -> Answer:
        """NetBackup's answer to ``method target`` (``target`` starts with ``/netbackup``)."""
        lower = {k.lower(): v for k, v in headers.items()}
        api: str | None = self.release.negotiate(None, None, False)
        try:
            api = self.release.negotiate(lower.get("accept"), lower.get("content-type"), bool(body.strip()))
            status, answer = self._dispatch(method.upper(), target, lower, body, api, base)
        except HttpError as error:
            status, answer = error.status, error.body()
        return Answer(status, self._headers(api), answer)

    def _dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes, api: str | None, base: str) -> tuple[int, Any]:
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        if not path.startswith(API_ROOT + "/"):
            raise HttpError(404, f"no NetBackup resource at {path}")
        path = path[len(API_ROOT) :]
        for pattern, methods in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler = methods.get(method)
            if handler is None:
                raise HttpError(405, f"{method} is not allowed on {API_ROOT}{path}", details=[f"allowed: {', '.join(methods)}"])
            request = Request(method, path, dict(parse_qsl(split.query, keep_blank_values=True)), headers, body, api, base)
            if handler != self._login:
                self._authorize(request)
            return handler(request, **{k: unquote(v) for k, v in match.groupdict().items()})
        raise HttpError(404, f"no NetBackup resource at {API_ROOT}{path}")

    def _authorize(self, request: Request) -> None:
        token = request.headers.get("authorization", "")
        if token.lower().startswith("bearer ") and _api_number(request.api) >= BEARER_FROM_API:
            token = token[7:]
        if not token:
            raise HttpError(401, "the Authorization header is missing")
        if not self.issued(token):
            raise HttpError(401, "the Authorization token is not valid or has expired")

    def _headers(self, api: str | None) -> dict[str, str]:
        return {
            "date": formatdate(self.clock(), usegmt=True),
            "cache-control": "private",
            "server": "NetBackup",
            "content-type": media_type(api),
        }

    # -- login -------------------------------------------------------------------------

    def _login(self, request: Request) -> tuple[int, Any]:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("userName"), str) or not isinstance(body.get("password"), str):
            raise HttpError(400, "login needs userName and password", details=["userName and password are required strings"])
        user, password = body["userName"], body["password"]
        if not user or not password:
            raise HttpError(400, "login needs userName and password", details=["userName and password must not be empty"])
        if self.credentials and not hmac.compare_digest(self.credentials.get(user, "\0").encode(), password.encode()):
            raise HttpError(401, "the user name or password is wrong")
        now = self.clock()
        token = self._jwt({"sub": user, "iss": self.master.hostname, "iat": int(now), "exp": int(now) + self.token_validity})
        self._tokens[token] = now + self.token_validity
        return 201, {"token": token, "tokenType": "BEARER", "validity": self.token_validity}

    def _jwt(self, claims: dict[str, Any]) -> str:
        def part(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        claims = {**claims, "jti": self.rng.getrandbits(64)}
        head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + part(json.dumps(claims).encode())
        return head + "." + part(hmac.new(self._secret, head.encode(), hashlib.sha256).digest())

    # -- jobs ----------------------------------------------------------------------------

    def _jobs(self, request: Request) -> tuple[int, Any]:
        now = self.master.now()
        jobs = list(self.master.jobs.values())  # a snapshot: the master may run on another thread
        found = [resources.job_resource(j, self.master, now, request.base) for j in jobs]
        found = self._filtered(request, found, resources.FILTER_JOBS)
        if request.api_major >= CURSOR_JOBS_FROM:
            page = cursor_page(
                found,
                request.query,
                request.base,
                request.path,
                sortable=resources.SORT_JOBS,
                default_sort="-jobId",
                identity=lambda r: int(r["attributes"]["jobId"]),
            )
            return 200, page
        found.sort(key=lambda r: int(r["attributes"]["jobId"]), reverse=True)
        return 200, offset_page(found, request.query, request.base, request.path, min_limit=0)

    def _job(self, request: Request, job_id: str) -> tuple[int, Any]:
        job = self.master.jobs.get(int(job_id)) if job_id.isdigit() else None
        if job is None:
            raise HttpError(404, f"job {job_id} does not exist")
        return 200, {"data": resources.job_resource(job, self.master, self.master.now(), request.base)}

    # -- images --------------------------------------------------------------------------

    def _images(self, request: Request) -> tuple[int, Any]:
        images = sorted(self.master.live_images(), key=lambda i: i.backup_time, reverse=True)
        found = [resources.image_resource(i, self.master, request.base) for i in images]
        expression = request.query.get("filter", "").strip()
        checked = parse_filter(expression, resources.FILTER_IMAGES) if expression else None
        now = self.master.now()
        # NetBackup's default window: backupTime ge 24 hours ago and le now, unless the filter bounds it
        low = None if checked is not None and checked.bounded("backupTime", "ge", "gt") else now - _DAY
        high = None if checked is not None and checked.bounded("backupTime", "le", "lt") else now
        found = [
            r
            for r in found
            if (checked is None or checked.test(r["attributes"]))
            and (low is None or iso_epoch(r["attributes"]["backupTime"]) >= low)
            and (high is None or iso_epoch(r["attributes"]["backupTime"]) <= high)
        ]
        return 200, offset_page(found, request.query, request.base, request.path)

    def _image(self, request: Request, backup_id: str) -> tuple[int, Any]:
        return 200, {"data": resources.image_resource(self._live_image(backup_id), self.master, request.base)}

    def _update_expiration(self, request: Request) -> tuple[int, Any]:
        body = request.json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict) or "type" not in data:
            raise HttpError(400, "the body needs data.type and data.attributes")
        if data["type"] != "byBackupId":
            raise HttpError(400, f"update by {data['type']!r} is not emulated", details=["the emulated master updates byBackupId"])
        attributes = data["attributes"]
        backup_id, date = attributes.get("backupId"), attributes.get("date")
        if not isinstance(backup_id, str) or not isinstance(date, str):
            raise HttpError(
                400, "byBackupId needs attributes.backupId and attributes.date", details=["date is ISO 8601, e.g. " + _EXPIRE_NOW]
            )
        try:
            when = iso_epoch(date)
        except ValueError:
            raise HttpError(400, f"date {date!r} is not an ISO 8601 date-time") from None
        image = self._live_image(backup_id)
        if when <= self.master.now():
            self.master.expire(image)  # a DELETE notification follows
        else:
            image.retention_seconds = max(0, int(when) - image.backup_time)
        return 204, None

    def _expire_images(self, request: Request) -> tuple[int, Any]:
        selections = self._selections(request)
        images = []
        for item in selections:
            backup_id = item.get("backupId") if isinstance(item, dict) else None
            if not isinstance(backup_id, str):
                raise HttpError(400, "every selection needs a backupId", details=[json.dumps(item)])
            image = self.master.images.get(backup_id)
            if image is None or image.deleted:
                raise HttpError(400, f"image {backup_id} does not exist", details=[f"backupId {backup_id}"])
            images.append(image)
        for image in images:
            self.master.expire(image)
        return 204, None

    @staticmethod
    def _selections(request: Request) -> list[Any]:
        """The JSON array of ``selectionsFile``: a multipart part over HTTPS, the body itself in a COMMAND."""
        content_type = request.headers.get("content-type", "")
        raw = request.raw_body
        if content_type.lower().startswith("multipart/"):
            from email.parser import BytesParser  # noqa: PLC0415 - forms are rare: the email package only for them
            from email.policy import HTTP  # noqa: PLC0415

            message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
            parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "selectionsFile"]
            if not parts:
                raise HttpError(400, "the form has no selectionsFile part")
            payload = parts[0].get_payload(decode=True)
            raw = payload if isinstance(payload, bytes) else b""
        try:
            selections = json.loads(raw) if raw.strip() else None
        except ValueError as error:
            raise HttpError(400, "selectionsFile is not valid JSON", details=[str(error)]) from None
        if not isinstance(selections, list) or not selections:
            raise HttpError(400, "selectionsFile must be a non-empty JSON array of {backupId, copyNumber}")
        return selections

    def _live_image(self, backup_id: str) -> Image:
        image = self.master.images.get(backup_id)
        if image is None or image.deleted:
            raise HttpError(404, f"image {backup_id} does not exist")
        return image

    # -- VMware servers ------------------------------------------------------------------

    def _vmservers(self, request: Request) -> tuple[int, Any]:
        found = [resources.vmserver_resource(s, request.base) for s in list(self.master.vm_servers.values())]
        expression = request.query.get("filter", "").strip()
        if expression:
            checked = parse_filter(expression, resources.FILTER_VMSERVERS)
            found = [r for r in found if checked.test({**r["attributes"]["vmServer"], "serverType": r["attributes"]["vmServer"]["vmType"]})]
        return 200, {"data": found}

    def _vmserver(self, request: Request, name: str) -> tuple[int, Any]:
        server = self.master.vm_servers.get(name)
        if server is None:
            raise HttpError(404, f"VM server {name} is not registered")
        return 200, {"data": resources.vmserver_resource(server, request.base)}

    def _add_vmserver(self, request: Request) -> tuple[int, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object")
        missing = [k for k in ("serverName", "vmType", "userId", "password") if not isinstance(body.get(k), str) or not body[k]]
        if missing:
            raise HttpError(400, "required fields are missing", details=[f"{k} is required" for k in missing])
        if body["vmType"] not in VM_TYPES:
            raise HttpError(400, f"vmType {body['vmType']!r} is not a VM server type", details=[f"one of {', '.join(VM_TYPES)}"])
        port = body.get("port", 0)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise HttpError(400, "port must be a number from 0 to 65535")
        name = body["serverName"]
        if name in self.master.vm_servers:
            raise HttpError(400, f"VM server {name} already exists", details=["the entity already exists"])
        # the password is not kept: NetBackup never gives it back
        self.master.vm_servers[name] = {"serverName": name, "vmType": body["vmType"], "userId": body["userId"], "port": port}
        return 201, None

    def _delete_vmserver(self, request: Request, name: str) -> tuple[int, Any]:
        if self.master.vm_servers.pop(name, None) is None:
            raise HttpError(404, f"VM server {name} is not registered")
        return 204, None

    # -- recovery ------------------------------------------------------------------------

    def _recover(self, request: Request, workload: str) -> tuple[int, Any]:
        body = request.json()
        data = body.get("data") if isinstance(body, dict) else None
        attributes = data.get("attributes") if isinstance(data, dict) else None
        point = attributes.get("recoveryPoint") if isinstance(attributes, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("type") not in ("recoveryRequest", "instantRecoveryRequest")
            or not isinstance(point, dict)
        ):
            raise HttpError(400, "the body needs data.type recoveryRequest and data.attributes.recoveryPoint")
        backup_id, client = point.get("backupId"), point.get("client")
        if backup_id is not None and client is not None:
            raise HttpError(400, "recoveryPoint takes client or backupId, not both")
        if workload == "hyperv" and backup_id is None:
            raise HttpError(400, "recoveryPoint.backupId is required")
        if isinstance(backup_id, str):
            image = self._live_image(backup_id)
        elif isinstance(client, str):
            images = [i for i in self.master.restorable_images() if i.client_name == client]
            if not images:
                raise HttpError(404, f"no backup image of client {client} to recover from")
            image = images[-1]
        else:
            raise HttpError(400, "recoveryPoint needs client or backupId")
        if not image.has_local_copy:
            raise HttpError(404, f"image {image.backup_id} has no local copy to recover from")
        operation = self.master.restore(image, status=0)
        job_id = operation.jobs[0].job_id
        link = f"{request.base}/admin/jobs/{job_id}"
        return 201, {
            "data": {"type": "recoveryResponse", "id": job_id, "attributes": {"msg": "Recovery job started successfully"}},
            "relationships": {"recoveryJob": {"links": {"self": link, "related": link}, "data": {"type": "job", "id": job_id}}},
        }

    # -- filters ---------------------------------------------------------------------------

    @staticmethod
    def _filtered(request: Request, found: list[dict[str, Any]], fields: Mapping[str, Any]) -> list[dict[str, Any]]:
        expression = request.query.get("filter", "").strip()
        if not expression:
            return found
        checked: Filter = parse_filter(expression, fields)
        return [r for r in found if checked.test(r["attributes"])]


VM_TYPES = (
    "VMWARE_VIRTUAL_CENTER_SERVER",
    "VMWARE_ESX_SERVER",
    "VMWARE_RESTORE_ESX_SERVER",
    "VMWARE_CLOUD_DIRECTOR",
    "HYPERV_SERVER",
    "SYSTEM_CENTER_VMM_SERVER",
    "HYPERV_CLUSTER_SERVER",
    "HYPERSCALE_SERVER",
    "RED_HAT_VIRTUALIZATION_MANAGER",
    "OPENSTACK_HORIZON_SERVER",
)


#: The first API version whose published files name an HTTP bearer scheme beside the plain token (10.5's: API 12.0;
#: older releases' files are not at hand, so before it the token is taken as it is, as NetBackup's guides show it).
BEARER_FROM_API = 12.0


def _api_number(api: str | None) -> float:
    try:
        return float(api) if api else 0.0
    except ValueError:
        return 0.0
