"""A WebSocket client connection read in the caller's own thread: websockets' sans-I/O protocol over a blocking socket.

websockets' threaded client runs a reading thread per connection and hands every
message to the caller through locks and a condition; under gevent (Locust) those
become a greenlet and greenlet locks, and each acknowledgement pays two switches
and the locks' bookkeeping: as much as the emulated master's own work on it. An
emulated master only ever reads when it waits for something, so this connection
reads the socket itself, inside :meth:`Connection.recv`, and lets
:class:`websockets.client.ClientProtocol` (the same sans-I/O core websockets'
clients use) parse, answer pings and close. One thread (or greenlet) per
connection, as before, with nothing running behind it.

Keep-alive pings are sent, and their pongs awaited, while the caller waits in
:meth:`Connection.recv` (an emulated master always does, between sends); a pong
missing beyond ``ping_timeout`` ends the connection (1011), as websockets' clients do.
Errors are websockets' own: :class:`~websockets.exceptions.InvalidStatus`,
:class:`~websockets.exceptions.InvalidURI`, :class:`~websockets.exceptions.ConnectionClosed`,
and the socket's and TLS' ``OSError`` subclasses while opening.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosedError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import CLOSED, OPEN
from websockets.uri import parse_uri

#: Bytes asked of the socket per read: a burst of acknowledgements in one system call.
READ_SIZE = 1 << 16
_NEVER = float("inf")


class Connection:
    """One open WebSocket client connection; :meth:`open` makes one."""

    def __init__(
        self,
        sock: socket.socket,
        protocol: ClientProtocol,
        *,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
        close_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.socket = sock
        self.protocol = protocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.clock = clock
        self._messages: deque[str | bytes] = deque()
        self._fragments: list[bytes] = []  # a fragmented message's frames so far
        self._fragment_text = False
        self._ping: bytes | None = None  # the keep-alive ping awaiting its pong
        self._next_ping = clock() + ping_interval if ping_interval else _NEVER
        self._ping_limit = _NEVER  # when the outstanding ping's pong is overdue
        self._close_limit = _NEVER  # when an endpoint that began or answered the closing handshake must have closed

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 10.0,
        max_size: int | None = 2**20,
        user_agent: str | None = None,
    ) -> Connection:
        """Connect to ``url`` (ws:// or wss://) and complete the opening handshake within ``open_timeout``."""
        uri = parse_uri(url)
        limit = time.monotonic() + open_timeout
        sock = socket.create_connection((uri.host, uri.port), timeout=open_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a notification is one small write
            if uri.secure:
                sock = (ssl_context or ssl.create_default_context()).wrap_socket(sock, server_hostname=uri.host)
            protocol = ClientProtocol(uri, max_size=max_size)
            connection = cls(sock, protocol, ping_interval=ping_interval, ping_timeout=ping_timeout, close_timeout=close_timeout)
            connection._handshake(limit, user_agent)
        except BaseException:
            sock.close()
            raise
        return connection

    def _handshake(self, limit: float, user_agent: str | None) -> None:
        protocol = self.protocol
        request = protocol.connect()
        if user_agent is not None:
            request.headers["User-Agent"] = user_agent
        protocol.send_request(request)
        self._flush()
        while True:
            answered = False
            for event in protocol.events_received():
                if isinstance(event, Response):
                    answered = True
                else:
                    self._take(event)  # frames right behind the response
            if answered:
                if protocol.handshake_exc is not None:
                    raise protocol.handshake_exc
                self._settle()
                return
            remaining = limit - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out while waiting for handshake response")
            self.socket.settimeout(remaining)
            data = self.socket.recv(READ_SIZE)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
                if protocol.handshake_exc is not None:
                    raise protocol.handshake_exc
                raise ConnectionError("the connection closed during the opening handshake")

    # -- using it -----------------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """The close code, once the connection is closed (None before)."""
        return self.protocol.close_code if self.protocol.state is CLOSED else None

    def send(self, frame: bytes) -> None:
        """Send one text message (UTF-8 bytes); :class:`ConnectionClosed` when the connection is gone."""
        self.send_many((frame,))

    def send_many(self, frames: Iterable[bytes]) -> None:
        """Send text messages in one write (one system call for a window's worth); :class:`ConnectionClosed` when gone."""
        protocol = self.protocol
        if protocol.state is OPEN:
            for frame in frames:
                protocol.send_text(frame)
            self._flush()
        if protocol.state is not OPEN:
            raise protocol.close_exc if protocol.state is CLOSED else ConnectionClosedError(protocol.close_rcvd, protocol.close_sent)

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message (str for text, bytes for binary), waiting up to ``timeout`` seconds for it.

        Raises :class:`TimeoutError` when none came in time and :class:`ConnectionClosed`
        once the connection has closed (after every message that came before).
        """
        messages = self._messages
        if messages:
            return messages.popleft()
        clock = self.clock
        limit = None if timeout is None else clock() + timeout
        sock, protocol = self.socket, self.protocol
        while True:
            now = clock()
            wait = self._keep_alive(now)
            if protocol.state is CLOSED:
                with contextlib.suppress(OSError):
                    sock.close()  # the endpoint's end, or ours after a time-out: nothing more will be read
                raise protocol.close_exc
            if limit is not None:
                if now >= limit and timeout != 0:  # 0: one read of what is already there, then the time-out
                    raise TimeoutError
                wait = min(wait, limit - now)
            sock.settimeout(None if wait == _NEVER else max(0.0, wait))
            try:
                data = sock.recv(READ_SIZE)
            except (TimeoutError, BlockingIOError, ssl.SSLWantReadError):
                if timeout == 0:
                    raise TimeoutError from None
                continue
            except OSError:
                data = b""  # reset: as good as the end of the stream
            self._received(data)
            if messages:
                return messages.popleft()

    def received(self) -> list[str | bytes]:
        """The messages already read and not yet taken, taken now (no waiting, no system call)."""
        messages = list(self._messages)
        self._messages.clear()
        return messages

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """The closing handshake, waiting up to ``close_timeout`` for the endpoint's part; the socket closed after."""
        protocol = self.protocol
        try:
            if protocol.state is OPEN:
                protocol.send_close(code, reason)
                self._flush()
                self._close_limit = self.clock() + self.close_timeout
            while protocol.state is not CLOSED:
                remaining = self._close_limit - self.clock()
                if remaining <= 0:
                    break
                self.socket.settimeout(remaining)
                self._received(self.socket.recv(READ_SIZE))  # what comes after our close is not read
        except OSError:
            pass  # the endpoint went first: the socket is closed below all the same
        finally:
            protocol.receive_eof()  # closed now, if the endpoint did not close in time (as websockets' clients do)
            with contextlib.suppress(OSError):
                self.socket.close()

    # -- inside -------------------------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        """Bytes from the socket (b"": its end) through the protocol: messages queued, answers written."""
        protocol = self.protocol
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        for event in protocol.events_received():
            self._take(event)
        self._settle()

    def _settle(self) -> None:
        """Write what the protocol has to send; once the closing handshake began, give the endpoint close_timeout to end it."""
        self._flush()
        protocol = self.protocol
        if protocol.state is not OPEN and protocol.state is not CLOSED:
            if self._close_limit == _NEVER:
                self._close_limit = self.clock() + self.close_timeout
            elif self.clock() >= self._close_limit:
                protocol.receive_eof()

    def _take(self, frame: object) -> None:
        """A frame from the protocol: a message complete, a fragment kept, a pong matched."""
        assert isinstance(frame, Frame)
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(bytes(frame.data), opcode is Opcode.TEXT)
            else:
                self._fragments, self._fragment_text = [bytes(frame.data)], opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                self._message(data, self._fragment_text)
        elif opcode is Opcode.PONG and self._ping is not None and bytes(frame.data) == self._ping:
            self._ping, self._ping_limit = None, _NEVER

    def _message(self, data: bytes, text: bool) -> None:
        if not text:
            self._messages.append(data)
            return
        try:
            self._messages.append(data.decode())
        except UnicodeDecodeError:
            self.protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")

    def _keep_alive(self, now: float) -> float:
        """Send the keep-alive ping when due, fail the connection when its pong is overdue; seconds until the next of those."""
        if now >= self._close_limit:
            self.protocol.receive_eof()  # the endpoint did not end the closing handshake in time
            return _NEVER
        if now >= self._ping_limit:
            self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            self._flush()
            self.protocol.receive_eof()  # no waiting for an endpoint that does not answer pings
            return _NEVER
        if self._ping is None and now >= self._next_ping and self.protocol.state is OPEN:
            self._ping = os.urandom(4)
            self.protocol.send_ping(self._ping)
            self._flush()
            self._next_ping = now + (self.ping_interval or _NEVER)
            if self.ping_timeout is not None:
                self._ping_limit = now + self.ping_timeout
        next_ping = self._next_ping if self._ping is None else _NEVER  # one ping at a time, as websockets' keepalive
        return min(next_ping, self._ping_limit, self._close_limit) - now

    def _flush(self) -> None:
        """Write what the protocol has to send; the end of the stream half-closes the socket."""
        writes = self.protocol.data_to_send()
        if not writes:
            return
        try:
            data = writes[0] if len(writes) == 1 else b"".join(writes)
            if data:
                self.socket.sendall(data)
            if not writes[-1]:  # the end of the stream, always the protocol's last write
                self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            self.protocol.receive_eof()  # the endpoint is gone: closed (1006), as a reset would be read
            self.protocol.events_received()
