"""Contract testing: ``run`` and ``replay``, and the reports they write."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from rich.console import Console

from emulator import state
from emulator.cli.args import (
    DEFAULT_SCENARIO,
    duration,
    non_negative,
    positive,
    positive_float,
    report_arguments,
    session_arguments,
    target_arguments,
    utc,
)
from emulator.cli.signals import Interrupt
from emulator.contract import ContractOptions, ContractResult, replay, run_masters
from emulator.contract.hints import check_tls, check_writable, connection_hint
from emulator.contract.probes import PROBE_NAMES
from emulator.contract.report import as_dict, print_summary, write_junit
from emulator.endpoint import Fault
from emulator.exceptions import UsageError
from emulator.protocol.properties import NbwssProperties, PropertiesError
from emulator.protocol.run import Settings, Target
from emulator.scenario import load
from emulator.wire.master import ConnectError
from emulator.wire.registration import RegistrationError, registration_groups
from emulator.wire.tls import TlsOptions

OK, FINDINGS = 0, 1


def add_parsers(verbs: Any) -> None:
    """Add this family's commands to the ``nbwss-emu`` parser."""
    run = verbs.add_parser("run", help="contract-test an endpoint: run a scenario over NBWSS and judge every rule")
    run.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO, help=f"bundled name or YAML file (default: {DEFAULT_SCENARIO})")
    target_arguments(run)
    run.add_argument("--seed", type=non_negative, help="seed for the scenario (default: the scenario's)")
    run.add_argument("--fault", help="with the embedded endpoint: switch on one of its faults (see 'serve --help')")
    session_arguments(run)
    run.add_argument("--speed", type=positive_float, help="send in scenario time, this many scenario seconds per second")
    run.add_argument("--start", type=utc, help="scenario start as UTC, as 'generate' has (default: so that the run ends by now)")
    run.add_argument("--count", type=positive, metavar="N", help="soak: send N notifications, repeating the scenario's steps")
    run.add_argument("--duration", type=duration, metavar="TIME", help="soak: send for TIME (e.g. 10m), repeating the scenario's steps")
    run.add_argument("--no-probes", action="store_true", help="skip the wrong-token CONNECT, the deliberate reconnect and the duplicate")
    run.add_argument(
        "--probe",
        action="append",
        nargs="?",
        const="all",
        metavar="NAME",
        help="after the scenario, probe robustness: all, or one of " + ", ".join(PROBE_NAMES) + " (repeatable)",
    )
    report_arguments(run)
    run.add_argument("--expect-state", metavar="FILE", help="write what the endpoint was told (jobs, images) as JSON, for diff-state")
    run.set_defaults(command=_run)

    replay = verbs.add_parser("replay", help="send a recorded transcript's notifications again, as its master did")
    replay.add_argument("transcript", help="a transcript written by 'run --transcript'")
    target_arguments(replay)
    session_arguments(replay)
    replay.add_argument("--probes", action="store_true", help="also run the wrong-token, reconnect and duplicate probes")
    report_arguments(replay)
    replay.add_argument("--expect-state", metavar="FILE", help="write what the endpoint was told (jobs, images) as JSON, for diff-state")
    replay.set_defaults(command=_replay)


