"""The emulated master as Locust users, for load beyond one machine.

Each Locust user is one NetBackup master: its own domain (a timeline of the
scenario with its own seed), its own NBWSS connection. Each task sends the next
notification and waits for its acknowledgement; Locust gets one sample per
request/acknowledgement pair (``request_type`` NBWSS, ``name`` the notification's
object kinds), with the latency from the last send. Locust runs on gevent, so the
connection is websockets' synchronous client (threads become greenlets under
Locust's monkey patching) driving the same sans-I/O :class:`MasterSession` as
the asyncio master: no second implementation of the protocol.

Use the ready locustfile: ``locust -f "$(nbwss-emu locustfile)" --host wss://... --nbwss-token ...``,
distributed with Locust's own ``--master``/``--worker``.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Iterator
from typing import Any

from locust import User, constant, events, task
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from emulator.exceptions import UsageError
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.session import Acknowledged, CommandRequested, Established, MasterSession, Refused, State, Violation
from emulator.responders import CommandResponder
from emulator.scenario import Timeline, load
from emulator.wire.tls import TlsOptions, client_context

_SEEDS = itertools.count()


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]  # locust's event hooks are not annotated
def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("nbwss-emulator")
    group.add_argument("--nbwss-token", env_var="NBWSS_TOKEN", default="", help="the endpoint's token")
    group.add_argument("--nbwss-scenario", default="datacenter-day", help="bundled scenario or YAML file each user runs")
    group.add_argument("--nbwss-seed", type=int, default=0, help="seed of the first user's domain")
    group.add_argument("--nbwss-cafile", default="", help="a CA to trust for wss://")
    group.add_argument("--nbwss-ack-timeout", type=float, default=2.0, help="seconds to wait for an acknowledgement")


class NbwssConnection:
    """One master's NBWSS connection, synchronous: CONNECT, then one notification at a time."""

    def __init__(
        self, url: str, token: str, *, tls: TlsOptions, properties: NbwssProperties, responder: CommandResponder | None, environment: Any
    ) -> None:
        self.environment = environment
        self.responder = responder
        self.session = MasterSession(token, clock=time.monotonic, resend_interval=properties.resend_interval)
        self.ack_timeout = properties.send_timeout
        context = client_context(tls) if url.startswith("wss://") else None
        self.ws: ClientConnection = connect(
            url, ssl=context, compression=None, proxy=None, open_timeout=10, ping_interval=properties.keepalive_interval
        )
        started = time.perf_counter()
        self.ws.send(self.session.connect(), text=True)
        outcome: BaseException | None = None
        while self.session.state is State.CONNECTING:
            for event in self.session.receive(self.ws.recv(timeout=10)):
                if isinstance(event, Refused):
                    outcome = ConnectionRefusedError("CONNECT answered valid: false")
                elif isinstance(event, Established):
                    outcome = None
        self._fire("CONNECT", "CONNECT", started, 0, outcome)
        if outcome is not None:
            raise outcome

    def notify(self, message: dict[str, Any]) -> None:
        """Send one notification and wait for its acknowledgement (resending as NBWSS does): one Locust sample."""
        frame = self.session.send(message)
        name = "NOTIFICATION " + "+".join(group["object"] for group in message["payload"])
        started = time.perf_counter()
        self.ws.send(frame, text=True)
        deadline = time.monotonic() + self.ack_timeout + 2 * self.session.resend_interval
        problem: BaseException | None = None
        while message["id"] in self.session.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                problem = TimeoutError(f"no acknowledgement within {self.ack_timeout + 2 * self.session.resend_interval:g}s")
                self.session.pending.pop(message["id"], None)
                break
            try:
                data = self.ws.recv(timeout=min(remaining, self.session.resend_interval))
            except TimeoutError:
                for again in self.session.resend_due():
                    self.ws.send(again, text=True)
                continue
            for event in self.session.receive(data):
                if isinstance(event, Acknowledged) and event.message_id != message["id"]:
                    continue  # a late acknowledgement of an earlier notification
                if isinstance(event, Violation):
                    problem = problem or AssertionError(f"[{event.rule}] {event.finding.message}")
                elif isinstance(event, CommandRequested) and self.responder is not None:
                    self.ws.send(self.session.send_frame(self.responder.answer(event.message)), text=True)
        self._fire("NBWSS", name, started, len(frame), problem)

    def close(self) -> None:
        self.ws.close()

    def _fire(self, kind: str, name: str, started: float, length: int, exception: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            response=None,
            context={},
            exception=exception,
        )


class NbwssUser(User):
    """A NetBackup master: subclass it (or use the ready locustfile) and point --host at the endpoint."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        scenario = load(getattr(options, "nbwss_scenario", "datacenter-day"))
        seed = getattr(options, "nbwss_seed", 0) * 100_000 + os.getpid() % 1000 * 1000 + next(_SEEDS)
        timeline = Timeline(scenario, seed=seed, start=float(int(time.time())))
        primary = scenario.masters[0].key
        self._messages: Iterator[dict[str, Any]] = timeline.notifications(repeat=True)
        token = getattr(options, "nbwss_token", "") or os.environ.get("NBWSS_TOKEN", "")
        tls = TlsOptions(cafile=getattr(options, "nbwss_cafile", "") or None)
        properties = NbwssProperties(send_timeout=getattr(options, "nbwss_ack_timeout", 2.0))
        responder = CommandResponder(timeline.masters[primary], rng=random.Random(seed))
        if not self.host:
            raise UsageError("an NbwssUser needs --host: the endpoint's wss:// URL")
        self.connection = NbwssConnection(
            self.host, token, tls=tls, properties=properties, responder=responder, environment=self.environment
        )

    @task
    def notify(self) -> None:
        try:
            self.connection.notify(next(self._messages))
        except ConnectionClosed as closed:
            self.connection._fire("NBWSS", "connection", time.perf_counter(), 0, closed)
            self.stop(force=True)  # a dropped master stops; the sample says why

    def on_stop(self) -> None:
        connection = getattr(self, "connection", None)
        if connection is not None:
            connection.close()
