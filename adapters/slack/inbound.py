"""Slack payloads -> `bot.events`. Pure functions: no I/O, so every rule here is checked without a server."""

from __future__ import annotations

import re

from adapters.slack import PLATFORM
from adapters.slack.types import MessageEvent, SlashCommandBody
from bot.events import FileRef, IncomingMessage, SlashCommand, ThreadRef
from bot.media.accept import shared_text

# Subtypes that are a person saying something; every other subtype (joins, topic changes, bot posts) is not.
USER_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})


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


def files_of(event: MessageEvent) -> tuple[FileRef, ...]:
    refs = []
    for file in event.get("files") or ():
        url = file.get("url_private_download") or file.get("url_private")
        if not url or file.get("mode") == "tombstone":
            continue  # a deleted file, or an external link with nothing to download
        refs.append(
            FileRef(
                file_id=str(file["id"]),
                name=str(file.get("name") or file.get("title") or file["id"]),
                mime_type=str(file.get("mimetype") or "application/octet-stream"),
                size=int(file.get("size") or 0),
                url=str(url),
            )
        )
    return tuple(refs)


def to_event(team_id: str, event: MessageEvent, bot_user_id: str) -> IncomingMessage:
    """The message as the core sees it. The event id is the message's channel and ts, not Slack's event_id: one
    message arrives as both `app_mention` and `message` (two event ids), and must still be one turn."""
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
