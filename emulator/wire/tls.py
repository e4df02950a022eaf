"""TLS for the emulated master: verify the endpoint by default, TLS 1.2 at least."""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TlsOptions:
    cafile: str | None = None  # a private CA to trust instead of the system's
    certfile: str | None = None  # a client certificate, if the endpoint asks for one
    keyfile: str | None = None
    insecure: bool = False  # no verification at all; must be asked for, and is warned about


def client_context(options: TlsOptions) -> ssl.SSLContext:
    """The SSL context for ``wss://`` connections."""
    context = ssl.create_default_context(cafile=options.cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if options.certfile:
        context.load_cert_chain(options.certfile, options.keyfile)
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """The SSL context of the reference endpoint."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context
