"""What a master reports: notifications, and their NBWSS data items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.domain.model import Image, Job


@dataclass(frozen=True, slots=True)
class Notification:
    """Data items of one object kind that NetBackup reports together.

    ``at`` is the true time of the event. Items of one notification always
    travel in the same message (AIR's UPDATE + NO_LOCAL_COPY_AVAILABLE pair).
    """

    at: float
    object: str  # "JOB" or "IMAGE"
    items: tuple[dict[str, Any], ...]


def job_item(job: Job, clock_offset: int) -> dict[str, Any]:
    """The JOB data item, members in the order NBWSS captures show them."""
    return {
        "scheduleType": job.schedule_type,
        "clientName": job.client_name,
        "status": job.status,
        "startTime": int(job.start_time) + clock_offset,
        "state": job.state,
        "policyName": job.policy_name,
        "parentJobId": job.parent_job_id,
        "jobId": job.job_id,
        "policyType": job.policy_type,
        "jobType": job.job_type,
    }


def image_item(image: Image, operation: str, at: float, clock_offset: int) -> dict[str, Any]:
    """The IMAGE data item for ``operation`` at time ``at``, members in captured order."""
    return {
        "clientType": image.client_type,
        "clientName": image.client_name,
        "backupTime": image.backup_time,
        "createdTime": int(at) + clock_offset,
        "operationId": operation,
        "backupId": image.backup_id,
    }
