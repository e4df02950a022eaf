"""The ``nbwss-emu`` parser, and exit codes mapped from exceptions in one place.

Exit codes: 0 all good, 1 findings, 2 bad input or no testing possible (a one-line
error, never a traceback), 128 + N when signal N stopped the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from emulator import __version__
from emulator.cli import contract, load, offline, serve
from emulator.cli import master as rest_master
from emulator.cli import state as state_family
from emulator.exceptions import NbwssError, UsageError

OK, FINDINGS, BAD_INPUT = 0, 1, 2

#: The command families, in the order ``--help`` lists them.
FAMILIES = (offline, contract, serve, load, rest_master, state_family)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every family adds its commands."""
    parser = Parser(
        prog="nbwss-emu",
        description="A NetBackup master server speaking NBWSS, for testing WebSocket endpoints.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    for family in FAMILIES:
        family.add_parsers(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nbwss-emu`` with ``argv`` (default: the process's); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.verb is None:
            parser.print_help()
            return OK
        return int(args.command(args))
    except NbwssError as error:
        print(f"nbwss-emu: error: {error}", file=sys.stderr)
        return BAD_INPUT
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours.
        sys.stderr.close()
        return OK
    except KeyboardInterrupt:
        print("nbwss-emu: interrupted", file=sys.stderr)
        return 130
