"""APScheduler triggers from the JSON a schedule stores (see `bot.followups.parse.Recurring`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger


def build_trigger(spec: dict[str, Any], anchor: datetime | None = None) -> BaseTrigger:
    """`anchor` fixes an interval's phase (the schedule's creation), so re-adding the job keeps its ticks."""
    if spec["type"] == "interval":
        return IntervalTrigger(seconds=int(spec["seconds"]), start_date=anchor, timezone=spec.get("timezone", "UTC"))
    if spec["type"] == "cron":
        return CronTrigger(
            day_of_week=spec["day_of_week"], hour=spec["hour"], minute=spec["minute"], timezone=spec["timezone"]
        )
    raise ValueError(f"unknown trigger type {spec['type']!r}")
