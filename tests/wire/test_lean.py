"""What a connected master holds: no reader task while there is nothing to read, one acknowledged frame, small wake-ups.

A load run keeps thousands of masters connected in one process, so what each holds
while it waits is the run's memory. These tests check that the lean paths still do
everything: a reader started for a COMMAND answers it, a connection lost while no
reader runs is noticed and the master reconnects, a Duplicate step sends the first
acknowledged notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from emulator.endpoint import ReferenceEndpoint
from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_response, notification_response
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Duplicate, Prepared, Settings, Target
from emulator.responders import CommandResponder
from emulator.scenario import Timeline, load
from emulator.wire.master import EmulatedMaster, MasterConnection, Signal

FAST = NbwssProperties(connection_period=0.5, resend_interval=0.3, send_timeout=0.2)


def settings() -> Settings:
    return Settings(properties=FAST, drain_timeout=1.0, connect_timeout=3.0)


def readers() -> list[asyncio.Task[Any]]:
    """The masters' reader tasks running now."""
    return [task for task in asyncio.all_tasks() if getattr(task.get_coro(), "__qualname__", "") == "EmulatedMaster._receive"]


async def readers_done() -> list[asyncio.Task[Any]]:
    """Wait for the running readers to end (5 s at most); those still running then."""
    running = readers()
    if running:
        await asyncio.wait(running, timeout=5)
    return readers()


def test_an_idle_master_runs_no_reader_and_one_is_started_for_a_command_which_it_answers() -> None:
    timeline = Timeline(load("restore"))
    first = next(iter(timeline.messages())).message

    async def scenario() -> tuple[list[Any], dict[str, Any], list[Any], Any]:
        async with ReferenceEndpoint() as endpoint:
            acked, done = asyncio.Event(), asyncio.Event()

            async def notifications() -> AsyncIterator[dict[str, Any]]:
                yield first
                await done.wait()  # the connection stays while the endpoint sends a COMMAND

            master = EmulatedMaster(
                [Target(endpoint.url, endpoint.token)],
                settings(),
                responder=CommandResponder(timeline.masters["primary"]),
                on_ack=lambda _: acked.set(),
            )
            run = asyncio.ensure_future(master.run(notifications()))
            await asyncio.wait_for(acked.wait(), 10)
            idle = readers()  # the acknowledgement was taken as it was parsed: nothing was left to read
            headers = {"Content-Type": "application/vnd.netbackup+json;version=1.0"}
            login = await endpoint.command("/netbackup/login", "POST", body={"userName": "u", "password": "p"}, headers=headers)
            after = await readers_done()  # the reader started for the COMMAND ends once nothing is left to read
            done.set()
            report = await asyncio.wait_for(run, 10)
            return idle, login, after, report

    idle, login, after, report = asyncio.run(scenario())
    assert idle == [] and after == []
    assert login["payload"]["statusCode"] == 201
    assert [command.status for command in report.commands] == [201]
    assert report.acknowledged == 1 and not report.lost and not report.violations


@asynccontextmanager
async def closing_endpoint() -> AsyncIterator[tuple[str, asyncio.Event, asyncio.Event]]:
    """Acknowledges every notification; closes its first connection (1011) when ``close`` is set; ``reopened`` then."""
    close, reopened = asyncio.Event(), asyncio.Event()
    connections: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        if len(connections) == 1:

            async def closer() -> None:
                await close.wait()
                await ws.close(1011, "going away")

            closing = asyncio.ensure_future(closer())
        else:
            reopened.set()
        with contextlib.suppress(ConnectionClosed):  # 1011 ends the first connection's iteration with an error
            async for frame in ws:
                message = json.loads(frame)
                if message["type"] == "CONNECT":
                    await ws.send(encode(connect_response(message["id"], 1, True)).decode())
                elif message["type"] == "NOTIFICATION":
                    await ws.send(encode(notification_response(message["id"], 1)).decode())
        if len(connections) == 1:
            await closing

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}", close, reopened


