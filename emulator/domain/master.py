"""The emulated NetBackup master server: its state, and operations in NetBackup's order.

Every operation schedules its steps on the injected :class:`Scheduler` and
changes plain objects (jobs, images) when those steps run; each change that
NBWSS reports is appended to :attr:`MasterServer.notifications`. So the state
is always what the master would show at the scheduler's current time, and the
notifications come out in the order NetBackup produces them:

* a backup job of a STANDARD-like policy: QUEUED, ACTIVE, image CREATE, DONE;
* a VMware Intelligent Policy run: the parent discovery job ACTIVE, one child
  job per VM (``parentJobId`` = parent), each with its image, the children DONE,
  then the parent DONE with the worst child status;
* multiple data streams: a parent job per client and a child job and image
  per stream, the same parent/child shape;
* a restore: a RESTORE job with an empty policy name, ACTIVE then DONE;
* an expiry: IMAGE DELETE, or for AIR, when only replicas remain, UPDATE and
  NO_LOCAL_COPY_AVAILABLE for the same image in one notification;
* AIR replication: a REPLICATE job on the source, IMAGE UPDATE (copy added),
  then an IMPORT job and IMAGE CREATE on the target master, with its own job ids.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from emulator.domain.clock import Scheduler
from emulator.domain.model import Client, Image, ImageCopy, Job, Policy, Schedule
from emulator.domain.notifications import Notification, image_item, job_item
from emulator.domain.status import STATUS_CODES, Phase, describe, worst

#: Scale factor on NetBackup's usual failure mix: 1.0 realistic, 0.0 none.
Failures = float

# Size of an incremental image relative to the full one, by schedule type.
_CHANGE_RATE = {"ST_FULL": (1.0, 1.0), "ST_INCR": (0.01, 0.08), "ST_CINC": (0.04, 0.15), "ST_UBAK": (0.01, 0.05), "ST_UARC": (0.01, 0.05)}
_RESTORE_FAILURE_RATE = 0.01
_RESTORE_FAILURE_CODE = 5

#: What makes an image fit for each purpose (the second argument names the AIR target).
_PURPOSES: dict[str, Callable[[Image, str], bool]] = {
    "restore": lambda image, _: image.has_local_copy,
    "expire": lambda image, _: True,
    "expire-local": lambda image, _: image.has_local_copy and any(copy.replica for copy in image.copies),
    "replicate": lambda image, target: image.has_local_copy and not image.replicated_to(target),
}


@dataclass(slots=True)
class Operation:
    """A scenario-level operation (a policy run, a restore, ...) and its outcome."""

    kind: str
    started: float
    jobs: list[Job] = field(default_factory=list)
    end_time: float | None = None
    skipped: str | None = None  # why nothing was done, e.g. no image to restore

    @property
    def finished(self) -> bool:
        return self.end_time is not None


class MasterServer:
    """One NetBackup domain: clients, policies, jobs, the image catalog, AIR targets."""

    def __init__(
        self,
        hostname: str,
        scheduler: Scheduler,
        rng: random.Random,
        *,
        clock_offset_hours: int = 0,
        failures: Failures = 1.0,
        first_job_id: int = 1,
    ) -> None:
        self.hostname = hostname
        self.scheduler = scheduler
        self.rng = rng
        self.clock_offset = clock_offset_hours * 3600
        self.failures = failures
        self.clients: dict[str, Client] = {}
        self.policies: dict[str, Policy] = {}
        self.jobs: dict[int, Job] = {}
        self.images: dict[str, Image] = {}  # deleted images stay, with deleted_time set
        self._live: dict[str, Image] = {}  # not deleted, oldest first
        self._replicated: dict[str, Image] = {}  # live, with a local copy and an AIR replica
        self.replication_targets: dict[str, MasterServer] = {}
        self.vm_servers: dict[str, dict[str, object]] = {}  # VMware servers registered for VIP discovery
        self.notifications: list[Notification] = []
        self._next_job_id = first_job_id
        self._backup_ids: set[str] = set()

    # -- configuration --------------------------------------------------------

    def add_policy(self, policy: Policy) -> None:
        """Register a policy and its clients."""
        self.policies[policy.name] = policy
        for client in policy.clients:
            self.clients.setdefault(client.name, client)

    def add_replication_target(self, target: MasterServer) -> None:
        """Make ``target`` an AIR destination of this master."""
        self.replication_targets[target.hostname] = target

    # -- queries --------------------------------------------------------------

    def now(self) -> float:
        return self.scheduler.now()

    def live_images(self) -> list[Image]:
        """Images in the catalog now, oldest first."""
        return list(self._live.values())

    def restorable_images(self) -> list[Image]:
        """Live images with a local copy, oldest first."""
        return [image for image in self._live.values() if _PURPOSES["restore"](image, "")]

    def expirable_images(self, *, local_only: bool = False) -> list[Image]:
        """Live images; with ``local_only``, those whose local copies can go while AIR replicas stay."""
        if not local_only:
            return self.live_images()
        return [image for image in self._replicated.values() if _PURPOSES["expire-local"](image, "")]

    def replicable_images(self, target: MasterServer) -> list[Image]:
        """Live images with a local copy and no replica to ``target`` yet."""
        return [image for image in self._live.values() if _PURPOSES["replicate"](image, target.hostname)]

    def pick_image(self, purpose: str, how: str, rng: random.Random, target: MasterServer | None = None) -> Image | None:
        """One image fit for ``purpose`` (restore, expire, expire-local, replicate): the oldest, newest or a random one.

        Cheap on a large catalog: oldest and newest stop at the first fit, random draws before it filters.
        """
        eligible = _PURPOSES[purpose]
        target_name = target.hostname if target is not None else ""
        pool = self._replicated if purpose == "expire-local" else self._live
        if how == "random":
            images = list(pool.values())
            for _ in range(16):
                if not images:
                    return None
                candidate = rng.choice(images)
                if eligible(candidate, target_name):
                    return candidate
            images = [image for image in images if eligible(image, target_name)]
            return rng.choice(images) if images else None
        ordered = pool.values() if how == "oldest" else reversed(pool.values())
        return next((image for image in ordered if eligible(image, target_name)), None)

    def drain(self) -> list[Notification]:
        """Take the notifications recorded so far."""
        taken, self.notifications = self.notifications, []
        return taken

    # -- operations -----------------------------------------------------------

    def backup(self, policy_name: str, schedule: str = "full", *, streams: int | None = None, status: int | None = None) -> Operation:
        """Run ``policy_name`` now with the given schedule; ``status`` forces every job's exit status."""
        policy = self.policies[policy_name]
        sched = policy.schedules.get(schedule) or policy.schedules["full"]
        operation = Operation("backup", self.now())
        if policy.policy_type == "VMWARE":
            self._vmware_run(policy, sched, status, operation)
        else:
            self._standard_run(policy, sched, streams or policy.streams, status, operation)
        return operation

    def restore(self, image: Image | None, *, status: int | None = None) -> Operation:
        """Restore ``image`` to its client: a RESTORE job, ACTIVE then DONE."""
        operation = Operation("restore", self.now())
        if image is None or image.deleted or not image.has_local_copy:
            return self._skip(operation, "no restorable image")
        job = self._new_job("RESTORE", "", image.client_type, "ST_FULL", image.client_name)
        job.backup_id = image.backup_id
        operation.jobs.append(job)
        if status is None:
            status = _RESTORE_FAILURE_CODE if self.rng.random() < _RESTORE_FAILURE_RATE * self.failures else 0
        self._set_state(job, "ACTIVE")
        seconds = self._transfer_seconds(image.size_kb / 1_048_576, 60, 250)
        if not describe(status).makes_image:
            seconds *= self.rng.uniform(0.1, 0.9)
        self.scheduler.call_later(seconds, lambda: self._finish(job, status, operation))
        return operation

    def expire(self, image: Image | None, *, local_only: bool = False) -> Operation:
        """Expire ``image``: every copy (DELETE), or its local copies only (AIR)."""
        operation = Operation("expire", self.now())
        if image is None or image.deleted:
            return self._skip(operation, "no image to expire")
        now = self.now()
        replicas = [copy for copy in image.copies if copy.replica]
        if local_only and replicas and image.has_local_copy:
            image.copies = replicas
            self._replicated.pop(image.backup_id, None)
            items = (
                image_item(image, "UPDATE", now, self.clock_offset),
                image_item(image, "NO_LOCAL_COPY_AVAILABLE", now, self.clock_offset),
            )
            self.notifications.append(Notification(now, "IMAGE", items))
        else:
            image.copies = []
            image.deleted_time = now
            self._live.pop(image.backup_id, None)
            self._replicated.pop(image.backup_id, None)
            self._emit_image(image, "DELETE")
        operation.end_time = now
        return operation

    def replicate(self, image: Image | None, target: MasterServer) -> Operation:
        """Auto Image Replication of ``image`` to ``target``'s domain."""
        operation = Operation("replicate", self.now())
        if image is None or image.deleted or not image.has_local_copy or image.replicated_to(target.hostname):
            return self._skip(operation, "no image to replicate")
        job = self._new_job("REPLICATE", image.policy_name, image.client_type, image.schedule_type, image.client_name)
        job.backup_id = image.backup_id
        operation.jobs.append(job)
        image.replicating_to.add(target.hostname)
        self._set_state(job, "ACTIVE")

        def copied() -> None:
            image.replicating_to.discard(target.hostname)
            if image.deleted:  # expired while copying: the copy has nowhere to go
                self._finish(job, 191, operation)  # 191: no images were successfully processed
                return
            image.copies.append(ImageCopy(len(image.copies) + 1, replica=True, location=target.hostname))
            if image.has_local_copy:
                self._replicated[image.backup_id] = image
            self._emit_image(image, "UPDATE")
            self._finish(job, 0, None)
            delay = self.rng.uniform(30, 300)  # the target's import manager polls for new replicas
            self.scheduler.call_later(delay, lambda: target._import(image, self.hostname, operation))

        self.scheduler.call_later(self._transfer_seconds(image.size_kb / 1_048_576, 80, 300), copied)
        return operation

    # -- what each operation is made of ----------------------------------------

    def _standard_run(self, policy: Policy, sched: Schedule, streams: int, status: int | None, operation: Operation) -> None:
        starters = []
        for client in policy.clients:
            if streams > 1:
                starters.append(self._multistream_starter(policy, sched, client, streams, status, operation))
            else:
                job = self._new_job("BACKUP", policy.name, policy.policy_type, sched.schedule_type, client.name)
                operation.jobs.append(job)
                self._emit_job(job)
                starters.append(self._leaf_starter(job, policy, sched, client, status))
        self._run_limited(starters, policy.max_jobs, lambda: self._end(operation))

    def _multistream_starter(
        self, policy: Policy, sched: Schedule, client: Client, streams: int, status: int | None, operation: Operation
    ) -> Callable[[Callable[[], None]], None]:
        parent = self._new_job("BACKUP", policy.name, policy.policy_type, sched.schedule_type, client.name)
        operation.jobs.append(parent)
        self._emit_job(parent)

        def start(done: Callable[[], None]) -> None:
            self._set_state(parent, "ACTIVE")
            share = Client(client.name, client.policy_type, client.full_size_gb / streams)
            children = [self._new_child(parent, client.name) for _ in range(streams)]
            starters = [self._leaf_starter(child, policy, sched, share, status) for child in children]
            self._run_limited(starters, streams, lambda: self._finish_parent(parent, done))

        return start

    def _vmware_run(self, policy: Policy, sched: Schedule, status: int | None, operation: Operation) -> None:
        parent = self._new_job("BACKUP", policy.name, policy.policy_type, sched.schedule_type, self.hostname)
        operation.jobs.append(parent)
        self._set_state(parent, "ACTIVE")  # the discovery job is first seen active

        def discovered() -> None:
            children = [self._new_child(parent, vm.name) for vm in policy.clients]
            starters = [self._leaf_starter(child, policy, sched, vm, status) for child, vm in zip(children, policy.clients, strict=True)]
            self._run_limited(starters, policy.max_jobs, lambda: self._finish_parent(parent, lambda: self._end(operation)))

        self.scheduler.call_later(self.rng.uniform(15, 90), discovered)

    def _new_child(self, parent: Job, client_name: str) -> Job:
        child = self._new_job("BACKUP", parent.policy_name, parent.policy_type, parent.schedule_type, client_name, parent.job_id)
        parent.children.append(child.job_id)
        self._emit_job(child)
        return child

    def _finish_parent(self, parent: Job, then: Callable[[], None]) -> None:
        status = worst([self.jobs[c].status for c in parent.children])
        self.scheduler.call_later(self.rng.uniform(2, 20), lambda: self._finish_then(parent, status, then))

    def _leaf_starter(
        self, job: Job, policy: Policy, sched: Schedule, client: Client, forced: int | None
    ) -> Callable[[Callable[[], None]], None]:
        """Work that makes one image: queue, go active, move the data, catalog the image, end."""

        def start(done: Callable[[], None]) -> None:
            status = forced if forced is not None else self._draw_status(policy.policy_type)
            behaviour = describe(status)
            queued = self.rng.uniform(3, 45)
            if behaviour.phase is Phase.QUEUED:
                self.scheduler.call_later(queued * 4, lambda: self._finish_then(job, status, done))
                return

            def active() -> None:
                self._set_state(job, "ACTIVE")
                size_gb = client.full_size_gb * self.rng.uniform(*_CHANGE_RATE.get(sched.schedule_type, (1.0, 1.0)))
                seconds = self._transfer_seconds(size_gb, 40, 160)
                if behaviour.phase is Phase.START:
                    seconds = self.rng.uniform(5, 60)
                elif behaviour.phase is Phase.MIDWAY:
                    seconds *= self.rng.uniform(0.1, 0.9)
                if behaviour.makes_image:
                    catalogued = seconds - self.rng.uniform(1, min(5, seconds / 2))
                    self.scheduler.call_later(catalogued, lambda: self._create_image(job, policy, sched, size_gb))
                self.scheduler.call_later(seconds, lambda: self._finish_then(job, status, done))

            self.scheduler.call_later(queued, active)

        return start

    def _import(self, source_image: Image, source: str, operation: Operation) -> None:
        """The target side of AIR: an IMPORT job that catalogs the replica as a local image."""
        job = self._new_job(
            "IMPORT", source_image.policy_name, source_image.client_type, source_image.schedule_type, source_image.client_name
        )
        job.backup_id = source_image.backup_id
        operation.jobs.append(job)
        self._set_state(job, "ACTIVE")

        def imported() -> None:
            now = self.now()
            image = Image(
                backup_id=source_image.backup_id,
                client_name=source_image.client_name,
                client_type=source_image.client_type,
                backup_time=source_image.backup_time,
                policy_name=source_image.policy_name,
                schedule_type=source_image.schedule_type,
                size_kb=source_image.size_kb,
                created_time=now,
                retention_seconds=source_image.retention_seconds,
                copies=[ImageCopy(1, location=source)],
                job_id=job.job_id,
            )
            if image.backup_id not in self._live:
                self.images[image.backup_id] = image
                self._live[image.backup_id] = image
                self._backup_ids.add(image.backup_id)
                self._emit_image(image, "CREATE")
            self.scheduler.call_later(self.rng.uniform(1, 5), lambda: self._finish(job, 0, operation))

        self.scheduler.call_later(self.rng.uniform(10, 120), imported)

    # -- state changes and what they report -------------------------------------

    def _new_job(
        self, job_type: str, policy_name: str, policy_type: str, schedule_type: str, client_name: str, parent_id: int | None = None
    ) -> Job:
        job_id = self._next_job_id
        self._next_job_id += 1
        job = Job(job_id, parent_id or job_id, job_type, policy_name, policy_type, schedule_type, client_name, self.now())
        self.jobs[job_id] = job
        return job

    def _set_state(self, job: Job, state: str) -> None:
        job.state = state
        self._emit_job(job)

    def _finish_then(self, job: Job, status: int, then: Callable[[], None]) -> None:
        self._finish(job, status, None)
        then()

    def _finish(self, job: Job, status: int, operation: Operation | None) -> None:
        job.status = status
        job.state = "DONE"
        job.end_time = self.now()
        self._emit_job(job)
        if operation is not None:
            self._end(operation)

    def _end(self, operation: Operation) -> None:
        operation.end_time = self.now()

    def _skip(self, operation: Operation, reason: str) -> Operation:
        operation.skipped = reason
        operation.end_time = self.now()
        return operation

    def _create_image(self, job: Job, policy: Policy, sched: Schedule, size_gb: float) -> None:
        backup_time = int(job.start_time)
        while f"{job.client_name}_{backup_time}" in self._backup_ids:
            backup_time += 1  # two images of a client never share a second
        image = Image(
            backup_id=f"{job.client_name}_{backup_time}",
            client_name=job.client_name,
            client_type=policy.policy_type,
            backup_time=backup_time,
            policy_name=policy.name,
            schedule_type=sched.schedule_type,
            size_kb=max(1, int(size_gb * 1_048_576)),
            created_time=self.now(),
            retention_seconds=sched.retention_seconds,
            job_id=job.job_id,
        )
        self._backup_ids.add(image.backup_id)
        self.images[image.backup_id] = image
        self._live[image.backup_id] = image
        job.backup_id = image.backup_id
        self._emit_image(image, "CREATE")

    def _emit_job(self, job: Job) -> None:
        self.notifications.append(Notification(self.now(), "JOB", (job_item(job, self.clock_offset),)))

    def _emit_image(self, image: Image, operation: str) -> None:
        now = self.now()
        self.notifications.append(Notification(now, "IMAGE", (image_item(image, operation, now, self.clock_offset),)))

    # -- helpers ----------------------------------------------------------------

    def _run_limited(self, starters: Iterable[Callable[[Callable[[], None]], None]], limit: int, all_done: Callable[[], None]) -> None:
        """Start work units at most ``limit`` at a time; call ``all_done`` after the last ends."""
        waiting = deque(starters)
        remaining = len(waiting)
        if remaining == 0:
            all_done()
            return

        def one_done() -> None:
            nonlocal remaining
            remaining -= 1
            if waiting:
                waiting.popleft()(one_done)
            elif remaining == 0:
                all_done()

        for _ in range(min(max(1, limit), len(waiting))):
            waiting.popleft()(one_done)

    def _draw_status(self, policy_type: str) -> int:
        if self.failures <= 0:
            return 0
        draw = self.rng.random()
        for status in STATUS_CODES.values():
            if status.vmware_only and policy_type != "VMWARE":
                continue
            draw -= status.backup_rate * self.failures
            if draw < 0:
                return status.code
        return 0

    def _transfer_seconds(self, size_gb: float, low_mb_s: float, high_mb_s: float) -> float:
        return self.rng.uniform(20, 90) + size_gb * 1024 / self.rng.uniform(low_mb_s, high_mb_s)
