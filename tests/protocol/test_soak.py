"""Long runs: run --count / --duration repeat the scenario, and the report keeps counters and a histogram."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.contract import ContractOptions, run_scenario
from emulator.endpoint import ReferenceEndpoint
from emulator.protocol.run import Settings, Target
from emulator.protocol.soak import limited, repeated
from emulator.scenario import load


def test_repeated_runs_fresh_passes_one_after_the_other() -> None:
    passes: list[int] = []

    def cycle(number: int) -> list[str]:
        passes.append(number)
        return [f"{number}a", f"{number}b"]

    assert list(itertools.islice(repeated(cycle), 5)) == ["0a", "0b", "1a", "1b", "2a"]
    assert passes == [0, 1, 2]
    assert list(repeated(lambda number: [] if number else ["only"])) == ["only"]  # an empty pass ends it


def test_limited_stops_at_the_count_or_the_duration() -> None:
    assert list(limited(itertools.count(), count=3)) == [0, 1, 2]
    assert list(limited(itertools.count(), count=0)) == []
    now = [0.0]

    def clock() -> float:
        now[0] += 0.4  # each item taken 0.4 s after the last
        return now[0]

    assert list(limited(itertools.count(), duration=1.0, clock=clock)) == [0, 1, 2]  # at 0.4, 0.8, 1.2; 1.6 is past 1.4
    assert list(limited(itertools.count(), count=2, duration=100.0, clock=clock)) == [0, 1]


def test_a_soak_run_sends_the_count_repeating_the_scenario_and_records_no_ack_one_by_one() -> None:
    count = 3 * 38 + 7  # smoke sends 38 a pass: three passes and a part

    async def scenario():
        async with ReferenceEndpoint() as endpoint:
            settings = Settings(record_acks=False, ack_histogram=True, command_grace=0)
            options = ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings, probes=False, count=count)
            return await run_scenario(load("smoke"), options), endpoint.unique_notifications()

    result, unique = asyncio.run(scenario())
    report = result.report
    assert result.passed, [(r.rule.id, r.summary) for r in result.results if r.status == "failed"]
    assert report.sent == report.acknowledged == count == len(unique)  # fresh ids every pass
    assert report.acks == [] and report.latency is not None and report.latency.get_total_count() == count
    latency = result.stats()["ack_latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]


def test_run_count_and_duration_from_the_command_line(capsys, tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    assert main(["run", "--count", "100", "--no-probes", "--quiet", "--json", str(report)]) == 0
    stats = json.loads(report.read_text())["stats"]
    assert stats["sent"] == stats["acknowledged"] == 100 and stats["ack_latency_ms"]["p99"] is not None
    assert main(["run", "--duration", "1s", "--no-probes", "--quiet", "--json", str(report)]) == 0
    stats = json.loads(report.read_text())["stats"]
    assert stats["sent"] > 38 and stats["lost"] == 0  # more than one pass of smoke in a second
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--count", "0"], "--count"),
        (["--duration", "soon"], "not a duration like 30s"),
        (["--count", "10", "--speed", "60"], "give --rate, not --speed"),
    ],
)
def test_bad_soak_options_are_one_line_errors(capsys, argv: list[str], expected: str) -> None:
    assert main(["run", *argv, "--no-probes"]) == 2
    assert expected in capsys.readouterr().err
