"""Streaming a reply into a thread: post on the first text, then edit at most once per interval, and continue in
new messages when the text outgrows the platform's limit. Every post carries a stable idempotency key, so a
retried turn edits what it already posted instead of posting again."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.events import ThreadRef
from bot.ports import ChatPlatform, ReplySink


def split_text(text: str, limit: int) -> list[str]:
    """Cut `text` into parts of at most `limit` characters, preferring a paragraph, line or word break in the
    last fifth of each part. Only text before a cut decides where it falls, so parts already sent stay the
    same while the text grows."""
    parts: list[str] = []
    start = 0
    while len(text) - start > limit:
        window = text[start : start + limit]
        cut = -1
        for separator in ("\n\n", "\n", " "):
            found = window.rfind(separator, limit * 4 // 5)
            if found > 0:
                cut = found + len(separator)
                break
        if cut <= 0:
            cut = limit
        parts.append(text[start : start + cut])
        start += cut
    parts.append(text[start:])
    return parts


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
        split: Callable[[str, int], list[str]] = split_text,
    ) -> None:
        self._split = split
        self._platform = platform
        self._thread = thread
        self._key_prefix = key_prefix
        self._interval = platform.min_edit_interval_s if min_interval_s is None else min_interval_s
        self._clock = clock
        self._text = ""
        self._sent: list[str] = []
        self._ids: list[str] = []
        self._last_flush = float("-inf")
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
        await self.flush()
        await self._retire_leftovers()
        return self.message_ids

    async def _retire_leftovers(self) -> None:
        """An earlier attempt of this reply may have posted more parts than this one has; they would show the old
        answer's tail under the new one. A platform that knows (the outbox) names them, and they are replaced."""
        leftovers = getattr(self._platform, "posted_beyond", None)
        if leftovers is None:
            return
        for message_id in await leftovers(self._key_prefix, len(self._ids)):
            await self._platform.edit_message(self._thread, message_id, REPLACED)

    async def flush(self) -> None:
        if not self._text.strip():
            return
        self._last_flush = self._clock()
        parts = self._split(self._text, self._platform.max_message_chars)
        for index, part in enumerate(parts):
            if index >= len(self._ids):
                posted = await self._platform.post_message(
                    self._thread, part, idempotency_key=f"{self._key_prefix}:{index}"
                )
                self._ids.append(posted.message_id)
                self._sent.append(part)
                if posted.existed:  # an earlier attempt posted here; make it show this attempt's text
                    await self._platform.edit_message(self._thread, posted.message_id, part)
                if self.first_visible_at is None:
                    self.first_visible_at = self._clock()
            elif self._sent[index] != part:
                await self._platform.edit_message(self._thread, self._ids[index], part)
                self._sent[index] = part


def open_reply(platform: ChatPlatform, thread: ThreadRef, key_prefix: str) -> ReplySink:
    """The platform's native streaming reply where it has one, else streaming by post + edit, cut with the
    platform's own `split_text(text, limit)` when it has one (Discord keeps code fences whole)."""
    native = platform.open_reply(thread, key_prefix)
    if native is not None:
        return native
    split = getattr(platform, "split_text", None) or split_text
    return ReplyStream(platform, thread, key_prefix, split=split)
