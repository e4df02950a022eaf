"""The contract rules an NBWSS endpoint is held to, and their verdicts for a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from emulator.responders import VERSION_PROFILES
from emulator.wire.master import Report

PASSED, FAILED, SKIPPED, WARNING = "passed", "failed", "skipped", "warning"
EVIDENCE = 5  # examples kept per rule


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    warning_only: bool = False


RULES: tuple[Rule, ...] = (
    Rule("connect.answered", "CONNECT is answered with the same id and a boolean valid within the connect time-out"),
    Rule("connect.accepts-token", "the right token is accepted with valid: true"),
    Rule("connect.refuses-wrong-token", "a wrong token is refused (valid: false, or the connection closed), on a second connection"),
    Rule("ack.every-notification", "every notification is acknowledged: none lost after resends and reconnects"),
    Rule("ack.within-timeout", "every acknowledgement arrives within the ack time-out (notification.sendTimeout)"),
    Rule("ack.once", "a notification sent once is acknowledged once"),
    Rule("ack.known-id", "acknowledgements carry the id of a notification the master sent"),
    Rule("ack.duplicate-accepted", "a duplicate notification (same id, as after a reconnect) is acknowledged again"),
    Rule("frames.json", "every frame from the endpoint is a text frame holding JSON"),
    Rule("frames.schema", "every frame from the endpoint is valid against the NBWSS schemas (RESPONSE subType included)"),
    Rule("frames.direction", "the endpoint sends only CONNECT RESPONSE, NOTIFICATION RESPONSE and COMMAND REQUEST"),
    Rule("frames.size", "frames from the endpoint fit the master's frame size limit"),
    Rule("connection.kept", "the endpoint keeps the connection open while the master streams"),
    Rule("reconnect.accepted", "after a dropped connection the master reconnects and CONNECT is accepted again"),
    Rule("command.after-connect", "COMMAND requests come only after the connection is established"),
    Rule("command.well-formed", "COMMAND requests carry Content-Type for the NetBackup version, and Authorization after login"),
    Rule("master.frames-valid", "the emulated master's own frames are valid against the schemas (a check of the messages sent)"),
    Rule("transport.wss", "the endpoint is served over wss:// (a real master refuses ws://)", warning_only=True),
)
RULES_BY_ID = {rule.id: rule for rule in RULES}


@dataclass(slots=True)
class RuleResult:
    rule: Rule
    status: str
    checked: int = 0
    failures: int = 0
    summary: str = ""
    evidence: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule.id,
            "description": self.rule.description,
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
    embedded: bool = False
    profile: str = "8.1"


def evaluate(facts: RunFacts) -> list[RuleResult]:
    """A verdict for every rule, in the order of :data:`RULES`."""
    report = facts.report
    by_rule: dict[str, list[str]] = {}
    for violation in report.violations:
        text = f"{violation.finding.pointer or '/'}: {violation.finding.message}"
        if violation.frame:
            text += f" in {violation.frame[:300]}"
        by_rule.setdefault(violation.rule, []).append(text)
    results = [_judge(rule, facts, by_rule) for rule in RULES]
    return results


def _violations(rule: Rule, by_rule: dict[str, list[str]], checked: int, *names: str) -> RuleResult:
    found = [text for name in (names or (rule.id,)) for text in by_rule.get(name, [])]
    if found:
        return RuleResult(rule, FAILED, checked, len(found), f"{len(found)} violation{'s' * (len(found) != 1)}", found[:EVIDENCE])
    return RuleResult(rule, PASSED, checked)


def _judge(rule: Rule, facts: RunFacts, by_rule: dict[str, list[str]]) -> RuleResult:
    report = facts.report
    frames_in = report.acknowledged + len(report.commands) + report.established
    match rule.id:
        case "connect.answered":
            return _violations(rule, by_rule, len(report.connect_latencies) + len(by_rule.get(rule.id, [])))
        case "connect.accepts-token":
            if report.established:
                return RuleResult(rule, PASSED, report.established)
            why = "CONNECT answered valid: false" if report.refused else (report.error or "no connection was established")
            return RuleResult(rule, FAILED, 1, 1, why, [why])
        case "connect.refuses-wrong-token":
            if facts.token_probe is None:
                return RuleResult(rule, SKIPPED, summary="the wrong-token probe was not run")
            valid, how = facts.token_probe
            if valid is False:
                return RuleResult(rule, PASSED, 1, summary=how)
            return RuleResult(rule, FAILED, 1, 1, how, [f"CONNECT with a wrong token: {how}"])
        case "ack.every-notification":
            total = report.sent
            if report.lost:
                evidence = [f"notification {i} never acknowledged" for i in report.lost[:EVIDENCE]]
                if report.error:
                    evidence.insert(0, report.error)
                return RuleResult(rule, FAILED, total, len(report.lost), f"{len(report.lost)} of {total} lost", evidence)
            return RuleResult(rule, PASSED, total, summary=f"{total} acknowledged, {report.resent} resent")
        case "ack.within-timeout":
            if report.late_acks:
                evidence = [report.late_text(i, latency) for i, latency in report.late_acks[:EVIDENCE]]
                return RuleResult(rule, FAILED, report.acknowledged, report.late, f"{report.late} late", evidence)
            return RuleResult(rule, PASSED, report.acknowledged)
        case "ack.once":
            return _violations(rule, by_rule, report.acknowledged)
        case "ack.known-id":
            return _violations(rule, by_rule, report.acknowledged)
        case "ack.duplicate-accepted":
            if not report.duplicates_sent:
                return RuleResult(rule, SKIPPED, summary="no duplicate was sent")
            missing = [i for i in report.duplicates_sent if i not in report.duplicates_acked]
            if missing:
                return RuleResult(
                    rule,
                    FAILED,
                    len(report.duplicates_sent),
                    len(missing),
                    "duplicate not acknowledged",
                    [f"duplicate of {i} not acknowledged" for i in missing],
                )
            return RuleResult(rule, PASSED, len(report.duplicates_sent))
        case "frames.json":
            return _violations(rule, by_rule, frames_in, "frames.json", "frames.text")
        case "frames.schema" | "frames.direction" | "frames.size" | "command.after-connect":
            return _violations(rule, by_rule, frames_in)
        case "connection.kept":
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
        case "reconnect.accepted":
            dropped = report.drops + report.deliberate_drops
            if not dropped:
                return RuleResult(rule, SKIPPED, summary="no connection was dropped")
            if report.established > 1 and not report.refused:
                return RuleResult(rule, PASSED, dropped, summary=f"{report.established} connections established")
            evidence = report.reconnect_failures[-EVIDENCE:] or ["no CONNECT accepted after the drop"]
            return RuleResult(rule, FAILED, dropped, 1, "no reconnection", evidence)
        case "command.well-formed":
            return _commands(rule, facts)
        case "master.frames-valid":
            return _violations(rule, by_rule, report.sent, "frames.schema.sent")
        case "transport.wss":
            if facts.embedded:
                return RuleResult(rule, SKIPPED, summary="the embedded reference endpoint serves ws:// on loopback")
            if urlsplit(report.url).scheme == "ws":
                return RuleResult(rule, WARNING, 1, 1, "ws:// works here, but a real master accepts only wss://", [report.url])
            return RuleResult(rule, PASSED, 1)
    raise AssertionError(f"no judge for rule {rule.id}")  # pragma: no cover - every rule has a case


def _commands(rule: Rule, facts: RunFacts) -> RuleResult:
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
        if not payload.get("uri", "").startswith("/netbackup/login") and "authorization" not in headers:
            problems.append(f"{where}: no Authorization header")
        elif exchange.status == 401:
            problems.append(f"{where}: Authorization was not a token from /netbackup/login")
    if problems:
        return RuleResult(rule, FAILED, len(commands), len(problems), f"{len(problems)} malformed", problems[:EVIDENCE])
    return RuleResult(rule, PASSED, len(commands))
