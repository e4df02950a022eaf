"""Answers to COMMAND requests: NetBackup REST calls served from the emulated master's state.

Like moto's ``responses.py``: parse the request, read or change the model, and
serialise the result the way the NetBackup REST API does (JSON:API documents,
``page[limit]``/``page[offset]`` paging, ``filter`` expressions, ISO 8601 times).
What an endpoint reads back is what it was told in notifications, because both
come from the same :class:`~emulator.domain.master.MasterServer`.

Routes:

* ``POST /netbackup/login``: a JWT-like token (no Authorization needed);
* ``GET /netbackup/admin/jobs`` and ``/netbackup/admin/jobs/{jobId}``;
* ``GET /netbackup/catalog/images`` and ``/netbackup/catalog/images/{backupId}``;
* ``POST /netbackup/catalog/images/{backupId}/expire``: expires the image (a DELETE notification follows);
* ``GET/POST /netbackup/config/servers/vmservers`` and ``GET .../vmservers/{serverName}``;
* ``POST /netbackup/recovery/workloads/{workload}/scenarios/{scenario}/recover``: starts a
  restore whose notifications follow.

Everything but login needs ``Authorization`` with an issued token (401); unknown
ids give 404, bad ``parameters`` or ``filter`` 400, an unknown path 404 and a
known path with another method 405.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from emulator.domain.master import MasterServer
from emulator.domain.model import Image, Job
from emulator.exceptions import NbwssError
from emulator.protocol.messages import envelope

#: NetBackup release -> the Content-Type its REST API answers with (8.0 documents plain JSON).
VERSION_PROFILES: dict[str, str] = {
    "8.0": "application/json",
    "8.1": "application/vnd.netbackup+json;version=1.0",
    "8.2": "application/vnd.netbackup+json;version=3.0",
    "9.0": "application/vnd.netbackup+json;version=5.0",
    "10.0": "application/vnd.netbackup+json;version=7.0",
}
DEFAULT_PROFILE = "8.1"
MAX_PAGE = 100


@dataclass(slots=True)
class Request:
    """A COMMAND REQUEST payload, parsed."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any


