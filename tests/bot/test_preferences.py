from __future__ import annotations

import pytest

from bot.errors import InvalidInput
from bot.preferences import describe_preferences, parse_assignments, set_preferences
from bot.runtime import Runtime


def test_parse_maps_short_names_and_quotes() -> None:
    assert parse_assignments("name=Ada tz=America/New_York lang=en note='be brief, please'") == {
        "display_name": "Ada", "timezone": "America/New_York", "language": "en", "instructions": "be brief, please",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "says"),
    [("", "Usage"), ("colour=blue", "I don't know the preference 'colour'"), ("tz=Nowhere/Land", "isn't a time zone"),
     ("note='unclosed", "couldn't read that"), ("name=" + "x" * 65, "limited to 64 characters")],
)  # fmt: skip
def test_parse_errors_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_assignments(text)
    assert says in refused.value.user_message


async def test_set_twice_updates_only_what_was_given(runtime: Runtime) -> None:
    await set_preferences(runtime, "console", "local", "ada", {"display_name": "Ada", "timezone": "Europe/Paris"})
    await set_preferences(runtime, "console", "local", "ada", {"language": "French"})
    described = await describe_preferences(runtime, "console", "local", "ada")
    assert described.startswith("name: Ada; time zone: Europe/Paris; language: French")
    assert (await describe_preferences(runtime, "console", "local", "bob")).startswith("No preferences yet")


def test_an_email_preference_is_checked_and_its_domain_lowered() -> None:
    assert parse_assignments("email=Ada@Example.COM") == {"email": "Ada@example.com"}
    assert parse_assignments("email=") == {"email": ""}  # clears it
    with pytest.raises(InvalidInput) as refused:
        parse_assignments("email=ada@localhost")
    assert refused.value.user_message == "'ada@localhost' isn't an email address; write it like ada@example.com."


async def test_the_email_is_shown_with_the_rest(runtime: Runtime) -> None:
    await set_preferences(runtime, "console", "local", "ada", {"email": "ada@example.com"})
    assert (await describe_preferences(runtime, "console", "local", "ada")).endswith("; email: ada@example.com")
