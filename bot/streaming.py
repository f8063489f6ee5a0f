"""Streaming a reply into a thread: post on the first text, then edit at most once per interval, and continue in
new messages when the text outgrows the platform's limit. Every post carries a stable idempotency key, so a
retried turn edits what it already posted instead of posting again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from bot.events import ThreadRef
from bot.ports import ChatPlatform, ReplySink

REPLACED = "⤴ (replaced by the answer above)"


class ReplyStream:
    def __init__(
        self,
        platform: ChatPlatform,
        thread: ThreadRef,
        key_prefix: str,
        *,
        min_interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._platform = platform
        self._thread = thread
        self._key_prefix = key_prefix
        self._interval = platform.min_edit_interval_s if min_interval_s is None else min_interval_s
        self._clock = clock
        self._text = ""
        self._sent: list[str] = []
        self._ids: list[str] = []
        self._last_flush = float("-inf")
        # Parts an earlier attempt of this reply posted: they show that attempt's text, which may be longer than
        # this one's so far, so they are edited once, at the end (a replay never shrinks what the user sees).
        self._carried: set[int] = set()
        self.first_visible_at: float | None = None

    @property
    def text(self) -> str:
        return self._text

    @property
    def message_ids(self) -> list[str]:
        return list(self._ids)

    async def feed(self, delta: str) -> None:
        self._text += delta
        if self._clock() - self._last_flush >= self._interval:
            await self.flush()

    async def finish(self, final_text: str | None = None) -> list[str]:
        if final_text is not None:
            self._text = final_text
        self._carried.clear()
        await self.flush()
        await self._retire_leftovers()
        return self.message_ids

    async def _retire_leftovers(self) -> None:
        """An earlier attempt of this reply may have posted more parts than this one has; they would show the old
        answer's tail under the new one. The outbox names them (a bare platform knows of none), and they are
        replaced."""
        for message_id in await self._platform.posted_beyond(self._key_prefix, len(self._ids)):
            await self._platform.edit_message(self._thread, message_id, REPLACED)

    async def flush(self) -> None:
        if not self._text.strip():
            return
        self._last_flush = self._clock()
        parts = self._platform.split_text(self._text, self._platform.max_message_chars)
        for index, part in enumerate(parts):
            if index >= len(self._ids):
                posted = await self._platform.post_message(
                    self._thread, part, idempotency_key=f"{self._key_prefix}:{index}"
                )
                self._ids.append(posted.message_id)
                self._sent.append(part)
                if posted.existed:  # an earlier attempt posted here: it shows this attempt's text at the end
                    self._carried.add(index)
                    self._sent[index] = ""
                if self.first_visible_at is None:
                    self.first_visible_at = self._clock()
            elif index in self._carried:
                continue
            elif self._sent[index] != part:
                await self._platform.edit_message(self._thread, self._ids[index], part)
                self._sent[index] = part


async def pump(deltas: AsyncIterator[str], sink: ReplySink, alongside: Coroutine[Any, Any, None] | None = None) -> None:
    """Feed the model's deltas into `sink`, each time with everything that has come in so far.

    The model is read by a task of its own while the sink posts or edits, and the sink gets the deltas gathered
    meanwhile in one piece: a reply the model sends in a rush is posted whole, with no edit after it (which was a
    second Slack call and most of the wait for the full answer), and a slow one streams as before. One turn of the
    event loop is allowed before each feed, so what is already on the socket is taken in. `alongside` runs while
    the model is asked, started after the request so it does not delay it, and is waited for before the first
    feed (a status line that must not show up after the answer)."""
    buffer: list[str] = []
    arrived = asyncio.Event()

    async def read() -> None:
        try:
            async for delta in deltas:
                buffer.append(delta)
                arrived.set()
        finally:
            arrived.set()

    reader = asyncio.create_task(read())
    before_first = asyncio.create_task(alongside) if alongside is not None else None
    try:
        while True:
            if not buffer:
                if reader.done():
                    break
                await arrived.wait()
            arrived.clear()
            await asyncio.sleep(0)
            if not buffer:
                continue
            text = "".join(buffer)
            buffer.clear()
            if before_first is not None:
                await before_first
                before_first = None
            await sink.feed(text)
        await reader  # the model's error, if it failed
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if before_first is not None:
            await before_first


def open_reply(platform: ChatPlatform, thread: ThreadRef, key_prefix: str) -> ReplySink:
    """The platform's native streaming reply where it has one, else streaming by post + edit, cut the platform's
    way (`ChatPlatform.split_text`: Discord keeps code fences whole)."""
    native = platform.open_reply(thread, key_prefix)
    return native if native is not None else ReplyStream(platform, thread, key_prefix)
