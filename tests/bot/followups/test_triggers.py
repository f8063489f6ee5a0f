"""The stored triggers as APScheduler runs them: their fire times, across DST changes and after a restart (the
job store pickles them)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.followups.parse import Recurring, parse_when
from bot.followups.triggers import build_trigger

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)  # a Saturday, 14:00 in Paris


def fire_times(spec: str, count: int, now: datetime = NOW) -> list[str]:
    parsed = parse_when(spec, PARIS, now)
    assert isinstance(parsed, Recurring)
    trigger = pickle.loads(pickle.dumps(build_trigger(parsed.trigger, now)))
    times: list[str] = []
    previous = None
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now if previous is None else previous)
        times.append(fire.astimezone(PARIS).strftime("%a %Y-%m-%d %H:%M"))
        previous = fire
    return times


def test_every_two_weeks_on_tuesday_keeps_its_hour_across_the_spring_change() -> None:
    march = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)  # a Wednesday; Paris moves to summer time on 28 March
    assert fire_times("every 2 weeks on Tuesday 09:00 retro", 4, march) == [
        "Tue 2027-03-16 09:00",
        "Tue 2027-03-30 09:00",
        "Tue 2027-04-13 09:00",
        "Tue 2027-04-27 09:00",
    ]


def test_every_month_on_the_first_and_on_the_last_day() -> None:
    assert fire_times("every month on the 1st invoices", 3) == [
        "Tue 2026-12-01 09:00",
        "Fri 2027-01-01 09:00",
        "Mon 2027-02-01 09:00",
    ]
    assert fire_times("every month on the last day 17:00 close", 3) == [
        "Mon 2026-11-30 17:00",
        "Thu 2026-12-31 17:00",
        "Sun 2027-01-31 17:00",
    ]


def test_every_three_days_and_the_weekly_cron_still_work() -> None:
    assert fire_times("every 3 days 8am water", 3) == [
        "Sun 2026-11-22 08:00",
        "Wed 2026-11-25 08:00",
        "Sat 2026-11-28 08:00",
    ]
    assert fire_times("every Monday 09:00 report", 2) == ["Mon 2026-11-23 09:00", "Mon 2026-11-30 09:00"]


def test_a_restarted_scheduler_resumes_a_step_trigger_in_phase() -> None:
    parsed = parse_when("every 2 weeks on Tuesday retro", PARIS, NOW)
    assert isinstance(parsed, Recurring)
    trigger = build_trigger(parsed.trigger)
    later = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)  # after the 24 Nov and 8 Dec ticks
    fire = trigger.get_next_fire_time(None, later)
    assert fire.astimezone(PARIS).strftime("%a %Y-%m-%d %H:%M") == "Tue 2026-12-22 09:00"
