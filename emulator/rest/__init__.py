"""The emulated master's NetBackup REST API: versions, paging, OData filters, errors, resources.

:class:`~emulator.rest.responder.CommandResponder` answers requests from the master's state,
inside NBWSS COMMAND messages and over HTTPS (:mod:`emulator.rest.https`).
"""

from emulator.rest.errors import HttpError
from emulator.rest.responder import Answer, CommandExchange, CommandResponder, Request
from emulator.rest.versions import DEFAULT_PROFILE, RELEASE_API, VERSION_PROFILES, Release

__all__ = [
    "DEFAULT_PROFILE",
    "RELEASE_API",
    "VERSION_PROFILES",
    "Answer",
    "CommandExchange",
    "CommandResponder",
    "HttpError",
    "Release",
    "Request",
]
