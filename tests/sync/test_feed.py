"""The blocking feed over a real generator child process: what Locust users send, generated out of their process."""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

from emulator.protocol.codec import encode
from emulator.scenario import Timeline, load
from emulator.scenario.model import Scenario
from emulator.sync.feed import FeedGenerator
from emulator.sync.master import sample_name

START = 1_700_000_000.0


@pytest.fixture
def scenario() -> Scenario:
    return load("restore")


@pytest.fixture
def generator(scenario: Scenario) -> Iterator[FeedGenerator]:
    started = FeedGenerator.start(scenario, START, ids="seeded")
    yield started
    started.close()


def in_process(scenario: Scenario, seed: int, count: int) -> list[tuple[str, bytes, str]]:
    messages = itertools.islice(Timeline(scenario, seed=seed, start=START, ids="seeded").notifications(repeat=True), count)
    return [(message["id"], encode(message), sample_name(message)) for message in messages]


def test_masters_added_one_after_another_get_their_timelines_notifications_named(scenario: Scenario, generator: FeedGenerator) -> None:
    first = generator.add(11, low=16)
    taken = list(itertools.islice(first, 200))  # beyond its first chunks: it asks for more as it goes
    second = generator.add(12, low=16)  # arrives later, as Locust spawns users
    third = generator.add(11_000, low=16)
    taken_second, taken_third = list(itertools.islice(second, 50)), list(itertools.islice(third, 50))
    taken += list(itertools.islice(first, 50))
    for seed, got in ((11, taken), (12, taken_second), (11_000, taken_third)):
        assert [(p.message_id, p.frame, p.name) for p in got] == in_process(scenario, seed, len(got))
    assert first.taken == 250 and first.hostname and second.hostname  # each master's host name came with its first chunk
    timeline = Timeline(scenario, seed=12, start=START)
    assert second.hostname == timeline.masters[scenario.masters[0].key].hostname
    assert not first.found()  # every frame of the bundled scenario passes its schema


def test_the_buffer_is_bounded_and_prepare_fills_it(generator: FeedGenerator) -> None:
    feed = generator.add(3, low=8, chunk=8)
    assert feed.filled(8, timeout=30)
    assert len(feed.buffer) == 8 and feed.asked == 8  # its first chunk, and no more until it is taken
    feed.prepare(500)
    assert feed.filled(508, timeout=30)
    assert len(feed.buffer) == 508 and feed.arrived == 508
    next(feed)
    assert feed.asked == 508  # plenty buffered: no ask


def test_the_child_ends_when_the_parent_closes_it(scenario: Scenario) -> None:
    generator = FeedGenerator.start(scenario, START)
    feed = generator.add(1)
    next(feed)
    os.kill(generator.process.pid, signal.SIGINT)  # Ctrl-C at a terminal reaches it too: Locust's to handle, not the child's
    feed.prepare(300)
    assert feed.filled(300, timeout=30) and not generator.ended
    generator.close()
    assert generator.process.returncode == 0  # its stdin's end stopped it: not killed
    assert generator.error is None
    buffered = list(feed.buffer)
    assert list(feed) == buffered  # what was buffered is all there is: the feed ends
    assert generator.add(2).ended  # a master added after the end gets nothing, and waits for nothing


def test_a_child_that_dies_ends_the_feeds_without_a_hang(generator: FeedGenerator) -> None:
    feed = generator.add(5, low=4, chunk=4)
    assert feed.filled(4, timeout=30)
    os.kill(generator.process.pid, signal.SIGKILL)
    drained: list[object] = []
    taker = threading.Thread(target=lambda: drained.extend(itertools.islice(feed, 10_000)))
    taker.start()
    taker.join(30)
    assert not taker.is_alive()  # the feed ended: no wait for notifications that will never come
    assert 4 <= len(drained) < 10_000 and feed.ended
    assert generator.error == f"the notification generator ended (exit {-signal.SIGKILL})"


def test_the_feed_brings_no_asyncio_machinery_into_the_users_process() -> None:
    import subprocess  # noqa: PLC0415

    code = (
        "import sys, emulator.sync.master; before = set(sys.modules); import emulator.sync.feed; "
        "print(sorted(m for m in set(sys.modules) - before if 'asyncio' in m or m.startswith(('emulator.load.g', 'emulator.wire'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['emulator.load.generation']"  # the child's loop and wire format, nothing of load's asyncio side
