"""A reply streamed natively with chat.startStream / appendStream / stopStream, one Slack message per part.

Each part's message is started through the outbox's ledger under `{key_prefix}:{part}`, so a replayed reply finds
the parts an earlier attempt started (in Postgres, whatever happened to Redis) and edits them instead of starting
new ones. A finished part carries its key in metadata too, for `find_by_key` when recovering. The one window left:
a crash between Slack's answer to chat.startStream and the ledger's record of it (a stream has no metadata until
it stops), where the replay starts a second message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from adapters.slack.keys import key_metadata
from adapters.slack.webapi import SlackRefused, call
from bot.events import PostedMessage, ThreadRef
from bot.ports import PostLedger
from bot.text import split_text

if TYPE_CHECKING:
    from adapters.slack.outbound import SlackOutbound

log = structlog.get_logger(__name__)


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
    """Parts of at most `max_message_chars`. Streams only grow, so a part is cut when it is full, at a space when one
    is near."""

    def __init__(
        self,
        outbound: SlackOutbound,
        ledger: PostLedger,
        thread: ThreadRef,
        key_prefix: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = outbound
        self._ledger = ledger
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
            await self._sync(part, close=part is not self._parts[-1] or final)

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
        if not part.text.strip():
            return
        thread, key = self._thread, f"{self._key_prefix}:{part.index}"
        token = await self._out.token(thread)
        if part.ts is None:
            posted = await self._ledger.once(key, lambda recovering: self._start(part, key, recovering))
            part.ts = posted.message_id
            if posted.existed:
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
                metadata = key_metadata(key)
                await call(
                    "chat.stopStream",
                    lambda: self._out.client.chat_stopStream(
                        channel=thread.channel_id, ts=ts, metadata=metadata, token=token
                    ),
                )
            else:
                await self._out.edit_message(thread, ts, part.text)
            part.closed = True

    async def _start(self, part: _Part, key: str, recovering: bool) -> PostedMessage:
        """Start the part's message. A crash can fall between Slack's answer and the ledger's record; a finished
        stream then carries its key in metadata, so a recovering attempt looks there first."""
        thread = self._thread
        if recovering:
            known = await self._out.find_by_key(thread, key)
            if known is not None:
                return PostedMessage(known, existed=True)
        token = await self._out.token(thread)
        try:
            response = await call(
                "chat.startStream",
                lambda: self._out.client.chat_startStream(
                    channel=thread.channel_id, thread_ts=thread.thread_key, markdown_text=part.text, token=token
                ),
                idempotent=False,
            )
        except SlackRefused as exc:
            # No chat streaming here (an older plan, a token type without it): post this part and edit it when it
            # is complete; later replies use post + edit from the start.
            log.warning("slack chat streaming refused; falling back to post + edit", error=exc.error)
            self._out.disable_native_streaming()
            posted = await self._out.post_message(thread, part.text, idempotency_key=key)
            part.mode = "edit"
            return posted
        part.sent = len(part.text)
        return PostedMessage(str(response["ts"]))

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
                key = f"{self._key_prefix}:{index}"
                posted = await self._ledger.once(
                    key,
                    lambda recovering, text=text, key=key: self._out.post_message(  # type: ignore[misc]
                        self._thread, text, idempotency_key=key, recovering=recovering
                    ),
                )
                if posted.existed:
                    await self._out.edit_message(self._thread, posted.message_id, text)
                ids.append(posted.message_id)
        self._text = final_text
        return ids
