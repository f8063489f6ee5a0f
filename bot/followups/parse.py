"""Reading "when" from what a user typed: "in 2 hours check the deploy", "tomorrow 9am standup", "at 17:30 call
Bob", "on Friday 10:00 review", "Dec 25 9am call mum", "end of day send the report", "every Monday 09:00 weekly
report", "every 30 minutes stretch", "every 2 weeks on Tuesday retro", "every month on the 1st invoices". Our own
grammar reads "in …", "every …" and the short forms; any other date is handed to dateparser. Times are in the
user's time zone. What cannot be read gets an error that says what can."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.errors import InvalidInput

EXAMPLES = (
    '"in 2 hours …", "tomorrow 9am …", "at 17:30 …", "on Friday 10:00 …", "Dec 25 9am …", "end of day …" '
    'or "every Monday 09:00 …"'
)
REPEATS = (
    '"every day 9am …", "every weekday 09:00 …", "every Monday 09:00 …", "every 2 weeks on Tuesday …", '
    '"every month on the 1st …" or "every 2 hours …"'
)
# "end of day" and "end of week" (Friday) mean this time: the end of a working day.
END_OF_DAY = time(17, 0)
# Words that make the start of a reminder a date for dateparser; without one, "5 things to buy" would be the 5th.
_DATE_WORD = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b|\b(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\b"
    r"|\b\d{1,2}[/.]\d{1,2}(?:[/.]\d{2,4})?\b",
    re.IGNORECASE,
)
_MAX_DATE_WORDS = 6
MAX_AHEAD = timedelta(days=366)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY = (
    r"(?P<day>mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?|sat(?:urday)?"
    r"|sun(?:day)?)"
)
_TIME = r"(?P<time>noon|midnight|\d{1,2}(?::\d{2})?\s*(?:am|pm)|\d{1,2}:\d{2})"
# Seconds per unit, as people write them; chain files use the same words for their timeouts.
DURATION_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_AMOUNT = r"(?P<n>\d+|an?|half an?)\s*(?P<unit>" + "|".join(sorted(DURATION_UNITS, key=len, reverse=True)) + r")\b"
_SEP = r"(?:\s*(?:,|:|-|to|that|about)\s+|\s+)"


@dataclass(frozen=True, slots=True)
class OneOff:
    due: datetime  # aware, UTC
    text: str

    def describe(self, tz: ZoneInfo) -> str:
        return self.due.astimezone(tz).strftime("%a %d %b %Y at %H:%M %Z")


@dataclass(frozen=True, slots=True)
class Recurring:
    trigger: dict[str, Any]  # APScheduler trigger: {"type": "interval", "seconds": N} or {"type": "cron", ...}
    text: str
    description: str


def parse_when(
    spec: str, tz: ZoneInfo, now: datetime, *, min_repeat_s: float = 60, require_text: bool = True
) -> OneOff | Recurring:
    """Parse `spec` (what follows /remind). Raises `InvalidInput` saying what went wrong and what works."""
    spec = " ".join(spec.split())
    lowered = spec.lower()
    if not lowered:
        raise InvalidInput(f"Tell me when and what, e.g. {EXAMPLES}")
    local_now = now.astimezone(tz)
    if lowered.startswith("every "):
        return _recurring(spec, local_now, tz, min_repeat_s)
    for parse in (_relative, _tomorrow_today, _at_time, _on_weekday, _on_date, _end_of, _dateparser):
        found = parse(spec, local_now, tz)
        if found is not None:
            due, rest = found
            return _one_off(due, rest, now, require_text)
    raise InvalidInput(f'I couldn\'t tell when from "{_clip(spec)}". Start with {EXAMPLES}')


def _one_off(due: datetime, rest: str, now: datetime, require_text: bool) -> OneOff:
    text = _text(rest) if require_text or rest.strip() else ""
    if due <= now:
        raise InvalidInput("That time has already passed. Pick a time in the future.")
    if due - now > MAX_AHEAD:
        raise InvalidInput("I can schedule at most a year ahead.")
    return OneOff(due=due.astimezone(ZoneInfo("UTC")), text=text)


def _text(rest: str) -> str:
    text = re.sub(r"^(?:,|:|-|to|that|about)\s+", "", rest.strip(), flags=re.IGNORECASE).strip()
    if not text:
        raise InvalidInput('What should I remind you of? Put it after the time, e.g. "in 2 hours check the deploy".')
    return text


def _relative(spec: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, str] | None:
    match = re.match(r"in\s+" + _AMOUNT + r"(?P<rest>.*)$", spec, re.IGNORECASE)
    if match is None:
        if re.match(r"in\s+\S+", spec, re.IGNORECASE):
            raise InvalidInput(
                'I couldn\'t read that duration. Use a number and a unit, e.g. "in 10 minutes", "in 2 hours", '
                '"in 3 days".'
            )
        return None
    return now + timedelta(seconds=_amount(match["n"]) * DURATION_UNITS[match["unit"].lower()]), match["rest"]


def _amount(raw: str) -> float:
    raw = raw.lower()
    if raw.startswith("half"):
        return 0.5
    return 1.0 if raw in ("a", "an") else float(raw)


def _tomorrow_today(spec: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, str] | None:
    match = re.match(r"(?P<which>tomorrow|today|tonight)(?:\s+(?:at\s+)?" + _TIME + r")?(?P<rest>.*)$", spec, re.I)
    if match is None:
        return None
    which = match["which"].lower()
    default = time(20, 0) if which == "tonight" else time(9, 0)
    at = _clock(match["time"]) if match["time"] else default
    day = now.date() + timedelta(days=1 if which == "tomorrow" else 0)
    return _local(day, at, tz), match["rest"]


def _at_time(spec: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, str] | None:
    match = re.match(r"at\s+" + _TIME + r"(?P<rest>.*)$", spec, re.IGNORECASE)
    if match is None:
        return None
    at = _clock(match["time"])
    due = _local(now.date(), at, tz)
    if due <= now:  # "at 9am" said in the afternoon means tomorrow
        due = _local(now.date() + timedelta(days=1), at, tz)
    return due, match["rest"]


def _on_weekday(spec: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, str] | None:
    match = re.match(r"(?:on\s+|next\s+)?" + _DAY + r"(?:\s+(?:at\s+)?" + _TIME + r")?(?P<rest>(?:\s.*)?)$", spec, re.I)
    if match is None:
        return None
    weekday = _weekday(match["day"])
    at = _clock(match["time"]) if match["time"] else time(9, 0)
    days = (weekday - now.weekday()) % 7
    due = _local(now.date() + timedelta(days=days), at, tz)
    if due <= now:
        due = _local(now.date() + timedelta(days=days + 7), at, tz)
    return due, match["rest"]


def _on_date(spec: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, str] | None:
    match = re.match(r"(?:on\s+)?(?P<date>\d{4}-\d{2}-\d{2})(?:\s+(?:at\s+)?" + _TIME + r")?(?P<rest>.*)$", spec, re.I)
    if match is None:
        return None
    try:
        day = date.fromisoformat(match["date"])
    except ValueError:
        raise InvalidInput(f"{match['date']} is not a date I know. Use YYYY-MM-DD, e.g. 2026-12-01.") from None
    return _local(day, _clock(match["time"]) if match["time"] else time(9, 0), tz), match["rest"]


def _end_of(spec: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, str] | None:
    match = re.match(
        r"(?:by\s+)?(?:the\s+)?(?:end\s+of\s+(?:the\s+)?(?P<span>day|week)|(?P<short>eod|eow))\b(?P<rest>.*)$",
        spec,
        re.I,
    )
    if match is None:
        return None
    week = (match["span"] or match["short"]).lower() in ("week", "eow")
    day = now.date() + timedelta(days=(4 - now.weekday()) % 7 if week else 0)  # the week ends on Friday
    due = _local(day, END_OF_DAY, tz)
    if due <= now:  # said after it: the next one
        due = _local(day + timedelta(days=7 if week else 1), END_OF_DAY, tz)
    return due, match["rest"]


def _dateparser(spec: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, str] | None:
    """The longest start of `spec` (a few words) that dateparser reads as a date, the rest being the text."""
    words = re.sub(r"^(?:on|at|by)\s+", "", spec, flags=re.IGNORECASE).split(" ")
    if not _DATE_WORD.search(" ".join(words[:_MAX_DATE_WORDS])):
        return None
    from dateparser.date import DateDataParser  # a second's import: only when our own grammar did not read it

    parser = DateDataParser(
        languages=["en"],
        settings={
            "TIMEZONE": tz.key,
            "RETURN_AS_TIMEZONE_AWARE": True,
            "RELATIVE_BASE": now.replace(tzinfo=None),
            "PREFER_DATES_FROM": "future",
            "RETURN_TIME_AS_PERIOD": True,  # tells "Dec 25" (a day: 09:00, as elsewhere) from "Dec 25 9am"
        },
    )
    for count in range(min(len(words), _MAX_DATE_WORDS), 0, -1):
        head = " ".join(words[:count])
        if not _DATE_WORD.search(head):
            break
        found = parser.get_date_data(head)
        if found.date_obj is None or found.period not in ("day", "time"):
            continue
        due = found.date_obj.astimezone(tz)
        if found.period == "day":
            due = _local(due.date(), time(9, 0), tz)
        rest = " ".join(words[count:])
        return due, f" {rest}" if rest else ""
    return None


def _recurring(spec: str, now: datetime, tz: ZoneInfo, min_repeat_s: float) -> Recurring:
    body = spec[len("every ") :]
    for calendar in (_every_n_days_or_weeks, _monthly):
        found = calendar(body, now, tz)
        if found is not None:
            return found
    units = "|".join(DURATION_UNITS)
    interval = re.match(r"(?P<n>\d+)?\s*(?P<unit>" + units + r")\b(?P<rest>.*)$", body, re.IGNORECASE)
    if interval is not None and interval["unit"].lower() not in ("d", "day", "days", "w", "week", "weeks"):
        seconds = int(interval["n"] or 1) * DURATION_UNITS[interval["unit"].lower()]
        if seconds < min_repeat_s:
            raise InvalidInput(f"The shortest repeat I allow is every {_span(min_repeat_s)}.")
        text = _text(interval["rest"])
        return Recurring({"type": "interval", "seconds": seconds}, text, f"every {_span(seconds)}")
    daily = re.match(
        r"(?P<which>day|weekday|" + _DAY + r")(?:\s+(?:at\s+)?" + _TIME + r")?(?P<rest>(?:\s.*)?)$", body, re.IGNORECASE
    )
    if daily is None:
        raise InvalidInput(f'I couldn\'t read the repeat in "{_clip(spec)}". Try {REPEATS}.')
    at = _clock(daily["time"]) if daily["time"] else time(9, 0)
    which = daily["which"].lower()
    if which == "day":
        days, label = "*", "every day"
    elif which == "weekday":
        days, label = "mon-fri", "every weekday"
    else:
        name = WEEKDAYS[_weekday(which)]
        days, label = name[:3], f"every {name.capitalize()}"
    trigger = {"type": "cron", "day_of_week": days, "hour": at.hour, "minute": at.minute, "timezone": tz.key}
    return Recurring(trigger, _text(daily["rest"]), f"{label} at {at:%H:%M} ({tz.key})")


def _every_n_days_or_weeks(body: str, now: datetime, tz: ZoneInfo) -> Recurring | None:
    """ "every 3 days 8am …", "every week on Tuesday …", "every 2 weeks on Tuesday at 10:00 …": a step in days on
    the calendar from the first one, at a wall-clock time (an interval in seconds would move an hour at DST)."""
    match = re.match(
        r"(?P<n>\d+\s+)?(?P<unit>days?|weeks?)(?:\s+on)?(?:\s+" + _DAY + r")?(?:\s+(?:at\s+)?" + _TIME + r")?"
        r"(?P<rest>(?:\s.*)?)$",
        body,
        re.IGNORECASE,
    )
    if match is None or (match["n"] is None and match["unit"].lower().startswith("day")):
        return None  # "every day" is a daily cron, read below
    count = int(match["n"] or 1)
    weeks = match["unit"].lower().startswith("week")
    if count < 1:
        raise InvalidInput("Repeat at least every day.")
    at = _clock(match["time"]) if match["time"] else time(9, 0)
    first = now.date()
    if weeks and match["day"]:
        first += timedelta(days=(_weekday(match["day"]) - now.weekday()) % 7)
    if _local(first, at, tz) <= now:
        first += timedelta(days=7 if weeks else 1)
    text = _text(match["rest"])
    step = count * 7 if weeks else count
    if weeks and count == 1:
        name = WEEKDAYS[first.weekday()]
        trigger = {"type": "cron", "day_of_week": name[:3], "hour": at.hour, "minute": at.minute, "timezone": tz.key}
        return Recurring(trigger, text, f"every {name.capitalize()} at {at:%H:%M} ({tz.key})")
    trigger = {
        "type": "days", "every": step, "start": first.isoformat(), "hour": at.hour, "minute": at.minute,
        "timezone": tz.key,
    }  # fmt: skip
    label = f"every {count} weeks on {WEEKDAYS[first.weekday()].capitalize()}" if weeks else f"every {count} days"
    return Recurring(trigger, text, f"{label} at {at:%H:%M} ({tz.key}), from {first:%a %d %b}")


_MONTH_DAY = r"(?:(?P<day>\d{1,2})(?:st|nd|rd|th)?|(?P<last>last)(?:\s+day)?)"
_AT_REST = r"(?:\s+(?:at\s+)?" + _TIME + r")?(?P<rest>(?:\s.*)?)$"
_MONTHLY = (
    re.compile(r"month\s+on\s+the\s+" + _MONTH_DAY + _AT_REST, re.IGNORECASE),
    re.compile(r"(?:the\s+)?" + _MONTH_DAY + r"\s+of\s+(?:the|each|every)\s+month" + _AT_REST, re.IGNORECASE),
)


def _monthly(body: str, now: datetime, tz: ZoneInfo) -> Recurring | None:
    """ "every month on the 1st …", "every month on the last day at 17:00 …", "every 15th of the month …"."""
    match = next((m for m in (pattern.match(body) for pattern in _MONTHLY) if m is not None), None)
    if match is None:
        if re.match(r"\d*\s*months?\b", body, re.IGNORECASE):
            raise InvalidInput(
                'Say which day of the month, e.g. "every month on the 1st 9am …" or "… on the last day".'
            )
        return None
    at = _clock(match["time"]) if match["time"] else time(9, 0)
    raw = match["day"]
    if raw is not None and not 1 <= int(raw) <= 31:
        raise InvalidInput(f"A month has no day {raw}: use 1 to 31, or the last day.")
    label = "the last day" if raw is None else f"the {_ordinal(int(raw))}"
    note = " (months without that day are skipped)" if raw is not None and int(raw) > 28 else ""
    trigger = {"type": "cron", "day": raw or "last", "hour": at.hour, "minute": at.minute, "timezone": tz.key}
    return Recurring(trigger, _text(match["rest"]), f"every month on {label} at {at:%H:%M} ({tz.key}){note}")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _clock(raw: str) -> time:
    raw = raw.lower().replace(" ", "")
    if raw == "noon":
        return time(12, 0)
    if raw == "midnight":
        return time(0, 0)
    match = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?(am|pm)?", raw)
    if match is None:
        raise InvalidInput(f'"{raw}" is not a time I can read. Use 9am, 9:30pm or 21:30.')
    hour, minute, half = int(match[1]), int(match[2] or 0), match[3]
    if half:
        if not 1 <= hour <= 12:
            raise InvalidInput(f'"{raw}" is not a time: with am/pm the hour is 1 to 12.')
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        raise InvalidInput(f'"{raw}" is not a time: hours go to 23 and minutes to 59.')
    return time(hour, minute)


def _weekday(raw: str) -> int:
    raw = raw.lower()
    return next(i for i, name in enumerate(WEEKDAYS) if name.startswith(raw[:3]))


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz)


def _span(seconds: float) -> str:
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}" if count != 1 else unit
    count = int(seconds)
    return f"{count} seconds" if count != 1 else "second"


def _clip(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "…"


def describe_duration(after: timedelta) -> str:
    """A wait as people say it: '2 hours', '1 day', '45 seconds'."""
    seconds = round(after.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
