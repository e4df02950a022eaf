"""The plain objects of a NetBackup domain: clients, policies, jobs, images."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Client:
    """A protected machine (a host, or a virtual machine for VMware policies)."""

    name: str
    policy_type: str
    full_size_gb: float


@dataclass(slots=True)
class Schedule:
    """A policy schedule: its NBWSS type and how long its images are kept."""

    name: str
    schedule_type: str
    retention_seconds: int


@dataclass(slots=True)
class Policy:
    """A backup policy. VMware policies back up their clients (VMs) as children of one discovery job."""

    name: str
    policy_type: str
    clients: list[Client]
    schedules: dict[str, Schedule]
    streams: int = 1
    max_jobs: int = 4  # jobs of one run active at once (NetBackup's resource limits)


@dataclass(slots=True)
class Job:
    """A NetBackup job as the activity monitor shows it."""

    job_id: int
    parent_job_id: int
    job_type: str
    policy_name: str
    policy_type: str
    schedule_type: str
    client_name: str
    start_time: float
    state: str = "QUEUED"
    status: int = 0
    end_time: float | None = None
    children: list[int] = field(default_factory=list)
    backup_id: str | None = None  # the image the job made, restored or replicated

    @property
    def done(self) -> bool:
        return self.state == "DONE"


@dataclass(slots=True)
class ImageCopy:
    """One copy of an image. A replica is AIR's copy in another domain: not restorable here."""

    number: int
    replica: bool = False
    location: str = ""


@dataclass(slots=True)
class Image:
    """A backup image in the master's catalog."""

    backup_id: str
    client_name: str
    client_type: str
    backup_time: int
    policy_name: str
    schedule_type: str
    size_kb: int
    created_time: float
    retention_seconds: int
    copies: list[ImageCopy] = field(default_factory=lambda: [ImageCopy(1)])
    deleted_time: float | None = None
    deleted_by_job: int = 0  # the Image Cleanup (IMAGEDELETE) job that deleted it; 0 when expired otherwise
    job_id: int = 0
    replicating_to: set[str] = field(default_factory=set)  # AIR copies under way

    @property
    def deleted(self) -> bool:
        return self.deleted_time is not None

    @property
    def expires_at(self) -> int:
        """When the image's retention runs out (seconds since the epoch): Image Cleanup deletes it after that."""
        return self.backup_time + self.retention_seconds

    @property
    def has_local_copy(self) -> bool:
        return any(not copy.replica for copy in self.copies)

    def replicated_to(self, master: str) -> bool:
        """Whether a replica to ``master`` exists or is being made."""
        return master in self.replicating_to or any(copy.replica and copy.location == master for copy in self.copies)
