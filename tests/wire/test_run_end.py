"""How a run ends: the endpoint's COMMAND flow is answered, not cut off; only what was sent counts as answered.

A cloud application logs in through the master after CONNECT, then reads jobs with
the token it got. A master whose notifications are all acknowledged must not close
in the middle of that flow: it gives the flow a grace (until it is quiet, capped).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_response, envelope, notification_response
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Report, Settings, Target
from emulator.responders import CommandResponder
from emulator.scenario import Timeline, load
from emulator.wire.master import EmulatedMaster

_ids = itertools.count(1)


def command(uri: str, method: str = "GET", **headers: str) -> dict:
    payload = {"uri": uri, "method": method, "headers": {"Content-Type": "application/vnd.netbackup+json;version=1.0", **headers}}
    if method == "POST":
        payload["parameters"] = json.dumps({"domainType": "unixpwd", "domainName": "nbu", "userName": "app", "password": "x"})
    return envelope(f"00000000-0000-4000-8000-{next(_ids):012d}", "COMMAND", "REQUEST", int(time.time()), payload)


Flow = Callable[[ServerConnection, dict, list[dict]], "asyncio.Future[None] | None"]


@asynccontextmanager
async def endpoint(
    on_first_notification: Callable[[ServerConnection, list[dict]], object],
) -> AsyncIterator[tuple[str, list[dict], list[dict]]]:
    """An endpoint that acknowledges at once and, on its first notification, starts a COMMAND flow."""
    sent: list[dict] = []  # COMMAND REQUESTs it sent
    answers: list[dict] = []  # COMMAND RESPONSEs it received

    async def handler(ws: ServerConnection) -> None:
        flow: asyncio.Future | None = None
        try:
            async for frame in ws:
                message = json.loads(frame)
                kind = (message["type"], message["subType"])
                if kind == ("CONNECT", "REQUEST"):
                    await ws.send(encode(connect_response(message["id"], 1, True)).decode())
                elif kind == ("NOTIFICATION", "REQUEST"):
                    await ws.send(encode(notification_response(message["id"], 1)).decode())
                    if flow is None:
                        flow = asyncio.ensure_future(on_first_notification(ws, sent))  # type: ignore[arg-type]
                elif kind == ("COMMAND", "RESPONSE"):
                    answers.append(message)
        finally:
            if flow is not None:
                flow.cancel()

    async with serve(handler, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", sent, answers


async def login_then_jobs(ws: ServerConnection, sent: list[dict]) -> None:
    """Log in at once (the master may be closing), then, after a moment's thought, read the jobs."""
    login = command("/netbackup/login", "POST")
    sent.append(login)
    await ws.send(json.dumps(login))
    await asyncio.sleep(0.2)
    jobs = command("/netbackup/admin/jobs?page[limit]=5", Authorization="token")
    sent.append(jobs)
    await ws.send(json.dumps(jobs))


async def chatty(ws: ServerConnection, sent: list[dict]) -> None:
    """A COMMAND every 50 ms, for ever: the grace must be capped."""
    try:
        while True:
            request = command("/netbackup/admin/jobs")
            sent.append(request)
            await ws.send(json.dumps(request))
            await asyncio.sleep(0.05)
    except ConnectionClosed:
        pass


def run(flow: Callable[[ServerConnection, list[dict]], object], **settings: float) -> tuple[Report, list[dict], list[dict], float]:
    async def scenario() -> tuple[Report, list[dict], list[dict], float]:
        async with endpoint(flow) as (url, sent, answers):
            properties = NbwssProperties(resend_interval=0.5, send_timeout=0.5, connection_period=0.5)
            timeline = Timeline(load("smoke"))
            responder = CommandResponder(next(iter(timeline.masters.values())))
            master = EmulatedMaster([Target(url, "t")], Settings(properties=properties, **settings), responder=responder)
            (message,) = [t.message for t in timeline.messages()][:1]
            began = time.monotonic()
            report = await master.run([message])
            elapsed = time.monotonic() - began
            await asyncio.sleep(0.1)  # let the endpoint read what is in flight before it stops
            return report, list(sent), list(answers), elapsed

    return asyncio.run(scenario())


def test_the_endpoints_command_flow_after_the_last_ack_is_answered_before_closing() -> None:
    report, sent, answers, _ = run(login_then_jobs)
    assert not report.lost
    assert [a["id"] for a in answers] == [r["id"] for r in sent]  # the login and the jobs both answered
    assert [c.request["id"] for c in report.commands] == [r["id"] for r in sent]
    assert report.unanswered == []


def test_the_grace_is_capped_and_only_what_was_sent_counts_as_answered() -> None:
    report, sent, answers, elapsed = run(chatty, command_grace=0.3, command_grace_cap=0.6)
    assert elapsed < 3.0  # the cap, not the endpoint, ended the run
    assert len(sent) >= 5
    answered = {a["id"] for a in answers}
    assert [c.request["id"] for c in report.commands] == [a["id"] for a in answers]  # reported answered = sent
    assert answered.isdisjoint(r["id"] for r in report.unanswered)
    assert {r["id"] for r in report.unanswered} | answered <= {r["id"] for r in sent}


def test_without_a_command_flow_the_run_ends_after_the_grace_not_the_cap() -> None:
    async def silent(ws: ServerConnection, sent: list[dict]) -> None:
        return None

    report, _, _, elapsed = run(silent, command_grace=0.3, command_grace_cap=10.0)
    assert not report.lost and report.commands == [] and 0.3 <= elapsed < 2.0
