"""Slack's payloads as this adapter reads them (Events API and slash commands), as TypedDicts: only the fields we
use, all optional since Slack omits what does not apply (`thread_ts` outside threads, `files` without files)."""

from __future__ import annotations

from typing import TypedDict


class SlackFile(TypedDict, total=False):
    id: str
    name: str
    title: str
    mimetype: str
    size: int
    mode: str  # "tombstone" for a deleted file
    url_private: str
    url_private_download: str


class MessageEvent(TypedDict, total=False):
    """`message` and `app_mention` events (`event` in an event callback)."""

    type: str
    subtype: str
    channel: str
    channel_type: str  # "im" for a DM
    user: str
    bot_id: str
    text: str
    ts: str
    thread_ts: str
    files: list[SlackFile]
    # `message_changed`: the message as it is now.
    message: MessageEvent


class EventCallback(TypedDict, total=False):
    type: str  # "event_callback", "url_verification"
    team_id: str
    event_id: str
    event: MessageEvent


class SlashCommandBody(TypedDict, total=False):
    """A slash command's form fields."""

    command: str
    text: str
    user_id: str
    channel_id: str
    team_id: str
    trigger_id: str
    command_ts: str
