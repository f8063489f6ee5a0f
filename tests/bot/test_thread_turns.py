"""Whose turn it is, decided from a thread's state (the end-to-end behaviour is in tests/adapters/slack)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.thread_turns import _decide, _State

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def state(*, newest: int, oldest: int, quiet_s: float = 10.0, busy: int | None = None) -> _State:
    return _State(newest, oldest, NOW - timedelta(seconds=quiet_s), True, busy, NOW)


def test_burst_waits_out_the_window_then_takes_everything_open() -> None:
    waiting = _decide("burst", state(newest=3, oldest=1, quiet_s=0.3), 3, 0.8, overdue=False)
    assert (waiting.take, waiting.exact) == (False, True)
    assert abs(waiting.wait_s - 0.5) < 1e-9
    taking = _decide("burst", state(newest=3, oldest=1, quiet_s=0.9), 3, 0.8, overdue=False)
    assert (taking.take, taking.first) == (True, 0)


def test_burst_leaves_older_messages_to_the_newest_and_waits_behind_a_running_turn() -> None:
    assert not _decide("burst", state(newest=3, oldest=1), 1, 0.8, overdue=False).take
    assert not _decide("burst", state(newest=3, oldest=3, busy=9), 3, 0.8, overdue=False).take


def test_queue_takes_only_its_own_message_and_only_when_it_is_the_oldest() -> None:
    assert not _decide("queue", state(newest=3, oldest=1), 3, 0.8, overdue=False).take
    first = _decide("queue", state(newest=3, oldest=1), 1, 0.8, overdue=False)
    assert (first.take, first.first) == (True, 1)
    assert not _decide("queue", state(newest=1, oldest=1, busy=9), 1, 0.8, overdue=False).take


def test_interrupt_cancels_the_running_turn_from_the_newest_message_only() -> None:
    assert _decide("interrupt", state(newest=3, oldest=1, busy=9), 3, 0.8, overdue=False).interrupt == 9
    assert _decide("interrupt", state(newest=3, oldest=1, busy=9), 1, 0.8, overdue=False).interrupt is None
    assert _decide("interrupt", state(newest=3, oldest=1), 3, 0.8, overdue=False).take


def test_a_message_that_waited_too_long_is_answered_anyway() -> None:
    assert _decide("queue", state(newest=3, oldest=1, busy=9), 3, 0.8, overdue=True).take
