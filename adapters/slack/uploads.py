"""Sharing a file into a Slack thread the way files_upload_v2 does (files.getUploadURLExternal, the bytes to its
URL, files.completeUploadExternal with channel_id and thread_ts), once per idempotency key.

Where the key is carried: a file share has no metadata, and a title or filename seen by people is no place for it.
So the comment goes as a section block whose block_id is `upload_marker(key)` (blocks instead of
`initial_comment`, which would make Slack ignore them): invisible, and returned by conversations.replies, where
`find_by_key` looks when recovering. Matching by name and title would take an earlier, legitimate upload of the
same transcript for this one. An upload without a comment has no block; the file id, noted in the outbox before
the share is asked for, then finds it (files.info), as it does for a share Slack is still completing (it shares
asynchronously, after its file scan).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import structlog

from adapters.slack.keys import upload_marker
from adapters.slack.mrkdwn import to_mrkdwn
from adapters.slack.webapi import SlackRefused, call, send_upload
from bot.errors import InvalidInput
from bot.events import PostedMessage, ThreadRef
from bot.ports import FileUpload, PostLedger
from bot.text import split_text

if TYPE_CHECKING:
    from adapters.slack.outbound import SlackOutbound

log = structlog.get_logger(__name__)

# A section block's text holds at most 3,000 characters.
SECTION_CHARS = 3000
# files.completeUploadExternal shares the file after Slack's scan, asynchronously: how long to wait for the share.
SHARE_WAIT_S = 10.0


async def share_file(
    out: SlackOutbound,
    thread: ThreadRef,
    upload: FileUpload,
    key: str,
    *,
    recovering: bool,
    ledger: PostLedger | None,
) -> PostedMessage:
    """Returns the ts of the message sharing the file (`existed=True` for an earlier attempt's share)."""
    if recovering:
        known = await _find_upload(out, thread, key, ledger)
        if known is not None:
            return PostedMessage(message_id=known, existed=True)
    if len(upload.comment) > out.max_message_chars:
        raise InvalidInput(f"A file's comment holds at most {out.max_message_chars} characters on Slack.")
    token = await out.token(thread)
    reserved = await call(
        "files.getUploadURLExternal",
        lambda: out.client.files_getUploadURLExternal(
            filename=upload.filename, length=len(upload.content), token=token
        ),
    )
    file_id, upload_url = str(reserved["file_id"]), str(reserved["upload_url"])
    if ledger is not None:
        await ledger.note(key, file_id)
    await send_upload(upload_url, upload.content, out.client.session)
    blocks = _comment_blocks(upload.comment, upload_marker(key))
    await call(
        "files.completeUploadExternal",
        lambda: out.client.files_completeUploadExternal(
            files=[{"id": file_id, "title": upload.title or upload.filename}],
            channel_id=thread.channel_id,
            thread_ts=thread.thread_key or None,
            blocks=json.dumps(blocks) if blocks else None,
            token=token,
        ),
        # Slack may have shared the file before the error: the step's retry looks for it (`recovering`).
        idempotent=False,
    )
    ts = await _share_ts(out, thread, file_id, wait_s=SHARE_WAIT_S)
    if ts is None:
        # Shared, but not yet listed: the file id stands in (it is what a replay returns; it cannot be edited).
        log.warning("slack file share not listed in time", file=file_id, channel=thread.channel_id)
        ts = file_id
    return PostedMessage(message_id=ts)


async def _find_upload(out: SlackOutbound, thread: ThreadRef, key: str, ledger: PostLedger | None) -> str | None:
    """An earlier attempt's share of the upload under `key`: by the file id it noted, then by the marker."""
    pending = await ledger.noted(key) if ledger is not None else None
    if pending is not None:
        ts = await _share_ts(out, thread, pending, wait_s=SHARE_WAIT_S)
        if ts is not None:
            return ts
    return await out.find_by_key(thread, key)


async def _share_ts(out: SlackOutbound, thread: ThreadRef, file_id: str, *, wait_s: float) -> str | None:
    """The ts of the message sharing `file_id` in the thread; None when Slack does not know the file (its upload
    was never completed) or has not listed the share within `wait_s`."""
    token = await out.token(thread)
    deadline = time.monotonic() + wait_s
    delay = 0.1
    while True:
        try:
            response = await call("files.info", lambda: out.client.files_info(file=file_id, token=token))
        except SlackRefused as exc:
            if exc.error == "file_not_found":
                return None
            raise
        ts = _share_in(response.get("file") or {}, thread)
        if ts is not None or time.monotonic() + delay > deadline:
            return ts
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _comment_blocks(comment: str, marker: str) -> list[dict[str, Any]]:
    text = to_mrkdwn(comment)
    if not text.strip():
        return []
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": part}} for part in split_text(text, SECTION_CHARS)
    ]
    blocks[0]["block_id"] = marker
    return blocks


def _share_in(file: dict[str, Any], thread: ThreadRef) -> str | None:
    """files.info lists a file's shares per channel under `public` or `private`, each with its message's ts and,
    in a thread, the thread's ts."""
    for scope in ("public", "private"):
        for share in ((file.get("shares") or {}).get(scope) or {}).get(thread.channel_id) or []:
            if (share.get("thread_ts") or "") == thread.thread_key:
                return str(share["ts"])
    return None
