"""The master's sending policy, driven by hand: no sockets, time is a number."""

from __future__ import annotations

import random

import pytest

from emulator.protocol.sender import MAX_CATCH_UP, Reconnection, SendPolicy, backoff


def policy(**kwargs: float | int | None) -> SendPolicy:
    options: dict = {"window": 4, "rate": None, "ack_limit": 2.0, "resend_interval": 5.0, **kwargs}
    sender = SendPolicy(**options)
    sender.start(100.0)
    return sender


def test_the_window_bounds_what_is_pending_and_closes_when_the_source_ends() -> None:
    sender = policy(window=2)
    assert sender.window_open(0) and sender.window_open(1) and not sender.window_open(2)
    sender.source_ended(101.0)
    assert not sender.window_open(0)


def test_pacing_slots_follow_the_rate_and_catch_up_at_most_a_second() -> None:
    sender = policy(rate=10.0)  # a slot every 0.1 s from the start
    assert sender.take_slot(100.0)
    assert not sender.take_slot(100.05)
    assert sender.take_slot(100.1)
    # A pause of 5 s: a second's worth (10 slots) may leave at once, not 50.
    taken = 0
    while sender.take_slot(105.2):
        taken += 1
    assert MAX_CATCH_UP * 10 <= taken <= MAX_CATCH_UP * 10 + 2  # the slot now, then a second's worth
    assert sender.next_slot > 105.2


def test_unpaced_every_slot_is_free() -> None:
    sender = policy()
    assert not sender.paced and all(sender.take_slot(100.0) for _ in range(100))


def test_scenario_time_holds_the_next_slot() -> None:
    sender = policy(rate=1000.0)
    sender.hold_until(130.0)
    assert not sender.take_slot(129.9) and sender.take_slot(130.0)


def test_stall_counts_from_the_last_acknowledgement() -> None:
    sender = policy(ack_limit=2.0, resend_interval=5.0)  # stall: 2 + 3 x 5 = 17 s
    assert sender.stall_timeout == 17.0
    assert sender.stall_deadline(0) is None and not sender.stalled(200.0, 0)  # nothing pending: never stalls
    assert not sender.stalled(116.9, 3) and sender.stalled(117.0, 3)
    sender.acknowledged(110.0)
    assert not sender.stalled(117.0, 3) and sender.stall_deadline(3) == 127.0


def test_the_drain_ends_with_the_last_ack_or_its_deadline() -> None:
    sender = policy(ack_limit=2.0, resend_interval=5.0, command_grace=0)  # drain: 2 + 2 x 5 = 12 s; no COMMAND flow
    assert not sender.drained(100.0, 0)  # the source has not ended
    sender.source_ended(100.0)
    assert sender.drained(100.0, 0)
    assert not sender.drained(111.9, 3) and sender.drained(112.0, 3)
    assert sender.wake_at(None, 105.0) == 105.0 and sender.wake_at(None) == 112.0


def test_explicit_timeouts_win_over_the_defaults() -> None:
    sender = policy(stall_timeout=1.0, drain_timeout=0.5)
    assert (sender.stall_timeout, sender.drain_timeout) == (1.0, 0.5)


def test_lateness_is_the_ack_limit_or_a_resend() -> None:
    sender = policy(ack_limit=2.0)
    assert not sender.is_late(1.9, False)
    assert sender.is_late(2.1, False) and sender.is_late(0.1, True)


def test_acks_wake_the_sender_only_when_it_may_wait_for_them() -> None:
    sender = policy(window=64)
    assert not sender.wants_ack_wakeup(10) and sender.wants_ack_wakeup(63)
    sender.source_ended(100.0)
    assert sender.wants_ack_wakeup(1)


def test_backoff_doubles_with_jitter_up_to_the_period() -> None:
    delays = backoff(0.05, 1.0, rng=random.Random(3))
    first = [next(delays) for _ in range(10)]
    bases = [min(0.05 * 2**i, 1.0) for i in range(10)]
    assert all(0.5 * base <= delay <= 1.5 * base for delay, base in zip(first, bases, strict=True))
    assert first == [next(d) for d in [backoff(0.05, 1.0, rng=random.Random(3))] for _ in range(10)]


def test_reconnection_tries_the_preferred_endpoint_first_and_gives_up_after_its_attempts() -> None:
    rounds = Reconnection(["primary", "standby"], attempts=3, period=60.0, rng=random.Random(1))
    assert rounds.order() == ["primary", "standby"]
    first = rounds.failed_round()
    second = rounds.failed_round()
    assert first is not None and second is not None and first < 0.1 and second < 0.2
    assert rounds.failed_round() is None  # the third round failed: give up


def test_a_connection_resets_the_count_and_the_backoff() -> None:
    rounds = Reconnection(["only"], attempts=2, period=60.0, rng=random.Random(1))
    assert rounds.failed_round() is not None
    rounds.connected()
    delay = rounds.failed_round()
    assert delay is not None and delay < 0.1  # small again, and the count starts over
    assert rounds.failed_round() is None


def test_reconnection_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="no endpoint"):
        Reconnection([], attempts=1, period=1.0)


def test_the_endpoints_command_flow_gets_a_grace_after_the_last_ack() -> None:
    sender = policy(command_grace=0.5, command_grace_cap=2.0)
    sender.source_ended(100.0)
    assert not sender.drained(100.0, 0)  # everything acknowledged: the grace starts
    assert sender.wake_at() == 100.5
    sender.command_seen(100.4)  # the endpoint logs in
    assert not sender.drained(100.6, 0) and sender.drained(100.9, 0)


def test_the_grace_is_capped_for_an_endpoint_that_never_stops_asking() -> None:
    sender = policy(command_grace=0.5, command_grace_cap=2.0)
    sender.source_ended(100.0)
    sender.drained(100.0, 0)
    now = 100.0
    while not sender.drained(now, 0):
        sender.command_seen(now)
        now += 0.1
    assert now == pytest.approx(102.0, abs=0.11)  # the cap, within a step of the loop


def test_the_per_frame_questions_keep_nothing() -> None:
    """Called per frame from the ack fast path and the pacer: 100,000 calls hold no memory afterwards, nor at their peak."""
    import tracemalloc  # noqa: PLC0415 - only this test traces

    sender = policy(rate=1_000_000.0)
    now = 100.0
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(100_000):
            now += 0.000001
            sender.window_open(3)
            sender.take_slot(now)
            sender.acknowledged(now)
            sender.is_late(0.001, False)
            sender.wants_ack_wakeup(3)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1024 and peak - before < 4096
