"""The blocking WebSocket connection the sync master reads in its own thread, against real servers on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from http import HTTPStatus

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from emulator.harness import LoopThread
from emulator.sync.connection import Connection


async def _talk(ws: ServerConnection) -> None:
    """Echo, and a few commands that make the server do what a test needs."""
    async for message in ws:
        if message == "fragments":
            await ws.send(["frag", "ment", "ed"])
        elif message == "binary":
            await ws.send(b"\x00\x01")
        elif message == "close":
            await ws.send("last")
            await ws.close(4000, "bye")
        elif message == "ping":
            await asyncio.wait_for(await ws.ping(b"x"), 5)  # answered by the client while it waits in recv
            await ws.send("pong came")
        else:
            await ws.send(message)


def _not_here(connection: ServerConnection, request: Request) -> Response | None:
    return connection.respond(HTTPStatus.NOT_FOUND, "no\n") if request.path == "/missing" else None


@pytest.fixture
def url(loop: LoopThread) -> Iterator[str]:
    async def start() -> tuple[object, str]:
        server = await serve(_talk, "127.0.0.1", 0, process_request=_not_here, compression=None)
        port = next(iter(server.sockets)).getsockname()[1]
        return server, f"ws://127.0.0.1:{port}/"

    server, address = loop.call(start(), timeout=10)
    yield address

    async def stop() -> None:
        server.close()  # type: ignore[attr-defined]

    loop.call(stop(), timeout=10)


@pytest.fixture
def deaf(loop: LoopThread) -> Iterator[tuple[str, list[bytes]]]:
    """A server that completes the opening handshake, then reads nothing more: no pong, no closing handshake.

    Each connection first gets the frames in the returned list (written raw, as given).
    """
    frames: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        protocol = ServerProtocol()
        protocol.receive_data(await reader.readuntil(b"\r\n\r\n"))
        (request,) = protocol.events_received()
        assert isinstance(request, Request)
        protocol.send_response(protocol.accept(request))
        writer.write(b"".join(protocol.data_to_send()) + b"".join(frames))

    async def start() -> tuple[asyncio.Server, str]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    server, address = loop.call(start(), timeout=10)
    yield address, frames

    async def stop() -> None:
        server.close()
        for writer in writers:
            writer.close()

    loop.call(stop(), timeout=10)


def test_text_binary_and_fragmented_messages_come_whole(url: str) -> None:
    ws = Connection.open(url)
    ws.send(b'{"a": 1}')
    assert ws.recv(timeout=5) == '{"a": 1}'
    ws.send(b"binary")
    assert ws.recv(timeout=5) == b"\x00\x01"
    ws.send(b"fragments")
    assert ws.recv(timeout=5) == "fragmented"
    ws.close()
    assert ws.close_code == 1000


def test_recv_times_out_and_a_zero_timeout_only_reads_what_is_there(url: str) -> None:
    ws = Connection.open(url)
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0)
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.05)
    ws.send(b"one")
    ws.send(b"two")
    assert ws.recv(timeout=5) == "one"
    assert ws.recv(timeout=5) == "two"
    ws.send(b"three")
    limit = time.monotonic() + 5
    while True:  # a zero time-out returns a message once it is there, without waiting for one
        try:
            assert ws.recv(timeout=0) == "three"
            break
        except TimeoutError:
            assert time.monotonic() < limit
    ws.close()


def test_messages_before_the_endpoints_close_are_read_then_the_close_with_its_code(url: str) -> None:
    ws = Connection.open(url)
    ws.send(b"close")
    assert ws.recv(timeout=5) == "last"
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    assert ws.close_code == 4000
    assert ws.socket.fileno() == -1  # closed with the connection
    with pytest.raises(ConnectionClosed):
        ws.send(b"after")


def test_the_endpoints_pings_are_answered_while_the_master_waits(url: str) -> None:
    ws = Connection.open(url)
    ws.send(b"ping")
    assert ws.recv(timeout=5) == "pong came"
    ws.close()


def test_an_endpoint_that_stops_answering_pings_is_dropped_with_1011(deaf: tuple[str, list[bytes]]) -> None:
    address, _ = deaf
    ws = Connection.open(address, ping_interval=0.05, ping_timeout=0.1, close_timeout=0.1)
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.sent is not None and closed.value.sent.code == 1011


def test_closing_does_not_wait_past_close_timeout_for_an_endpoint_that_never_answers(deaf: tuple[str, list[bytes]]) -> None:
    address, _ = deaf
    ws = Connection.open(address, close_timeout=0.2)
    started = time.monotonic()
    ws.close()
    assert time.monotonic() - started < 5  # not forever: close_timeout, then the socket is closed
    assert ws.close_code == 1006
    assert ws.socket.fileno() == -1


def test_invalid_utf8_in_a_text_message_fails_the_connection_with_1007(deaf: tuple[str, list[bytes]]) -> None:
    address, frames = deaf
    frames.append(b"\x81\x02\xff\xfe")  # a text frame, unmasked (server to client), two bytes that are no UTF-8
    ws = Connection.open(address, close_timeout=0.2)
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.sent is not None and closed.value.sent.code == 1007


def test_an_http_answer_instead_of_the_upgrade_is_invalid_status(url: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        Connection.open(url + "missing")
    assert refused.value.response.status_code == 404
