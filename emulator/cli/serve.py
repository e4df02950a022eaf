"""``serve``: the reference endpoint (the cloud side, done right) as a process of its own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import sys
import threading
from typing import Any

from emulator.cli.args import non_negative, port, positive
from emulator.cli.contract import fault_names, parse_fault
from emulator.cli.signals import Interrupt
from emulator.endpoint import ReferenceEndpoint
from emulator.exceptions import UsageError
from emulator.wire.tls import server_context

OK = 0


def add_parsers(verbs: Any) -> None:
    """Add this family's commands to the ``nbwss-emu`` parser."""
    serve = verbs.add_parser("serve", help="run the reference endpoint (the cloud side, done right) until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=port, default=8765, help="port (default: 8765; 0 picks a free one)")
    serve.add_argument("--token", help="the token masters must present (default: $NBWSS_TOKEN, else a new random one, printed)")
    serve.add_argument("--certfile", help="serve wss:// with this certificate (PEM)")
    serve.add_argument("--keyfile", help="the certificate's private key (PEM), if not in --certfile")
    serve.add_argument("--fault", help="misbehave on purpose: " + ", ".join(fault_names()))
    serve.add_argument("--max-connections", type=positive, default=64, help="connections at once (default: 64)")
    serve.add_argument("--max-size", type=positive, default=1024 * 1024, help="largest frame accepted, bytes (default: 1 MiB)")
    serve.add_argument("--keep", type=non_negative, help="notifications kept per connection (default: all; 0 for long load runs)")
    serve.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="also stop when standard input closes (for a parent process, which may die without stopping it)",
    )

    serve.set_defaults(command=_serve)


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
        fault=parse_fault(args.fault) if args.fault else None,
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
        Interrupt().install(stop.set)
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
