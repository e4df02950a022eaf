"""The contract rules an NBWSS endpoint is held to, and their verdicts for a run.

The rules are :class:`~emulator.findings.RuleId` (defined once, with what each
checks and whether it is documented behaviour or our decision); here each has
exactly one judge, and :func:`evaluate` refuses a finding of an unknown rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from emulator.findings import Basis, RuleId
from emulator.protocol.run import Report
from emulator.responders import VERSION_PROFILES
from emulator.rest.versions import RELEASE_API

PASSED, FAILED, SKIPPED, WARNING, NOT_EXERCISED = "passed", "failed", "skipped", "warning", "not exercised"
EVIDENCE = 5  # examples kept per rule


@dataclass(frozen=True, slots=True)
class Rule:
    """A contract rule as reports show it: its id, what it says, and whether it only warns."""

    id: RuleId
    description: str
    warning_only: bool = False

    @property
    def documented(self) -> bool:
        return self.id.info.basis is Basis.DOCUMENTED


RULES: tuple[Rule, ...] = tuple(Rule(rule_id, rule_id.description, rule_id.warning_only) for rule_id in RuleId)
RULES_BY_ID: dict[RuleId, Rule] = {rule.id: rule for rule in RULES}
"""Every rule ``nbwss-emu run`` judges an endpoint by, in the order reports list them."""


@dataclass(slots=True)
class RuleResult:
    """One rule's verdict for a run (passed, failed, skipped, warning), with counts and the first pieces of evidence."""

    rule: Rule
    status: str
    checked: int = 0
    failures: int = 0
    summary: str = ""
    evidence: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule.id.value,
            "description": self.rule.description,
            "basis": self.rule.id.info.basis.value,
            "status": self.status,
            "checked": self.checked,
            "failures": self.failures,
            "summary": self.summary,
            "evidence": self.evidence,
        }


@dataclass(slots=True)
class RunFacts:
    """Everything the rules look at, beyond the master's report."""

    report: Report
    token_probe: tuple[bool | None, str] | None = None  # (valid, how) of the wrong-token CONNECT
    token_probe_skipped: str = "the wrong-token probe was not run"  # why there is no token_probe
    embedded: bool = False
    profile: str = "8.1"


Evidence = dict[RuleId, list[str]]


def evaluate(facts: RunFacts) -> list[RuleResult]:
    """A verdict for every rule, in the order of :data:`RULES`; ValueError for a finding of an unknown rule."""
    by_rule: Evidence = {}
    sent_by_lower: dict[str, str] | None = None  # built once, for the first unknown id
    for violation in facts.report.violations:
        rule = _rule_of(violation.rule, violation.finding.pointer, violation.frame)
        text = f"{violation.finding.pointer or '/'}: {violation.finding.message}"
        if rule is RuleId.ACK_KNOWN_ID:
            if sent_by_lower is None:
                sent_by_lower = _sent_by_lower(facts.report)
            text += _case_hint(violation.frame, sent_by_lower)
        if violation.frame:
            text += f" in {violation.frame[:300]}"
        by_rule.setdefault(rule, []).append(text)
    return [_final(JUDGES[rule.id](rule, facts, by_rule)) for rule in RULES]


def _rule_of(name: str, pointer: str, frame: str) -> RuleId:
    rule = RuleId.of(name)
    if rule is RuleId.FRAMES_SCHEMA and pointer == "/payload" and _kind(frame) == ("NOTIFICATION", "RESPONSE"):
        return RuleId.ACK_PAYLOAD  # [] or no payload: the documentation shows {} and says nothing else
    return rule


def _kind(frame: str) -> tuple[Any, Any]:
    try:
        message = json.loads(frame)
    except ValueError:
        return None, None
    return (message.get("type"), message.get("subType")) if isinstance(message, dict) else (None, None)


def _sent_by_lower(report: Report) -> dict[str, str]:
    """The ids the master sent (acknowledged or lost), by their lower-case form."""
    ids = {message_id.lower(): message_id for message_id in report.lost}
    ids.update((message_id.lower(), message_id) for message_id, _, _ in report.acks)
    return ids


def _case_hint(frame: str, sent_by_lower: dict[str, str]) -> str:
    """A hint when an unknown acknowledged id is a sent id in other letter case."""
    try:
        message_id = json.loads(frame).get("id")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(message_id, str):
        return ""
    same = sent_by_lower.get(message_id.lower())
    if same is None or same == message_id:
        return ""
    return f" (hint: it differs only in letter case from {same}, which the master sent; answer with the id exactly as received)"


def _final(result: RuleResult) -> RuleResult:
    """Counts that cannot lie: never fewer checked than failed; a rule that checked nothing did not pass."""
    result.checked = max(result.checked, result.failures)
    if result.status == PASSED and result.checked == 0:
        result.status = NOT_EXERCISED
        result.summary = result.summary or "nothing of this kind happened in the run"
    return result