def test_a_connection_lost_while_no_reader_runs_is_noticed_and_the_master_reconnects() -> None:
    first, second = (timed.message for timed in itertools.islice(Timeline(load("smoke")).messages(), 2))

    async def scenario() -> tuple[list[Any], Any]:
        async with closing_endpoint() as (url, close, reopened):
            acked = asyncio.Event()

            async def notifications() -> AsyncIterator[dict[str, Any]]:
                yield first
                await reopened.wait()
                yield second  # on the new connection

            master = EmulatedMaster([Target(url, "t")], settings(), on_ack=lambda _: acked.set())
            run = asyncio.ensure_future(master.run(notifications()))
            await asyncio.wait_for(acked.wait(), 10)
            idle = readers()
            close.set()
            return idle, await asyncio.wait_for(run, 10)

    idle, report = asyncio.run(scenario())
    assert idle == []
    assert report.drops == 1 and report.close_codes == [1011] and report.established == 2
    assert report.acknowledged == 2 and not report.lost and not report.violations


def reachable(root: object) -> dict[int, object]:
    """The objects ``root`` refers to, directly or not (modules, classes and plain functions are not followed)."""
    seen: dict[int, object] = {}
    todo = [root]
    while todo:
        item = todo.pop()
        if id(item) in seen or isinstance(item, (types.ModuleType, type, asyncio.AbstractEventLoop)):
            continue
        if isinstance(item, types.FunctionType) and item.__closure__ is None:
            continue
        seen[id(item)] = item
        todo.extend(gc.get_referents(item))
    return seen


def test_a_master_holds_the_first_acknowledged_frame_only_and_a_duplicate_sends_it() -> None:
    messages = [timed.message for timed in itertools.islice(Timeline(load("smoke")).messages(), 24)]
    prepared = [Prepared(message["id"], encode(message)) for message in messages]

    async def scenario() -> tuple[EmulatedMaster, Any]:
        async with ReferenceEndpoint() as endpoint:
            master = EmulatedMaster([Target(endpoint.url, endpoint.token)], settings())
            return master, await asyncio.wait_for(master.run([*prepared, Duplicate()]), 20)

    master, report = asyncio.run(scenario())
    assert report.acknowledged == 24 and not report.lost
    assert report.duplicates_sent == [messages[0]["id"]]  # the first acknowledged, sent again
    held = reachable(master)
    assert [step.message_id for step in prepared if id(step.frame) in held] == [messages[0]["id"]]


def test_signal_wakes_its_waiter_and_a_cancelled_wait_loses_no_wake_up() -> None:
    async def scenario() -> list[str]:
        seen = []
        signal = Signal()
        signal.set()
        await signal.wait()  # set: at once
        seen.append(f"set {signal.is_set()}")
        signal.clear()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(signal.wait(), 0.01)  # cancelled: its future is done with
        waiter = asyncio.ensure_future(signal.wait())  # type: ignore[arg-type]
        await asyncio.sleep(0)
        seen.append(f"waiting {not waiter.done()}")
        signal.set()
        await asyncio.wait_for(waiter, 1)
        seen.append("woken")
        signal.clear()
        waiter = asyncio.ensure_future(asyncio.wait_for(signal.wait(), 0.01))
        with pytest.raises(TimeoutError):
            await waiter
        signal.set()  # after a cancelled wait: kept for the next
        await asyncio.wait_for(signal.wait(), 1)
        seen.append("woken after a cancelled wait")
        return seen

    assert asyncio.run(scenario()) == ["set True", "waiting True", "woken", "woken after a cancelled wait"]


def test_masters_and_their_connections_keep_no_attribute_dict_of_their_own() -> None:
    """Past 30 attributes an instance's dict no longer shares its class's keys: 1.5 KiB more per master, and per connection."""
    master = EmulatedMaster([Target("ws://127.0.0.1:1", "t")])
    assert not hasattr(master, "__dict__")
    own = {"take_text", "wake_receiver", "received_at", "unread"}
    assert own <= set(MasterConnection.__slots__)  # websockets' attributes are in the connection's dict, these not
