"""Stateful exploration over loopback: it finds each seeded store bug, shrinks it, and replay sends it again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from emulator.cli import main
from emulator.contract import ContractOptions, replay
from emulator.diffstate import diff
from emulator.endpoint.server import Fault, ReferenceEndpoint
from emulator.explore import ExploreOptions, explore, read_replay_steps, state_from_url
from emulator.harness import EndpointHandle, LoopThread
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Duplicate, Reconnect, Settings, Target

FAST = Settings(properties=NbwssProperties(resend_interval=0.5, send_timeout=1.0), connect_timeout=5.0)

#: Each seeded bug, a seed that finds it quickly, and the field its shrunk failure names.
BUGS = [
    ("store-early-update", 5, 'lastOperation: expected "UPDATE", stored "CREATE"'),
    ("store-resent-as-new", 6, 'state: expected "DONE", stored "QUEUED"'),
    ("store-loses-no-local-copy", 1, "localCopy: expected false, stored true"),
]


@pytest.mark.parametrize(("fault", "seed", "symptom"), BUGS)
def test_exploration_finds_and_shrinks_each_seeded_store_bug(fault: str, seed: int, symptom: str, tmp_path: Path) -> None:
    transcript = tmp_path / "failure.jsonl"
    result = explore(ExploreOptions(settings=FAST, budget=60, seed=seed, steps=6, fault=Fault.parse(fault), transcript=str(transcript)))
    assert not result.passed
    assert symptom in result.failure
    assert len(result.steps) <= 4, result.steps  # shrunk: the operations that matter and one send
    assert transcript.is_file() and result.frames
    with pytest.raises(AssertionError, match="shortest sequence"):
        result.assert_passed()


def test_a_correct_endpoint_survives_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import hypothesis.core  # noqa: PLC0415 - the global exploration borrows, as pytest's --hypothesis-seed sets it

    monkeypatch.setattr(hypothesis.core, "global_force_seed", 1234)
    result = explore(ExploreOptions(settings=FAST, budget=1, seed=11, steps=8, examples_per_round=10))
    result.assert_passed()
    assert result.examples > 3
    assert hypothesis.core.global_force_seed == 1234  # given back as it was


def test_replay_sends_the_shrunk_failure_again_ids_and_resend_included(tmp_path: Path) -> None:
    """The transcript of a failure, replayed against the same endpoint, gives the same frames and the same wrong state."""
    transcript = tmp_path / "failure.jsonl"
    explore(ExploreOptions(settings=FAST, budget=60, seed=6, steps=6, fault=Fault.STORE_RESENT_AS_NEW, transcript=str(transcript)))
    steps = read_replay_steps(transcript)
    assert any(isinstance(step, Duplicate) for step in steps)
    recorded = [json.loads(line) for line in transcript.read_text().splitlines()]
    sent_ids = [e["frame"]["id"] for e in recorded if e["dir"] == "out" and e["frame"]["type"] == "NOTIFICATION"]

    async def replayed() -> tuple[list[str], list[Any]]:
        async with ReferenceEndpoint(fault=Fault.STORE_RESENT_AS_NEW) as endpoint:
            options = ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=FAST, probes=False, keep_sent=True)
            result = await replay(steps, options)
            return [m["id"] for m in endpoint.notifications], diff(result.expected_state(), endpoint.store.export())

    received, differences = asyncio.run(replayed())
    assert received == sent_ids
    assert "state" in [d.field for d in differences]  # the resent notification took the job back


def test_reconnects_are_marked_and_replayed(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    lines = [
        {"t": 0, "conn": 1, "dir": "out", "frame": {"type": "NOTIFICATION", "subType": "REQUEST", "id": "A", "payload": []}},
        {"t": 0, "conn": 1, "dir": "step", "step": "reconnect"},
        {"t": 0, "conn": 2, "dir": "out", "frame": {"type": "NOTIFICATION", "subType": "REQUEST", "id": "A", "payload": []}},
        {"t": 0, "conn": 2, "dir": "in", "frame": {"type": "NOTIFICATION", "subType": "RESPONSE", "id": "A", "payload": {}}},
        {"t": 0, "conn": 2, "dir": "out", "frame": {"type": "NOTIFICATION", "subType": "REQUEST", "id": "A", "payload": []}},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    steps = read_replay_steps(path)
    assert [type(step).__name__ for step in steps] == ["dict", Reconnect.__name__, Duplicate.__name__]


def test_explore_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fast = ["--resend-interval", "0.5", "--ack-timeout", "1", "--steps", "6"]
    transcript = tmp_path / "t.jsonl"
    code = main(["explore", "--budget", "60", "--seed", "6", "--fault", "store-resent-as-new", "--transcript", str(transcript), *fast])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL:" in out and "shortest sequence" in out and transcript.is_file()
    assert main(["explore", "--budget", "1", "--seed", "2", *fast]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["explore", "--budget", "soon"]) == 2
    assert main(["explore", "--fault", "store-resent-as-new", "--endpoint", "ws://127.0.0.1:9/nbwss", "--token", "t"]) == 2
    assert main(["replay", str(transcript), "--quiet", "--resend-interval", "0.5"]) == 0


def test_an_endpoint_under_test_is_explored_through_its_state_url() -> None:
    """Against a URL (here a reference endpoint in its own thread) with its state read over HTTP, as a team's would be."""
    loop = LoopThread("endpoint-under-test")
    try:
        endpoint = EndpointHandle(loop, fault=Fault.STORE_RESENT_AS_NEW)
        fetch = state_from_url(endpoint.state_url, endpoint.token)
        target = [Target(endpoint.url, endpoint.token)]
        found = explore(ExploreOptions(targets=target, state=fetch, settings=FAST, budget=60, seed=6, steps=6))
        assert not found.passed and "state" in found.failure
        endpoint.fault = None
        explore(
            ExploreOptions(targets=target, state=fetch, settings=FAST, budget=1, seed=6, steps=6, examples_per_round=10)
        ).assert_passed()
        endpoint.close()
    finally:
        loop.stop()


def test_the_pytest_fixture(nbwss_explore: Any) -> None:
    nbwss_explore(budget=1, steps=4, examples_per_round=5).assert_passed()
    with pytest.raises(AssertionError, match="shortest sequence"):
        nbwss_explore(budget=60, seed=6, steps=6, fault=Fault.STORE_RESENT_AS_NEW).assert_passed()
