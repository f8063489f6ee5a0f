"""Discord's REST payloads this adapter writes and reads, as TypedDicts. The gateway's side arrives as discord.py
objects (`discord.Message`, `discord.Interaction`), which are typed already."""

from __future__ import annotations

from typing import TypedDict


class MessageReference(TypedDict, total=False):
    message_id: str
    fail_if_not_exists: bool


class AttachmentSlot(TypedDict):
    id: int  # matches the multipart part `files[id]`
    filename: str


class MessageSend(TypedDict, total=False):
    """POST /channels/{id}/messages: `nonce` with `enforce_nonce` makes a retried send return the first message."""

    content: str
    nonce: str
    enforce_nonce: bool
    allowed_mentions: dict[str, list[str]]
    attachments: list[AttachmentSlot]
    message_reference: MessageReference


class MessageObject(TypedDict, total=False):
    """The message Discord answers with (only what we read)."""

    id: str
    channel_id: str
    content: str
    nonce: str