def _run(args: argparse.Namespace) -> int:
    scenario = load(args.scenario)
    options, groups = contract_options(args)
    options.seed = args.seed
    options.speed = args.speed
    options.start = args.start
    options.count, options.duration = args.count, args.duration
    if options.count is not None or options.duration is not None:
        if options.speed:
            raise UsageError("--count and --duration repeat the scenario as fast as acknowledged: give --rate, not --speed")
        options.settings.record_acks, options.settings.ack_histogram = False, True  # counters and a histogram: flat memory
    options.probes = not args.no_probes
    options.probe_names = _probe_names(args.probe)
    if options.probe_names and args.expect_state:
        # Not folded in: what an endpoint should store of a skewed clock, a DONE before its ACTIVE or a 2,000-item
        # batch of repeated jobs is its own decision, not something the master can state. Said now, not after diff-state.
        print(
            f"nbwss-emu: warning: --expect-state {args.expect_state} holds what the scenario told the endpoint, not what the "
            "probes send (variants of its notifications under ids of their own); the endpoint stores those too, so diff-state "
            "will list their jobs and images as extra: run --expect-state without --probe, or probe another registration",
            file=sys.stderr,
        )
    options.fault = parse_fault(args.fault) if args.fault else None
    if options.fault is not None and groups != [[]]:
        raise UsageError("--fault switches a fault of the embedded endpoint; it cannot be used with --endpoint or --endpoints")

    if not args.quiet:
        announced: list[bool] = []

        def first_ack(_: object) -> None:
            if not announced:
                announced.append(True)
                print(f"nbwss-emu: streaming {scenario.name}; Ctrl-C stops and reports what happened so far", file=sys.stderr, flush=True)

        options.on_ack = first_ack
    # Every master of the scenario streams on its own connection: one result per master and group.
    per_group, interrupt = _run_async(options, lambda: [run_masters(scenario, _for_group(options, group)) for group in groups])
    grouped = cast(list[list[ContractResult]], per_group)
    return _report(args, [result for results in grouped for result in results], interrupt, grouped)


def _replay(args: argparse.Namespace) -> int:
    from emulator.explore import read_replay_steps  # noqa: PLC0415 - it loads hypothesis, a third of a second

    try:
        messages: list[Any] = read_replay_steps(args.transcript)
    except OSError as error:
        raise UsageError(f"{args.transcript}: cannot read: {error.strerror or error}") from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not any(isinstance(m, dict) for m in messages):
        raise UsageError(f"{args.transcript}: no NOTIFICATION REQUEST sent by the master in this transcript")
    options, groups = contract_options(args)
    options.probes = args.probes

    return _report(
        args,
        *_run_async(options, lambda: [replay(messages, _for_group(options, group), name=Path(args.transcript).stem) for group in groups]),
    )


def contract_options(args: argparse.Namespace) -> tuple[ContractOptions, list[list[Target]]]:
    try:
        properties = NbwssProperties.from_file(args.properties) if args.properties else NbwssProperties()
        properties = properties.with_overrides(
            connection_period=args.reconnect_period,
            resend_interval=args.resend_interval,
            send_timeout=args.ack_timeout,
            keepalive_interval=args.keepalive,
            max_pong_miss=args.max_pong_miss,
            ignore_decoder=args.ignore_decoder,
        )
    except PropertiesError as error:
        raise UsageError(str(error)) from None
    for warning in properties.warnings():
        print(f"nbwss-emu: warning: {warning}", file=sys.stderr)
    settings = Settings(properties=properties, window=args.window, rate=args.rate, connect_timeout=args.connect_timeout)
    settings.compression = getattr(args, "compression", None)
    if args.insecure:
        print("nbwss-emu: warning: --insecure: the endpoint's certificate is not verified", file=sys.stderr)
    tls = TlsOptions(cafile=args.cafile, certfile=args.certfile, keyfile=args.keyfile, insecure=args.insecure)
    for name in ("cafile", "certfile", "keyfile"):
        path = getattr(args, name)
        if path is not None and not Path(path).is_file():
            raise UsageError(f"--{name} {path}: no such file")
    check_tls(tls)  # a CA or key that does not load is named now, not found out at the first wss:// connection
    # Before the run, not after it (load, which shares these options, has reports of its own).
    check_writable(**{name: getattr(args, name, None) for name in ("json", "junit", "transcript")})
    options = ContractOptions(settings=settings, tls=tls, profile=args.nbu_version, transcript=args.transcript)
    options.keep_sent = bool(getattr(args, "expect_state", None))
    return options, _groups(args)


def _groups(args: argparse.Namespace) -> list[list[Target]]:
    """The endpoint groups to connect to: [[]] means the embedded reference endpoint."""
    if args.endpoints and args.endpoint:
        raise UsageError("give --endpoint or --endpoints, not both")
    if args.endpoints:
        try:
            return registration_groups(args.endpoints)
        except RegistrationError as error:
            raise UsageError(str(error)) from None
    if args.endpoint:
        token = args.token or os.environ.get("NBWSS_TOKEN")
        if not token:
            raise UsageError("--endpoint needs --token (or NBWSS_TOKEN in the environment)")
        return [[Target(args.endpoint, token)]]
    if args.token:
        raise UsageError("--token needs --endpoint (the embedded endpoint makes its own)")
    return [[]]


