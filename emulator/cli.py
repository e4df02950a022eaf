"""The ``nbwss-emu`` command line.

Exit codes: 0 all good, 1 findings, 2 bad input (a one-line error, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import contextlib
import dataclasses
import itertools
import json
import os
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from emulator import __version__
from emulator.contract import RULES, ContractOptions, ContractResult, replay, run_scenario
from emulator.contract.probes import PROBE_NAMES
from emulator.contract.report import as_dict, print_summary, write_junit
from emulator.endpoint import Fault, ReferenceEndpoint
from emulator.load.html import render as render_html
from emulator.load.live import LiveProgress
from emulator.load.runner import LoadConfig, LoadResult, run_load
from emulator.load.streams import CLOSED_MODEL_RATE, MAX_PREPARED
from emulator.load.thresholds import parse as parse_threshold
from emulator.protocol.codec import DecodeError, decode, encode
from emulator.protocol.properties import NbwssProperties, PropertiesError
from emulator.responders import DEFAULT_PROFILE, VERSION_PROFILES
from emulator.scenario import ScenarioError, Timeline, bundled, load
from emulator.scenario.loader import resolve, seconds
from emulator.schemas import default_schemas
from emulator.wire.master import ConnectError, Settings, Target
from emulator.wire.registration import RegistrationError, registration_groups
from emulator.wire.tls import TlsOptions, server_context
from emulator.wire.transcript import read_sent_notifications

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

    run = verbs.add_parser("run", help="contract-test an endpoint: run a scenario over NBWSS and judge every rule")
    run.add_argument("scenario", nargs="?", default=DEFAULT_SCENARIO, help=f"bundled name or YAML file (default: {DEFAULT_SCENARIO})")
    _target_arguments(run)
    run.add_argument("--seed", type=_non_negative, help="seed for the scenario (default: the scenario's)")
    run.add_argument("--fault", help="with the embedded endpoint: switch on one of its faults (see 'serve --help')")
    _session_arguments(run)
    run.add_argument("--speed", type=_positive_float, help="send in scenario time, this many scenario seconds per second")
    run.add_argument("--no-probes", action="store_true", help="skip the wrong-token CONNECT, the deliberate reconnect and the duplicate")
    run.add_argument(
        "--probe",
        action="append",
        nargs="?",
        const="all",
        metavar="NAME",
        help="after the scenario, probe robustness: all, or one of " + ", ".join(PROBE_NAMES) + " (repeatable)",
    )
    _report_arguments(run)

    replay = verbs.add_parser("replay", help="send a recorded transcript's notifications again, as its master did")
    replay.add_argument("transcript", help="a transcript written by 'run --transcript'")
    _target_arguments(replay)
    _session_arguments(replay)
    replay.add_argument("--probes", action="store_true", help="also run the wrong-token, reconnect and duplicate probes")
    _report_arguments(replay)

    serve = verbs.add_parser("serve", help="run the reference endpoint (the cloud side, done right) until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=_port, default=8765, help="port (default: 8765; 0 picks a free one)")
    serve.add_argument("--token", help="the token masters must present (default: $NBWSS_TOKEN, else a new random one, printed)")
    serve.add_argument("--certfile", help="serve wss:// with this certificate (PEM)")
    serve.add_argument("--keyfile", help="the certificate's private key (PEM), if not in --certfile")
    serve.add_argument("--fault", help="misbehave on purpose: " + ", ".join(_fault_names()))
    serve.add_argument("--max-connections", type=_positive, default=64, help="connections at once (default: 64)")
    serve.add_argument("--max-size", type=_positive, default=1024 * 1024, help="largest frame accepted, bytes (default: 1 MiB)")
    serve.add_argument("--keep", type=_non_negative, help="notifications kept per connection (default: all; 0 for long load runs)")
    serve.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="also stop when standard input closes (for a parent process, which may die without stopping it)",
    )

    load_ = verbs.add_parser("load", help="load an endpoint with many emulated masters, measured")
    load_.add_argument("scenario", nargs="?", default="datacenter-day", help="bundled name or YAML file (default: datacenter-day)")
    load_.add_argument("--masters", type=_positive, default=10, help="emulated masters, a connection and a domain each (default 10)")
    load_.add_argument("--duration", type=_duration, default=10.0, help="how long to send, e.g. 30s, 5m (default 10s)")
    load_.add_argument("--ramp-up", type=_duration, default=0.0, help="start the masters evenly over this time (default 0)")
    load_.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="e.g. p99<250ms, lost==0, findings==0, rate>=5000; decides the exit code",
    )
    load_.add_argument("--seed", type=_non_negative, default=0, help="seed of the first master's domain; the others follow")
    load_.add_argument(
        "--prepare",
        type=_non_negative,
        metavar="N",
        help="notifications generated before the clock starts, all masters (default: what --rate needs for --duration, "
        f"or {CLOSED_MODEL_RATE:,}/s for --duration; at most {MAX_PREPARED:,}); the rest are generated during the run",
    )
    load_.add_argument("--endpoint", metavar="URL", help="the endpoint under test (default: the reference endpoint in a separate process)")
    load_.add_argument("--token", help="the endpoint's token (default: $NBWSS_TOKEN)")
    load_.add_argument("--cafile", help="trust this CA for wss://")
    load_.add_argument("--insecure", action="store_true", help="do not verify the endpoint's certificate (warned about)")
    _session_arguments(load_)
    load_.add_argument("--json", metavar="FILE", help="all figures, with the per-second series, as JSON")
    load_.add_argument("--html", metavar="FILE", help="a self-contained HTML page with charts")
    load_.add_argument("--quiet", action="store_true", help="no progress lines")

    verbs.add_parser("rules", help="list the contract rules that 'run' checks")
    verbs.add_parser("locustfile", help='print the path of the ready locustfile (locust -f "$(nbwss-emu locustfile)")')
    return parser


def _target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("endpoint (default: the embedded reference endpoint)")
    group.add_argument("--endpoint", metavar="URL", help="the endpoint under test, wss://... (ws:// for local testing)")
    group.add_argument("--token", help="the endpoint's token (default: $NBWSS_TOKEN)")
    group.add_argument("--endpoints", metavar="FILE", help="a registration file: JSON list of {url, token, groupId, priority}")
    group.add_argument("--cafile", help="trust this CA for wss:// (a private CA)")
    group.add_argument("--certfile", help="client certificate for wss://, if the endpoint asks for one")
    group.add_argument("--keyfile", help="the client certificate's private key")
    group.add_argument("--insecure", action="store_true", help="do not verify the endpoint's certificate (warned about)")


def _session_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("NBWSS behaviour (nbwss.properties keys; flags override the file)")
    group.add_argument("--properties", metavar="FILE", help="an nbwss.properties file")
    group.add_argument("--reconnect-period", type=_positive_float, help="connectionInfo.period, seconds (default 60)")
    group.add_argument("--resend-interval", type=_positive_float, help="notification.scheduledRate, seconds (default 5)")
    group.add_argument(
        "--ack-timeout", type=_positive_float, help="notification.sendTimeout, seconds: a later ack is a finding (default 2)"
    )
    group.add_argument("--keepalive", type=_positive_float, help="keepAlive.scheduledRate, seconds (default 30)")
    group.add_argument("--max-pong-miss", type=_positive, help="keepAlive.maxPongMissAllowed (default 3)")
    group.add_argument(
        "--ignore-decoder",
        action="store_true",
        default=None,
        help="exception.ignoreDecoder=true: keep the connection on undecodable frames",
    )
    group.add_argument("--window", type=_positive, default=64, help="notifications awaiting acknowledgement at most (default 64)")
    group.add_argument("--rate", type=_positive_float, help="notifications per second instead of as fast as acknowledged")
    group.add_argument(
        "--connect-timeout", type=_positive_float, default=10.0, help="seconds for the WebSocket and CONNECT handshakes (default 10)"
    )
    group.add_argument(
        "--nbu-version",
        default=DEFAULT_PROFILE,
        choices=sorted(VERSION_PROFILES),
        help=f"NetBackup version profile (default {DEFAULT_PROFILE})",
    )


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reports")
    group.add_argument("--junit", metavar="FILE", help="JUnit XML, one test case per rule")
    group.add_argument("--json", metavar="FILE", help="the verdict, rules and figures as JSON")
    group.add_argument("--transcript", metavar="FILE", help="every frame both ways as JSON Lines (secrets redacted)")
    group.add_argument("--quiet", action="store_true", help="print only the verdict line")


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


def _rules(args: argparse.Namespace) -> int:
    width = max(len(rule.id) for rule in RULES)
    for rule in RULES:
        note = " (a warning, never a failure)" if rule.warning_only else ""
        print(f"{rule.id:<{width}}  {rule.description}{note}")
    return OK


def _run(args: argparse.Namespace) -> int:
    scenario = load(args.scenario)
    options, groups = _contract_options(args)
    options.seed = args.seed
    options.speed = args.speed
    options.probes = not args.no_probes
    options.probe_names = _probe_names(args.probe)
    options.fault = _fault(args.fault) if args.fault else None
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
    options, groups = _contract_options(args)
    options.probes = args.probes

    return _report(
        args,
        *_run_async(options, lambda: [replay(messages, _for_group(options, group), name=Path(args.transcript).stem) for group in groups]),
    )


def _serve(args: argparse.Namespace) -> int:
    context = None
    if args.certfile:
        try:
            context = server_context(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as error:
            raise UsageError(f"cannot load the certificate: {getattr(error, 'strerror', None) or error}") from None
    elif args.keyfile:
        raise UsageError("--keyfile needs --certfile")
    token = args.token or os.environ.get("NBWSS_TOKEN")
    endpoint = ReferenceEndpoint(
        keep=args.keep,
        host=args.host,
        port=args.port,
        token=token,
        ssl_context=context,
        fault=_fault(args.fault) if args.fault else None,
        max_connections=args.max_connections,
        max_size=args.max_size,
    )

    async def serve_forever() -> None:
        try:
            await endpoint.start()
        except OSError as error:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
        print(f"reference endpoint listening on {endpoint.url}", flush=True)
        if token is None:
            print(f"token: {endpoint.token}  (generated; pass --token or set NBWSS_TOKEN to choose it)", flush=True)
        if endpoint.fault is not None:
            print(f"fault: {endpoint.fault.value}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if args.stop_on_stdin_eof:
            # A thread, as reading a pipe asynchronously is not portable; it ends with the process.
            threading.Thread(target=_read_to_eof, args=(loop, stop), daemon=True).start()
        try:
            await stop.wait()
        finally:
            await endpoint.stop()
            print(f"stopped; {endpoint.connects} connections, {len(endpoint.notifications)} notifications received", flush=True)

    asyncio.run(serve_forever())
    return OK


def _read_to_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Read standard input until it closes (its writer stopped or died), then set ``stop``."""
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(65536):
            pass
    with contextlib.suppress(RuntimeError):  # the loop already closed: stopped another way
        loop.call_soon_threadsafe(stop.set)


