"""Shared test helpers: the captures, the timing factor, the reliability figures."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
RELIABILITY = Path(__file__).parents[1] / "docs" / "reliability.md"  # the page whose tables the suite writes


def timing_factor() -> float:
    """How much to stretch wall-clock margins and protocol timings in tests.

    ``NBWSS_TIMING_FACTOR`` sets it (a slow or shared machine); otherwise 1, or 3 when
    a tracer such as coverage is running, which slows the emulator several times over
    (websockets scales its test timeouts the same way).
    """
    if os.environ.get("NBWSS_TIMING_FACTOR"):
        return float(os.environ["NBWSS_TIMING_FACTOR"])
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+: coverage may trace with sys.monitoring instead
    traced = sys.gettrace() is not None or (monitoring is not None and monitoring.get_tool(monitoring.COVERAGE_ID) is not None)
    return 3.0 if traced else 1.0


@pytest.fixture(scope="session")
def timing() -> float:
    """The timing factor (see :func:`timing_factor`): multiply wall-clock margins and protocol timings by it."""
    return timing_factor()


@pytest.fixture(scope="session")
def captures() -> list[dict[str, Any]]:
    """The real NBWSS captures of the user's source document."""
    return [json.loads(line) for line in (DATA / "captures.jsonl").read_text().splitlines() if line.strip()]


class Figures:
    """What the reliability tests did: faults injected and what came of them, fuzz cases run.

    With NBWSS_WRITE_FIGURES=1 the session rewrites the tables of docs/reliability.md
    from these numbers, so the figures there are produced by the suite, not typed.
    """

    START, END = "<!-- reliability figures: start -->", "<!-- reliability figures: end -->"

    def __init__(self) -> None:
        self.faults: dict[str, dict[str, int]] = {}
        self.fuzz: Counter[str] = Counter()

    def fault(self, name: str, report: Any) -> None:
        row = self.faults.setdefault(name, {"runs": 0, "sent": 0, "acknowledged": 0, "resent": 0, "lost": 0, "reconnections": 0})
        row["runs"] += 1
        row["sent"] += report.sent
        row["acknowledged"] += len({message_id for message_id, _, _ in report.acks})
        row["resent"] += report.resent
        row["lost"] += len(report.lost)
        row["reconnections"] += max(0, report.established - 1)

    def markdown(self) -> str:
        lines = [
            self.START,
            "| fault injected | runs | sent | acknowledged | resent | lost | reconnections |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in sorted(self.faults):
            row = self.faults[name]
            lines.append(
                f"| {name} | {row['runs']} | {row['sent']} | {row['acknowledged']} | {row['resent']} | {row['lost']} | {row['reconnections']} |"
            )
        lines += ["", "| fuzzed target | cases |", "|---|---|"]
        lines += [f"| {target} | {count} |" for target, count in sorted(self.fuzz.items())]
        lines.append(self.END)
        return "\n".join(lines)

    def write_page(self, page: Path = RELIABILITY) -> None:
        """Replace what stands between the markers of ``page`` with these figures."""
        text = page.read_text(encoding="utf-8")
        start, end = text.index(self.START), text.index(self.END) + len(self.END)
        page.write_text(text[:start] + self.markdown() + text[end:], encoding="utf-8")


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    collected = Figures()
    yield collected
    if os.environ.get("NBWSS_WRITE_FIGURES") == "1" and collected.faults and collected.fuzz:
        collected.write_page()
