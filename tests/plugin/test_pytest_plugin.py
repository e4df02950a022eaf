"""The pytest plugin, as a user meets it: small suites run by pytester in a fresh directory."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from emulator.contract.rules import RULES
from emulator.harness import EndpointHandle, LoopThread

pytest_plugins = ["pytester"]

FAST_CONFTEST = """
from pathlib import Path

import pytest
from emulator.protocol.properties import NbwssProperties

@pytest.fixture(scope="session")
def nbwss_properties():
    return NbwssProperties(resend_interval=0.2, send_timeout=0.3, connection_period=0.5)
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def test_a_synchronous_suite_against_the_reference_endpoint(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAST_CONFTEST)
    pytester.makepyfile(
        test_sync="""
        def test_vmware_backup_is_parent_and_children(nbwss_master, nbwss_endpoint):
            result = nbwss_master.backup(policy_type="VMWARE")
            result.assert_all_acknowledged()
            result.assert_no_findings()
            jobs = nbwss_endpoint.items("JOB")
            parents = {j["jobId"] for j in jobs if j["jobId"] == j["parentJobId"]}
            assert len(parents) == 1
            assert all(j["parentJobId"] in parents for j in jobs)
            assert result.latency(99) is not None

        def test_state_carries_on_and_commands_read_it(nbwss_master, nbwss_endpoint):
            nbwss_master.backup(policy_type="STANDARD").assert_all_acknowledged()
            nbwss_master.restore(pick="newest").assert_all_acknowledged()
            assert nbwss_endpoint.items("JOB")[-1]["jobType"] == "RESTORE"
            nbwss_endpoint.login()
            jobs = nbwss_endpoint.command("/netbackup/admin/jobs?page[limit]=100")
            assert jobs["payload"]["statusCode"] == 200
            assert {d["attributes"]["jobType"] for d in jobs["payload"]["body"]["data"]} == {"BACKUP", "RESTORE"}
            assert [c.status for c in nbwss_master.commands] == [201, 200]

        def test_the_endpoint_was_cleared(nbwss_endpoint):
            assert nbwss_endpoint.received == []

        def test_scenario_by_name(nbwss_master, nbwss_scenario):
            result = nbwss_master.run(nbwss_scenario("vmware-backup"), seed=4)
            result.assert_passed()
            result.assert_all_acknowledged()

        def test_a_raw_message(nbwss_master):
            result = nbwss_master.send('{"not": "an NBWSS message"}')
            assert result.sent == []
        """
    )
    result = run(pytester, "-v")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["nbwss-emulator: --nbwss-seed *"])


