"""The ``nbwss-emu`` command line: one module per command family.

- :mod:`~emulator.cli.app`: the parser, and exit codes mapped from exceptions in one place
- :mod:`~emulator.cli.args`: argument types and shared argument groups
- :mod:`~emulator.cli.signals`: SIGINT/SIGTERM handling for long-running commands
- :mod:`~emulator.cli.offline`: ``scenarios``, ``generate``, ``validate``, ``rules``, ``locustfile``
- :mod:`~emulator.cli.contract`: ``run``, ``replay``
- :mod:`~emulator.cli.serve`: ``serve``
- :mod:`~emulator.cli.load`: ``load``
"""

from __future__ import annotations

from emulator.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
