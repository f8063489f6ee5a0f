"""Reading reminder times the way users type them, in their own time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.errors import InvalidInput
from bot.followups.parse import OneOff, Recurring, describe_duration, parse_when

PARIS = ZoneInfo("Europe/Paris")
# Saturday 21 November 2026, 14:00 in Paris (13:00 UTC).
NOW = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)


def one_off(spec: str, tz: ZoneInfo = PARIS) -> OneOff:
    parsed = parse_when(spec, tz, NOW)
    assert isinstance(parsed, OneOff)
    return parsed


@pytest.mark.parametrize(
    ("spec", "due_local", "text"),
    [
        ("in 2 hours check the deploy", "2026-11-21 16:00", "check the deploy"),
        ("in 2 seconds ping", "2026-11-21 14:00:02", "ping"),
        ("in 10 min: stretch", "2026-11-21 14:10", "stretch"),
        ("in an hour call Bob", "2026-11-21 15:00", "call Bob"),
        ("in half an hour tea", "2026-11-21 14:30", "tea"),
        ("in 3 days to renew the cert", "2026-11-24 14:00", "renew the cert"),
        ("tomorrow 9am standup", "2026-11-22 09:00", "standup"),
        ("tomorrow at 9:30pm call mum", "2026-11-22 21:30", "call mum"),
        ("tomorrow water the plants", "2026-11-22 09:00", "water the plants"),
        ("at 17:30 leave", "2026-11-21 17:30", "leave"),
        ("at 9am coffee", "2026-11-22 09:00", "coffee"),  # 9am has passed today: tomorrow
        ("on Friday 10:00 review", "2026-11-27 10:00", "review"),
        ("monday noon lunch", "2026-11-23 12:00", "lunch"),
        ("on 2026-12-01 09:00 renew", "2026-12-01 09:00", "renew"),
        ("tonight bins", "2026-11-21 20:00", "bins"),
        # dates our own grammar leaves to dateparser
        ("Dec 25 9am call mum", "2026-12-25 09:00", "call mum"),
        ("Dec 25 buy gifts", "2026-12-25 09:00", "buy gifts"),  # a day without a time: 09:00, as elsewhere
        ("on December 25th at 9:30pm lights", "2026-12-25 21:30", "lights"),
        ("25 December 18:00 dinner", "2026-12-25 18:00", "dinner"),
        ("Jan 3 renew the domain", "2027-01-03 09:00", "renew the domain"),  # January has passed: next year's
        ("next Friday 3pm demo", "2026-11-27 15:00", "demo"),
        ("end of day send the report", "2026-11-21 17:00", "send the report"),
        ("by end of the day: invoices", "2026-11-21 17:00", "invoices"),
        ("eod ship it", "2026-11-21 17:00", "ship it"),
        ("end of week retro notes", "2026-11-27 17:00", "retro notes"),
    ],
)
def test_one_off_times_in_the_users_zone(spec: str, due_local: str, text: str) -> None:
    parsed = one_off(spec)
    fmt = "%Y-%m-%d %H:%M:%S" if due_local.count(":") == 2 else "%Y-%m-%d %H:%M"
    assert parsed.due.astimezone(PARIS).strftime(fmt) == due_local
    assert parsed.due.tzinfo == ZoneInfo("UTC")
    assert parsed.text == text


def test_same_words_in_another_zone_mean_another_instant() -> None:
    paris = one_off("tomorrow 9am standup").due
    tokyo = one_off("tomorrow 9am standup", ZoneInfo("Asia/Tokyo")).due
    assert (paris - tokyo).total_seconds() == 8 * 3600


@pytest.mark.parametrize(
    ("spec", "trigger", "description"),
    [
        (
            "every Monday 09:00 weekly report",
            {"type": "cron", "day_of_week": "mon", "hour": 9, "minute": 0, "timezone": "Europe/Paris"},
            "every Monday at 09:00 (Europe/Paris)",
        ),
        (
            "every weekday 8:30am standup",
            {"type": "cron", "day_of_week": "mon-fri", "hour": 8, "minute": 30, "timezone": "Europe/Paris"},
            "every weekday at 08:30 (Europe/Paris)",
        ),
        ("every day water plants", {"type": "cron", "day_of_week": "*", "hour": 9, "minute": 0,
                                    "timezone": "Europe/Paris"}, "every day at 09:00 (Europe/Paris)"),
        ("every 2 hours stretch", {"type": "interval", "seconds": 7200}, "every 2 hours"),
        ("every hour drink water", {"type": "interval", "seconds": 3600}, "every hour"),
        ("every month on the 1st send invoices", {"type": "cron", "day": "1", "hour": 9, "minute": 0,
         "timezone": "Europe/Paris"}, "every month on the 1st at 09:00 (Europe/Paris)"),
        ("every month on the last day at 17:00 close the books", {"type": "cron", "day": "last", "hour": 17,
         "minute": 0, "timezone": "Europe/Paris"}, "every month on the last day at 17:00 (Europe/Paris)"),
        ("every 15th of the month 8am pay rent", {"type": "cron", "day": "15", "hour": 8, "minute": 0,
         "timezone": "Europe/Paris"}, "every month on the 15th at 08:00 (Europe/Paris)"),
        ("every 31st of the month x", {"type": "cron", "day": "31", "hour": 9, "minute": 0,
         "timezone": "Europe/Paris"}, "every month on the 31st at 09:00 (Europe/Paris) (months without that day "
         "are skipped)"),
        ("every 2 weeks on Tuesday retro", {"type": "days", "every": 14, "start": "2026-11-24", "hour": 9,
         "minute": 0, "timezone": "Europe/Paris"}, "every 2 weeks on Tuesday at 09:00 (Europe/Paris), from Tue 24 Nov"),
        ("every 2 weeks on Saturday at 15:00 x", {"type": "days", "every": 14, "start": "2026-11-21", "hour": 15,
         "minute": 0, "timezone": "Europe/Paris"}, "every 2 weeks on Saturday at 15:00 (Europe/Paris), from Sat 21 "
         "Nov"),  # today, still to come
        ("every week on Tuesday 10am sync", {"type": "cron", "day_of_week": "tue", "hour": 10, "minute": 0,
         "timezone": "Europe/Paris"}, "every Tuesday at 10:00 (Europe/Paris)"),
        ("every 3 days 8am water the plants", {"type": "days", "every": 3, "start": "2026-11-22", "hour": 8,
         "minute": 0, "timezone": "Europe/Paris"}, "every 3 days at 08:00 (Europe/Paris), from Sun 22 Nov"),
    ],
)  # fmt: skip
def test_recurring_specs(spec: str, trigger: dict[str, object], description: str) -> None:
    parsed = parse_when(spec, PARIS, NOW)
    assert isinstance(parsed, Recurring)
    assert parsed.trigger == trigger
    assert parsed.description == description


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "Tell me when and what"),
        ("next blue moon do things", 'I couldn\'t tell when from "next blue moon do things"'),
        ("in soon tea", "I couldn't read that duration"),
        ("in 2 hours", "What should I remind you of?"),
        ("at 25:00 nap", "hours go to 23"),
        ("at 13pm nap", "with am/pm the hour is 1 to 12"),
        ("on 2026-02-30 09:00 x", "2026-02-30 is not a date I know"),
        ("on 2020-01-01 09:00 x", "already passed"),
        ("in 400 days x", "at most a year ahead"),
        ("every 10 seconds spam", "The shortest repeat I allow is every minute."),
        ("every fortnight x", "I couldn't read the repeat"),
        ("5 things to buy", "I couldn't tell when"),  # a number alone is not a date
        ("check the deploy Dec 25", "I couldn't tell when"),  # the time comes first
        ("Dec 25 9am", "What should I remind you of?"),
        ("Feb 30 9am x", "I couldn't tell when"),
        ("every month pay the bills", "Say which day of the month"),
        ("every month on the 32nd x", "A month has no day 32"),
    ],
)
def test_unreadable_specs_say_what_works(spec: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_when(spec, PARIS, NOW)
    assert message in caught.value.user_message


@pytest.mark.parametrize(
    ("after", "said"),
    [
        (timedelta(seconds=1), "1 second"),
        (timedelta(seconds=45), "45 seconds"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(hours=2), "2 hours"),
        (timedelta(days=1), "1 day"),
    ],
)
def test_waits_are_described_as_people_say_them(after: timedelta, said: str) -> None:
    assert describe_duration(after) == said


def test_dates_handed_to_dateparser_are_read_in_the_users_zone() -> None:
    paris = one_off("Dec 25 9am call mum").due
    new_york = one_off("Dec 25 9am call mum", ZoneInfo("America/New_York")).due
    assert paris == datetime(2026, 12, 25, 8, 0, tzinfo=UTC)
    assert (new_york - paris).total_seconds() == 6 * 3600


def test_end_of_day_said_after_it_means_the_next_one() -> None:
    evening = datetime(2026, 11, 20, 18, 30, tzinfo=UTC)  # a Friday, 19:30 in Paris
    day = parse_when("end of day wrap up", PARIS, evening)
    week = parse_when("end of week wrap up", PARIS, evening)
    assert isinstance(day, OneOff)
    assert isinstance(week, OneOff)
    assert day.due.astimezone(PARIS).strftime("%a %H:%M") == "Sat 17:00"
    assert week.due.astimezone(PARIS).strftime("%Y-%m-%d %H:%M") == "2026-11-27 17:00"