def test_an_asynchronous_suite(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAST_CONFTEST)
    pytester.makepyfile(
        test_async="""
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        async def test_operations_are_awaitable(nbwss_master, nbwss_endpoint):
            result = await nbwss_master.abackup(policy_type="STANDARD", schedule="incremental")
            result.assert_all_acknowledged()
            assert {j["scheduleType"] for j in nbwss_endpoint.items("JOB")} == {"ST_DINC"}
            unauthorised = await nbwss_endpoint.acommand("/netbackup/admin/jobs")
            assert unauthorised["payload"]["statusCode"] == 401
            (await nbwss_master.arun("smoke", probes=False)).assert_passed()
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_contract_rules_as_one_test_each_and_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAST_CONFTEST)
    pytester.makepyfile(
        test_contract="""
        from emulator.pytest_plugin import contract_tests

        test_nbwss = contract_tests("smoke")

        def test_other():
            pass
        """
    )
    result = run(pytester, "-m", "nbwss_contract", "-v")
    result.assert_outcomes(passed=len(RULES) - 1, skipped=1, deselected=1)  # transport.wss: embedded endpoint
    result.stdout.fnmatch_lines(["*test_nbwss?ack.every-notification? PASSED*"])
    run(pytester, "--markers").stdout.fnmatch_lines(["@pytest.mark.nbwss_contract*"])


def test_failures_read_well(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAST_CONFTEST)
    pytester.makepyfile(
        test_failing="""
        def test_no_ack(nbwss_master, nbwss_endpoint):
            nbwss_endpoint.fault = "no-ack"
            nbwss_master.backup(policy_type="STANDARD").assert_all_acknowledged()

        def test_duplicate_acks(nbwss_master, nbwss_endpoint):
            nbwss_endpoint.fault = "duplicate-ack"
            nbwss_master.backup(policy_type="STANDARD").assert_no_findings()

        def test_contract(nbwss_master, nbwss_endpoint):
            nbwss_endpoint.fault = "wrong-id"
            nbwss_master.run("smoke").assert_passed()

        def test_bad_step(nbwss_master):
            nbwss_master.backup(colour="red")
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(
        [
            "*backup(policy_type='STANDARD'): * notifications were not acknowledged within *",
            "*expected: a NOTIFICATION RESPONSE with the same id for each*",
            "*came:     nothing for *",
            "*last frames:*",
            "*out: NOTIFICATION REQUEST *",
            "*[[]ack.once[]] /id: notification * acknowledged again*",
            "*contract rule(s) failed*",
            "*ack.known-id: * violation*",
            "*ScenarioError: backup(): colour: unknown field 'colour'*",
        ]
    )


@pytest.fixture
def external_endpoint():
    loop = LoopThread()
    endpoint = EndpointHandle(loop)
    yield endpoint
    endpoint.close()
    loop.stop()


def test_against_a_separately_started_endpoint(pytester: pytest.Pytester, external_endpoint: EndpointHandle) -> None:
    """--nbwss-endpoint points the master elsewhere; the embedded endpoint is not started; connections close even when a test fails."""
    pytester.makeconftest(FAST_CONFTEST)
    pytester.makepyfile(
        test_external=f"""
        def test_it_is_used(nbwss_master, request):
            assert nbwss_master.targets[0].url == "{external_endpoint.url}"
            nbwss_master.backup(policy_type="VMWARE").assert_all_acknowledged()
            assert "nbwss_endpoint_server" not in request.fixturenames

        def test_failing_still_closes(nbwss_master):
            nbwss_master.backup(policy_type="STANDARD")
            assert False, "on purpose"
        """
    )
    result = run(pytester, "--nbwss-endpoint", external_endpoint.url, "--nbwss-token", external_endpoint.token)
    result.assert_outcomes(passed=1, failed=1)
    assert len(external_endpoint.received) > 5
    connections = external_endpoint._endpoint.connections
    assert len(connections) == 2
    assert all(c.websocket.state.name == "CLOSED" for c in connections)


def test_an_external_endpoint_needs_a_token(pytester: pytest.Pytester) -> None:
    """One clear error before any test runs, not one per test."""
    pytester.makepyfile(test_x="def test_x(nbwss_master):\n    pass\n\ndef test_y(nbwss_master):\n    pass\n")
    result = run(pytester, "--nbwss-endpoint", "ws://127.0.0.1:9/x")
    errors = (result.stdout.str() + result.stderr.str()).count("--nbwss-endpoint needs --nbwss-token")
    assert errors == 1
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def _readme_example() -> str:
    readme = (Path(__file__).parents[2] / "docs" / "guide" / "pytest.md").read_text(encoding="utf-8")
    section = readme[readme.index("A complete test file to copy") :]
    start = section.index("```python") + len("```python")
    return section[start : section.index("```", start)]


def test_the_readme_example_against_an_external_endpoint(pytester: pytest.Pytester, external_endpoint: EndpointHandle) -> None:
    """Tests that read the in-process endpoint skip, saying why; none fails with StopIteration or 'no master is connected'."""
    pytester.makepyfile(test_nbwss=_readme_example())
    result = run(pytester, "-rs", "--nbwss-endpoint", external_endpoint.url, "--nbwss-token", external_endpoint.token)
    output = result.stdout.str()
    assert "StopIteration" not in output and "no master is connected" not in output
    result.assert_outcomes(passed=len(RULES) - 1 + 2, skipped=1 + 2)  # command.well-formed: this endpoint sends none
    result.stdout.fnmatch_lines(["*the masters talk to*--nbwss-endpoint*"])


def test_a_wrong_scenario_name_is_one_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_c="from emulator.pytest_plugin import contract_tests\n\ntest_contract = contract_tests('no-such-scenario')\n")
    result = run(pytester)
    output = result.stdout.str()
    assert output.count("no-such-scenario") >= 1
    result.assert_outcomes(errors=1)


