"""Time as a dependency: the due times of sleeps, retries, wait timeouts, reminders and follow-ups are read from the
runtime's `Clock`, so tests move a `FakeClock` forward instead of sleeping. Leases stay on the database's clock
(only workers compete for them, and they must agree with each other, not with a test)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for measuring how long something took."""
        ...

    def to_wall(self, when: datetime) -> datetime:
        """The wall-clock time at which this clock will read `when`: a timer outside our control (the queue's
        deferred jobs) is set by it."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def to_wall(self, when: datetime) -> datetime:
        return when


class FakeClock:
    """A clock a test moves. By default it runs at the wall clock's pace from where it was set, so code that waits
    a real moment (a retry's backoff) still sees time pass; `advance` and `set` jump it. `ticking=False` stops it,
    for tests of code that must see exactly the time they were given."""

    def __init__(self, at: datetime | None = None, *, ticking: bool = True) -> None:
        self._ticking = ticking
        self._started = time.monotonic()
        self._base = at.astimezone(UTC) if at is not None else datetime.now(UTC)
        self._skipped = 0.0  # seconds jumped by advance/set, for `monotonic`

    def _elapsed(self) -> float:
        return time.monotonic() - self._started if self._ticking else 0.0

    def now(self) -> datetime:
        return self._base + timedelta(seconds=self._elapsed())

    def monotonic(self) -> float:
        return self._started + self._elapsed() + self._skipped

    def advance(self, delta: timedelta | float) -> datetime:
        """Jump forward by `delta` (seconds or a timedelta); returns the new time."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("a clock only advances; use set() to go back")
        self._base += timedelta(seconds=seconds)
        self._skipped += seconds
        return self.now()

    def set(self, when: datetime) -> None:
        """Read `when` from now on (going on from there if ticking)."""
        self._base = when.astimezone(UTC) - timedelta(seconds=self._elapsed())

    def to_wall(self, when: datetime) -> datetime:
        # The gap between this clock and the wall clock stays fixed between jumps.
        return when - (self.now() - datetime.now(UTC))
