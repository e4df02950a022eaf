"""Contract testing: rules, a run against an endpoint, and its reports."""

from emulator.contract.rules import RULES, Rule, RuleResult
from emulator.contract.runner import ContractOptions, ContractResult, replay, run_masters, run_scenario

__all__ = ["RULES", "ContractOptions", "ContractResult", "Rule", "RuleResult", "replay", "run_masters", "run_scenario"]
