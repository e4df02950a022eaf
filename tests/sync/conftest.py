"""The sync master's and the Locust user's tests: an asyncio loop in a thread, for the endpoints they talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.harness import LoopThread


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()
