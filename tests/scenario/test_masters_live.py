"""Every master on its own NBWSS connection; live runs reproducible and never ahead of the wall clock (loopback only)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from emulator.cli import main
from emulator.contract.runner import ContractOptions, live_start, run_masters
from emulator.endpoint.server import ReferenceEndpoint
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Settings, Target
from emulator.scenario import Timeline, load
from emulator.wire.transcript import read_sent_notifications

FAST = NbwssProperties(connection_period=0.5, resend_interval=0.3, send_timeout=2.0)


def options(endpoint: ReferenceEndpoint, **kwargs) -> ContractOptions:
    settings = Settings(properties=FAST, drain_timeout=1.0, connect_timeout=3.0)
    return ContractOptions(targets=[Target(endpoint.url, endpoint.token)], settings=settings, probes=False, **kwargs)


def _by_connection(endpoint: ReferenceEndpoint) -> list[list[dict]]:
    return [list(c.session.notifications) for c in endpoint.connections]


def test_every_master_streams_on_its_own_connection() -> None:
    """AIR's target master sends its IMPORT jobs and image CREATEs on its own connection, as a DR master does."""

    async def scenario():
        async with ReferenceEndpoint() as endpoint:
            results = await run_masters(load("air-replication"), options(endpoint))
            return results, _by_connection(endpoint), endpoint.connects

    results, connections, connects = asyncio.run(scenario())
    assert connects == 2 and len(results) == 2
    assert all(r.passed for r in results), [(r.name, [x.rule.id for x in r.results if x.status == "failed"]) for r in results]
    assert [r.name.split(" ")[2] for r in results] == ["primary", "dr"]  # the report says per master what was sent
    job_types = [{i["jobType"] for m in conn for g in m["payload"] if g["object"] == "JOB" for i in g["data"]} for conn in connections]
    assert {"IMPORT"} in job_types and any("REPLICATE" in types and "IMPORT" not in types for types in job_types)
    sent = {r.name.split(" ")[2]: r.stats()["sent"] for r in results}
    timeline = Timeline(load("air-replication"))
    expected = {key: sum(1 for t in stream) for key, stream in timeline.streams().items()}
    assert sent == expected


def test_a_live_run_never_tells_of_the_future_and_ends_by_now() -> None:
    """No job ends (and no message is stamped) after the wall clock's now, at full speed."""

    async def scenario():
        async with ReferenceEndpoint() as endpoint:
            await run_masters(load("vmware-backup"), options(endpoint))
            return endpoint.notifications

    before = time.time()
    received = asyncio.run(scenario())
    after = time.time()
    assert received
    latest = max(m["timeStamp"] for m in received)
    assert latest <= after and latest >= before - 3 * 3600  # the last message is recent, not in the future
    offset = load("vmware-backup").masters[0].clock_offset_hours * 3600
    for message in received:
        for group in message["payload"]:
            for item in group["data"]:
                assert item.get("startTime", 0) - offset <= after and item.get("createdTime", 0) - offset <= after


def test_live_start_puts_the_last_message_at_now() -> None:
    now = 1_800_000_000.5
    start = live_start(load("datacenter-day"), None, now)
    last = list(Timeline(load("datacenter-day"), start=start).messages())[-1].at
    assert now - 1 <= last <= now


def test_run_start_sends_what_generate_writes(tmp_path: Path, capsys) -> None:
    """Issue 13 item 3: the same scenario, seed and --start give the same notifications in the same batches as generate."""
    transcript = tmp_path / "run.jsonl"
    start = "2026-03-01T10:00:00Z"
    code = main(["run", "restore", "--seed", "4", "--start", start, "--no-probes", "--quiet", "--transcript", str(transcript)])
    assert code == 0
    capsys.readouterr()
    main(["generate", "restore", "--seed", "4", "--start", start])
    generated = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    messages = read_sent_notifications(transcript)
    assert [(m["timeStamp"], m["payload"]) for m in messages] == [(m["timeStamp"], m["payload"]) for m in generated]


def test_the_pytest_master_sends_the_dr_masters_news_on_its_own_connection() -> None:
    """nbwss_master.replicate(): the target master's IMPORT job and image CREATE come on a connection of its own."""
    from emulator.harness import EndpointHandle, LoopThread, MasterHandle  # noqa: PLC0415 - the plugin's own objects

    loop = LoopThread()
    try:
        endpoint = EndpointHandle(loop)
        settings = Settings(properties=FAST, drain_timeout=1.0, connect_timeout=3.0)
        master = MasterHandle(loop, [Target(endpoint.url, endpoint.token)], settings=settings, domain="smoke", seed=3)
        master.backup(policy_type="STANDARD").assert_all_acknowledged()
        result = master.replicate(to="dr", pick="oldest")
        result.assert_all_acknowledged()
        master.close()
        connections = [list(c.session.notifications) for c in endpoint._endpoint.connections]
        endpoint.close()
        assert len(connections) == 2
        dr_jobs = {i["jobType"] for m in connections[1] for g in m["payload"] if g["object"] == "JOB" for i in g["data"]}
        assert dr_jobs == {"IMPORT"}
        assert {m["id"] for m in connections[1]} <= set(result.sent)  # the operation's result counts the DR master's messages
        times = [i.get("createdTime", i.get("startTime")) for c in connections for m in c for g in m["payload"] for i in g["data"]]
        assert max(times) - 5 * 3600 <= time.time()  # a day behind the wall clock, never ahead
    finally:
        loop.stop()


def test_real_traffic_with_a_value_unknown_to_us_is_sent_and_judged_valid(captures) -> None:
    """Replaying a master's messages with a schedule type we did not list: no schema finding, every rule holds."""
    from emulator.contract.runner import replay  # noqa: PLC0415

    messages = [json.loads(json.dumps(m)) for m in captures]
    messages[0]["payload"][0]["data"][0]["scheduleType"] = "ST_SYNTHETIC_FULL"  # possible, unknown to us
    messages[0]["payload"][0]["data"][0]["jobType"] = "INSTANT_SYNC_NEXT"

    async def scenario():
        async with ReferenceEndpoint() as endpoint:
            result = await replay(messages, options(endpoint))
            return result, endpoint.unique_notifications()

    result, received = asyncio.run(scenario())
    assert result.passed, [(r.rule.id, r.evidence) for r in result.results if r.status == "failed"]
    assert not result.report.violations
    assert len(received) == len(captures)
