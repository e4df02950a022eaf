"""pytest plugin: the emulated master and the reference endpoint as fixtures.

Registered through the ``pytest11`` entry point, so installing nbwss-emulator is
enough. A thin layer over :mod:`emulator.harness`:

* ``nbwss_endpoint``: the reference endpoint on loopback (one per session,
  cleared after each test: received notifications, faults, login);
* ``nbwss_master``: an emulated master connected to the endpoint under test:
  ``--nbwss-endpoint URL`` (with ``--nbwss-token``, ``--nbwss-cafile``) or,
  without it, ``nbwss_endpoint``; one per test, closed at teardown;
* ``nbwss_scenario``: loads a bundled or file scenario;
* ``nbwss_properties`` and ``nbwss_settings``: the NBWSS timings, to override
  in a ``conftest.py`` (e.g. to compress them);
* the ``nbwss_contract`` marker, and :func:`contract_tests` for one pytest test
  per contract rule.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.contract.rules import FAILED, NOT_EXERCISED, RULES, SKIPPED
from emulator.findings import RuleId
from emulator.harness import EndpointHandle, LoopThread, MasterHandle, Result
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Settings, Target
from emulator.rest import CommandResponder
from emulator.rest.https import RestServer
from emulator.scenario import Scenario, load
from emulator.wire.master import ConnectError
from emulator.wire.tls import TlsOptions

MARKER = "nbwss_contract"
_SEED = pytest.StashKey[int]()
#: External endpoints that could not be reached this session, and why: the tests after the first one skip, not reconnect.
_UNREACHABLE = pytest.StashKey[dict[str, str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nbwss", "NBWSS emulator (nbwss-emulator)")
    group.addoption(
        "--nbwss-endpoint", metavar="URL", help="the NBWSS endpoint under test (default: $NBWSS_ENDPOINT, else the reference endpoint)"
    )
    group.addoption("--nbwss-token", help="its token (default: $NBWSS_TOKEN)")
    group.addoption("--nbwss-cafile", help="a CA to trust for wss://")
    group.addoption("--nbwss-insecure", action="store_true", help="do not verify the endpoint's certificate")
    group.addoption("--nbwss-seed", type=int, help="seed of the masters' domains and message ids (default: random, shown in the header)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: an NBWSS contract test (run with -m {MARKER})")
    if _external(config) and not _token(config):  # once, before any test: not one error per test
        raise pytest.UsageError("--nbwss-endpoint needs --nbwss-token (or NBWSS_TOKEN)")
    seed = config.getoption("--nbwss-seed")
    config.stash[_SEED] = seed if seed is not None else random.randrange(1_000_000)
    config.stash[_UNREACHABLE] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """An endpoint under test that cannot be reached: one line naming it and why, not a traceback through the emulator."""
    try:
        return (yield)
    except ConnectError as error:
        url = _external(item.config)
        if not url or "nbwss_master" not in getattr(item, "fixturenames", ()):
            raise
        item.config.stash[_UNREACHABLE].setdefault(url, str(error))
        raise pytest.fail.Exception(f"cannot reach the NBWSS endpoint {url} (--nbwss-endpoint): {error}", pytrace=False) from None


def pytest_report_header(config: pytest.Config) -> str:
    return f"nbwss-emulator: --nbwss-seed {config.stash[_SEED]}"


@pytest.fixture(scope="session")
def nbwss_seed(pytestconfig: pytest.Config) -> Iterator[int]:
    """A fresh seed for each master of the session, from --nbwss-seed: reproducible, and no two tests send the same ids."""
    return itertools.count(pytestconfig.stash[_SEED] * 1000)


@pytest.fixture(scope="session")
def nbwss_loop() -> Iterator[LoopThread]:
    """The event loop the emulator runs on, beside the tests."""
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture(scope="session")
def nbwss_properties() -> NbwssProperties:
    """NBWSS timings (nbwss.properties). Override to compress them, e.g. resend_interval=0.5."""
    return NbwssProperties()


@pytest.fixture(scope="session")
def nbwss_settings(nbwss_properties: NbwssProperties) -> Settings:
    """How masters send: timings, window, time-outs."""
    return Settings(properties=nbwss_properties, connect_timeout=10.0)


@pytest.fixture(scope="session")
def nbwss_endpoint_server(nbwss_loop: LoopThread) -> Iterator[EndpointHandle]:
    """The session's reference endpoint; prefer ``nbwss_endpoint``, which is cleared after each test."""
    handle = EndpointHandle(nbwss_loop)
    yield handle
    handle.close()


@pytest.fixture
def nbwss_endpoint(request: pytest.FixtureRequest) -> Iterator[EndpointHandle]:
    """A reference endpoint on loopback: ``url``, ``token``, ``received``, ``items()``, ``fault``, ``command()``, ``login()``.

    With ``--nbwss-endpoint`` the masters talk to that endpoint, not to this one: a
    test that reads what the reference endpoint received is skipped, saying why.
    """
    url = _external(request.config)
    if url:
        pytest.skip(
            f"reads the in-process reference endpoint (nbwss_endpoint), but the masters talk to {url} (--nbwss-endpoint); "
            "check what that endpoint stored through its own API, or run without --nbwss-endpoint"
        )
    server: EndpointHandle = request.getfixturevalue("nbwss_endpoint_server")
    yield server
    server.clear()


