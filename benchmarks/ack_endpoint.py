"""A bare acknowledging endpoint for benchmarks: CONNECT answered valid, every notification acknowledged, nothing checked.

Run: python benchmarks/ack_endpoint.py [--tls CERTFILE KEYFILE]; prints "listening on URL".

The reference endpoint validates every frame and keeps state, so it is slower than
the clients and would set the pace of any comparison. This one is websockets'
sans-I/O server protocol on a bare asyncio protocol (no task or future per
frame), so that a benchmark measures the clients, not the endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl

import orjson
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol


def answer(data: bytes) -> bytes:
    message = orjson.loads(data)
    kind = message["type"]
    payload = '{"valid":true}' if kind == "CONNECT" else "{}"
    return f'{{"version":"1.0","id":"{message["id"]}","type":"{kind}","subType":"RESPONSE","timeStamp":0,"payload":{payload}}}'.encode()


class AckConnection(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol = ServerProtocol(max_size=None)

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Request):
                protocol.send_response(protocol.accept(event))
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT and protocol.state is State.OPEN:
                protocol.send_text(answer(event.data))
        for chunk in protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.close()  # end of the closing handshake

    def eof_received(self) -> None:
        self.protocol.receive_eof()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tls", nargs=2, metavar=("CERTFILE", "KEYFILE"))
    args = parser.parse_args()
    context = None
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*args.tls)
    server = await asyncio.get_running_loop().create_server(AckConnection, "127.0.0.1", 0, ssl=context, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {'wss' if context else 'ws'}://127.0.0.1:{port}/nbwss", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