class HttpError(NbwssError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class CommandExchange:
    """One COMMAND request and the master's answer, for reports."""

    request: dict[str, Any]
    response: dict[str, Any]
    status: int


@dataclass
class CommandResponder:
    """Serves COMMAND requests for one emulated master."""

    master: MasterServer
    profile: str = DEFAULT_PROFILE
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    token_validity: int = 86_400
    exchanges: list[CommandExchange] = field(default_factory=list)
    _tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    _secret: bytes = b""

    def __post_init__(self) -> None:
        if self.profile not in VERSION_PROFILES:
            raise ValueError(f"unknown NetBackup version profile {self.profile!r}; known: {', '.join(VERSION_PROFILES)}")
        self._secret = self.rng.randbytes(32)
        self._routes: list[tuple[re.Pattern[str], dict[str, Callable[..., tuple[int, Any]]]]] = [
            (re.compile(r"/netbackup/login"), {"POST": self._login}),
            (re.compile(r"/netbackup/admin/jobs"), {"GET": self._jobs}),
            (re.compile(r"/netbackup/admin/jobs/(?P<job_id>[^/]+)"), {"GET": self._job}),
            (re.compile(r"/netbackup/catalog/images"), {"GET": self._images}),
            (re.compile(r"/netbackup/catalog/images/(?P<backup_id>[^/]+)"), {"GET": self._image}),
            (re.compile(r"/netbackup/catalog/images/(?P<backup_id>[^/]+)/expire"), {"POST": self._expire}),
            (re.compile(r"/netbackup/config/servers/vmservers"), {"GET": self._vmservers, "POST": self._add_vmserver}),
            (re.compile(r"/netbackup/config/servers/vmservers/(?P<name>[^/]+)"), {"GET": self._vmserver}),
            (
                re.compile(r"/netbackup/recovery/workloads/(?P<workload>[^/]+)/scenarios/(?P<scenario>[^/]+)/recover"),
                {"POST": self._recover},
            ),
        ]

    @property
    def content_type(self) -> str:
        return VERSION_PROFILES[self.profile]

    def issued(self, token: str) -> bool:
        """Whether ``token`` is a login token of this master that has not expired."""
        expiry = self._tokens.get(token)
        return expiry is not None and expiry > self.clock()

    def answer(self, message: dict[str, Any]) -> dict[str, Any]:
        """The COMMAND RESPONSE to a (schema-valid) COMMAND REQUEST."""
        payload = message["payload"]
        try:
            status, body = self._dispatch(payload)
        except HttpError as error:
            status, body = error.status, {"errorCode": error.status, "errorMessage": str(error)}
        response = envelope(
            message["id"],
            "COMMAND",
            "RESPONSE",
            int(time.time()),
            {"statusCode": status, "headers": self._headers(), "body": body},
        )
        self.exchanges.append(CommandExchange(message, response, status))
        return response

    def _dispatch(self, payload: dict[str, Any]) -> tuple[int, Any]:
        split = urlsplit(payload["uri"])
        path = split.path.rstrip("/") or "/"
        for pattern, methods in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler = methods.get(payload["method"])
            if handler is None:
                raise HttpError(405, f"{payload['method']} is not allowed on {path}")
            headers = {k.lower(): v for k, v in payload.get("headers", {}).items()}
            body = self._body(payload.get("parameters"))
            request = Request(payload["method"], path, dict(parse_qsl(split.query)), headers, body)
            if handler != self._login:
                self._authorize(request)
            return handler(request, **{k: unquote(v) for k, v in match.groupdict().items()})
        raise HttpError(404, f"no NetBackup resource at {path}")

    @staticmethod
    def _body(parameters: str | None) -> Any:
        if parameters is None or parameters == "":
            return None
        try:
            return json.loads(parameters)
        except ValueError as error:
            raise HttpError(400, f"parameters is not JSON: {error}") from None

    def _authorize(self, request: Request) -> None:
        token = request.headers.get("authorization", "")
        if not token:
            raise HttpError(401, "the Authorization header is missing")
        if not self.issued(token):
            raise HttpError(401, "the Authorization token is not valid")

    def _headers(self) -> dict[str, str]:
        return {
            "date": formatdate(self.clock(), usegmt=True),
            "cache-control": "private",
            "server": "NetBackup",
            "content-type": self.content_type,
        }

    # -- login -------------------------------------------------------------------------

    def _login(self, request: Request) -> tuple[int, Any]:
        body = request.body
        if not isinstance(body, dict) or not body.get("userName") or not body.get("password"):
            raise HttpError(400, "login needs userName and password in parameters")
        now = self.clock()
        token = self._jwt({"sub": body["userName"], "iss": self.master.hostname, "iat": int(now), "exp": int(now) + self.token_validity})
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
        jobs = sorted(self.master.jobs.values(), key=lambda j: j.job_id, reverse=True)
        return 200, self._page(request, [_job_resource(j, self.master) for j in jobs], "job")

    def _job(self, request: Request, job_id: str) -> tuple[int, Any]:
        job = self.master.jobs.get(int(job_id)) if job_id.isdigit() else None
        if job is None:
            raise HttpError(404, f"job {job_id} does not exist")
        return 200, {"data": _job_resource(job, self.master)}

    # -- images --------------------------------------------------------------------------

    def _images(self, request: Request) -> tuple[int, Any]:
        images = sorted(self.master.live_images(), key=lambda i: i.backup_time, reverse=True)
        return 200, self._page(request, [_image_resource(i) for i in images], "image")

    def _image(self, request: Request, backup_id: str) -> tuple[int, Any]:
        return 200, {"data": _image_resource(self._live_image(backup_id))}

    def _expire(self, request: Request, backup_id: str) -> tuple[int, Any]:
        self.master.expire(self._live_image(backup_id))
        return 204, None

    def _live_image(self, backup_id: str) -> Image:
        image = self.master.images.get(backup_id)
        if image is None or image.deleted:
            raise HttpError(404, f"image {backup_id} does not exist")
        return image

    # -- VMware servers ------------------------------------------------------------------

    def _vmservers(self, request: Request) -> tuple[int, Any]:
        servers = [_vmserver_resource(s) for s in self.master.vm_servers.values()]
        return 200, self._page(request, servers, "vmserver")

    def _vmserver(self, request: Request, name: str) -> tuple[int, Any]:
        server = self.master.vm_servers.get(name)
        if server is None:
            raise HttpError(404, f"VM server {name} is not registered")
        return 200, {"data": _vmserver_resource(server)}

    def _add_vmserver(self, request: Request) -> tuple[int, Any]:
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("serverName"), str) or not body["serverName"]:
            raise HttpError(400, "parameters must hold serverName")
        name = body["serverName"]
        if name in self.master.vm_servers:
            raise HttpError(409, f"VM server {name} is already registered")
        port = body.get("port", 0)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise HttpError(400, "port must be a number from 0 to 65535")
        self.master.vm_servers[name] = {
            "serverName": name,
            "vmType": body.get("vmType", "VMWARE_VIRTUAL_CENTER_SERVER"),
            "userId": body.get("userId", ""),
            "port": port,
            "proxyServerName": body.get("proxyServerName", ""),
        }  # the password is not kept, as NetBackup never returns it
        return 201, None

    # -- recovery ------------------------------------------------------------------------

    def _recover(self, request: Request, workload: str, scenario: str) -> tuple[int, Any]:
        attributes = (request.body or {}).get("data", {}).get("attributes", {}) if isinstance(request.body, dict) else {}
        point = attributes.get("recoveryPoint", attributes) if isinstance(attributes, dict) else {}
        backup_id = point.get("backupId") if isinstance(point, dict) else None
        client = point.get("client") if isinstance(point, dict) else None
        if backup_id is None and client is None:
            raise HttpError(400, "parameters must name data.attributes.recoveryPoint.backupId or .client")
        if backup_id is not None:
            image = self._live_image(backup_id)
        else:
            images = [i for i in self.master.restorable_images() if i.client_name == client]
            if not images:
                raise HttpError(404, f"no restorable image of client {client}")
            image = images[-1]
        if not image.has_local_copy:
            raise HttpError(409, f"image {image.backup_id} has no local copy to restore from")
        operation = self.master.restore(image, status=0)
        job_id = operation.jobs[0].job_id
        return 201, {"data": {"type": "recoveryResponse", "id": str(job_id), "attributes": {"msg": "Recovery job started successfully"}}}

    # -- paging and filters ------------------------------------------------------------------

    def _page(self, request: Request, resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        query = request.query
        expression = query.get("filter")
        if expression:
            test = _compile_filter(expression)
            resources = [r for r in resources if test(r["attributes"])]
        limit = _query_int(query, "page[limit]", 10, 1, MAX_PAGE)
        offset = _query_int(query, "page[offset]", 0, 0, None)
        page = resources[offset : offset + limit]
        meta = {
            "pagination": {
                "offset": offset,
                "limit": limit,
                "count": len(resources),
                "page": offset // limit,
                "pages": -(-len(resources) // limit),
            }
        }
        links: dict[str, Any] = {"self": {"href": request.path}}
        if offset + limit < len(resources):
            links["next"] = {"href": f"{request.path}?page[offset]={offset + limit}&page[limit]={limit}"}
        return {"data": page, "meta": meta, "links": links}


def _query_int(query: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        bound = f" and {high}" if high is not None else ""
        raise HttpError(400, f"{name} must be a whole number between {low}{bound}, not {raw!r}")
    return int(raw)


_CLAUSE = re.compile(r"\s*(?P<field>[A-Za-z]+)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+(?P<value>'[^']*'|-?[0-9]+)\s*")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _compile_filter(expression: str) -> Callable[[dict[str, Any]], bool]:
    """The NetBackup REST ``filter`` subset: ``field op value`` clauses joined by ``and``."""
    tests = []
    for clause in re.split(r"\s+and\s+", expression.strip()):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise HttpError(400, f"cannot parse filter clause {clause!r} (expected e.g. jobType eq 'BACKUP')")
        name, op, raw = match.group("field"), match.group("op"), match.group("value")
        value: Any = raw[1:-1] if raw.startswith("'") else int(raw)
        tests.append((name, _OPS[op], value))

    def test(attributes: dict[str, Any]) -> bool:
        for name, op, value in tests:
            if name not in attributes:
                raise HttpError(400, f"cannot filter on {name!r}")
            actual = attributes[name]
            try:
                if not op(actual, value):
                    return False
            except TypeError:
                raise HttpError(400, f"cannot compare {name} with {value!r}") from None
        return True

    return test


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def _job_resource(job: Job, master: MasterServer) -> dict[str, Any]:
    return {
        "type": "job",
        "id": str(job.job_id),
        "links": {"self": {"href": f"/admin/jobs/{job.job_id}"}},
        "attributes": {
            "jobId": job.job_id,
            "parentJobId": job.parent_job_id,
            "jobType": job.job_type,
            "policyType": job.policy_type,
            "policyName": job.policy_name,
            "scheduleType": job.schedule_type,
            "clientName": job.client_name,
            "controlHost": master.hostname,
            "state": job.state,
            "status": job.status,
            "startTime": _iso(job.start_time),
            "endTime": _iso(job.end_time),
            "backupId": job.backup_id or "",
        },
    }


def _image_resource(image: Image) -> dict[str, Any]:
    return {
        "type": "image",
        "id": image.backup_id,
        "links": {"self": {"href": f"/catalog/images/{image.backup_id}"}},
        "attributes": {
            "backupId": image.backup_id,
            "clientName": image.client_name,
            "policyType": image.client_type,
            "policyName": image.policy_name,
            "scheduleType": image.schedule_type,
            "backupTime": _iso(image.backup_time),
            "expiration": _iso(image.backup_time + image.retention_seconds),
            "kilobytes": image.size_kb,
            "copyCount": len(image.copies),
            "replicaCopies": sum(1 for c in image.copies if c.replica),
        },
    }


def _vmserver_resource(server: dict[str, Any]) -> dict[str, Any]:
    return {"type": "vmserver", "id": server["serverName"], "attributes": dict(server)}
