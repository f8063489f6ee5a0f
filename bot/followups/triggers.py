"""APScheduler triggers from the JSON a schedule stores (see `bot.followups.parse.Recurring`)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger


class EveryNDays(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 ships no type information
    """Every `step` calendar days from `first`, at a wall-clock time in `tz`: "every 2 weeks on Tuesday 09:00" stays
    at 09:00 across a DST change, which an interval of 14 x 86,400 seconds would not (APScheduler 3 has no calendar
    interval; a cron `week='*/2'` breaks at the turn of a year with 53 ISO weeks)."""

    def __init__(self, step: int, first: date, at: time, tz: ZoneInfo) -> None:
        if step < 1:
            raise ValueError("step must be at least one day")
        self.step, self.first, self.at, self.tz = step, first, at, tz

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        # As CronTrigger does: the first fire time at or after `now`, or just after the previous one.
        earliest = now if previous_fire_time is None else min(now, previous_fire_time + timedelta(microseconds=1))
        if previous_fire_time is not None and earliest <= previous_fire_time:
            earliest = previous_fire_time + timedelta(microseconds=1)
        local = earliest.astimezone(self.tz)
        steps = max(0, -(-(local.date() - self.first).days // self.step))
        day = self.first + timedelta(days=steps * self.step)
        fire = datetime.combine(day, self.at, tzinfo=self.tz)
        if fire < earliest:
            fire = datetime.combine(day + timedelta(days=self.step), self.at, tzinfo=self.tz)
        return fire

    def __str__(self) -> str:
        return f"every {self.step} days from {self.first} at {self.at:%H:%M} ({self.tz.key})"

    def __repr__(self) -> str:
        return f"<EveryNDays ({self})>"


def build_trigger(spec: dict[str, Any], anchor: datetime | None = None) -> BaseTrigger:
    """`anchor` fixes an interval's phase (the schedule's creation), so re-adding the job keeps its ticks."""
    if spec["type"] == "interval":
        return IntervalTrigger(seconds=int(spec["seconds"]), start_date=anchor, timezone=spec.get("timezone", "UTC"))
    if spec["type"] == "cron":
        return CronTrigger(
            day=spec.get("day", "*"),
            day_of_week=spec.get("day_of_week", "*"),
            hour=spec["hour"],
            minute=spec["minute"],
            timezone=spec["timezone"],
        )
    if spec["type"] == "days":
        return EveryNDays(
            int(spec["every"]),
            date.fromisoformat(spec["start"]),
            time(int(spec["hour"]), int(spec["minute"])),
            ZoneInfo(spec["timezone"]),
        )
    raise ValueError(f"unknown trigger type {spec['type']!r}")
