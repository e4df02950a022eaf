"""The emulated master as Locust users, for load beyond one machine.

Each Locust user is one NetBackup master: its own domain (a timeline of the
scenario with its own seed) and its own NBWSS connection, driven by
:class:`emulator.sync.SyncMaster` on the same sans-I/O session core as ``run``
and ``load``. It keeps a window of notifications outstanding, resends what is
not acknowledged, reconnects with back-off when the endpoint goes away (and
resends what was pending), and answers the endpoint's COMMAND requests.

As in ``load``, the notifications are generated, encoded and checked in a
generator process, a bounded buffer ahead (:mod:`emulator.sync.feed`): one per
Locust process with users, started by its first user and ended when the test
stops, so that the process's one core is the senders'. COMMAND answers come
from the user's domain, replayed in this process when the first one is asked
(:class:`emulator.responders.DomainResponder`).

Locust gets one sample per notification and its acknowledgement (request type
``NBWSS``, name ``NOTIFICATION <object kinds>``, response time from the first
send), one per connection attempt (``CONNECT``), and a failed sample whose error
names the rule for every finding: a late or lost notification, or a frame that
breaks a rule (``FINDING <rule>``). Locust runs on gevent: websockets' sync
client's reading thread and locks become greenlets under its monkey patching.

Use the ready locustfile: ``locust -f "$(nbwss-emu locustfile)" --host wss://... --nbwss-token ...``,
distributed with Locust's own ``--master``/``--worker``.

With ``--nbwss-expect-state FILE`` each user folds what the endpoint
acknowledged into its master's expected state (:mod:`emulator.state`), and FILE
gets every user's, by master host name, when the test stops: a local run writes
it after its users' ``on_stop``; in a distributed run each worker sends its
users' states to the master (a Locust custom message, before it reports
stopped) and the master merges and rewrites FILE as each part arrives.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

import gevent  # type: ignore[import-untyped]  # gevent ships no type hints
from locust import User, constant, events, task
from locust.exception import StopUser
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from emulator import state
from emulator.contract.hints import check_writable
from emulator.exceptions import NbwssError
from emulator.load.generation import GC_THRESHOLDS
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Settings, Target
from emulator.responders import DEFAULT_PROFILE, CommandResponder, DomainResponder
from emulator.scenario import load
from emulator.scenario.model import Scenario
from emulator.sync import GaveUp, Sample, SyncMaster, TokenRefused
from emulator.sync.feed import FeedGenerator
from emulator.wire.tls import TlsOptions

_SEEDS = itertools.count()
_log = logging.getLogger("nbwss-emulator")
#: The custom message a worker sends its users' expected states to the master with.
EXPECTED_STATE = "nbwss_expected_state"
#: The master's ask to a worker that has not sent them at its test stop (a headless run ends with "quit", no "stop" first).
SEND_EXPECTED_STATE = "nbwss_send_expected_state"
#: How long the master waits for the workers' parts beyond the users' drain (seconds).
PARTS_MARGIN = 10.0
#: Steps of the master per Locust task: a task per acknowledgement would cost Locust's scheduling per sample.
STEPS_PER_TASK = 32
#: Notifications each user's feed keeps buffered or on their way at least (two windows, if more).
LOW = 128


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
        help="notifications each user has generated, encoded and checked before it connects (as load prepares)",
    )
    group.add_argument("--nbwss-reconnect-attempts", type=int, default=8, help="failed connection rounds in a row before a user gives up")
    group.add_argument(
        "--nbwss-expect-state",
        default="",
        metavar="FILE",
        help="write what the endpoint was told (jobs, images), per master host name, as JSON for nbwss-emu diff-state",
    )


@dataclass(frozen=True, slots=True)
class Config:
    """What every user of a run shares, checked once per process."""

    scenario: Scenario
    token: str
    settings: Settings
    tls: TlsOptions
    seed: int
    prepare: int
    expect_state: str = ""  # where the expected state goes ("": not kept)


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
    expect_state = getattr(options, "nbwss_expect_state", "") or ""
    return Config(scenario, token, settings, tls, getattr(options, "nbwss_seed", 0), prepared, expect_state)


class _Run:
    """This process's configuration (or why there is none) and the findings of its users."""

    def __init__(self) -> None:
        self.config: Config | None = None
        self.error: str | None = None
        self.findings: Counter[str] = Counter()
        self.states: list[tuple[str, state.AckRecorder]] = []  # this process's users' (host name, state), in their start order
        self.parts: dict[str, dict[str, Any]] = {}  # the master of a distributed run: each worker's states, by its id
        self.part_sent = False  # a worker: its part went to the master this test

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
    # Every acknowledgement allocates a few short-lived containers; collected every 700 allocations, with Locust's
    # and the users' state traversed again and again, they cost a tenth of a worker's time (bench_locust).
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if isinstance(environment.runner, WorkerRunner):  # its options (--nbwss-expect-state among them) come later
        environment.runner.register_message(SEND_EXPECTED_STATE, _stop_and_send)
    options = environment.parsed_options
    if options is None or getattr(options, "worker", False):
        return
    _run.check(environment)
    host = environment.host or ""
    if _run.error is None and options.headless and not host.startswith(("ws://", "wss://")):
        _run.error = f"--host must be the endpoint's ws:// or wss:// URL, not {host!r}"
    if _run.error is None:
        try:  # here, where it is written: workers only send their part
            check_writable(nbwss_expect_state=getattr(options, "nbwss_expect_state", "") or None)
        except NbwssError as error:
            _run.error = str(error)
    if _run.error is None and isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(EXPECTED_STATE, _part_arrived)
    if _run.error is not None:
        sys.exit(f"nbwss-emulator: {_run.error}")


