"""API versions: which NetBackup release speaks which, and how a request picks one.

NetBackup versions its REST API by media type: ``application/vnd.netbackup+json;version=N.0``
in ``Accept`` (what the client reads) or ``Content-Type`` (what it sends). A release answers
every API version from 1.0 up to its own (our inference: the guides say versions change only
on breaking changes and old ones stay served); 8.0 predates versioning and speaks plain JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emulator.rest.errors import HttpError

MEDIA_TYPE = "application/vnd.netbackup+json"
PLAIN_JSON = "application/json"

#: NetBackup release -> its newest API version (None: plain JSON, no versions). From the
#: reference README's table: 8.1 = 1.0 ... 10.5 = 12.0 (the 8.x-10.1 rows are a reading of
#: public guides; 10.2 published no API version of its own, so it is not listed).
RELEASE_API: dict[str, str | None] = {
    "8.0": None,
    "8.1": "1.0",
    "8.1.1": "1.0",
    "8.1.2": "2.0",
    "8.2": "3.0",
    "8.3": "4.0",
    "9.0": "5.0",
    "9.1": "6.0",
    "10.0": "7.0",
    "10.1": "8.0",
    "10.1.1": "9.0",
    "10.3": "10.0",
    "10.4": "11.0",
    "10.5": "12.0",
}

#: The API version from which ``/admin/jobs`` pages by cursor (``page[after]``/``page[before]``).
CURSOR_JOBS_FROM = 9


def media_type(api: str | None) -> str:
    """The Content-Type of an answer in API version ``api`` (None: plain JSON)."""
    return PLAIN_JSON if api is None else f"{MEDIA_TYPE};version={api}"


#: NetBackup release -> the Content-Type of its answers by default (its newest version).
VERSION_PROFILES: dict[str, str] = {release: media_type(api) for release, api in RELEASE_API.items()}
DEFAULT_PROFILE = "8.1"

_VERSION = re.compile(r"^\s*version\s*=\s*\"?(?P<major>\d+)(?:\.(?P<minor>\d+))?\"?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Release:
    """What one NetBackup release's REST API speaks."""

    name: str
    newest: int | None  # the major of its newest API version; None for plain JSON

    @classmethod
    def of(cls, name: str) -> Release:
        if name not in RELEASE_API:
            raise ValueError(f"unknown NetBackup version profile {name!r}; known: {', '.join(RELEASE_API)}")
        api = RELEASE_API[name]
        return cls(name, None if api is None else int(api.split(".")[0]))

    @property
    def versions(self) -> tuple[str, ...]:
        """The API versions it answers, oldest first."""
        return () if self.newest is None else tuple(f"{n}.0" for n in range(1, self.newest + 1))

    def negotiate(self, accept: str | None, content_type: str | None, has_body: bool) -> str | None:
        """The API version of the answer to a request with these headers (None: plain JSON).

        ``Accept`` decides; without a versioned ``Accept`` a versioned ``Content-Type`` does;
        with neither, the release's newest version answers (our inference). An unsupported
        version in ``Accept`` is 406, in the ``Content-Type`` of a body 415, and a body that is
        not JSON at all 415, as the OpenAPI files list them.
        """
        if self.newest is None:
            return None  # 8.0 predates versioning: plain JSON whatever is asked (our inference)
        sent = _parse(content_type) if content_type else None
        if has_body and content_type and sent is None and not _is_json(content_type) and not _is_multipart(content_type):
            raise HttpError(415, f"unsupported Content-Type {content_type!r}", details=[f"send {self._example()}"])
        if sent is not None and has_body and not self._supports(sent):
            raise HttpError(415, f"API version {sent} is not supported", details=[f"supported: {self._supported_text()}"])
        wanted = _parse_accept(accept) if accept else None
        if accept and wanted is None and not _accepts_json(accept):
            raise HttpError(406, f"cannot answer in {accept!r}", details=[f"accept {self._example()}"])
        chosen = wanted or sent
        if chosen is None:
            return f"{self.newest}.0"
        if not self._supports(chosen):
            raise HttpError(406, f"API version {chosen} is not supported", details=[f"supported: {self._supported_text()}"])
        return chosen

    def _supports(self, version: str) -> bool:
        return version in self.versions

    def _supported_text(self) -> str:
        return ", ".join(self.versions)

    def _example(self) -> str:
        return media_type(f"{self.newest}.0")


def _parse(value: str) -> str | None:
    """The version of one ``application/vnd.netbackup+json;version=N.M`` media type, else None."""
    kind, *parameters = value.split(";")
    if kind.strip().lower() != MEDIA_TYPE:
        return None
    for parameter in parameters:
        match = _VERSION.match(parameter)
        if match:
            return f"{int(match['major'])}.{int(match['minor'] or 0)}"
    return "0.0"  # the NetBackup media type without a version: no version NetBackup serves


def _parse_accept(value: str) -> str | None:
    for part in value.split(","):
        version = _parse(part)
        if version is not None:
            return version
    return None


def _is_json(value: str) -> bool:
    return value.split(";", maxsplit=1)[0].strip().lower() in (PLAIN_JSON, MEDIA_TYPE)


def _is_multipart(value: str) -> bool:
    return value.split(";", maxsplit=1)[0].strip().lower().startswith("multipart/")


def _accepts_json(value: str) -> bool:
    kinds = {part.split(";")[0].strip().lower() for part in value.split(",")}
    return bool(kinds & {PLAIN_JSON, "*/*", "application/*"})
