"""Commands that need no network: ``scenarios``, ``generate``, ``validate``, ``rules``, ``locustfile``."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emulator.cli.args import DEFAULT_SCENARIO, non_negative, positive, utc
from emulator.contract import RULES
from emulator.exceptions import UsageError
from emulator.protocol.codec import DecodeError, decode, encode
from emulator.scenario import Timeline, bundled, load
from emulator.scenario.loader import resolve
from emulator.schemas import default_schemas

OK, FINDINGS = 0, 1


def add_parsers(verbs: Any) -> None:
    """Add this family's commands to the ``nbwss-emu`` parser."""
    scenarios = verbs.add_parser("scenarios", help="list the bundled scenarios, or show one")
    scenarios.add_argument("action", nargs="?", choices=["list", "show"], default="list", help="list (default) or show")
    scenarios.add_argument("name", nargs="?", help="the scenario to show")
    scenarios.set_defaults(command=_scenarios)

    generate = verbs.add_parser("generate", help="write a scenario's NOTIFICATION messages as JSON Lines, no network")
    generate.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO, help=f"bundled name or YAML file (default: {DEFAULT_SCENARIO})")
    generate.add_argument("--seed", type=non_negative, help="seed for names, sizes and timings (default: the scenario's)")
    generate.add_argument("--count", type=positive, help="write exactly N messages, repeating the scenario's steps as needed")
    generate.add_argument(
        "--master",
        metavar="KEY",
        help="this master's messages (a key of the scenario's masters; default: the first); "
        'all: every master\'s, each line marked {"master": KEY, "hostname": ..., "message": ...}',
    )
    generate.add_argument("--start", type=utc, help="scenario start as UTC, e.g. 2026-04-05T08:00:00Z")
    generate.add_argument(
        "--reproducible-ids", action="store_true", help="draw message ids from the seed too (default: unique per run, as a real master's)"
    )
    generate.set_defaults(command=_generate)

    validate = verbs.add_parser("validate", help="check JSON or JSON Lines messages against the NBWSS schemas")
    validate.add_argument("file", help="a file of messages, or - for standard input")
    validate.set_defaults(command=_validate)

    verbs.add_parser("rules", help="list the contract rules that 'run' checks").set_defaults(command=_rules)
    verbs.add_parser("locustfile", help='print the path of the ready locustfile (locust -f "$(nbwss-emu locustfile)")').set_defaults(
        command=_locustfile
    )


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
    if args.master is not None and args.master not in [*keys, "all"]:
        raise UsageError(f"--master {args.master!r}: the scenario's masters are {', '.join(keys)} (or all)")
    timeline = Timeline(scenario, seed=args.seed, start=args.start, ids="seeded" if args.reproducible_ids else "unique")
    stream: Iterator[Any] = timeline.messages(repeat=args.count is not None)
    master = args.master or keys[0]
    if master != "all":
        # Each master sends on its own connection: one master's stream, never a mix passed off as one.
        stream = (m for m in stream if m.master == master)
        if args.master is None and len(keys) > 1:
            others = ", ".join(keys[1:])
            print(f"nbwss-emu: note: writing master {master!r}'s messages; {others} need --master KEY (or --master all)", file=sys.stderr)
    if args.count is not None:
        stream = itertools.islice(stream, args.count)
    out = sys.stdout.buffer
    written = 0
    for timed in stream:
        if master == "all":
            out.write(
                encode({"master": timed.master, "hostname": timeline.masters[timed.master].hostname, "message": timed.message}) + b"\n"
            )
        else:
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
    invalid = total = findings = warnings = 0
    for index, (line, read) in enumerate(_messages(text, source), start=1):
        total += 1
        marked = isinstance(read, dict) and set(read) == {"master", "hostname", "message"}
        message = read["message"] if marked else read  # a line of 'generate --master all' is marked with its master
        problems = schemas.validate(message)
        if problems:
            invalid += 1
            findings += len(problems)
            for finding in problems:
                print(f"{source}: message {index} (line {line}): {finding}")
        for warning in schemas.unknown_values(message):  # possible, but not a value we know: never an error
            warnings += 1
            print(f"{source}: message {index} (line {line}): warning: {warning}")
    if total == 0:
        raise UsageError(f"{source}: no messages")
    noted = f", {warnings} warning{'s' * (warnings != 1)} (values unknown to us)" if warnings else ""
    print(f"{source}: {total} message{'s' * (total != 1)}, {total - invalid} valid, {invalid} with findings ({findings} findings){noted}")
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


def _rules(args: argparse.Namespace) -> int:
    width = max(len(rule.id) for rule in RULES)
    for rule in RULES:
        note = " (a warning, never a failure)" if rule.warning_only else ""
        print(f"{rule.id:<{width}}  {rule.description}{note}")
    return OK


def _locustfile(args: argparse.Namespace) -> int:
    print(Path(__file__).resolve().parent.parent / "locustfile.py")
    return OK
