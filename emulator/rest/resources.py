"""The master's objects as the NetBackup REST API shows them (attributes per the OpenAPI files).

Every attribute is derived here from the domain's jobs and images, so the domain keeps its
NBWSS words (``ST_FULL``, ``MS_WINDOWS``) and the REST face says NetBackup's REST enums
(``FULL_BACKUP``/``FULL``, ``WINDOWS``). Values the domain does not model (media servers,
process ids, dedup ratios) are NetBackup's neutral values; what is derived is our inference
from NetBackup's meaning of each attribute (the docs page lists which).
"""

from __future__ import annotations

import time
from typing import Any

from emulator.domain.master import MasterServer
from emulator.domain.model import Image, Job
from emulator.rest.odata import COMPARE, EQUALITY, TEXT, Field

#: NBWSS schedule type -> the jobs API's scheduleType and the images API's. Both the old
#: (ST_INCR, ST_UBAK, ST_UARC) and NetBackup's own names (ST_DINC, ST_UBACKUP, ST_UARCHIVE) map.
SCHEDULE_TYPES: dict[str, tuple[str, str]] = {
    "ST_FULL": ("FULL_BACKUP", "FULL"),
    "ST_DINC": ("DIFFERENTIAL_INCREMENTAL_BACKUP", "DIFFERENTIAL_INCREMENTAL"),
    "ST_INCR": ("DIFFERENTIAL_INCREMENTAL_BACKUP", "DIFFERENTIAL_INCREMENTAL"),
    "ST_CINC": ("CUMULATIVE_INCREMENTAL_BACKUP", "CUMULATIVE_INCREMENTAL"),
    "ST_UBACKUP": ("USER_BACKUP", "USER_BACKUP"),
    "ST_UBAK": ("USER_BACKUP", "USER_BACKUP"),
    "ST_UARCHIVE": ("USER_ARCHIVE", "USER_ARCHIVE"),
    "ST_UARC": ("USER_ARCHIVE", "USER_ARCHIVE"),
}
DEFAULT_SCHEDULE = ("FULL_BACKUP", "FULL")

#: NBWSS policy type -> the REST policyType (NetBackup's policy type names in its REST enum).
POLICY_TYPES: dict[str, str] = {
    "STANDARD": "STANDARD",
    "MS_WINDOWS": "WINDOWS",
    "NETWARE": "NETWARE",
    "ORACLE": "OBACKUP",
    "MS_SQL_SERVER": "SQL_SERVER",
    "MS_EXCHANGE_SERVER": "EXCHANGE",
    "MS_SHAREPOINT": "SHAREPOINT",
    "LOTUS_NOTES": "LOTUS_NOTES",
    "DB2": "DB2",
    "SAP": "SAP",
    "SYBASE": "SYBASE",
    "INFORMIX_ON_BAR": "INFORMIX",
    "FLASHBACKUP": "FLASHBACKUP",
    "FLASHBACKUP_WINDOWS": "FBU_WINDOWS",
    "NDMP": "NDMP",
    "VMWARE": "VMWARE",
    "HYPER_V": "HYPERV",
    "ENTERPRISE_VAULT": "ENTERPRISE_VAULT",
    "NBU_CATALOG": "NBU_CATALOG",
    "VAULT": "VAULT",
    "SPLIT_MIRROR": "SPLITMIRROR",
    "AFS": "AFS",
    "DATASTORE": "DATASTORE",
    "BIGDATA": "BIGDATA",
    "HYPERVISOR": "HYPERVISOR",
    "CLOUD_OBJECT_STORE": "CLOUD",
    "UNIVERSAL_SHARE": "UNIVERSAL_SHARE",
    "NAS_DATA_PROTECTION": "NAS_DATA_PROTECTION",
}
DEFAULT_POLICY_TYPE = "GENERIC"  # KUBERNETES, MYSQL, POSTGRESQL, MONGODB: no REST name of their own

