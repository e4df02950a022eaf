"""nbwss-emulator: a NetBackup master server speaking the NBWSS protocol, for testing endpoints.

The names below are the public API: what users call from a test, a script or a
locustfile. Everything else may change between versions. The package imports
nothing heavy at start-up: each name is loaded from its module on first use.

- Harness handles (no pytest needed): :class:`LoopThread`, :class:`EndpointHandle`,
  :class:`MasterHandle` and the :class:`Result` they return.
- Contract runs: :func:`run_scenario` with :class:`ContractOptions`, giving a
  :class:`ContractResult` of :class:`RuleResult`; the rules are :data:`RULES`.
- Load runs: :func:`run_load` with :class:`LoadConfig`, giving a :class:`LoadResult`.
- Messages: :func:`validate` returns :class:`Finding` s; :class:`NbwssProperties`
  are the master's timings (``nbwss.properties``).
- Scenarios: :func:`load_scenario` (a bundled name or a YAML file), :func:`parse_scenario`
  (YAML text), :func:`bundled_scenarios`; a :class:`Scenario` runs on a :class:`Timeline`
  of :class:`TimedMessage` s. (They are ``load``, ``parse`` and ``bundled`` of
  :mod:`emulator.scenario`; here they carry the word, since ``emulator.load`` is the load
  runner's package.)
- The reference endpoint: :class:`ReferenceEndpoint` with its :class:`Fault` s.
- Errors: :class:`NbwssError` and its children :class:`UsageError`,
  :class:`ScenarioError`, :class:`SchemaError`, :class:`ConnectionFailed`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Each public name and the module it lives in (and its name there, when another).
_WHERE: dict[str, str | tuple[str, str]] = {
    # harness handles and their results
    "LoopThread": "emulator.harness",
    "EndpointHandle": "emulator.harness",
    "MasterHandle": "emulator.harness",
    "Result": "emulator.harness",
    # contract runs
    "run_scenario": "emulator.contract.runner",
    "ContractOptions": "emulator.contract.runner",
    "ContractResult": "emulator.contract.runner",
    "RULES": "emulator.contract.rules",
    "Rule": "emulator.contract.rules",
    "RuleResult": "emulator.contract.rules",
    # load runs
    "run_load": "emulator.load.runner",
    "LoadConfig": "emulator.load.runner",
    "LoadResult": "emulator.load.runner",
    # messages
    "validate": "emulator.schemas",
    "Finding": "emulator.findings",
    "NbwssProperties": "emulator.protocol.properties",
    # scenarios
    "load_scenario": ("emulator.scenario.loader", "load"),
    "parse_scenario": ("emulator.scenario.loader", "parse"),
    "bundled_scenarios": ("emulator.scenario.loader", "bundled"),
    "Scenario": "emulator.scenario.model",
    "Timeline": "emulator.scenario.timeline",
    "TimedMessage": "emulator.scenario.timeline",
    # the reference endpoint
    "ReferenceEndpoint": "emulator.endpoint.server",
    "Fault": "emulator.endpoint.server",
    # errors
    "NbwssError": "emulator.exceptions",
    "UsageError": "emulator.exceptions",
    "ScenarioError": "emulator.exceptions",
    "SchemaError": "emulator.exceptions",
    "ConnectionFailed": "emulator.exceptions",
}

__all__ = [  # the names of _WHERE, spelled out for tools that read __all__ without running it
    "RULES",
    "ConnectionFailed",
    "ContractOptions",
    "ContractResult",
    "EndpointHandle",
    "Fault",
    "Finding",
    "LoadConfig",
    "LoadResult",
    "LoopThread",
    "MasterHandle",
    "NbwssError",
    "NbwssProperties",
    "ReferenceEndpoint",
    "Result",
    "Rule",
    "RuleResult",
    "Scenario",
    "ScenarioError",
    "SchemaError",
    "TimedMessage",
    "Timeline",
    "UsageError",
    "__version__",
    "bundled_scenarios",
    "load_scenario",
    "parse_scenario",
    "run_load",
    "run_scenario",
    "validate",
]

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ loads them
    from emulator.contract.rules import RULES, Rule, RuleResult
    from emulator.contract.runner import ContractOptions, ContractResult, run_scenario
    from emulator.endpoint.server import Fault, ReferenceEndpoint
    from emulator.exceptions import ConnectionFailed, NbwssError, ScenarioError, SchemaError, UsageError
    from emulator.findings import Finding
    from emulator.harness import EndpointHandle, LoopThread, MasterHandle, Result
    from emulator.load.runner import LoadConfig, LoadResult, run_load
    from emulator.protocol.properties import NbwssProperties
    from emulator.scenario.loader import bundled as bundled_scenarios
    from emulator.scenario.loader import load as load_scenario
    from emulator.scenario.loader import parse as parse_scenario
    from emulator.scenario.model import Scenario
    from emulator.scenario.timeline import TimedMessage, Timeline
    from emulator.schemas import validate


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'emulator' has no attribute {name!r}")
    module, attribute = where if isinstance(where, tuple) else (where, name)
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
