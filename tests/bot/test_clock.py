"""The clocks due times are read from: the system's, and the fake one tests move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import FakeClock, SystemClock

NOON = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def test_a_stopped_fake_clock_reads_what_it_was_set_to_and_jumps_when_advanced() -> None:
    clock = FakeClock(NOON, ticking=False)
    assert clock.now() == NOON
    assert clock.advance(timedelta(hours=2)) == NOON + timedelta(hours=2)
    assert clock.advance(30) == NOON + timedelta(hours=2, seconds=30)
    clock.set(NOON)
    assert clock.now() == NOON


def test_a_fake_clock_never_goes_back_by_advancing() -> None:
    clock = FakeClock(NOON, ticking=False)
    with pytest.raises(ValueError, match="only advances"):
        clock.advance(-1)


def test_a_ticking_fake_clock_keeps_pace_after_a_jump() -> None:
    clock = FakeClock()
    start, mono = clock.now(), clock.monotonic()
    clock.advance(timedelta(days=1))
    assert timedelta(days=1) <= clock.now() - start < timedelta(days=1, seconds=5)
    assert clock.monotonic() - mono >= 86400, "durations measured across a jump include it"


def test_a_time_on_a_fake_clock_ahead_of_the_wall_is_due_that_much_earlier_on_the_wall() -> None:
    clock = FakeClock()
    clock.advance(timedelta(hours=2))
    due = clock.now() + timedelta(minutes=5)
    wall = clock.to_wall(due)
    assert abs(wall - (datetime.now(UTC) + timedelta(minutes=5))) < timedelta(seconds=5)


def test_the_system_clock_is_the_wall_clock_in_utc() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo == UTC
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
    assert clock.to_wall(NOON) == NOON