#: The jobs API's jobType values (the domain's are NBWSS's, a subset but for LIVEUPDATE).
JOB_TYPES = frozenset(
    [
        "BACKUP",
        "ARCHIVE",
        "RESTORE",
        "VERIFY",
        "DUPLICATE",
        "IMPORT",
        "DBBACKUP",
        "VAULT",
        "LABEL",
        "ERASE",
        "TPREQ",
        "TPCLEAN",
        "TPFORMAT",
        "VMPHYSINV",
        "DQTS",
        "DBRECOVER",
        "MCONTENTS",
        "IMAGEDELETE",
        "GENERIC",
        "REPLICATE",
        "REPLICA_IMPORT",
        "SNAPDUPE",
        "SNAPREPLICATE",
        "SNAPIMPORT",
        "APP_STATE_CAPTURE",
        "INDEXING",
        "INDEXCLEANUP",
        "SNAPSHOT",
        "SNAPINDEX",
        "ACTIVATE_IR",
        "DEACTIVATE_IR",
        "REACTIVATE_IR",
        "STOP_IR",
        "INSTANT_RECOVERY",
        "RMAN_CATALOG",
        "LOCKVM",
        "DEPLOYMENT",
        "INSTANT_ACCESS",
        "CLOUD_SNAPSHOT_REPLICATE",
        "PREPARING_FOR_BACKUP",
        "INSTANT_SYNC",
        "TRIAL_BACKUP",
        "MULTIPLE_STORAGE_METADATA",
    ]
)
#: Job types that move an image's data: their kilobytes are the image's.
_DATA_JOBS = frozenset({"BACKUP", "ARCHIVE", "RESTORE", "DUPLICATE", "IMPORT", "REPLICATE", "REPLICA_IMPORT", "DBBACKUP", "SNAPDUPE"})
#: currentOperation of an ACTIVE job per type (NetBackup's codes: 3 WRITING, 10 READING, 11 DUPLICATE, ...).
_OPERATIONS = {"BACKUP": 3, "ARCHIVE": 3, "RESTORE": 14, "DUPLICATE": 11, "IMPORT": 12, "REPLICATE": 29, "DBBACKUP": 15}
#: kilobytes per file, to derive numberOfFiles from an image's size (our inference).
KB_PER_FILE = 256

FILTER_JOBS: dict[str, Field] = {
    **{n: Field("integer", COMPARE) for n in ("jobId", "parentJobId", "status", "transferRate", "kilobytesTransferred")},
    **{n: Field("integer", COMPARE) for n in ("activeProcessId", "try", "numberOfFiles", "priority", "sessionId")},
    **{n: Field("integer", COMPARE) for n in ("percentComplete", "copyNumber", "numberOfTapeToEject")},
    **{n: Field("integer", EQUALITY) for n in ("currentOperation", "qReasonCode")},
    **{n: Field("number", COMPARE) for n in ("dedupRatio", "acceleratorOptimization")},
    **{n: Field("date-time", COMPARE) for n in ("endTime", "startTime", "lastUpdateTime", "activeTryStartTime")},
    **{n: Field("duration", COMPARE) for n in ("activeElapsedTime", "elapsedTime")},
    **{n: Field("string", EQUALITY) for n in ("state", "jobType", "policyType", "offHostType")},
    "policyName": Field("string", TEXT),
    **{
        n: Field("string", EQUALITY | TEXT)
        for n in (
            "clientName",
            "restoreBackupIDs",
            "assetDisplayableName",
            "workloadDisplayName",
            "jobPath",
            "destinationMediaServerName",
            "sourceMediaServerName",
            "scheduleName",
        )
    },
    **{
        n: Field("string", frozenset({"eq"}))
        for n in (
            "assetID",
            "backupId",
            "destinationStorageUnitName",
            "destinationMediaId",
            "applicationType",
            "dteMode",
            "jobOwner",
            "dataMovement",
            "instanceDatabaseName",
            "profileName",
            "robotName",
            "transportType",
            "vaultName",
            "qResource",
            "dumpHost",
            "currentFile",
        )
    },
}

FILTER_IMAGES: dict[str, Field] = {
    **{
        n: Field("string", frozenset({"eq"}))
        for n in ("appType", "backupId", "clientName", "policyType", "scheduleType", "providerGeneratedId", "imageDteMode", "keyword")
    },
    "policyName": Field("string", frozenset({"eq", "contains"})),
    "backupTime": Field("date-time", frozenset({"ge", "le"})),
    "streamNumber": Field("integer", frozenset({"eq"})),
}

FILTER_VMSERVERS: dict[str, Field] = {
    "serverName": Field("string", COMPARE | TEXT),
    "serverType": Field("string", EQUALITY),
}

#: The jobs API's sortable attributes (a subset of the OpenAPI list: those with a value here).
SORT_JOBS = frozenset(
    [
        "jobId",
        "parentJobId",
        "jobType",
        "policyType",
        "policyName",
        "clientName",
        "status",
        "state",
        "startTime",
        "endTime",
        "scheduleType",
        "scheduleName",
        "kilobytesTransferred",
        "numberOfFiles",
        "percentComplete",
        "lastUpdateTime",
        "backupId",
        "elapsedTime",
        "transferRate",
    ]
)