@pytest.fixture
def nbwss_master(
    request: pytest.FixtureRequest, nbwss_loop: LoopThread, nbwss_settings: Settings, nbwss_seed: Iterator[int]
) -> Iterator[MasterHandle]:
    """An emulated master connected to the endpoint under test (``--nbwss-endpoint``) or to ``nbwss_endpoint``."""
    config = request.config
    url = _external(config)
    token_for: Callable[[str], str] | None = None  # an external endpoint: the one token given, for every master
    if url:
        unreachable = config.stash[_UNREACHABLE].get(url)
        if unreachable is not None:  # said once, by the test that tried: the others do not try again
            pytest.skip(f"the NBWSS endpoint {url} could not be reached earlier in this session: {unreachable}")
        targets = [Target(url, _token(config) or "")]  # the token was checked in pytest_configure
    else:
        endpoint: EndpointHandle = request.getfixturevalue("nbwss_endpoint")
        targets = [Target(endpoint.url, endpoint.token)]
        token_for = endpoint.token_for
    tls = TlsOptions(cafile=config.getoption("--nbwss-cafile"), insecure=config.getoption("--nbwss-insecure"))
    handle = MasterHandle(nbwss_loop, targets, settings=nbwss_settings, tls=tls, seed=next(nbwss_seed), token_for=token_for)
    yield handle
    handle.close()


def _external(config: pytest.Config) -> str | None:
    """The endpoint under test when it is not the in-process one."""
    url: str | None = config.getoption("--nbwss-endpoint") or os.environ.get("NBWSS_ENDPOINT")
    return url


def _token(config: pytest.Config) -> str | None:
    token: str | None = config.getoption("--nbwss-token") or os.environ.get("NBWSS_TOKEN")
    return token


@pytest.fixture
def nbwss_scenario() -> Callable[..., Scenario]:
    """``nbwss_scenario("smoke")`` or ``nbwss_scenario(path)``: a checked scenario, for ``nbwss_master.run()``."""

    def loader(name_or_path: str | Path) -> Scenario:
        return load(str(name_or_path))

    return loader


def contract_tests(scenario: str = "smoke", *, seed: int | None = None) -> Callable[..., None]:
    """One pytest test per contract rule, from a single run::

    from emulator.pytest_plugin import contract_tests

    test_nbwss_contract = contract_tests("smoke")
    """
    loaded = load(scenario)  # a wrong name is one error where the tests are defined, not one per rule
    runs: dict[tuple[str, ...], Result] = {}

    @pytest.mark.nbwss_contract
    @pytest.mark.parametrize("rule", [rule.id.value for rule in RULES])
    def test_rule(rule: str, nbwss_master: MasterHandle) -> None:
        key = tuple(t.url for t in nbwss_master.targets)
        if key not in runs:
            runs[key] = nbwss_master.run(loaded, seed=seed)
        result = runs[key]
        verdicts = {r.rule.id: r for r in result.rules or []}
        verdict = verdicts[RuleId.of(rule)]
        if verdict.status in (SKIPPED, NOT_EXERCISED):
            pytest.skip(f"{verdict.status}: {verdict.summary}" if verdict.status == NOT_EXERCISED else verdict.summary)
        if verdict.status == FAILED:
            result.assert_rule(rule)

    return test_rule


@pytest.fixture
def nbwss_rest_master(nbwss_master: MasterHandle) -> Iterator[RestServer]:
    """``nbwss_master``'s NetBackup REST API over HTTPS on loopback, as a NetBackup 10.5 master answers it.

    Same state as the master's NBWSS stream: what its operations did, REST clients read.
    ``.url`` is ``https://127.0.0.1:<port>/netbackup``; ``.client_context()`` trusts its certificate
    (``.cafile`` is the CA's PEM file). Use it between operations, not during one.
    """
    with RestServer(CommandResponder(nbwss_master.master, profile="10.5"), port=0) as server:
        yield server


@pytest.fixture
def nbwss_explore(request: pytest.FixtureRequest, nbwss_settings: Settings, nbwss_seed: Iterator[int]) -> Callable[..., Any]:
    """``nbwss_explore(budget=10, state=fetch)``: stateful exploration of the endpoint under test (``--nbwss-endpoint``,
    else a reference endpoint of its own); returns an ``ExploreResult``: call ``assert_passed()`` on it.

    ``state`` is a callable returning the endpoint's state (the expected-state shape); with the embedded
    reference endpoint its store is compared. Other keywords are ``ExploreOptions`` fields (``steps``, ``transcript``, ``fault``).
    """
    from emulator.explore import ExploreOptions, explore  # noqa: PLC0415 - hypothesis loads only for tests that explore

    config = request.config
    url = config.getoption("--nbwss-endpoint") or os.environ.get("NBWSS_ENDPOINT")
    targets = []
    if url:
        token = config.getoption("--nbwss-token") or os.environ.get("NBWSS_TOKEN")
        if not token:
            raise pytest.UsageError("--nbwss-endpoint needs --nbwss-token (or NBWSS_TOKEN)")
        targets = [Target(url, token)]
    tls = TlsOptions(cafile=config.getoption("--nbwss-cafile"), insecure=config.getoption("--nbwss-insecure"))

    def run(budget: float = 10.0, **options: Any) -> Any:
        options.setdefault("seed", next(nbwss_seed))
        return explore(ExploreOptions(targets=targets, settings=nbwss_settings, tls=tls, budget=budget, **options))

    return run


__all__ = ["contract_tests"]