def _start(environment: Any, **_: Any) -> None:
    _run.check(environment)
    _run.findings.clear()
    _run.states.clear()
    _run.parts.clear()
    _run.part_sent = False
    if _run.error is not None:
        _log.error("nbwss-emulator: %s", _run.error)  # once per process; the users stop without a word


def _summary(environment: Any, **_: Any) -> None:
    if _run.findings:
        found = ", ".join(f"{rule} ×{count}" for rule, count in sorted(_run.findings.items()))
        _log.warning("nbwss-emulator: findings by rule: %s", found)


def _local_states() -> dict[str, Any]:
    """This process's users' expected states, by master host name (made unique in the users' start order)."""
    names = state.unique_names(name for name, _ in _run.states)
    return state.document({name: recorder.state for name, (_, recorder) in zip(names, _run.states, strict=True)})


def _stopped(environment: Any, **_: Any) -> None:
    """At test stop (the users' on_stop done): write the expected state, or send this worker's part to the master."""
    path = getattr(environment.parsed_options, "nbwss_expect_state", "") or ""
    runner = environment.runner
    if not path:
        return
    if isinstance(runner, WorkerRunner):
        runner.send_message(EXPECTED_STATE, _local_states())  # before it reports stopped: same channel, in order
        _run.part_sent = True
    elif isinstance(runner, MasterRunner):  # it writes as the parts arrive (see _part_arrived); here, it waits for the rest
        _gather_parts(environment, runner)
        _write(path, state.merge(_run.parts[node] for node in sorted(_run.parts)))  # also when no worker had any
    else:
        _write(path, _local_states())


def _gather_parts(environment: Any, runner: Any) -> None:
    """Ask the workers whose part has not come (told to quit, not to stop, they have not sent it) and wait for them.

    The master's test stop comes before its "quit" goes to the workers: each worker
    asked stops its users (their on_stop drains), and its test stop sends its part.
    """
    asked = [client.id for client in runner.clients.all if client.id not in _run.parts and client.state != STATE_MISSING]
    for client_id in asked:
        runner.send_message(SEND_EXPECTED_STATE, client_id=client_id)
    drain = _run.config.settings.ack_limit() if _run.config is not None else 0.0
    deadline = time.monotonic() + (environment.stop_timeout or 0.0) + drain + PARTS_MARGIN
    while any(client_id not in _run.parts for client_id in asked):
        if time.monotonic() >= deadline:
            missing = ", ".join(c for c in asked if c not in _run.parts)
            _log.error("nbwss-emulator: no expected state came from worker(s) %s: --nbwss-expect-state lacks their masters", missing)
            return
        gevent.sleep(0.05)


def _stop_and_send(environment: Any, **_: Any) -> None:
    """A worker asked for its part by the master: stop its users (their test stop sends it), or send it if they already stopped."""
    environment.runner.stop()
    if not _run.part_sent:
        environment.runner.send_message(EXPECTED_STATE, _local_states())
        _run.part_sent = True


