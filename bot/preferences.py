"""User preferences: what a user told the bot about themselves (name, time zone, language, standing instructions)."""

from __future__ import annotations

import shlex
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import InvalidInput
from bot.mail.addresses import is_address, normalise
from bot.runtime import Runtime
from bot.stores.preferences import load_emails, load_preferences, save_preferences

FIELDS = {
    "name": "display_name",
    "tz": "timezone",
    "timezone": "timezone",
    "lang": "language",
    "language": "language",
    "note": "instructions",
    "instructions": "instructions",
    "email": "email",
}
USAGE = (
    "Usage: prefs set name=Ada tz=Europe/Paris lang=French note='Keep answers short' email=ada@example.com "
    "(any of them)."
)


def parse_assignments(text: str) -> dict[str, str]:
    """`name=Ada tz=Europe/Paris note='short answers'` -> column values, validated, with errors that say why."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InvalidInput(f"I couldn't read that: {exc}. {USAGE}") from None
    values: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key.lower() not in FIELDS:
            raise InvalidInput(f"I don't know the preference {key!r}. {USAGE}")
        column = FIELDS[key.lower()]
        if column == "timezone":
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise InvalidInput(f"{value!r} isn't a time zone I know; use a name like Europe/Paris.") from None
        if column == "email":
            value = normalise(value)
            if value and not is_address(value):
                raise InvalidInput(f"{value!r} isn't an email address; write it like ada@example.com.")
        limit = {"instructions": 2000, "email": 254}.get(column, 64)
        if len(value) > limit:
            raise InvalidInput(f"The {key} preference is limited to {limit} characters.")
        values[column] = value
    if not values:
        raise InvalidInput(USAGE)
    return values


async def set_preferences(runtime: Runtime, platform: str, workspace: str, user: str, values: dict[str, str]) -> None:
    await save_preferences(runtime, platform, workspace, user, values)


async def describe_preferences(runtime: Runtime, platform: str, workspace: str, user: str) -> str:
    async with runtime.autocommit.connect() as conn:
        prefs = await load_preferences(conn, platform, workspace, user)
        emails = await load_emails(conn, platform, workspace, [user])
    if prefs is None:
        return f"No preferences yet. {USAGE}"
    return (
        f"name: {prefs.display_name or '-'}; time zone: {prefs.timezone}; language: {prefs.language or 'any'}; "
        f"note: {prefs.instructions or '-'}; email: {emails.get(user) or '-'}"
    )
