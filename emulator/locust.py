"""The emulated master as Locust users, for load beyond one machine.

Each Locust user is one NetBackup master: its own domain (a timeline of the
scenario with its own seed) and its own NBWSS connection, driven by
:class:`emulator.sync.SyncMaster` on the same sans-I/O session core as ``run``
and ``load``. It keeps a window of notifications outstanding, resends what is
not acknowledged, reconnects with back-off when the endpoint goes away (and
resends what was pending), and answers the endpoint's COMMAND requests.

Locust gets one sample per notification and its acknowledgement (request type
``NBWSS``, name ``NOTIFICATION <object kinds>``, response time from the first
send), one per connection attempt (``CONNECT``), and a failed sample whose error
names the rule for every finding: a late or lost notification, or a frame that
breaks a rule (``FINDING <rule>``). Locust runs on gevent: websockets' sync
client's reading thread and locks become greenlets under its monkey patching.

Use the ready locustfile: ``locust -f "$(nbwss-emu locustfile)" --host wss://... --nbwss-token ...``,
distributed with Locust's own ``--master``/``--worker``.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gevent  # type: ignore[import-untyped]  # gevent ships no type hints
from locust import User, constant, events, task
from locust.exception import StopUser

from emulator.exceptions import NbwssError
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Settings, Target
from emulator.responders import CommandResponder
from emulator.scenario import Timeline, load
from emulator.scenario.model import Scenario
from emulator.sync import GaveUp, Notification, Sample, SyncMaster, TokenRefused, prepare
from emulator.wire.tls import TlsOptions

_SEEDS = itertools.count()
_log = logging.getLogger("nbwss-emulator")
#: Steps of the master per Locust task: a task per acknowledgement would cost Locust's scheduling per sample.
STEPS_PER_TASK = 32


def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("nbwss-emulator")
    group.add_argument("--nbwss-token", env_var="NBWSS_TOKEN", default="", help="the endpoint's token (required)")
    group.add_argument("--nbwss-scenario", default="datacenter-day", help="bundled scenario or YAML file each user runs")
    group.add_argument("--nbwss-seed", type=int, default=0, help="seed of the first user's domain")
    group.add_argument("--nbwss-window", type=int, default=64, help="notifications outstanding per user (as load's --window)")
    group.add_argument("--nbwss-cafile", default="", help="a CA to trust for wss://")
    group.add_argument("--nbwss-ack-timeout", type=float, default=0.0, help="seconds an acknowledgement may take (default: sendTimeout)")
    group.add_argument("--nbwss-properties", default="", help="an nbwss.properties file (resend interval, timeouts, back-off period)")
    group.add_argument(
        "--nbwss-prepare",
        type=int,
        default=0,
        help="notifications each user generates, encodes and checks before it connects (as load prepares)",
    )
    group.add_argument("--nbwss-reconnect-attempts", type=int, default=8, help="failed connection rounds in a row before a user gives up")


@dataclass(frozen=True, slots=True)
class Config:
    """What every user of a run shares, checked once per process."""

    scenario: Scenario
    token: str
    settings: Settings
    tls: TlsOptions
    seed: int
    prepare: int


def configure(options: Any) -> Config:
    """The run's configuration from Locust's parsed options; :class:`NbwssError` with one line saying what is wrong."""
    token = getattr(options, "nbwss_token", "") or os.environ.get("NBWSS_TOKEN", "")
    if not token:
        raise NbwssError("no token: pass --nbwss-token (or set NBWSS_TOKEN) with the token the endpoint accepts")
    window = getattr(options, "nbwss_window", 64)
    if window < 1:
        raise NbwssError(f"--nbwss-window must be at least 1, not {window}")
    attempts = getattr(options, "nbwss_reconnect_attempts", 8)
    if attempts < 1:
        raise NbwssError(f"--nbwss-reconnect-attempts must be at least 1, not {attempts}")
    path = getattr(options, "nbwss_properties", "")
    properties = NbwssProperties.from_file(path) if path else NbwssProperties()
    ack_timeout = getattr(options, "nbwss_ack_timeout", 0.0) or None
    settings = Settings(properties=properties, window=window, ack_timeout=ack_timeout, reconnect_attempts=attempts, record_acks=False)
    scenario = load(getattr(options, "nbwss_scenario", "datacenter-day"))
    tls = TlsOptions(cafile=getattr(options, "nbwss_cafile", "") or None)
    prepared = getattr(options, "nbwss_prepare", 0)
    if prepared < 0:
        raise NbwssError(f"--nbwss-prepare must be 0 or more, not {prepared}")
    return Config(scenario, token, settings, tls, getattr(options, "nbwss_seed", 0), prepared)


class _Run:
    """This process's configuration (or why there is none) and the findings of its users."""

    def __init__(self) -> None:
        self.config: Config | None = None
        self.error: str | None = None
        self.findings: Counter[str] = Counter()

    def check(self, environment: Any) -> None:
        self.config, self.error = None, None
        try:
            self.config = configure(environment.parsed_options)
        except NbwssError as error:
            self.error = str(error)


