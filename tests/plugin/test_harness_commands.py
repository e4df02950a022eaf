"""The harness reports the COMMAND exchanges actually sent, not every request its responder saw."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from emulator.harness import LoopThread, MasterHandle
from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_response, envelope, notification_response
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Settings, Target


def jobs_request(number: int) -> dict[str, object]:
    payload = {"uri": "/netbackup/admin/jobs", "method": "GET", "headers": {"Content-Type": "application/vnd.netbackup+json;version=1.0"}}
    return envelope(f"00000000-0000-4000-8000-{number:012d}", "COMMAND", "REQUEST", int(time.time()), payload)


class Endpoint:
    """On its first connection, asks a COMMAND and closes in the same write: the request reaches a closing master.

    On the next connection it asks again, and acknowledges the notifications only once
    the master has answered, so the operation cannot end before the answer was sent.
    """

    def __init__(self) -> None:
        self.connections = 0
        self.asked: list[str] = []  # COMMAND REQUEST ids, in order
        self.answered: list[str] = []  # ids of the COMMAND RESPONSEs received

    async def handler(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._serve(ws)

    async def _serve(self, ws: ServerConnection) -> None:
        self.connections += 1
        first = self.connections == 1
        waiting: list[str] = []  # notifications held until the COMMAND is answered
        async for frame in ws:
            message = json.loads(frame)
            kind = (message["type"], message["subType"])
            if kind == ("CONNECT", "REQUEST"):
                await ws.send(encode(connect_response(message["id"], 1, True)).decode())
            elif kind == ("NOTIFICATION", "REQUEST") and first:
                if not self.asked:
                    request = jobs_request(1)
                    self.asked.append(request["id"])  # type: ignore[arg-type]
                    # The request and the close frame in one write: the master reads them together.
                    ws.protocol.send_text(encode(request))
                    ws.protocol.send_close(1011, "going away")
                    ws.transport.write(b"".join(ws.protocol.data_to_send()))
            elif kind == ("NOTIFICATION", "REQUEST"):
                if len(self.asked) == 1:
                    request = jobs_request(2)
                    self.asked.append(request["id"])  # type: ignore[arg-type]
                    await ws.send(encode(request).decode())
                if len(self.answered) < 2:
                    waiting.append(message["id"])
                else:
                    await ws.send(encode(notification_response(message["id"], 1)).decode())
            elif kind == ("COMMAND", "RESPONSE"):
                self.answered.append(message["id"])
                for message_id in waiting:
                    await ws.send(encode(notification_response(message_id, 1)).decode())
                waiting.clear()


@pytest.fixture
def endpoint() -> Iterator[tuple[Endpoint, str]]:
    thread = LoopThread("endpoint-under-test")
    state = Endpoint()

    async def start() -> Server:
        return await serve(state.handler, "127.0.0.1", 0)

    server = thread.call(start(), timeout=10)
    try:
        yield state, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        thread.call(stop(), timeout=10)
        thread.stop()


def test_an_operations_commands_are_those_answered_not_those_cut_off_by_a_close(endpoint: tuple[Endpoint, str]) -> None:
    state, url = endpoint
    loop = LoopThread()
    properties = NbwssProperties(resend_interval=0.5, send_timeout=0.5, connection_period=0.2)
    master = MasterHandle(loop, [Target(url, "t")], settings=Settings(properties=properties))
    try:
        result = master.backup(policy_type="STANDARD")
        result.assert_all_acknowledged()
        assert state.connections == 2
        cut_off, answered = state.asked
        assert state.answered == [answered]  # the first request came on a closing connection: never answered
        assert {e.request["id"] for e in master.responder.exchanges} == {cut_off, answered}  # yet the responder saw both
        assert [e.request["id"] for e in result.commands] == [answered]
        assert [e.request["id"] for e in master.commands] == [answered]
    finally:
        master.close()
        loop.stop()
