"""A scenario run in simulated time: the NBWSS messages it produces, in order.

The timeline builds the masters a scenario describes (names and sizes from the
seed), then walks the steps: each operation starts at its scenario time on the
shared :class:`~emulator.domain.clock.Scheduler`, and a step that waits lets
simulated time run until its operations end. Messages come out as soon as no
later event can join them, so a long scenario streams in constant memory.

Same scenario and seed: the same messages in the same order and batches,
whatever the start (only their times shift with it). Message ids are unique per
run, as a real master's are, unless ``ids="seeded"`` makes them reproducible too
(byte-for-byte replays). Names and job ids are drawn from the seed and the
scenario's name together, so two scenarios run with one seed do not collide.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, cast

from emulator.data import ENVIRONMENTS, DataPools, build_policies
from emulator.domain.clock import Scheduler
from emulator.domain.master import MasterServer, Operation
from emulator.domain.model import Policy
from emulator.exceptions import ScenarioError
from emulator.protocol.batching import Outbox
from emulator.scenario.model import Scenario, Step

#: How message ids are drawn: afresh each run (as a real master), or from the seed (exact replays).
IDS = ("unique", "seeded")


def domain_seed(scenario_name: str, seed: int) -> int:
    """The seed of a scenario's domain: the seed and the scenario's name together, so scenarios sharing a seed differ."""
    digest = hashlib.sha256(f"{scenario_name}\0{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True, slots=True)
class TimedMessage:
    """A NOTIFICATION REQUEST of one master and the scenario time it is sent at."""

    master: str
    at: float
    message: dict[str, Any]


class Timeline:
    """One run of a scenario with one seed."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None, start: float | None = None, ids: str = "unique") -> None:
        """``ids``: ``"unique"`` (default) draws message ids afresh each run; ``"seeded"`` from the seed, for exact replays."""
        if ids not in IDS:
            raise ValueError(f"ids must be one of {', '.join(IDS)}, not {ids!r}")
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.start = scenario.start if start is None else float(start)
        self.scheduler = Scheduler(self.start)
        self.domain_seed = domain_seed(scenario.name, self.seed)
        self.rng = random.Random(self.domain_seed)
        self.notes: list[str] = []
        pools = DataPools.from_seed(self.domain_seed)
        self.masters: dict[str, MasterServer] = {}
        self.outboxes: dict[str, Outbox] = {}
        for index, spec in enumerate(scenario.masters):
            counts = dict(ENVIRONMENTS[spec.environment]) if spec.environment else {}
            counts.update(spec.clients)
            master = MasterServer(
                spec.hostname or pools.master_hostname(index),
                self.scheduler,
                random.Random(self.rng.getrandbits(64)),
                clock_offset_hours=spec.clock_offset_hours,
                failures=scenario.failures,
                first_job_id=self.rng.randint(1_000, 90_000),
            )
            for policy in build_policies(pools, {k: v for k, v in counts.items() if v > 0}):
                master.add_policy(policy)
            self.masters[spec.key] = master
            outbox_rng = random.Random(self.rng.getrandbits(64))
            # NBWSS's cycle runs from the master's own start, at any phase of the second: time stamps are not on 5 s marks.
            phase = round(outbox_rng.uniform(0, scenario.cycle), 3) if scenario.cycle else 0.0
            id_rng = random.Random(outbox_rng.getrandbits(64)) if ids == "seeded" else random.Random(secrets.randbits(128))
            self.outboxes[spec.key] = Outbox(
                outbox_rng, cycle=scenario.cycle, max_items=scenario.max_items, origin=self.start + phase, id_rng=id_rng
            )
        for spec in scenario.masters:
            if spec.replicate_to is not None:
                self.masters[spec.key].add_replication_target(self.masters[spec.replicate_to])
        self._round_robin: dict[tuple[str, str | None], int] = {}
        self.operations: list[Operation] = []

    # -- the public iteration ----------------------------------------------------

    def messages(self, *, repeat: bool = False) -> Iterator[TimedMessage]:
        """The messages of the scenario; with ``repeat``, its steps again and again (state carries on)."""
        produced = 0
        while True:
            before = produced
            for message in self._run_steps(self.scenario.steps, self.scheduler.now()):
                produced += 1
                yield message
            if not repeat:
                break
            # Drain what this pass left running so the next pass sees a settled domain.
            for message in self._advance(lambda: self.scheduler.next_due() is not None):
                produced += 1
                yield message
            if produced == before:
                return  # a pass that sends nothing would loop forever
        for message in self._advance(lambda: self.scheduler.next_due() is not None):
            yield message
        yield from self._release(None)

    def streams(self, *, repeat: bool = False) -> dict[str, Iterator[TimedMessage]]:
        """One stream per master (by key), for one NBWSS connection each, fed by one run of the scenario.

        Reading one stream runs the shared simulation as far as needed and keeps
        the other masters' messages until their streams are read.
        """
        source = self.messages(repeat=repeat)
        queues: dict[str, deque[TimedMessage]] = {key: deque() for key in self.masters}

        def stream(key: str) -> Iterator[TimedMessage]:
            queue = queues[key]
            while True:
                if queue:
                    yield queue.popleft()
                    continue
                timed = next(source, None)
                if timed is None:
                    return
                queues[timed.master].append(timed)

        return {key: stream(key) for key in self.masters}

    def notifications(self, *, repeat: bool = False) -> Iterator[dict[str, Any]]:
        """The messages of the scenario's first master only: what one NBWSS connection of it sends."""
        primary = self.scenario.masters[0].key
        return (t.message for t in self.messages(repeat=repeat) if t.master == primary)

    def perform(self, steps: tuple[Step, ...]) -> Iterator[TimedMessage]:
        """Run more steps on the same domain, from now, and release everything they caused.

        This is how operations are added one at a time (the pytest plugin's
        ``nbwss_master.backup()``): the domain's state carries on between calls.
        """
        yield from self._run_steps(steps, self.scheduler.now())
        yield from self.settle()

    def settle(self) -> Iterator[TimedMessage]:
        """After the steps: let what is still running (e.g. started by COMMAND requests) finish, and release it."""
        yield from self._advance(lambda: self.scheduler.next_due() is not None)
        yield from self._release(None)

    # -- steps -------------------------------------------------------------------

    def _run_steps(self, steps: tuple[Step, ...], cursor: float) -> Generator[TimedMessage, None, float]:
        for step in steps:
            cursor = yield from self._run_step(step, cursor)
        return cursor

    def _run_step(self, step: Step, cursor: float) -> Generator[TimedMessage, None, float]:
        if step.kind == "wait":
            return cast("float", cursor + step.options["seconds"])
        if step.kind == "repeat":
            every = step.options["every"]
            for iteration in range(step.options["times"]):
                begin = cursor + iteration * every if every is not None else cursor
                yield from self._advance_to(begin)
                end = yield from self._run_steps(step.steps, max(begin, self.scheduler.now()))
                if every is None:
                    cursor = end
            return max(cursor, self.scheduler.now()) if every is None else cursor + step.options["times"] * every
        count, spacing = step.options["count"], step.options["spacing"]
        started: list[Operation] = []
        for index in range(count):
            self.scheduler.call_at(cursor + index * spacing, lambda: started.append(self._start(step)))
        if step.options.get("wait", True):
            yield from self._advance(lambda: len(started) < count or not all(op.finished for op in started))
            return max(self.scheduler.now(), cursor)
        return cursor  # the operations go on alongside the next step

    def _start(self, step: Step) -> Operation:
        options = step.options
        key = options.get("master") or self.scenario.masters[0].key
        master = self.masters[key]
        if step.kind in ("backup", "fail"):
            policy = self._policy(step, master)
            operation = master.backup(
                policy.name,
                options.get("schedule", "full"),
                streams=options.get("streams"),
                status=options.get("status"),
                protection_plan=options.get("protection_plan", False),
            )
        elif step.kind == "cleanup":
            operation = master.image_cleanup()
        elif step.kind == "duplicate":
            operation = master.duplicate(
                master.pick_image("duplicate", options.get("pick", "newest"), self.rng), status=options.get("status")
            )
        elif step.kind == "catalog_backup":
            operation = master.catalog_backup(status=options.get("status"))
        elif step.kind == "restore":
            image = master.pick_image("restore", options.get("pick", "random"), self.rng)
            operation = master.restore(image, status=options.get("status"))
        elif step.kind == "expire":
            local = options.get("copies", "all") == "local"
            image = master.pick_image("expire-local" if local else "expire", options.get("pick", "oldest"), self.rng)
            operation = master.expire(image, local_only=local)
        else:  # replicate
            target = self._target(step, key)
            operation = master.replicate(master.pick_image("replicate", options.get("pick", "newest"), self.rng, target), target)
        if operation.skipped:
            self.notes.append(f"{step.where}: {step.label}: {operation.skipped} at scenario time {int(self.scheduler.now())}; skipped")
        self.operations.append(operation)
        return operation

    def _policy(self, step: Step, master: MasterServer) -> Policy:
        name, policy_type = step.options.get("policy"), step.options.get("policy_type")
        if name is not None:
            if name not in master.policies:
                raise ScenarioError(f"{step.where}: {step.label}.policy: {master.hostname} has no policy {name!r}")
            return master.policies[name]
        policies = [p for p in master.policies.values() if policy_type is None or p.policy_type == policy_type]
        if not policies:
            raise ScenarioError(f"{step.where}: {step.label}.policy_type: {master.hostname} has no {policy_type} clients")
        turn = self._round_robin.get((master.hostname, policy_type), 0)
        self._round_robin[(master.hostname, policy_type)] = turn + 1
        return policies[turn % len(policies)]

    def _target(self, step: Step, key: str) -> MasterServer:
        target_key = step.options.get("to") or next(m.replicate_to for m in self.scenario.masters if m.key == key)
        if target_key is None or target_key == key:
            raise ScenarioError(f"{step.where}: {step.label}: no replication target (give 'to' or the master's replicate_to)")
        target = self.masters[target_key]
        self.masters[key].add_replication_target(target)
        return target

    # -- moving time and releasing messages ------------------------------------

    def _advance_to(self, when: float) -> Iterator[TimedMessage]:
        self.scheduler.run_until(when)
        yield from self._release(self.scheduler.now())

    def _advance(self, condition: Callable[[], bool]) -> Iterator[TimedMessage]:
        # Release messages now and then so a long wait streams instead of piling up.
        while condition():
            due = self.scheduler.next_due()
            if due is None:
                return
            self.scheduler.run_while(condition, until=due + 3600)
            yield from self._release(self.scheduler.now())

    def _release(self, before: float | None) -> Iterator[TimedMessage]:
        """Messages of cycles that no later event can join (all, when ``before`` is None), in time order."""
        ready: list[tuple[float, int, TimedMessage]] = []
        for order, (key, master) in enumerate(self.masters.items()):
            outbox = self.outboxes[key]
            outbox.add(master.drain())
            for at, message in outbox.take(before):
                ready.append((at, order, TimedMessage(key, at, message)))
        ready.sort(key=lambda entry: (entry[0], entry[1]))
        for _, _, timed in ready:
            yield timed
