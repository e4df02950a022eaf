"""``master``: the emulated master's NetBackup REST API over HTTPS, after a scenario's timeline.

``nbwss-emu master [scenario] --port 1556`` runs the scenario's timeline to its end (no
endpoint needed), then serves that master's state on ``https://<host>:<port>/netbackup/...``
until interrupted, so NetBackup REST clients (scripts, exporters, SDKs) run against it unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from pathlib import Path
from typing import Any

from emulator.cli.args import non_negative, port
from emulator.cli.signals import Interrupt
from emulator.exceptions import UsageError
from emulator.rest import RELEASE_API, CommandResponder
from emulator.scenario import Timeline, load

OK = 0
DEFAULT_RELEASE = "10.5"
NETBACKUP_PORT = 1556  # NetBackup's PBX port, where its REST API answers


def add_parsers(verbs: Any) -> None:
    """Add this family's commands to the ``nbwss-emu`` parser."""
    master = verbs.add_parser("master", help="serve an emulated master's NetBackup REST API over HTTPS (after a scenario)")
    master.add_argument("scenario", nargs="?", default="smoke", help="bundled scenario name or YAML file (default: smoke)")
    master.add_argument("--seed", type=non_negative, help="seed for names, sizes and timings (default: the scenario's)")
    master.add_argument("--master", dest="master_key", help="which master of the scenario to serve (default: its first)")
    master.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    master.add_argument("--port", type=port, default=NETBACKUP_PORT, help=f"port (default: {NETBACKUP_PORT}; 0 picks a free one)")
    master.add_argument("--certfile", help="serve with this certificate (PEM; default: one made for --host, with its own CA)")
    master.add_argument("--keyfile", help="the certificate's private key (PEM), if not in --certfile")
    master.add_argument("--cafile-out", metavar="FILE", help="write the made CA's certificate here, for clients to trust")
    master.add_argument(
        "--nbu-version",
        default=DEFAULT_RELEASE,
        choices=list(RELEASE_API),
        help=f"NetBackup release: the API versions it speaks and its default (default: {DEFAULT_RELEASE})",
    )
    master.add_argument("--user", help="the only user who may log in (default: any user and password)")
    master.add_argument("--password", help="that user's password (with --user)")
    master.add_argument("--log", action="store_true", help="print one line per request")
    master.set_defaults(command=_master)


def _master(args: argparse.Namespace) -> int:
    from emulator.rest.https import RestServer  # noqa: PLC0415 - the HTTP server only for this command

    if args.keyfile and not args.certfile:
        raise UsageError("--keyfile needs --certfile")
    if bool(args.user) != bool(args.password):
        raise UsageError("--user and --password go together")
    if args.certfile and args.cafile_out:
        raise UsageError("--cafile-out is for the made certificate; with --certfile your CA is already yours")
    timeline = Timeline(load(args.scenario), seed=args.seed)
    for _ in timeline.messages():
        pass  # the master's state after the whole timeline; nothing is sent anywhere
    key = args.master_key or next(iter(timeline.masters))
    if key not in timeline.masters:
        raise UsageError(f"no master {key!r} in the scenario; it has: {', '.join(timeline.masters)}")
    credentials = {args.user: args.password} if args.user else {}
    responder = CommandResponder(timeline.masters[key], profile=args.nbu_version, credentials=credentials)
    try:
        server = RestServer(responder, args.host, args.port, certfile=args.certfile, keyfile=args.keyfile, log=args.log)
    except (OSError, ssl.SSLError) as error:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {getattr(error, 'strerror', None) or error}") from None
    try:
        if args.cafile_out:
            Path(args.cafile_out).write_bytes(server.ca_pem)
        master = timeline.masters[key]
        print(f"NetBackup {args.nbu_version} master {master.hostname} serving {server.url}", flush=True)
        print(
            f"{len(master.jobs)} jobs, {len(master.live_images())} images; trust the CA in {args.cafile_out or server.cafile}", flush=True
        )
        interrupt = Interrupt()

        async def until_interrupted() -> None:
            stopped = asyncio.Event()
            interrupt.install(stopped.set)
            await stopped.wait()

        server.start()
        asyncio.run(until_interrupted())
    finally:
        server.close()
    code = interrupt.exit_code()
    return OK if code is None else code