def iso(epoch: float) -> str:
    """NetBackup's UTC date-time: ``2026-01-01T00:00:00.000Z``."""
    whole = int(epoch // 1)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((epoch - whole) * 1000):03d}Z"


def duration(seconds: float) -> str:
    """An ISO 8601 duration as NetBackup writes elapsed times: ``PT5M46S``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + (f"{secs}S" if secs or text == "PT" else "")


def schedule_types(nbwss: str) -> tuple[str, str]:
    """The (jobs, images) REST scheduleType of an NBWSS schedule type."""
    return SCHEDULE_TYPES.get(nbwss, DEFAULT_SCHEDULE)


def policy_type(nbwss: str) -> str:
    return POLICY_TYPES.get(nbwss, DEFAULT_POLICY_TYPE)


def schedule_name(master: MasterServer, policy_name: str, nbwss_type: str) -> str:
    """The name of the policy's schedule of that type ('' when the job has none, e.g. a restore)."""
    policy = master.policies.get(policy_name)
    if policy is None:
        return ""
    for schedule in policy.schedules.values():
        if schedule.schedule_type == nbwss_type:
            return schedule.name
    return ""


def job_resource(job: Job, master: MasterServer, now: float, base: str) -> dict[str, Any]:
    """A job of ``master`` as ``GET /admin/jobs`` shows it at scenario time ``now``."""
    image = master.images.get(job.backup_id) if job.backup_id else None
    done = job.state == "DONE"
    end = job.end_time if done and job.end_time is not None else None
    elapsed = (end if end is not None else max(now, job.start_time)) - job.start_time
    moved = job.job_type in _DATA_JOBS and image is not None
    kilobytes = image.size_kb if moved and image is not None else 0
    if done:
        percent = 100
    elif image is not None:
        percent = 99  # the image is catalogued shortly before the job ends
    else:
        percent = 0
    files = 0 if kilobytes == 0 else max(1, kilobytes // KB_PER_FILE)
    rate = int(kilobytes / elapsed) if elapsed > 0 else 0
    parent = job.parent_job_id if job.parent_job_id != job.job_id else 0
    jobs_schedule, _ = schedule_types(job.schedule_type)
    last_update = end if end is not None else max(now, job.start_time)
    attributes: dict[str, Any] = {
        "jobId": job.job_id,
        "parentJobId": parent,
        "jobType": job.job_type if job.job_type in JOB_TYPES else "GENERIC",
        "jobSubType": "SCHEDULED" if job.job_type == "BACKUP" else "IMMEDIATE",
        "policyType": policy_type(job.policy_type),
        "policyName": job.policy_name,
        "scheduleType": jobs_schedule,
        "scheduleName": schedule_name(master, job.policy_name, job.schedule_type),
        "clientName": job.client_name,
        "controlHost": master.hostname,
        "jobOwner": "root",
        "jobGroup": "root",
        "backupId": job.backup_id or "",
        "restoreBackupIDs": (job.backup_id or "") if job.job_type == "RESTORE" else "",
        "sourceMediaId": "",
        "sourceStorageUnitName": "",
        "sourceMediaServerName": "",
        "destinationMediaId": "",
        "destinationStorageUnitName": "",
        "destinationMediaServerName": "",
        "dataMovement": "STANDARD",
        "streamNumber": 0,
        "copyNumber": 1 if job.job_type in ("DUPLICATE", "REPLICATE", "IMPORT") else 0,
        "priority": 0,
        "retentionLevel": 0,
        "compression": 0,
        "status": job.status,
        "state": job.state,
        "numberOfFiles": files,
        "estimatedFiles": files,
        "kilobytesTransferred": kilobytes,
        "kilobytesDataTransferred": kilobytes,
        "kilobytesToTransfer": 0,
        "transferRate": rate,
        "percentComplete": percent,
        "restartable": 1 if done and job.status not in (0, 1) else 0,
        "suspendable": 0,
        "resumable": 0,
        "cancellable": 0 if done else 1,
        "frozenImage": 1 if job.job_type == "SNAPSHOT" else 0,
        "transportType": "LAN",
        "currentOperation": _OPERATIONS.get(job.job_type, 30) if job.state == "ACTIVE" else 0,
        "jobQueueReason": 0,
        "jobQueueResource": "",
        "robotName": "",
        "vaultName": "",
        "profileName": "",
        "sessionId": 0,
        "numberOfTapeToEject": 0,
        "submissionType": 0,
        "dumpHost": "",
        "instanceDatabaseName": "",
        "auditUserName": "",
        "auditDomainName": "",
        "auditDomainType": 0,
        "startTime": iso(job.start_time),
        "activeTryStartTime": iso(job.start_time),
        "lastUpdateTime": iso(last_update),
        "try": 1,
        "activeProcessId": 0,
        "mainProcessId": 0,
        "assetID": "",
        "assetDisplayableName": job.client_name,
        "workloadDisplayName": "",
        "applicationType": "VMWARE" if job.policy_type == "VMWARE" else "NONE",
        "dteMode": "OFF",
        "offHostType": "STANDARD",
        "acceleratorOptimization": 0.0,
        "dedupRatio": 0.0,
        "dedupSpaceRatio": 0.0,
        "compressionSpaceRatio": 0.0,
        "childCount": len(job.children),
        "jobPath": f"{parent}.{job.job_id}" if parent else str(job.job_id),
        "currentFile": "",
        "elapsedTime": duration(elapsed),
        "activeElapsedTime": duration(elapsed),
    }
    if end is not None:
        attributes["endTime"] = iso(end)
    return {
        "type": "job",
        "id": str(job.job_id),
        "links": {
            "self": {"href": f"{base}/admin/jobs/{job.job_id}"},
            "file-lists": {"href": f"{base}/admin/jobs/{job.job_id}/file-lists"},
            "try-logs": {"href": f"{base}/admin/jobs/{job.job_id}/try-logs"},
        },
        "attributes": attributes,
    }


def image_resource(image: Image, master: MasterServer, base: str) -> dict[str, Any]:
    """An image of ``master``'s catalog as ``GET /catalog/images`` shows it."""
    _, images_schedule = schedule_types(image.schedule_type)
    job = master.jobs.get(image.job_id)
    elapsed = int(job.end_time - job.start_time) if job is not None and job.end_time is not None else 0
    files = max(1, image.size_kb // KB_PER_FILE)
    expiration = iso(image.backup_time + image.retention_seconds)
    imported = any(copy.location and not copy.replica for copy in image.copies)
    origin = next((copy.location for copy in image.copies if copy.location and not copy.replica), master.hostname)
    attributes: dict[str, Any] = {
        "policyType": policy_type(image.client_type),
        "clientName": image.client_name,
        "policyName": image.policy_name,
        "scheduleType": images_schedule,
        "scheduleName": schedule_name(master, image.policy_name, image.schedule_type),
        "appType": "VMWARE" if image.client_type == "VMWARE" else "NONE",
        "backupCopyType": "DEFAULT",
        "backupTime": iso(image.backup_time),
        "backupStatus": 0,
        "blockIncrementalFullTime": iso(0),
        "clientCharset": 0,
        "compression": False,
        "contentFile": "",
        "contentFileSize": "0",
        "contentFileCompressed": "NOT",
        "creator": "root",
        "dataClassification": "",
        "drMediaList": [],
        "elapsedTimeSeconds": elapsed,
        "encryption": "NONE",
        "expiration": expiration,
        "extendedSecurityInfo": False,
        "fileSystemOnly": False,
        "imageDumpLevel": 0,
        "imageType": "IMPORTED" if imported else "NORMAL",
        "jobId": image.job_id,
        "kbytes": image.size_kb,
        "keyword": "",
        "kbytesDataTransferred": image.size_kb,
        "mpx": False,
        "numCopies": len(image.copies),
        "numFiles": files,
        "numberFragments": len(image.copies),
        "originMasterServer": origin,
        "pfiType": 0,
        "primaryCopy": image.copies[0].number if image.copies else 1,
        "providerGeneratedId": "",
        "proxyClient": "",
        "remoteExpirationDate": expiration if any(copy.replica for copy in image.copies) else iso(0),
        "retentionLevel": 0,
        "slpVersion": 0,
        "slpCompleted": 0,
        "slpName": "",
        "tirExpirationDate": iso(0),
        "version": 11,
        "vmType": "NONE",
        "streamNumber": 0,
        "streamAggregatedKbytes": image.size_kb,
        "streamAggregatedFiles": files,
    }
    return {
        "type": "image",
        "id": image.backup_id,
        "links": {"self": {"href": f"{base}/catalog/images/{image.backup_id}"}},
        "attributes": attributes,
    }


def vmserver_resource(server: dict[str, Any], base: str) -> dict[str, Any]:
    """A registered VM server as ``GET /config/servers/vmservers`` shows it (never its password)."""
    vm_server = {
        "serverName": server["serverName"],
        "vmType": server["vmType"],
        "userId": server["userId"],
        "password": "",  # required by the schema; NetBackup never gives it back (our inference: empty)
        "port": server.get("port", 0),
    }
    return {
        "type": "vmserver",
        "id": server["serverName"],
        "links": {"self": {"href": f"{base}/config/servers/vmservers/{server['serverName']}"}},
        "attributes": {"vmServer": vm_server},
    }
