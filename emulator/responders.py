"""Answers to COMMAND requests: the NetBackup REST API of the emulated master.

The implementation lives in :mod:`emulator.rest`; this module keeps the names other modules import.
"""

from emulator.rest import DEFAULT_PROFILE, VERSION_PROFILES, CommandExchange, CommandResponder, HttpError
from emulator.rest.responder import Request

__all__ = ["DEFAULT_PROFILE", "VERSION_PROFILES", "CommandExchange", "CommandResponder", "HttpError", "Request"]
