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
from typing import Any

from rich.console import Console

from emulator.cli.args import (
    DEFAULT_SCENARIO,
    duration,
    non_negative,
    positive,
    positive_float,
    report_arguments,
    session_arguments,
    target_arguments,
)
from emulator.cli.signals import Interrupt
from emulator.contract import ContractOptions, ContractResult, replay, run_scenario
from emulator.contract.probes import PROBE_NAMES
from emulator.contract.report import as_dict, print_summary, write_junit
from emulator.endpoint import Fault
from emulator.exceptions import UsageError
from emulator.protocol.properties import NbwssProperties, PropertiesError
from emulator.scenario import load
from emulator.wire.master import ConnectError, Settings, Target
from emulator.wire.registration import RegistrationError, registration_groups
from emulator.wire.tls import TlsOptions
from emulator.wire.transcript import read_sent_notifications

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
    run.set_defaults(command=_run)

    replay = verbs.add_parser("replay", help="send a recorded transcript's notifications again, as its master did")
    replay.add_argument("transcript", help="a transcript written by 'run --transcript'")
    target_arguments(replay)
    session_arguments(replay)
    replay.add_argument("--probes", action="store_true", help="also run the wrong-token, reconnect and duplicate probes")
    report_arguments(replay)
    replay.set_defaults(command=_replay)


def _run(args: argparse.Namespace) -> int:
    scenario = load(args.scenario)
    options, groups = contract_options(args)
    options.seed = args.seed
    options.speed = args.speed
    options.count, options.duration = args.count, args.duration
    if options.count is not None or options.duration is not None:
        if options.speed:
            raise UsageError("--count and --duration repeat the scenario as fast as acknowledged: give --rate, not --speed")
        options.settings.record_acks, options.settings.ack_histogram = False, True  # counters and a histogram: flat memory
    options.probes = not args.no_probes
    options.probe_names = _probe_names(args.probe)
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
    return _report(args, *_run_async(options, lambda: [run_scenario(scenario, _for_group(options, group)) for group in groups]))


def _replay(args: argparse.Namespace) -> int:
    try:
        messages = read_sent_notifications(args.transcript)
    except OSError as error:
        raise UsageError(f"{args.transcript}: cannot read: {error.strerror or error}") from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not messages:
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
    options = ContractOptions(settings=settings, tls=tls, profile=args.nbu_version, transcript=args.transcript)
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
        raise UsageError(f"no connection: {error}") from None
    except OSError as error:
        raise UsageError(f"cannot write a report: {error.strerror or error}") from None


def _report(args: argparse.Namespace, results: list[ContractResult], interrupt: Interrupt) -> int:
    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
    for result in results:
        if args.quiet:
            verdict = "INTERRUPTED" if result.interrupted else ("PASS" if result.passed else "FAIL")
            console.print(f"{result.name} against {result.endpoint}: {verdict}")
        else:
            print_summary(result, console)
    try:
        if args.json:
            documents = [as_dict(r) for r in results]
            Path(args.json).write_text(
                json.dumps(documents[0] if len(documents) == 1 else {"groups": documents}, indent=2) + "\n", encoding="utf-8"
            )
        if args.junit:
            write_junit(results, args.junit)
    except OSError as error:
        raise UsageError(f"cannot write a report: {error.strerror or error}") from None
    code = interrupt.exit_code()
    if code is not None:
        return code
    return OK if all(r.passed for r in results) else FINDINGS


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