_run = _Run()


def _check_options(environment: Any, **_: Any) -> None:
    # The process that takes the command line (headless, master, local) says what is wrong once and exits,
    # rather than every user failing with a traceback. Workers get their options from the master.
    # gevent's loop keeps the time of its last turn, from before the seconds of importing the locustfile:
    # Locust's --run-time timer, armed next, would count from then and end a short run at once.
    gevent.get_hub().loop.update_now()
    options = environment.parsed_options
    if options is None or getattr(options, "worker", False):
        return
    _run.check(environment)
    host = environment.host or ""
    if _run.error is None and options.headless and not host.startswith(("ws://", "wss://")):
        _run.error = f"--host must be the endpoint's ws:// or wss:// URL, not {host!r}"
    if _run.error is not None:
        sys.exit(f"nbwss-emulator: {_run.error}")


def _start(environment: Any, **_: Any) -> None:
    _run.check(environment)
    _run.findings.clear()
    if _run.error is not None:
        _log.error("nbwss-emulator: %s", _run.error)  # once per process; the users stop without a word


def _summary(environment: Any, **_: Any) -> None:
    if _run.findings:
        found = ", ".join(f"{rule} ×{count}" for rule, count in sorted(_run.findings.items()))
        _log.warning("nbwss-emulator: findings by rule: %s", found)


# Registered here rather than with decorators: Locust's hooks are untyped.
_hooks: Any = events
_hooks.init_command_line_parser.add_listener(_arguments)
_hooks.init.add_listener(_check_options)
_hooks.test_start.add_listener(_start)
_hooks.test_stop.add_listener(_summary)


class NbwssUser(User):
    """A NetBackup master: subclass it (or use the ready locustfile) and point --host at the endpoint."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        config = _run.config
        if config is None:
            raise StopUser  # the configuration error was said once, at test start
        seed = config.seed * 100_000 + os.getpid() % 1000 * 1000 + next(_SEEDS)
        timeline = Timeline(config.scenario, seed=seed, start=float(int(time.time())))
        primary = config.scenario.masters[0].key
        live = timeline.notifications(repeat=True)
        prepared, problems = prepare(live, config.prepare)
        self._messages: Iterator[Notification] = itertools.chain(prepared, live)
        self.master = SyncMaster(
            [Target(self.host or "", config.token)],
            config.settings,
            tls=config.tls,
            responder=CommandResponder(timeline.masters[primary], rng=random.Random(seed)),
            rng=random.Random(seed),
            on_sample=self._sample,
        )
        self.master.record(problems)

    @task
    def notify(self) -> None:
        """Run the master a few steps: connect when not connected, keep the window full, read acknowledgements."""
        master, messages = self.master, self._messages
        try:
            for _ in range(STEPS_PER_TASK):
                master.step(messages)
        except TokenRefused:
            raise StopUser from None  # refused: the master stops, as NetBackup does; the CONNECT sample says why
        except GaveUp:
            raise StopUser from None  # the endpoint stayed away: its pending notifications are failed samples

    def on_stop(self) -> None:
        master = getattr(self, "master", None)
        if master is None:
            return
        # Wait for what is in flight (briefly: Locust waits for its users), and report the rest lost.
        master.drain(timeout=master.settings.ack_limit())
        master.close()
        _run.findings.update(master.findings())

    def _sample(self, sample: Sample) -> None:
        self.environment.events.request.fire(
            request_type=sample.kind,
            name=sample.name,
            response_time=sample.elapsed * 1000,
            response_length=sample.length,
            response=None,
            context={},
            exception=None if sample.error is None else NbwssFinding(sample.error),
        )


class NbwssFinding(Exception):
    """The reason a sample failed (a broken rule, a lost notification, a failed CONNECT), as Locust shows it."""