def test_a_wrong_connect_answer_is_an_assertion_naming_the_rule(pytester: pytest.Pytester, external_endpoint: EndpointHandle) -> None:
    external_endpoint.fault = "connect-not-boolean"
    pytester.makepyfile(test_x="def test_x(nbwss_master):\n    nbwss_master.backup(policy_type='STANDARD')\n")
    result = run(pytester, "--nbwss-endpoint", external_endpoint.url, "--nbwss-token", external_endpoint.token)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: rule connect.answered failed*", '*/payload/valid: "true" is not of type "boolean"*'])


def test_the_readme_example_passes(pytester: pytest.Pytester) -> None:
    """The test file the README offers to copy runs green as it stands."""
    pytester.makepyfile(test_nbwss=_readme_example())
    result = run(pytester)
    result.assert_outcomes(passed=len(RULES) - 1 + 4, skipped=1)


def test_an_unreachable_endpoint_is_one_line_naming_it_and_the_cause_not_a_traceback_per_test(pytester: pytest.Pytester) -> None:
    """The first test to connect fails with one line; the others skip saying why, without connecting again."""
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/nbwss"
    pytester.makepyfile(test_nbwss=_readme_example())
    result = run(pytester, "-rs", "--nbwss-endpoint", url, "--nbwss-token", "t")
    output = result.stdout.str()
    result.assert_outcomes(failed=1, skipped=len(RULES) - 1 + 4)  # every other test
    cause = f"connection refused by 127.0.0.1:{port}"
    failures = output[output.index("= FAILURES =") : output.index("short test summary info")]
    said = [line for line in failures.splitlines() if not line.startswith(("=", "_"))]  # under the test's header, nothing more
    assert said == [f"cannot reach the NBWSS endpoint {url} (--nbwss-endpoint): {cause}"]
    assert f"the NBWSS endpoint {url} could not be reached earlier in this session: {cause}" in output  # the skips' reason (-rs)
    assert "Traceback" not in output and "emulator/wire" not in output and len(output.splitlines()) < 80


def test_after_an_endpoint_could_not_be_reached_the_other_tests_do_not_connect_again(pytester: pytest.Pytester) -> None:
    accepted: list[int] = []
    with socket.socket() as server:  # takes each connection and closes it: no WebSocket handshake
        server.bind(("127.0.0.1", 0))
        server.listen()

        def serve() -> None:
            with contextlib.suppress(OSError):
                while True:
                    connection, _ = server.accept()
                    accepted.append(1)
                    connection.close()

        threading.Thread(target=serve, daemon=True).start()
        url = f"ws://127.0.0.1:{server.getsockname()[1]}/nbwss"
        tests = "".join(f"def test_{n}(nbwss_master):\n    nbwss_master.backup(policy_type='STANDARD')\n\n" for n in range(5))
        pytester.makepyfile(test_x=tests)
        result = run(pytester, "--nbwss-endpoint", url, "--nbwss-token", "t")
    result.assert_outcomes(failed=1, skipped=4)
    assert len(accepted) == 1
    result.stdout.fnmatch_lines([f"*cannot reach the NBWSS endpoint {url} (--nbwss-endpoint): *"])
