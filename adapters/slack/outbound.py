"""The Slack side of the `ChatPlatform` port: posts, edits, status, and the entry points of native streaming replies
(`stream.py`) and file uploads (`uploads.py`).

Idempotency: the outbox (Postgres) is the record of every post; Slack only carries each post's key, in message
metadata (or, for an upload, a block id), where `recovering=True` looks it up when an attempt crashed around the
call. No record of posts is kept in Redis.
"""

from __future__ import annotations

import functools

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import PLATFORM
from adapters.slack.keys import carries_key, key_metadata
from adapters.slack.mrkdwn import to_mrkdwn
from adapters.slack.stream import SlackStreamSink
from adapters.slack.uploads import share_file
from adapters.slack.webapi import SlackRefused, TokenSource, call
from bot.errors import ConfigurationError, MessageTooLong, UpstreamError
from bot.events import PostedMessage, ThreadRef
from bot.ports import ChatPlatform, FileUpload, PostLedger, ReplySink

log = structlog.get_logger(__name__)

# Slack answers msg_too_long a little above 4,000 characters; mrkdwn conversion can add a few (&amp;, <url|x>).
MAX_MESSAGE_CHARS = 3500


class SlackOutbound(ChatPlatform):
    name = PLATFORM
    max_message_chars = MAX_MESSAGE_CHARS
    # chat.update is Tier 3 (about 50 a minute per workspace): one edit per 1.5 s keeps a stream well inside it.
    min_edit_interval_s = 1.5
    # chat.appendStream tolerates more; half a second still reads as live typing.
    stream_interval_s = 0.5

    def __init__(self, client: AsyncWebClient, tokens: TokenSource, *, native_streaming: bool = True) -> None:
        self.client = client
        self._tokens = tokens
        self._native_streaming = native_streaming

    async def token(self, thread: ThreadRef) -> str:
        """The bot token of the thread's workspace (one fixed token, or the workspace's OAuth installation)."""
        return await self._tokens(thread.workspace_id)

    # -- posts and edits ---------------------------------------------------------------------------------------

    async def post_message(
        self, thread: ThreadRef, text: str, *, idempotency_key: str, recovering: bool = False
    ) -> PostedMessage:
        if recovering:
            known = await self.find_by_key(thread, idempotency_key)
            if known is not None:
                return PostedMessage(message_id=known, existed=True)
        token = await self.token(thread)
        try:
            response = await call(
                "chat.postMessage",
                lambda: self.client.chat_postMessage(
                    channel=thread.channel_id,
                    thread_ts=thread.thread_key or None,
                    text=to_mrkdwn(text),
                    metadata=key_metadata(idempotency_key),
                    unfurl_links=False,
                    token=token,
                ),
                idempotent=False,
            )
        except SlackRefused as exc:
            raise _too_long(exc) from exc
        return PostedMessage(message_id=str(response["ts"]))

    async def edit_message(self, thread: ThreadRef, message_id: str, text: str) -> None:
        token = await self.token(thread)
        try:
            await call(
                "chat.update",
                lambda: self.client.chat_update(
                    channel=thread.channel_id, ts=message_id, text=to_mrkdwn(text), token=token
                ),
            )
        except SlackRefused as exc:
            raise _too_long(exc) from exc

    async def find_by_key(self, thread: ThreadRef, key: str) -> str | None:
        """The ts of the bot's message in `thread` that carries `key`: in its metadata (a post, a finished stream)
        or as its first block's block_id (an upload's comment). conversations.replies is heavily rate-limited, so
        this runs only when recovering, never on the normal path."""
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
                if carries_key(message, key):
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

    def open_reply(self, thread: ThreadRef, key_prefix: str, ledger: PostLedger | None = None) -> ReplySink | None:
        # chat.startStream needs the recipient user in channels, which a ThreadRef does not carry; in DMs and the
        # assistant pane (channel ids starting with D) it does not, so stream natively there and post + edit
        # elsewhere. Without the ledger a stream's parts would have no record: post + edit then too.
        if ledger is None or not self._native_streaming or not thread.thread_key:
            return None
        if not thread.channel_id.startswith("D"):
            return None
        return SlackStreamSink(self, ledger, thread, key_prefix)

    async def upload_file(
        self,
        thread: ThreadRef,
        upload: FileUpload,
        *,
        idempotency_key: str,
        recovering: bool = False,
        ledger: PostLedger | None = None,
    ) -> PostedMessage:
        return await share_file(self, thread, upload, idempotency_key, recovering=recovering, ledger=ledger)


def _too_long(exc: SlackRefused) -> Exception:
    return MessageTooLong(f"slack refused the text: {exc.error}") if exc.error == "msg_too_long" else exc
