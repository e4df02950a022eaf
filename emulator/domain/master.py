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
  then an IMPORT job and IMAGE CREATE on the target master, with its own job ids;
* a VMware child job: its image CREATE, the child DONE, then an IMAGE UPDATE of
  the image (the capture shows a VMware child DONE followed by image UPDATEs);
* a VMware protection-plan run: the parent BACKUP job, per VM a SNAPSHOT job
  under the parent (``parentJobId`` = parent, as Veritas' API samples query
  it) that makes the image, and under each SNAPSHOT job the backup-from-snapshot
  BACKUP job that adds the image's second copy (IMAGE UPDATE after it is DONE);
* Image Cleanup: an IMAGEDELETE job, IMAGE DELETE for every image whose
  retention ran out, DONE;
* an SLP duplication: a DUPLICATE job, IMAGE UPDATE (copy added), DONE;
* the catalog backup: a DBBACKUP job of the NBU_CATALOG policy, its image, DONE.

The shapes of the last four are our inference from NetBackup's job types and
its documentation, not from NBWSS captures (see docs/notifications.md).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from emulator.domain.catalog import Candidates, Catalog
from emulator.domain.clock import Scheduler
from emulator.domain.model import Client, Image, ImageCopy, Job, Policy, Schedule
from emulator.domain.notifications import Notification, image_item, job_item
from emulator.domain.status import STATUS_CODES, Phase, describe, worst

#: Scale factor on NetBackup's usual failure mix: 1.0 realistic, 0.0 none.
Failures = float

# Size of an incremental image relative to the full one, by schedule type.
_CHANGE_RATE = {
    "ST_FULL": (1.0, 1.0),
    "ST_DINC": (0.01, 0.08),
    "ST_CINC": (0.04, 0.15),
    "ST_UBACKUP": (0.01, 0.05),
    "ST_UARCHIVE": (0.01, 0.05),
}
_RESTORE_FAILURE_RATE = 0.01
_RESTORE_FAILURE_CODE = 5

#: What makes an image fit for each purpose (the second argument names the AIR target).
_PURPOSES: dict[str, Callable[[Image, str], bool]] = {
    "restore": lambda image, _: image.has_local_copy,
    "expire": lambda image, _: True,
    "expire-local": lambda image, _: image.has_local_copy and any(copy.replica for copy in image.copies),
    "replicate": lambda image, target: image.has_local_copy and not image.replicated_to(target),
    "duplicate": lambda image, _: image.has_local_copy and not any(copy.location == SLP_COPY for copy in image.copies),
}

#: Where an SLP duplication puts its copy (a second local copy, unlike an AIR replica).
SLP_COPY = "slp-duplicate"
#: The catalog backup's policy (NetBackup's hot catalog backup policy type is NBU_CATALOG).
CATALOG_POLICY = "CatalogBackup"
_DAY = 86_400
#: How long a finished job stays in the job database: NetBackup's Clean-up host properties keep jobs
#: (KEEP_JOBS_HOURS, KEEP_JOBS_SUCCESSFUL_HOURS) 78 hours by default, then purge them.
KEEP_JOBS_HOURS = 78.0


