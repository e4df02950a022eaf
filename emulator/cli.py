"""The ``nbwss-emu`` command line.

Exit codes: 0 all good, 1 findings, 2 bad input (a one-line error, never a traceback).
"""

from __future__ import annotations

import argparse
import calendar
import itertools
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from emulator import __version__
from emulator.protocol.codec import DecodeError, decode, encode
from emulator.scenario import ScenarioError, Timeline, bundled, load
from emulator.scenario.loader import resolve
from emulator.schemas import default_schemas

OK, FINDINGS, BAD_INPUT = 0, 1, 2
DEFAULT_SCENARIO = "smoke"


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nbwss-emu",
        description="A NetBackup master server speaking NBWSS, for testing WebSocket endpoints.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    scenarios = verbs.add_parser("scenarios", help="list the bundled scenarios, or show one")
    scenarios.add_argument("action", nargs="?", choices=["list", "show"], default="list", help="list (default) or show")
    scenarios.add_argument("name", nargs="?", help="the scenario to show")

    generate = verbs.add_parser("generate", help="write a scenario's NOTIFICATION messages as JSON Lines, no network")
    generate.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO, help=f"bundled name or YAML file (default: {DEFAULT_SCENARIO})")
    generate.add_argument("--seed", type=_non_negative, help="seed for names, sizes and timings (default: the scenario's)")
    generate.add_argument("--count", type=_positive, help="write exactly N messages, repeating the scenario's steps as needed")
    generate.add_argument("--master", metavar="KEY", help="only this master's messages (a key of the scenario's masters)")
    generate.add_argument("--start", type=_utc, help="scenario start as UTC, e.g. 2026-04-05T08:00:00Z")

    validate = verbs.add_parser("validate", help="check JSON or JSON Lines messages against the NBWSS schemas")
    validate.add_argument("file", help="a file of messages, or - for standard input")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.verb is None:
            parser.print_help()
            return OK
        return int(_VERBS[args.verb](args))
    except (UsageError, ScenarioError) as error:
        print(f"nbwss-emu: error: {error}", file=sys.stderr)
        return BAD_INPUT
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours.
        sys.stderr.close()
        return OK
    except KeyboardInterrupt:
        print("nbwss-emu: interrupted", file=sys.stderr)
        return 130


# -- verbs -----------------------------------------------------------------------------


def _scenarios(args: argparse.Namespace) -> int:
    if args.action == "show":
        if not args.name:
            raise UsageError("scenarios show needs a NAME")
        path = resolve(args.name)
        load(args.name)  # a file that does not load is reported, not shown as if fine
        sys.stdout.write(path.read_text(encoding="utf-8"))
        return OK
    if args.name:
        raise UsageError(f"unexpected argument {args.name!r}; did you mean 'scenarios show {args.name}'?")
    rows = [(name, load(name).description) for name in bundled()]
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        marker = " (default)" if name == DEFAULT_SCENARIO else ""
        print(f"{name:<{width}}  {description}{marker}")
    return OK


def _generate(args: argparse.Namespace) -> int:
    scenario = load(args.scenario)
    keys = [m.key for m in scenario.masters]
    if args.master is not None and args.master not in keys:
        raise UsageError(f"--master {args.master!r}: the scenario's masters are {', '.join(keys)}")
    timeline = Timeline(scenario, seed=args.seed, start=args.start)
    stream: Iterator[Any] = timeline.messages(repeat=args.count is not None)
    if args.master is not None:
        stream = (m for m in stream if m.master == args.master)
    if args.count is not None:
        stream = itertools.islice(stream, args.count)
    out = sys.stdout.buffer
    written = 0
    for timed in stream:
        out.write(encode(timed.message) + b"\n")
        written += 1
    out.flush()
    for note in timeline.notes:
        print(f"nbwss-emu: note: {note}", file=sys.stderr)
    if args.count is not None and written < args.count:
        print(f"nbwss-emu: note: the scenario produced only {written} messages", file=sys.stderr)
    return OK


def _validate(args: argparse.Namespace) -> int:
    source = "<stdin>" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{source}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    schemas = default_schemas()
    invalid = total = findings = 0
    for index, (line, message) in enumerate(_messages(text, source), start=1):
        total += 1
        problems = schemas.validate(message)
        if problems:
            invalid += 1
            findings += len(problems)
            for finding in problems:
                print(f"{source}: message {index} (line {line}): {finding}")
    if total == 0:
        raise UsageError(f"{source}: no messages")
    print(f"{source}: {total} message{'s' * (total != 1)}, {total - invalid} valid, {invalid} with findings ({findings} findings)")
    return FINDINGS if invalid else OK


def _messages(text: str, source: str) -> Iterator[tuple[int, Any]]:
    """(line, message) pairs from one JSON document (an object or an array of them) or JSON Lines."""
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{"):
        try:
            whole = decode(text)
        except DecodeError:
            whole = None  # not one document: read it as JSON Lines
        else:
            if isinstance(whole, list):
                yield from ((1, message) for message in whole)
            else:
                yield 1, whole
            return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, decode(line)
        except DecodeError as error:
            raise UsageError(f"{source}:{number}: not JSON: {error}") from None


_VERBS = {"scenarios": _scenarios, "generate": _generate, "validate": _validate}


# -- argument types ----------------------------------------------------------------------


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _utc(text: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UTC time like 2026-04-05T08:00:00Z: {text!r}") from None