def _violations(rule: Rule, by_rule: Evidence, checked: int, *ids: RuleId) -> RuleResult:
    found = [text for rule_id in (ids or (rule.id,)) for text in by_rule.get(rule_id, [])]
    if found:
        status = WARNING if rule.warning_only else FAILED
        return RuleResult(rule, status, checked, len(found), f"{len(found)} violation{'s' * (len(found) != 1)}", found[:EVIDENCE])
    return RuleResult(rule, PASSED, checked)


def _frames_in(report: Report) -> int:
    # Every frame received when the driver counts them (a wrong CONNECT answer is a frame checked too), else a floor.
    return max(report.frames_in, report.acknowledged + len(report.commands) + report.established)


Judge = Callable[[Rule, RunFacts, Evidence], RuleResult]


def _connect_answered(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    report = facts.report
    return _violations(rule, by_rule, len(report.connect_latencies) + len(by_rule.get(rule.id, [])))


def _accepts_token(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    report = facts.report
    if report.established:
        return RuleResult(rule, PASSED, report.established)
    why = "CONNECT answered valid: false" if report.refused else (report.error or "no connection was established")
    return RuleResult(rule, FAILED, 1, 1, why, [why])


def _refuses_wrong_token(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    if facts.token_probe is None:
        return RuleResult(rule, SKIPPED, summary=facts.token_probe_skipped)
    valid, how = facts.token_probe
    if valid is False:
        return RuleResult(rule, PASSED, 1, summary=how)
    return RuleResult(rule, FAILED, 1, 1, how, [f"CONNECT with a wrong token: {how}"])


def _every_notification(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    report = facts.report
    total = report.sent
    # A deliberate duplicate (always of an acknowledged notification) is ack.duplicate-accepted's to judge.
    duplicates = set(report.duplicates_sent)
    lost = [i for i in report.lost if i not in duplicates]
    if lost:
        evidence = [f"notification {i} never acknowledged" for i in lost[:EVIDENCE]]
        if report.error:
            evidence.insert(0, report.error)
        return RuleResult(rule, FAILED, total, len(lost), f"{len(lost)} of {total} lost", evidence)
    return RuleResult(rule, PASSED, total, summary=f"{total} acknowledged, {report.resent} resent" if total else "")


def _within_timeout(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    report = facts.report
    if report.late_acks:
        evidence = [report.late_text(i, latency) for i, latency in report.late_acks[:EVIDENCE]]
        return RuleResult(rule, FAILED, report.acknowledged, report.late, f"{report.late} late", evidence)
    return RuleResult(rule, PASSED, report.acknowledged)


def _per_ack(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    return _violations(rule, by_rule, facts.report.acknowledged)


def _duplicate_accepted(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    report = facts.report
    if not report.duplicates_sent:
        return RuleResult(rule, SKIPPED, summary="no duplicate was sent")
    missing = [i for i in report.duplicates_sent if i not in report.duplicates_acked]
    if missing:
        evidence = [f"duplicate of {i} (sent again with the same id) not acknowledged" for i in missing[:EVIDENCE]]
        return RuleResult(rule, FAILED, len(report.duplicates_sent), len(missing), "duplicate not acknowledged", evidence)
    return RuleResult(rule, PASSED, len(report.duplicates_sent))


def _frames_json(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    return _violations(rule, by_rule, _frames_in(facts.report))


def _per_frame(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    return _violations(rule, by_rule, _frames_in(facts.report))


def _connection_kept(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    report = facts.report
    if report.drops:
        codes = ", ".join(str(c) for c in report.close_codes)
        return RuleResult(
            rule,
            FAILED,
            report.established,
            report.drops,
            f"{report.drops} dropped (close codes {codes})",
            [f"connection ended by the endpoint or the network; close codes {codes}"],
        )
    return RuleResult(rule, PASSED, report.established)


def _reconnect_accepted(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    report = facts.report
    dropped = report.drops + report.deliberate_drops
    if not dropped:
        return RuleResult(rule, SKIPPED, summary="no connection was dropped")
    if report.established > 1 and not report.refused:
        return RuleResult(rule, PASSED, dropped, summary=f"{report.established} connections established")
    evidence = report.reconnect_failures[-EVIDENCE:] or [
        "CONNECT after the drop answered valid: false" if report.refused else "no CONNECT accepted after the drop"
    ]
    return RuleResult(rule, FAILED, dropped, 1, "no reconnection", evidence)


def _master_frames(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    return _violations(rule, by_rule, facts.report.sent)


def _transport(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    if facts.embedded:
        return RuleResult(rule, SKIPPED, summary="the embedded reference endpoint serves ws:// on loopback")
    if urlsplit(facts.report.url).scheme == "ws":
        return RuleResult(rule, WARNING, 1, 1, "ws:// works here, but a real master accepts only wss://", [facts.report.url])
    return RuleResult(rule, PASSED, 1)


def _commands(rule: Rule, facts: RunFacts, by_rule: Evidence) -> RuleResult:
    commands = facts.report.commands
    if not commands:
        return RuleResult(rule, SKIPPED, summary="the endpoint sent no COMMAND request")
    expected = VERSION_PROFILES[facts.profile].split(";")[0]
    problems = []
    for exchange in commands:
        payload = exchange.request["payload"]
        headers = {k.lower(): v for k, v in payload.get("headers", {}).items()}
        where = f"{payload.get('method')} {payload.get('uri')}"
        content_type = headers.get("content-type")
        if content_type is None:
            problems.append(f"{where}: no Content-Type header")
        elif content_type.split(";")[0].strip() != expected:
            problems.append(f"{where}: Content-Type {content_type!r}, NetBackup {facts.profile} expects {expected}")
        authorization = headers.get("authorization")
        if not payload.get("uri", "").startswith("/netbackup/login") and authorization is None:
            problems.append(f"{where}: no Authorization header")
        elif exchange.status == 401:
            problem = f"{where}: Authorization was not a token from /netbackup/login"
            if isinstance(authorization, str) and authorization.lower().startswith("bearer "):
                problem += f" (hint: NetBackup {facts.profile} takes the login token as it is, without 'Bearer ')"
            problems.append(problem)
    if problems:
        return RuleResult(rule, FAILED, len(commands), len(problems), f"{len(problems)} malformed", problems[:EVIDENCE])
    versions = _version_refusals(commands, facts.profile)
    if versions:  # well formed, but for an API version this master's release does not serve: the endpoint's flow stopped
        return RuleResult(rule, WARNING, len(commands), len(versions), f"{len(versions)} refused for the API version", versions[:EVIDENCE])
    return RuleResult(rule, PASSED, len(commands))


_API_VERSION = re.compile(r"version\s*=\s*\"?(\d+)(?:\.(\d+))?", re.IGNORECASE)


def _version_refusals(commands: list[Any], profile: str) -> list[str]:
    """COMMANDs answered 406/415 because they asked for an API version the emulated release lacks, each with the hint."""
    found = []
    for exchange in commands:
        if exchange.status not in (406, 415):
            continue
        payload = exchange.request["payload"]
        headers = {k.lower(): v for k, v in payload.get("headers", {}).items()}
        asked = [m for m in (_API_VERSION.search(str(headers.get(h, ""))) for h in ("accept", "content-type")) if m is not None]
        if not asked:
            continue
        major = max(int(m.group(1)) for m in asked)
        serves = RELEASE_API.get(profile)
        if serves is not None and 1 <= major <= int(serves.split(".")[0]):
            continue  # a version this release serves: the refusal is about something else
        release = next((name for name, api in RELEASE_API.items() if api is not None and int(api.split(".")[0]) >= major), None)
        hint = f"--nbu-version {release} emulates a master that serves it" if release else "no NetBackup release serves it"
        found.append(
            f"{payload.get('method')} {payload.get('uri')}: answered {exchange.status}: API version {major}.0 is not served by "
            f"NetBackup {profile} (newest {serves or 'none: plain JSON'}); hint: {hint}"
        )
    return found


#: The one judge of each rule; a rule without a judge is an error at import, not a rule that always passes.
JUDGES: dict[RuleId, Judge] = {
    RuleId.CONNECT_ANSWERED: _connect_answered,
    RuleId.CONNECT_ACCEPTS_TOKEN: _accepts_token,
    RuleId.CONNECT_REFUSES_WRONG_TOKEN: _refuses_wrong_token,
    RuleId.ACK_EVERY_NOTIFICATION: _every_notification,
    RuleId.ACK_WITHIN_TIMEOUT: _within_timeout,
    RuleId.ACK_ONCE: _per_ack,
    RuleId.ACK_KNOWN_ID: _per_ack,
    RuleId.ACK_DUPLICATE_ACCEPTED: _duplicate_accepted,
    RuleId.ACK_PAYLOAD: _per_ack,
    RuleId.FRAMES_JSON: _frames_json,
    RuleId.FRAMES_SCHEMA: _per_frame,
    RuleId.FRAMES_DIRECTION: _per_frame,
    RuleId.FRAMES_SIZE: _per_frame,
    RuleId.CONNECTION_KEPT: _connection_kept,
    RuleId.RECONNECT_ACCEPTED: _reconnect_accepted,
    RuleId.COMMAND_AFTER_CONNECT: _per_frame,
    RuleId.COMMAND_WELL_FORMED: _commands,
    RuleId.MASTER_FRAMES_VALID: _master_frames,
    RuleId.TRANSPORT_WSS: _transport,
}
_unjudged = set(RuleId) - set(JUDGES)
if _unjudged:  # pragma: no cover - caught by the import in any test
    raise ImportError(f"contract rules without a judge: {', '.join(sorted(_unjudged))}")
