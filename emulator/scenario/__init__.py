"""Scenarios: the YAML format, its loader, and the timeline a scenario produces."""

from emulator.exceptions import ScenarioError
from emulator.scenario.loader import bundled, load, parse
from emulator.scenario.model import Scenario
from emulator.scenario.timeline import TimedMessage, Timeline

__all__ = ["Scenario", "ScenarioError", "TimedMessage", "Timeline", "bundled", "load", "parse"]
