"""``load``: many emulated masters against one endpoint, measured."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from emulator import state
from emulator.cli.args import duration, non_negative, positive, session_arguments
from emulator.cli.contract import contract_options
from emulator.cli.signals import Interrupt
from emulator.contract.hints import check_writable
from emulator.exceptions import UsageError
from emulator.load.html import render as render_html
from emulator.load.live import LiveProgress
from emulator.load.runner import LoadConfig, LoadResult, run_load
from emulator.load.streams import BUFFER
from emulator.load.thresholds import parse as parse_threshold
from emulator.scenario import load
from emulator.wire.master import ConnectError

#: The share of the masters' time waiting for notifications from which the summary says the generator may have been the limit.
STARVED_NOTE = 0.05
OK, FINDINGS = 0, 1  # no master connecting at all is ConnectError: exit 2


def add_parsers(verbs: Any) -> None:
    """Add this family's commands to the ``nbwss-emu`` parser."""
    load_ = verbs.add_parser("load", help="load an endpoint with many emulated masters, measured")
    load_.add_argument("scenario", nargs="?", default="datacenter-day", help="bundled name or YAML file (default: datacenter-day)")
    load_.add_argument("--masters", type=positive, default=10, help="emulated masters, a connection and a domain each (default 10)")
    load_.add_argument("--duration", type=duration, default=10.0, help="how long to send, e.g. 30s, 5m (default 10s)")
    load_.add_argument("--ramp-up", type=duration, default=0.0, help="start the masters evenly over this time (default 0)")
    load_.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="e.g. p99<250ms, lost==0, findings==0, rate>=5000; decides the exit code",
    )
    load_.add_argument("--seed", type=non_negative, default=0, help="seed of the first master's domain; the others follow")
    load_.add_argument(
        "--buffer",
        type=positive,
        metavar="N",
        help=f"notifications generated ahead of the senders at most, all masters (default {BUFFER:,}); "
        "they come from a generator process as the run goes",
    )
    load_.add_argument(
        "--prepare",
        type=non_negative,
        default=0,
        metavar="N",
        help="notifications each master generates before the clock starts (default 0: as the run goes); "
        "for peak rates beyond what one generator process keeps up with",
    )
    load_.add_argument("--endpoint", metavar="URL", help="the endpoint under test (default: the reference endpoint in a separate process)")
    load_.add_argument("--token", help="the endpoint's token (default: $NBWSS_TOKEN)")
    load_.add_argument("--cafile", help="trust this CA for wss://")
    load_.add_argument("--insecure", action="store_true", help="do not verify the endpoint's certificate (warned about)")
    session_arguments(load_)
    load_.add_argument("--json", metavar="FILE", help="all figures, with the per-second series, as JSON")
    load_.add_argument("--html", metavar="FILE", help="a self-contained HTML page with charts")
    load_.add_argument(
        "--expect-state",
        metavar="FILE",
        help="write what the endpoint was told (jobs, images), per master host name, as JSON for diff-state (a decode per ack)",
    )
    load_.add_argument("--quiet", action="store_true", help="no progress lines")

    load_.set_defaults(command=_load)


