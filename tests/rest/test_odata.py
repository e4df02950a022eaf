"""OData filters as NetBackup clients write them, checked against what a path lets them filter on."""

from __future__ import annotations

import pytest

from emulator.rest.errors import HttpError
from emulator.rest.odata import COMPARE, EQUALITY, TEXT, Field, duration_seconds, iso_epoch, parse_filter
from emulator.rest.resources import FILTER_IMAGES, FILTER_JOBS

FIELDS = {
    "jobId": Field("integer", COMPARE),
    "status": Field("integer", COMPARE),
    "clientName": Field("string", EQUALITY | TEXT),
    "policyName": Field("string", TEXT),
    "state": Field("string", EQUALITY),
    "endTime": Field("date-time", COMPARE),
    "elapsedTime": Field("duration", COMPARE),
    "dedupRatio": Field("number", COMPARE),
}
JOB = {
    "jobId": 42,
    "status": 1,
    "clientName": "web01.example.test",
    "policyName": "Daily-Windows",
    "state": "DONE",
    "endTime": "2026-01-02T03:04:05.000Z",
    "elapsedTime": "PT5M46S",
    "dedupRatio": 12.5,
}
ACTIVE = {**JOB, "jobId": 43, "state": "ACTIVE", "endTime": None, "clientName": "O'Brien"}


@pytest.mark.parametrize(
    ("expression", "done", "active"),
    [
        ("status eq 1", True, True),
        ("(status eq 0 or status eq 1)", True, True),
        ("(status eq 0 or status eq 1) and state eq 'DONE'", True, False),
        ("not (state eq 'DONE')", False, True),
        ("jobId gt 42", False, True),
        ("jobId ge 42 and jobId le 42", True, False),
        ("jobId lt 43", True, False),
        ("jobId ne 42", False, True),
        ("42 eq jobId", True, False),
        ("endTime gt 2026-01-01T00:00:00.000Z", True, False),
        ("endTime lt 2026-01-01T00:00:00Z", False, False),
        ("endTime ne 2026-01-02T03:04:05.000Z", False, True),
        ("endTime eq 2026-01-02T04:04:05+01:00", True, False),
        ("contains(clientName,'web')", True, False),
        ("startswith(clientName, 'web01') and endswith(clientName, '.test')", True, False),
        ("clientName eq 'O''Brien'", False, True),
        ("startswith(policyName,'Daily') or contains(clientName,'zzz')", True, True),
        ("elapsedTime gt duration'PT5M'", True, True),
        ("dedupRatio ge 12", True, True),
        ("state eq 'DONE' or state eq 'ACTIVE' and jobId eq 1", True, False),  # and binds tighter than or
    ],
)
def test_expressions_as_real_clients_write_them(expression: str, done: bool, active: bool) -> None:
    test = parse_filter(expression, FIELDS).test
    assert (test(JOB), test(ACTIVE)) == (done, active)


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("colour eq 'red'", "cannot use the attribute 'colour'"),
        ("extendedAttributes/cluster eq 'x'", "extendedAttributes/cluster"),
        ("contains(policyName", "not a valid OData expression"),
        ("jobType like 'B%'", "not a valid OData expression"),
        ("policyName eq 'x'", "cannot use 'eq' on policyName"),
        ("contains(state,'DO')", "cannot use 'contains' on state"),
        ("status eq '0'", "compares status (integer)"),
        ("endTime gt 'yesterday'", "compares endTime (date-time)"),
        ("clientName eq 3", "compares clientName (string)"),
        ("jobId add 1 eq 2", "not supported"),
        ("tolower(clientName) eq 'web'", "not supported"),
    ],
)
def test_what_a_path_cannot_take_is_netbackups_400(expression: str, why: str) -> None:
    with pytest.raises(HttpError, match="filter") as raised:
        parse_filter(expression, FIELDS)
    error = raised.value
    body = error.body()
    assert error.status == 400 and body["errorCode"] == 20
    assert why in body["errorMessage"] + " ".join(body.get("errorDetails", []))


def test_bounds_say_which_comparisons_a_filter_makes() -> None:
    checked = parse_filter("backupTime ge 2026-01-01T00:00:00Z and clientName eq 'a'", FILTER_IMAGES)
    assert checked.bounded("backupTime", "ge") and not checked.bounded("backupTime", "le")
    with pytest.raises(HttpError, match="cannot use 'gt' on backupTime"):
        parse_filter("backupTime gt 2026-01-01T00:00:00Z", FILTER_IMAGES)


def test_the_paths_filter_tables_follow_the_openapi_files() -> None:
    assert FILTER_JOBS["policyName"].operators == TEXT  # no eq on policyName for jobs
    assert FILTER_JOBS["state"].operators == EQUALITY
    assert FILTER_JOBS["endTime"] == Field("date-time", COMPARE)
    assert FILTER_IMAGES["policyName"].operators == {"eq", "contains"}
    assert len(FILTER_JOBS) >= 50


def test_times_and_durations() -> None:
    assert iso_epoch("1970-01-01T00:00:00.000Z") == 0
    assert iso_epoch("1970-01-01T01:00:00+01:00") == 0
    assert iso_epoch("1970-01-01T00:00:10") == 10  # naive: UTC
    assert duration_seconds("PT5M46S") == 346
    assert duration_seconds("P1DT1H") == 90000
    with pytest.raises(ValueError, match="duration"):
        duration_seconds("PT")
