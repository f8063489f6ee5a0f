"""Slack payloads -> bot.events."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack.inbound import (
    MalformedPayload,
    check_message,
    clean_text,
    files_of,
    is_own,
    thread_for,
    to_command,
    to_event,
)
from adapters.slack.types import MessageEvent, SlackFile, SlashCommandBody
from bot.events import ThreadRef


def test_a_top_level_message_starts_a_thread_at_its_ts_and_a_reply_continues_its_thread() -> None:
    top: MessageEvent = {"channel": "C1", "ts": "1.1"}
    reply: MessageEvent = {"channel": "C1", "ts": "1.5", "thread_ts": "1.1"}
    assert thread_for("T1", top) == ThreadRef("slack", "T1", "C1", "1.1")
    assert thread_for("T1", reply) == thread_for("T1", top)


def test_the_mention_and_slack_escapes_are_removed() -> None:
    assert clean_text("<@UBOT> is 1 &lt; 2 &amp;&amp; <@UADA> here?", "UBOT") == "is 1 < 2 && <@UADA> here?"


def test_one_message_is_one_event_whether_it_came_as_app_mention_or_message() -> None:
    event: MessageEvent = {"type": "app_mention", "channel": "C1", "ts": "1.1", "user": "U1", "text": "<@UBOT> hi"}
    as_mention = to_event("T1", event, "UBOT")
    as_message = to_event("T1", {**event, "type": "message"}, "UBOT")
    assert as_mention == as_message
    assert as_mention.event_id == "C1:1.1"
    assert (as_mention.text, as_mention.platform_message_id) == ("hi", "1.1")


def test_files_take_the_private_download_url_and_skip_deleted_ones() -> None:
    files: list[SlackFile] = [
        {"id": "F1", "name": "a.mp3", "mimetype": "audio/mpeg", "size": 10, "url_private_download": "https://x/a"},
        {"id": "F2", "mode": "tombstone"},
    ]
    [ref] = files_of({"files": files})
    assert (ref.file_id, ref.name, ref.mime_type, ref.size, ref.url) == ("F1", "a.mp3", "audio/mpeg", 10, "https://x/a")


def test_own_messages_are_recognised_by_bot_id_or_user() -> None:
    assert is_own({"bot_id": "B1"}, "UBOT", "B1")
    assert is_own({"user": "UBOT"}, "UBOT", "B1")
    assert not is_own({"user": "U1", "bot_id": "B2"}, "UBOT", "B1")


def test_a_slash_command_is_keyed_by_its_trigger() -> None:
    body: SlashCommandBody = {"user_id": "U1", "command": "/ask", "text": "why?", "trigger_id": "13.42"}
    command = to_command(body, ThreadRef("slack", "T1", "C1", "9.9"))
    assert (command.event_id, command.command, command.text) == ("command:13.42", "/ask", "why?")


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"ts": "1.1"}, "no event.channel"),
        ({"channel": "C1", "ts": 1.1}, "event.ts is not a string"),
        ({"channel": "C1", "ts": "1.1", "thread_ts": "1" * 65}, "event.thread_ts is 65 characters long (at most 64)"),
        ({"channel": "C1", "ts": "1.1", "files": "F1"}, "event.files is not a list"),
        ({"channel": "C1", "ts": "1.1", "files": [{"url_private": "https://x/a"}]}, "no event.files[0].id"),
        ({"channel": "C1", "ts": "1.1", "message": "gone"}, "event.message is not an object"),
    ],
)
def test_a_malformed_event_is_refused_with_a_reason_that_names_the_field(event: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedPayload) as refused:
        check_message(event)
    assert str(refused.value) == reason


def test_a_file_size_is_a_whole_number_and_a_deleted_file_needs_nothing_else() -> None:
    url = {"url_private": "https://x/a"}
    [ref] = files_of({"files": [{"id": "F1", "size": "12", **url}, {"mode": "tombstone"}]})
    assert ref.size == 12
    for size in ("twelve", -1, True, 1.5):
        with pytest.raises(MalformedPayload, match=r"event\.files\[0\]\.size is not a whole number"):
            files_of({"files": [{"id": "F1", "size": size, **url}]})
