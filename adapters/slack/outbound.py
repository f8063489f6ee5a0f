"""The Slack side of the `ChatPlatform` port: posts, edits, native streaming replies, status, file uploads.

Idempotency: every post records its key -> ts in Redis (checked first, so a retried step edits instead of posting
again) and carries the key in Slack message metadata, where `recovering=True` looks it up when Redis has no
record (a crash between Slack's answer and the record). Uploads cannot carry metadata; see `upload_file`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import PLATFORM
from adapters.slack.mrkdwn import to_mrkdwn
from adapters.slack.webapi import SlackRefused, TokenSource, call, send_upload
from bot.errors import ConfigurationError, InvalidInput, UpstreamError
from bot.events import PostedMessage, ThreadRef
from bot.ports import ReplySink
from bot.streaming import split_text

log = structlog.get_logger(__name__)

METADATA_EVENT = "threadbot_post"
_RECORD_TTL_S = 7 * 24 * 3600
# Slack answers msg_too_long a little above 4,000 characters; mrkdwn conversion can add a few (&amp;, <url|x>).
MAX_MESSAGE_CHARS = 3500
# A section block's text holds at most 3,000 characters.
SECTION_CHARS = 3000
# files.completeUploadExternal shares the file after Slack's scan, asynchronously: how long to wait for the share.
SHARE_WAIT_S = 10.0


def record_key(thread: ThreadRef, idempotency_key: str) -> str:
    return f"slack:posted:{thread.workspace_id}:{thread.channel_id}:{idempotency_key}"


def pending_upload_key(thread: ThreadRef, idempotency_key: str) -> str:
    return f"slack:uploading:{thread.workspace_id}:{thread.channel_id}:{idempotency_key}"


def upload_marker(idempotency_key: str) -> str:
    """The block_id an upload's comment carries: invisible, kept by Slack, at most 255 characters."""
    return "threadbot-upload-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