def _in_turn(*actions: Callable[[], object]) -> Callable[[], None]:
    """One scheduler action that runs ``actions`` one after the other."""

    def run() -> None:
        for action in actions:
            action()

    return run


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
        keep_jobs_hours: float = KEEP_JOBS_HOURS,
    ) -> None:
        self.hostname = hostname
        self.scheduler = scheduler
        self.rng = rng
        self.clock_offset = clock_offset_hours * 3600
        self.failures = failures
        self.clients: dict[str, Client] = {}
        self.policies: dict[str, Policy] = {}
        self.jobs: dict[int, Job] = {}  # the job database: finished jobs purged keep_jobs_hours after they ended
        self.images: dict[str, Image] = {}  # deleted images stay as long as the jobs that may show them, deleted_time set
        self.keep_jobs = keep_jobs_hours * 3600
        # What the clean-up purges, in the order it falls due: top-level jobs that ended, images that were deleted.
        self._ended: deque[tuple[float, int]] = deque()
        self._deleted: deque[tuple[float, str]] = deque()
        self._live = Catalog()  # not deleted, oldest first
        self._replicated = Catalog()  # live, with a local copy and an AIR replica
        self._candidates = Candidates(self._live)  # oldest/newest picks from _live (see pick_image)
        self.replication_targets: dict[str, MasterServer] = {}
        self.vm_servers: dict[str, dict[str, object]] = {}  # VMware servers registered for VIP discovery
        self.notifications: list[Notification] = []
        self._next_job_id = first_job_id
        self._backup_ids: set[str] = set()
        self.catalog_policy = Policy(
            CATALOG_POLICY,
            "NBU_CATALOG",
            [Client(hostname, "NBU_CATALOG", round(rng.uniform(2, 40), 1))],
            {"full": Schedule("Full", "ST_FULL", 14 * _DAY)},
            max_jobs=1,
        )

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

        Cheap on a large catalog (see :mod:`emulator.domain.catalog`): random draws
        before it filters; oldest and newest take the top of a heap of candidates.
        """
        eligible = _PURPOSES[purpose]
        target_name = target.hostname if target is not None else ""
        pool = self._replicated if purpose == "expire-local" else self._live
        if how == "random":
            for _ in range(16):
                if not len(pool):
                    return None
                candidate = pool.choice(rng)
                if eligible(candidate, target_name):
                    return candidate
            images = [image for image in pool.values() if eligible(image, target_name)]
            return rng.choice(images) if images else None
        if pool is self._replicated or purpose == "expire":  # every image of the pool fits, or nearly: the first that does
            ordered = pool.values() if how == "oldest" else pool.newest_first()
            return next((image for image in ordered if eligible(image, target_name)), None)
        return self._candidates.first((purpose, target_name, how == "newest"), lambda image: eligible(image, target_name))

    def _catalog(self, image: Image) -> None:
        """Put ``image`` into the catalog of live images (the newest)."""
        self._live.add(image)
        self._candidates.reconsider(image)

    def drain(self) -> list[Notification]:
        """Take the notifications recorded so far."""
        taken, self.notifications = self.notifications, []
        return taken

    # -- operations -----------------------------------------------------------

    def backup(
        self,
        policy_name: str,
        schedule: str = "full",
        *,
        streams: int | None = None,
        status: int | None = None,
        protection_plan: bool = False,
    ) -> Operation:
        """Run ``policy_name`` now with the given schedule; ``status`` forces every job's exit status.

        ``protection_plan`` runs a VMware policy as a protection plan does: SNAPSHOT
        jobs under the parent, a backup-from-snapshot job under each.
        """
        policy = self.policies[policy_name]
        sched = policy.schedules.get(schedule) or policy.schedules["full"]
        operation = Operation("backup", self.now())
        if policy.policy_type == "VMWARE":
            self._vmware_run(policy, sched, status, operation, protection_plan)
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
            self._replicated.pop(image.backup_id)
            items = (
                image_item(image, "UPDATE", now, self.clock_offset),
                image_item(image, "NO_LOCAL_COPY_AVAILABLE", now, self.clock_offset),
            )
            self.notifications.append(Notification(now, "IMAGE", items))
        else:
            self._delete(image)
        operation.end_time = now
        return operation

    def image_cleanup(self) -> Operation:
        """NetBackup's Image Cleanup: an IMAGEDELETE job deleting every image whose retention ran out.

        The job's policy and schedule type are our inference (the REST sample shows
        an IMAGEDELETE job with an empty policy name).
        """
        operation = Operation("cleanup", self.now())
        job = self._new_job("IMAGEDELETE", "", "STANDARD", "ST_FULL", self.hostname)
        operation.jobs.append(job)
        self._set_state(job, "ACTIVE")

        def clean() -> None:
            now = self.now()
            for image in [image for image in self._live.values() if image.expires_at <= now]:
                image.deleted_by_job = job.job_id
                self._delete(image)
            self.scheduler.call_later(self.rng.uniform(1, 10), lambda: self._finish(job, 0, operation))

        self.scheduler.call_later(self.rng.uniform(5, 30), clean)
        return operation

    def duplicate(self, image: Image | None, *, status: int | None = None) -> Operation:
        """An SLP duplication of ``image``: a DUPLICATE job that adds a second local copy (IMAGE UPDATE)."""
        operation = Operation("duplicate", self.now())
        if image is None or image.deleted or not _PURPOSES["duplicate"](image, ""):
            return self._skip(operation, "no image to duplicate")
        job = self._new_job("DUPLICATE", f"SLP_{image.policy_name}", image.client_type, image.schedule_type, image.client_name)
        job.backup_id = image.backup_id
        operation.jobs.append(job)
        self._emit_job(job)  # queued until the SLP's duplication session picks it up
        final = status if status is not None else (84 if self.rng.random() < 0.002 * self.failures else 0)

        def copied() -> None:
            if final == 0 and not image.deleted:
                image.copies.append(ImageCopy(len(image.copies) + 1, location=SLP_COPY))
                self._candidates.reconsider(image)
                self._emit_image(image, "UPDATE")
            self._finish(job, final if not image.deleted else 191, operation)

        def active() -> None:
            self._set_state(job, "ACTIVE")
            self.scheduler.call_later(self._transfer_seconds(image.size_kb / 1_048_576, 100, 400), copied)

        self.scheduler.call_later(self.rng.uniform(30, 300), active)
        return operation

    def catalog_backup(self, *, status: int | None = None) -> Operation:
        """The catalog backup: a DBBACKUP job of the NBU_CATALOG policy, which makes an image of the master."""
        operation = Operation("catalog_backup", self.now())
        policy = self.catalog_policy
        (client,) = policy.clients
        job = self._new_job("DBBACKUP", policy.name, policy.policy_type, "ST_FULL", client.name)
        operation.jobs.append(job)
        self._emit_job(job)
        self._leaf_starter(job, policy, policy.schedules["full"], client, status)(lambda: self._end(operation))
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
            self._candidates.reconsider(image)
            if image.has_local_copy:
                self._replicated.add(image)
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

    def _vmware_run(self, policy: Policy, sched: Schedule, status: int | None, operation: Operation, plan: bool = False) -> None:
        parent = self._new_job("BACKUP", policy.name, policy.policy_type, sched.schedule_type, self.hostname)
        operation.jobs.append(parent)
        self._set_state(parent, "ACTIVE")  # the discovery job is first seen active

        def discovered() -> None:
            starters: list[Callable[[Callable[[], None]], None]]
            if plan:
                snapshots = [self._new_child(parent, vm.name, "SNAPSHOT") for vm in policy.clients]
                starters = [
                    self._snapshot_starter(snapshot, policy, sched, vm, status)
                    for snapshot, vm in zip(snapshots, policy.clients, strict=True)
                ]
            else:
                children = [self._new_child(parent, vm.name) for vm in policy.clients]
                starters = [
                    self._leaf_starter(child, policy, sched, vm, status) for child, vm in zip(children, policy.clients, strict=True)
                ]
            self._run_limited(starters, policy.max_jobs, lambda: self._finish_parent(parent, lambda: self._end(operation)))

        self.scheduler.call_later(self.rng.uniform(15, 90), discovered)

    def _snapshot_starter(
        self, snapshot: Job, policy: Policy, sched: Schedule, vm: Client, forced: int | None
    ) -> Callable[[Callable[[], None]], None]:
        """A protection plan's work for one VM: the SNAPSHOT job makes the image, then a BACKUP job under it copies it."""

        def start(done: Callable[[], None]) -> None:
            status = forced if forced is not None else self._draw_status(policy.policy_type)
            behaviour = describe(status)
            if behaviour.phase is Phase.QUEUED:

                def never_started() -> None:
                    self._finish(snapshot, status, None)
                    done()

                self.scheduler.call_later(self.rng.uniform(12, 180), never_started)
                return

            def snapped() -> None:
                if behaviour.phase is Phase.START:  # e.g. 156: the snapshot itself failed
                    self._finish(snapshot, status, None)
                    done()
                    return
                size_gb = vm.full_size_gb * self.rng.uniform(*_CHANGE_RATE.get(sched.schedule_type, (1.0, 1.0)))
                image = self._create_image(snapshot, policy, sched, size_gb)
                self._finish(snapshot, 0, None)
                backup = self._new_child(snapshot, vm.name)
                backup.backup_id = image.backup_id

                def copied() -> None:
                    self._finish(backup, status, None)
                    if behaviour.makes_image and not image.deleted:
                        image.copies.append(ImageCopy(len(image.copies) + 1))
                        self._candidates.reconsider(image)
                        self._emit_image(image, "UPDATE")
                    done()

                def active() -> None:
                    self._set_state(backup, "ACTIVE")
                    seconds = self._transfer_seconds(size_gb, 40, 160)
                    if behaviour.phase is Phase.MIDWAY:
                        seconds *= self.rng.uniform(0.1, 0.9)
                    self.scheduler.call_later(seconds, copied)

                self.scheduler.call_later(self.rng.uniform(3, 30), active)

            def active() -> None:
                self._set_state(snapshot, "ACTIVE")
                self.scheduler.call_later(self.rng.uniform(20, 120), snapped)

            self.scheduler.call_later(self.rng.uniform(3, 45), active)

        return start

    def _new_child(self, parent: Job, client_name: str, job_type: str = "BACKUP") -> Job:
        child = self._new_job(job_type, parent.policy_name, parent.policy_type, parent.schedule_type, client_name, parent.job_id)
        parent.children.append(child.job_id)
        self._emit_job(child)
        return child

    def _descendant_statuses(self, job: Job) -> list[int]:
        statuses = []
        for child_id in job.children:
            child = self.jobs[child_id]
            statuses.append(child.status)
            statuses.extend(self._descendant_statuses(child))
        return statuses

    def _finish_parent(self, parent: Job, then: Callable[[], None]) -> None:
        status = worst(self._descendant_statuses(parent))
        self.scheduler.call_later(self.rng.uniform(2, 20), _in_turn(lambda: self._finish(parent, status, None), then))

    def _leaf_starter(
        self, job: Job, policy: Policy, sched: Schedule, client: Client, forced: int | None
    ) -> Callable[[Callable[[], None]], None]:
        """Work that makes one image: queue, go active, move the data, catalog the image, end."""

        def start(done: Callable[[], None]) -> None:
            status = forced if forced is not None else self._draw_status(policy.policy_type)
            behaviour = describe(status)
            queued = self.rng.uniform(3, 45)
            if behaviour.phase is Phase.QUEUED:
                self.scheduler.call_later(queued * 4, _in_turn(lambda: self._finish(job, status, None), done))
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

                def ended() -> None:
                    self._finish(job, status, None)
                    self._after_child(job)
                    done()

                self.scheduler.call_later(seconds, ended)

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
                self._catalog(image)
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

    def _finish(self, job: Job, status: int, operation: Operation | None) -> None:
        job.status = status
        job.state = "DONE"
        job.end_time = self.now()
        self._emit_job(job)
        if operation is not None:
            self._end(operation)
        if job.parent_job_id == job.job_id:  # a family is purged whole, once its top job ended (children end first)
            self._ended.append((job.end_time, job.job_id))
            self._clean_up()

    def _clean_up(self) -> None:
        """Purge what the job database and the catalog no longer keep (cheap when nothing is due: a look at two heads).

        Without it a master's memory, and the REST answers listing its jobs, would
        grow with every hour it runs; NetBackup keeps 78 hours of job history.
        """
        horizon = self.now() - self.keep_jobs
        ended, jobs = self._ended, self.jobs
        while ended and ended[0][0] <= horizon:
            family = [ended.popleft()[1]]
            while family:
                job = jobs.pop(family.pop(), None)
                if job is not None:
                    family.extend(job.children)
        deleted, images = self._deleted, self.images
        while deleted and deleted[0][0] <= horizon - _DAY:  # a day more: a job touching the image may end after it went
            backup_id = deleted.popleft()[1]
            image = images.get(backup_id)
            if image is not None and image.deleted:
                del images[backup_id]
                self._backup_ids.discard(backup_id)

    def _end(self, operation: Operation) -> None:
        operation.end_time = self.now()

    def _skip(self, operation: Operation, reason: str) -> Operation:
        operation.skipped = reason
        operation.end_time = self.now()
        return operation

    def _after_child(self, job: Job) -> None:
        """A VMware child's image is updated once the child is DONE, as the capture shows."""
        if job.policy_type == "VMWARE" and job.parent_job_id != job.job_id and job.backup_id is not None:
            image = self.images.get(job.backup_id)
            if image is not None and not image.deleted:
                self._emit_image(image, "UPDATE")

    def _delete(self, image: Image) -> None:
        image.copies = []
        image.deleted_time = self.now()
        self._live.pop(image.backup_id)
        self._replicated.pop(image.backup_id)
        self._emit_image(image, "DELETE")
        self._deleted.append((image.deleted_time, image.backup_id))
        self._clean_up()

    def _create_image(self, job: Job, policy: Policy, sched: Schedule, size_gb: float) -> Image:
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
        self._catalog(image)
        job.backup_id = image.backup_id
        self._emit_image(image, "CREATE")
        return image

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