def _part_arrived(environment: Any, msg: Any, **_: Any) -> None:
    """The master of a distributed run: a worker's part; FILE rewritten with every part so far, whatever the events' order."""
    _run.parts[str(msg.node_id)] = msg.data  # a worker's later part replaces its earlier one
    _write(environment.parsed_options.nbwss_expect_state, state.merge(_run.parts[node] for node in sorted(_run.parts)))


def _write(path: str, document: dict[str, Any]) -> None:
    try:
        state.write(state.check(document, path), path)
    except NbwssError as error:  # checked writable at the start: it went away since
        _log.error("nbwss-emulator: %s", error)


class _Generator:
    """This process's generator child, shared by its users: started by the first user of a test, closed at the test's stop."""

    def __init__(self) -> None:
        self.current: FeedGenerator | None = None
        self.reported = False  # its untimely end was logged
        self._starting = threading.Lock()  # a greenlet lock under Locust: users starting together start one child

    def get(self, scenario: Scenario) -> FeedGenerator:
        with self._starting:
            if self.current is None or self.current.ended:
                self.current = FeedGenerator.start(scenario, float(int(time.time())))
                self.reported = False
            return self.current

    def failed(self) -> None:
        """Log once that the generator ended under the users (they stop when what they had is settled)."""
        current = self.current
        if current is not None and current.error is not None and not self.reported:
            self.reported = True
            _log.error("nbwss-emulator: %s: the users stop once what they sent is settled", current.error)

    def close(self, **_: Any) -> None:
        current, self.current = self.current, None
        if current is not None:
            current.close()


_generator = _Generator()


# Registered here rather than with decorators: Locust's hooks are untyped.
_hooks: Any = events
_hooks.init_command_line_parser.add_listener(_arguments)
_hooks.init.add_listener(_check_options)
_hooks.test_start.add_listener(_start)
_hooks.test_stop.add_listener(_summary)
_hooks.test_stop.add_listener(_stopped)
_hooks.test_stop.add_listener(_generator.close)  # after the users' on_stop: nothing more is asked of it


class NbwssUser(User):
    """A NetBackup master: subclass it (or use the ready locustfile) and point --host at the endpoint."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        # A user that cannot run stops at its first task: Locust logs a StopUser raised here with a traceback.
        self.master: SyncMaster | None = None
        config = _run.config
        if config is None:
            return  # the configuration error was said once, at test start
        seed = config.seed * 100_000 + os.getpid() % 1000 * 1000 + next(_SEEDS)
        generator = _generator.get(config.scenario)
        feed = self._messages = generator.add(seed, low=max(LOW, 2 * config.settings.window))
        feed.prepare(config.prepare)
        # Connected only with something to send: its domain built (its host name known), the prepared ones in.
        feed.filled(max(1, config.prepare))
        if feed.ended and not feed.buffer:
            _generator.failed()
            return  # nothing to send: the generator is gone (said once)
        recorder = None
        if config.expect_state:
            recorder = state.AckRecorder()
            _run.states.append((feed.hostname or "master", recorder))
        # COMMAND answers from the master's domain, replayed here (only if asked) to where its notifications are.
        responder = DomainResponder(config.scenario, seed, generator.start_time, DEFAULT_PROFILE, lambda: feed.taken)
        self.master = SyncMaster(
            [Target(self.host or "", config.token)],
            config.settings,
            tls=config.tls,
            responder=cast(CommandResponder, responder),
            rng=random.Random(seed),
            on_sample=self._sample,
            on_ack=recorder.acknowledged if recorder is not None else None,
        )
        self.master.record(feed.found())

    @task
    def notify(self) -> None:
        """Run the master a few steps: connect when not connected, keep the window full, read acknowledgements."""
        master, messages = self.master, getattr(self, "_messages", None)
        if master is None or messages is None:
            raise StopUser  # it could not start (said once)
        try:
            for _ in range(STEPS_PER_TASK):
                if not master.step(messages):  # the generator ended: all it had is sent and settled
                    _generator.failed()
                    raise StopUser
        except TokenRefused:
            raise StopUser from None  # refused: the master stops, as NetBackup does; the CONNECT sample says why
        except GaveUp:
            raise StopUser from None  # the endpoint stayed away: its pending notifications are failed samples
        finally:
            if messages.violations:  # what the generator found in this master's frames
                master.record(messages.found())

    def on_stop(self) -> None:
        master = getattr(self, "master", None)
        if master is None:
            return
        # Wait for what is in flight (briefly: Locust waits for its users), and report the rest lost.
        master.drain(timeout=master.settings.ack_limit())
        master.close()
        master.record(self._messages.found())
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