class SlackOutbound:
    name = PLATFORM
    max_message_chars = MAX_MESSAGE_CHARS
    # chat.update is Tier 3 (about 50 a minute per workspace): one edit per 1.5 s keeps a stream well inside it.
    min_edit_interval_s = 1.5
    # chat.appendStream tolerates more; half a second still reads as live typing.
    stream_interval_s = 0.5

    def __init__(
        self, client: AsyncWebClient, redis: Redis, tokens: TokenSource, *, native_streaming: bool = True
    ) -> None:
        self.client = client
        self._redis = redis
        self._tokens = tokens
        self._native_streaming = native_streaming

    async def token(self, thread: ThreadRef) -> str:
        """The bot token of the thread's workspace (one fixed token, or the workspace's OAuth installation)."""
        return await self._tokens(thread.workspace_id)

    # -- posts and edits ---------------------------------------------------------------------------------------

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        known = await self.recorded(thread, idempotency_key)
        if known is None and recovering:
            known = await self.find_by_key(thread, idempotency_key)
            if known is not None:
                await self.remember(thread, idempotency_key, known)
        if known is not None:
            return PostedMessage(message_id=known, existed=True)
        try:
            ts = await self._post(thread, to_mrkdwn(text), idempotency_key)
        except SlackRefused as exc:
            if exc.error != "msg_too_long":
                raise
            ts = await self._post_split(thread, text, idempotency_key)
        await self.remember(thread, idempotency_key, ts)
        return PostedMessage(message_id=ts)

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None:
        try:
            await self._update(thread, message_id, to_mrkdwn(text))
        except SlackRefused as exc:
            if exc.error != "msg_too_long":
                raise
            # Slack's limit turned out lower than ours: keep the head here, continue in idempotent follow-ups.
            head, *rest = split_text(text, self.max_message_chars // 2)
            await self._update(thread, message_id, to_mrkdwn(head))
            for index, part in enumerate(rest):
                posted = await self.post_message(thread, part, idempotency_key=f"edit:{message_id}:more:{index}")
                if posted.existed:
                    await self._update(thread, posted.message_id, to_mrkdwn(part))

    async def _post(self, thread: ThreadRef, text: str, key: str) -> str:
        token = await self.token(thread)
        response = await call(
            "chat.postMessage",
            lambda: self.client.chat_postMessage(
                channel=thread.channel_id,
                thread_ts=thread.thread_key or None,
                text=text,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
                unfurl_links=False,
                token=token,
            ),
            idempotent=False,
        )
        return str(response["ts"])

    async def _post_split(self, thread: ThreadRef, text: str, key: str) -> str:
        parts = split_text(text, self.max_message_chars // 2)
        first = await self._post(thread, to_mrkdwn(parts[0]), key)
        for index, part in enumerate(parts[1:]):
            more = f"{key}:more:{index}"
            if await self.recorded(thread, more) is None:
                await self.remember(thread, more, await self._post(thread, to_mrkdwn(part), more))
        return first

    async def _update(self, thread: ThreadRef, ts: str, text: str) -> None:
        token = await self.token(thread)
        await call(
            "chat.update", lambda: self.client.chat_update(channel=thread.channel_id, ts=ts, text=text, token=token)
        )

    # -- idempotency records -----------------------------------------------------------------------------------

    async def recorded(self, thread: ThreadRef, key: str) -> str | None:
        value = await self._redis.get(record_key(thread, key))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def remember(self, thread: ThreadRef, key: str, ts: str) -> None:
        await self._redis.set(record_key(thread, key), ts, ex=_RECORD_TTL_S)

    async def find_by_key(self, thread: ThreadRef, key: str) -> str | None:
        """The ts of the bot's message in `thread` that carries `key`: in its metadata (a post) or as its first
        block's block_id (an upload's comment). conversations.replies is heavily rate-limited, so this runs only
        when recovering, never on the normal path."""
        if not thread.thread_key:
            return None
        cursor: str | None = None
        token = await self.token(thread)
        while True:
            response = await call(
                "conversations.replies",
                functools.partial(
                    self.client.conversations_replies,
                    channel=thread.channel_id,
                    ts=thread.thread_key,
                    include_all_metadata=True,
                    cursor=cursor,
                    limit=200,
                    token=token,
                ),
            )
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                if (
                    metadata.get("event_type") == METADATA_EVENT
                    and (metadata.get("event_payload") or {}).get("key") == key
                ) or _first_block_id(message) == upload_marker(key):
                    return str(message["ts"])
            cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
            if not cursor:
                return None

    # -- status, native streaming, files -----------------------------------------------------------------------

    async def show_working(self, thread: ThreadRef, status: str) -> None:
        # Only assistant threads have a status line; anywhere else Slack refuses, which is fine.
        try:
            token = await self.token(thread)
            await call(
                "assistant.threads.setStatus",
                lambda: self.client.assistant_threads_setStatus(
                    channel_id=thread.channel_id, thread_ts=thread.thread_key, status=status, token=token
                ),
            )
        except (UpstreamError, ConfigurationError) as exc:
            log.debug("slack status not shown", error=str(exc))

    def disable_native_streaming(self) -> None:
        self._native_streaming = False

    def open_reply(self, thread: ThreadRef, key_prefix: str) -> ReplySink | None:
        # chat.startStream needs the recipient user in channels, which a ThreadRef does not carry; in DMs and the
        # assistant pane (channel ids starting with D) it does not, so stream natively there and post + edit
        # elsewhere.
        if not self._native_streaming or not thread.thread_key or not thread.channel_id.startswith("D"):
            return None
        return SlackStreamSink(self, thread, key_prefix)

    async def upload_file(
        self,
        thread: ThreadRef,
        *,
        filename: str,
        content: bytes,
        title: str,
        comment: str = "",
        idempotency_key: str,
        recovering: bool = False,
    ) -> PostedMessage:
        """Share a file into the thread the way files_upload_v2 does (files.getUploadURLExternal, the bytes to its
        URL, files.completeUploadExternal with channel_id and thread_ts); returns the ts of the message sharing it.

        Where the key is carried: a file share has no metadata, and a title or filename seen by people is no place
        for it. So the comment goes as a section block whose block_id is `upload_marker(key)` (blocks instead of
        `initial_comment`, which would make Slack ignore them): invisible, and returned by conversations.replies,
        where `find_by_key` looks when recovering. Matching by name and title would take an earlier, legitimate
        upload of the same transcript for this one. An upload without a comment has no block; the file id, written
        to Redis before the share is asked for, then finds it (files.info), as it does for a share Slack is still
        completing (it shares asynchronously, after its file scan)."""
        known = await self.recorded(thread, idempotency_key)
        if known is None and recovering:
            known = await self._find_upload(thread, idempotency_key)
            if known is not None:
                await self.remember(thread, idempotency_key, known)
        if known is not None:
            return PostedMessage(message_id=known, existed=True)
        if len(comment) > self.max_message_chars:
            raise InvalidInput(f"A file's comment holds at most {self.max_message_chars} characters on Slack.")
        token = await self.token(thread)
        reserved = await call(
            "files.getUploadURLExternal",
            lambda: self.client.files_getUploadURLExternal(filename=filename, length=len(content), token=token),
        )
        file_id, upload_url = str(reserved["file_id"]), str(reserved["upload_url"])
        await self._redis.set(pending_upload_key(thread, idempotency_key), file_id, ex=_RECORD_TTL_S)
        await send_upload(upload_url, content, self.client.session)
        blocks = _comment_blocks(comment, upload_marker(idempotency_key))
        await call(
            "files.completeUploadExternal",
            lambda: self.client.files_completeUploadExternal(
                files=[{"id": file_id, "title": title or filename}],
                channel_id=thread.channel_id,
                thread_ts=thread.thread_key or None,
                blocks=json.dumps(blocks) if blocks else None,
                token=token,
            ),
            # Slack may have shared the file before the error: the step's retry looks for it (`recovering`).
            idempotent=False,
        )
        ts = await self._share_ts(thread, file_id, wait_s=SHARE_WAIT_S)
        if ts is None:
            # Shared, but not yet listed: the file id stands in (it is what a replay returns; it cannot be edited).
            log.warning("slack file share not listed in time", file=file_id, channel=thread.channel_id)
            ts = file_id
        await self.remember(thread, idempotency_key, ts)
        return PostedMessage(message_id=ts)

    async def _find_upload(self, thread: ThreadRef, key: str) -> str | None:
        """An earlier attempt's share of the upload under `key`: by the file id it noted, then by the marker."""
        pending = await self.recorded_upload(thread, key)
        if pending is not None:
            ts = await self._share_ts(thread, pending, wait_s=SHARE_WAIT_S)
            if ts is not None:
                return ts
        return await self.find_by_key(thread, key)

    async def recorded_upload(self, thread: ThreadRef, key: str) -> str | None:
        value = await self._redis.get(pending_upload_key(thread, key))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def _share_ts(self, thread: ThreadRef, file_id: str, *, wait_s: float) -> str | None:
        """The ts of the message sharing `file_id` in the thread; None when Slack does not know the file (its upload
        was never completed) or has not listed the share within `wait_s`."""
        token = await self.token(thread)
        deadline = time.monotonic() + wait_s
        delay = 0.1
        while True:
            try:
                response = await call("files.info", lambda: self.client.files_info(file=file_id, token=token))
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


def _first_block_id(message: dict[str, Any]) -> str | None:
    blocks = message.get("blocks") or []
    block_id = blocks[0].get("block_id") if blocks and isinstance(blocks[0], dict) else None
    return str(block_id) if block_id else None


def _share_in(file: dict[str, Any], thread: ThreadRef) -> str | None:
    """files.info lists a file's shares per channel under `public` or `private`, each with its message's ts and,
    in a thread, the thread's ts."""
    for scope in ("public", "private"):
        for share in ((file.get("shares") or {}).get(scope) or {}).get(thread.channel_id) or []:
            if (share.get("thread_ts") or "") == thread.thread_key:
                return str(share["ts"])
    return None


@dataclass
class _Part:
    index: int
    text: str = ""
    ts: str | None = None
    sent: int = 0
    # "stream": we started it and append to it; "edit": an earlier attempt posted it, so it is updated instead.
    mode: str = "stream"
    closed: bool = False


class SlackStreamSink:
    """A reply streamed with chat.startStream / appendStream / stopStream, one Slack message per part of at most
    `max_message_chars`. Streams only grow, so a part is cut when it is full, at a space when one is near."""

    def __init__(
        self, outbound: SlackOutbound, thread: ThreadRef, key_prefix: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._out = outbound
        self._thread = thread
        self._key_prefix = key_prefix
        self._clock = clock
        self._text = ""
        self._allocated = 0
        self._parts: list[_Part] = []
        self._last_flush = float("-inf")
        self.first_visible_at: float | None = None

    @property
    def text(self) -> str:
        return self._text

    async def feed(self, delta: str) -> None:
        self._text += delta
        if self._clock() - self._last_flush >= self._out.stream_interval_s:
            await self._flush()

    async def finish(self, final_text: str | None = None) -> list[str]:
        if final_text is not None and not final_text.startswith(self._text):
            return await self._replace(final_text)
        if final_text is not None:
            self._text = final_text
        await self._flush(final=True)
        return [part.ts for part in self._parts if part.ts is not None]

    async def _flush(self, *, final: bool = False) -> None:
        self._last_flush = self._clock()
        self._allocate()
        for part in self._parts:
            if part.closed:
                continue
            if part is not self._parts[-1] or final:
                await self._sync(part, close=True)
            else:
                await self._sync(part, close=False)

    def _allocate(self) -> None:
        limit = self._out.max_message_chars
        pending = self._text[self._allocated :]
        while pending:
            if not self._parts or len(self._parts[-1].text) >= limit:
                self._parts.append(_Part(index=len(self._parts)))
            part = self._parts[-1]
            room = limit - len(part.text)
            take = pending[:room]
            if len(pending) > room:
                cut = max(take.rfind("\n"), take.rfind(" "))
                take = take[: cut + 1] if cut >= room // 2 else take
                part.text += take
                pending = pending[len(take) :]
                self._allocated += len(take)
                self._parts.append(_Part(index=len(self._parts)))
                continue
            part.text += take
            pending = ""
            self._allocated += len(take)

    async def _sync(self, part: _Part, *, close: bool) -> None:
        thread, key = self._thread, f"{self._key_prefix}:{part.index}"
        if not part.text.strip():
            return
        token = await self._out.token(thread)
        if part.ts is None:
            part.ts = await self._out.recorded(thread, key)
            if part.ts is not None:
                part.mode = "edit"
            else:
                try:
                    response = await call(
                        "chat.startStream",
                        lambda: self._out.client.chat_startStream(
                            channel=thread.channel_id, thread_ts=thread.thread_key, markdown_text=part.text, token=token
                        ),
                        idempotent=False,
                    )
                    part.ts = str(response["ts"])
                    part.sent = len(part.text)
                    await self._out.remember(thread, key, part.ts)
                except SlackRefused as exc:
                    # No chat streaming here (an older plan, a token type without it): post this part and edit it
                    # when it is complete; later replies use post + edit from the start.
                    log.warning("slack chat streaming refused; falling back to post + edit", error=exc.error)
                    self._out.disable_native_streaming()
                    part.ts = (await self._out.post_message(thread, part.text, idempotency_key=key)).message_id
                    part.mode = "edit"
                if self.first_visible_at is None:
                    self.first_visible_at = self._clock()
        ts = part.ts
        if part.mode == "stream" and part.sent < len(part.text):
            delta = part.text[part.sent :]
            await call(
                "chat.appendStream",
                lambda: self._out.client.chat_appendStream(
                    channel=thread.channel_id, ts=ts, markdown_text=delta, token=token
                ),
            )
            part.sent = len(part.text)
        if close:
            if part.mode == "stream":
                metadata: dict[str, Any] = {"event_type": METADATA_EVENT, "event_payload": {"key": key}}
                await call(
                    "chat.stopStream",
                    lambda: self._out.client.chat_stopStream(
                        channel=thread.channel_id, ts=ts, metadata=metadata, token=token
                    ),
                )
            else:
                await self._out.edit_message(thread, ts, part.text)
            part.closed = True

    async def _replace(self, final_text: str) -> list[str]:
        """The final text is not a continuation of what was streamed: close the streams, then edit them (and post
        more parts) to show it, as the post + edit path would."""
        await self._flush(final=True)
        ids: list[str] = []
        for index, text in enumerate(split_text(final_text, self._out.max_message_chars)):
            if index < len(self._parts) and self._parts[index].ts is not None:
                ts = self._parts[index].ts
                assert ts is not None
                await self._out.edit_message(self._thread, ts, text)
                ids.append(ts)
            else:
                posted = await self._out.post_message(self._thread, text, idempotency_key=f"{self._key_prefix}:{index}")
                if posted.existed:
                    await self._out.edit_message(self._thread, posted.message_id, text)
                ids.append(posted.message_id)
        self._text = final_text
        return ids