def _for_group(options: ContractOptions, group: list[Target]) -> ContractOptions:
    return dataclasses.replace(options, targets=group)


def _run_async(options: ContractOptions, runs: Callable[[], list[Any]]) -> tuple[list[ContractResult], Interrupt]:
    """Run the contract runs side by side; SIGINT or SIGTERM stops them, and they still report."""
    interrupt = Interrupt()

    async def main() -> list[ContractResult]:
        stop = options.stop = asyncio.Event()
        tasks = [asyncio.ensure_future(run) for run in runs()]

        def on_signal() -> None:
            stop.set()
            for task in tasks:
                task.cancel()  # each run catches it, closes its connection, and returns its report

        interrupt.install(on_signal)
        return list(await asyncio.gather(*tasks))

    try:
        return asyncio.run(main()), interrupt
    except ConnectError as error:
        raise ConnectError(f"no connection: {_hinted(error, options)}") from None
    except OSError as error:  # the transcript, opened when the run starts
        raise UsageError(f"--transcript {options.transcript}: cannot write: {error.strerror or error}") from None


def _hinted(error: ConnectError, options: ContractOptions) -> str:
    return connection_hint(str(error), _url_in(str(error)), options.tls)


def _url_in(message: str) -> str:
    """The ws:// or wss:// URL a connection error names, if any."""
    for word in message.split():
        if word.startswith(("ws://", "wss://")):
            return word.rstrip(":,;")
    return ""


def _group_document(group: list[ContractResult]) -> dict[str, Any]:
    """A group's JSON report: its first master's, and with several masters each one's under ``masters`` (the verdict covers all)."""
    document = as_dict(group[0])
    if len(group) > 1:
        document["masters"] = [as_dict(result) for result in group]
        if document["verdict"] == "pass" and not all(result.passed for result in group):
            document["verdict"] = "fail"
    return document


def _report(
    args: argparse.Namespace, results: list[ContractResult], interrupt: Interrupt, grouped: list[list[ContractResult]] | None = None
) -> int:
    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
    for result in results:
        if args.quiet:
            verdict = "INTERRUPTED" if result.interrupted else ("PASS" if result.passed else "FAIL")
            console.print(f"{result.name} against {result.endpoint}: {verdict}")
        else:
            print_summary(result, console)
    try:
        if args.json:
            documents = [_group_document(group) for group in grouped or [[r] for r in results]]
            Path(args.json).write_text(
                json.dumps(documents[0] if len(documents) == 1 else {"groups": documents}, indent=2) + "\n", encoding="utf-8"
            )
        if args.junit:
            write_junit(results, args.junit)
        if getattr(args, "expect_state", None):
            _write_expected_state(results, args.expect_state)
    except OSError as error:
        raise UsageError(f"{getattr(error, 'filename', None) or 'a report'}: cannot write the report: {error.strerror or error}") from None
    code = interrupt.exit_code()
    if code is not None:
        return code
    return OK if all(r.passed for r in results) else FINDINGS


def _write_expected_state(results: list[ContractResult], path: str) -> None:
    """The expected state of every group's run, merged (each run is one master)."""
    document = results[0].expected_state()
    for result in results[1:]:
        document["masters"].update(result.expected_state()["masters"])
    state.check(document, path)
    state.write(document, path)


def _probe_names(given: list[str] | None) -> list[str]:
    if not given:
        return []
    if "all" in given:
        return list(PROBE_NAMES)
    unknown = [name for name in given if name not in PROBE_NAMES]
    if unknown:
        raise UsageError(f"unknown probe {unknown[0]!r}; known: all, {', '.join(PROBE_NAMES)}")
    return given


def parse_fault(name: str) -> Fault:
    try:
        return Fault.parse(name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def fault_names() -> list[str]:
    return [fault.value for fault in Fault]
