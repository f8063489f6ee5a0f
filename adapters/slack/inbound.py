"""Slack payloads -> `bot.events`. Pure functions: no I/O, so every rule here is checked without a server."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adapters.slack import PLATFORM
from adapters.slack.types import MessageEvent, SlashCommandBody
from bot.events import FileRef, IncomingMessage, SlashCommand, ThreadRef
from bot.media.accept import shared_text

# Subtypes that are a person saying something; every other subtype (joins, topic changes, bot posts) is not.
USER_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
# Slack's ids and timestamps are under 30 characters. A longer one is not Slack's, and would overflow a column
# (128) or the dedupe key (300, three of them joined) and fail on Postgres, which Slack would be told to retry.
MAX_ID_LENGTH = 64


class MalformedPayload(ValueError):
    """A signed payload without the shape this adapter reads: a field missing, of the wrong type or too long. Slack's
    redeliveries would be the same, so it is acked and dropped with a warning; `str()` is a short reason that names
    the field, never its value."""


def _id(payload: Mapping[str, Any], field: str, *, where: str = "", required: bool = True) -> str:
    value = payload.get(field)
    name = f"{where}{field}"
    if value is None or value == "":
        if required:
            raise MalformedPayload(f"no {name}")
        return ""
    if not isinstance(value, str):
        raise MalformedPayload(f"{name} is not a string")
    if len(value) > MAX_ID_LENGTH:
        raise MalformedPayload(f"{name} is {len(value)} characters long (at most {MAX_ID_LENGTH})")
    return value


def _optional_text(payload: Mapping[str, Any], field: str, where: str) -> None:
    if payload.get(field) is not None and not isinstance(payload.get(field), str):
        raise MalformedPayload(f"{where}{field} is not a string")


def check_message(event: Mapping[str, Any]) -> None:
    """Raise `MalformedPayload` unless a `message` or `app_mention` event has every field the listeners read, of the
    type they read it as (an edit's `message` and a message's `files` included)."""
    _id(event, "channel", where="event.")
    _id(event, "ts", where="event.")
    for field in ("thread_ts", "user", "bot_id", "deleted_ts"):
        _id(event, field, where="event.", required=False)
    for field in ("subtype", "channel_type", "text"):
        _optional_text(event, field, "event.")
    files_of(event)
    edited = event.get("message")
    if edited is not None:
        if not isinstance(edited, Mapping):
            raise MalformedPayload("event.message is not an object")
        for field in ("ts", "user", "bot_id"):
            _id(edited, field, where="event.message.", required=False)
        _optional_text(edited, "text", "event.message.")


def team_of(body: Mapping[str, Any]) -> str:
    """The workspace an event or command came from ("" if Slack did not say)."""
    if body.get("team_id"):
        return _id(body, "team_id")
    event = body.get("event")
    return _id(event, "team", where="event.", required=False) if isinstance(event, Mapping) else ""


def check_command(body: Mapping[str, Any]) -> None:
    """Raise `MalformedPayload` unless a slash command says who ran which command where."""
    for field in ("command", "channel_id", "user_id"):
        _id(body, field)
    _id(body, "team_id", required=False)
    _id(body, "trigger_id", required=False)
    _optional_text(body, "text", "")


def assistant_thread_of(event: Mapping[str, Any]) -> tuple[str, str]:
    """The channel and thread_ts of an `assistant_thread_started` event."""
    thread = event.get("assistant_thread")
    if not isinstance(thread, Mapping):
        raise MalformedPayload("no event.assistant_thread")
    where = "event.assistant_thread."
    return _id(thread, "channel_id", where=where), _id(thread, "thread_ts", where=where)


def thread_for(team_id: str, event: MessageEvent) -> ThreadRef:
    """A message starts a thread at its own ts, or continues the thread it was posted in."""
    return ThreadRef(
        platform=PLATFORM,
        workspace_id=team_id,
        channel_id=str(event["channel"]),
        thread_key=str(event.get("thread_ts") or event["ts"]),
    )


def mention_of(bot_user_id: str) -> str:
    return f"<@{bot_user_id}>"


def mentions_bot(event: MessageEvent, bot_user_id: str) -> bool:
    return bool(bot_user_id) and mention_of(bot_user_id) in str(event.get("text") or "")


def is_dm(event: MessageEvent) -> bool:
    return event.get("channel_type") == "im"


def is_thread_reply(event: MessageEvent) -> bool:
    return bool(event.get("thread_ts")) and event.get("thread_ts") != event.get("ts")


def is_from_bot(event: MessageEvent) -> bool:
    return bool(event.get("bot_id")) or event.get("subtype") == "bot_message"


def is_own(event: MessageEvent, bot_user_id: str, bot_id: str) -> bool:
    return (bool(bot_id) and event.get("bot_id") == bot_id) or (bool(bot_user_id) and event.get("user") == bot_user_id)


def unescape(text: str) -> str:
    """Slack escapes &, < and > in message text; the model should read them plainly."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def clean_text(text: str, bot_user_id: str) -> str:
    if bot_user_id:
        text = re.sub(rf"\s*{re.escape(mention_of(bot_user_id))}\s*", " ", text)
    return unescape(text).strip()


