"""The emulated master's REST API over HTTPS, as ``https://<host>:1556/netbackup/...``.

The standard library's threading HTTP server behind TLS: NetBackup REST clients (scripts,
exporters, SDKs, Veritas' samples) talk to it unchanged. Every request goes to the same
:class:`~emulator.rest.responder.CommandResponder` as the COMMAND tunnel, under one lock, so
both faces read and change one master's state. Without a certificate one is made for the
host names served, signed by a CA of its own whose PEM clients can trust (:attr:`RestServer.ca_pem`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from emulator.rest.errors import HttpError
from emulator.rest.responder import Answer, CommandResponder

NETBACKUP_PORT = 1556


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        address = self.server.server_address
        host = self.headers.get("Host") or f"{address[0]!s}:{address[1]}"
        with self.server.lock:
            answer = self._answer(body, host)
        data = b"" if answer.body is None else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            if name not in ("date", "server") and (data or name != "content-type"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _answer(self, body: bytes, host: str) -> Answer:
        try:
            return self.server.responder.handle(self.command, self.path, dict(self.headers.items()), body, base=f"https://{host}/netbackup")
        except Exception as error:  # a bug of ours: NetBackup's 500, and the connection stays usable
            self.log_error("answering %s %s: %r", self.command, self.path, error)
            failure = HttpError(500, "an unexpected system error occurred", details=[repr(error)])
            return Answer(500, {"content-type": "application/vnd.netbackup+json;version=1.0"}, failure.body())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def version_string(self) -> str:
        return "NetBackup"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    responder: CommandResponder
    lock: threading.Lock
    log: bool


class RestServer:
    """Serves ``responder`` over HTTPS on ``host:port`` (port 0: one the OS picks) until closed.

    ``certfile``/``keyfile`` give the certificate; without them one is made for ``host`` (and
    ``localhost``), signed by a fresh CA whose PEM is :attr:`ca_pem` (also written to :attr:`cafile`).
    """

    def __init__(
        self,
        responder: CommandResponder,
        host: str = "127.0.0.1",
        port: int = NETBACKUP_PORT,
        *,
        certfile: str | None = None,
        keyfile: str | None = None,
        log: bool = False,
    ) -> None:
        self.responder = responder
        self.host = host
        self._folder = tempfile.TemporaryDirectory(prefix="nbwss-emu-rest-")
        self.ca_pem = b""
        if certfile is None:
            self.ca_pem, cert_pem, key_pem = make_certificate([host, "localhost"])
            certfile = str(Path(self._folder.name) / "master.pem")
            Path(certfile).write_bytes(cert_pem + key_pem)
            keyfile = None
        self.cafile = str(Path(self._folder.name) / "ca.pem")
        Path(self.cafile).write_bytes(self.ca_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile, keyfile)
        self._server = _Server((host, port), _Handler, bind_and_activate=True)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.responder = responder
        self._server.lock = threading.Lock()
        self._server.log = log
        self._thread: threading.Thread | None = None

    @property
    def lock(self) -> threading.Lock:
        """Held while a request is answered: hold it to change the master's state meanwhile."""
        return self._server.lock

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The API's root, e.g. ``https://127.0.0.1:1556/netbackup``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}/netbackup"

    def client_context(self) -> ssl.SSLContext:
        """An SSL context for clients that trusts the made certificate (with --certfile: the system's CAs)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode() or None)

    def start(self) -> RestServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="nbwss-emu-rest", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`close` is called from another."""
        self._server.serve_forever()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._folder.cleanup()

    def __enter__(self) -> RestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_certificate(names: list[str]) -> tuple[bytes, bytes, bytes]:
    """A CA and a server certificate for ``names`` (host names or addresses): (CA PEM, cert PEM, key PEM)."""
    # cryptography only when a certificate is made: every other command starts faster without it
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nbwss-emulator NetBackup CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alternatives: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem
