"""Messages that say what to do: checks made before a run starts, and hints added to connection errors.

A run that cannot start says so before it starts (a report file that cannot be
written, a CA or key that does not load), naming the file; a connection error
gets the hint its cause calls for (the other URL scheme, a certificate for
another host name), and never one that does not apply.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from emulator.exceptions import UsageError
from emulator.wire.tls import TlsOptions

#: OpenSSL reasons for a TLS client that got no TLS back: the port speaks plain HTTP.
_NOT_TLS = ("CONNECTION RESET", "WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST", "UNEXPECTED_EOF")
_CAFILE_HINT = " (use --cafile for a private CA)"


def check_writable(**paths: str | None) -> None:
    """UsageError naming the first report file (``json="r.json"``: --json) that cannot be written; nothing is created."""
    for option, path in paths.items():
        if path is None:
            continue
        target = Path(path)
        flag = f"--{option.replace('_', '-')} {path}"
        if target.is_dir():
            raise UsageError(f"{flag}: is a directory, not a file to write")
        folder = target.parent if str(target.parent) else Path(".")
        if not folder.is_dir():
            raise UsageError(f"{flag}: cannot write the report: no folder {folder}")
        writable = os.access(target, os.W_OK) if target.exists() else os.access(folder, os.W_OK | os.X_OK)
        if not writable:
            raise UsageError(f"{flag}: cannot write the report: permission denied")


def check_tls(tls: TlsOptions) -> None:
    """UsageError naming --cafile, --certfile or --keyfile when it does not load (checked before any connection)."""
    if tls.cafile is not None:
        try:
            ssl.create_default_context(cafile=tls.cafile)
        except (ssl.SSLError, OSError, ValueError) as error:
            raise UsageError(f"--cafile {tls.cafile}: not a PEM CA certificate ({_reason(error)})") from None
    if tls.keyfile is not None and tls.certfile is None:
        raise UsageError("--keyfile needs --certfile (the client certificate it belongs to)")
    if tls.certfile is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_cert_chain(tls.certfile, tls.keyfile)
        except (ssl.SSLError, OSError, ValueError) as error:
            if tls.keyfile is None:
                what = f"--certfile {tls.certfile}: no usable certificate and private key in it (give the key with --keyfile)"
            else:
                what = f"--certfile {tls.certfile} / --keyfile {tls.keyfile}: not a certificate and its private key"
            raise UsageError(f"{what} ({_reason(error)})") from None


def connection_hint(message: str, url: str, tls: TlsOptions) -> str:
    """``message`` (a connection error, for ``url`` when it names one) with the hint that its cause calls for."""
    scheme = urlsplit(url).scheme
    if "certificate verification failed" in message and message.endswith(_CAFILE_HINT):
        base = message[: -len(_CAFILE_HINT)]
        if "mismatch" in message.lower():
            return f"{base} (the certificate is for another host name: connect by a name the certificate has)"
        if tls.cafile is not None:
            return f"{base} (the certificate does not chain to --cafile {tls.cafile})"
        return message
    if "TLS handshake" in message and any(reason in message.upper() for reason in _NOT_TLS):
        return f"{message} (if the port serves plain ws://, use ws://)"
    if "HTTP 400" in message or "HTTP 404" in message:
        # Node's ws and others answer 400 (aiohttp, Starlette 404) on a path they serve no WebSocket on.
        path = urlsplit(url).path or "/"
        or_tls = "; or, if it is a TLS port, use wss://" if scheme == "ws" and "HTTP 400" in message else ""
        return f"{message} (is {path} the path the endpoint serves its WebSocket on? check the URL's path{or_tls})"
    if scheme == "ws" and ("valid HTTP response" in message or "connection reset" in message):
        return f"{message} (is it a TLS port? then use wss://)"
    return message


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)
