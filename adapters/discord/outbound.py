"""Discord's side of `bot.ports.ChatPlatform`, over REST only (workers hold no gateway connection).

A reply goes to the thread's channel (`ThreadRef.thread_key`: a thread's id, or the channel for inline answers
and DMs). Sends carry a `nonce` derived from the idempotency key with `enforce_nonce`, so Discord returns the
first message instead of posting a second one when a retried step sends again; file uploads are sends too (a
multipart form) and carry the nonce the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import structlog

from adapters.discord.rest import DiscordRest
from adapters.discord.splitting import split_message
from bot.errors import InvalidInput, UpstreamError
from bot.events import PostedMessage, ThreadRef
from bot.ports import ChatPlatform, FileUpload, PostLedger

log = structlog.get_logger(__name__)

PLATFORM = "discord"
MAX_MESSAGE_CHARS = 2000
DISCORD_EPOCH_MS = 1_420_070_400_000
# Discord keeps a nonce for "a few minutes" and accepts at most 25 characters.
NONCE_CHARS = 25
# A replayed send returns a message older than the request; allow for clocks a little apart.
_CLOCK_SLACK_S = 5.0
NO_PINGS: dict[str, Any] = {"parse": []}  # a model's text must never ping @everyone or a role
# What a bot may attach to one message in a server without boosts (Discord's default since 2024); boosted servers
# allow more, which `max_upload_bytes` can say.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024


def nonce_for(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:NONCE_CHARS]


def snowflake_time(snowflake: str) -> float:
    """Unix time when Discord made the id."""
    return ((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000


class DiscordOutbound(ChatPlatform):
    name = PLATFORM
    max_message_chars = MAX_MESSAGE_CHARS
    # Discord allows about 5 sends or edits per 5 s in a channel: one edit a second leaves room for the rest.
    min_edit_interval_s = 1.0

    # Discord shows "is typing…" for about 10 s after each call: renewed before it lapses while a turn works, for
    # at most a couple of minutes, and stopped by the bot's next message in the channel.
    typing_refresh_s = 8.0
    typing_max_s = 120.0

    def __init__(self, rest: DiscordRest, *, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self._rest = rest
        self.max_upload_bytes = max_upload_bytes
        self._typing: dict[str, asyncio.Task[None]] = {}

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        # `recovering` needs no lookup: within Discord's nonce window the send itself returns the earlier message.
        # Past that window (minutes) a crashed attempt's message cannot be found by nonce, and a new one is posted.
        self._stop_typing(thread)
        sent_at = time.time()
        body = {
            "content": text,
            "nonce": nonce_for(idempotency_key),
            "enforce_nonce": True,
            "allowed_mentions": NO_PINGS,
        }
        data = await self._rest.request(
            "POST", f"/channels/{thread.thread_key}/messages", json=body, action="send messages"
        )
        return _posted(thread, data, text, sent_at)

    async def upload_file(
        self,
        thread: ThreadRef,
        upload: FileUpload,
        *,
        idempotency_key: str,
        recovering: bool = False,
        ledger: PostLedger | None = None,
    ) -> PostedMessage:
        """A message with the file attached and `comment` as its text. As for posts, `recovering` needs no lookup:
        the nonce returns the earlier message within Discord's window. `existed` is judged as for posts too (the
        text differs, or the message is older than the request), so a replay with the same comment seconds later
        returns the same message without saying it existed."""
        self._stop_typing(thread)
        filename, content, comment = upload.filename, upload.content, upload.comment
        if len(content) > self.max_upload_bytes:
            # Refused here rather than by Discord's 413, and as InvalidInput: the caller posts the text instead.
            raise InvalidInput(
                f"`{filename}` is {len(content):,} bytes; a bot may attach at most {self.max_upload_bytes:,} bytes "
                f"({self.max_upload_bytes / 2**20:g} MiB) to a Discord message here."
            )
        if len(comment) > self.max_message_chars:
            raise InvalidInput(f"A file's comment holds at most {self.max_message_chars} characters on Discord.")
        attachment: dict[str, Any] = {"id": 0, "filename": filename}
        if upload.title:
            attachment["title"] = upload.title
        body = {
            "content": comment,
            "nonce": nonce_for(idempotency_key),
            "enforce_nonce": True,
            "allowed_mentions": NO_PINGS,
            "attachments": [attachment],
        }
        sent_at = time.time()
        data = await self._rest.request(
            "POST",
            f"/channels/{thread.thread_key}/messages",
            json=body,
            files=[(filename, content)],
            action="attach files",
        )
        return _posted(thread, data, comment, sent_at)

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None:
        await self._rest.request(
            "PATCH",
            f"/channels/{thread.thread_key}/messages/{message_id}",
            json={"content": text, "allowed_mentions": NO_PINGS},
            action="edit my messages",
        )

    async def show_working(self, thread: ThreadRef, status: str) -> None:
        """ "is typing…" now, kept up until the bot posts in the channel (or `typing_max_s` passes)."""
        self._stop_typing(thread)
        await self._type(thread)
        self._typing[thread.thread_key] = asyncio.create_task(self._keep_typing(thread))

    async def _keep_typing(self, thread: ThreadRef) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.typing_max_s
        while loop.time() + self.typing_refresh_s < deadline:
            await asyncio.sleep(self.typing_refresh_s)
            await self._type(thread)

    def _stop_typing(self, thread: ThreadRef) -> None:
        task = self._typing.pop(thread.thread_key, None)
        if task is not None:
            task.cancel()

    async def _type(self, thread: ThreadRef) -> None:
        # A courtesy: failures are only logged.
        try:
            await self._rest.request("POST", f"/channels/{thread.thread_key}/typing", action="show typing")
        except UpstreamError as exc:
            log.info("discord typing indicator failed", channel=thread.thread_key, error=str(exc))

    # No native streaming: replies stream by the core's post + edit, cut with `split_text` below.

    def split_text(self, text: str, limit: int) -> list[str]:
        """Discord's cut: `bot.streaming.split_text` knows nothing of code fences; this keeps each part fenced."""
        return split_message(text, limit)


def _posted(thread: ThreadRef, data: dict[str, Any], text: str, sent_at: float) -> PostedMessage:
    """A send's answer: `existed` when Discord returned an earlier message for the nonce instead of a new one."""
    message_id = str(data["id"])
    # Discord trims surrounding whitespace of what it stores.
    changed = str(data.get("content", "")).strip() != text.strip()
    existed = changed or snowflake_time(message_id) < sent_at - _CLOCK_SLACK_S
    if existed:
        log.info("discord send replayed an earlier message", channel=thread.thread_key, message=message_id)
    return PostedMessage(message_id=message_id, existed=existed)
