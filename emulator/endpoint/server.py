"""The reference endpoint as an asyncio WebSocket server, with switchable faults.

It is the default target of ``nbwss-emu run``, the fixture of the tests, and,
with a fault switched on, the way to prove that each contract rule catches
what it should.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import secrets
import ssl
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State as WsState

from emulator.endpoint.core import Close, EndpointSession, EndpointState, Reply
from emulator.endpoint.store import EndpointStore, StoreBug
from emulator.protocol.codec import encode
from emulator.protocol.messages import new_id
from emulator.responders import DEFAULT_PROFILE, VERSION_PROFILES

DEFAULT_MAX_SIZE = 1024 * 1024  # our decision: 1 MiB frames at most, websockets' default too


class Fault(Enum):
    """Misbehaviours the reference endpoint can switch on, to test the tester."""

    NO_ACK = "no-ack"  # never acknowledges notifications
    LATE_ACK = "late-ack"  # acknowledges after late_ack_delay
    WRONG_ID = "wrong-id"  # acknowledges with an id the master never sent
    WRONG_SUBTYPE = "wrong-subtype"  # answers with subType REQUEST instead of RESPONSE
    MALFORMED_JSON = "malformed-json"  # answers with text that is not JSON
    DUPLICATE_ACK = "duplicate-ack"  # acknowledges every notification twice
    REFUSE = "refuse"  # answers every CONNECT with valid: false
    CLOSE_MID_STREAM = "close-mid-stream"  # closes the first connection after close_after notifications
    OVERSIZED_FRAME = "oversized-frame"  # once, sends a frame larger than the master accepts
    BINARY_FRAME = "binary-frame"  # acknowledges in binary frames
    ACCEPT_ANY_TOKEN = "accept-any-token"  # says valid: true whatever the token
    NO_PONG = "no-pong"  # half-open after CONNECT: stops reading, so pings go unanswered
    STOP_READING = "stop-reading"  # stops reading after CONNECT, on every connection: TCP backpressure
    CONNECT_NOT_BOOLEAN = "connect-not-boolean"  # answers CONNECT with valid: "true", a string
    CONNECT_WRONG_ID = "connect-wrong-id"  # answers CONNECT with an id of its own
    NO_CONNECT_ANSWER = "no-connect-answer"  # opens the WebSocket but never answers CONNECT
    DROP_DUPLICATES = "drop-duplicates"  # a de-duplicating store: a notification id seen before is never acknowledged
    REFUSE_RECONNECT = "refuse-reconnect"  # accepts the first CONNECT, answers valid: false to every later one
    COMMAND_BEFORE_CONNECT = "command-before-connect"  # sends a COMMAND REQUEST before its CONNECT RESPONSE
    BEARER_AUTHORIZATION = "bearer-authorization"  # sends the login token as "Authorization: Bearer <token>"
    ACK_EMPTY_PAYLOAD = "ack-empty-payload"  # acknowledges with payload [] (the documentation shows {})
    LOWERCASE_ACK_ID = "lowercase-ack-id"  # acknowledges with the id in lower case (NetBackup sends upper case)
    # -- store bugs: acknowledged right, stored wrong (emulator.endpoint.store) --
    STORE_EARLY_UPDATE = "store-early-update"  # drops an IMAGE UPDATE whose CREATE is not stored yet (same message)
    STORE_RESENT_AS_NEW = "store-resent-as-new"  # stores a resent notification (an id already stored) again
    STORE_LOSES_NO_LOCAL_COPY = "store-loses-no-local-copy"  # keeps only the UPDATE of AIR's UPDATE + NO_LOCAL_COPY pair

    @classmethod
    def parse(cls, name: str) -> Fault:
        for fault in cls:
            if fault.value == name:
                return fault
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(f.value for f in cls)}")


@dataclass(slots=True)
class Connection:
    """One master connection to the endpoint."""

    websocket: ServerConnection
    session: EndpointSession
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    acks: int = 0


class ReferenceEndpoint:
    """A correct NBWSS endpoint on loopback; ``async with ReferenceEndpoint() as endpoint: ...``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        fault: Fault | None = None,
        late_ack_delay: float = 3.0,
        close_after: int = 3,
        close_code: int = 1011,
        max_size: int = DEFAULT_MAX_SIZE,
        oversized_bytes: int = 2 * DEFAULT_MAX_SIZE,
        max_connections: int = 64,
        probe_commands: bool = False,
        ping_interval: float | None = 20.0,
        keep: int | None = None,
        profile: str = DEFAULT_PROFILE,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token or secrets.token_hex(24)  # hex: printed for users to pass, it never begins with '-'
        self.ssl_context = ssl_context
        self.fault = fault
        self.late_ack_delay = late_ack_delay
        self.close_after = close_after
        self.close_code = close_code
        self.max_size = max_size
        self.oversized_bytes = oversized_bytes
        self.max_connections = max_connections
        self.probe_commands = probe_commands
        self.ping_interval = ping_interval
        self.keep = keep  # notifications kept per connection; None: all (for queries), 0: none (for load)
        if profile not in VERSION_PROFILES:
            raise ValueError(f"unknown NetBackup version profile {profile!r}; known: {', '.join(VERSION_PROFILES)}")
        self.profile = profile  # the NetBackup version of the masters: the Content-Type of its COMMAND requests
        self.connect_timeout = connect_timeout  # a WebSocket without a CONNECT this long is closed
        self._seen: set[str] = set()  # notification ids received, for the drop-duplicates fault
        self._accepted = 0  # CONNECTs answered valid: true
        self.connections: list[Connection] = []
        self.connects = 0
        self.refused = 0
        self._server: Server | None = None
        self._fired: set[Fault] = set()  # one-shot faults already done
        self._open = 0
        self.master_tokens: dict[str, str] = {}  # token -> master: registrations of masters that have their own
        self.store = EndpointStore()  # what it was told, as jobs and images (export(): the expected-state shape)

    # -- life ----------------------------------------------------------------------------

    async def start(self) -> ReferenceEndpoint:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            ssl=self.ssl_context,
            max_size=self.max_size,
            compression=None,
            ping_interval=self.ping_interval,
            close_timeout=2,
            process_request=self._admit,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ReferenceEndpoint:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/nbwss"

    @property
    def state_url(self) -> str:
        """Where the store is exported: GET with ``Authorization: Bearer <token>`` (see :meth:`_export`)."""
        scheme = "https" if self.ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/nbwss{STATE_PATH}"

    @property
    def open_connections(self) -> int:
        """Master connections open now."""
        return self._open

    def reset(self) -> None:
        """Forget what was received and switch faults off; open connections stay open."""
        self.connections = []
        self.fault = None
        self._fired.clear()
        self._seen.clear()
        self.connects = self.refused = self._accepted = 0
        self.store.clear()

    # -- what it received ------------------------------------------------------------------

    @property
    def notifications(self) -> list[dict[str, Any]]:
        """Every NOTIFICATION REQUEST received, duplicates included, in order."""
        return [m for c in self.connections for m in c.session.notifications]

    def unique_notifications(self) -> list[dict[str, Any]]:
        """Notifications by id, first copy kept: what a consumer should process."""
        seen: dict[str, dict[str, Any]] = {}
        for message in self.notifications:
            seen.setdefault(message["id"], message)
        return list(seen.values())

    def items(self, object_: str | None = None) -> list[dict[str, Any]]:
        """Data items of the unique notifications, optionally of one object kind (JOB or IMAGE)."""
        return [
            item
            for message in self.unique_notifications()
            for group in message["payload"]
            if object_ is None or group["object"] == object_
            for item in group["data"]
        ]

    # -- commands --------------------------------------------------------------------------

    async def command(
        self,
        uri: str,
        method: str = "GET",
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
        connection: Connection | None = None,
    ) -> dict[str, Any]:
        """Send a COMMAND REQUEST to the connected master (or to ``connection``'s) and wait for its RESPONSE message."""
        connection = connection or self._current()
        reply = connection.session.command(uri, method, headers, body)
        await connection.websocket.send(encode(reply.message).decode())
        message_id = reply.message["id"]

        async def answered() -> dict[str, Any]:
            while message_id not in connection.session.command_responses:
                await asyncio.sleep(0.005)
            return connection.session.command_responses.pop(message_id)

        return await asyncio.wait_for(answered(), timeout)

    def _current(self) -> Connection:
        for connection in reversed(self.connections):
            if connection.session.state is EndpointState.OPEN and connection.websocket.state is WsState.OPEN:
                return connection
        raise RuntimeError("no master is connected")

    # -- serving ---------------------------------------------------------------------------

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0].endswith(STATE_PATH):
            return self._export(connection, request)
        if self._open >= self.max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        return None

    def _export(self, connection: ServerConnection, request: Request) -> Response:
        """GET .../state with ``Authorization: Bearer <token>``: the store as JSON (the expected-state shape)."""
        offered = request.headers.get("Authorization", "")
        if not hmac.compare_digest(offered.encode(), f"Bearer {self.token}".encode()):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "the endpoint's token as 'Authorization: Bearer TOKEN'\n")
        response = connection.respond(HTTPStatus.OK, json.dumps(self.store.export()) + "\n")
        response.headers["Content-Type"] = "application/json"
        return response

    def _stored(self, session: EndpointSession, message: dict[str, Any]) -> None:
        bug = _STORE_BUGS.get(self.fault) if self.fault is not None else None
        self.store.store(message, bug, session.master)

    def token_for(self, master: str) -> str:
        """The token of ``master``'s own registration (made on first ask): the store files its notifications under it."""
        for token, name in self.master_tokens.items():
            if name == master:
                return token
        token = secrets.token_hex(24)
        self.master_tokens[token] = master
        return token

    async def _handle(self, websocket: ServerConnection) -> None:
        session = EndpointSession(
            self.token,
            accept=self.fault is not Fault.REFUSE and not (self.fault is Fault.REFUSE_RECONNECT and self._accepted),
            accept_any_token=self.fault is Fault.ACCEPT_ANY_TOKEN,
            notifications=deque(maxlen=self.keep),
            master_tokens=self.master_tokens,
        )
        if self.keep != 0:  # keep=0 (long load runs): no store either
            session.on_notification = functools.partial(self._stored, session)
        connection = Connection(websocket, session)
        self.connections.append(connection)
        self.connects += 1
        self._open += 1
        closing = False
        overdue = asyncio.get_running_loop().call_later(self.connect_timeout, self._connect_overdue, connection)
        try:
            async for frame in websocket:
                if closing:
                    continue  # keep reading so that the master's close frame gets through
                for output in session.receive(frame):
                    if isinstance(output, Close):
                        closing = True
                        self._spawn(connection, websocket.close(output.code, output.reason))
                        break
                    if output.kind == "connect" and not output.message["payload"]["valid"]:
                        self.refused += 1
                    elif output.kind == "connect":
                        self._accepted += 1
                    if output.kind == "connect" and self.fault is Fault.COMMAND_BEFORE_CONNECT:
                        early = session.command("/netbackup/admin/jobs", headers=self._content_type())
                        await websocket.send(encode(early.message).decode())
                    if output.kind == "connect" and output.message["payload"]["valid"] and self.probe_commands:
                        self._spawn(connection, self._probe(connection))
                    if output.kind == "connect" and (self._due(Fault.NO_PONG, connection) or self.fault is Fault.STOP_READING):
                        await self._send(connection, output)
                        websocket.transport.pause_reading()  # a half-open peer: nothing is read or answered
                        await websocket.wait_closed()
                        return
                    if output.kind == "ack":
                        connection.acks += 1
                        if self._due(Fault.CLOSE_MID_STREAM, connection):
                            closing = True
                            self._spawn(connection, websocket.close(self.close_code, "endpoint going away mid-stream"))
                            break
                    await self._send(connection, output)
        except ConnectionClosed:
            pass
        finally:
            overdue.cancel()
            self._open -= 1
            for task in list(connection.tasks):
                if not closing:
                    task.cancel()

    def _connect_overdue(self, connection: Connection) -> None:
        """Close a WebSocket that has not sent CONNECT within the connect time-out: unauthenticated, it gets nothing."""
        if connection.session.state is EndpointState.AWAITING_CONNECT:
            self._spawn(connection, connection.websocket.close(1008, f"no CONNECT within {self.connect_timeout:g}s"))

    async def _send(self, connection: Connection, reply: Reply) -> None:
        websocket, fault = connection.websocket, self.fault
        if reply.kind == "connect" and fault is not None:
            await self._send_connect(connection, reply, fault)
            return
        if reply.kind == "ack" and fault is Fault.DROP_DUPLICATES:
            if reply.message["id"] in self._seen:
                return  # already stored: dropped, and never acknowledged again
            self._seen.add(reply.message["id"])
        if reply.kind == "ack" and fault is Fault.ACK_EMPTY_PAYLOAD:
            await websocket.send(encode({**reply.message, "payload": []}).decode())
            return
        if reply.kind != "ack" or fault is None:
            await websocket.send(encode(reply.message).decode())
            return
        message = reply.message
        if fault is Fault.NO_ACK:
            return
        if fault is Fault.LATE_ACK:
            self._spawn(connection, self._later(websocket, encode(message).decode()))
            return
        if fault is Fault.WRONG_ID:
            message = {**message, "id": new_id(connection.session.rng)}
        elif fault is Fault.LOWERCASE_ACK_ID:
            message = {**message, "id": message["id"].lower()}
        elif fault is Fault.WRONG_SUBTYPE:
            message = {**message, "subType": "REQUEST"}
        elif fault is Fault.MALFORMED_JSON:
            await websocket.send('{"version": "1.0", "id": "' + message["id"] + '", "type": NOTIFICATION')
            return
        elif fault is Fault.BINARY_FRAME:
            await websocket.send(encode(message))
            return
        elif self._due(Fault.OVERSIZED_FRAME, connection):
            await websocket.send(encode({**message, "payload": {"padding": "x" * self.oversized_bytes}}).decode())
            return
        text = encode(message).decode()
        await websocket.send(text)
        if fault is Fault.DUPLICATE_ACK:
            await websocket.send(text)

    async def _send_connect(self, connection: Connection, reply: Reply, fault: Fault) -> None:
        message = reply.message
        if fault is Fault.NO_CONNECT_ANSWER:
            return
        if fault is Fault.CONNECT_NOT_BOOLEAN:
            message = {**message, "payload": {"valid": "true" if message["payload"]["valid"] else "false"}}
        elif fault is Fault.CONNECT_WRONG_ID:
            message = {**message, "id": new_id(connection.session.rng)}
        await connection.websocket.send(encode(message).decode())

    def _due(self, fault: Fault, connection: Connection) -> bool:
        """Whether a one-shot fault fires now: once per endpoint, mid-stream (after close_after acks; no-pong at once)."""
        if self.fault is not fault or fault in self._fired or (fault is not Fault.NO_PONG and connection.acks <= self.close_after):
            return False
        self._fired.add(fault)  # once: the master must be able to finish
        return True

    async def _later(self, websocket: ServerConnection, text: str) -> None:
        await asyncio.sleep(self.late_ack_delay)
        with contextlib.suppress(ConnectionClosed):
            await websocket.send(text)

    async def _probe(self, connection: Connection) -> None:
        """What a cloud application does after connecting: log in, then read the jobs."""
        with contextlib.suppress(ConnectionClosed, TimeoutError, RuntimeError):
            login = await self.command(
                "/netbackup/login",
                "POST",
                body={"domainType": "unixpwd", "domainName": "nbu", "userName": "cloudapp", "password": secrets.token_hex(8)},
                headers=self._content_type(),
                connection=connection,  # each master its own session: the token is only good on the master that gave it
            )
            token = login["payload"].get("body", {}).get("token")
            if token:
                authorization = f"Bearer {token}" if self.fault is Fault.BEARER_AUTHORIZATION else token
                await self.command(
                    "/netbackup/admin/jobs?page[limit]=5",
                    headers={**self._content_type(), "Authorization": authorization},
                    connection=connection,
                )

    def _spawn(self, connection: Connection, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        connection.tasks.add(task)
        task.add_done_callback(connection.tasks.discard)

    def _content_type(self) -> dict[str, str]:
        """The Content-Type of the masters' NetBackup version, as a cloud application sends it."""
        return {"Content-Type": VERSION_PROFILES[self.profile]}


#: Where the store is exported, beside the WebSocket path (GET, HTTP, with the token as a bearer).
STATE_PATH = "/state"
_STORE_BUGS = {
    Fault.STORE_EARLY_UPDATE: StoreBug.EARLY_UPDATE,
    Fault.STORE_RESENT_AS_NEW: StoreBug.RESENT_AS_NEW,
    Fault.STORE_LOSES_NO_LOCAL_COPY: StoreBug.LOSES_NO_LOCAL_COPY,
}