def files_of(event: Mapping[str, Any]) -> tuple[FileRef, ...]:
    """The files to download; `MalformedPayload` if `files` is not a list of files with an id, a url and a size."""
    files = event.get("files") or []
    if not isinstance(files, list):
        raise MalformedPayload("event.files is not a list")
    refs = []
    for i, file in enumerate(files):
        where = f"event.files[{i}]."
        if not isinstance(file, Mapping):
            raise MalformedPayload(f"event.files[{i}] is not an object")
        url = file.get("url_private_download") or file.get("url_private")
        if not url or file.get("mode") == "tombstone":
            continue  # a deleted file, or an external link with nothing to download
        if not isinstance(url, str):
            raise MalformedPayload(f"{where}url_private is not a string")
        file_id = _id(file, "id", where=where)
        for field in ("name", "title", "mimetype"):
            _optional_text(file, field, where)
        refs.append(
            FileRef(
                file_id=file_id,
                name=str(file.get("name") or file.get("title") or file_id),
                mime_type=str(file.get("mimetype") or "application/octet-stream"),
                size=_size(file.get("size"), where),
                url=url,
            )
        )
    return tuple(refs)


def _size(value: object, where: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    # Slack sends a number; a string of digits is read as one, anything else is not a size.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        return int(value)
    raise MalformedPayload(f"{where}size is not a whole number of bytes")


def to_event(team_id: str, event: MessageEvent, bot_user_id: str) -> IncomingMessage:
    """The message as the core sees it. The event id is the message's channel and ts, not Slack's event_id: one
    message arrives as both `app_mention` and `message` (two event ids), and must still be one turn. Raises
    `MalformedPayload` for an event `check_message` refuses."""
    check_message(event)
    files = files_of(event)
    text = clean_text(str(event.get("text") or ""), bot_user_id)
    if not text and files:
        # Intake refuses empty messages; a file on its own is a request about that file.
        text = shared_text(files)
    return IncomingMessage(
        event_id=f"{event['channel']}:{event['ts']}",
        thread=thread_for(team_id, event),
        user_id=str(event.get("user") or event.get("bot_id") or ""),
        text=text,
        platform_message_id=str(event["ts"]),
        files=files,
    )


def to_command(body: SlashCommandBody, thread: ThreadRef) -> SlashCommand:
    # trigger_id is unique per invocation; Slack never redelivers a slash command, so it is a sound event id.
    return SlashCommand(
        event_id=f"command:{body.get('trigger_id') or body.get('command_ts') or ''}",
        thread=thread,
        user_id=str(body["user_id"]),
        command=str(body["command"]),
        text=str(body.get("text") or ""),
    )
