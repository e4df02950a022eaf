"""A contract run's verdict for people (console), for CI (JUnit XML) and for programs (JSON)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from emulator.contract.rules import FAILED, NOT_EXERCISED, PASSED, SKIPPED, WARNING
from emulator.contract.runner import ContractResult
from emulator.protocol.probes import BROKE_IT, HANDLED, NOT_RUN

_STYLE = {PASSED: "green", FAILED: "bold red", SKIPPED: "dim", WARNING: "yellow", NOT_EXERCISED: "dim"}
_PROBE_STYLE = {HANDLED: "green", BROKE_IT: "bold red", NOT_RUN: "dim"}


def print_summary(result: ContractResult, console: Console) -> None:
    """The rules as a table, then the counts and ack latency."""
    table = Table(title=f"NBWSS contract: {result.name} against {result.endpoint}", title_justify="left")
    table.add_column("rule")
    table.add_column("result")
    table.add_column("checked", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("details", overflow="fold")
    for r in result.results:
        details = r.summary
        if r.status in (FAILED, WARNING) and r.evidence and r.evidence[0] != r.summary:  # never the same words twice
            details = f"{r.summary}: {r.evidence[0]}"
        table.add_row(r.rule.id, f"[{_STYLE[r.status]}]{r.status}[/]", str(r.checked), str(r.failures) if r.failures else "", details)
    console.print(table)
    if result.probes:
        probes = Table(title="robustness probes", title_justify="left")
        for column in ("probe", "result", "sent", "acknowledged", "details"):
            probes.add_column(column, justify="right" if column in ("sent", "acknowledged") else "left", overflow="fold")
        for p in result.probes:
            verdict = f"[{_PROBE_STYLE[p.status]}]{p.status}[/]"
            probes.add_row(p.probe.name, verdict, str(p.sent), str(p.acknowledged), p.detail)
        console.print(probes)
    stats = result.stats()
    latency = stats["ack_latency_ms"]
    console.print(
        f"notifications: {stats['sent']} sent, {stats['acknowledged']} acknowledged, {stats['resent']} resent, {stats['lost']} lost; "
        f"connections: {stats['connections']} ({stats['dropped']} dropped); COMMAND requests: {stats['commands']}"
    )
    if stats["unanswered_commands"]:  # the endpoint's own flow was cut off: say so where people look, not only in --json
        console.print(
            "COMMAND requests not answered (they arrived while the connection was closing): " + ", ".join(stats["unanswered_commands"])
        )
    if stats["duplicates_sent"]:
        console.print(
            f"deliberate duplicates (an acknowledged id sent again): {stats['duplicates_sent']} sent, "
            f"{stats['duplicates_acknowledged']} acknowledged"
        )
    if latency["p50"] is not None:
        console.print(
            f"ack latency: p50 {latency['p50']:.2f} ms, p90 {latency['p90']:.2f} ms, p99 {latency['p99']:.2f} ms, max {latency['max']:.2f} ms"
        )
    failed = sum(1 for r in result.results if r.status == FAILED)
    if result.interrupted:
        verdict = "[bold yellow]INTERRUPTED[/] (the figures cover what happened until then)"
    elif result.passed:
        verdict = "[bold green]PASS[/]"
    else:
        verdict = f"[bold red]FAIL[/] ({failed} rule{'s' * (failed != 1)} failed)"
    console.print(f"verdict: {verdict} in {stats['elapsed_s']:.2f} s")


def as_dict(result: ContractResult) -> dict[str, Any]:
    return {
        "verdict": "interrupted" if result.interrupted else ("pass" if result.passed else "fail"),
        "scenario": result.name,
        "seed": result.seed,
        "endpoint": result.endpoint,
        "embedded_endpoint": result.embedded,
        "stats": result.stats(),
        "rules": [r.as_dict() for r in result.results],
        "probes": [p.as_dict() for p in result.probes],
        "commands": [
            {"method": c.request["payload"]["method"], "uri": c.request["payload"]["uri"], "status": c.status}
            for c in result.report.commands
        ],
    }


def write_json(result: ContractResult, path: str | Path) -> None:
    Path(path).write_text(json.dumps(as_dict(result), indent=2) + "\n", encoding="utf-8")


def write_junit(results: list[ContractResult], path: str | Path) -> None:
    """One test suite per endpoint group, one test case per rule; a failure carries the evidence."""
    root = ET.Element("testsuites")
    for result in results:
        root.append(_suite(result))
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _suite(result: ContractResult) -> ET.Element:
    failures = sum(1 for r in result.results if r.status == FAILED)
    skipped = sum(1 for r in result.results if r.status in (SKIPPED, NOT_EXERCISED))
    suite = ET.Element(
        "testsuite",
        name=f"nbwss-contract.{result.name}",
        tests=str(len(result.results)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{result.elapsed:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (("endpoint", result.endpoint), ("scenario", result.name), ("seed", str(result.seed))):
        ET.SubElement(properties, "property", name=name, value=value)
    for r in result.results:
        case = ET.SubElement(suite, "testcase", classname="nbwss.contract", name=r.rule.id)
        if r.status == FAILED:
            failure = ET.SubElement(case, "failure", message=f"{r.rule.description}: {r.summary}", type=r.rule.id)
            failure.text = "\n".join(r.evidence)
        elif r.status in (SKIPPED, NOT_EXERCISED):
            ET.SubElement(case, "skipped", message=f"{r.status}: {r.summary}" if r.status == NOT_EXERCISED else r.summary)
        elif r.status == WARNING:
            out = ET.SubElement(case, "system-out")
            out.text = f"warning: {r.summary}: " + "; ".join(r.evidence)
    for p in result.probes:
        case = ET.SubElement(suite, "testcase", classname="nbwss.probe", name=p.probe.name)
        if not p.ran:
            ET.SubElement(case, "skipped", message=p.detail)
        elif not p.handled:
            failure = ET.SubElement(case, "failure", message=f"{p.probe.description}: {p.detail}", type=f"probe.{p.probe.name}")
            failure.text = p.detail
    suite.set("tests", str(len(result.results) + len(result.probes)))
    suite.set("failures", str(failures + sum(1 for p in result.probes if p.ran and not p.handled)))
    suite.set("skipped", str(skipped + sum(1 for p in result.probes if not p.ran)))
    stats = ET.SubElement(suite, "system-out")
    stats.text = json.dumps(result.stats())
    return suite
