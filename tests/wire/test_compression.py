"""--compression deflate: the master offers permessage-deflate, and its frames really are compressed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from emulator.cli import main
from emulator.protocol.codec import encode
from emulator.protocol.messages import connect_response, notification_response
from emulator.protocol.properties import NbwssProperties
from emulator.protocol.run import Report, Settings, Target
from emulator.scenario import Timeline, load
from emulator.wire.master import EmulatedMaster


class CountingConnection(ServerConnection):
    """A server connection that counts the bytes it reads off the wire (before any decompression)."""

    wire_bytes = 0

    def data_received(self, data: bytes) -> None:
        CountingConnection.wire_bytes += len(data)
        super().data_received(data)


def run(compression: str | None) -> tuple[Report, list[str], int, int]:
    async def scenario() -> tuple[Report, list[str], int, int]:
        extensions: list[str] = []
        text_bytes = 0

        async def handler(ws: ServerConnection) -> None:
            nonlocal text_bytes
            extensions.extend(extension.name for extension in ws.protocol.extensions)
            async for frame in ws:
                text_bytes += len(frame.encode() if isinstance(frame, str) else frame)
                message: dict[str, Any] = json.loads(frame)
                if message["type"] == "CONNECT":
                    await ws.send(encode(connect_response(message["id"], 1, True)).decode())
                else:
                    await ws.send(encode(notification_response(message["id"], 1)).decode())

        CountingConnection.wire_bytes = 0
        # An endpoint that accepts permessage-deflate when offered (websockets' default).
        async with serve(handler, "127.0.0.1", 0, compression="deflate", create_connection=CountingConnection) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            properties = NbwssProperties(resend_interval=1.0, connection_period=0.5)
            settings = Settings(properties=properties, compression=compression, command_grace=0)
            messages = [t.message for t in Timeline(load("smoke")).messages()]
            report = await EmulatedMaster([Target(url, "t")], settings).run(messages)
        return report, extensions, CountingConnection.wire_bytes, text_bytes

    return asyncio.run(scenario())


def test_deflate_is_negotiated_and_the_frames_are_compressed() -> None:
    report, extensions, wire, text = run("deflate")
    assert not report.lost and len(report.acks) == report.sent > 10
    assert extensions == ["permessage-deflate"] and report.compression == "permessage-deflate"
    assert wire < text / 2, (wire, text)  # JSON notifications compress well: fewer bytes on the wire than in the frames


def test_compression_is_off_by_default() -> None:
    report, extensions, wire, text = run(None)
    assert not report.lost and extensions == [] and report.compression is None
    assert wire > text  # every byte of every frame, plus the framing


def test_the_cli_offers_only_deflate(capsys) -> None:
    assert main(["run", "--compression", "brotli"]) == 2
    assert "invalid choice: 'brotli'" in capsys.readouterr().err
