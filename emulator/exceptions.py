"""One exception hierarchy: everything the emulator raises on purpose is an :class:`NbwssError`.

The command line maps these to exit codes in one place (:mod:`emulator.cli.app`):
a :class:`UsageError` or :class:`ScenarioError` is bad input (exit 2), a
:class:`ConnectionFailed` means testing could not start (exit 2).
"""

from __future__ import annotations


class NbwssError(Exception):
    """Base of every error the emulator raises on purpose; catch it to catch them all."""


class UsageError(NbwssError):
    """Bad input from the user (arguments, files): one line, exit code 2."""


class ScenarioError(UsageError):
    """A scenario file that does not load: its message names file, line and field."""


class SchemaError(NbwssError, ValueError):
    """A message or file that is not what the NBWSS schemas or formats allow."""


class ConnectionFailed(NbwssError):
    """What prevented testing: TCP refused, DNS, TLS, HTTP upgrade refused."""
