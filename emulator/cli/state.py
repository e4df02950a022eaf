"""Beyond acknowledgements: ``diff-state``, ``explore`` and ``asyncapi``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from emulator import asyncapi
from emulator.cli.args import duration, non_negative, positive, session_arguments, target_arguments
from emulator.cli.contract import contract_options, fault_names, parse_fault
from emulator.diffstate import diff, read_document, read_mapping, summary
from emulator.exceptions import SchemaError, UsageError

OK, FINDINGS = 0, 1


def add_parsers(verbs: Any) -> None:
    """Add this family's commands to the ``nbwss-emu`` parser."""
    compare = verbs.add_parser(
        "diff-state", help="compare an expected state (run --expect-state) with what the endpoint stored: exit 1 on any difference"
    )
    compare.add_argument("expected", help="the expected state, JSON (run --expect-state FILE)")
    compare.add_argument("actual", help="the endpoint's export, JSON in the same shape (or as --mapping says)")
    compare.add_argument("--mapping", metavar="FILE", help="JSON saying which of the endpoint's fields and collections stand for ours")
    compare.add_argument("--json", action="store_true", help="print the differences as JSON")
    compare.set_defaults(command=_diff_state)

    explore = verbs.add_parser(
        "explore", help="drive the master with generated sequences until the endpoint breaks; the shortest failing one is saved"
    )
    target_arguments(explore)
    explore.add_argument("--budget", type=duration, default=300.0, help="how long to explore: 30s, 5m, 1h (default 5m)")
    explore.add_argument("--seed", type=non_negative, help="seed of the exploration (default: random, printed)")
    explore.add_argument("--steps", type=positive, default=12, help="steps of one generated sequence at most (default 12)")
    explore.add_argument("--transcript", metavar="FILE", help="save the shrunk failing run here, for 'nbwss-emu replay'")
    explore.add_argument(
        "--state-url",
        metavar="URL",
        help="GET the endpoint's state here (expected-state JSON; the token is sent as a bearer) and compare after each step",
    )
    explore.add_argument("--fault", help="with the embedded endpoint: switch on one of its faults: " + ", ".join(fault_names()))
    session_arguments(explore)
    explore.set_defaults(command=_explore)

    publish = verbs.add_parser("asyncapi", help="print the AsyncAPI 3.0 document of NBWSS")
    publish.add_argument("--output", metavar="FILE", help="write it here instead")
    publish.set_defaults(command=_asyncapi)


def _diff_state(args: argparse.Namespace) -> int:
    expected = read_document(args.expected)
    actual = read_document(args.actual)
    mapping = read_mapping(args.mapping) if args.mapping else None
    try:
        differences = diff(expected, actual, mapping)
    except SchemaError as error:
        raise UsageError(str(error)) from None
    if args.json:
        rows = [
            {"master": d.master, "kind": d.kind, "key": d.key, "what": d.what}
            | ({"field": d.field, "expected": d.expected, "stored": _plain(d.actual)} if d.what == "different" else {})
            for d in differences
        ]
        print(json.dumps({"equal": not differences, "differences": rows}, indent=2))
    else:
        for difference in differences:
            print(difference)
        print(summary(differences))
    return FINDINGS if differences else OK


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else None


def _explore(args: argparse.Namespace) -> int:
    from emulator.explore import ExploreOptions, explore, state_from_url  # noqa: PLC0415 - hypothesis loads in a third of a second

    args.transcript_path, args.transcript = args.transcript, None  # contract_options would open it for a run
    options, groups = contract_options(args)
    if len(groups) != 1:
        raise UsageError("explore takes one endpoint (--endpoint), not a registration file of several groups")
    fault = parse_fault(args.fault) if args.fault else None
    if fault is not None and groups != [[]]:
        raise UsageError("--fault switches a fault of the embedded endpoint; it cannot be used with --endpoint")
    targets = groups[0]
    fetch = None
    if args.state_url:
        if not targets:
            raise UsageError("--state-url needs --endpoint (the embedded endpoint's store is compared anyway)")
        fetch = state_from_url(args.state_url, targets[0].token)
    explore_options = ExploreOptions(
        targets=targets,
        settings=options.settings,
        tls=options.tls,
        budget=args.budget,
        seed=args.seed,
        steps=args.steps,
        transcript=args.transcript_path,
        fault=fault,
        state=fetch,
    )
    where = targets[0].url if targets else "the embedded reference endpoint" + (f" (fault {fault.value})" if fault else "")
    checks = "acknowledgements, connection, frames" + (", state" if fetch is not None or not targets else "")
    print(f"nbwss-emu: exploring {where} for {args.budget:g}s, checking {checks}", file=sys.stderr, flush=True)
    result = explore(explore_options)
    seed = f"--seed {result.seed}"
    if result.passed:
        print(f"PASS: nothing broke in {result.examples} sequences ({result.elapsed:.1f}s, {seed})")
        return OK
    print(f"FAIL: {result.failure}")
    print(f"shortest sequence found ({len(result.steps)} steps, after {result.examples} sequences, {seed}):")
    for number, step in enumerate(result.steps, start=1):
        print(f"  {number}. {step}")
    if result.transcript:
        print(f"transcript: {result.transcript} (nbwss-emu replay {result.transcript} sends it again, ids included)")
    return FINDINGS


def _asyncapi(args: argparse.Namespace) -> int:
    text = asyncapi.render(asyncapi.document())
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise UsageError(f"{args.output}: cannot write: {error.strerror or error}") from None
    else:
        sys.stdout.write(text)
    return OK