def _load(args: argparse.Namespace) -> int:
    scenario = load(args.scenario)
    try:
        thresholds = [parse_threshold(text) for text in args.threshold]
    except ValueError as error:
        raise UsageError(str(error)) from None
    options, groups = contract_options(
        argparse.Namespace(**{**vars(args), "endpoints": None, "certfile": None, "keyfile": None, "transcript": None})
    )
    check_writable(expect_state=args.expect_state)  # before the run, as contract_options checks --json
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
        buffer=args.buffer,
        prepare=args.prepare,
        profile=args.nbu_version,
        progress=None if args.quiet else _progress_line,
        expect_state=bool(args.expect_state),
    )
    live = None
    if not args.quiet and sys.stderr.isatty():
        live = LiveProgress(Console(stderr=True), args.masters, config.rate)
        config.progress = live.update
    interrupt = Interrupt()

    async def main() -> LoadResult:
        stop = config.stop = asyncio.Event()
        task = asyncio.ensure_future(run_load(config))

        def on_signal() -> None:
            stop.set()
            task.cancel()

        interrupt.install(on_signal)
        return await task

    try:
        with live if live is not None else contextlib.nullcontext():
            result = asyncio.run(main())
    except ConnectError as error:
        raise UsageError(f"no connection: {error}") from None
    figures = result.figures()
    figures["thresholds"] = [
        {
            "threshold": t.text,
            "limit": t.limit(),
            "actual": t.actual(figures),
            "measured": t.describe(t.actual(figures)),
            "met": t.holds(figures),
        }
        for t in thresholds
    ]
    for line in summary(figures):
        print(line)
    try:
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        if args.html:
            Path(args.html).write_text(render_html(figures), encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write a report: {error.strerror or error}") from None
    if args.expect_state:
        document = state.check(result.expected_state(), args.expect_state)
        state.write(document, args.expect_state)
        print(f"expected state: {len(document['masters'])} masters, written to {args.expect_state}")
    code = interrupt.exit_code()
    if code is not None:
        return code
    return verdict(figures)


def verdict(figures: dict[str, Any]) -> int:
    """The exit code: 1 on any finding or lost notification or unmet threshold (thresholds never hide findings), else 0."""
    clean = not figures["findings"] and figures["lost"] == 0
    return OK if clean and all(entry["met"] for entry in figures["thresholds"]) else FINDINGS


def summary(figures: dict[str, Any]) -> list[str]:
    """The lines printed after a load run."""
    lines = [
        f"{figures['masters']} masters, {figures['model']}, {figures['elapsed_s']:.1f} s: {figures['sent']} sent, "
        f"{figures['acknowledged']} acknowledged ({figures['rate']:.0f}/s), {figures['retried']} retried, {figures['lost']} lost, "
        f"{figures['late']} late, {sum(figures['findings'].values())} findings, {figures['connections_dropped']} connections dropped"
    ]
    if figures["masters_refused"]:
        lines.append(f"{figures['masters_refused']} of {figures['masters']} masters refused (CONNECT answered valid: false)")
    commands = figures["commands"]
    if commands["answered"]:
        lines.append(f"COMMAND requests answered: {commands['answered']} ({commands['failed']} with an error status)")
    latency = figures["ack_latency_ms"]
    if latency["p50"] is not None:
        lines.append("ack latency: " + ", ".join(f"{name} {value:.2f} ms" for name, value in latency.items()))
    memory = figures["generator_memory"]
    resident = ""
    if memory:
        resident = f", {memory['rss_peak_mib']} MiB resident"
        if memory["per_master_connection_kib"] is not None:
            resident += f" (+{memory['per_master_connection_kib']} KiB per master connection)"
    lines.append(f"load generator: {figures['generator_cpu']:.2f} of a CPU{resident}")
    if figures["generator_cpu"] >= 0.9:
        lines.append(
            f"note: this load generator used {figures['generator_cpu']:.2f} of a CPU: it may have been the limit, not the endpoint "
            "(fewer masters per process, or Locust workers, spread it)"
        )
    generation = figures["generation"]
    first = (
        f"first notification {generation['first_sent_s']:.2f} s after start" if generation["first_sent_s"] is not None else "nothing sent"
    )
    rss = f", {generation['rss_peak_mib']} MiB" if generation["rss_peak_mib"] else ""
    where = "a separate process" if generation["processes"] == 1 else f"{generation['processes']} separate processes"
    lines.append(f"notifications generated in {where} ({generation['cpu']:.2f} of a CPU{rss}); {first}")
    if generation["all_started_s"] >= 1.0 + figures.get("ramp_up_s", 0.0):
        lines.append(f"note: the last master started {generation['all_started_s']:.1f} s in: their domains took that long to build")
    if generation["starved_share"] >= STARVED_NOTE:
        lines.append(
            f"note: masters spent {generation['starved_share']:.0%} of their time waiting for the generator: it may have limited the rate "
            "(--buffer N for more ahead)"
        )
    evidence = figures.get("evidence", {})
    for rule, count in sorted(figures["findings"].items()):
        lines.append(f"finding {rule}: {count}")
        if evidence.get(rule):  # the first example; the JSON report keeps a few
            lines.append(f"  e.g. {evidence[rule][0]}")
    for entry in figures["thresholds"]:
        lines.append(
            f"threshold {entry['threshold']}: {'met' if entry['met'] else 'NOT MET'} (measured {entry['measured']}; limit {entry['limit']})"
        )
    return lines


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