# -- run helpers ---------------------------------------------------------------------------


def _contract_options(args: argparse.Namespace) -> tuple[ContractOptions, list[list[Target]]]:
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
    settings = Settings(properties=properties, window=args.window, rate=args.rate, connect_timeout=args.connect_timeout)
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


def _run_async(options: ContractOptions, runs: Callable[[], list[Any]]) -> tuple[list[ContractResult], int | None]:
    """Run the contract runs side by side; SIGINT or SIGTERM stops them, and they still report."""
    received: list[int] = []

    async def main() -> list[ContractResult]:
        options.stop = asyncio.Event()
        tasks = [asyncio.ensure_future(run) for run in runs()]
        loop = asyncio.get_running_loop()

        def stop(signum: int) -> None:
            received.append(signum)
            options.stop.set()  # type: ignore[union-attr]
            for task in tasks:
                task.cancel()  # each run catches it, closes its connection, and returns its report

        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop, signum)
        return list(await asyncio.gather(*tasks))

    try:
        return asyncio.run(main()), (received[0] if received else None)
    except ConnectError as error:
        raise UsageError(f"no connection: {error}") from None
    except OSError as error:
        raise UsageError(f"cannot write a report: {error.strerror or error}") from None


def _report(args: argparse.Namespace, results: list[ContractResult], signum: int | None = None) -> int:
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
    if signum is not None:
        print(f"nbwss-emu: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
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


def _fault(name: str) -> Fault:
    try:
        return Fault.parse(name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _fault_names() -> list[str]:
    return [fault.value for fault in Fault]


def _load(args: argparse.Namespace) -> int:
    scenario = load(args.scenario)
    try:
        thresholds = [parse_threshold(text) for text in args.threshold]
    except ValueError as error:
        raise UsageError(str(error)) from None
    options, groups = _contract_options(
        argparse.Namespace(**{**vars(args), "endpoints": None, "certfile": None, "keyfile": None, "transcript": None})
    )
    targets = groups[0]  # [] is the reference endpoint, which load starts in a process of its own
    settings = options.settings
    if args.rate and args.window == 64:
        settings.window = 100_000  # open model: the rate decides, a slow endpoint builds a backlog
    config = LoadConfig(
        scenario,
        masters=args.masters,
        duration=args.duration,
        rate=args.rate,
        ramp_up=args.ramp_up,
        targets=targets,
        settings=settings,
        tls=options.tls,
        seed=args.seed,
        prepare=args.prepare,
        progress=None if args.quiet else _progress_line,
        on_prepare=None if args.quiet else _preparing_line,
    )
    live = None
    if not args.quiet and sys.stderr.isatty():
        live = LiveProgress(Console(stderr=True), args.masters, config.rate)
        config.progress, config.on_prepare = live.update, live.preparing
    received: list[int] = []

    async def main() -> LoadResult:
        config.stop = asyncio.Event()
        task = asyncio.ensure_future(run_load(config))

        def stop(signum: int) -> None:
            received.append(signum)
            config.stop.set()  # type: ignore[union-attr]
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signum, stop, signum)
        return await task

    try:
        with live if live is not None else contextlib.nullcontext():
            result = asyncio.run(main())
    except ConnectError as error:
        raise UsageError(f"no connection: {error}") from None
    figures = result.figures()
    figures["thresholds"] = [{"threshold": t.text, "actual": t.actual(figures), "met": t.holds(figures)} for t in thresholds]
    latency = figures["ack_latency_ms"]
    print(
        f"{figures['masters']} masters, {figures['model']}, {figures['elapsed_s']:.1f} s: {figures['sent']} sent, "
        f"{figures['acknowledged']} acknowledged ({figures['rate']:.0f}/s), {figures['retried']} retried, {figures['lost']} lost, "
        f"{sum(figures['findings'].values())} findings, {figures['connections_dropped']} connections dropped"
    )
    if latency["p50"] is not None:
        print("ack latency: " + ", ".join(f"{name} {value:.2f} ms" for name, value in latency.items()))
    memory = figures["generator_memory"]
    resident = (
        f", {memory['rss_peak_mib']} MiB resident (+{memory['per_master_connection_kib']} KiB per master connection)" if memory else ""
    )
    print(f"load generator: {figures['generator_cpu']:.2f} of a CPU{resident}")
    if figures["generator_cpu"] >= 0.9:
        print(
            f"note: this load generator used {figures['generator_cpu']:.2f} of a CPU: it may have been the limit, not the endpoint "
            "(fewer masters per process, or Locust workers, spread it)"
        )
    print(f"prepared {figures['prepared']} notifications in {figures['prepare_s']:.1f} s before the clock started", end="")
    if figures["generated_during_run"]:
        print(f"; the run outlasted them: {figures['generated_during_run']} more were generated while it ran (--prepare N for more)")
    else:
        print()
    for entry in figures["thresholds"]:
        print(f"threshold {entry['threshold']}: {'met' if entry['met'] else 'NOT MET'} (actual {entry['actual']})")
    try:
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        if args.html:
            Path(args.html).write_text(render_html(figures), encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write a report: {error.strerror or error}") from None
    if received:
        print(f"nbwss-emu: interrupted by {signal.Signals(received[0]).name}", file=sys.stderr)
        return 128 + received[0]
    return OK if all(entry["met"] for entry in figures["thresholds"]) else FINDINGS


def _progress_line(snapshot: dict[str, Any]) -> None:
    latency = snapshot["latency_ms"]
    p50 = f"{latency['p50']:.1f}" if latency["p50"] is not None else "-"
    p99 = f"{latency['p99']:.1f}" if latency["p99"] is not None else "-"
    print(
        f"nbwss-emu: {snapshot['elapsed']:5.1f}s  sent {snapshot['sent_per_s']}/s  acked {snapshot['acked_per_s']}/s  "
        f"outstanding {snapshot['outstanding']}  p50 {p50} ms  p99 {p99} ms  errors {snapshot['errors']}",
        file=sys.stderr,
        flush=True,
    )


def _preparing_line(done: int, total: int) -> None:
    print(f"nbwss-emu: preparing notifications, {done} of {total}", file=sys.stderr, flush=True)


def _locustfile(args: argparse.Namespace) -> int:
    print(Path(__file__).resolve().parent / "locustfile.py")
    return OK


_VERBS = {
    "locustfile": _locustfile,
    "load": _load,
    "scenarios": _scenarios,
    "generate": _generate,
    "validate": _validate,
    "run": _run,
    "replay": _replay,
    "serve": _serve,
    "rules": _rules,
}


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _duration(text: str) -> float:
    try:
        return seconds(text if not text.replace(".", "", 1).isdigit() else f"{text}s")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration like 30s, 5m or 1h: {text!r}") from None


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {value}")
    return value


def _utc(text: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UTC time like 2026-04-05T08:00:00Z: {text!r}") from None
